"""Architecture: every layer of the selected run's network, with its output shape for one 48×48 face."""
import streamlit as st

from app_pages._shared import md, selected_run
from fer_models.nets.architecture import dense_block_dot
from fer_models.nets.models import list_models
from fer_models.nets.structure import Structure, structure_of

st.title("Architecture")
st.caption("Read off the model object with torchinfo for a 1×48×48 gray face: nothing here is typed in.")


def unused_section(structure: Structure) -> None:
    """Said for any model, from its arithmetic and a gradient probe; the seed DenseNet's dead block 4 is the
    case that prompted it."""
    arch, findings, table = structure.arch, structure.findings, structure.reach_table
    st.subheader("What a 48×48 input leaves unused", anchor="unused")
    if not findings:
        st.caption(f"Every kernel tap of {arch} sees real pixels and every cell of every map reaches the class "
                   "scores: nothing is computed for nothing.")
    for sentence in findings:
        st.markdown(f"- {sentence}")
    with st.expander("Per layer: kernel taps, weights that never train, dropped rows, cells that reach the scores"):
        only = st.toggle("Only layers with a finding", value=bool(findings), key="unused_only")
        view = table
        if only:
            view = table[(table["weights never trained"] > 0) | (table["rows × cols dropped"] != "")
                         | table["cells reaching the output"].map(lambda s: s.split("/")[0] != s.split("/")[1])]
        st.dataframe(view, hide_index=True, width="stretch", height=360,
                     column_config={"weights never trained": st.column_config.NumberColumn(format="localized")})
        st.caption("A kernel tap is used if some output position places it over a real pixel, not padding. A cell "
                   "reaches the scores if some class score has a non-zero gradient there, on random faces in "
                   "eval mode.")


run = selected_run()
if run is not None:
    if run.arch not in list_models():
        st.error(f"Run {md(run.name)} names architecture {md(run.arch)}, which this version of FER Studio does not "
                 f"know. Known: {', '.join(list_models())}.")
        st.stop()
    with st.spinner("Tracing the network…"):
        structure = structure_of(run.arch)
    table, totals = structure.layers, structure.totals
    st.caption(f"Run **{md(run.name)}**: the {md(run.arch)} network.")
    left, mid, right, last = st.columns(4)
    left.metric("Parameters", f"{totals['parameters'] / 1e6:.2f} M",
                help="Weights and biases the training adjusts (BatchNorm's scale and shift included).")
    mid.metric("Mult-adds per face", f"{totals['mult_adds'] / 1e6:.1f} M",
               help="Multiply-accumulate operations to score one 48×48 face: the compute cost of a prediction.")
    right.metric("Layers", totals["layers"], help="Leaf modules: each conv, norm, activation, pool and linear layer.")
    last.metric("Activations per face", f"{totals['activations_mib']} MiB",
                help="Memory of every layer's output for one face: what a forward pass keeps for the backward "
                     "pass in training, times the batch size.")
    unused_section(structure)
    st.subheader("Blocks")
    st.caption("Each arrow carries the tensor shape (channels×height×width) for one face; consecutive single "
               "layers share one box.")
    st.html(structure.chain_html)
    blocks = structure.dense_blocks
    if blocks:
        st.subheader("Inside a dense block")
        name = st.selectbox("Dense block", list(blocks), format_func=lambda n: f"{n} ({len(blocks[n])} layers)")
        st.caption("Every layer reads the block input and the outputs of all layers before it, so its input "
                   "grows by the growth rate with each layer; the block outputs them all, concatenated. Use the "
                   "chart's full-screen button to enlarge it.")
        # off until asked: the browser's first graph layout costs densenet201_fer's first visit 0.8 s
        if st.toggle("Draw the block", key="draw_dense_block", help="Graphviz, laid out in your browser."):
            st.graphviz_chart(dense_block_dot(blocks[name]), width="content")
    st.subheader("Layers")
    types = sorted(table["type"].unique())
    shown = st.multiselect("Layer types", types, default=types)
    search = st.text_input("Layer name contains", placeholder="e.g. denseblock3 or conv")
    view = table[table["type"].isin(shown) & table["layer"].str.contains(search, regex=False)]
    st.dataframe(view, hide_index=True, width="stretch", height=520,
                 column_config={"parameters": st.column_config.NumberColumn(format="localized"),
                                "mult-adds": st.column_config.NumberColumn(format="localized")})
    st.caption(f"{len(view)} of {len(table)} layers; totals are over the whole network.")
