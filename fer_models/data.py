"""FER2013 readers and on-device batch augmentation.

    from fer_models.data import load_faces
    faces = load_faces("fer2013.csv.gz", splits=["Training", "PublicTest"])
    faces.images  # uint8 N x 1 x 48 x 48;  faces.labels  # int64, -1 = no label

One entry point, `load_faces(path, ...)`, reads every format the project accepts:
- the Kaggle `fer2013.csv` (`emotion,pixels,Usage`), plain or gzip; parsed once, then cached;
- the course variant: `label,feature` (labelled) or `id,feature` (unlabelled);
- a class-folder tree `<root>/<split>/<emotion>/*.png|jpg` (any size or colour);
- a FaceData `.npz` (the parse cache, or the bundled PublicTest faces);
and can relabel a Kaggle CSV with the FER+ votes (`fer2013new.csv`), see `ferplus_labels`.
Bad input raises DataError naming the file, the line and the problem; nothing is dropped
silently: what a reader excludes is listed in `FaceData.notes`.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np

from .atomic import atomic_replace
from .constants import EMOTIONS, IMAGE_SIZE, LABEL_SOURCES, MAX_PIXELS

if TYPE_CHECKING:
    import torch

__all__ = ["EMOTIONS", "IMAGE_SIZE", "LABEL_SOURCES", "AugmentConfig", "DataError", "FaceData", "augment_batch",
           "load_faces", "normalisation_stats", "read_face_image", "to_input"]

N_PIXELS = IMAGE_SIZE * IMAGE_SIZE
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
_CACHE_VERSION = 2

# Folder names people use for the seven classes (FER2013 class folders, FER+ exports, RAF-DB-style trees).
_EMOTION_ALIASES = {
    **{name: i for i, name in enumerate(EMOTIONS)},
    **{str(i): i for i in range(len(EMOTIONS))},
    "anger": 0, "disgusted": 1, "fearful": 2, "scared": 2, "happiness": 3,
    "sadness": 4, "surprised": 5,
}


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


def load_faces(path, splits=None, label_source: str = "fer2013", ferplus=None,
               cache: bool = True, split_name: str | None = None) -> FaceData:
    """Read any supported dataset; keep only `splits` (a list of names) when given.

    label_source: "fer2013" (the file's labels), "ferplus-majority" or "ferplus-soft" (FER+
    votes from `ferplus`, by default fer2013new.csv beside a Kaggle CSV).
    split_name: the split of a course-variant CSV (default Training if labelled, else Test).
    """
    path = Path(path)
    if label_source not in LABEL_SOURCES:
        raise DataError(f"unknown label source '{label_source}'; choose one of {', '.join(LABEL_SOURCES)}")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
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


# ---------------------------------------------------------------- CSV (Kaggle and course variant)

def read_csv(path, cache: bool = True, split_name: str | None = None) -> FaceData:
    path = Path(path)
    data = _cached(path, _source_stamp(path), _parse_csv) if cache else _parse_csv(path)
    data.source = str(path)
    if split_name and data.format == "course":
        data.splits = np.full(len(data), split_name)
    return data


def _parse_csv(path: Path) -> FaceData:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    bad_rows = []

    def on_invalid(row):
        bad_rows.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={
                c: pa.string() for c in ("emotion", "pixels", "Usage", "label", "feature", "id")}),
        )
    except pa.ArrowCancelled:  # pyarrow takes Ctrl-C over while it parses: pass it on as the interrupt it is
        raise KeyboardInterrupt from None
    except (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from err
    if bad_rows:
        row = bad_rows[0]
        line = row.number or _line_of(path, row.text)  # pyarrow knows the number only when parsing serially
        raise DataError(f"{path}: line {line}: expected {row.expected_columns} comma-separated "
                        f"columns, found {row.actual_columns}")
    columns = table.column_names
    if "pixels" in columns or "emotion" in columns:
        pixel_col, label_col, kind = "pixels", "emotion", "kaggle"
        needed = ["emotion", "pixels", "Usage"]
    elif "feature" in columns:
        pixel_col, kind = "feature", "course"
        label_col = "label" if "label" in columns else "id"
        needed = ["feature", label_col] if ("label" in columns or "id" in columns) else ["label or id", "feature"]
    else:
        needed = ["emotion", "pixels", "Usage"]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}. "
                        "Expected the Kaggle FER2013 columns emotion,pixels,Usage or the course "
                        "columns label,feature (labelled) / id,feature (unlabelled)")
    n = table.num_rows
    images = _parse_pixels(path, table.column(pixel_col))
    if kind == "kaggle":
        labels = _parse_labels(path, table.column("emotion").to_pylist())
        splits = np.array(table.column("Usage").to_pylist(), dtype=object)
        empty = [i for i, s in enumerate(splits) if not s]
        if empty:
            raise DataError(f"{path}: line {empty[0] + 2}: empty Usage (split name)")
        ids = np.arange(n).astype(str)
    elif label_col == "label":
        labels = _parse_labels(path, table.column("label").to_pylist())
        splits = np.full(n, "Training", dtype=object)
        ids = np.arange(n).astype(str)
    else:
        labels = np.full(n, -1, dtype=np.int64)
        splits = np.full(n, "Test", dtype=object)
        ids = np.array(table.column("id").to_pylist(), dtype=object).astype(str)
    return FaceData(images, labels, splits.astype(str), ids, str(path), format=kind)


def _line_of(path: Path, text: str) -> int | str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip("\r\n") == text:
                return number
    return "?"


def _parse_labels(path: Path, values: list) -> np.ndarray:
    labels = np.empty(len(values), dtype=np.int64)
    valid = {str(i): i for i in range(len(EMOTIONS))}
    for i, v in enumerate(values):
        label = valid.get((v or "").strip())
        if label is None:
            raise DataError(f"{path}: line {i + 2}: unknown label {v!r}; labels are 0..6 "
                            f"({', '.join(f'{k} {e}' for k, e in enumerate(EMOTIONS))})")
        labels[i] = label
    return labels


def _parse_pixels(path: Path, column) -> np.ndarray:
    """All rows' pixel strings to uint8 N x 1 x 48 x 48.

    The fast path hands the whole column to one C parse (np.fromstring), several times faster than
    per-row parsing (bench/data_load.py). Only if the result does not add up
    do we walk the rows one by one, to name the first bad line.
    """
    import pyarrow.compute as pc

    column = column.combine_chunks()
    n = len(column)
    if n == 0:
        return np.zeros((0, 1, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    if column.null_count == 0:
        _, offset_buf, data_buf = column.buffers()
        offsets = np.frombuffer(offset_buf, np.int32)[column.offset:column.offset + n + 1].tolist()
        spaces = pc.count_substring(column, " ").to_numpy(zero_copy_only=False)
        if (spaces == N_PIXELS - 1).all() and all(a < b for a, b in zip(offsets, offsets[1:])):
            text = memoryview(data_buf)
            joined = b" ".join(text[a:b] for a, b in zip(offsets, offsets[1:]))  # one copy, no big temporaries
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # older numpy warns where 2.x raises
                    values = np.fromstring(joined, dtype=np.int32, sep=" ")
            except ValueError:  # a token that is not an integer; the row walk below names it
                values = np.zeros(0, np.int32)
            if values.size == n * N_PIXELS and values.min() >= 0 and values.max() <= 255:
                return values.astype(np.uint8).reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)
    # the slow path names the first bad line, and accepts what the fast one refuses but is fine (extra spaces)
    rows = [_parse_pixel_row(path, i + 2, row) for i, row in enumerate(column.to_pylist())]
    return np.stack(rows).reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)


def _parse_pixel_row(path: Path, line: int, row: str | None) -> np.ndarray:
    tokens = (row or "").split()
    if len(tokens) != N_PIXELS:
        raise DataError(f"{path}: line {line}: expected {N_PIXELS} pixel values (48x48), found {len(tokens)}")
    for k, tok in enumerate(tokens):
        if not (tok.isascii() and tok.isdigit()):  # '²' is a Unicode digit that int() refuses
            raise DataError(f"{path}: line {line}: pixel {k + 1} is {tok!r}, not an integer 0..255")
        if int(tok) > 255:
            raise DataError(f"{path}: line {line}: pixel {k + 1} is {tok}, outside 0..255")
    return np.array(tokens, dtype=np.uint8)


# ---------------------------------------------------------------- parse cache

def _source_stamp(path: Path) -> str:
    st = path.stat()
    return f"v{_CACHE_VERSION}:{st.st_size}:{st.st_mtime_ns}"


def _folder_stamp(root: Path) -> str:
    """Changes when any file under root is added, removed, resized or touched."""
    digest = hashlib.sha1()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            st = f.stat()
            digest.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return f"v{_CACHE_VERSION}:{digest.hexdigest()}"


def _cached(path: Path, stamp: str, parse) -> FaceData:
    """parse(path), or its result saved earlier under the same stamp."""
    cache_path = _cache_path(path)
    data = _read_cache(cache_path, stamp)
    if data is None:
        data = parse(path)
        try:  # uncompressed: loading it is then a plain read
            data.save_npz(cache_path, compressed=False,
                          extra={"stamp": np.array(stamp), "notes": np.array(data.notes, dtype=str)})
        except OSError as err:  # a read-only place costs speed, not correctness
            warnings.warn(f"could not write the parse cache {cache_path}: {err}", stacklevel=2)
    return data


def _cache_path(path: Path) -> Path:
    """Next to the source when that folder is writable; else a per-user cache folder.

    A folder without write bits counts as read-only even for root, who could write there anyway:
    someone made it read-only on purpose (a shared dataset folder).
    """
    beside = path.with_name(path.name + ".cache.npz")
    if os.access(path.parent, os.W_OK) and path.parent.stat().st_mode & 0o222:
        return beside
    root = Path(os.environ.get("FER_STUDIO_CACHE", Path.home() / ".cache" / "fer_studio"))
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return root / f"{path.name}.{digest}.cache.npz"


def _read_cache(cache_path: Path, stamp: str) -> FaceData | None:
    if not cache_path.exists():
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as z:
            if str(z["stamp"]) != stamp:
                return None
            return FaceData(z["images"], z["labels"], z["splits"], z["ids"], "",
                            z["soft"] if "soft" in z.files else None, z["notes"].tolist(), str(z["format"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # a damaged cache is rebuilt, never trusted
        return None


def read_npz(path) -> FaceData:
    path = Path(path)
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
    except Exception as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    if data.images.dtype != np.uint8 or data.images.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: images must be uint8 N x 1 x 48 x 48, found {data.images.dtype} "
                        f"{tuple(data.images.shape)}")
    return data


# ---------------------------------------------------------------- class folders

def read_class_folders(root, cache: bool = True) -> FaceData:
    """`<root>/<split>/<emotion>/*` or, for a single split, `<root>/<emotion>/*` (split = root's name).

    Decoding tens of thousands of image files takes a while, so the result is cached like a CSV's
    parse (`<root>.cache.npz` beside the folder), keyed by every file's name, size and time.
    """
    root = Path(root)
    data = _cached(root, _folder_stamp(root), _read_class_folders) if cache else _read_class_folders(root)
    data.source = str(root)
    return data


def _read_class_folders(root: Path) -> FaceData:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError(f"{root}: no sub-folders; expected <root>/<split>/<emotion>/*.png")
    if all(p.name.lower() in _EMOTION_ALIASES for p in subdirs):
        split_dirs = [root]
    else:
        split_dirs = subdirs
    images, labels, splits, ids, skipped = [], [], [], [], []
    for split_dir in split_dirs:
        split = split_dir.name
        for emotion_dir in sorted(p for p in split_dir.iterdir() if not p.name.startswith(".")):
            if not emotion_dir.is_dir():
                skipped.append(emotion_dir)
                continue
            label = _EMOTION_ALIASES.get(emotion_dir.name.lower())
            if label is None:
                raise DataError(f"{emotion_dir}: folder name is not an emotion; expected one of "
                                f"{', '.join(EMOTIONS)} (or 0..6) inside each split folder")
            for file in sorted(emotion_dir.iterdir()):
                if file.name.startswith("."):
                    continue
                if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():
                    skipped.append(file)
                    continue
                images.append(read_face_image(file))
                labels.append(label)
                splits.append(split)
                ids.append(file.relative_to(root).as_posix())
    notes = []
    if skipped:
        notes.append(f"skipped {len(skipped)} entries that are not images in class folders, "
                     f"e.g. {skipped[0]}")
    if not images:
        raise DataError(f"{root}: no images found under <split>/<emotion>/ folders")
    return FaceData(np.stack(images), np.array(labels, np.int64), np.array(splits, str),
                    np.array(ids, str), str(root), None, notes, "folders")


def read_face_image(file) -> np.ndarray:
    """Any image file (any colour mode, EXIF orientation, up to MAX_PIXELS) to uint8 1 x 48 x 48 gray,
    decoded with a bounded footprint: a JPEG is decoded at a reduced scale, a large image is reduced
    before its pixels are converted."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:  # from the header, before decoding: a decompression bomb stops here
                raise DataError(f"{file}: {w}×{h} = {w * h / 1e6:.0f} megapixels, over the limit of "
                                f"{MAX_PIXELS / 1e6:.0f}; scale it down (faces are used at 48×48)")
            img.draft("L", (IMAGE_SIZE * 4, IMAGE_SIZE * 4))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit: area-resized as they are
                import cv2

                arr = np.asarray(img)
                small = cv2.resize(arr.astype(np.float32) if arr.dtype == np.int32 else arr, (IMAGE_SIZE, IMAGE_SIZE),
                                   interpolation=cv2.INTER_AREA).astype(np.float32)
                return (small * (255.0 / max(float(small.max()), 1.0)) + 0.5).astype(np.uint8)[None]
            factor = max(1, min(img.size) // (IMAGE_SIZE * 4))
            if factor > 1:  # shrink the decoded pixels before any conversion copies them
                img = img.reduce(factor)
            gray = img.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX
                                           if min(img.size) >= IMAGE_SIZE else Image.Resampling.BICUBIC)
            return np.asarray(gray, dtype=np.uint8)[None]
    except DataError:
        raise
    except Image.DecompressionBombError as err:  # PIL's own limit, far above ours, refused before the header check
        raise DataError(f"{file}: over the limit of {MAX_PIXELS / 1e6:.0f} megapixels ({err})") from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{file}: not a readable image ({err})") from err


# ---------------------------------------------------------------- FER+ votes

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


# ---------------------------------------------------------------- tensors and augmentation
# torch is imported inside these functions: the readers above (and the dashboard's run list,
# which only needs EMOTIONS) then load without paying for torch's import.

def normalisation_stats(images: np.ndarray) -> tuple[float, float]:
    """Mean and std of the pixels scaled to [0, 1]; stored with the checkpoint."""
    x = images.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def to_input(images_uint8: "torch.Tensor", mean: float, std: float) -> "torch.Tensor":
    """uint8 N x 1 x 48 x 48 (any device) to the float input the models expect."""
    return (images_uint8.float() / 255.0 - mean) / std


@dataclass
class AugmentConfig:
    crop_pad: int = 4                 # random crop with padding: a shift of up to this many pixels
    resized_crop: float = 0.0         # >0: random resized crop, smallest kept area fraction (replaces crop_pad)
    flip: bool = True
    rotate: float = 10.0              # degrees, uniform in [-rotate, rotate]
    scale: float = 0.1                # zoom factor uniform in [1 - scale, 1 + scale]
    erase: float = 0.5                # probability of random erasing per image
    erase_area: tuple = (0.02, 0.25)  # erased fraction of the image

    @property
    def geometric(self) -> bool:
        return bool(self.crop_pad or self.resized_crop or self.flip or self.rotate or self.scale)


def augment_batch(x: "torch.Tensor", cfg: AugmentConfig, generator: "torch.Generator") -> "torch.Tensor":
    """Augment a normalised float batch N x C x H x W where it lives (CPU or GPU), in two vectorised passes.

    All geometric changes (crop/shift, resized crop, flip, rotation, scale) compose into one affine
    matrix per image, so the batch is resampled once by grid_sample; pixels that come from outside
    the image are 0, which is the dataset mean after normalisation (the usual zero padding).
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype

    def uniform(lo, hi, size=(n,)):
        return torch.rand(size, generator=generator, device=dev) * (hi - lo) + lo

    if cfg.geometric:
        angle = uniform(-cfg.rotate, cfg.rotate) * math.pi / 180
        zoom = uniform(1 - cfg.scale, 1 + cfg.scale)
        sx = sy = 1 / zoom
        if cfg.resized_crop > 0:
            area = uniform(cfg.resized_crop, 1.0)
            log_ratio = uniform(math.log(3 / 4), math.log(4 / 3))
            sx = sx * torch.sqrt(area * log_ratio.exp()).clamp(max=1)
            sy = sy * torch.sqrt(area / log_ratio.exp()).clamp(max=1)
            tx = uniform(-1, 1) * (1 - sx).clamp(min=0)
            ty = uniform(-1, 1) * (1 - sy).clamp(min=0)
        else:
            # integer pixel shifts, as a crop from a padded image; 2/w is one pixel in grid units
            def shift(size):
                return torch.randint(-cfg.crop_pad, cfg.crop_pad + 1, (n,), generator=generator,
                                                           device=dev).float() * 2 / size
            tx, ty = shift(w), shift(h)
        flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n, device=dev)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([
            torch.stack([cos * sx * flip, -sin * sy, tx], dim=1),
            torch.stack([sin * sx * flip, cos * sy, ty], dim=1),
        ], dim=1).to(dt)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.erase > 0:
        area = uniform(*cfg.erase_area) * h * w
        log_ratio = uniform(math.log(0.3), math.log(1 / 0.3))
        eh = torch.sqrt(area * log_ratio.exp()).clamp(1, h)
        ew = torch.sqrt(area / log_ratio.exp()).clamp(1, w)
        top = uniform(0, 1) * (h - eh)
        left = uniform(0, 1) * (w - ew)
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        box = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1)) &
               (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
        box &= (uniform(0, 1) < cfg.erase).view(n, 1, 1)
        x = x.masked_fill(box.unsqueeze(1), 0.0)
    return x
