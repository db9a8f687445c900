"""The one model object per checkpoint that every session of the dashboard shares: how explain code
prepares it (eval mode, channels_last, once per object) and the lock that keeps one session's hooks
out of another's forward pass.
"""
from __future__ import annotations

import threading

import torch

from fer_models.nets.models import FERModel

LOCK = threading.RLock()


def ready(model: FERModel) -> FERModel:
    """Eval mode and channels_last: oneDNN's convolutions are faster on a CPU in that layout
    (bench/explain.py measures it). The layout is set once per model object: walking every
    parameter again costs 0.7 ms a call, a webcam frame's budget is 20."""
    if not model.__dict__.get("_channels_last"):
        model.to(memory_format=torch.channels_last)
        model.__dict__["_channels_last"] = True
    return model.eval()
