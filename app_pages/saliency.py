"""Saliency: which pixels of a face drove the selected run's prediction, computed live with Captum."""
import streamlit as st

from app_pages._face_picker import pick_face, show_model_input
from app_pages._saliency_view import show_maps
from app_pages._shared import describe, md, model_of, selected_model
from fer_models.core.constants import EMOTIONS
from fer_models.explain.attributions import METHODS, face_input, gradcam_map_size, probabilities
from fer_models.teaching.figures import probability_figure

st.title("Saliency")
st.caption("Pick a face; see the class probabilities, then where each attribution method says the evidence is.")


run, model, meta = selected_model()

pick, results = st.columns([1, 2], gap="large")
with pick:
    face = pick_face(run)
    if face is not None:
        show_model_input(face)
if face is None:
    st.stop()

probs = probabilities(model, face_input(face.pixels, meta))[0]
predicted = int(probs.argmax())
with results:
    verdict = f"**{run.name}** reads **{EMOTIONS[predicted]}** ({probs[predicted]:.0%})"
    if face.label is not None:
        verdict += f"; the dataset says **{EMOTIONS[face.label]}**" + (" ✓" if face.label == predicted else " ✗")
    st.markdown(verdict)
    st.plotly_chart(probability_figure(probs, face.label), width="stretch", config={"displayModeBar": False})

    a, b, c = st.columns(3)
    method = a.selectbox("Method", list(METHODS), format_func=lambda m: METHODS[m].title, key="saliency_method")
    # drawn after the select box it disables, but read first (widgets keep their value in session state)
    every_class = st.session_state.get("saliency_every_class", False)
    options = [("predicted", predicted)] + ([("true", face.label)] if face.label is not None else []) + \
        [(e, i) for i, e in enumerate(EMOTIONS)]
    target_name, target = b.selectbox("Class to explain", options, key="saliency_target", disabled=every_class,
                                      format_func=lambda o: o[0] if o[0] in EMOTIONS else f"{o[0]}: {EMOTIONS[o[1]]}",
                                      help="Off while every class is shown" if every_class else None)
    opacity = c.slider("Overlay opacity", 0.0, 1.0, 0.7, 0.05)
    every_class = st.toggle("Every class at once", key="saliency_every_class",
                            help="The same method for all seven classes, side by side")
    others = [r for r in st.session_state.get("runs", []) if r.name != run.name and r.arch]
    compare = st.selectbox("Compare with another run on the same face", [None, *others],
                           format_func=lambda r: "—" if r is None else describe(r))
    st.caption(METHODS[method].caption)
    if "gradcam" in method:
        h, w = gradcam_map_size(model)
        st.caption(f"{md(run.name)}'s Grad-CAM layer: `{model.gradcam_layer_name}`, {h}×{w} cells.")

targets = list(range(len(EMOTIONS))) if every_class else [target]
other = model_of(compare) if compare is not None else None
# one class: the two runs side by side; seven classes: one row of seven per run
here, there = st.columns(2, gap="large") if other is not None and not every_class else (st.container(),) * 2
with here:
    st.subheader(f"{md(run.name)}: reads {EMOTIONS[predicted]} ({probs[predicted]:.0%})")
    show_maps(run, (model, meta), face, method, targets, opacity, probs)
if other is not None:
    other_probs = probabilities(other[0], face_input(face.pixels, other[1]))[0]
    with there:
        st.subheader(f"{md(compare.name)}: reads {EMOTIONS[int(other_probs.argmax())]} ({other_probs.max():.0%})")
        show_maps(compare, other, face, method, targets, opacity, other_probs)
