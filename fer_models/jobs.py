"""Training jobs started from the dashboard: launch, watch, stop, resume, evaluate, delete.

    from fer_models.jobs import TrainRequest, launch, stop, resume
    job = launch(TrainRequest(model="cnn3", data="fer2013.csv.gz", epochs=5, name="demo"), "artifacts/runs")

A job is `python -m fer_models.train ...` (or `torchrun --nproc_per_node=N -m fer_models.train ...`)
started in a session of its own, so it outlives the Streamlit server; its arguments are a list,
never a shell line. It writes the usual run folder plus job.json (the command, the process group,
the devices it holds) and train.log (its output). Everything about a job is read back from the
run folder, so every browser tab and a restarted server see the same jobs. One job per device at
a time: a launch that would share a GPU (or the CPU) with a live job is refused.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_json
from .runs import _alive_or_zombie, _process_alive, _read_json, read_history, read_status

ROOT = Path(__file__).resolve().parents[1]
JOB_FILE, LOG_FILE = "job.json", "train.log"
LABEL_SOURCES = ("fer2013", "ferplus-majority", "ferplus-soft")
# AdamW's decay is decoupled (scaled by the learning rate only); SGD's and Adam's is an L2 term in the
# gradient, where 0.05 would shrink the weights ~100x harder than the usual 5e-4
DEFAULT_WEIGHT_DECAY = {"adamw": 0.05, "adam": 5e-4, "sgd": 5e-4}
# the settings a new job can take over from a run's config.json (not its data, splits or device)
RECIPE_FIELDS = ("model", "epochs", "batch_size", "optimizer", "schedule", "lr", "weight_decay", "ema", "seed",
                 "flip", "crop_pad", "rotate", "scale", "erase", "label_smoothing", "mixup")
NAME_PATTERN = re.compile(r"[^A-Za-z0-9_.-]+")


class JobError(ValueError):
    """A job that cannot be started, stopped or deleted, with what to do instead."""


def sanitise_name(name: str) -> str:
    """A run name safe as one folder name: letters, digits, '-', '_', '.'; no leading dot; ≤ 64 characters."""
    clean = NAME_PATTERN.sub("_", name.strip()).strip("._-")[:64]
    if not clean:
        raise JobError(f"run name {name!r} has no letter or digit: name the run, e.g. cnn3_demo")
    return clean


def recipe_of(run_dir) -> dict:
    """The training settings of a run (RECIPE_FIELDS of its config.json), to start a new job from;
    {} when the run has no readable config."""
    args = _read_json(Path(run_dir) / "config.json").get("args", {})
    return {k: args[k] for k in RECIPE_FIELDS if k in args and args[k] is not None}


@dataclass
class TrainRequest:
    model: str = "cnn3"
    data: str = ""
    name: str = ""
    label_source: str = "fer2013"
    train_split: str = "Training"
    val_split: str = "PublicTest"
    val_fraction: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    lr: float | None = None
    optimizer: str = "adamw"
    schedule: str = "onecycle"
    weight_decay: float | None = None  # None: DEFAULT_WEIGHT_DECAY of the optimizer
    label_smoothing: float = 0.1
    mixup: float = 0.0
    ema: float = 0.0
    flip: bool = True
    crop_pad: int = 4
    rotate: float = 10.0
    scale: float = 0.1
    erase: float = 0.25
    seed: int = 0
    device: str = "auto"       # auto | cpu | cuda:N
    gpus: int = 1              # > 1: torchrun with one process per GPU (DDP)
    extra: list = field(default_factory=list)

    def problems(self) -> list[str]:
        """Everything wrong with the request, each with what to do; [] when it can be launched."""
        from .models import list_models

        found = []
        if self.model not in list_models():
            found.append(f"model {self.model!r} is not registered; choose one of {', '.join(list_models())}")
        if not self.data:
            found.append("no dataset: give the path of a FER2013 CSV, a class-folder tree or a .npz")
        elif not Path(self.data).exists():
            found.append(f"dataset {self.data} does not exist on this machine")
        try:
            sanitise_name(self.name)
        except JobError as err:
            found.append(str(err))
        if self.label_source not in LABEL_SOURCES:
            found.append(f"label source must be one of {', '.join(LABEL_SOURCES)}")
        checks = [(self.epochs >= 1, "epochs must be at least 1"),
                  (self.batch_size >= 1, "batch size must be at least 1"),
                  (self.lr is None or 0 < self.lr <= 10, "learning rate must be in (0, 10]"),
                  (0 <= self.val_fraction < 1, "the validation fraction must be in [0, 1)"),
                  (0 <= self.erase <= 1, "the erasing probability must be in [0, 1]"),
                  (0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)"),
                  (0 <= self.ema < 1, "the EMA decay must be in [0, 1)"),
                  (self.weight_decay is None or 0 <= self.weight_decay < 1, "weight decay must be in [0, 1)"),
                  (self.gpus >= 1, "the number of processes must be at least 1")]
        found += [message for ok, message in checks if not ok]
        if self.gpus > 1 and self.batch_size < self.gpus:
            found.append(f"a batch of {self.batch_size} cannot be split over {self.gpus} processes")
        return found

    def train_args(self, out: Path) -> list[str]:
        args = ["--model", self.model, "--data", str(Path(self.data).resolve()), "--out", str(out),
                "--label-source", self.label_source, "--train-split", self.train_split,
                "--epochs", str(self.epochs), "--batch-size", str(self.batch_size),
                "--optimizer", self.optimizer, "--schedule", self.schedule,
                "--weight-decay", str(self.decay()), "--label-smoothing", str(self.label_smoothing),
                "--mixup", str(self.mixup), "--ema", str(self.ema), "--crop-pad", str(self.crop_pad),
                "--rotate", str(self.rotate), "--scale", str(self.scale), "--erase", str(self.erase),
                "--seed", str(self.seed), "--device", self.device_arg()]
        args += ["--val-fraction", str(self.val_fraction)] if self.val_fraction else ["--val-split", self.val_split]
        if self.lr is not None:
            args += ["--lr", str(self.lr)]
        if not self.flip:
            args.append("--no-flip")
        return args + [str(a) for a in self.extra]

    def decay(self) -> float:
        return DEFAULT_WEIGHT_DECAY.get(self.optimizer, 5e-4) if self.weight_decay is None else self.weight_decay

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
    from .data import EMOTIONS, load_faces

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


def live_jobs(root) -> list[dict]:
    """job.json of every job under root whose process is alive (with its run folder as `run`)."""
    root = Path(root)
    jobs = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        job = _read_json(run / JOB_FILE)
        if job and _process_alive(job.get("pid")):
            jobs.append({**job, "run": str(run)})
    return jobs


def _start(command: list[str], run: Path, devices: list[str], root: Path, resume: bool) -> dict:
    busy = [(d, j["run"]) for j in live_jobs(root) for d in j.get("devices", []) if d in devices]
    if busy:
        device, other = busy[0]
        raise JobError(f"{device} is busy with {Path(other).name}: one job per device at a time. Stop that job "
                       "or pick another device")
    run.mkdir(parents=True, exist_ok=True)
    log = open(run / LOG_FILE, "ab")
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
    atomic_write_json(run / JOB_FILE, job)
    return {**job, "run": str(run)}


def launch(request: TrainRequest, root) -> dict:
    root = Path(root)
    problems = request.problems()
    if problems:
        raise JobError("; ".join(problems))
    run = root / sanitise_name(request.name)
    if run.exists() and any(run.iterdir()):
        raise JobError(f"a run named {run.name} already exists in {root}: choose another name, or resume it")
    python = [sys.executable, "-m"]
    if request.gpus > 1:
        command = python + ["torch.distributed.run", "--standalone", f"--nproc_per_node={request.gpus}",
                            "-m", "fer_models.train"] + request.train_args(run)
    else:
        command = python + ["fer_models.train"] + request.train_args(run)
    with _launch_lock(root):
        return _start(command, run, request.devices(), root, resume=False)


def resume(run, root=None) -> dict:
    """Continue a stopped, failed or died run from its last checkpoint, on the devices it had."""
    run = Path(run)
    root = Path(root) if root else run.parent
    status = read_status(run)
    if status.get("state") == "running":
        raise JobError(f"{run.name} is still running")
    if status.get("state") == "finished":
        raise JobError(f"{run.name} has finished; to train longer, resume it from a terminal with a larger --epochs")
    if not (run / "last.safetensors").exists() and not (run / "config.json").exists():
        raise JobError(f"{run.name} has no checkpoint to resume from; launch it again")
    job = _read_json(run / JOB_FILE)
    old = job.get("command") or [sys.executable, "-m", "fer_models.train"]
    head = old[:old.index("fer_models.train") + 1] if "fer_models.train" in old else [sys.executable, "-m",
                                                                                       "fer_models.train"]
    command = head + ["--out", str(run), "--resume"]
    with _launch_lock(root):
        return _start(command, run, job.get("devices", ["cpu"]), root, resume=True)


def stop(run, wait: float = 0.0) -> bool:
    """Ask a job to stop gracefully (SIGTERM to its process group: the trainer finishes its step, saves
    and marks the run stopped). With `wait`, block up to that many seconds for it to exit; True if gone."""
    run = Path(run)
    job = _read_json(run / JOB_FILE)
    pid = job.get("pid") or read_status(run).get("pid")
    if not pid or not _process_alive(pid):
        raise JobError(f"{run.name} has no live job to stop")
    try:
        os.killpg(int(pid), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        os.kill(int(pid), signal.SIGTERM)  # a job started outside the launcher: its own pid only
    deadline = time.time() + wait
    while time.time() < deadline:
        if not _alive_or_zombie(int(pid)):
            return True
        time.sleep(0.2)
    return not _alive_or_zombie(int(pid))


def job_state(run) -> dict:
    """The run's status as the launcher shows it: `state` (running | finished | stopped | failed | died),
    progress fractions, ETA and the error; a job that exited before writing any status reads failed."""
    run = Path(run)
    status = read_status(run)
    job = _read_json(run / JOB_FILE)
    if job and job.get("pid"):
        alive = _alive_or_zombie(int(job["pid"]))
        if not status.get("recorded_state") or status.get("recorded_state") == "unknown":
            status["state"] = "running" if alive else "failed"
            if not alive:
                last = [line for line in log_tail(run, 5).splitlines() if line.strip()]
                status["error"] = status.get("error") or (f"the job exited before it started training: {last[-1]}"
                                                          if last else "the job exited before it started training")
    epochs, spe = status.get("epochs") or 0, status.get("steps_per_epoch") or 0
    epoch, step = status.get("epoch") or 0, status.get("step") or 0
    total = epochs * spe
    # after an epoch the trainer already names the next one at step 0; a finished run has done them all
    done_steps = total if status["state"] == "finished" else (max(epoch - 1, 0) * spe + step if spe else 0)
    status["epoch_fraction"] = step / spe if spe else 0.0
    status["run_fraction"] = done_steps / total if total else 0.0
    status["eta_seconds"] = _eta_seconds(run, status, total - done_steps, spe)
    return status


def _eta_seconds(run: Path, status: dict, steps_left: int, steps_per_epoch: int) -> float | None:
    """Seconds left: at the mean pace of the finished epochs (validation and slow starts included), or,
    during the first epoch, at the current images/s, which reads high in its first minutes."""
    seconds = read_history(run)["seconds"].dropna()
    if len(seconds) and steps_per_epoch:
        return steps_left / steps_per_epoch * float(seconds.mean())
    speed = status.get("images_per_second")
    batch = _read_json(run / "config.json").get("args", {}).get("batch_size")
    return steps_left * batch / speed if (speed and batch and steps_left) else None


def log_tail(run, lines: int = 20) -> str:
    path = Path(run) / LOG_FILE
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64_000))
        text = f.read().decode(errors="replace")
    # progress bars redraw with carriage returns: keep the last state of each line
    return "\n".join(line.split("\r")[-1] for line in text.splitlines()[-lines:])


def evaluate(run, data, splits: list[str], timeout: float = 3600) -> list[dict]:
    """fer_models.evaluate on each split, as a child process; one dict (its JSON line, or the error) per split."""
    results = []
    for split in splits:
        command = [sys.executable, "-m", "fer_models.evaluate", "--run", str(run), "--data", str(data),
                   "--split", split]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if done.returncode == 0:
            results.append({"split": split, **json.loads(done.stdout.strip().splitlines()[-1])})
        else:
            results.append({"split": split, "error": (done.stderr or done.stdout).strip().splitlines()[-1]})
    return results


def delete(run) -> None:
    """Remove a user run's folder. Shipped reference runs and live jobs are refused."""
    run = Path(run)
    if _read_json(run / "meta.json").get("shipped"):
        raise JobError(f"{run.name} is a shipped reference run; it cannot be deleted from the dashboard")
    if job_state(run)["state"] == "running":
        raise JobError(f"{run.name} is running: stop it first")
    if not (run / "config.json").exists() and not (run / JOB_FILE).exists():
        raise JobError(f"{run} does not look like a run folder; nothing deleted")
    shutil.rmtree(run)
