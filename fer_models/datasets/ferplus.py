"""The FER+ relabelling (Barsoum et al. 2016, fer2013new.csv): ten annotators' votes per FER2013 face,
aligned with the faces, and the majority and soft labels derived from them in FER2013 class order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_models.core.guards import UntrustedFileError, regular_file
from fer_models.datasets.facedata import DataError, FaceData

# fer2013new.csv's vote columns and the FER2013 class each one counts for (None: no FER2013 class).
_FERPLUS_COLUMNS = {"neutral": 6, "happiness": 3, "surprise": 5, "sadness": 4, "anger": 0,
                    "disgust": 1, "fear": 2, "contempt": None, "unknown": None, "NF": None}


FERPLUS_COLUMNS = tuple(_FERPLUS_COLUMNS)  # fer2013new.csv's ten vote columns, in its order


def ferplus_votes(votes_path, data: FaceData) -> tuple[np.ndarray, np.ndarray]:
    """The ten FER+ vote counts of every face of `data` (N x 10 ints, FERPLUS_COLUMNS order) and whether FER+
    named its image (an empty `Image name` marks a non-face). Rows are aligned split by split, in file order:
    FER+ is the FER2013 file relabelled row by row."""
    import pandas as pd

    votes_path = Path(votes_path)
    if not votes_path.exists():
        raise DataError(f"{votes_path}: FER+ votes file not found; pass its path (fer2013new.csv) with --ferplus")
    try:
        regular_file(votes_path)
    except UntrustedFileError as err:
        raise DataError(str(err)) from None
    try:
        table = pd.read_csv(votes_path, dtype={"Usage": str, "Image name": str}, keep_default_na=False)
    except Exception as err:
        raise DataError(f"{votes_path}: not a readable CSV file ({err})") from err
    missing = [c for c in ["Usage", "Image name", *FERPLUS_COLUMNS] if c not in table.columns]
    if missing:
        raise DataError(f"{votes_path}: missing column(s) {', '.join(missing)}; expected the FER+ "
                        "fer2013new.csv columns Usage,Image name,neutral,...,NF")
    numeric = table[list(FERPLUS_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad = (numeric.isna() | (numeric < 0) | (numeric != numeric.round())).any(axis=1).to_numpy().nonzero()[0]
    if bad.size:
        raise DataError(f"{votes_path}: line {bad[0] + 2}: vote counts must be whole numbers ≥ 0")
    votes10 = numeric.to_numpy(np.int64)

    n = len(data)
    aligned = np.zeros((n, len(FERPLUS_COLUMNS)), np.int64)
    named = np.zeros(n, bool)
    covered = np.zeros(n, bool)
    plus_usage = table["Usage"].to_numpy()
    for split in dict.fromkeys(plus_usage):
        fer_rows = np.flatnonzero(data.splits == split)
        plus_rows = np.flatnonzero(plus_usage == split)
        if not len(fer_rows):  # a split not loaded (say Training, when only PublicTest was asked for)
            continue
        if len(fer_rows) != len(plus_rows):
            raise DataError(f"{votes_path}: split {split} has {len(plus_rows)} rows but {data.source} has "
                            f"{len(fer_rows)}; FER+ must be the same FER2013 file relabelled row by row")
        aligned[fer_rows] = votes10[plus_rows]
        named[fer_rows] = table["Image name"].to_numpy()[plus_rows] != ""
        covered[fer_rows] = True
    if not covered.all():
        absent = sorted(set(data.splits[~covered].tolist()))
        raise DataError(f"{votes_path}: no FER+ votes for split(s) {', '.join(absent)}; "
                        "load only the splits FER+ covers")
    return aligned, named


def seven_class_votes(votes10: np.ndarray) -> np.ndarray:
    """N x 7 float votes in FER2013 class order; contempt, unknown and NF dropped."""
    votes7 = np.zeros((len(votes10), 7))
    for i, cls in enumerate(_FERPLUS_COLUMNS.values()):
        if cls is not None:
            votes7[:, cls] = votes10[:, i]
    return votes7


def ferplus_labels(votes_path, data: FaceData):
    """FER+ majority labels and vote distributions, in FER2013 class order, aligned with `data`.

    The rule, per image:
    - `contempt` and `unknown` votes are discarded: FER2013 has no such class.
    - Not a face (label -1, soft row NaN): FER+ left `Image name` empty, or `NF` got more votes
      than any of the seven classes, or no vote went to any of the seven classes.
    - Majority: the class with the most votes. A tie goes to the original FER2013 label if it is
      among the tied classes, otherwise to the first tied class in FER2013 order.
    - Soft: the seven classes' votes divided by their sum.
    """
    votes10, named = ferplus_votes(votes_path, data)
    votes7 = seven_class_votes(votes10)
    nf_votes = votes10[:, FERPLUS_COLUMNS.index("NF")]
    n = len(data)
    top = votes7.max(axis=1)
    not_face = ~named | (nf_votes > top) | (top <= 0)
    tied = votes7 == top[:, None]
    first_tied = tied.argmax(axis=1)
    original_tied = tied[np.arange(n), np.clip(data.labels, 0, 6)] & (data.labels >= 0)
    hard = np.where(original_tied, data.labels, first_tied).astype(np.int64)
    hard[not_face] = -1
    with np.errstate(invalid="ignore", divide="ignore"):
        soft = (votes7 / votes7.sum(axis=1, keepdims=True)).astype(np.float32)
    soft[not_face] = np.nan
    notes = []
    if not_face.any():
        notes.append(f"FER+ marks {int(not_face.sum())} images as not a face or gives them no vote "
                     "for the seven classes; they have label -1 and are left out of training and metrics")
    return hard, soft, notes
