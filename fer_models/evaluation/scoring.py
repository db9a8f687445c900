"""Class probabilities of a batch of faces and the metrics computed from them: accuracy, per-class
precision/recall/F1, macro F1, top-2 accuracy, expected calibration error, NLL and the confusion counts.

    probs = predict_proba(model, faces.images, mean, std, tta=True)    # N x 7, float32
    metrics = classification_metrics(faces.labels, probs)
"""
from __future__ import annotations

import numpy as np
import torch

from fer_models.core.constants import EMOTIONS
from fer_models.datasets.augment import to_input
from fer_models.nets.precision import autocast_for, inference_precision


@torch.no_grad()
def predict_proba(model, images_uint8, mean: float, std: float, device="cpu", batch_size: int = 512,
                  tta: bool = False, precision: str = "auto", progress=None) -> np.ndarray:
    """Class probabilities (N x 7, float32) for uint8 N x 1 x 48 x 48 images; `precision` as in
    precision.inference_precision.

    tta averages the probabilities of the face and its mirror image (expressions are
    left-right symmetric, and training used random flips). `progress(done, total)` is called after each batch.
    """
    device = torch.device(device)
    precision = inference_precision(device, precision)
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
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return torch.cat(out).numpy() if out else np.zeros((0, len(EMOTIONS)), np.float32)


def confusion_counts(true: np.ndarray, pred: np.ndarray, n_classes: int = len(EMOTIONS)) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(true, pred, labels=np.arange(n_classes))


def expected_calibration_error(true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): over equal-width confidence bins, |accuracy - mean confidence| weighted by the
    bin's share of faces. scikit-learn has no ECE."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == true
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return float(sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
                     for b in range(n_bins) if (bins == b).any()))


def top_k_accuracy(true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of faces whose label is among the k most probable classes, ties broken as argmax breaks them (the
    lower class index first), so that top-1 is the accuracy. scikit-learn's top_k_accuracy_score breaks them
    the other way: on five bf16-scored faces with the label tied for second, the two disagreed."""
    p_true = probs[np.arange(len(true)), true][:, None]
    lower = np.arange(probs.shape[1])[None, :] < true[:, None]
    rank = (probs > p_true).sum(1) + ((probs == p_true) & lower).sum(1)
    return float((rank < k).mean())


def classification_metrics(true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> dict:
    """Metrics of labelled predictions; `true` holds class indices 0..6. A class never predicted has
    precision 0 (scikit-learn's zero_division=0); macro F1 is over the classes the split contains."""
    from sklearn.metrics import precision_recall_fscore_support

    n_classes = probs.shape[1]
    labels = np.arange(n_classes)
    pred = probs.argmax(1)
    cm = confusion_counts(true, pred, n_classes)
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=labels, zero_division=0)
    present = support > 0
    return {
        "n": int(len(true)),
        "accuracy": float((pred == true).mean()),
        "macro_f1": float(f1[present].mean()),
        "top2_accuracy": top_k_accuracy(true, probs, 2),
        "ece": expected_calibration_error(true, probs, n_bins),
        "nll": float(-np.log(np.clip(probs[np.arange(len(true)), true], 1e-12, None)).mean()),
        "per_class": {EMOTIONS[c] if n_classes == len(EMOTIONS) else str(c): {
            "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
            "support": int(support[c])} for c in range(n_classes)},
        "confusion": cm.tolist(),
    }
