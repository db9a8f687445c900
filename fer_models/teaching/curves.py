"""What a run's training curves show that readers ask about (seen in a walk by teachers and students): training
accuracy below validation accuracy, epochs that took very different times, and epoch times that do not add up
to the training time. Said from the run's own settings and history.csv, so a sentence appears only where the run
shows it."""
from __future__ import annotations

import math

import pandas as pd


def _noisy_training(args: dict) -> list[str]:
    """The run's settings that make training batches harder than the clean faces validation scores."""
    said = []
    if (args.get("mixup") or 0) > 0:
        said.append(f"mixup {args['mixup']:g}: pairs of faces blended, labels too")
    if (args.get("erase") or 0) > 0:
        said.append("random erasing")
    if any((args.get(k) or 0) > 0 for k in ("crop_pad", "resized_crop", "rotate", "scale")):
        said.append("random crops, rotations and zooms")
    if (args.get("label_smoothing") or 0) > 0:
        said.append("label smoothing")
    if args.get("teacher"):
        said.append("a teacher's soft targets")
    return said


def curve_notes(history: pd.DataFrame, args: dict) -> list[str]:
    """Plain sentences for the curves' two common puzzles, each only when this history shows it."""
    notes = []
    if not history.empty and {"epoch", "train_acc", "val_acc"} <= set(history.columns):
        last = history.iloc[-1]
        if last["train_acc"] < last["val_acc"]:
            why = _noisy_training(args)
            on = f" ({'; '.join(why)})" if why else ""
            ema = ", with the weights' moving average (EMA)" if (args.get("ema") or 0) > 0 else ""
            notes.append(f"Training accuracy ({last['train_acc']:.1%} at epoch {int(last['epoch'])}) is below "
                         f"validation accuracy ({last['val_acc']:.1%}): it is counted on the augmented batches "
                         f"the network learns from{on}, while the weights still change; validation scores "
                         f"clean faces after the epoch{ema}.")
    if "seconds" in history.columns and len(history) >= 3:
        seconds = history["seconds"].astype(float)
        if seconds.max() > 2 * seconds.median():
            notes.append(f"Epochs took {seconds.min():.0f}–{seconds.max():.0f} s (median {seconds.median():.0f} s): "
                         "the time is the wall clock of a shared CPU, so an epoch that ran beside other work "
                         "(tests, benchmarks, another training) or on a slower machine in another sitting took "
                         "longer; the network and the data were the same.")
    return notes


def epoch_times_note(history: pd.DataFrame, training_seconds: float | None) -> str | None:
    """Why the epochs' bars do not add up to the training time said beside them, when they differ by over 5%."""
    if not training_seconds or "seconds" not in history.columns:
        return None
    total = float(pd.to_numeric(history["seconds"], errors="coerce").sum())
    if not math.isfinite(total) or not total or abs(total - training_seconds) <= 0.05 * training_seconds:
        return None
    return (f"The epochs' bars add up to {total / 3600:.2f} h, the training time {training_seconds / 3600:.2f} h: "
            "that is the trainer's time in training steps (meta.json); the bars are history.csv's epoch times, which "
            "trainers before 29 November 2026 took with each epoch's validation and, in an epoch resumed after a "
            "stop, from the resume only (longer bars without resumes, shorter with them).")
