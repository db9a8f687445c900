"""What a conv layer's filters respond to, as the Filters page and the lesson draw it: the PublicTest faces ranked
by each filter (from the run's atlas, else computed once per layer) and the synthesised patterns, shared by all
sessions."""
import threading
import time
from collections import Counter

import streamlit as st

from app_pages._dataset import load_split
from app_pages._shared import time_left
from fer_models.core.constants import EMOTIONS
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.explain.atlas import checkpoint_hash, load_atlas
from fer_models.explain.features import Ranking, filter_responses
from fer_models.explain.pictures import colourise, enlarge, mosaic
from fer_models.runs.folder import ATLAS_FILE


@st.cache_resource(show_spinner=False, max_entries=32)
def pattern_store(key: str, layer: str, fft: bool) -> dict:
    """Activation-maximisation images by filter for one (checkpoint, layer, parametrisation), shared
    by all sessions; a filter's image does not depend on the others synthesised with it, so adding
    a filter to the selection only synthesises that one."""
    return {}


def atlas_stamp(run_path) -> float:
    """When the run's atlas was written (0: none): made while the app runs, it is picked up."""
    try:
        return (run_path / ATLAS_FILE).lstat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(show_spinner=False, max_entries=16)
def _weights_hash(key: str, run_path: str) -> str:
    """The checkpoint's SHA-256, once per checkpoint (key: its path and time), not once per layer visited."""
    return checkpoint_hash(run_path)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_atlas(key: str, run_path: str, layer: str, stamp: float):
    """The run's precomputed atlas for this layer (fer_models.explain.atlas), if it matches the weights; else None."""
    _, _, ids, _ = load_split(BUNDLED_PUBLICTEST, "PublicTest")
    return load_atlas(run_path, layer, ids, _weights_hash(key, run_path))


@st.cache_resource(show_spinner=False)
def _rankings() -> tuple[dict, threading.Lock]:
    """Each layer's Ranking of the PublicTest faces, by (checkpoint, layer, from the atlas or live); shared by all
    sessions (the lock guards the dict, not the computing), the 8 latest kept."""
    return {}, threading.Lock()


def ranked_faces(key: str, model, meta, layer: str, atlas=None):
    """(Ranking, faces, labels, ids): from the atlas, or computed now under a progress bar that moves batch by
    batch (a cached function could not draw one)."""
    store, lock = _rankings()
    entry = (key, layer, atlas is not None)
    found = store.get(entry)
    if found is not None:
        return found
    images, labels, ids, _ = load_split(BUNDLED_PUBLICTEST, "PublicTest")
    if atlas is not None:
        ranking = atlas.ranking
    else:
        text = f"Ranking the {len(images):,} PublicTest faces for every filter of {layer} (once per layer)"
        bar = st.progress(0.0, text=text + "…")
        norm, started = meta["normalisation"], time.monotonic()
        ranking = Ranking.of(filter_responses(
            model, layer, images, norm["mean"], norm["std"],
            on_batch=lambda done, n: bar.progress(done / n, text=f"{text}: {done:,} of {n:,}"
                                                  f"{time_left(started, done / n)}")))
        bar.empty()
    found = (ranking, images, labels, ids)
    with lock:
        while len(store) >= 8:
            store.pop(next(iter(store)))
        store[entry] = found
    return found


REDRAW = 0.25  # s between two redraws of a progress bar


def synthesis_progress(bar, sizes: list[int], clock=time.monotonic):
    """on_step callbacks for patterns synthesised in parts of `sizes` filters: each part's steps move one bar over
    all of them, with the part's filters, its step and the time left. A part's cost is taken as 1 + size / 2 (a
    batch's fixed cost, then each filter's): by filter count alone, the first part's two patterns (1.3 s of a deep
    layer's 4.3) made the time left read 2.7 times too long. The pace is read from the first step's end: the
    first step of a layer sets up its convolutions, and counted in, a deep densenet201_fer layer's time left read
    33 s for 14."""
    total, cost = sum(sizes), [1 + n / 2 for n in sizes]
    part, origin, drawn = [0], [], [-1.0]

    def next_part():
        k = part[0]
        part[0] += 1
        first, size, before = sum(sizes[:k]), sizes[k], sum(cost[:k])
        which = f"pattern {first + 1}" if size == 1 else f"patterns {first + 1}–{first + size}"

        def on_step(i: int, n: int) -> None:
            share, now = (before + cost[k] * i / n) / sum(cost), clock()
            if not origin:
                origin.append((now, share))
            elif now - drawn[0] < REDRAW and i < n:  # each redraw costs the browser, on the server's cores
                return
            drawn[0] = now
            since, at = origin[0]
            left = time_left(since, (share - at) / (1 - at), now) if share > at else ""
            bar.progress(share, text=f"Synthesising {which} of {total}: ascent step {i} of {n}{left}")
        return on_step
    return next_part


def empty_row() -> tuple:
    """A filter's row laid out before anything is known of it: slots for its pattern, top faces and words."""
    a, b, c = st.columns([1, 1, 1.6])
    return a.empty(), b.empty(), c.empty()


def filter_row(channel: int, conv, kernels: bool, pattern, ranking, faces, labels, ids, slots,
               faces_drawn: bool = False) -> None:
    """One filter's row into empty_row()'s slots: its pattern (or, on a layer that reads the face, its kernel), its
    top PublicTest faces and what they are; drawn again when its pattern is made (faces_drawn: they stay)."""
    picture, top_slot, words = slots
    top = ranking.top[channel] if ranking is not None else None
    if top is not None and not faces_drawn:
        top_slot.image(mosaic(faces[top, 0], 3), width=144, caption="the 9 PublicTest faces where it peaks highest")
    if kernels:
        weights = conv.weight.detach()[channel, 0].float().numpy()
        picture.image(enlarge(colourise(weights, signed=True), 144), width=144,
                      caption=f"filter #{channel}: its weights")
        line = f"**#{channel}**: weights from {weights.min():+.2f} to {weights.max():+.2f}"
    elif pattern is None:
        picture.caption(f"filter #{channel}: its pattern is being synthesised…")
        line = f"**#{channel}**"
    else:
        picture.image(enlarge(pattern.image, 144), width=144, caption=f"filter #{channel}")
        line = (f"**#{channel}**: mean activation {pattern.activation:.2f} on this pattern, "
                f"{pattern.start_activation:.2f} on the starting noise")
        if pattern.activation <= max(pattern.start_activation, 0.0):  # beside a top face's peak of 24.75, a mean
            # of -0.09 under "what excites it" read as the page failing: say what it means
            above = "the noise's" if pattern.activation <= pattern.start_activation else "zero"
            line += (f" (the ascent could not raise its mean above {above}: it may respond to small local details, "
                     "not to a pattern across the face)")
    if top is not None:
        kinds = Counter(EMOTIONS[labels[t]] for t in top).most_common()
        line += (f". Its 9 top faces (the highest activation in one cell; {ranking.peak[channel, 0]:.2f} on the "
                 "first): " + ", ".join(f"{n} {e}" for e, n in kinds) + f" (ids {', '.join(ids[top[:3]])}, …)")
    words.markdown(line)
