"""One entry point for every dataset the project reads.

    from fer_models.datasets.loading import load_faces
    faces = load_faces("fer2013.csv.gz", splits=["Training", "PublicTest"])
    faces.images  # uint8 N x 1 x 48 x 48;  faces.labels  # int64, -1 = no label

Reads the Kaggle `fer2013.csv` (plain or gzip), the course variant (`label,feature` / `id,feature`),
a class-folder tree and a FaceData `.npz`, and can relabel a Kaggle CSV with the FER+ votes. Bad
input raises DataError naming the file, the line and the problem; what a reader leaves out is listed
in `FaceData.notes`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_models.core.constants import LABEL_SOURCES
from fer_models.core.guards import UntrustedFileError, regular_file
from fer_models.datasets.facedata import DataError, FaceData, read_npz
from fer_models.datasets.ferplus import ferplus_labels
from fer_models.datasets.folders import read_class_folders
from fer_models.datasets.kaggle import read_csv

DATA_SUFFIXES = (".csv", ".csv.gz", ".npz")
MAX_DATA_BYTES = 4 << 30  # the Kaggle CSV is 300 MB; a file this large is not a FER dataset


def dataset_source(path) -> Path:
    """`path` if it can be a dataset: a folder (a class-folder tree), or a regular file named .csv, .csv.gz or
    .npz of at most MAX_DATA_BYTES. Checked before anything is opened, so that a path typed on the Train page
    or recorded in a run folder never reads another kind of file (a secret's first line would be echoed in
    a parse error), a pipe (which blocks) or a device (which never ends)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return path
    try:
        regular_file(path)
    except UntrustedFileError as err:
        raise DataError(str(err)) from None
    if not path.name.lower().endswith(DATA_SUFFIXES):
        raise DataError(f"{path}: not a dataset file; give a FER2013 CSV (.csv or .csv.gz), a FaceData .npz or a "
                        "class-folder tree")
    if path.stat().st_size > MAX_DATA_BYTES:
        raise DataError(f"{path}: {path.stat().st_size / 2**30:.1f} GB, larger than any FER dataset "
                        f"({MAX_DATA_BYTES >> 30} GB allowed)")
    return path


def load_faces(path, splits=None, label_source: str = "fer2013", ferplus=None,
               cache: bool = True, split_name: str | None = None) -> FaceData:
    """Read any supported dataset; keep only `splits` (a list of names) when given.

    label_source: "fer2013" (the file's labels), "ferplus-majority" or "ferplus-soft" (FER+
    votes from `ferplus`, by default fer2013new.csv beside a Kaggle CSV).
    split_name: the split of a course-variant CSV (default Training if labelled, else Test).
    """
    if label_source not in LABEL_SOURCES:
        raise DataError(f"unknown label source '{label_source}'; choose one of {', '.join(LABEL_SOURCES)}")
    path = dataset_source(path)
    if path.is_dir():
        data = read_class_folders(path, cache=cache)
    elif path.suffix == ".npz":
        data = read_npz(path)
    else:
        data = read_csv(path, cache=cache, split_name=split_name)
    if label_source != "fer2013":
        if data.format != "kaggle":
            raise DataError(f"{path}: FER+ labels align row by row with the Kaggle fer2013.csv; "
                            f"this source is not one (use --label-source fer2013)")
        votes_path = Path(ferplus) if ferplus else path.parent / "fer2013new.csv"
        hard, soft, notes = ferplus_labels(votes_path, data)
        data.labels, data.notes = hard, data.notes + notes
        if label_source == "ferplus-soft":
            data.soft = soft
    if splits:
        missing = [s for s in splits if s not in set(data.splits.tolist())]
        if missing:
            raise DataError(f"{path}: split(s) {', '.join(missing)} empty or absent; "
                            f"splits present: {data.split_sizes() or 'none (the file has no rows)'}")
        data = data.select(np.isin(data.splits, list(splits)))
    if len(data) == 0:
        raise DataError(f"{path}: no images found")
    return data
