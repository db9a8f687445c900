"""Training jobs started from the dashboard: launch, watch, stop, resume, delete (evaluate: runs/evaluating.py).

    from fer_models.runs.jobs import TrainRequest, launch, stop, resume
    job = launch(TrainRequest(model="cnn3", data="fer2013.csv.gz", epochs=5, name="demo"), "artifacts/runs")

A job is `python -m fer_models train ...` (or `torchrun --nproc_per_node=N -m fer_models train ...`)
started in a session of its own, so it outlives the Streamlit server; its arguments are a list,
never a shell line. It writes the usual run folder plus job.json (the command, the process group,
the devices it holds) and train.log (its output). Everything about a job is read back from the
run folder, so every browser tab and a restarted server see the same jobs. One job per device at
a time: a launch that would share a GPU (or the CPU) with a live job is refused.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from fer_models.core.constants import LABEL_SOURCES
from fer_models.runs.folder import (
    CONFIG_FILE,
    JOB_FILE,
    LAST_FILE,
    LOG_FILE,
    META_FILE,
    STATUS_FILE,
    RunFolder,
    RunProblem,
)
from fer_models.runs.processes import alive_or_zombie, is_trainer_of, our_running_child, trainer_alive
from fer_models.runs.registry import read_history, read_status
from fer_models.runs.settings import DEFAULT_WEIGHT_DECAY, RECIPE_FIELDS, SETTINGS, TrainConfig, argv_of, check

ROOT = Path(__file__).resolve().parents[2]
NAME_PATTERN = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_PROCESSES = 8
__all__ = ["DEFAULT_WEIGHT_DECAY", "LABEL_SOURCES", "RECIPE_FIELDS", "JobError", "TrainRequest", "data_summary",
           "delete", "job_state", "launch", "live_jobs", "log_tail", "recipe_of", "resume",
           "sanitise_name", "stop"]


class JobError(ValueError):
    """A job that cannot be started, stopped or deleted, with what to do instead."""


def sanitise_name(name: str) -> str:
    """A run name safe as one folder name: letters, digits, '-', '_', '.'; no leading dot; ≤ 64 characters."""
    clean = NAME_PATTERN.sub("_", name.strip()).strip("._-")[:64]
    if not clean:
        raise JobError(f"run name {name!r} has no letter or digit: name the run, e.g. cnn3_demo")
    return clean


def recipe_of(run_dir) -> dict:
    """The training settings of a run (the RECIPE_FIELDS its config.json names, each of the right kind),
    to start a new job from; {} when the run has no readable config. Values are not range-checked here:
    settings.clamped() brings them into the form's bounds and says which moved."""
    try:
        args = RunFolder(run_dir).read_json(CONFIG_FILE).get("args", {})
    except RunProblem:
        return {}
    if not isinstance(args, dict):
        return {}
    out = {}
    for key in RECIPE_FIELDS:
        value = args.get(key)
        if value is None:
            continue
        if check(key, value, ranges=False) is None:
            out[key] = value
    return out


@dataclass
class TrainRequest(TrainConfig):
    """A job the dashboard launches: the training settings, plus the run's name and its process count."""
    name: str = ""
    gpus: int = 1              # > 1: torchrun with one process per device (DDP)
    extra: list = field(default_factory=list)

    def problems(self, called: Mapping[str, str] = MappingProxyType({})) -> list[str]:
        """Everything wrong with the request, each with what to do, a setting named by its flag or by what a form
        `called` it; [] when it can be launched."""
        found = TrainConfig.problems(self, called)
        if not self.data:
            found.append("no dataset: give the path of a FER2013 CSV, a class-folder tree or a .npz")
        elif not Path(self.data).exists():
            found.append(f"dataset {self.data} does not exist on this machine")
        try:
            sanitise_name(self.name)
        except JobError as err:
            found.append(str(err))
        if not 1 <= self.gpus <= MAX_PROCESSES:
            found.append(f"the number of processes must be at least 1 and at most {MAX_PROCESSES}")
        elif self.gpus > 1 and self.batch_size < self.gpus:
            found.append(f"a batch of {self.batch_size} cannot be split over {self.gpus} processes")
        return found

    def train_args(self, out: Path) -> list[str]:
        """The trainer's arguments: every training setting, resolved (so the run records the lr and weight
        decay it used), as fer_models.runs.settings spells them."""
        cfg = TrainConfig(**{k: getattr(self, k) for k in SETTINGS}).resolved()
        names = [k for k in SETTINGS if k not in ("device", "val_split", "val_fraction")]
        names += ["val_fraction"] if self.val_fraction else ["val_split"]
        args = ["--out", str(out), "--device", self.device_arg()] + argv_of(cfg, names)
        if cfg.data:
            args[args.index("--data") + 1] = str(Path(cfg.data).resolve())
        return args + [str(a) for a in self.extra]

    def device_arg(self) -> str:
        # under torchrun each process takes the GPU of its local rank
        return "cuda" if self.gpus > 1 and self.device.startswith("cuda") else self.device

    def devices(self) -> list[str]:
        """The devices the job holds, for the one-job-per-device rule."""
        device = self.device
        if device == "auto":
            import torch
            device = "cuda:0" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            return ["cpu"]
        first = int(device.split(":")[1]) if ":" in device else 0
        return [f"cuda:{first + i}" for i in range(self.gpus)] if self.gpus > 1 else [f"cuda:{first}"]


def data_summary(path, label_source: str = "fer2013") -> dict:
    """Split sizes and class counts of a dataset, read (and cached) as the trainer will read it."""
    from fer_models.core.constants import EMOTIONS
    from fer_models.datasets.loading import load_faces

    data = load_faces(path, label_source=label_source)
    splits = {}
    for split in sorted(set(data.splits.tolist())):
        labels = data.labels[data.splits == split]
        splits[split] = {"faces": int(len(labels)),
                         "classes": {e: int((labels == i).sum()) for i, e in enumerate(EMOTIONS)}}
    return splits


# ---------------------------------------------------------------- launching

@contextmanager
def _launch_lock(root: Path):
    """Serialises check-then-launch across sessions and servers: two launches cannot both see a free GPU."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".launch.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_in_root(run, root) -> Path:
    """The run folder, resolved, if it is a direct child of the runs root (symlinks resolved too); else
    JobError. Every action that changes a run goes through here, so none reaches outside the root."""
    root = Path(root).resolve()
    path = Path(run)
    resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if resolved.parent != root or path.is_symlink():
        raise JobError(f"{run} is not a run folder directly under {root}: nothing done")
    return resolved


def _job(run: Path) -> dict:
    try:
        return RunFolder(run).job()
    except RunProblem:
        return {}


def live_jobs(root) -> list[dict]:
    """job.json of every job under root whose process is alive (with its run folder as `run`)."""
    root = Path(root)
    jobs = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        job = _job(run)
        if job and trainer_alive(job["pid"], run):
            jobs.append({**job, "run": str(run)})
    return jobs


def _start(command: list[str], run: Path, devices: list[str], root: Path, resume: bool) -> dict:
    busy = [(d, j["run"]) for j in live_jobs(root) for d in j.get("devices", []) if d in devices]
    if busy:
        device, other = busy[0]
        raise JobError(f"{device} is busy with {Path(other).name}: one job per device at a time. Stop that job "
                       "or pick another device")
    run.mkdir(parents=True, exist_ok=True)
    try:  # never through a link: a train.log pointing elsewhere would have the job's output written there
        log = os.fdopen(os.open(run / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                                | os.O_NONBLOCK, 0o644), "ab")
        info = os.fstat(log.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:  # a pipe, or a hard link to a file elsewhere
            log.close()
            raise OSError(f"{LOG_FILE} is not a regular file of this run alone")
    except OSError as err:
        raise JobError(f"{run.name}: cannot write its {LOG_FILE} ({err}); remove that file and try again") from err
    log.write(f"\n$ {' '.join(command)}\n".encode())
    log.flush()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    # a session of its own: the job outlives the server, and one signal to the group reaches torchrun's workers
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    log.close()
    job = {"pid": process.pid, "command": command, "devices": devices, "started": time.time(),
           "resumed": resume}
    RunFolder(run).write_json(JOB_FILE, job)
    return {**job, "run": str(run)}


def _command(run: Path, processes: int, train_args: list[str]) -> list[str]:
    python = [sys.executable, "-m"]
    if processes > 1:
        return python + ["torch.distributed.run", "--standalone", f"--nproc_per_node={int(processes)}",
                         "-m", "fer_models", "train"] + train_args
    return python + ["fer_models", "train"] + train_args


def launch(request: TrainRequest, root) -> dict:
    root = Path(root)
    problems = request.problems()
    if problems:
        raise JobError("; ".join(problems))
    run = root / sanitise_name(request.name)
    if run.is_symlink() or (run.exists() and not run.is_dir()):  # a link could send the job's writes elsewhere
        raise JobError(f"{run.name} already exists in {root} and is not a run folder: choose another name")
    if run.exists() and any(run.iterdir()):
        raise JobError(f"a run named {run.name} already exists in {root}: choose another name"
                       + (", or resume it" if _resumable_state(run) else ""))
    command = _command(run, request.gpus, request.train_args(run))
    with _launch_lock(root):
        return _start(command, run, request.devices(), root, resume=False)


def resumable(run) -> bool:
    """Whether the trainer saved anything to go on from: its last state, or at least its settings."""
    folder = RunFolder(run)
    return folder.file(LAST_FILE).exists() or folder.file(CONFIG_FILE).exists()


def _resumable_state(run: Path) -> bool:
    """Whether Resume would take this run: stopped, failed or interrupted with something saved (a finished run
    is trained longer from a terminal; "or resume it" sent a teacher to a button that refused)."""
    try:
        state = read_status(run).get("state")
    except RunProblem:
        return False
    return state not in ("running", "diverged", "finished") and resumable(run)


def resume(run, root=None) -> dict:
    """Continue a stopped, failed or interrupted run from its last checkpoint, on the devices it had.

    The command is rebuilt from the run's config.json, validated as training settings: nothing stored
    in the folder (job.json's command above all) is ever executed."""
    root = Path(root) if root else Path(run).parent
    run = run_in_root(run, root)
    folder = RunFolder(run)
    try:
        status = read_status(run)
    except RunProblem as err:
        raise JobError(f"{err}: it cannot be resumed from the dashboard") from err
    if status.get("state") == "running":
        raise JobError(f"{run.name} is still running")
    if status.get("state") == "diverged":
        raise JobError(f"{run.name} diverged, and resumed it would diverge again: start a new run with a lower "
                       "learning rate (Start from fills the form with its settings)")
    if status.get("state") == "finished":
        raise JobError(f"{run.name} has finished; to train longer, resume it from a terminal with a larger --epochs")
    if not resumable(run):
        raise JobError(f"{run.name} has no checkpoint to resume from; launch it again")
    try:
        config = folder.config()
        cfg = folder.settings(config)
    except RunProblem as err:
        raise JobError(f"{err}: it cannot be resumed from the dashboard") from err
    world = config.get("world_size", 1)
    processes = world if isinstance(world, int) and 1 <= world <= MAX_PROCESSES else 1
    device = cfg.device if processes == 1 or not cfg.device.startswith("cuda") else "cuda:0"
    devices = TrainRequest(device=device, gpus=processes).devices()
    command = _command(run, processes, ["--out", str(run), "--resume"])
    with _launch_lock(root):
        # a second Resume for the same stop (a click that reran the page twice) joins the job the first started:
        # its child, not yet the trainer to /proc, passed the busy check, and two trainers wrote one folder
        job = _job(run)
        if job.get("resumed") and our_running_child(job.get("pid")) and _launched_after(job, run / STATUS_FILE):
            return {**job, "run": str(run)}
        return _start(command, run, devices, root, resume=True)


def stop(run, wait: float = 0.0) -> bool:
    """Ask a job to stop gracefully (SIGTERM: the trainer finishes its step, saves and marks the run stopped).
    Only a process that /proc shows to be this run's trainer is signalled, and its process group only when
    it leads one (the dashboard starts each job in a session of its own). With `wait`, block up to that
    many seconds for it to exit; True if gone."""
    run = Path(run)
    pid = _job(run).get("pid") or read_status(run).get("pid")
    if not pid or not alive_or_zombie(pid):
        raise JobError(f"{run.name} has no live job to stop")
    if not is_trainer_of(pid, run):
        raise JobError(f"process {pid} named by {run.name} is not this run's trainer; nothing was signalled")
    pid = int(pid)
    job = _job(run)
    if job:  # a job stopped before its trainer wrote any status then reads stopped, not failed
        RunFolder(run).write_json(JOB_FILE, {**job, "stop_requested": time.time()})
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.time() + wait
    while time.time() < deadline:
        if not alive_or_zombie(pid):
            return True
        time.sleep(0.2)
    return not alive_or_zombie(pid)


def job_state(run) -> dict:
    """The run's status as the launcher shows it: `state` (running | finished | stopped | failed | interrupted |
    unreadable), progress fractions, ETA and the error; a job that exited before writing any status reads
    failed, or stopped (with a `note`) when it was asked to stop."""
    run = Path(run)
    try:
        status = read_status(run)
        job = RunFolder(run).job()
    except RunProblem as err:
        status, job = {"state": "unreadable", "recorded_state": "unreadable", "error": str(err)}, {}
    if job:
        alive = trainer_alive(job["pid"], run)
        if not status.get("recorded_state") or status.get("recorded_state") == "unknown":
            status["state"] = "running" if alive else "stopped" if job.get("stop_requested") else "failed"
            if status["state"] == "stopped":
                status["note"] = "stopped before it started training: nothing was saved, so there is nothing to resume"
            elif not alive:
                last = [line for line in log_tail(run, 5).splitlines() if line.strip()]
                status["error"] = status.get("error") or (f"the job exited before it started training: {last[-1]}"
                                                          if last else "the job exited before it started training")
        elif alive and status["recorded_state"] != "running" and _launched_after(job, run / STATUS_FILE):
            # resumed: until the new trainer writes its first status (imports, data: tens of seconds) the old
            # "stopped" is stale; the launch is what happened last
            status.update(state="running", starting=True, error=None)
    if status["state"] == "running" and not status.get("steps_per_epoch"):
        # the trainer's first word (epoch 0, no steps yet) precedes its data and checkpoint: a resumed card read
        # "epoch 0 of 3" for a moment before going back to its epoch
        status["starting"] = True
    status["resumed"] = bool(job.get("resumed"))
    # asked to stop, still saving: the card says so until it ends; a Resume writes a new job without the request
    status["stopping"] = status["state"] == "running" and bool(job.get("stop_requested"))
    epochs, spe = status.get("epochs") or 0, status.get("steps_per_epoch") or 0
    epoch, step = status.get("epoch") or 0, status.get("step") or 0
    total = epochs * spe
    # after an epoch the trainer already names the next one at step 0; a finished run has done them all
    done_steps = total if status["state"] == "finished" else (max(epoch - 1, 0) * spe + step if spe else 0)
    status["epoch_fraction"] = step / spe if spe else 0.0
    status["run_fraction"] = done_steps / total if total else 0.0
    status["eta_seconds"] = _eta_seconds(run, status, total - done_steps, spe)
    return status


def how_it_ended(status: dict, finished_epochs: int) -> str:
    """How far an ended job got and why it ended, in words (a stopped card read only "stopped")."""
    why = {"stopped": "stopped by Stop", "failed": "failed", "diverged": "diverged: its loss stopped being a number",
           "interrupted": "interrupted: its trainer is gone (killed, or the server restarted)"}[status["state"]]
    epochs, spe, step = status.get("epochs") or 0, status.get("steps_per_epoch") or 0, status.get("step") or 0
    if not spe:
        return f"{why} before its first step"
    of = f" of {epochs}" if epochs else ""
    if step == 0 and finished_epochs:
        where = f"after epoch {finished_epochs}{of}"
    else:
        where = f"in epoch {finished_epochs + 1}{of}, at step {step} of {spe}"
    done = f" ({(finished_epochs * spe + step) / (epochs * spe):.0%} of the run)" if epochs else ""
    scored = "" if finished_epochs else "; no epoch finished, so it has no validation score"
    return f"{why} {where}{done}{scored}"


def _launched_after(job: dict, status_file: Path) -> bool:
    try:
        return float(job.get("started") or 0) > status_file.stat().st_mtime
    except (OSError, TypeError, ValueError):
        return False


def _eta_seconds(run: Path, status: dict, steps_left: int, steps_per_epoch: int) -> float | None:
    """Seconds left: at the mean pace of the finished epochs (validation and slow starts included), or,
    during the first epoch, at the current images/s, which reads high in its first minutes."""
    try:
        seconds = read_history(run)["seconds"].dropna()
        batch = RunFolder(run).read_json(CONFIG_FILE).get("args", {}).get("batch_size")
    except (RunProblem, AttributeError):
        return None
    if len(seconds) and steps_per_epoch:
        return steps_left / steps_per_epoch * float(seconds.mean())
    speed = status.get("images_per_second")
    ok = isinstance(batch, int) and batch > 0 and speed and steps_left
    return steps_left * batch / speed if ok else None


def log_tail(run, lines: int = 20) -> str:
    path = Path(run) / LOG_FILE
    if not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64_000))
        text = f.read().decode(errors="replace")
    # progress bars redraw with carriage returns: keep the last state of each line
    return "\n".join(line.split("\r")[-1] for line in text.splitlines()[-lines:])


def delete(run, root) -> None:
    """Remove a user run's folder, which must be a direct child of the runs root. Shipped reference runs and
    live jobs are refused."""
    run = run_in_root(run, root)
    folder = RunFolder(run)
    if not folder.is_run():
        raise JobError(f"{run} does not look like a run folder; nothing deleted")
    try:
        shipped = "shipped" in folder.read_json(META_FILE)
    except RunProblem as err:
        raise JobError(f"{err}: whether it is a shipped reference run cannot be told, so it is not deleted; "
                       "remove the folder by hand if you mean to") from err
    if shipped:
        raise JobError(f"{run.name} is a shipped reference run; it cannot be deleted from the dashboard")
    if job_state(run)["state"] == "running":
        raise JobError(f"{run.name} is running: stop it first")
    shutil.rmtree(run)
