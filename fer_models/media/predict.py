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
from fer_models.core.guards import file_kind
from fer_models.faces.detect import DETECTORS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
# a file that yields no face is a row too: face 0, no box, and why in `error`; a face's row has no error
COLUMNS = ["file", "face", "x", "y", "width", "height", *EMOTIONS, "label", "error"]


def photo_paths(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    """The image files named or found (recursively, sorted) under the folders named; and (path, reason) for
    each name that is neither."""
    found, skipped = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        elif p.exists():  # a pipe would block the read, a device never end it
            skipped.append((str(p), f"is {file_kind(p.stat().st_mode)}, not a photo or a folder"))
        else:
            skipped.append((str(p), "is a link to nothing" if p.is_symlink() else "no such file or folder"))
    return found, skipped


def predict_photos(model, meta: dict, paths, on_file=None, detector: str = "mtcnn", on_row=None
                   ) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One row per face found (largest first within a photo), and the (file, reason) of each file skipped, which
    is also a row of its own (face 0, the reason in `error`): one bad file never loses the others' rows.
    `on_row(row)` hears each row as it is made (the CLI writes it at once)."""
    files, skipped = photo_paths(paths)
    rows = []

    def add(row):
        rows.append(row)
        if on_row is not None:
            on_row(row)

    def skip(path, reason):
        skipped.append((str(path), reason))
        add((str(path), 0, None, None, None, None, *[None] * len(EMOTIONS), "", reason))

    for path, reason in list(skipped):
        add((path, 0, None, None, None, None, *[None] * len(EMOTIONS), "", reason))
    for i, f in enumerate(files):
        if on_file is not None:
            on_file(i, len(files), f)
        try:
            found = _faces_of(model, meta, f, detector)
        except Exception as err:  # noqa: BLE001 - an image that breaks a decoder or detector is this file's row
            skip(f, _reason(err, f))
            continue
        if isinstance(found, str):
            skip(f, found)
            continue
        for row in found:
            add(row)
    return pd.DataFrame(rows, columns=COLUMNS), skipped


def _reason(err: Exception, path: Path) -> str:
    from fer_models.faces.decode import ImageError

    text = str(err).removeprefix(str(path)).lstrip(": ")
    return text if isinstance(err, ImageError) else f"{type(err).__name__}: {text[:160]}"


def _faces_of(model, meta: dict, path: Path, detector: str):
    """The rows of one photo's faces, or why there are none (a string)."""
    import torch

    from fer_models.datasets.augment import to_input
    from fer_models.explain.attributions import probabilities
    from fer_models.faces.decode import read_image, to_gray
    from fer_models.faces.detect import detect_faces, searched
    from fer_models.faces.face import crop_face

    rgb = read_image(path)
    faces = detect_faces(rgb, detector)
    if not faces:
        return f"no face found ({searched(detector)})"
    gray = to_gray(rgb)
    crops = np.stack([crop_face(gray, face) for face in faces])
    norm = meta["normalisation"]
    x = to_input(torch.as_tensor(crops[:, None]), norm["mean"], norm["std"])
    probs = probabilities(model, x.contiguous(memory_format=torch.channels_last))
    rows = []
    for k, (face, p) in enumerate(zip(faces, probs)):
        pts = face.corners()
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        rows.append((str(path), k + 1, int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)),
                     *np.round(p, 5).tolist(), EMOTIONS[int(p.argmax())], ""))
    return rows


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio predict",
                      description="Read the expression of every face in photos and folders of photos.")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("paths", nargs="+", help="photos and folders (searched recursively)")
    p.add_argument("--csv", help="write the table here (default: standard output)")
    p.add_argument("--detector", default="mtcnn", choices=list(DETECTORS), help="face detector")
    return p


def main(argv=None) -> int:
    import csv as csv_module

    from tqdm import tqdm

    from fer_models.core.files import OutputError, checked_output, partial_beside
    from fer_models.runs.checkpoints import CheckpointError, load_model

    args = parser().parse_args(argv)
    try:
        target = checked_output(args.csv, "--csv", keep=[(f, "an input photo") for f in photo_paths(args.paths)[0]]
                                ) if args.csv else None
        model, meta = load_model(args.run)
    except (OutputError, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # rows are written as they are made, beside the target, and renamed into place at the end: a crash or
    # Ctrl-C half-way leaves every row done so far, with a last row that says where and why it stopped
    try:
        partial = partial_beside(target) if target is not None else None
        out = open(partial, "w", newline="") if partial is not None else sys.stdout
    except OSError as err:
        print(f"error: --csv {target}: cannot be written ({err.strerror or err})", file=sys.stderr)
        return 2
    bar = tqdm(unit="photo", desc="photos", dynamic_ncols=True, disable=None)

    def on_file(i, n, f):
        bar.total = n
        bar.n = i
        bar.refresh()

    writer = csv_module.writer(out)

    def write(row):
        try:
            writer.writerow(row)
            out.flush()
        except OSError as err:  # a full disk: told apart from a photo's failure, which is that photo's row
            raise _CannotWrite(err) from err

    stopped = failed = None
    try:
        write(COLUMNS)
        table, skipped = predict_photos(model, meta, args.paths, on_file, args.detector, on_row=write)
    except _CannotWrite as err:
        failed = err.args[0]
    except (KeyboardInterrupt, Exception) as err:  # noqa: BLE001 - said in the file and on stderr
        stopped = f"stopped before the end ({type(err).__name__}: {str(err)[:160]})"
        table, skipped = None, []
        try:
            write(["(stopped)", 0, *[""] * (len(COLUMNS) - 3), stopped])
        except _CannotWrite as cannot:
            failed = cannot.args[0]
    finally:
        bar.close()
        if partial is not None:
            failed = _close(out, partial, target, failed)
    if failed is not None:
        where = f"--csv {target}: cannot be written" if target else "the standard output cannot be written"
        print(f"error: {where} ({failed.strerror or failed}); nothing was saved there", file=sys.stderr)
        return 2
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if stopped:
        print(f"error: {stopped}; the rows made so far are in {target or 'the output above'}", file=sys.stderr)
        return 1
    faces = table[table["face"] > 0]
    if target is not None:
        print(f"wrote {target}: {len(faces)} faces in {faces['file'].nunique()} photos; {len(skipped)} skipped",
              file=sys.stderr)
    return 0 if len(faces) or not skipped else 1


class _CannotWrite(Exception):
    """The CSV could not be written (a full disk): no photo's fault, so it ends the command, not one row."""


def _close(out, partial: Path, target: Path, failed: OSError | None) -> OSError | None:
    """Close the rows written beside the target and rename them into place; on a failure to write them, remove
    them instead, so what was at the target stays as it was. The failure, if any."""
    try:
        out.close()
        if failed is None:
            partial.replace(target)
    except OSError as err:
        failed = failed or err
    if failed is not None:
        partial.unlink(missing_ok=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
