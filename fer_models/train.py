"""Train a FER model and write a run folder (config, history, status, best weights, resumable state).

    python -m fer_models.train --model cnn3 --data fer2013.csv.gz --epochs 30 --out artifacts/runs/cnn3
    python -m fer_models.train --recipe resnet10_fer --data fer2013.csv.gz --out runs/resnet10_fer
    python -m fer_models.train --out artifacts/runs/cnn3 --resume          # after a kill or a stop
    torchrun --standalone --nproc_per_node=2 -m fer_models.train ...      # DDP (gloo on CPU, nccl on GPU)

Trains on --train-split (Training), validates every epoch on --val-split (PublicTest) and keeps the
best epoch's weights in model.safetensors. The whole dataset sits on the training device as uint8 and
batches are augmented there (fer_models.data.augment_batch): no data loader workers, no per-image PIL.
SIGTERM or Ctrl-C stops gracefully: the current step finishes, the state is saved, the run is "stopped".
Every setting, its default and its bounds: fer_models.settings.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import __version__
from .checkpoints import CheckpointError, load_model, load_training_state, save_model, save_training_state
from .constants import EMOTIONS
from .data import AugmentConfig, DataError, FaceData, augment_batch, load_faces, normalisation_stats, to_input
from .evaluate import predict_proba
from .models import create_model, list_models
from .precision import autocast_for, resolve_precision
from .recipes import RECIPES, recipe
from .runfolder import CONFIG_FILE, HISTORY_COLUMNS, LAST_FILE, META_FILE, STATUS_FILE, RunFolder, RunProblem
from .settings import (RESUMABLE_FIELDS, SETTINGS, OneLineParser, TrainConfig, add_arguments, bounds, config_from,
                       flag)

__all__ = ["HISTORY_COLUMNS", "learning_rate", "main", "train"]


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(prog="python -m fer_models.train", description=__doc__.split("\n")[0])
    add_arguments(p, model_choices=list_models())
    p.add_argument("--out", required=True, help="run folder, e.g. artifacts/runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved state")
    p.add_argument("--restart", action="store_true",
                   help="discard the training state in --out (a failed or broken start) and start anew")
    p.add_argument("--kill-at-step", type=int, help=argparse.SUPPRESS)  # tests: SIGKILL ourselves at this step
    p.add_argument("--stop-at-step", type=int, help=argparse.SUPPRESS)  # tests: as if SIGTERM came at this step
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: on --resume, config.json's, of which the command line may change only where
    the run goes on (RESUMABLE_FIELDS); else the recipe's (if named), then the command line's, then defaults."""
    given = {k: v for k, v in vars(args).items() if k in SETTINGS and v is not None}
    run = RunFolder(args.out)
    if run.path.exists() and not run.path.is_dir():
        raise DataError(f"--out {run.path} is a file, not a run folder: give a folder path")
    if args.resume:
        if not run.file(CONFIG_FILE).exists():
            raise DataError(f"{run.path}: no config.json to resume from; start a new run there without --resume "
                            "(a folder with no training state is reused)")
        try:
            saved = run.settings()
        except RunProblem as err:
            raise DataError(f"{err}; start it again with --restart") from err
        changed = [k for k, v in given.items() if k not in RESUMABLE_FIELDS and v != getattr(saved, k)]
        if changed:
            raise DataError(f"--resume continues {run.path} with its own settings; these differ: "
                            f"{', '.join(flag(k) for k in changed)}. Only "
                            f"{', '.join(flag(k) for k in RESUMABLE_FIELDS)} may change on resume")
        return replace(saved, **{k: v for k, v in given.items() if k in RESUMABLE_FIELDS}).resolved()
    if run.path.is_dir():
        if args.restart:
            run.clear_training_state()
        elif run.has_training_state():
            raise DataError(f"{run.path}: run folder already exists and holds a run; use --resume to continue it, "
                            "--restart to discard it and start anew, or another --out")
        else:
            run.clear_training_state()  # a start that died before writing its config: nothing to keep
    name = given.get("recipe")
    if name is not None and name not in RECIPES:
        raise DataError(f"--recipe {name!r} is unknown; known: {', '.join(sorted(RECIPES))}")
    cfg = config_from({**(recipe(name) if name else {}), **given})
    if not cfg.data:
        raise DataError("--data is required: a FER2013 CSV, a class-folder tree or a .npz")
    paths = {k: str(Path(getattr(cfg, k)).resolve()) for k in ("data", "ferplus", "teacher") if getattr(cfg, k)}
    if cfg.val_fraction > 0:  # the hold-out gets its own name, so the evaluation of PublicTest stays apart
        paths["val_split"] = f"{cfg.train_split}-holdout"
    cfg = replace(cfg, **paths).resolved()
    problems = cfg.problems()
    if problems:
        raise DataError("; ".join(problems))
    return cfg


def learning_rate(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """Learning rate at a global step: a pure function, so a resumed run needs no scheduler state."""
    base, t = cfg.lr, step / max(total, 1)
    # torch's OneCycleLR shape (30% of the steps up from base/25 by a cosine, then a cosine down), ending at
    # base/1e4 where torch's ends at base/2.5e5 (its initial_lr / final_div_factor)
    if cfg.schedule == "onecycle":
        if t < 0.3:
            return base / 25 + (base - base / 25) * (1 - math.cos(math.pi * t / 0.3)) / 2
        return base / 1e4 + (base - base / 1e4) * (1 + math.cos(math.pi * (t - 0.3) / 0.7)) / 2
    warm = cfg.warmup_epochs * steps_per_epoch
    if step < warm:
        return base * (step + 1) / warm
    if cfg.schedule == "cosine":
        return base * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1))) / 2
    if cfg.schedule == "step":
        return base * (0.1 ** ((t >= 0.5) + (t >= 0.75)))
    return base


def holdout_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, per-class random `fraction` of the rows (at least one per class that has two or more)."""
    if not 0 < fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, not {fraction}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        if len(rows) >= 2:
            mask[rows[:max(1, round(fraction * len(rows)))]] = True
    return mask


def step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """Every random draw of a step (augmentation, mixup, dropout) comes from this seed, so a run
    resumed at any step follows the trajectory of an uninterrupted one without saved RNG states."""
    return (seed * 1_000_003 + epoch * 100_003 + step * 101 + rank) % (2 ** 63)


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


# ---------------------------------------------------------------- the pieces a run is made of

@dataclass
class Splits:
    train: FaceData
    val: FaceData
    notes: list[str]
    mean: float
    std: float
    format: str


def load_splits(cfg: TrainConfig) -> Splits:
    """The labelled training and validation faces, and the pixel statistics of the training faces."""
    holdout = cfg.val_fraction > 0
    try:
        data = load_faces(cfg.data, splits=[cfg.train_split] + ([] if holdout else [cfg.val_split]),
                          label_source=cfg.label_source, ferplus=cfg.ferplus)
    except DataError as err:
        if "empty or absent" not in str(err):
            raise
        raise DataError(f"{err}. Name the splits with --train-split and --val-split, or validate on part of "
                        "the training split with --val-fraction 0.1") from err
    notes = list(data.notes)
    if holdout:
        data.splits = np.where(holdout_mask(data.labels, cfg.val_fraction, cfg.seed), cfg.val_split, data.splits)
    train_set, val_set = data.split(cfg.train_split), data.split(cfg.val_split)
    for name, subset in ((cfg.train_split, train_set), (cfg.val_split, val_set)):
        if (subset.labels < 0).any():
            notes.append(f"{int((subset.labels < 0).sum())} unlabelled images of {name} left out")
    train_set, val_set = train_set.labelled(), val_set.labelled()
    if len(train_set) == 0 or len(val_set) == 0:
        raise DataError(f"{cfg.data}: no labelled images in {cfg.train_split} or {cfg.val_split}")
    mean, std = normalisation_stats(train_set.images)
    return Splits(train_set, val_set, notes, mean, std, data.format)


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


def build_model(cfg: TrainConfig, device) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)  # the initial weights; every rank starts from the same ones
    return create_model(cfg.model).to(device).to(memory_format=torch.channels_last)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Weight decay on conv and linear weights only: decaying BatchNorm scales and biases only hurts."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW)(groups, lr=cfg.lr)


class WeightEMA:
    """An exponential moving average of the weights (and a copy of the BatchNorm buffers), after timm's
    ModelEmaV3: validated and saved instead of the raw weights, which jitter at the end of each step."""

    def __init__(self, model: torch.nn.Module, arch: str, decay: float):
        self.decay = decay
        self.module = create_model(arch).to(next(model.parameters()).device).to(memory_format=torch.channels_last)
        self.module.load_state_dict(model.state_dict())
        self.module.requires_grad_(False)
        self._params, self._model_params = list(self.module.parameters()), list(model.parameters())
        self._buffers, self._model_buffers = list(self.module.buffers()), list(model.buffers())

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # short memory early on, while the weights move fast
        # one fused call per list: densenet201_fer has ~1,000 tensors, a launch each on a GPU
        torch._foreach_lerp_(self._params, self._model_params, 1 - d)
        torch._foreach_copy_(self._buffers, self._model_buffers)


class Teacher:
    """A trained run whose softened probabilities on the student's own augmented batch are a second target
    (Hinton et al. 2015): the KL term is scaled by T² so its gradients keep their size as T changes."""

    def __init__(self, run_dir: str, device, student_mean: float, student_std: float, temperature: float):
        self.model, meta = load_model(run_dir, device)
        self.model.requires_grad_(False)
        self.model.to(memory_format=torch.channels_last)
        norm = meta["normalisation"]
        # the batch arrives normalised with the student's statistics; the teacher wants its own
        self.scale = student_std / norm["std"]
        self.shift = (student_mean - norm["mean"]) / norm["std"]
        self.temperature = temperature
        self.info = {"run": Path(run_dir).name, "arch": meta["arch"],
                     "val_acc": meta.get("metrics", {}).get("val_acc")}

    def loss(self, x: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        with torch.no_grad():
            soft = (self.model(x * self.scale + self.shift).float() / t).softmax(1)
        return F.kl_div((student_logits.float() / t).log_softmax(1), soft, reduction="batchmean") * t * t


@dataclass
class TrainState:
    """Where the run is: everything --resume needs besides the weights and the optimizer."""
    epoch: int = 0                 # epochs finished
    step: int = 0                  # steps finished in the current epoch
    sums: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # this rank's loss * n, correct, n so far
    rank_sums: list | None = None  # every rank's sums at the last save (DDP), so each resumes its own
    best: dict = field(default_factory=lambda: {"val_acc": -1.0})
    train_seconds: float = 0.0
    history: list = field(default_factory=list)

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
        if not (whole and rows and sums and best and isinstance(state.train_seconds, (int, float))):
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


def setup_distributed(requested: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DataError(f"--device {requested}: no CUDA device is visible; use --device cpu")
        device = torch.device(f"cuda:{local_rank}" if world > 1 or requested == "cuda" else requested)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def gpu_usage(device) -> dict:
    """Memory and utilisation of the training GPU for status.json (the Train page shows them)."""
    if device.type != "cuda":
        return {}
    usage = {"gpu_memory_mib": round(torch.cuda.memory_reserved(device) / 2**20)}
    try:
        usage["gpu_utilisation"] = torch.cuda.utilization(device)  # needs NVML (pynvml); absent is fine
    except Exception:  # noqa: BLE001 - whatever NVML raises, the figure is optional
        pass
    return usage


def sum_across(values: list[float], device, world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_across(values: list[float], device, world: int) -> list[list[float]]:
    if world == 1:
        return [values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    parts = [torch.zeros_like(t) for _ in range(world)]
    dist.all_gather(parts, t)
    return [p.tolist() for p in parts]


# ---------------------------------------------------------------- training

@dataclass
class Trainer:
    """What every step of the run needs; train() builds it once."""
    cfg: TrainConfig
    run: RunFolder
    device: torch.device
    rank: int
    world: int
    precision: str
    model: torch.nn.Module
    net: torch.nn.Module          # the model, wrapped in DDP when world > 1
    optimizer: torch.optim.Optimizer
    ema: WeightEMA | None
    teacher: Teacher | None
    splits: Splits
    status: StatusWriter
    meta_base: dict
    stop: StopSignal
    kill_at_step: int | None = None
    stop_at_step: int | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def save_state(self, state: TrainState) -> None:
        """last.safetensors; every rank joins, since each rank's partial sums go in it."""
        state.rank_sums = gather_across(state.sums, self.device, self.world)
        if self.is_main:
            save_training_state(self.run.file(LAST_FILE), self.model, self.optimizer, asdict(state),
                                self.ema.module if self.ema is not None else None)


def train_one_epoch(t: Trainer, state: TrainState, x_train, y_train, soft_train, steps_per_epoch: int,
                    total_steps: int) -> tuple[bool, float, float]:
    """Steps from state.step to the end of the epoch. Returns (completed: False if a stop was requested,
    the state then saved), the last learning rate, and the epoch's wall seconds."""
    cfg, world, rank, device = t.cfg, t.world, t.rank, t.device
    per_rank = max(1, cfg.batch_size // world)
    augment = AugmentConfig(crop_pad=cfg.crop_pad, resized_crop=cfg.resized_crop, flip=cfg.flip,
                            rotate=cfg.rotate, scale=cfg.scale, erase=cfg.erase)
    generator = torch.Generator(device=device)
    t.net.train()
    perm = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(step_seed(cfg.seed, state.epoch,
                                                                                          -1, 0))).to(device)
    # loss * n, correct, n of the epoch so far; kept on the device so that a GPU step never waits for .item()
    sums = torch.tensor(state.sums, dtype=torch.float64, device=device)
    clock = began = last_save = time.time()  # clock restarts at each mid-epoch save (train_seconds)
    images_seen = 0
    bar = Progress(steps_per_epoch, state.step, f"epoch {state.epoch + 1}/{cfg.epochs}", t.is_main)
    stopped = False
    while state.step < steps_per_epoch:
        global_step = state.epoch * steps_per_epoch + state.step
        if t.kill_at_step is not None and global_step == t.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if t.stop_at_step is not None and global_step == t.stop_at_step:
            t.stop.requested = True
        seed = step_seed(cfg.seed, state.epoch, state.step, rank)
        torch.manual_seed(seed)
        generator.manual_seed(seed)
        lo = state.step * per_rank * world + rank * per_rank
        idx = perm[lo:lo + per_rank]
        lr = learning_rate(cfg, global_step, total_steps, steps_per_epoch)
        for group in t.optimizer.param_groups:
            group["lr"] = lr

        x = augment_batch(to_input(x_train[idx], t.splits.mean, t.splits.std), augment, generator)
        x = x.contiguous(memory_format=torch.channels_last)
        y = y_train[idx]
        target = soft_train[idx] if soft_train is not None else F.one_hot(y, len(EMOTIONS)).float()
        if cfg.mixup > 0:
            lam = float(np.random.default_rng(seed).beta(cfg.mixup, cfg.mixup))
            order = torch.randperm(len(idx), generator=generator, device=device)
            x = lam * x + (1 - lam) * x[order]
            target = lam * target + (1 - lam) * target[order]
        with autocast_for(device, t.precision):
            logits = t.net(x)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)
        if t.teacher is not None:
            loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * t.teacher.loss(x, logits)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        if t.ema is not None:
            t.ema.update(global_step)

        sums += torch.stack([loss.detach().double() * len(idx), (logits.argmax(1) == y).sum().double(),
                             torch.tensor(float(len(idx)), dtype=torch.float64, device=device)])
        images_seen += len(idx) * world
        state.step += 1
        bar.update(per_rank * world)
        t.status.write(force=False, epoch=state.epoch + 1, step=state.step, lr=lr,
                       images_per_second=round(images_seen / max(time.time() - began, 1e-9), 1),
                       **gpu_usage(device))
        # one collective a step decides for every rank: stop now, and save now
        save_due = time.time() - last_save > cfg.checkpoint_minutes * 60 and state.step < steps_per_epoch
        stop, save = sum_across([float(t.stop.requested), float(save_due and t.is_main)], device, world)
        if stop or save:
            state.sums = sums.tolist()
            state.train_seconds += time.time() - clock
            clock = last_save = time.time()
            t.save_state(state)
        if stop:
            stopped = True
            break
    bar.close()
    state.sums = sums.tolist()
    if not stopped:
        state.train_seconds += time.time() - clock
    return not stopped, lr, round(time.time() - began, 2)


def validate(t: Trainer, model: torch.nn.Module) -> tuple[float, float]:
    """Validation loss and accuracy, each rank scoring its shard. Under DDP the BatchNorm statistics
    differ between ranks (each saw its own batches): rank 0's, the ones saved, are broadcast first."""
    if t.world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
    val = t.splits.val
    shard = slice(t.rank, None, t.world)
    # fp32 whatever the training precision: the history's validation scores are the saved weights' own
    probs = predict_proba(model, val.images[shard], t.splits.mean, t.splits.std, t.device, precision="fp32")
    labels = val.labels[shard]
    loss_sum, correct, n = sum_across([
        float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).sum()),
        float((probs.argmax(1) == labels).sum()), float(len(labels))], t.device, t.world)
    return loss_sum / n, correct / n


def end_of_epoch(t: Trainer, state: TrainState, lr: float, seconds: float) -> None:
    """Validate, log the epoch, keep the best weights, save the state to resume from."""
    val_loss, val_acc = validate(t, t.eval_model)
    loss_sum, correct, n = sum_across(state.sums, t.device, t.world)
    row = {"epoch": state.epoch + 1, "train_loss": loss_sum / n, "train_acc": correct / n, "val_loss": val_loss,
           "val_acc": val_acc, "lr": lr, "seconds": seconds}
    state.history.append(row)
    state.epoch, state.step, state.sums = state.epoch + 1, 0, [0.0, 0.0, 0.0]
    improved = val_acc > state.best["val_acc"]
    if improved:
        state.best = {"val_acc": val_acc, "val_loss": val_loss, "epoch": row["epoch"]}
    t.save_state(state)
    if t.is_main:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        if improved:
            metrics = {"best_epoch": state.best["epoch"], "split": t.cfg.val_split, "val_acc": val_acc,
                       "val_loss": val_loss}
            save_model(t.run.path, t.eval_model, {**t.meta_base, "metrics": metrics}, half=t.cfg.half_weights)
        t.run.write_history(state.history)


def train(cfg: TrainConfig, out: Path, resume: bool, kill_at_step: int | None = None,
          stop_at_step: int | None = None) -> str:
    device, rank, world = setup_distributed(cfg.device)
    run = RunFolder(out)
    if rank == 0:
        run.path.mkdir(parents=True, exist_ok=True)
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // (world if device.type == "cpu" else 1))
    torch.set_num_threads(threads)
    precision = resolve_precision(cfg.precision, device)
    stop = StopSignal()  # before the first status: from then on a stop leaves a run that resumes
    status = StatusWriter(run, rank == 0)
    status.write(state="running", pid=os.getpid(), host=socket.gethostname(), epoch=0, step=0, epochs=cfg.epochs,
                 steps_per_epoch=None, started=time.time(), error=None, device=str(device), world_size=world)

    try:
        splits = load_splits(cfg)
    except KeyboardInterrupt:  # pyarrow's CSV reader takes Ctrl-C over while it parses, and raises this
        status.write(state="stopped", finished=time.time(), train_seconds=0.0,
                     error="stopped while reading the data; start it again (a folder with no training state is "
                           "reused)")
        return "stopped"
    previous = run.read_json(CONFIG_FILE) if resume else {}
    recorded = previous.get("data", {}).get("split_sizes") if isinstance(previous.get("data"), dict) else None
    now = {cfg.train_split: len(splits.train), cfg.val_split: len(splits.val)}
    if resume and isinstance(recorded, dict) and recorded != now:
        raise DataError(f"{cfg.data} holds {now}, but {run.path} was trained on {recorded}: resume it with --data "
                        "pointing at the data it was trained on")
    if rank == 0:
        run.write_json(CONFIG_FILE, config_record(cfg, splits, previous, resume, device, world, threads, precision))
        for note in splits.notes:
            print(f"note: {note}", file=sys.stderr)
    if stop.requested and not run.file(LAST_FILE).exists():
        status.write(state="stopped", finished=time.time(), train_seconds=0.0)
        return "stopped"

    model = build_model(cfg, device)
    ema = WeightEMA(model, cfg.model, cfg.ema) if cfg.ema else None
    teacher = Teacher(cfg.teacher, device, splits.mean, splits.std, cfg.temperature) if cfg.teacher else None
    optimizer = build_optimizer(model, cfg)
    state = TrainState()
    if resume and run.file(LAST_FILE).exists():
        info = load_training_state(run.file(LAST_FILE), model, optimizer, ema.module if ema is not None else None)
        state = TrainState.from_info(info, rank)
        if rank == 0:
            print(f"resuming {out} at epoch {state.epoch + 1}, step {state.step}", file=sys.stderr)
    meta_base = {"classes": list(EMOTIONS), "normalisation": {"mean": splits.mean, "std": splits.std},
                 "training": {"config": cfg.as_args(), "code_version": code_version(), "device": str(device),
                              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                              else f"CPU ({threads} threads x {world} processes)",
                              "world_size": world, "precision": precision, "data": cfg.data,
                              "recipe": cfg.recipe, "teacher": teacher.info if teacher is not None else None,
                              "split_sizes": {cfg.train_split: len(splits.train), cfg.val_split: len(splits.val)}}}
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    t = Trainer(cfg, run, device, rank, world, precision, model, net, optimizer, ema, teacher, splits, status,
                meta_base, stop, kill_at_step=kill_at_step, stop_at_step=stop_at_step)

    x_train = torch.as_tensor(splits.train.images).to(device)
    y_train = torch.as_tensor(splits.train.labels).to(device)
    soft_train = torch.as_tensor(splits.train.soft).to(device) if splits.train.soft is not None else None
    steps_per_epoch = max(1, len(x_train) // (max(1, cfg.batch_size // world) * world))
    total_steps = steps_per_epoch * cfg.epochs
    status.write(steps_per_epoch=steps_per_epoch, epoch=state.epoch + 1, step=state.step)

    outcome = "finished"
    while state.epoch < cfg.epochs:
        completed, lr, seconds = train_one_epoch(t, state, x_train, y_train, soft_train, steps_per_epoch,
                                                 total_steps)
        if not completed:
            outcome = "stopped"
            break
        end_of_epoch(t, state, lr, seconds)
        status.write(epoch=min(state.epoch + 1, cfg.epochs), step=0)
        if stop.requested:
            outcome = "stopped"
            break

    if rank == 0:
        meta_now = run.read_json(META_FILE)
        if meta_now:
            meta_now["training"].update(epochs_done=len(state.history), state=outcome,
                                        seconds=round(state.train_seconds, 1),
                                        images_per_second=round(len(x_train) * len(state.history)
                                                                / max(state.train_seconds, 1e-9), 1))
            run.write_json(META_FILE, meta_now)
    status.write(state=outcome, finished=time.time(), train_seconds=round(state.train_seconds, 1))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return outcome


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        cfg = resolve_config(args)
        out.mkdir(parents=True, exist_ok=True)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: --out {out}: cannot make the run folder there ({err.strerror or err})", file=sys.stderr)
        return 2
    try:
        state = train(cfg, out, args.resume, args.kill_at_step, args.stop_at_step)
    except (DataError, CheckpointError, RunProblem) as err:
        _mark_failed(out, str(err))
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        _mark_failed(out, f"{type(err).__name__}: {err}", traceback.format_exc())
        raise
    return 0 if state in ("finished", "stopped") else 1


def _mark_failed(out: Path, error: str, trace: str | None = None) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    run = RunFolder(out)
    try:
        status = run.read_json(STATUS_FILE)
    except RunProblem:
        status = {}
    status.update(state="failed", error=error, traceback=trace, pid=os.getpid(), heartbeat=time.time(),
                  finished=time.time())
    try:
        run.write_json(STATUS_FILE, status)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
