"""How fast a run's network reads one face on this machine, and which run to offer when live video lags.

The live video's frame rate is detection, tracking, the network and drawing together; only the network differs
between runs, so it is what is measured (once per checkpoint, on a gray face, after a warm-up pass) and what the
offer compares."""
from __future__ import annotations

import time

import numpy as np

from fer_models.explain.attributions import face_input, probabilities

LIVE_FPS_TARGET = 15.0  # below this a face's label visibly lags its expression


def faces_per_second(model, meta: dict, repeats: int = 12) -> float:
    """Faces the network alone scores per second, one at a time as the live video gives them (median of
    `repeats` timed passes after one warm-up)."""
    x = face_input(np.full((48, 48), 128, np.uint8), meta)
    probabilities(model, x)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        probabilities(model, x)
        times.append(time.perf_counter() - began)
    return 1.0 / max(float(np.median(times)), 1e-6)


def faster_run(current: str, speeds: dict[str, float], live_fps: float, margin: float = 1.5) -> str | None:
    """The run to offer when the live video runs under LIVE_FPS_TARGET: the fastest network of the others, if it
    is at least `margin` times faster than the current one; None when the video keeps up or none is faster."""
    if live_fps >= LIVE_FPS_TARGET or current not in speeds:
        return None
    others = {name: fps for name, fps in speeds.items() if name != current}
    if not others:
        return None
    best = max(others, key=others.get)
    return best if others[best] >= margin * speeds[current] else None
