"""Architecture: every layer of the selected run's network, with its output shape for one 48×48 face."""
from urllib.parse import quote

import streamlit as st

from app_pages import _architecture_view as architecture
from app_pages._shared import md, selected_run, stop_page
from fer_models.nets.architecture import dense_block_dot
from fer_models.nets.models import list_models
from fer_models.nets.structure import structure_of
from fer_models.teaching.glossary import GLOSSARY

st.title("Architecture")
st.caption("Measured on the model itself by passing one 48×48 gray face through it (with the torchinfo library): "
           "nothing here is typed in.")


run = selected_run()
if run is not None:
    if run.arch not in list_models():
        st.error(f"Run {md(run.name)} names architecture {md(run.arch)}, which this version of FER Studio does not "
                 f"know. Known: {', '.join(list_models())}.")
        stop_page()
    with st.spinner("Tracing the network…"):
        structure = structure_of(run.arch)
    table, totals = structure.layers, structure.totals
    st.caption(f"Run **{md(run.name)}**: the {md(run.arch)} network.")
    architecture.totals(structure)
    architecture.unused(structure)
    st.subheader("Blocks")
    st.caption("Each arrow carries the tensor shape (channels×height×width) for one face; consecutive single "
               "layers share one box.")
    architecture.chain(structure)
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
    view = table[table["type"].isin(shown) & table["layer"].str.contains(search, regex=False)].copy()
    # a conv row opens One convolution on that layer (a relative link: the same server, this run)
    view["by hand"] = [f"convolution?run={quote(run.name)}&layer={quote(name)}" if kind == "Conv2d" else ""
                       for name, kind in zip(view["layer"], view["type"])]
    # 5rem each side left a 1280 px projector 820 px, too few for densenet201_fer's 39-character layer names
    st.html("<style>@media (max-width: 1400px) { [data-testid='stMainBlockContainer'] { padding-left: 3rem; "
            "padding-right: 3rem; } }</style>")
    st.dataframe(view, hide_index=True, width="stretch", height=520,
                 # one-letter window columns, as on The math: left to the grid, densenet201_fer's long layer
                 # names pushed the last header past a projector's 1280 px
                 column_config={**{c: st.column_config.Column(c[0], width=44, help=c) for c in
                                   ("kernel", "stride", "padding")},
                                "output shape": st.column_config.Column("output", width=84,
                                                                        help="channels×height×width"),
                                "parameters": st.column_config.NumberColumn(format="localized", width=84),
                                "mult-adds": st.column_config.NumberColumn(format="localized", width=92,
                                                                           help=GLOSSARY["mult-adds"]),
                                "by hand": st.column_config.LinkColumn(
                                    "by hand", display_text="open", width=70,
                                    help="One output cell of this conv computed by hand on a real face")})
    st.caption(f"{len(view)} of {len(table)} layers; totals are over the whole network.")
