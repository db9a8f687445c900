"""Expression recognition on camera and files: webcam frames (live), video files (video) and folders of
photos (predict), each through faces and a run's model.

May import: explain, evaluation, runs, nets, datasets, faces, core. Independent of training.
"""
