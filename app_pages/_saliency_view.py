"""Attribution maps as the Saliency page and the lesson draw them: computed once per checkpoint, face, method and
classes, over the face and alone, each with its colour scale."""
import streamlit as st

from app_pages._shared import checkpoint_key
from fer_models.core.constants import EMOTIONS
from fer_models.explain.attributions import METHODS, attribute_classes, face_input
from fer_models.explain.pictures import SCALE_BAR_WIDTH, colourise, enlarge, overlay, robust_top, scale_bar


@st.cache_data(show_spinner="Computing the attributions…", max_entries=64)
def cached_maps(run_key: str, _model, _meta, face_bytes: bytes, method: str, targets: tuple):
    """Maps for one (checkpoint, face, method, classes); the leading-underscore arguments are not
    hashed: run_key (path and checkpoint time) stands for them."""
    import numpy as np
    face = np.frombuffer(face_bytes, np.uint8).reshape(48, 48).copy()
    return attribute_classes(_model, face_input(face, _meta), method, list(targets))


def show_maps(run, loaded, face, method, targets, opacity, probs, beside=None, whose: str | None = None):
    """The maps of `targets`; one class's map over the face goes into `beside` where given (the page's first
    screen, next to the probabilities or the other run's map; `whose` names the run there), the map alone and
    its scale below."""
    model, meta = loaded
    maps = cached_maps(checkpoint_key(run), model, meta, face.pixels.tobytes(), method, tuple(targets))
    info = METHODS[method]
    if len(targets) == 1:
        a = maps[0]
        top = robust_top(a.map)
        if beside is None:
            over, alone, legend = st.columns([5, 5, 3], gap="small")
        else:
            over, (alone, legend, _) = beside, st.columns([5, 3, 5], gap="small")
        over.image(enlarge(overlay(face.pixels, a.map, a.signed, opacity, top), 240), width="stretch",
                   caption=(f"{whose}: " if whose else "") + f"{info.title} for {EMOTIONS[a.target]}, over the face")
        alone.image(enlarge(colourise(a.map, a.signed, top), 240), width="stretch", caption="the map alone")
        legend.image(scale_bar(a.signed, top), width=SCALE_BAR_WIDTH, caption="scale of both")
    else:
        top = max(robust_top(a.map) for a in maps)  # one scale: a class with weak evidence looks weak
        grid, legend = st.columns([4, 1])
        with grid:
            for row in range(0, len(maps), 4):
                for col, a in zip(st.columns(4), maps[row:row + 4]):
                    col.image(enlarge(overlay(face.pixels, a.map, a.signed, opacity, top), 192), width="stretch",
                              caption=f"{EMOTIONS[a.target]} · model {probs[a.target]:.0%}")
        legend.image(scale_bar(a.signed, top, height=300), width=SCALE_BAR_WIDTH,
                     caption="one scale for all seven maps")
    if info.signed:
        st.caption("Red: evidence for the class; blue: against it; white: none.")
    else:
        st.caption("Bright: the strongest pixels by this method's measure; black: none. The map is unsigned: it "
                   "does not say whether a pixel is evidence for the class or against it.")
    deltas = [a.delta for a in maps if a.delta is not None]
    if deltas:
        st.caption(f"Integrated Gradients convergence delta (|sum of the map − score change|): "
                   f"{max(deltas):.2e}{' (largest of the classes)' if len(deltas) > 1 else ''}. "
                   "Small against the score means 50 steps were enough.")


def all_methods(run, loaded, face, target: int, opacity: float, probs, side: int = 200) -> None:
    """The seven methods for one class, computed one after the other under a progress bar, in a 4×2 grid of maps
    `side` px wide. Methods measure different things in different units, so each map is scaled to its own
    99.5th percentile and one colour scale per kind (signed, unsigned) serves all."""
    model, meta = loaded
    bar = st.progress(0.0, text="Computing the seven methods…")
    maps = {}
    for i, (key, info) in enumerate(METHODS.items()):
        bar.progress(i / len(METHODS), text=f"{info.title} ({i + 1} of {len(METHODS)})…")
        maps[key] = cached_maps(checkpoint_key(run), model, meta, face.pixels.tobytes(), key, (target,))[0]
    bar.empty()
    cells = st.columns(4) + st.columns(4)
    # the method's name alone: "Integrated Gradients (signed)" was cut at a 200-px map's width; the two scales
    # in the last cell say which maps are signed (red-blue) and which are not
    for cell, (key, a) in zip(cells, maps.items()):
        cell.image(enlarge(overlay(face.pixels, a.map, a.signed, opacity, robust_top(a.map)), side), width="stretch",
                   caption=METHODS[key].title)
    with cells[-1]:
        st.image(scale_bar(True, 1.0, height=side - 20), width=SCALE_BAR_WIDTH,
                 caption="red-blue maps, signed: of each map's own maximum")
        st.image(scale_bar(False, 1.0, height=side - 20), width=SCALE_BAR_WIDTH,
                 caption="dark-bright maps, unsigned: of each map's own maximum")
    st.caption(f"All seven for {EMOTIONS[target]} (model {probs[target]:.0%}). Each map is scaled to its own 99.5th "
               "percentile: the methods measure different things in different units, so compare where they put "
               "the evidence, not how much.")
