"""Train: start a training job, watch it live, stop, resume, evaluate or delete it."""
import time
from pathlib import Path
from urllib.parse import quote

import streamlit as st

from app_pages._access import teacher_gate
from app_pages._evaluation_job import EvaluationJob, start_evaluation
from app_pages._shared import cached_runs, chart, md, pace, runs_root
from fer_models.core.constants import LABEL_SOURCES
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.datasets.facedata import DataError
from fer_models.nets.models import list_models
from fer_models.runs.folder import CONFIG_FILE, JOB_FILE, RunFolder, RunProblem
from fer_models.runs.jobs import (
    MAX_PROCESSES,
    JobError,
    TrainRequest,
    data_summary,
    delete,
    how_it_ended,
    job_state,
    launch,
    log_tail,
    recipe_of,
    resumable,
    resume,
    sanitise_name,
    stop,
)
from fer_models.runs.registry import RunSummary, list_runs, read_history, split_role
from fer_models.runs.settings import (
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    DEMO_EPOCHS,
    OPTIMIZERS,
    RECIPE_FIELDS,
    SCHEDULES,
    TrainConfig,
    clamped,
    form_range,
)
from fer_models.teaching.figures import history_figure
from fer_models.teaching.glossary import GLOSSARY

HOLDOUT = "holdout"  # the "Validate on" choice that is not a split: a 10% stratified part of the training split
HOLDOUT_FRACTION = 0.1
FORM_DEFAULTS = {key: getattr(TrainConfig(), key) for key in RECIPE_FIELDS}  # the one source's defaults


@st.cache_data(show_spinner="Reading the dataset…", max_entries=8)
def cached_summary(path: str, mtime: float, label_source: str):
    return data_summary(path, label_source)


def summary_of(path: str, label_source: str):
    """(split sizes, None) or (None, the reason the data cannot be used)."""
    try:
        return cached_summary(path, Path(path).stat().st_mtime, label_source), None
    except OSError as err:  # said in words: "[Errno 2] No such file or directory: '…'" read as a crash
        return None, f"{path}: {(err.strerror or 'cannot be read').lower()}; give a path on this server"
    except (DataError, ValueError) as err:
        return None, str(err)


def devices() -> list[str]:
    import torch
    return ["auto", "cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


# ---------------------------------------------------------------- one card per job, by state

def running_card(run: RunSummary, status: dict, buttons) -> None:
    if status.get("starting"):  # no step yet: its bars would read "epoch 0 of ?"
        st.caption("Starting: loading the model and the data" + ("; it resumes from its last saved state."
                                                                  if status.get("resumed") else "."))
    else:
        epochs = status.get("epochs") or "?"
        st.progress(min(status["epoch_fraction"], 1.0),
                    text=f"epoch {status.get('epoch', 0)} of {epochs}: step {status.get('step', 0)} of "
                         f"{status.get('steps_per_epoch') or '?'}")
        st.progress(min(status["run_fraction"], 1.0), text=f"whole run {status['run_fraction']:.0%} · {pace(status)}")
    if status.get("gpu_memory_mib"):
        use = f", utilisation {status['gpu_utilisation']}%" if status.get("gpu_utilisation") is not None else ""
        st.caption(f"GPU memory {status['gpu_memory_mib']:,} MiB{use}")
    if status.get("stopping"):  # on the card, not a toast: it goes when the card says stopped, never outlives it
        buttons.caption("Stopping: it finishes its step and saves its state, then reads stopped.")
    elif buttons.button("Stop", key=f"stop_{run.name}", help="Finishes the current step, saves, marks it stopped"):
        try:
            stop(run.path)
            st.rerun()
        except JobError as err:
            st.error(md(err))


def interrupted_card(run: RunSummary, status: dict, buttons, root: Path) -> None:
    """A stopped, failed or interrupted job: why, and Resume."""
    if status.get("error"):
        st.error(f"{md(run.name)} {md(status['state'])}: {md(status['error'])}")
    if not resumable(run.path):
        st.info(f"{md(run.name)} {md(status.get('note') or 'saved nothing to resume from')}: delete it and start it "
                "again below.")
        return
    if buttons.button("Resume", key=f"resume_{run.name}", help="Continue from the last saved state"):
        try:
            resume(run.path, root)
            st.rerun()
        except JobError as err:
            st.error(md(err))


def finished_card(run: RunSummary, buttons) -> None:
    """Evaluate a finished run on the other splits of its dataset, when that dataset is on this machine."""
    try:
        settings = RunFolder(run.path).settings()
    except RunProblem as err:
        st.caption(f"Its settings cannot be read ({md(err)}): evaluate it from a terminal.")
        return
    data = settings.data
    if not data or not Path(data).exists():
        st.caption(f"Its dataset ({md(data or 'unknown')}) is not on this machine: evaluate it from a terminal.")
        return
    sizes, _ = summary_of(data, "fer2013")
    config = RunFolder(run.path).config()
    roles = {s: split_role(config, s) for s in (sizes or {})}
    # splits it never saw first: a test score; then the one that picked its epoch; never the one it trained on
    choices = sorted((s for s in roles if roles[s] != "training"), key=lambda s: (roles[s] != "test", s))
    if not choices:  # the quick demo's: the bundle holds PublicTest alone, and it trained on it
        st.caption(f"Every split of its dataset ({', '.join(map(md, roles)) or 'none'}) is one it trained on, so "
                   "no score here would be a test: its best validation accuracy above, on the faces it held out, is "
                   "its score. A run trained on a FER2013 file can be evaluated here on PublicTest.")
        return
    splits = buttons.multiselect("Splits", choices, default=choices[:1], key=f"splits_{run.name}",
                                 format_func=lambda s: f"{s} ({roles[s]})", label_visibility="collapsed")
    key = f"evaluating_{run.name}"
    job = st.session_state.get(key)
    if buttons.button("Evaluate", key=f"eval_{run.name}", disabled=not splits or (job is not None and job.running),
                      help="Scores it on the chosen splits; the confusion page then shows them") and \
            (job is None or not job.running):  # a click the page reran twice starts one evaluation
        st.session_state[key] = start_evaluation(run.path, run.name, data, splits)
        st.rerun()  # the whole page: its jobs panel then redraws every 2 s while the faces are scored
    if job is None:
        return
    if job.running:
        share, words = job.progress()
        st.progress(share, text=words)
        return
    if not job.announced:  # once: the runs' list learns of the new evaluation, and the panel stops redrawing
        job.announced = True
        cached_runs.clear()
        st.rerun()
    for result in job.results:
        if "error" in result:
            st.error(f"{md(result['split'])}: {md(result['error'])}")
        else:
            st.success(f"{md(result['split'])}: accuracy {result['accuracy']:.2%}. [Open its confusion matrix]"
                       f"(confusion?run={quote(run.name, safe='')})")


def delete_control(run: RunSummary, buttons, root: Path) -> None:
    with buttons.popover("Delete…"):
        st.warning(f"Delete the folder {md(run.path)} with its weights, history and evaluations?")
        if st.button(f"Delete {md(run.name)} for good", key=f"delete_{run.name}", type="primary"):
            try:
                delete(run.path, root)
                cached_runs.clear()
                st.rerun()
            except JobError as err:
                st.error(md(err))


def job_card(run: RunSummary, root: Path, manage: bool) -> None:
    """One job: its state, progress, curves and log; with `manage`, its Stop, Resume, Evaluate and Delete."""
    status = job_state(run.path)
    state = status["state"]
    head, buttons = st.columns([3, 2])
    best = "" if run.val_acc is None else f" · best validation {run.val_acc:.1%}" + \
        (f" (epoch {run.best_epoch})" if run.best_epoch is not None else "")
    head.markdown(f"**{md(run.name)}** · {md(run.arch or '?')} · {md(state)}{best}")
    try:
        history = read_history(run.path)
    except RunProblem:
        history = None
    if state in ("stopped", "failed", "interrupted", "diverged"):
        head.caption(md(how_it_ended(status, 0 if history is None else len(history))))
    if not manage:
        if status.get("error"):
            st.error(f"{md(run.name)} {md(state)}: {md(status['error'])}")
    elif state == "running":
        running_card(run, status, buttons)
    elif state in ("stopped", "failed", "interrupted"):
        interrupted_card(run, status, buttons, root)
    elif state == "diverged":  # resuming would diverge again: a new run with a lower rate is the way on
        st.error(f"{md(run.name)} diverged: {md(status.get('error') or 'its loss is no longer a number')}")
    elif state == "finished":
        finished_card(run, buttons)
    elif state == "unreadable":
        st.error(md(status["error"]))
    if manage and state != "running":
        delete_control(run, buttons, root)
    if history is not None and not history.empty:
        with st.expander("Curves", expanded=state == "running"):
            chart(history_figure([(run.name, history)]), width="stretch", key=f"curves_{run.name}")
    tail = log_tail(run.path)
    if tail:
        with st.expander("Log", expanded=state in ("failed", "interrupted")):
            st.code(tail, language=None)


def jobs_panel(root: Path, manage: bool, listed: list[RunSummary]) -> None:
    """`listed`: this run's reading of the runs folder (each reading parses every run's history: 16 ms for the
    shipped five), which the panel's own reruns every 2 s read afresh."""
    def launched(run: RunSummary) -> float:
        try:  # job.json's own time: a stop rewrites the file, and by its date the stopped job jumped to the top
            return float(RunFolder(run.path).job().get("started") or (run.path / JOB_FILE).stat().st_mtime)
        except (OSError, RunProblem, TypeError, ValueError):
            return 0.0

    def jobs(runs=None):  # newest launch first: the job just started or resumed is the one a teacher looks for
        return sorted((r for r in (list_runs(root) if runs is None else runs)
                       if (r.path / JOB_FILE).exists() or r.state == "running"), key=launched, reverse=True)

    first = [jobs(listed)]  # the full run's panel takes this; a rerun of the panel alone finds the list empty
    running = any(job_state(r.path)["state"] == "running" for r in first[0]) or any(
        isinstance(job, EvaluationJob) and job.running for job in st.session_state.values())

    @st.fragment(run_every=2 if running else None)
    def panel():
        current = first.pop() if first else jobs()
        flash = st.session_state.get("train_flash")
        if flash:  # said while its job starts and runs; once it has ended, its card says how
            if any(r.name == flash[0] and job_state(r.path)["state"] == "running" for r in current):
                st.success(flash[1])
            else:
                del st.session_state["train_flash"]
        if not current:
            st.info("No jobs yet: start one below.")
        for run in current:
            with st.container(border=True):
                job_card(run, root, manage)
    panel()


# ---------------------------------------------------------------- the form

def data_ui() -> tuple[str, str, bool, dict | None, str | None]:
    """(data path, label source, demo?, split sizes, why the data cannot be used)."""
    source = st.radio("Dataset", ["mine", "demo"], horizontal=True,
                      format_func={"mine": "A dataset on this machine",
                                   "demo": "Bundled PublicTest faces (quick demo)"}.get,
                      help="The demo trains on 90% of the bundled PublicTest faces and validates on the other 10%: "
                           "it shows training happen in minutes, but its accuracy says nothing about FER2013 test "
                           "data.")
    demo = source == "demo"
    a, b = st.columns([3, 1])
    if demo:
        data = str(BUNDLED_PUBLICTEST)
        a.text_input("Data", data, disabled=True)
    else:
        data = a.text_input("Path to a FER2013 CSV (.csv or .csv.gz), a class-folder tree or a .npz",
                            placeholder="/data/fer2013/fer2013.csv.gz")
    label_source = b.selectbox("Labels", LABEL_SOURCES, disabled=demo,
                               help="FER+ labels need fer2013new.csv beside the data")
    sizes, data_error = summary_of(data, label_source) if data else (None, None)
    if data_error:
        st.error(f"This dataset cannot be used: {md(data_error)}")
    elif sizes:
        st.caption("Splits: " + ", ".join(f"{md(name)} {info['faces']:,} faces" for name, info in sizes.items()))
    return data, "fer2013" if demo else label_source, demo, sizes, data_error


def take_recipe(root: Path, demo: bool) -> None:
    """Fill the form from the run picked in "Start from" (its widgets read their values from session state);
    values outside the form's bounds are clamped, and said."""
    picked = st.session_state["job_recipe"]
    recipe = recipe_of(root / picked) if picked else {}
    choices = {"model": list_models(), "optimizer": OPTIMIZERS, "schedule": SCHEDULES}
    recipe = {k: v for k, v in recipe.items() if k not in choices or v in choices[k]}  # e.g. a model since removed
    values, notes = clamped({**FORM_DEFAULTS, "epochs": DEMO_EPOCHS if demo else FORM_DEFAULTS["epochs"], **recipe})
    for key, value in values.items():
        st.session_state[f"job_{key}"] = value
    if notes:
        # the notes quote the picked run's own values, as untrusted as its name
        st.session_state["train_recipe_note"] = (f"From {md(picked)}, out of range and clamped: "
                                                 + "; ".join(md(note) for note in notes))


def recipe_ui(root: Path, demo: bool, listed: list[RunSummary]) -> None:
    recipes = [r.name for r in listed if (r.path / CONFIG_FILE).exists()]
    st.columns(2)[0].selectbox("Start from", [""] + recipes, key="job_recipe", on_change=take_recipe,
                               args=(root, demo),
                               format_func=lambda n: f"the settings of {n}" if n else "the default settings",
                               help="Copies a run's model, schedule, optimizer, regularisation and augmentation into "
                                    "the form; the data, splits and device stay as you set them here.")
    if "job_model" not in st.session_state or st.session_state.get("job_demo") != demo:
        st.session_state["job_demo"] = demo
        take_recipe(root, demo)
    if "train_recipe_note" in st.session_state:
        st.warning(st.session_state.pop("train_recipe_note"))


# the form's names for the settings, which its list of problems uses (the trainer's flags mean nothing here)
CALLED = {"epochs": "Epochs", "batch_size": "Batch size", "lr": "Learning rate", "seed": "Seed",
          "crop_pad": "Crop padding", "rotate": "Rotation °", "scale": "Scale ±", "erase": "Random erasing",
          "mixup": "Mixup α", "label_smoothing": "Label smoothing", "weight_decay": "Weight decay", "ema": "Weight EMA",
          "model": "Model", "optimizer": "Optimizer", "schedule": "Schedule", "train_split": "Train on",
          "val_split": "Validate on", "device": "Device"}


def setting_box(where, name: str, **kwargs):
    """A number box for a training setting, its range said in its help and checked when Start is pressed (start
    lists what is out of range): with the range as the box's bounds, the browser kept an out-of-range entry to
    itself and ignored Start without a word."""
    lo, hi = form_range(name)
    whole = isinstance(lo, int)
    said = (kwargs.pop("help", "") + " ").lstrip() + (f"From {lo:,} to {hi:,}." if whole else f"From {lo:g} to {hi:g}.")
    return where.number_input(CALLED[name], step=1 if whole else None, key=f"job_{name}", help=said, **kwargs)


def job_form(data: str, label_source: str, demo: bool, sizes: dict | None) -> TrainRequest | None:
    """The new-job form; the request once "Start training" is pressed, else None."""
    with st.form("new_job", enter_to_submit=False):  # Enter in Epochs started a job before it was named
        a, b, c, d = st.columns(4)
        model = a.selectbox(CALLED["model"], list_models(), key="job_model")
        name = b.text_input("Run name", placeholder="empty: model_date-time",
                            help="A folder name under the runs root. Empty: the model and the start time, "
                                 "e.g. resnet10_fer_20261129-1012.")
        epochs = setting_box(c, "epochs")
        batch = setting_box(d, "batch_size")
        a, b, c, d = st.columns(4)
        optimizer = a.selectbox(CALLED["optimizer"], OPTIMIZERS, key="job_optimizer")
        schedule = b.selectbox(CALLED["schedule"], SCHEDULES, key="job_schedule")
        lr = setting_box(c, "lr", value=None, format="%.4f", placeholder="default",
                         help="Empty: the optimizer's default, "
                              + ", ".join(f"{o} {v:g}" for o, v in DEFAULT_LR.items()) + ".")
        seed = setting_box(d, "seed")
        splits = list(sizes or {"Training": None, "PublicTest": None})
        a, b, c, d = st.columns(4)
        train_split = a.selectbox(CALLED["train_split"], splits,
                                  index=splits.index("Training") if "Training" in splits else 0)
        val_choices = [HOLDOUT] + splits
        val_split = b.selectbox(CALLED["val_split"], val_choices,
                                # short enough for a quarter of the form at 1280 px; the help says the rest
                                format_func=lambda s: f"{HOLDOUT_FRACTION:.0%} hold-out" if s == HOLDOUT else s,
                                index=0,
                                help="The split that picks the best epoch, whose scores are then a little "
                                     f"optimistic. {HOLDOUT_FRACTION:.0%} hold-out: a stratified "
                                     f"{HOLDOUT_FRACTION:.0%} of the training split, kept out of training; it keeps "
                                     "PublicTest a test, never seen in training or in choosing the epoch.")
        device = c.selectbox(CALLED["device"], devices())
        processes = d.number_input("Processes", value=1, step=1,
                                   help="More than one trains on several GPUs at once, one process each, every "
                                        "process on its own share of each batch (PyTorch's DistributedDataParallel, "
                                        f"started by torchrun; gloo on CPU). From 1 to {MAX_PROCESSES}.")
        st.markdown("Augmentation and regularisation")
        a, b, c, d, e, f = st.columns(6)
        flip = a.checkbox("Flip", key="job_flip")
        crop_pad = setting_box(b, "crop_pad")
        rotate = setting_box(c, "rotate")
        scale = setting_box(d, "scale", help="Random zoom by up to this fraction.")
        erase = setting_box(e, "erase")
        mixup = setting_box(f, "mixup", help="Each batch is blended with a shuffled copy of itself, "
                            "images and labels alike, by a weight drawn from Beta(α, α); 0 is off.")
        a, b, c, _ = st.columns([1, 1, 1, 3])
        smoothing = setting_box(a, "label_smoothing")
        weight_decay = setting_box(b, "weight_decay", value=None, format="%.5f",
                                   placeholder="default",
                                   help="Empty: " + ", ".join(f"{o} {v:g}" for o, v in DEFAULT_WEIGHT_DECAY.items())
                                   + " (AdamW's decay is decoupled from the gradient, the others' is not).")
        ema = setting_box(c, "ema", format="%.4f",
                          help=f"{GLOSSARY['EMA']} Its decay per step, e.g. 0.999; 0 is off.")
        if not st.form_submit_button("Start training", type="primary"):
            return None
    holdout = val_split == HOLDOUT
    name = name.strip() or f"{model}_{time.strftime('%Y%m%d-%H%M')}"
    return TrainRequest(model=model, data=data, name=name, label_source=label_source, train_split=train_split,
                        val_split="PublicTest" if holdout else val_split,
                        val_fraction=HOLDOUT_FRACTION if holdout else 0.0, epochs=int(epochs), batch_size=int(batch),
                        lr=lr or None, optimizer=optimizer, schedule=schedule, seed=int(seed), device=device,
                        gpus=int(processes), flip=flip, crop_pad=int(crop_pad), rotate=rotate, scale=scale,
                        erase=erase, label_smoothing=smoothing, mixup=mixup, weight_decay=weight_decay, ema=ema)


def start(request: TrainRequest, root: Path, data_error: str | None) -> None:
    problems = request.problems(CALLED)
    if data_error:
        problems.append(f"the dataset cannot be used: {data_error}")
    if problems:
        st.error("Not started:\n\n" + "\n".join(f"- {md(p)}" for p in problems))
        return
    try:
        job = launch(request, root)
    except JobError as err:
        st.error(f"Not started: {md(err)}")
        return
    cached_runs.clear()
    name = sanitise_name(request.name)
    st.session_state["train_flash"] = (name, f"Started {md(name)} (process {job['pid']}); it appears in the run "
                                             "picker at once, with its model after its first epoch.")
    st.session_state["train_just_started"] = name
    st.rerun()


def started_below_the_form() -> None:
    """Once, on the page drawn right after Start: the new card is at the top, a screen or two above the button
    the teacher just pressed."""
    name = st.session_state.pop("train_just_started", None)
    if name:
        st.toast(f"Started {md(name)}", icon=":material/play_arrow:")
        st.success(f"Started {md(name)}: its card is the first under [Jobs](#jobs), at the top of the page.")


def main() -> None:
    st.title("Train")
    st.caption("Jobs run as processes of their own: they go on when you close the tab or restart the dashboard, "
               "and every tab shows the same jobs, read from their run folders.")
    root = runs_root()
    manage = teacher_gate()
    st.subheader("Jobs", anchor="jobs")
    listed = list_runs(root)
    jobs_panel(root, manage, listed)
    if not manage:
        return
    st.subheader("New job")
    data, label_source, demo, sizes, data_error = data_ui()
    recipe_ui(root, demo, listed)
    request = job_form(data, label_source, demo, sizes)
    if request is not None:
        start(request, root, data_error)
    started_below_the_form()


main()
