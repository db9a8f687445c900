"""How fast a run's network reads one face on this machine, and which run to offer when live video lags.

The live video's frame rate is detection, tracking, the network and drawing together; only the network differs
between runs, so it is what is measured (once per checkpoint, on a gray face, after a warm-up pass) and what the
offer compares."""
from __future__ import annotations

import time

import numpy as np

from fer_models.explain.attributions import face_input, probabilities

LIVE_FPS_TARGET = 15.0  # below this a face's label visibly lags its expression
KEEP_OFFER = 1.2  # an offer made stays until the rate passes 18 fps: the rate wobbles by a frame or two


def faces_per_second(model, meta: dict, repeats: int = 12) -> float:
    """Faces the network alone scores per second, one at a time as the live video gives them: the fastest of
    `repeats` timed passes after one warm-up. The fastest, not the median: measured once per checkpoint, a median
    taken while the server was busy stayed (a walk read densenet201_fer at 1 face a second and cnn3 "33.9×
    faster", then 4.1 and "126.6×" on another visit); the fastest pass is what the machine can do."""
    x = face_input(np.full((48, 48), 128, np.uint8), meta)
    probabilities(model, x)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        probabilities(model, x)
        times.append(time.perf_counter() - began)
    return 1.0 / max(min(times), 1e-6)


def faster_run(current: str, speeds: dict[str, float], live_fps: float, margin: float = 1.5,
               offered: bool = False) -> str | None:
    """The run to offer when the live video runs under LIVE_FPS_TARGET (too_slow): the fastest network of the
    others, if it is at least `margin` times faster than the current one; None when the video keeps up or none
    is faster."""
    return fastest_other(current, speeds, margin) if too_slow(live_fps, offered) else None


def fastest_other(current: str, speeds: dict[str, float], margin: float = 1.5) -> str | None:
    """The run whose network is fastest here, if it is at least `margin` times faster than the current one."""
    others = {name: fps for name, fps in speeds.items() if name != current}
    best = max(others, key=others.get, default=None)
    return best if best is not None and current in speeds and others[best] >= margin * speeds[current] else None


def too_slow(rate: float, offered: bool = False) -> bool:
    """Whether a live rate calls for (or, `offered`, still keeps) the offer of a faster run."""
    return 0 < rate < LIVE_FPS_TARGET * (KEEP_OFFER if offered else 1)


def slow_run_offer(current: str, speeds: dict[str, float], rate: float, measured: bool = True,
                   offered: bool = False) -> tuple[str, str] | None:
    """(the run to offer, what to say) when `rate` is under LIVE_FPS_TARGET and faster_run has one; `measured`:
    the stream's own frame rate, else the network's faces per second, an upper bound on it (before the stream
    starts). `offered`: the offer is on screen already, and stays until the rate is clearly above the target
    (at 14.6-15.9 fps it came and went every second and a half, too fast to click). Plain text: the page escapes
    the run names."""
    other = faster_run(current, speeds, rate, offered=offered)  # None too when the rate keeps up
    if other is None:
        return None
    # the measured rate by reference, not by figure: the video draws its own, and a figure here, read a moment
    # apart, differed from it (16.4 beside 15.1)
    said = (f"The video's frame rate (bottom left) is at the edge of {LIVE_FPS_TARGET:.0f} fps: labels lag the "
            "faces at times." if measured and rate >= LIVE_FPS_TARGET else
            f"The video's frame rate (bottom left) is under {LIVE_FPS_TARGET:.0f} fps: labels lag the faces."
            if measured else
            f"{current}'s network alone reads {rate:.1f} faces a second here, under the {LIVE_FPS_TARGET:.0f} fps "
            "a live video needs: labels would lag the faces.")
    return other, (f"{said} {other}'s network reads a face {speeds[other] / speeds[current]:.1f}× faster on this "
                   "machine.")


def video_run_offer(current: str, speeds: dict[str, float], pace: float, margin: float = 1.5
                    ) -> tuple[str, str] | None:
    """(the run to offer, what to say) when a video file was analysed slower than real time (`pace`, seconds of
    video a second) and another run's network is at least `margin` times faster here. Plain text: the page escapes
    the run names."""
    best = fastest_other(current, speeds, margin) if 0 < pace < 1 else None
    if best is None:
        return None
    return best, (f"{current} analysed this clip at {pace:.1f}× real time. {best}'s network reads a face "
                  f"{speeds[best] / speeds[current]:.1f}× faster on this machine.")
