"""The face the explain pages work on: a dataset face (by class, at random, by id, or from a link
?face=ID&split=SPLIT), an uploaded photo or a camera shot. Photos go through fer_models.faces.

The pick is kept in session state under its own keys (not only in widget state, which Streamlit
drops on a page switch), so Saliency and Filters show the same face.
"""
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from app_pages._dataset import load_split
from app_pages._shared import md, role_of, stop_page, to_url, url_value
from fer_models.core.constants import EMOTIONS, MAX_PHOTO_MB, MAX_PIXELS
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.datasets.facedata import DataError
from fer_models.explain.pictures import enlarge
from fer_models.faces.decode import ImageError, read_image
from fer_models.faces.detect import DETECTORS, draw_faces, find_faces
from fer_models.runs.folder import METRICS_FILE, RunFolder, RunProblem
from fer_models.runs.registry import faces_source

SOURCES = ["Dataset", "Upload", "Camera"]
ANY = "any class"


@dataclass
class PickedFace:
    pixels: np.ndarray        # uint8 48 x 48: exactly what the model reads
    label: int | None         # the dataset's label, when known
    origin: str               # in words, for captions; as given (an upload's file name): escape it to show it


# decoded photos kept for reruns and page switches, newest last, within a byte budget: a 25-megapixel photo is
# 75 MB decoded, and 16 of them (the count-bounded cache before) held 1.2 GB of a server's memory
PHOTO_CACHE_BYTES = 400 << 20
_SEARCHES: OrderedDict = OrderedDict()
_SEARCHES_LOCK = threading.Lock()


def search_photo(digest: str, data: bytes, name: str, detector: str = "mtcnn"):
    """find_faces on the decoded photo, kept by the photo's digest and the detector so that reruns do not decode
    it again; the oldest are dropped past PHOTO_CACHE_BYTES (the newest is always kept)."""
    key = (digest, detector)
    with _SEARCHES_LOCK:
        if key in _SEARCHES:
            _SEARCHES.move_to_end(key)
            return _SEARCHES[key]
    with st.spinner("Looking for faces…"):
        search = find_faces(read_image(data, name), detector)
    with _SEARCHES_LOCK:
        _SEARCHES[key] = search
        while len(_SEARCHES) > 1 and sum(s.rgb.nbytes for s in _SEARCHES.values()) > PHOTO_CACHE_BYTES:
            _SEARCHES.popitem(last=False)
    return search


def detector_setting(key: str = "face_detector") -> str:
    """The face detector, one setting shared by every page that finds faces (kept across page switches); MTCNN's
    networks start loading as soon as a page offers it."""
    keep(key, "mtcnn")
    chosen = st.radio(
        "Face detector", list(DETECTORS), format_func=DETECTORS.get, key=key, on_change=store, args=(key,),
        horizontal=True,
        help="MTCNN finds tilted and partly covered faces and levels the eyes from its landmarks; the Haar "
             "cascades are OpenCV's classic detector, kept to compare. If MTCNN finds no face, the Haar search "
             "runs before falling back to a centre crop.")
    if chosen == "mtcnn":
        _mtcnn_in_background()
    return chosen


@st.cache_resource(show_spinner=False)
def _mtcnn_in_background() -> threading.Thread:
    """MTCNN's networks loaded behind the page that will use them, while its user picks a photo or a clip:
    importing facenet-pytorch (and torchvision) and reading the weights took 0.9 s, which a 3-s clip's first
    analysis paid (1.85× real time instead of 4.5×, cnn3)."""
    def load():
        from fer_models.faces.mtcnn import nets

        try:
            nets()
        except Exception:  # noqa: BLE001 - facenet-pytorch missing: the page says so when it looks for a face
            pass
    thread = threading.Thread(target=load, name="warm-up-mtcnn")  # not a daemon: an import cut short aborts
    thread.start()
    return thread


def keep(key: str, default):
    """A widget value that survives page switches: copy the kept value into the widget's key before the widget
    is drawn, on every run. Copied only when the key was missing, the widget on the next page (the same key,
    another page's widget) came up empty while the last page's value was still in session state."""
    st.session_state.setdefault(f"_{key}", default)
    st.session_state[key] = st.session_state[f"_{key}"]


def store(key: str):
    st.session_state[f"_{key}"] = st.session_state[key]


def _from_link():
    """A link from the confusion page (?face=ID&split=SPLIT) selects that dataset face once."""
    face_id = url_value("face")
    link = (face_id, url_value("split", "PublicTest"))
    if face_id and st.session_state.get("_linked") != link:
        st.session_state["_linked"] = link
        st.session_state["_face_split"] = link[1]
        for key, value in (("face_source", "Dataset"), ("face_id", face_id), ("face_class", ANY)):
            st.session_state[f"_{key}"] = st.session_state[key] = value


def _faces_for(run, split: str):
    """(file, split) to pick dataset faces from: the data the run's evaluation of `split` scored
    when it is on this machine, else the bundled PublicTest faces."""
    if run is not None and split in run.evaluations:
        try:
            metrics = RunFolder(RunFolder(run.path).eval_dir(split)).read_json(METRICS_FILE)
        except RunProblem:
            metrics = {}
        source = faces_source(metrics, split)
        if source is not None:
            return source, split.removesuffix("-tta")
    return BUNDLED_PUBLICTEST, "PublicTest"


def pick_face(run=None) -> PickedFace | None:
    _from_link()
    keep("face_source", "Dataset")
    source = st.radio("Face from", SOURCES, key="face_source", horizontal=True, on_change=store,
                      args=("face_source",))
    if source == "Dataset":
        asked = st.session_state.get("_face_split", "PublicTest")
        path, split = _faces_for(run, asked)
        if split != asked.removesuffix("-tta"):  # a link's split (?split=) with no faces here: say whose are shown
            whose = f" evaluated for {md(run.name)}" if run is not None else ""
            st.warning(f"No {md(asked)} faces{whose} on this machine: these are the bundled PublicTest faces.")
        if run is not None and role_of(run, split) == "training":  # the quick demo's: it trained on the bundle
            st.caption(f"{md(run.name)} trained on these {md(split)} faces: what it makes of them shows what it "
                       "learned, not how it reads a face it has never seen.")
        return _dataset_face(path, split)
    to_url(face=None)
    if source == "Upload":
        upload = st.file_uploader("Photo (png, jpg, webp, bmp)", type=["png", "jpg", "jpeg", "webp", "bmp"],
                                  max_upload_size=MAX_PHOTO_MB, key="upload")
        return _photo_face(upload, "_upload")
    shot = st.camera_input("Take a photo", key="camera")
    return _photo_face(shot, "_camera")


def _dataset_face(path: Path, split: str) -> PickedFace | None:
    if not path.exists():
        st.warning(f"The bundled faces ({md(path)}) are missing: upload a photo instead.")
        return None
    try:
        images, labels, ids, index = load_split(path, split)
    except DataError as err:
        st.error(f"Could not read the faces: {md(err)}")
        return None
    keep("face_class", ANY)
    keep("face_id", str(ids[0]))
    chosen = st.selectbox("Class", [ANY, *EMOTIONS], key="face_class", on_change=store, args=("face_class",))
    pool = np.arange(len(ids)) if chosen == ANY else np.flatnonzero(labels == EMOTIONS.index(chosen))
    current = index.get(st.session_state["face_id"].strip())
    if current is not None and current not in set(pool.tolist()):  # the class filter changed: move into it
        st.session_state["face_id"] = st.session_state["_face_id"] = str(ids[pool[0]])
    if st.button("Random face", icon=":material/casino:"):
        rng = np.random.default_rng()
        st.session_state["face_id"] = st.session_state["_face_id"] = str(ids[rng.choice(pool)])
    # the range alone in the label: with the split's name it wrapped in One convolution's narrow column
    wanted = st.text_input(f"Face id ({md(ids[0])}–{md(ids[-1])})", key="face_id", on_change=store,
                           args=("face_id",), help=f"The id of a {md(split)} face: its row in FER2013's file, "
                           f"from {md(ids[0])} to {md(ids[-1])}").strip()
    if wanted not in index:
        st.error(f"No {md(split)} face has id '{md(wanted)}': ids run from {md(ids[0])} to {md(ids[-1])}.")
        return None
    row = index[wanted]
    to_url(face=wanted)
    st.session_state["_linked"] = (wanted, url_value("split", "PublicTest"))  # ours, not a new link
    label = int(labels[row]) if labels[row] >= 0 else None
    named = f" ({EMOTIONS[label]})" if label is not None else ""
    return PickedFace(images[row, 0], label, f"{split} face {wanted}{named}")


def _photo_face(upload, kept: str) -> PickedFace | None:
    """Decode, detect, let the user choose among the faces; the last photo is kept for other pages."""
    if upload is not None and upload.size > MAX_PHOTO_MB * 2**20:
        st.error(f"{md(upload.name)} is {upload.size / 2**20:.0f} MB, over the {MAX_PHOTO_MB} MB limit for a photo: "
                 "save it smaller and upload it again.")
        return None
    if upload is not None:
        st.session_state[kept] = (upload.name, upload.getvalue())
    if kept not in st.session_state:
        st.caption(f"Any size up to {MAX_PIXELS // 1_000_000} megapixels; the faces in it are found and boxed.")
        return None
    name, data = st.session_state[kept]
    if upload is None:
        st.caption(f"Using {md(name)}, chosen earlier.")
    detector = detector_setting()
    try:
        search = search_photo(hashlib.sha1(data).hexdigest(), data, name, detector)
    except ImageError as err:
        st.error(md(err))
        return None
    n = len(search.faces)
    choice = 0
    if n > 1:
        choice = st.selectbox("Face", range(n),
                              format_func=lambda i: f"face {i + 1}" + (" (largest)" if i == 0 else ""),
                              key=f"{kept}_choice") or 0
    (st.warning if search.fallback else st.info)(search.message)
    shown = draw_faces(search.rgb, search.faces, choice)
    # never wider than the column: a fixed 320 px spilled over the captions of a 1280-wide screen
    st.image(shown, caption=f"{md(name)}: {search.rgb.shape[1]}×{search.rgb.shape[0]}", width="stretch")
    return PickedFace(search.crop(choice), None, f"{name}, face {choice + 1} of {n}" if not search.fallback
                      else f"{name}, centre crop (no face found)")


def show_model_input(face: PickedFace) -> None:
    st.image(enlarge(face.pixels, 192), caption=f"What the model sees: 48×48 gray · {md(face.origin)}", width=192)


def face_beside(run, widths: list[int]):
    """The face picker and what the model sees of it in a left column; the right column, for what the page shows of
    that face, is returned with it. The page stops there while no face is picked."""
    pick, result = st.columns(widths, gap="large")
    with pick:
        face = pick_face(run)
        if face is not None:
            show_model_input(face)
    if face is None:
        stop_page()
    return face, result
