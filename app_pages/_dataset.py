"""Dataset faces for the pages, cached: the evaluation's own data when it is on this machine, else the
bundled PublicTest split (fer_models.runs.registry.faces_source says which)."""
from pathlib import Path

import streamlit as st

from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.datasets.loading import load_faces
from fer_models.evaluation.mistakes import votes_of_evaluation


# a resource, shared by every session and never written to: as cached data each call unpickled a copy of the
# split's 8.8 MB, a tenth of the server's busy time under a class's load (py-spy, bench/load_server.py)
@st.cache_resource(show_spinner="Loading the faces…", max_entries=4)
def cached_faces(path: str, split: str, mtime: float):
    """(images N x 1 x 48 x 48, labels, ids, {id: row})."""
    data = load_faces(path, splits=[split.removesuffix("-tta")])
    return data.images, data.labels, data.ids, {face_id: i for i, face_id in enumerate(data.ids)}


def load_split(source: Path, split: str):
    return cached_faces(str(source), split, source.stat().st_mtime)


@st.cache_data(show_spinner="Reading the FER+ votes…")
def cached_votes(data: str | None, split: str):
    """(votes by face id or None, where they come from or why there are none) for an evaluation's faces."""
    return votes_of_evaluation({"data": data}, split, BUNDLED_PUBLICTEST)
