"""The learning rate and the random seed of every step, as pure functions of (settings, step): a run
resumed at any step needs no scheduler or RNG state to continue the same trajectory.
"""
from __future__ import annotations

import math

from fer_models.runs.settings import TrainConfig


def learning_rate(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """Learning rate at a global step: a pure function, so a resumed run needs no scheduler state."""
    base, t = cfg.lr, step / max(total, 1)
    # torch's OneCycleLR shape (30% of the steps up from base/25 by a cosine, then a cosine down), ending at
    # base/1e4 where torch's ends at base/2.5e5 (its initial_lr / final_div_factor)
    if cfg.schedule == "onecycle":
        if t < 0.3:
            return base / 25 + (base - base / 25) * (1 - math.cos(math.pi * t / 0.3)) / 2
        return base / 1e4 + (base - base / 1e4) * (1 + math.cos(math.pi * (t - 0.3) / 0.7)) / 2
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return base * (step + 1) / warm
    if cfg.schedule == "cosine":
        return base * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1))) / 2
    if cfg.schedule == "step":
        return base * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    return base


def step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """Every random draw of a step (augmentation, mixup, dropout) comes from this seed, so a run
    resumed at any step follows the trajectory of an uninterrupted one without saved RNG states."""
    return (seed * 1_000_003 + epoch * 100_003 + step * 101 + rank) % (2 ** 63)
