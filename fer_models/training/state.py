"""What a run records about itself while it trains: config.json's record (config_record), the
resumable counters saved in last.safetensors (TrainState), status.json's heartbeat (StatusWriter),
the graceful-stop flag (StopSignal) and the progress line (Progress).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_models import __version__
from fer_models.core.constants import EMOTIONS
from fer_models.runs.checkpoints import CheckpointError
from fer_models.runs.folder import HISTORY_COLUMNS, STATUS_FILE, RunFolder
from fer_models.runs.settings import TrainConfig, bounds
from fer_models.training.splits import Splits


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def config_record(cfg: TrainConfig, splits: Splits, previous: dict, resume: bool, device, world: int, threads: int,
                  precision: str) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {
        "args": cfg.as_args(), "code_version": code_version(), "created": previous.get("created", now),
        "resumed": list(previous.get("resumed", [])) + ([now] if resume else []),
        "world_size": world, "device": str(device), "threads_per_process": threads, "precision": precision,
        "data": {"path": cfg.data, "format": splits.format, "label_source": cfg.label_source,
                 "split_sizes": {cfg.train_split: len(splits.train), cfg.val_split: len(splits.val)},
                 "train_class_counts": np.bincount(splits.train.labels, minlength=len(EMOTIONS)).tolist(),
                 "notes": splits.notes},
        "normalisation": {"mean": splits.mean, "std": splits.std},
    }


@dataclass
class TrainState:
    """Where the run is: everything --resume needs besides the weights and the optimizer."""
    epoch: int = 0                 # epochs finished
    step: int = 0                  # steps finished in the current epoch
    sums: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # this rank's loss * n, correct, n so far
    rank_sums: list | None = None  # every rank's sums at the last save (DDP), so each resumes its own
    best: dict = field(default_factory=lambda: {"val_acc": -1.0})
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0     # wall seconds of the current epoch up to the last save: a resumed epoch's
    history: list = field(default_factory=list)  # row counts them too, not only what came after the resume

    @classmethod
    def from_info(cls, info: dict, rank: int) -> "TrainState":
        """The state saved in last.safetensors' header, checked: it is read back from the run folder."""
        state = cls(**{k: v for k, v in info.items() if k in cls.__dataclass_fields__})
        whole = all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= bounds("epochs").hi * 10**4
                    for v in (state.epoch, state.step))
        rows = isinstance(state.history, list) and all(isinstance(r, dict) and set(HISTORY_COLUMNS) <= set(r)
                                                       and isinstance(r["epoch"], int) for r in state.history)
        sums = isinstance(state.sums, list) and len(state.sums) == 3 and all(
            isinstance(v, (int, float)) for v in state.sums)
        best = isinstance(state.best, dict) and isinstance(state.best.get("val_acc"), float)
        seconds = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                      for v in (state.train_seconds, state.epoch_seconds))
        if not (whole and rows and sums and best and seconds):
            raise CheckpointError("last.safetensors: its resume info is not a training state this trainer wrote; "
                                  "start the run anew with --restart (same --out, with --data and the settings)")
        if state.rank_sums and rank < len(state.rank_sums):
            state.sums = list(state.rank_sums[rank])
        state.history = [row for row in state.history if row["epoch"] <= state.epoch]
        return state


class StopSignal:
    """SIGTERM and Ctrl-C ask for a graceful stop: the step in progress finishes and the state is saved."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)
        signal.signal(signal.SIGINT, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True


class StatusWriter:
    """status.json, written by rank 0 only: at once on a change of state, else at most every 2 s."""

    def __init__(self, run: RunFolder, is_main: bool):
        self.run, self.is_main = run, is_main
        self.status: dict = {}
        self._last_beat = 0.0

    def write(self, force: bool = True, **fields) -> None:
        self.status.update(fields)
        now = time.time()
        if self.is_main and (force or now - self._last_beat >= 2.0):
            self.status.update(heartbeat=now, heartbeat_iso=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            self.run.write_json(STATUS_FILE, self.status)
            self._last_beat = now


class Progress:
    """tqdm on a terminal; on a pipe or log file (a job started by the app), one plain line every
    30 s, since tqdm's carriage returns turn a log into one endless line."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.total, self.step, self.desc, self.enabled = total, initial, desc, enabled
        self.start = self.last = time.time()
        self.first = initial
        self.images = 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, file=sys.stderr)

    def update(self, images: int) -> None:
        self.step += 1
        self.images += images
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled and time.time() - self.last >= 30:
            self.last = now = time.time()
            rate = (self.step - self.first) / (now - self.start)
            eta = (self.total - self.step) / max(rate, 1e-9)
            print(f"{self.desc} step {self.step}/{self.total} {self.images / (now - self.start):.0f} img/s "
                  f"eta {eta:.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
