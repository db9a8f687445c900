"""The lesson's six questions and what to say at each, written from the run's own numbers: the Lesson page draws
the figures, these functions say what the class should see in them. Markdown strings; nothing here reads a file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_models.core.constants import EMOTIONS


@dataclass(frozen=True)
class Step:
    slug: str       # the deep link: ?lesson=slug
    question: str


STEPS = (Step("layers", "What is the network made of?"),
         Step("training", "How did it learn?"),
         Step("confusion", "Which expressions does it confuse?"),
         Step("saliency", "Where does it look?"),
         Step("filters", "What do its deepest filters detect?"),
         Step("math", "What does one neuron compute?"))
SLUGS = tuple(s.slug for s in STEPS)


def step_index(asked: str | None) -> int:
    """The step a URL asks for, by slug or by number from 1; anything else is the first step."""
    if asked in SLUGS:
        return SLUGS.index(asked)
    if asked and asked.isascii() and asked.isdigit() and 1 <= int(asked) <= len(STEPS):
        return int(asked) - 1
    return 0


def _side(shape: str) -> str:
    """'64×6×6' -> '6×6'."""
    return "×".join(shape.split("×")[1:])


def layers_story(totals: dict, layers: pd.DataFrame, findings: list[str]) -> list[str]:
    convs = layers[layers["type"] == "Conv2d"]
    first, last = convs.iloc[0], convs.iloc[-1]
    # any map's channels, not only a conv's: a dense block's output is its layers' maps side by side (densenet201_fer
    # ends at 1920×1×1 where its widest conv gives 896), and the diagram beside this shows those
    maps = layers.loc[layers["output shape"].str.count("×") == 2, "output shape"]
    widest = max(int(s.split("×")[0]) for s in maps)
    said = [f"A 1×48×48 gray face goes through **{len(convs)} convolutions** to 7 class scores: "
            f"{totals['parameters'] / 1e6:.2f} M weights, every one set by training, and "
            f"{totals['mult_adds'] / 1e6:.0f} M multiply-adds to score one face.",
            f"The maps shrink from {_side(first['output shape'])} after the first conv to "
            f"{_side(last['output shape'])} after the last, while the channels grow to {widest}: each deeper "
            "cell sees a wider part of the face, described by more features."]
    if findings:
        said.append(findings[0])
    return said


def training_story(history: pd.DataFrame, planned: int | None = None, hours: float | None = None) -> list[str]:
    """`hours`: the run's one training time (meta.json's, as the History page, the README and the report give it);
    history.csv's seconds also count validation and restart at a resume, so they are not added up here."""
    h = history.dropna(subset=["val_acc"])
    best = h.loc[h["val_acc"].idxmax()]
    end = h.iloc[-1]
    done = int(end["epoch"])
    said = [f"Validation accuracy peaked at **{best['val_acc']:.1%} in epoch {int(best['epoch'])}** of "
            f"{done}{f' (of {planned} planned)' if planned and planned != done else ''}; the star marks it, and "
            "those weights are the ones kept."]
    gap = end["train_acc"] - end["val_acc"]
    if gap > 0.1:
        said.append(f"By the last epoch it was right on {end['train_acc']:.0%} of the training faces but "
                    f"{end['val_acc']:.0%} of unseen ones: a **{gap * 100:.0f}-point gap**, memorising faces "
                    "rather than learning expressions.")
    else:
        said.append(f"By the last epoch training and validation accuracy are {end['train_acc']:.0%} and "
                    f"{end['val_acc']:.0%}, {abs(gap) * 100:.0f} points apart: it has not started memorising "
                    "its training faces.")
    low = h.loc[h["val_loss"].idxmin()]
    if int(low["epoch"]) < done and end["val_loss"] > low["val_loss"] * 1.02:
        said.append(f"Validation loss was lowest in epoch {int(low['epoch'])} ({low['val_loss']:.3f}) and rose to "
                    f"{end['val_loss']:.3f}: the model grew surer of its wrong answers even where accuracy held.")
    elif hours:
        # in hours to two places, as the report says it: one run, one figure, one way of writing it
        said.append(f"Training took {hours:.1f} h of compute over {done} epochs.")  # as History says it
    return said


def confusion_story(counts: np.ndarray, split: str = "PublicTest") -> list[str]:
    counts = np.asarray(counts, dtype=np.int64)
    faces = counts.sum(1)
    recall = np.diag(counts) / np.maximum(faces, 1)
    seen = faces > 0
    order = np.flatnonzero(seen)[np.argsort(-recall[seen], kind="stable")]
    total = int(counts.sum())
    said = [f"**{np.trace(counts) / max(total, 1):.1%}** of the {total:,} {split} faces get their label; always "
            f"answering the commonest class, {EMOTIONS[int(faces.argmax())]}, would get {faces.max() / total:.1%}."]
    said.append(f"Best read: **{EMOTIONS[order[0]]}** ({recall[order[0]]:.0%} of its faces); worst: "
                f"**{EMOTIONS[order[-1]]}** ({recall[order[-1]]:.0%}).")
    off = counts.astype(float) / np.maximum(faces, 1)[:, None]
    np.fill_diagonal(off, 0)
    t, p = np.unravel_index(int(off.argmax()), off.shape)
    if off[t, p] > 0:
        said.append(f"The biggest confusion: **{EMOTIONS[t]} is read as {EMOTIONS[p]} on {off[t, p]:.0%} of "
                    f"{EMOTIONS[t]} faces** ({counts[t, p]:,} of {faces[t]:,}). Click that cell to see them.")
    return said


def annotators_story(mistakes: int, with_votes: int, majority_model: int) -> str | None:
    """What the FER+ annotators say about the mistakes; None without votes."""
    if not with_votes:
        return None
    return (f"On **{majority_model:,} of its {mistakes:,} mistakes** at least 6 of the ten FER+ annotators (a "
            "majority, not just their most common answer) chose the model's answer, not the dataset's label: there "
            "the label is the likely error.")


def evidence_split(attribution: np.ndarray, signed: bool) -> tuple[float, float]:
    """Shares of the evidence (the positive part of a signed map, all of an unsigned one) in the upper half of
    the face (eyes and brows) and the lower half (mouth and chin)."""
    a = np.maximum(attribution, 0) if signed else np.abs(attribution)
    total = float(a.sum())
    if total <= 0:
        return 0.0, 0.0
    upper = float(a[: a.shape[0] // 2].sum()) / total
    return upper, 1.0 - upper


def saliency_story(method_title: str, probs: np.ndarray, label: int | None, attribution: np.ndarray,
                   signed: bool) -> list[str]:
    pred = int(np.argmax(probs))
    said = [f"The model reads this face as **{EMOTIONS[pred]} ({probs[pred]:.0%})**"
            + (f"; its label is {EMOTIONS[label]}" + (", so it is right." if label == pred else ", so it is wrong.")
               if label is not None else ".")]
    upper, lower = evidence_split(attribution, signed)
    if upper + lower > 0:
        where = "the mouth and chin" if lower > upper else "the eyes and brows"
        said.append(f"{method_title} puts **{max(upper, lower):.0%} of the evidence for {EMOTIONS[pred]} on "
                    f"{where}** (the {'lower' if lower > upper else 'upper'} half of the face), "
                    f"{min(upper, lower):.0%} on the other half.")
    else:
        said.append(f"{method_title} finds no evidence for {EMOTIONS[pred]} on this face: the map is empty.")
    return said


def filters_story(layer: str, size: tuple[int, int], filters: int, top_labels: dict[int, list[int]], faces: int,
                  last: tuple[str, int, tuple[int, int]] | None = None) -> list[str]:
    """`last`: the conv listed last (name, kernel side, map size) when it is not `layer`."""
    h, w = size
    said = [f"`{layer}` has {filters} filters on {h}×{w} maps; shown are the most active over the {faces:,} "
            "PublicTest faces."]
    if last is not None:
        name, kernel, (lh, lw) = last
        why = "a 1×1 kernel that only mixes channels" if kernel == 1 else f"{lh}×{lw} maps with no *where* in them"
        # "listed last", not "the last": in a ResNet that is the skip path's 1×1 projection, beside the main path;
        # the name whole: "shortcut…" read as a name cut off
        said[-1] += f" The conv listed last, `{name}`, has {why}."
    for channel, labels in list(top_labels.items())[:2]:
        counts = np.bincount(labels, minlength=len(EMOTIONS))
        top = int(counts.argmax())
        said.append(f"Filter #{channel} fires most on **{EMOTIONS[top]}** faces: {counts[top]} of its top "
                    f"{len(labels)}.")
    return said


def math_story(probs: np.ndarray, label: int | None) -> str:
    """The last step of the network in numbers: softmax's probability of the label and the loss it gives."""
    pred = int(np.argmax(probs))
    said = (f"At the end, softmax turns the 7 scores into probabilities: {EMOTIONS[pred]} gets "
            f"**{probs[pred]:.1%}**.")
    if label is not None:
        p = max(float(probs[label]), 1e-12)
        said += (f" The label is {EMOTIONS[label]}, so the cross-entropy loss is −ln {p:.3f} = "
                 f"**{-np.log(p):.3f}**: the number training pushes down.")
    return said
