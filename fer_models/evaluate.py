"""Evaluate a run on any split of any FER2013-format dataset and write eval/<split>/.

    python -m fer_models.evaluate --run artifacts/runs/cnn3 --data fer2013.csv.gz --split PublicTest [--tta]

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
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .atomic import atomic_write_json, atomic_write_text
from .checkpoints import CheckpointError, load_model
from .data import EMOTIONS, DataError, load_faces, to_input


def resolve_precision(requested: str, device: torch.device) -> str:
    """"auto": bf16 where the hardware computes it natively (CUDA, CPUs with AVX512-BF16/AMX), else fp32.

    On a CPU without native bf16 (AVX2 only), autocast emulates it and a cnn3 training step runs
    ~10x slower than fp32 (bench/train_throughput.py: 8 vs 95 img/s).
    """
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16"
    try:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # a private probe; without it, assume no native bf16
        native = False
    return "bf16" if native else "fp32"


def autocast_for(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def predict_proba(model, images_uint8, mean: float, std: float, device="cpu", batch_size: int = 512,
                  tta: bool = False, precision: str = "fp32") -> np.ndarray:
    """Class probabilities (N x 7, float32) for uint8 N x 1 x 48 x 48 images.

    tta averages the probabilities of the face and its mirror image (expressions are
    left-right symmetric, and training used random flips).
    """
    device = torch.device(device)
    model.eval()
    images = torch.as_tensor(images_uint8)
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size].to(device), mean, std)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, precision):
            p = model(x).float().softmax(1)
            if tta:
                p = (p + model(x.flip(3)).float().softmax(1)) / 2
        out.append(p.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(EMOTIONS)), np.float32)


def confusion_counts(true: np.ndarray, pred: np.ndarray, n_classes: int = len(EMOTIONS)) -> np.ndarray:
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_metrics(true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict:
    """Metrics of labelled predictions; `true` holds class indices 0..6."""
    n_classes = probs.shape[1]
    pred = probs.argmax(1)
    cm = confusion_counts(true, pred, n_classes)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0  # macro F1 over the classes the split contains
    top2 = np.argsort(-probs, axis=1)[:, :2]
    confidence = probs.max(1)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    correct = pred == true
    ece = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
              for b in range(n_bins) if (bins == b).any())
    return {
        "n": int(len(true)),
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1[present].mean()),
        "top2_accuracy": float((top2 == true[:, None]).any(1).mean()),
        "ece": float(ece),
        "nll": float(-np.log(np.clip(probs[np.arange(len(true)), true], 1e-12, None)).mean()),
        "per_class": {EMOTIONS[c] if n_classes == len(EMOTIONS) else str(c): {
            "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
            "support": int(support[c])} for c in range(n_classes)},
        "confusion": cm.tolist(),
    }


def evaluate_run(run_dir, data_path, split: str, tta: bool = False, device: str = "cpu",
                 batch_size: int = 512, label_source: str = "fer2013", ferplus=None) -> dict:
    run_dir = Path(run_dir)
    model, meta = load_model(run_dir, device=device)
    model.to(memory_format=torch.channels_last)
    norm = meta["normalisation"]
    data = load_faces(data_path, splits=[split], label_source=label_source, ferplus=ferplus)
    t0 = time.perf_counter()
    probs = predict_proba(model, data.images, norm["mean"], norm["std"], device, batch_size, tta)
    seconds = time.perf_counter() - t0
    pred = probs.argmax(1)
    out_dir = run_dir / "eval" / (f"{split}-tta" if tta else split)
    table = pd.DataFrame({"id": data.ids, "true": data.labels, "pred": pred})
    for c, name in enumerate(EMOTIONS):
        table[f"p_{name}"] = probs[:, c].round(6)
    atomic_write_text(out_dir / "predictions.csv", table.to_csv(index=False))
    labelled = data.labels >= 0
    summary = {"split": split, "n": int(len(data)), "tta": tta, "run": str(run_dir), "arch": meta["arch"],
               "data": str(Path(data_path).resolve()), "label_source": label_source,
               "seconds": round(seconds, 3), "notes": data.notes}
    if labelled.any():
        metrics = classification_metrics(data.labels[labelled], probs[labelled])
        cm = pd.DataFrame(metrics.pop("confusion"), index=list(EMOTIONS), columns=list(EMOTIONS))
        cm.index.name = "true"
        atomic_write_text(out_dir / "confusion.csv", cm.to_csv())
        summary.update(metrics, n_labelled=int(labelled.sum()))
    else:
        summary["notes"] = summary["notes"] + [f"split {split} has no labels: predictions only, no metrics"]
    atomic_write_json(out_dir / "metrics.json", summary)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fer_models.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run folder with model.safetensors and meta.json")
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv/.csv.gz), class-folder tree or .npz")
    p.add_argument("--split", default="PublicTest")
    p.add_argument("--tta", action="store_true", help="average with the mirrored face")
    p.add_argument("--label-source", default="fer2013", choices=["fer2013", "ferplus-majority"])
    p.add_argument("--ferplus", help="fer2013new.csv (default: beside --data)")
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one) | cpu | cuda:N")
    p.add_argument("--batch-size", type=int, default=512)
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        summary = evaluate_run(args.run, args.data, args.split, args.tta, args.device, args.batch_size,
                               args.label_source, args.ferplus)
    except (DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    line = {k: summary.get(k) for k in ("split", "n", "accuracy", "macro_f1", "top2_accuracy", "ece", "tta", "seconds")}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
