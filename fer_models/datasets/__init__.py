"""Faces with labels, from every format the project reads: the Kaggle FER2013 CSV (kaggle), class
folders (folders), FaceData .npz files, their parse cache (cache), the FER+ votes (ferplus), the bundled
PublicTest faces (bundle), and the tensors and batch augmentation the models train on (augment).
`loading.load_faces(path)` is the one entry point.

May import: core. Never torch at import time (augment imports it inside its functions).
"""
