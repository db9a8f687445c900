"""Saliency: which pixels of a face drove the selected run's prediction, computed live with Captum."""
import streamlit as st

from app_pages._face_picker import face_beside, keep, store
from app_pages._saliency_view import (
    SCALED_EACH,
    all_methods,
    colours,
    guess_next,
    maps_of,
    method_scales,
    probabilities_of,
    show_maps,
)
from app_pages._shared import chart, describe, follow_url, md, model_of, selected_model, to_url, url_value
from fer_models.core.constants import EMOTIONS
from fer_models.explain.attributions import METHODS, gradcam_map_size
from fer_models.teaching.figures import probability_figure
from fer_models.teaching.glossary import GLOSSARY

ONE, EVERY, SEVEN = "One map", "Every class", "All seven methods"
VIEWS = {"one": ONE, "every": EVERY, "seven": SEVEN}  # as the URL says them
SLUGS = {v: k for k, v in VIEWS.items()}


def reading(name: str, p, label: int | None) -> str:
    """"**run** reads **class** (share)", marked ✓ or ✗ against the dataset's label when there is one."""
    said = f"**{md(name)}** reads **{EMOTIONS[int(p.argmax())]}** ({p.max():.0%})"
    return said if label is None else said + (" ✓" if label == int(p.argmax()) else " ✗")


def class_options(predicted: int, label: int | None) -> list[tuple[str, int]]:
    """The predicted class, the true one unless it is the predicted one, then the others: each class once
    ("predicted: angry", "true: angry" and "angry" named one class three times)."""
    named = [("predicted", predicted)] + ([("true", label)] if label not in (None, predicted) else [])
    return named + [(e, i) for i, e in enumerate(EMOTIONS) if i not in {c for _, c in named}]


def class_option_label(option: tuple[str, int]) -> str:
    # where the prediction is the label, "predicted: angry" alone: the verdict above says ✓, and "predicted =
    # true: angry" was cut in the 160-px box at 1280 px
    name, c = option
    return name if name in EMOTIONS else f"{name}: {EMOTIONS[c]}"


# what the page shows (one map, every class, all seven; a second run) beside the title: under the maps, with a run
# compared, a switch meant scrolling down to it and back up to the maps it drew. Aligned to the title's foot:
# centred, the compare box sat under Streamlit's header
title, show_at, compare_at = st.columns([2, 4.3, 3], vertical_alignment="bottom")
title.title("Saliency", anchor=False)  # its link icon, wrapped under it, doubled the row's height
st.caption("Pick a face; see the class probabilities, then where each attribution method says the evidence is.")


run, model, meta = selected_model()

rows = st.container()  # two runs' grids, a row each across the page, when every class or all seven are compared
face, results = face_beside(run, [1, 2])

probs = probabilities_of(run, (model, meta), face)
predicted = int(probs.argmax())
with results:
    verdict = st.empty()  # said once the controls below name the run compared, if any
    # filled once the controls below are read: one map goes beside the probabilities, on the first screen
    first_screen = st.container()

    # the slider needs least: equal thirds cut "Integrated Gradients" to "Integrated Gradien…" at 1280 px
    a, b, c = st.columns([5, 4, 3])
    # kept across page switches, as the face is: the lesson and Filters come back to the same view
    # Grad-CAM first: the gradient map (the picker's first, in the order the methods were published) is a faint
    # speckle on a projector, Grad-CAM's regions read from the back of the room
    # in the URL too, where not the default (a link from a confusion cell gained them, and Back went to the link):
    # a reload or a shared link opened on Grad-CAM, one map, no compare
    for key, param, default, read in (("saliency_method", "method", "gradcam", {m: m for m in METHODS}),
                                      ("saliency_view", "view", ONE, VIEWS)):
        follow_url(f"_{key}", param, read.get(url_value(param), default))
        keep(key, default)
    view = st.session_state["saliency_view"]
    method = a.selectbox("Method", list(METHODS), format_func=lambda m: METHODS[m].title, key="saliency_method",
                         on_change=store, args=("saliency_method",), disabled=view == SEVEN,
                         help="How the map is computed; the line under these controls says what the chosen one "
                              f"measures. Grad-CAM: {GLOSSARY['Grad-CAM']}")
    options = class_options(predicted, face.label)
    names = [o[0] for o in options]
    before = st.session_state.get("_saliency_target", "predicted")
    follow_url("_saliency_target", "class", url_value("class") if url_value("class") in names else "predicted")
    kept = st.session_state["_saliency_target"]
    if kept != before:  # the URL moved (Back, a link): the box, which keeps its own choice, starts again from it
        st.session_state.pop(f"saliency_target_{face.origin}", None)
    target_name, target = b.selectbox("Class to explain", options, index=names.index(kept) if kept in names else 0,
                                      disabled=view == EVERY, key=f"saliency_target_{face.origin}",
                                      format_func=class_option_label,
                                      help="Off while every class is shown" if view == EVERY else None)
    st.session_state["_saliency_target"] = target_name
    opacity = c.slider("Overlay opacity", 0.0, 1.0, 0.7, 0.05)
    # no labels: the row is then no taller than the title, and the choices say what they are
    view = show_at.segmented_control("Show", [ONE, EVERY, SEVEN], key="saliency_view", on_change=store,
                                     args=("saliency_view",), label_visibility="collapsed") or ONE
    others = {r.name: r for r in st.session_state.get("runs", []) if r.name != run.name and r.arch}
    follow_url("saliency_compare", "with", url_value("with") if url_value("with") in others else None)
    compare = others.get(compare_at.selectbox(
        "Compare with another run", [None, *others], key="saliency_compare", label_visibility="collapsed",
        placeholder="Compare with another run…",
        format_func=lambda n: "Compare with another run…" if n is None else f"vs {describe(others[n])}"))
    to_url(method=None if method == "gradcam" else method, view=None if view == ONE else SLUGS[view],
           **{"class": None if target_name == "predicted" else target_name,
              "with": None if compare is None else compare.name})
    other = model_of(compare) if compare is not None else None
    other_probs = probabilities_of(compare, other, face) if other is not None else None
    readings = [(run, probs)] + ([(compare, other_probs)] if other is not None else [])
    verdict.markdown(" · ".join(reading(r.name, p, face.label) for r, p in readings) + (
        "" if face.label is None else f"; the dataset says **{EMOTIONS[face.label]}**"))
    bars = probability_figure(probs, face.label)
    beside = {}
    if view == ONE and compare is None:
        beside[run.name], where_bars = first_screen.columns([2, 3], vertical_alignment="center")
        chart(bars, where_bars, width="stretch", config={"displayModeBar": False})
    elif view == ONE:  # two runs: their maps side by side on the first screen, the controls under them, then
        # each run's bars under its name (above the controls they pushed Method and Class below a 720-px screen)
        beside[run.name], beside[compare.name] = first_screen.columns(2, gap="medium")
    elif compare is None:  # a grid of maps on the first screen, above the controls; the bars after them
        beside[run.name] = first_screen
    elif view == EVERY:  # two grids beside the picker put the second below a 720-px screen: a row of seven maps
        beside[run.name] = beside[compare.name] = rows  # per run above it, each with its own scale
    else:  # the same, the two scales beside both rows: one beside each row read as that run's kind of map
        left, scales_at = rows.columns([7, 1.25], gap="small")
        beside[run.name] = beside[compare.name] = left
    wide = view != ONE and compare is not None
    if view == SEVEN:  # the method picker is off: one method's description would read as the grid's
        st.caption("Each map is one method's view of the same class; what each method measures is in Method's "
                   "help (?)." + (f" {SCALED_EACH} Red-blue: signed, for both runs; dark-bright: unsigned."
                                  if wide else ""))
    else:
        st.caption(METHODS[method].caption + (f" {colours(METHODS[method].signed)}" if wide else ""))
    if "gradcam" in method and view != SEVEN:
        h, w = gradcam_map_size(model)
        st.caption(f"{md(run.name)}'s Grad-CAM layer: `{model.gradcam_layer_name}`, {h}×{w} cells.")
    if view != ONE:
        chart(bars, width="stretch", config={"displayModeBar": False})

targets = list(range(len(EMOTIONS))) if view == EVERY else [target]
pairs = [(run, (model, meta))] + ([(compare, other)] if other is not None else [])
if view != SEVEN:
    maps_of(pairs, face, method, targets)  # the two runs' maps side by side before either is drawn
# one class: the two runs side by side; seven classes or seven methods: a grid beside the face, or with a run
# compared a row of seven per run above it
here, there = st.columns(2, gap="large") if other is not None and view == ONE else (st.container(),) * 2
for where, shown, loaded, p in ((here, run, (model, meta), probs), (there, compare, other, other_probs)):
    if shown is None:
        continue
    if view != ONE and shown.name in beside:
        where = beside[shown.name]
    with where:
        if other is not None:  # alone, the verdict above the controls already says it
            also = f"; {EMOTIONS[target]} {p[target]:.0%}" if view == SEVEN and target != int(p.argmax()) else \
                f" · {METHODS[method].title}" if view == EVERY else ""
            st.subheader(f"{md(shown.name)}: reads {EMOTIONS[int(p.argmax())]} ({p.max():.0%}){also}")
            if view == ONE:
                chart(probability_figure(p, face.label), width="stretch", config={"displayModeBar": False},
                      key=f"bars_{shown.name}")
        if view == SEVEN:
            all_methods(shown, loaded, face, target, opacity, p, wide=wide)
        else:
            show_maps(shown, loaded, face, method, targets, opacity, p, beside.get(shown.name) if view == ONE else None,
                      whose=shown.name if other is not None else None, wide=wide)
if view == SEVEN and wide:
    with scales_at:
        st.caption("Both runs:")
        method_scales()
if view == ONE:
    guess_next(pairs, face, method, target, face.label)
