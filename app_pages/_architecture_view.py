"""A network's make-up as the Architecture page and the lesson draw it: its size in four figures, the chain of
blocks with the tensor shape on every arrow, and what the 48×48 input leaves unused."""
import streamlit as st

from fer_models.nets.structure import Structure
from fer_models.teaching.glossary import GLOSSARY


def totals(structure: Structure) -> None:
    totals = structure.totals
    left, mid, right, last = st.columns(4)
    left.metric("Parameters", f"{totals['parameters'] / 1e6:.2f} M",
                help="Weights and biases the training adjusts (BatchNorm's scale and shift included).")
    mid.metric("Mult-adds per face", f"{totals['mult_adds'] / 1e6:.1f} M",
               help=GLOSSARY["mult-adds"])
    right.metric("Layers", totals["layers"], help="Leaf modules: each conv, norm, activation, pool and linear layer.")
    last.metric("Activations per face", f"{totals['activations_mib']} MiB",
                help="Memory of every layer's output for one face (1 MiB = 1,048,576 bytes): what a forward pass "
                     "keeps for the backward pass in training, times the batch size.")
    st.caption(f"**Mult-adds**: {GLOSSARY['mult-adds']}")  # in sight: a class at a projector sees no tooltip


def chain(structure: Structure) -> None:
    st.html(structure.chain_html)


def unused(structure: Structure) -> None:
    """Said for any model, from its arithmetic and a gradient probe; the seed DenseNet's dead block 4 is the
    case that prompted it."""
    arch, findings, table = structure.arch, structure.findings, structure.reach_table
    st.subheader("What a 48×48 input leaves unused", anchor="unused")
    if not findings:
        st.caption(f"Every kernel tap of {arch} sees real pixels and every cell of every map reaches the class "
                   "scores: nothing is computed for nothing.")
    for sentence in findings:  # the page's one use of "Grad-CAM" explained where it is (its tooltip)
        st.markdown(f"- {sentence}", help=GLOSSARY["Grad-CAM"] if "Grad-CAM" in sentence else None)
    with st.expander("Per layer: kernel taps, weights that never train, dropped rows, cells that reach the scores"):
        only = st.toggle("Only layers with a finding", value=bool(findings), key="unused_only")
        view = table
        if only:
            view = table[(table["weights never trained"] > 0) | (table["rows × cols dropped"] != "")
                         | table["cells reaching the output"].map(lambda s: s.split("/")[0] != s.split("/")[1])]
        # short headers, the full meaning on hover: at 1280 px the long ones ran past the table's right edge
        column = st.column_config
        st.dataframe(view, hide_index=True, width="stretch", height=360, column_config={
            "kernel taps used": column.TextColumn("taps used", help="Kernel taps over a real pixel (not padding) "
                                                  "at some output position, of all the kernel's taps"),
            "weights never trained": column.NumberColumn("untrained", format="localized",
                                                         help="Weights that never get a gradient: they only "
                                                              "ever see padding or dropped rows"),
            "rows × cols dropped": column.TextColumn("dropped", help="Rows × columns of the input that a stride "
                                                     "or pooling never reads"),
            "cells reaching the output": column.TextColumn("reach scores", help="Cells of the output map where "
                                                           "some class score has a non-zero gradient, of all")})
        st.caption("A kernel tap is used if some output position places it over a real pixel, not padding. A cell "
                   "reaches the scores if some class score has a non-zero gradient there, on random faces in "
                   "eval mode.")
