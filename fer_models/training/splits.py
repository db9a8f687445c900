"""The labelled training and validation faces of a run and the pixel statistics of the training faces;
a stratified hold-out of the training split when the data has no validation split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_models.datasets.augment import normalisation_stats
from fer_models.datasets.facedata import DataError, FaceData
from fer_models.datasets.loading import load_faces
from fer_models.runs.settings import TrainConfig


@dataclass
class Splits:
    train: FaceData
    val: FaceData
    notes: list[str]
    mean: float
    std: float
    format: str


def holdout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, per-class random `fraction` of the rows (at least one per class that has two or more)."""
    if not 0 < fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, not {fraction}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        if len(rows) >= 2:
            mask[rows[:max(1, round(fraction * len(rows)))]] = True
    return mask


def load_splits(cfg: TrainConfig) -> Splits:
    """The labelled training and validation faces, and the pixel statistics of the training faces."""
    holdout = cfg.val_fraction > 0
    try:
        data = load_faces(cfg.data, splits=[cfg.train_split] + ([] if holdout else [cfg.val_split]),
                          label_source=cfg.label_source, ferplus=cfg.ferplus)
    except DataError as err:
        if "empty or absent" not in str(err):
            raise
        raise DataError(f"{err}. Name the splits with --train-split and --val-split, or validate on part of "
                        "the training split with --val-fraction 0.1") from err
    notes = list(data.notes)
    if holdout:
        data.splits = np.where(holdout_mask(data.labels, cfg.val_fraction, cfg.seed), cfg.val_split, data.splits)
    train_set, val_set = data.split(cfg.train_split), data.split(cfg.val_split)
    for name, subset in ((cfg.train_split, train_set), (cfg.val_split, val_set)):
        if (subset.labels < 0).any():
            notes.append(f"{int((subset.labels < 0).sum())} unlabelled images of {name} left out")
    train_set, val_set = train_set.labelled(), val_set.labelled()
    if len(train_set) == 0 or len(val_set) == 0:
        raise DataError(f"{cfg.data}: no labelled images in {cfg.train_split} or {cfg.val_split}")
    mean, std = normalisation_stats(train_set.images)
    return Splits(train_set, val_set, notes, mean, std, data.format)
