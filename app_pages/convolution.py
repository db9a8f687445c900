"""One convolution: any output cell of any conv layer of the selected run, computed by hand on a real face."""
import streamlit as st

from app_pages._convolution_view import cell_words, pick_cell, step_view, trace_of
from app_pages._face_picker import face_beside
from app_pages._shared import follow_url, md, selected_model, to_url, url_value
from fer_models.teaching.convolution import convolution_step

st.title("One convolution, step by step")
st.caption("Click a cell of a feature map: its value is the kernel times the input window under it, summed, plus "
           "the bias, through the batch norm and the ReLU. Every number comes from the trained network, and the "
           "last one is checked against its own forward pass.")

@st.fragment
def explore(trace, channel: int, layer: str, run_name: str) -> None:
    """The map and the picked cell's arithmetic: a click reruns only this, not the face picker above it."""
    where, beside = st.columns(2)
    with where:
        row, col = pick_cell(trace, channel, f"conv_map_{run_name}_{layer}_{channel}", side=260)
        h, w = trace.outputs.shape[1:]
        st.caption(f"Filter {channel}'s {h}×{w} map on this face; click a cell "
                   f"({cell_words(trace, channel, row, col)}).")
    step_view(trace, convolution_step(trace, channel, row, col), f"conv_{layer}", beside=beside)


run, model, meta = selected_model()
layers = model.conv_layers()
names = list(layers)
asked = url_value("layer")
face, main = face_beside(run, [1, 3])
with main:
    a, b = st.columns([3, 1])
    if st.session_state.get("conv_layer") not in names:  # another run's layer
        st.session_state.pop("conv_layer", None)
    follow_url("conv_layer", "layer", asked if asked in names else names[0])
    layer = a.selectbox("Conv layer", names, key="conv_layer",
                        format_func=lambda n: f"{n}: {layers[n].in_channels}→{layers[n].out_channels} channels, "
                                              f"{layers[n].kernel_size[0]}×{layers[n].kernel_size[1]}, stride "
                                              f"{layers[n].stride[0]}, padding {layers[n].padding[0]}")
    to_url(layer=layer)
    trace = trace_of(run, model, meta, face.pixels, layer)
    last = trace.outputs.shape[0] - 1
    asked = url_value("filter", "")
    # digits alone (no sign), and few: int() of 5,000 digits raises
    follow_url("conv_channel", "filter", min(int(asked), last) if asked.isdigit() and len(asked) <= 6 else 0)
    if st.session_state["conv_channel"] > last:  # kept from a layer with more filters
        st.session_state["conv_channel"] = last
    channel = b.number_input("Filter", 0, last, key="conv_channel")
    to_url(filter=int(channel))
    explore(trace, int(channel), layer, run.name)
    st.caption(f"Run {md(run.name)}, layer {md(layer)}.")
