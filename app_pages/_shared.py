"""What every page shares: the run picker, cached reads of run folders, and md() for untrusted text."""
import gc
import os
import re
import shlex
import threading
import time
from pathlib import Path
from typing import NoReturn

import streamlit as st

from fer_models.runs.folder import HISTORY_FILE, MODEL_FILE, RunFolder, RunProblem
from fer_models.runs.registry import RunSummary, best_run, list_runs, read_history

ROOT = Path(__file__).resolve().parents[1]


# every character Markdown (or Streamlit's extensions: :colour[...] directives, $math$, emoji shortcodes) acts on
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&=\"'])")
# GFM links bare addresses (http://…, www.…, a@b.c) in the text left once escapes are undone: a zero-width space
# after the scheme, the "www" or the "@" keeps them text
_BARE_LINK = re.compile(r"(?i)https?(?=:)|www(?=\.)|@")


def md(value) -> str:
    """Untrusted text (a run's name or error, a path, a URL parameter, a column name) made inert before it goes
    into Markdown: st.markdown renders links and images even with unsafe_allow_html=False, so a crafted run
    could load a remote image or plant a javascript: link. Every special character is backslash-escaped and
    line breaks become spaces, so the text shows exactly as it is, on one line, bare web addresses unlinked."""
    text = _BARE_LINK.sub(lambda m: m.group(0) + "\u200b", " ".join(str(value).splitlines()))
    return _MARKDOWN.sub(r"\\\1", text)


_URL_CHANGES, _URL_WRITTEN = "_url_changes", "_url_written"


def url_value(key: str, default: str | None = None) -> str | None:
    """A URL parameter as this run leaves it: a change to_url keeps for the end of the run counts."""
    changes = st.session_state.get(_URL_CHANGES, {})
    if key in changes:
        return default if changes[key] is None else changes[key]
    return st.query_params.get(key, default)


def to_url(**values) -> None:
    """Keep `values` in the page's URL (None drops the key), written all at once as the run ends (write_url):
    each write of st.query_params that changed the address was a browser history entry of its own, eight for a
    visit to Mistakes, so Back stayed on the page. Fragments' reruns end without app.py: none writes the URL."""
    changes = st.session_state.setdefault(_URL_CHANGES, {})
    changes.update({key: None if value is None else str(value) for key, value in values.items()})


def write_url() -> None:
    """The run's URL changes in one message (one history entry, none where nothing changed)."""
    changes = st.session_state.pop(_URL_CHANGES, {})
    now = st.query_params.to_dict()
    wanted = {key: value for key, value in {**now, **changes}.items() if value is not None}
    if wanted != now:
        st.query_params.from_dict(wanted)
    st.session_state[_URL_WRITTEN] = wanted


def follow_url(key: str, param: str, value) -> None:
    """Set widget `key` to `value` (what the URL's `param` asks) before its first run, and whenever the URL moved
    since a run last wrote it: Back, Forward or a link. A widget keeps its own state, so after Back the page wrote
    the widget's choice over the URL again (One convolution's layer, the lesson's presenter type, Mistakes' page)."""
    if key not in st.session_state or url_value(param) != st.session_state.get(_URL_WRITTEN, {}).get(param):
        st.session_state[key] = value


def stop_page() -> NoReturn:
    """st.stop, the run's URL changes written first: once a stop is asked, Streamlit sends nothing more, and the
    write as app.py ends the run was lost (the Quiz's URL never named its run)."""
    write_url()
    st.stop()


def left_in_words(seconds: float) -> str:
    """Never "about 0 s left" while work remains (a short clip's last half second said so)."""
    return "under a second left" if seconds < 1 else f"about {round(seconds)} s left"


def pace(status: dict) -> str:
    """A training job's speed and time left, as its status says them; before its first steps are timed, that it is
    timing them ("? images/s · about ? left" read as something broken)."""
    speed, left = status.get("images_per_second"), status.get("eta_seconds")
    said = f"{speed} images/s" if speed else "timing its first steps"
    if left is not None:
        minutes, seconds = divmod(int(left), 60)
        said += f" · about {minutes // 60} h {minutes % 60:02d} min left" if minutes >= 60 else \
            f" · about {minutes} min {seconds:02d} s left"
    return said


def time_left(started: float, share: float, now: float | None = None) -> str:
    """' · about N s left' from the pace so far (started: time.monotonic()), once there is a pace to go by."""
    if not 0.02 < share < 1:
        return ""
    now = time.monotonic() if now is None else now
    return f" · {left_in_words((now - started) * (1 - share) / share)}"


def chart(fig, where=None, **kwargs):
    """st.plotly_chart (or `where`'s, a column) with every label legible from the back of a classroom."""
    from fer_models.teaching.figures import legible
    return (where or st).plotly_chart(legible(fig), **kwargs)


class Collector:
    """A full garbage collection when a page run ends, at most once every `period` seconds server-wide.
    Streamlit's own (runner.postScriptGC, off in .streamlit/config.toml) ran one after every session's every
    run, each holding the interpreter's lock ~94 ms under a class's load: 26.6 of the server's 45 CPU-seconds
    for 30 users (bench/load_server.py). Never collecting let memory creep 25 MB a tour of the pages."""

    def __init__(self, period: float, clock=time.monotonic, collect=gc.collect):
        self.period, self.clock, self.collect = period, clock, collect
        self.last = -period
        self.lock = threading.Lock()

    def __call__(self) -> bool:
        with self.lock:
            now = self.clock()
            if now - self.last < self.period:
                return False
            self.last = now
        self.collect(2)
        return True


collect_garbage = Collector(period=2.0)


def runs_root() -> Path:
    return Path(os.environ.get("FER_STUDIO_RUNS", ROOT / "artifacts" / "runs"))


@st.cache_data(ttl=5, show_spinner=False)  # short: a run started elsewhere shows up within seconds
def cached_runs(root: str) -> list[RunSummary]:
    return list_runs(root)


def describe(run: RunSummary) -> str:
    acc = f"{run.val_acc:.1%}" if run.val_acc is not None else "no epoch yet"
    # the state in words: symbols such as ⏸ are missing from common fonts and show as boxes
    # a run named for its model says it once: "resnet10_fer_long · resnet10_fer · 66.5%" lost its accuracy to the
    # sidebar's width at 1280 px
    model = "" if run.arch and run.name.startswith(run.arch) else f" · {run.arch or '?'}"
    # "finished" is the settled state and left out: the sidebar's box cut the longest names off there
    state = "" if run.state == "finished" else f" · {run.state}"
    return f"{run.name}{model} · {acc}{state}"


def run_details(run: RunSummary) -> str:
    """The picked run in one line under the picker: its state, epochs and where its best one was."""
    epochs = f"{run.epochs_done}/{run.epochs} epochs" if run.epochs else f"{run.epochs_done} epochs"
    # at the picker's precision: "59.0%" in the picker over "58.99%" here read as two figures for one
    best = f" · best validation {run.val_acc:.1%} (epoch {run.best_epoch})" if run.val_acc is not None else ""
    return f"{run.state.capitalize()} · {epochs}{best}"


def run_picker() -> None:
    """Sidebar select box over every run; the choice lives in session state and in the URL."""
    runs = cached_runs(str(runs_root()))
    st.session_state["runs"] = runs
    if not runs:
        st.session_state["run"] = None
        st.sidebar.info(f"No runs in {md(runs_root())}.")
        return
    names = [r.name for r in runs]
    wanted = st.session_state.get("run_name") or url_value("run")
    index = names.index(wanted if wanted in names else best_run(runs).name)
    if wanted and wanted not in names:  # an old or mistyped link: say whose numbers the page shows instead
        asked = wanted if len(wanted) <= 60 else wanted[:60] + "…"
        with st.container(key="run_notice"):  # app.py's style moves it below the page's header, which hid its top
            st.warning(f"No run named '{md(asked)}' here: showing {md(names[index])} instead. "
                       "Pick another in the sidebar's Run box.", icon=":material/help:")
    if st.session_state.get("run_name") not in names:  # a run since deleted (or none yet): the index decides
        st.session_state.pop("run_name", None)
    # the index only for a box without a value: Webcam's "Switch to" sets the value, and an index beside it made
    # Streamlit warn of a widget given a value both ways
    name = st.sidebar.selectbox("Run", names, index=0 if "run_name" in st.session_state else index, key="run_name",
                                format_func=lambda n: describe(runs[names.index(n)]))
    to_url(run=name)
    st.session_state["run"] = runs[names.index(name)]
    st.sidebar.caption(run_details(runs[names.index(name)]))


def selected_run() -> RunSummary | None:
    """The picked run, or None after telling the user how to get one (the page should then stop)."""
    run = st.session_state.get("run")
    if run is not None and run.state == "unreadable":
        st.error(f"{md(run.error)}. Fix or remove the folder {md(run.path)}; the other runs work as usual.")
        return None
    if run is None:
        st.info("No trained run to show yet. Train one with\n\n"
                "`fer-studio train --model cnn3 --data path/to/fer2013.csv.gz "
                f"--out {runs_root()}/my_cnn3`\n\nand it appears in the sidebar.")
    return run


@st.cache_data(show_spinner=False)
def cached_history(path: str, mtime: float):
    return read_history(path)


def history_version(run: RunSummary) -> float:
    """When the run's history.csv last changed (0 when it has none): the key of everything read from it."""
    path = Path(run.path) / HISTORY_FILE
    return path.stat().st_mtime if path.exists() else 0.0


def history_of(run: RunSummary):
    """The run's history.csv; an empty table, after saying why, if it became unreadable since it was listed."""
    try:
        return cached_history(str(run.path), history_version(run))
    except RunProblem as err:
        st.warning(md(err))
        return read_history(Path(run.path) / "no such folder")


@st.cache_resource(show_spinner="Loading the model…", max_entries=6)
def cached_model(run_path: str, mtime: float):
    """One model object per checkpoint version, shared by every session: prepared (eval mode, channels_last)
    here, before any session sees it, and never changed after; fer_models.explain hooks only into private
    views of it."""
    from fer_models.explain.shared import ready
    from fer_models.runs.checkpoints import load_model

    model, meta = load_model(run_path)
    return ready(model), meta


def checkpoint_key(run: RunSummary) -> str:
    """Names one version of a run's weights, for caches of what is computed from them."""
    return f"{run.path}@{(Path(run.path) / MODEL_FILE).stat().st_mtime}"


def model_of(run: RunSummary):
    """(model, meta) of the run's best checkpoint, or None after saying why it cannot be loaded."""
    from fer_models.runs.checkpoints import CheckpointError

    weights = Path(run.path) / MODEL_FILE
    if not weights.exists():
        st.info(f"Run {md(run.name)} has no checkpoint yet: model.safetensors is written after its first epoch"
                + (" (it is still training)." if run.state == "running" else "."))
        return None
    try:
        return cached_model(str(run.path), weights.stat().st_mtime)
    except CheckpointError as err:
        st.error(f"Cannot load run {md(run.name)}'s checkpoint: {md(err)}")
        return None


@st.cache_resource(show_spinner=False)
def _imports() -> threading.Thread:
    def load():
        import captum.attr  # noqa: F401  (0.6 s more, which the first Saliency visit no longer waits for)
        import torch

        import fer_models.nets.architecture  # noqa: F401  (torchinfo, the models)

        # one intra-op thread for every thread the server starts afterwards (each page run is one; a new thread
        # takes this number on its first operation). Off the main thread OpenMP's team of two ran a face's work
        # 2-3 times slower than one thread (densenet201_fer on 2 cores: Grad-CAM 134 → 46 ms, an ascent step
        # 135 → 48 ms), more than it gains on batches (resnet10_fer's Occlusion 219 → 309 ms; bench/threads.py);
        # and sessions side by side then share the cores without contending
        torch.set_num_threads(1)
        # the modules just imported live as long as the server. Out of the collector's sight, the full
        # collection Streamlit runs after every rerun (before the browser hears the page is done) takes
        # 40 ms instead of 150-230. Turning that collection off instead let memory creep up 25 MB a tour
        # of the pages.
        gc.collect()
        gc.freeze()
    # not a daemon: one stopped mid-import or mid-forward pass by the interpreter's exit aborts the process
    thread = threading.Thread(target=load, name="warm-up-imports")
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def _prepare(arch: str, run_path: str, mtime: float) -> None:
    """Nested in a cached function, the cached calls below show no spinner: there is no page to show one."""
    from fer_models.nets.models import layer_output_sizes
    from fer_models.nets.structure import structure_of

    structure_of(arch)
    layer_output_sizes(arch)  # read by Saliency's Grad-CAM line: 0.2 s the first time on densenet201_fer
    if mtime:
        cached_model(run_path, mtime)


@st.cache_resource(show_spinner=False)
def _prepare_in_background(arch: str, run_path: str, mtime: float) -> threading.Thread:
    def work():
        _imports().join()
        from fer_models.nets.models import list_models

        if arch not in list_models():  # the Architecture page says so when it is opened
            return
        try:
            _prepare(arch, run_path, mtime)
        except Exception:  # noqa: BLE001 - a broken checkpoint is the page's to report, when it is opened
            pass
    thread = threading.Thread(target=work, name=f"warm-up-{arch}")  # not a daemon either: seconds of work
    thread.start()
    return thread


def torch_imported() -> None:
    """Wait for the warm-up's imports (starting them if this is the server's first page): a page that needs
    torch imports it only after them, never alongside."""
    _imports().join()


def warm_up(run: RunSummary | None) -> None:
    """Once the first page is drawn, import torch and the models in the background, then compute what the
    picked run's pages open on (its architecture's structure, its checkpoint loaded), so that a first visit
    to them waits for none of it (densenet201_fer: 2.5 s of imports, then 1 s of structure and 0.4 s of
    checkpoint)."""
    _imports()
    if run is not None and run.state != "unreadable" and run.arch:
        weights = Path(run.path) / MODEL_FILE
        _prepare_in_background(run.arch, str(run.path), weights.stat().st_mtime if weights.exists() else 0.0)


def selected_model():
    """(run, model, meta) of the picked run; with no run or no loadable checkpoint the page stops after
    saying why."""
    run = selected_run()
    loaded = model_of(run) if run is not None else None
    if loaded is None:
        stop_page()
    return (run, *loaded)


def role_of(run: RunSummary, split: str) -> str:
    """What `split` was to the run (fer_models.runs.registry.split_role), from its own settings; "unknown" when
    they cannot be read."""
    from fer_models.runs.registry import split_role

    try:
        return split_role(RunFolder(run.path).config(), split)
    except RunProblem:
        return "unknown"


def require_evaluation(run: RunSummary) -> None:
    """Stop the page, saying how to make one, when the run has no evaluation."""
    if run.evaluations:
        return
    # the quick demo's: "score it on PublicTest" contradicted the Train page's card
    if role_of(run, "PublicTest") == "training":
        st.info(f"Run {md(run.name)} has no evaluation, and PublicTest would not test it: it trained on PublicTest. "
                "Its best validation accuracy, on the faces it held out, is its score (on the Training history "
                "page). A run trained on FER2013's Training split can be evaluated on PublicTest.")
    else:
        st.info(f"Run {md(run.name)} has no evaluation yet. Score it with the command below.")
        # a code block, never Markdown: in a code span a backtick in the run's folder name closed the span, and
        # what followed it (a link) was live
        st.code(f"fer-studio evaluate --run {shlex.quote(str(run.path))} --data path/to/fer2013.csv.gz "
                "--split PublicTest", language="bash")
    stop_page()


def evaluation_from_url(run: RunSummary) -> int:
    """The index in run.evaluations of the one the URL's ?split= names, else PublicTest's (or the first's); a
    split the run has no evaluation of is said in one line (an old link showed PublicTest without a word)."""
    splits = run.evaluations
    default = "PublicTest" if "PublicTest" in splits else splits[0]
    asked = url_value("split")
    if asked is not None and asked not in splits:
        shown = asked if len(asked) <= 40 else asked[:40] + "…"
        st.warning(f"{md(run.name)} has no evaluation of '{md(shown)}': showing {md(default)}. Pick another in the "
                   "Evaluation box.", icon=":material/help:")
    return splits.index(asked if asked in splits else default)


def split_role_note(run: RunSummary, split: str) -> None:
    """Say what an evaluation's split was to the run, from its own settings, wherever a score is shown: a split
    that picked the best epoch gives a slightly optimistic score, a split never seen gives a test score."""
    role = role_of(run, split)
    name = md(split.removesuffix("-tta"))
    if role == "validation":
        st.caption(f"{name} is **validation** for {md(run.name)}: it picked the best epoch on it, so these scores "
                   "are a little optimistic. Only a split it never saw is a test: FER2013's PrivateTest, scored "
                   "by `fer-studio evaluate --run RUN --data fer2013.csv --split PrivateTest` from a copy of FER2013 "
                   "that holds it.")
    elif role == "training":
        st.warning(f"{name} is the split {md(run.name)} trained on: these scores say how well it learned, not how "
                   "well it recognises faces it has not seen.")
    elif role == "test":
        st.caption(f"{name} is a **test** for {md(run.name)}: never seen in training or in choosing its epoch.")
