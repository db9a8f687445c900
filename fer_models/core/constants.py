"""Facts every module shares: the classes, the face size, the crop margin, the label sources.

Torch-free and import-free, so the dashboard, the readers and the trainer all take them from here.
"""
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SIZE = 48  # FER2013 faces are 48 x 48 gray; every model takes this input
# FER2013 crops reach a little past a detector's face box (forehead, chin): the box grows by this share per side
FACE_MARGIN = 0.1
LABEL_SOURCES = ("fer2013", "ferplus-majority", "ferplus-soft")
# photos and dataset images larger than this are refused from their header, before any decoding
MAX_PIXELS = 25_000_000
# uploads the pages accept, in MB: checked on the server before a byte is decoded (the browser's limit is only a
# courtesy); .streamlit/config.toml's server.maxUploadSize is the larger of the two
MAX_PHOTO_MB = 50
MAX_VIDEO_MB = 200

# the start of the lines `fer-studio evaluate --progress` writes to stderr, which the Train page reads as they come
PROGRESS = "progress: "
