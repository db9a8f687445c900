"""Class-folder datasets: `<root>/<split>/<emotion>/*.png|jpg` (any colour, depth or size up to
MAX_PIXELS), each image decoded with a bounded footprint and made 48x48 gray; cached like a CSV.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_models.core.constants import EMOTIONS, IMAGE_SIZE, MAX_PIXELS
from fer_models.datasets.cache import cached, folder_stamp
from fer_models.datasets.facedata import DataError, FaceData

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


# Folder names people use for the seven classes (FER2013 class folders, FER+ exports, RAF-DB-style trees).
_EMOTION_ALIASES = {
    **{name: i for i, name in enumerate(EMOTIONS)},
    **{str(i): i for i in range(len(EMOTIONS))},
    "anger": 0, "disgusted": 1, "fearful": 2, "scared": 2, "happiness": 3,
    "sadness": 4, "surprised": 5,
}


def read_class_folders(root, cache: bool = True) -> FaceData:
    """`<root>/<split>/<emotion>/*` or, for a single split, `<root>/<emotion>/*` (split = root's name).

    Decoding tens of thousands of image files takes a while, so the result is cached like a CSV's
    parse (`<root>.cache.npz` beside the folder), keyed by every file's name, size and time.
    """
    root = Path(root)
    data = cached(root, folder_stamp(root), _read_class_folders) if cache else _read_class_folders(root)
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
