"""FaceData, what every reader returns (uint8 faces, labels, splits, stable ids), its .npz form, and
DataError, the one error a reader raises, naming the file, the line and the problem.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_models.core.constants import IMAGE_SIZE
from fer_models.core.files import atomic_replace
from fer_models.core.guards import UntrustedFileError, npz_members


class DataError(ValueError):
    """A dataset that cannot be read as it is; the message names the file, the line and the problem."""


@dataclass
class FaceData:
    images: np.ndarray            # uint8, N x 1 x 48 x 48
    labels: np.ndarray            # int64, N; -1 where the image has no usable label
    splits: np.ndarray            # str, N
    ids: np.ndarray               # str, N; stable across loads (row number, or path in a folder tree)
    source: str = ""
    soft: np.ndarray | None = None  # float32, N x 7 label distribution (FER+ votes), NaN rows = none
    notes: list[str] = field(default_factory=list)
    format: str = ""                # kaggle | course | folders | npz

    def __len__(self) -> int:
        return len(self.labels)

    def split_sizes(self) -> dict[str, int]:
        names, counts = np.unique(self.splits, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts)}

    def select(self, mask: np.ndarray) -> "FaceData":
        return FaceData(self.images[mask], self.labels[mask], self.splits[mask], self.ids[mask],
                        self.source, None if self.soft is None else self.soft[mask], list(self.notes),
                        self.format)

    def split(self, name: str) -> "FaceData":
        mask = self.splits == name
        if not mask.any():
            raise DataError(f"{self.source}: split '{name}' is empty or absent; "
                            f"splits present: {self.split_sizes()}")
        return self.select(mask)

    def labelled(self) -> "FaceData":
        return self.select(self.labels >= 0)

    def save_npz(self, path, compressed: bool = True, extra: dict | None = None) -> None:
        arrays = dict(images=self.images, labels=self.labels, splits=self.splits.astype(str),
                      ids=self.ids.astype(str), format=np.array(self.format), **(extra or {}))
        if self.soft is not None:
            arrays["soft"] = self.soft
        save = np.savez_compressed if compressed else np.savez

        def write(tmp):
            with open(tmp, "wb") as f:
                save(f, **arrays)
        atomic_replace(path, write)


MAX_NPZ_BYTES = 4 << 30  # all FER2013 as uint8 is 83 MB: a FaceData .npz inflating past this is not one


def read_npz(path) -> FaceData:
    path = Path(path)
    try:
        npz_members(path, MAX_NPZ_BYTES)  # from the zip directory and the array headers, before any array
    except UntrustedFileError as err:
        raise DataError(str(err)) from None
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("images", "labels", "splits", "ids") if k not in z.files]
            if missing:
                raise DataError(f"{path}: not a FaceData .npz (missing arrays {', '.join(missing)})")
            data = FaceData(z["images"], z["labels"].astype(np.int64), z["splits"].astype(str),
                            z["ids"].astype(str), str(path), z["soft"] if "soft" in z.files else None,
                            format="npz")
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy and zipfile raise many kinds on a damaged file
        raise DataError(f"{path}: not a readable .npz file ({type(err).__name__})") from err
    return checked(data, path)


def checked(data: FaceData, path) -> FaceData:
    """The data if its arrays agree with each other and with FaceData's types; DataError naming the file
    otherwise (a .npz and the parse cache are both read back from disk: neither is trusted)."""
    if data.images.dtype != np.uint8 or data.images.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: images must be uint8 N x 1 x 48 x 48, found {data.images.dtype} "
                        f"{tuple(data.images.shape)}")
    n = len(data.images)
    for name, array in (("labels", data.labels), ("splits", data.splits), ("ids", data.ids)):
        if array.shape != (n,):
            raise DataError(f"{path}: {n:,} images but {name} of shape {array.shape}; each image needs one")
    if data.soft is not None and data.soft.shape != (n, 7):
        raise DataError(f"{path}: soft labels of shape {data.soft.shape}, not {n} x 7")
    if data.labels.dtype.kind not in "iu" or ((data.labels < -1) | (data.labels > 6)).any():
        raise DataError(f"{path}: labels must be 0..6 (or -1 for none)")
    return data
