"""Evaluate a run on any split of any FER2013-format dataset and write eval/<split>/.

    fer-studio evaluate --run artifacts/runs/cnn3 --data fer2013.csv.gz --split PublicTest [--tta]

Writes eval/<split>/ (eval/<split>-tta/ with --tta): predictions.csv (id, true, pred, one
probability column per emotion), confusion.csv (rows true, columns predicted), metrics.json
(accuracy, per-class precision/recall/F1, macro F1, top-2 accuracy, expected calibration
error, NLL), and prints one JSON line with split, n, accuracy and macro_f1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from fer_models.core.arguments import OneLineParser
from fer_models.core.constants import EMOTIONS, PROGRESS
from fer_models.core.files import atomic_write_json, atomic_write_text, replace_folder
from fer_models.datasets.facedata import DataError
from fer_models.datasets.loading import load_faces
from fer_models.evaluation.scoring import classification_metrics, predict_proba
from fer_models.nets.precision import PRECISIONS, inference_precision
from fer_models.runs.checkpoints import CheckpointError, load_model
from fer_models.runs.folder import (
    CONFUSION_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    RunFolder,
    RunProblem,
    split_argument,
    valid_split,
)


def evaluate_run(run_dir, data_path, split: str, tta: bool = False, device: str = "cpu",
                 batch_size: int = 512, label_source: str = "fer2013", ferplus=None, precision: str = "auto",
                 progress=None) -> dict:
    """Score the run on one split and write its evaluation folder; `progress(done, total)` after each batch
    (done = 0 once the faces are read)."""
    run_dir = Path(run_dir)
    valid_split(split)  # it names a folder in the run: checked before anything is computed
    model, meta = load_model(run_dir, device=device)
    model.to(memory_format=torch.channels_last)
    norm = meta["normalisation"]
    data = load_faces(data_path, splits=[split], label_source=label_source, ferplus=ferplus)
    if progress is not None:
        progress(0, len(data))
    t0 = time.perf_counter()
    precision = inference_precision(device, precision)
    probs = predict_proba(model, data.images, norm["mean"], norm["std"], device, batch_size, tta, precision,
                          progress)
    seconds = time.perf_counter() - t0
    pred = probs.argmax(1)
    out_dir = RunFolder(run_dir).eval_dir(f"{split}-tta" if tta else split)
    table = pd.DataFrame({"id": data.ids, "true": data.labels, "pred": pred})
    for c, name in enumerate(EMOTIONS):
        table[f"p_{name}"] = probs[:, c].round(6)
    labelled = data.labels >= 0
    summary = {"split": split, "n": int(len(data)), "tta": tta, "run": str(run_dir), "arch": meta["arch"],
               "data": str(Path(data_path).resolve()), "label_source": label_source,
               "precision": precision, "seconds": round(seconds, 3), "notes": data.notes}
    confusion = None
    if labelled.any():
        metrics = classification_metrics(data.labels[labelled], probs[labelled])
        confusion = pd.DataFrame(metrics.pop("confusion"), index=list(EMOTIONS), columns=list(EMOTIONS))
        confusion.index.name = "true"
        summary.update(metrics, n_labelled=int(labelled.sum()))
    else:
        summary["notes"] = summary["notes"] + [f"split {split} has no labels: predictions only, no metrics"]

    def write(folder: Path) -> None:
        atomic_write_text(folder / PREDICTIONS_FILE, table.to_csv(index=False))
        if confusion is not None:
            atomic_write_text(folder / CONFUSION_FILE, confusion.to_csv())
        atomic_write_json(folder / METRICS_FILE, summary)
    # the three files appear together or not at all: a failure half-way left new predictions beside old metrics
    replace_folder(out_dir, write)
    return summary


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 65536:
        raise argparse.ArgumentTypeError(f"batch size must be 1 to 65536, not {value}")
    return value


def resolve_device(requested: str) -> str:
    """"auto" → a GPU if there is one, else the CPU; a named device that is not here → ValueError."""
    from fer_models.runs.settings import DEVICE_PATTERN

    if not DEVICE_PATTERN.fullmatch(requested):
        raise ValueError(f"--device {requested!r} is not auto, cpu, cuda or cuda:N")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {requested}: no such CUDA device here "
                             f"({torch.cuda.device_count()} visible); use --device cpu")
    return requested


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run folder with model.safetensors and meta.json")
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv/.csv.gz), class-folder tree or .npz")
    p.add_argument("--split", default="PublicTest", type=split_argument)
    p.add_argument("--tta", action="store_true", help="average with the mirrored face")
    p.add_argument("--label-source", default="fer2013", choices=["fer2013", "ferplus-majority"])
    p.add_argument("--ferplus", help="fer2013new.csv (default: beside --data)")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one) | cpu | cuda:N")
    p.add_argument("--batch-size", type=_batch_size, default=512)
    p.add_argument("--progress", action="store_true",
                   help=f"write '{PROGRESS}DONE TOTAL' lines to stderr as faces are scored")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto = bf16 autocast where the device computes bf16 natively, else fp32")
    return p


def _say_progress(done: int, total: int) -> None:
    print(f"{PROGRESS}{done} {total}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
        summary = evaluate_run(args.run, args.data, args.split, args.tta, device, args.batch_size,
                               args.label_source, args.ferplus, args.precision,
                               _say_progress if args.progress else None)
    except (DataError, CheckpointError, RunProblem, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only run folder: the evaluation it had is left as it was
        print(f"error: {args.run}: the evaluation cannot be written ({err.strerror or err}); the one there is "
              "unchanged", file=sys.stderr)
        return 2
    keys = ("split", "n", "accuracy", "macro_f1", "top2_accuracy", "ece", "tta", "precision", "seconds")
    line = {k: summary.get(k) for k in keys}
    print(json.dumps(line))
    return 0
