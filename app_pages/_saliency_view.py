"""Attribution maps as the Saliency page and the lesson draw them: computed once per checkpoint, face, method and
classes, over the face and alone, each with its colour scale."""
from functools import partial

import streamlit as st

from app_pages._shared import checkpoint_key
from fer_models.core.constants import EMOTIONS
from fer_models.explain.attributions import METHODS, attribute_classes, face_input, probabilities
from fer_models.explain.memo import MEMO
from fer_models.explain.pictures import SCALE_BAR_WIDTH, colourise, enlarge, overlay, robust_top, scale_bar

SCALED_EACH = ("Each map is scaled to its own 99.5th percentile (the scales' ends): the methods measure different "
               "things in different units, so compare where they put the evidence, not how much.")


def _read_only(arrays):
    """Every session gets the memo's very object (st.cache_data handed out copies): a page that wrote into one
    would change another session's picture, so writing raises instead."""
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _maps(model, x, method: str, targets: list[int]):
    maps = attribute_classes(model, x, method, targets)
    _read_only([a.map for a in maps])
    return maps


def _maps_job(run, loaded, face, method: str, targets):
    """The memo's key for one run's maps of a face, and how to compute them: run_key (path and checkpoint time)
    stands for the weights."""
    model, meta = loaded
    key = ("maps", checkpoint_key(run), face.pixels.tobytes(), method, tuple(targets))
    return key, partial(_maps, model, face_input(face.pixels, meta), method, list(targets))


def maps_of(shown, face, method: str, targets) -> list:
    """Each (run, (model, meta)) in `shown`'s maps of `targets`, the runs not computed yet side by side."""
    jobs = [_maps_job(run, loaded, face, method, targets) for run, loaded in shown]
    if all(MEMO.known(key) for key, _ in jobs):
        return MEMO.get_all(jobs)
    with st.spinner("Computing the attributions…"):
        return MEMO.get_all(jobs)


def cached_maps(run, loaded, face, method: str, targets) -> list:
    return maps_of([(run, loaded)], face, method, targets)[0]


def probabilities_of(run, loaded, face):
    """The run's class probabilities for the face, once per checkpoint and face: every rerun of the page asked
    again (densenet201_fer: 0.09 s of each)."""
    model, meta = loaded
    return MEMO.get(("probs", checkpoint_key(run), face.pixels.tobytes()),
                    lambda: _read_only([probabilities(model, face_input(face.pixels, meta))[0]])[0])


def guess_next(shown, face, method: str, target: int, label: int | None, methods=tuple(METHODS)) -> None:
    """Queue what a user is likely to look at next, computed in the background while the server is idle: this
    method for the face's labelled class, the methods after this one in the picker's order, then this method for
    the other classes, for each run."""
    at = methods.index(method)
    later = methods[at + 1:] + methods[:at]
    first = [label] if label not in (None, target) else []
    others = [c for c in range(len(EMOTIONS)) if c not in (target, label)]
    jobs = [_maps_job(r, loaded, face, method, (c,)) for c in first for r, loaded in shown]
    jobs += [_maps_job(r, loaded, face, m, (target,)) for m in later for r, loaded in shown]
    jobs += [_maps_job(r, loaded, face, method, (c,)) for c in others for r, loaded in shown]
    for key, compute in reversed(jobs):  # the memo computes the newest guess first
        MEMO.prefetch(key, compute)


def colours(signed: bool) -> str:
    if signed:
        return "Red: evidence for the class; blue: against it; white: none."
    return ("Bright: the strongest pixels by this method's measure; black: none. The map is unsigned: it does not "
            "say whether a pixel is evidence for the class or against it.")


def grid_cells(wide: bool, scale_cell: bool = True) -> list:
    """Cells for seven maps and, eighth, what scales them: two rows of four beside the face picker; one row of
    seven and a narrow eighth where two runs' grids share the page's full width, so both are on a 720-px screen
    (a row of seven in the column beside the picker drew 50-px maps); seven alone where the scales stand beside
    both rows."""
    if not wide:
        return st.columns(4) + st.columns(4)
    return st.columns([1] * 7 + [1.25], gap="small") if scale_cell else st.columns(7, gap="small")


def method_scales(kinds=(True, False)) -> None:
    """The colour scales of the seven methods' maps, each scaled to its own ends: red-blue for the signed ones,
    dark-bright for the unsigned; as short as their labels allow (three and two)."""
    for signed in kinds:
        st.image(scale_bar(signed, 1.0, height=150 if signed else 100), width=SCALE_BAR_WIDTH,
                 caption="red-blue: signed" if signed else "dark-bright: unsigned")


def show_maps(run, loaded, face, method, targets, opacity, probs, beside=None, whose: str | None = None,
              wide: bool = False):
    """The maps of `targets`; one class's map over the face goes into `beside` where given (the page's first
    screen, next to the probabilities or the other run's map; `whose` names the run there), the map alone and
    its scale below. Several classes: a grid (`grid_cells(wide)`)."""
    maps = cached_maps(run, loaded, face, method, targets)
    info = METHODS[method]
    if len(targets) == 1:
        a = maps[0]
        top = robust_top(a.map)
        if beside is None:
            over, alone, legend = st.columns([5, 5, 3], gap="small")
        else:
            over, (alone, legend, _) = beside, st.columns([5, 3, 5], gap="small")
        # two runs' maps on the first screen, their scale under the controls: each caption says the colours
        key = ("; red: for it, blue: against" if a.signed else "; bright: strongest") if whose else ""
        over.image(enlarge(overlay(face.pixels, a.map, a.signed, opacity, top), 240), width="stretch",
                   caption=(f"{whose}: " if whose else "") + f"{info.title} for {EMOTIONS[a.target]}, over the face"
                   + key)
        alone.image(enlarge(colourise(a.map, a.signed, top), 240), width="stretch", caption="the map alone")
        legend.image(scale_bar(a.signed, top), width=SCALE_BAR_WIDTH, caption="scale of both")
    else:
        top = max(robust_top(a.map) for a in maps)  # one scale: a class with weak evidence looks weak
        cells = grid_cells(wide)
        for cell, a in zip(cells, maps):
            cell.image(enlarge(overlay(face.pixels, a.map, a.signed, opacity, top), 192), width="stretch",
                       caption=f"{EMOTIONS[a.target]} · model {probs[a.target]:.0%}")
        # the eighth cell: a column of its own beside the grid narrowed the maps on the first screen
        cells[-1].image(scale_bar(a.signed, top, height=150), width=SCALE_BAR_WIDTH,
                        # the method named (two runs' rows: in their headings): its picker is under the maps
                        caption="this row's scale" if wide else f"{info.title}: one scale for all seven maps")
    if not wide:  # two runs' rows share one screen: the page says the colours once, under its controls
        st.caption(colours(info.signed))
    deltas = [a.delta for a in maps if a.delta is not None]
    if deltas:
        st.caption(f"Integrated Gradients convergence delta (|sum of the map − score change|): "
                   f"{max(deltas):.2e}{' (largest of the classes)' if len(deltas) > 1 else ''}. "
                   "Small against the score means 50 steps were enough.")


def all_methods(run, loaded, face, target: int, opacity: float, probs, side: int = 200, wide: bool = False) -> None:
    """The seven methods for one class, computed one after the other under a progress bar, in a grid of maps
    (`grid_cells(wide)`) `side` px wide. Methods measure different things in different units, so each map is
    scaled to its own 99.5th percentile and one colour scale per kind (signed, unsigned) serves all: in the last
    cell, or where two runs' rows share the page (`wide`), beside both (the page draws them)."""
    bar = st.progress(0.0, text="Computing the seven methods…")
    maps = {}
    for i, (key, info) in enumerate(METHODS.items()):
        bar.progress(i / len(METHODS), text=f"{info.title} ({i + 1} of {len(METHODS)})…")
        maps[key] = MEMO.get(*_maps_job(run, loaded, face, key, (target,)))[0]
    bar.empty()
    cells = grid_cells(wide, scale_cell=not wide)
    # the method's name alone: "Integrated Gradients (signed)" was cut at a 200-px map's width; the two scales
    # in the last cell say which maps are signed (red-blue) and which are not. A word joiner after each hyphen:
    # under an 85-px map "Guided Grad-CAM" broke as "Guided Grad-" / "CAM"
    for cell, (key, a) in zip(cells, maps.items()):
        cell.image(enlarge(overlay(face.pixels, a.map, a.signed, opacity, robust_top(a.map)), side),
                   width="stretch", caption=METHODS[key].title.replace("-", "-\u2060"))
    if not wide:
        with cells[-1]:
            method_scales()  # two runs' rows share one screen: the page says it once, under its controls
        st.caption(f"All seven for {EMOTIONS[target]} (model {probs[target]:.0%}). {SCALED_EACH}")
