"""From a photo to the 48x48 gray face a model reads: decode an upload safely (decode), find faces
with MTCNN or Haar cascades (mtcnn, haar, detect), level and place the crop as FER2013's crops are
(align), cut it out (face). `detect.find_faces(rgb)` is the entry point.

May import: core. Independent of datasets.
"""
