"""Photos and folders of photos: every face in each, read by a run, one CSV row per face.

    fer-studio predict --run artifacts/runs/resnet10_fer photos/ portrait.jpg [--csv faces.csv]

Faces are found and cropped as on the Saliency page (fer_models.faces); folders are searched recursively for
image files. A file that cannot be read, or a photo with no face, is listed on stderr with the reason and
skipped: one bad file never stops the rest.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fer_models.core.arguments import OneLineParser
from fer_models.core.constants import EMOTIONS
from fer_models.faces.detect import DETECTORS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
COLUMNS = ["file", "face", "x", "y", "width", "height", *EMOTIONS, "label"]


def photo_paths(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files named or found (recursively, sorted) under the folders named; and (path, reason) for
    each name that is neither."""
    found, skipped = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            skipped.append((str(p), "no such file or folder"))
    return found, skipped


def predict_photos(model, meta: dict, paths, on_file=None, detector: str = "mtcnn"
                   ) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One row per face found (largest first within a photo), and the (file, reason) of each file skipped."""
    import torch

    from fer_models.datasets.augment import to_input
    from fer_models.explain.attributions import probabilities
    from fer_models.faces.decode import ImageError, read_image, to_gray
    from fer_models.faces.detect import detect_faces, searched
    from fer_models.faces.face import crop_face

    files, skipped = photo_paths(paths)
    rows = []
    norm = meta["normalisation"]
    for i, f in enumerate(files):
        if on_file is not None:
            on_file(i, len(files), f)
        try:
            rgb = read_image(f)
        except ImageError as err:
            skipped.append((str(f), str(err).removeprefix(str(f)).lstrip(": ")))
            continue
        gray = to_gray(rgb)
        faces = detect_faces(rgb, detector)
        if not faces:
            skipped.append((str(f), f"no face found ({searched(detector)})"))
            continue
        crops = np.stack([crop_face(gray, face) for face in faces])
        x = to_input(torch.as_tensor(crops[:, None]), norm["mean"], norm["std"])
        probs = probabilities(model, x.contiguous(memory_format=torch.channels_last))
        for k, (face, p) in enumerate(zip(faces, probs)):
            pts = face.corners()
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
            rows.append((str(f), k + 1, int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)),
                         *np.round(p, 5).tolist(), EMOTIONS[int(p.argmax())]))
    return pd.DataFrame(rows, columns=COLUMNS), skipped


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio predict",
                      description="Read the expression of every face in photos and folders of photos.")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("paths", nargs="+", help="photos and folders (searched recursively)")
    p.add_argument("--csv", help="write the table here (default: standard output)")
    p.add_argument("--detector", default="mtcnn", choices=list(DETECTORS), help="face detector")
    return p


def main(argv=None) -> int:
    from tqdm import tqdm

    from fer_models.core.files import atomic_replace
    from fer_models.runs.checkpoints import CheckpointError, load_model

    args = parser().parse_args(argv)
    try:
        model, meta = load_model(args.run)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bar = tqdm(unit="photo", desc="photos", dynamic_ncols=True, disable=None)

    def on_file(i, n, f):
        bar.total = n
        bar.n = i
        bar.refresh()

    table, skipped = predict_photos(model, meta, args.paths, on_file, args.detector)
    bar.close()
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if args.csv:
        atomic_replace(Path(args.csv), lambda tmp: table.to_csv(tmp, index=False))
        print(f"wrote {args.csv}: {len(table)} faces in {table['file'].nunique()} photos; "
              f"{len(skipped)} skipped", file=sys.stderr)
    else:
        table.to_csv(sys.stdout, index=False)
    return 0 if len(table) or not skipped else 1


if __name__ == "__main__":
    sys.exit(main())
