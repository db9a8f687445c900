"""An architecture as the Architecture and The math pages show it, computed once per architecture and server:
an untrained instance (shapes and counts do not depend on the weights, so no checkpoint is read), its layer
table, block chain, reach findings and shape walk. `_shared.warm_up` fills these behind the landing page.

Imports torch: only pages that need it, and the warm-up thread, import this module."""
import threading

import pandas as pd
import streamlit as st

from fer_models.architecture import block_chain_html, layer_table
from fer_models.derivations import shape_walk
from fer_models.models import create_model
from fer_models.reach import findings_in_words, reach_table, unused_parts

# torchinfo, the reach probe and the shape walk all hook into the one shared instance: run together (the
# warm-up and a page, or two sessions) each would record the other's forward pass
_HOOKS = threading.Lock()


@st.cache_resource(show_spinner=False)
def untrained(arch: str):
    """One instance per architecture, shared by the pages (they only read its structure)."""
    return create_model(arch)


@st.cache_data(show_spinner="Tracing the network…")
def layers(arch: str):
    model = untrained(arch)
    with _HOOKS:
        return layer_table(model)


@st.cache_data(show_spinner=False)
def chain(arch: str) -> str:
    model = untrained(arch)
    with _HOOKS:
        return block_chain_html(model)


@st.cache_data(show_spinner="Probing which weights and cells reach the output…")
def reach(arch: str):
    model = untrained(arch)
    with _HOOKS:
        report = unused_parts(model)
    return findings_in_words(report), reach_table(report)


@st.cache_data(show_spinner=False)
def walk(arch: str) -> pd.DataFrame:
    model = untrained(arch)
    with _HOOKS:
        return pd.DataFrame(shape_walk(model))


def prepare(arch: str) -> None:
    """Everything above for one architecture, in the order the Architecture page reads it."""
    layers(arch), reach(arch), chain(arch), walk(arch)
