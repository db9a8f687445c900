"""Class-folder datasets: `<root>/<split>/<emotion>/*.png|jpg` (any colour, depth or size up to
MAX_PIXELS), each image decoded with a bounded footprint and made 48x48 gray; cached like a CSV.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from fer_models.core.constants import EMOTIONS, IMAGE_SIZE, MAX_PIXELS
from fer_models.datasets.cache import cached, files_stamp
from fer_models.datasets.facedata import DataError, FaceData

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


# Folder names people use for the seven classes (FER2013 class folders, FER+ exports, RAF-DB-style trees).
_EMOTION_ALIASES = {
    **{name: i for i, name in enumerate(EMOTIONS)},
    **{str(i): i for i in range(len(EMOTIONS))},
    "anger": 0, "disgusted": 1, "fearful": 2, "scared": 2, "happiness": 3,
    "sadness": 4, "surprised": 5,
}


# a class-folder tree with more entries than this is not a face dataset someone meant (FER2013 has 35,887 faces)
MAX_FOLDER_ENTRIES = 2_000_000


def read_class_folders(root, cache: bool = True) -> FaceData:
    """`<root>/<split>/<emotion>/*` or, for a single split, `<root>/<emotion>/*` (split = root's name).

    Decoding tens of thousands of image files takes a while, so the result is cached like a CSV's
    parse (`<root>.cache.npz` beside the folder), keyed by every image file's name, size and time.
    """
    root = Path(root)
    layout = class_folder_layout(root)
    files = [file for _, _, file in layout.images]

    def parse(_):
        return _read_images(root, layout)
    data = cached(root, files_stamp(root, files), parse) if cache else parse(root)
    data.source = str(root)
    return data


def looks_like_class_folders(root: Path, peek: int = 256) -> bool:
    """Whether a folder is laid out as <root>/<emotion>/ or <root>/<split>/<emotion>/: a level whose sub-folders
    (two or more) are all emotions, judged from at most `peek` entries per level. A recorded data path of "/"
    is answered at once, without walking the disk (and /proc's numbered folders are no emotions: "0".."6"
    are names a class folder may have, but never beside "acpi")."""
    def sub_folders(folder: Path) -> list[Path]:
        return [p for p in itertools.islice(folder.iterdir(), peek) if not p.name.startswith(".") and p.is_dir()]

    def emotion_level(folder: Path) -> bool:
        names = [p.name.lower() for p in sub_folders(folder)]
        return len(names) >= 2 and all(n in _EMOTION_ALIASES for n in names)
    try:
        return emotion_level(root) or any(emotion_level(p) for p in sub_folders(root))
    except OSError:
        return False


class Layout:
    def __init__(self):
        self.images: list[tuple[str, int, Path]] = []  # (split, label, file)
        self.skipped: list[Path] = []


def class_folder_layout(root: Path) -> Layout:
    """Every image file of the tree with its split and label, found by walking exactly the three levels a
    class-folder tree has (never the whole disk: a recorded data path of "/" is refused at its first level),
    at most MAX_FOLDER_ENTRIES entries."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise DataError(f"{root}: no sub-folders; expected <root>/<split>/<emotion>/*.png")
    split_dirs = [root] if all(p.name.lower() in _EMOTION_ALIASES for p in subdirs) else subdirs
    layout, seen = Layout(), 0
    for split_dir in split_dirs:
        for emotion_dir in sorted(p for p in split_dir.iterdir() if not p.name.startswith(".")):
            if not emotion_dir.is_dir():
                layout.skipped.append(emotion_dir)
                continue
            label = _EMOTION_ALIASES.get(emotion_dir.name.lower())
            if label is None:
                raise DataError(f"{emotion_dir}: folder name is not an emotion; expected one of "
                                f"{', '.join(EMOTIONS)} (or 0..6) inside each split folder")
            for file in sorted(emotion_dir.iterdir()):
                seen += 1
                if seen > MAX_FOLDER_ENTRIES:
                    raise DataError(f"{root}: more than {MAX_FOLDER_ENTRIES:,} entries; not a face dataset")
                if file.name.startswith("."):
                    continue
                if file.suffix.lower() not in IMAGE_SUFFIXES or not file.is_file():  # a pipe is not a file
                    layout.skipped.append(file)
                    continue
                layout.images.append((split_dir.name, label, file))
    return layout


def _read_images(root: Path, layout: Layout) -> FaceData:
    if not layout.images:
        raise DataError(f"{root}: no images found under <split>/<emotion>/ folders")
    notes = []
    if layout.skipped:
        notes.append(f"skipped {len(layout.skipped)} entries that are not images in class folders, "
                     f"e.g. {layout.skipped[0]}")
    return FaceData(np.stack([read_face_image(file) for _, _, file in layout.images]),
                    np.array([label for _, label, _ in layout.images], np.int64),
                    np.array([split for split, _, _ in layout.images], str),
                    np.array([file.relative_to(root).as_posix() for _, _, file in layout.images], str),
                    str(root), None, notes, "folders")


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
