"""The model object the dashboard shares between sessions, and how explain code works on it without touching
what another session may be running.

Captum's methods, feature-map capture and activation maximisation all register hooks on modules. On the
shared object one session's hook fires in another session's forward pass: a capture hook stops it early, a
guided-backprop hook asks for gradients where there are none (measured: predict_proba failed with "cannot
register a hook on a tensor that doesn't require gradient" while Guided Backprop ran in another thread). So
hooked work runs on a private view, borrowed for the call: a copy of the module tree that shares every
parameter and buffer with the original, so no weight is copied and no lock is held while it computes. A
plain forward pass (probabilities, predict_proba) needs no view.
"""
from __future__ import annotations

import copy
import itertools
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

import torch

from fer_models.nets.models import FERModel

_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its idle private views
_VIEWS_LOCK = threading.Lock()  # guards the pools only, never a computation


def ready(model: FERModel) -> FERModel:
    """Eval mode and channels_last: oneDNN's convolutions are faster on a CPU in that layout
    (bench/explain.py measures it). The layout is set once per model object: walking every
    parameter again costs 0.7 ms a call, a webcam frame's budget is 20."""
    if not model.__dict__.get("_channels_last"):
        model.to(memory_format=torch.channels_last)
        model.__dict__["_channels_last"] = True
    if model.training:
        model.eval()
    return model


def _hooked(view: torch.nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
               for m in view.modules())


@contextmanager
def private_view(model: FERModel) -> Iterator[FERModel]:
    """The model as a module tree of this call's own, in eval mode: hooks registered on it stay here. Given
    back to the model's pool afterwards, unless something left a hook on it (then it is dropped)."""
    with _VIEWS_LOCK:
        ready(model)
        idle = _VIEWS.setdefault(model, [])
        view = idle.pop() if idle else None
    if view is None:
        shared = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
        view = copy.deepcopy(model, shared)  # the memo hands back the very same tensors: nothing is copied
    try:
        yield view
    finally:
        if not _hooked(view):
            with _VIEWS_LOCK:
                _VIEWS.setdefault(model, []).append(view)
