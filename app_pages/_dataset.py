"""Dataset faces for the pages: the evaluation's own data when it is on this machine, else the
bundled PublicTest split (artifacts/data/fer2013_publictest.npz)."""
from pathlib import Path

import streamlit as st

from app_pages._shared import ROOT
from fer_models.data import load_faces

BUNDLED_PUBLICTEST = ROOT / "artifacts" / "data" / "fer2013_publictest.npz"


@st.cache_data(show_spinner="Loading the faces…")
def cached_faces(path: str, split: str, mtime: float):
    """(images N x 1 x 48 x 48, labels, ids, {id: row})."""
    data = load_faces(path, splits=[split.removesuffix("-tta")])
    return data.images, data.labels, data.ids, {face_id: i for i, face_id in enumerate(data.ids)}


def faces_source(metrics: dict, split: str) -> Path | None:
    """The dataset an evaluation scored, if it is on this machine; else the bundled PublicTest faces."""
    recorded = Path(metrics.get("data", ""))
    if metrics.get("data") and recorded.exists():
        return recorded
    if split.removesuffix("-tta") == "PublicTest" and BUNDLED_PUBLICTEST.exists():
        return BUNDLED_PUBLICTEST
    return None


def load_split(source: Path, split: str):
    return cached_faces(str(source), split, source.stat().st_mtime)
