"""Train a FER model and write a run folder (config, history, status, best weights, resumable state).

    python -m fer_models.train --model cnn3 --data fer2013.csv.gz --epochs 30 --out artifacts/runs/cnn3
    python -m fer_models.train --out artifacts/runs/cnn3 --resume          # after a kill or a stop
    torchrun --standalone --nproc_per_node=2 -m fer_models.train ...      # DDP (gloo on CPU, nccl on GPU)

Trains on --train-split (Training), validates every epoch on --val-split (PublicTest) and keeps the
best epoch's weights in model.safetensors. The whole dataset sits on the training device as uint8 and
batches are augmented there (fer_models.data.augment_batch): no data loader workers, no per-image PIL.
SIGTERM or Ctrl-C stops gracefully: the current step finishes, the state is saved, the run is "stopped".
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
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import __version__
from .atomic import atomic_write_json, atomic_write_text
from .checkpoints import LAST_FILE, CheckpointError, load_training_state, save_model, save_training_state
from .data import EMOTIONS, LABEL_SOURCES, AugmentConfig, DataError, augment_batch, load_faces, \
    normalisation_stats, to_input
from .evaluate import autocast_for, predict_proba, resolve_precision
from .models import create_model, list_models

HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
DEFAULTS = dict(model="cnn3", data=None, ferplus=None, label_source="fer2013", train_split="Training",
                val_split="PublicTest", val_fraction=0.0, epochs=30, batch_size=128, lr=None, optimizer="sgd", schedule="onecycle",
                weight_decay=5e-4, warmup_epochs=0.0, label_smoothing=0.0, mixup=0.0, ema=0.0, seed=0,
                precision="auto", device="auto", threads=0, crop_pad=4, resized_crop=0.0, flip=True,
                rotate=10.0, scale=0.1, erase=0.5, checkpoint_minutes=10.0, half_weights=False)
# sgd 0.05 left cnn3 predicting only "happy" on FER2013 (val 23% after 3 epochs on 6k faces; 0.01: 31%)
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fer_models.train", description=__doc__.split("\n")[0])
    a = p.add_argument
    # Defaults live in DEFAULTS so that --resume can tell what the command line set explicitly.
    a("--model", choices=list_models(), help="architecture (default cnn3)")
    a("--data", help="FER2013 CSV (.csv/.csv.gz), class-folder tree or FaceData .npz")
    a("--label-source", choices=LABEL_SOURCES, help="fer2013 labels, or FER+ majority / soft votes")
    a("--ferplus", help="FER+ votes file (default: fer2013new.csv beside --data)")
    a("--train-split", help="default Training")
    a("--val-split", help="default PublicTest")
    a("--val-fraction", type=float, help="validate on this stratified fraction of --train-split instead "
                                          "(for data without a validation split, e.g. the course CSV)")
    a("--epochs", type=int, help="default 30; with --resume, a larger value extends the run")
    a("--batch-size", type=int, help="global batch size (default 128)")
    a("--lr", type=float, help="peak learning rate (default 0.01 for sgd, 1e-3 for adam/adamw)")
    a("--optimizer", choices=["sgd", "adam", "adamw"], help="default sgd (momentum 0.9, Nesterov)")
    a("--schedule", choices=["onecycle", "cosine", "step", "constant"], help="default onecycle")
    a("--weight-decay", type=float, help="on conv/linear weights only (default 5e-4)")
    a("--warmup-epochs", type=float, help="linear warm-up for cosine/step/constant (default 0)")
    a("--label-smoothing", type=float, help="default 0")
    a("--mixup", type=float, help="mixup Beta(a, a) parameter; 0 = off (default)")
    a("--ema", type=float, help="weight EMA decay per step, e.g. 0.999; 0 = off (default)")
    a("--seed", type=int, help="default 0")
    a("--precision", choices=["auto", "bf16", "fp32"], help="auto = bf16 autocast where the device computes bf16 natively")
    a("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    a("--threads", type=int, help="CPU threads per process (default: cores / processes)")
    a("--crop-pad", type=int, help="random crop with this padding, pixels (default 4; 0 = off)")
    a("--resized-crop", type=float, help="random resized crop, smallest area kept (e.g. 0.6); replaces --crop-pad")
    a("--no-flip", dest="flip", action="store_const", const=False, help="no horizontal flips")
    a("--rotate", type=float, help="max rotation in degrees (default 10)")
    a("--scale", type=float, help="max zoom change, e.g. 0.1 = ±10%% (default 0.1)")
    a("--erase", type=float, help="random erasing probability (default 0.5)")
    a("--checkpoint-minutes", type=float, help="also save resumable state mid-epoch this often (default 10)")
    a("--half-weights", action="store_const", const=True, help="store model.safetensors weights in fp16")
    a("--out", required=True, help="run folder, e.g. artifacts/runs/NAME")
    a("--resume", action="store_true", help="continue the run in --out from its last saved state")
    a("--kill-at-step", type=int, help=argparse.SUPPRESS)  # tests: SIGKILL ourselves at this global step
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> dict:
    """Fill defaults; on --resume take config.json's arguments, letting the command line change only
    where the run goes on (epochs, device, threads)."""
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("resume", "out", "kill_at_step")}
    out = Path(args.out)
    if args.resume:
        if not (out / "config.json").exists():
            raise DataError(f"{out}: no config.json to resume from; start a new run without --resume")
        saved = json.loads((out / "config.json").read_text())["args"]
        changed = {k: v for k, v in given.items() if k not in ("epochs", "device", "threads") and v != saved.get(k)}
        if changed:
            raise DataError(f"--resume continues {out} with its own settings; these differ: "
                            f"{', '.join(f'--{k.replace(chr(95), chr(45))}' for k in changed)}. "
                            "Only --epochs, --device and --threads may change on resume")
        cfg = {**DEFAULTS, **saved, **given}  # options added since the run started keep their defaults
    else:
        # the dashboard's launcher writes its job.json and train.log before this process starts
        if out.exists() and any(f.name not in ("job.json", "train.log") for f in out.iterdir()):
            raise DataError(f"{out}: run folder already exists and is not empty; "
                            "use --resume to continue it, or another --out")
        if not given.get("data"):
            raise DataError("--data is required: a FER2013 CSV, a class-folder tree or a .npz")
        cfg = {**DEFAULTS, **given}
        cfg["data"] = str(Path(cfg["data"]).resolve())
        if cfg["ferplus"]:
            cfg["ferplus"] = str(Path(cfg["ferplus"]).resolve())
    if cfg["lr"] is None:
        cfg["lr"] = DEFAULT_LR[cfg["optimizer"]]
    for key in ("epochs", "batch_size"):
        if cfg[key] < 1:
            raise DataError(f"--{key.replace('_', '-')} must be at least 1")
    return cfg


def learning_rate(cfg: dict, step: int, total: int, steps_per_epoch: int) -> float:
    """Learning rate at a global step: a pure function, so a resumed run needs no scheduler state."""
    base, t = cfg["lr"], step / max(total, 1)
    if cfg["schedule"] == "onecycle":  # torch's OneCycleLR shape: 30% up from base/25, cosine down to base/1e4
        if t < 0.3:
            return base / 25 + (base - base / 25) * (1 - math.cos(math.pi * t / 0.3)) / 2
        return base / 1e4 + (base - base / 1e4) * (1 + math.cos(math.pi * (t - 0.3) / 0.7)) / 2
    warm = cfg["warmup_epochs"] * steps_per_epoch
    if step < warm:
        return base * (step + 1) / warm
    if cfg["schedule"] == "cosine":
        return base * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1))) / 2
    if cfg["schedule"] == "step":
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


class Run:
    """The run folder, written by rank 0 only."""

    def __init__(self, out: Path, is_main: bool):
        self.out, self.is_main = out, is_main
        self.status: dict = {}
        self._last_beat = 0.0

    def write_status(self, force: bool = True, **fields) -> None:
        self.status.update(fields)
        now = time.time()
        if self.is_main and (force or now - self._last_beat >= 2.0):
            self.status.update(heartbeat=now, heartbeat_iso=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            atomic_write_json(self.out / "status.json", self.status)
            self._last_beat = now

    def write_history(self, rows: list[dict]) -> None:
        if self.is_main:
            lines = [",".join(HISTORY_COLUMNS)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                                            for c in HISTORY_COLUMNS) for r in rows]
            atomic_write_text(self.out / "history.csv", "\n".join(lines) + "\n")


class Progress:
    """tqdm on a terminal; on a pipe or log file (a job started by the app), one plain line every
    30 s, since tqdm's carriage returns turn a log into one endless line."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.total, self.step, self.desc, self.enabled = total, initial, desc, enabled
        self.tty = sys.stderr.isatty()
        self.start = self.last = time.time()
        self.first = initial
        self.images = 0
        self.bar = None
        if enabled and self.tty:
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
    except Exception:  # noqa: BLE001
        pass
    return usage


def sum_across(values: list[float], device, world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def train(cfg: dict, out: Path, resume: bool, kill_at_step: int | None = None) -> str:
    device, rank, world = setup_distributed(cfg["device"])
    is_main = rank == 0
    run = Run(out, is_main)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    threads = cfg["threads"] or max(1, (os.cpu_count() or 1) // (world if device.type == "cpu" else 1))
    torch.set_num_threads(threads)
    precision = resolve_precision(cfg["precision"], device)
    version = code_version()
    started = time.time()
    run.write_status(state="running", pid=os.getpid(), host=socket.gethostname(), epoch=0, step=0,
                     epochs=cfg["epochs"], steps_per_epoch=None, started=started, error=None,
                     device=str(device), world_size=world)

    holdout = cfg["val_fraction"] > 0
    try:
        data = load_faces(cfg["data"], splits=[cfg["train_split"]] + ([] if holdout else [cfg["val_split"]]),
                          label_source=cfg["label_source"], ferplus=cfg["ferplus"])
    except DataError as err:
        if "empty or absent" not in str(err):
            raise
        raise DataError(f"{err}. Name the splits with --train-split and --val-split, or validate on part of "
                        "the training split with --val-fraction 0.1") from err
    notes = list(data.notes)
    if holdout:
        cfg["val_split"] = f"{cfg['train_split']}-holdout"
        data.splits = np.where(holdout_mask(data.labels, cfg["val_fraction"], cfg["seed"]),
                               cfg["val_split"], data.splits)
    train_set, val_set = data.split(cfg["train_split"]), data.split(cfg["val_split"])
    for name, subset in ((cfg["train_split"], train_set), (cfg["val_split"], val_set)):
        if (subset.labels < 0).any():
            notes.append(f"{int((subset.labels < 0).sum())} unlabelled images of {name} left out")
    train_set, val_set = train_set.labelled(), val_set.labelled()
    if len(train_set) == 0 or len(val_set) == 0:
        raise DataError(f"{cfg['data']}: no labelled images in {cfg['train_split']} or {cfg['val_split']}")
    mean, std = normalisation_stats(train_set.images)
    if is_main:
        previous = json.loads((out / "config.json").read_text()) if resume else {}
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(out / "config.json", {
            "args": cfg, "code_version": version, "created": previous.get("created", now),
            "resumed": previous.get("resumed", []) + ([now] if resume else []),
            "world_size": world, "device": str(device), "threads_per_process": threads, "precision": precision,
            "data": {"path": cfg["data"], "format": data.format, "label_source": cfg["label_source"],
                     "split_sizes": {cfg["train_split"]: len(train_set), cfg["val_split"]: len(val_set)},
                     "train_class_counts": np.bincount(train_set.labels, minlength=7).tolist(),
                     "notes": notes},
            "normalisation": {"mean": mean, "std": std},
        })
    for note in notes:
        if is_main:
            print(f"note: {note}", file=sys.stderr)

    torch.manual_seed(cfg["seed"])  # the initial weights; every rank starts from the same ones
    model = create_model(cfg["model"]).to(device).to(memory_format=torch.channels_last)
    ema = create_model(cfg["model"]).to(device).to(memory_format=torch.channels_last) if cfg["ema"] else None
    if ema is not None:
        ema.load_state_dict(model.state_dict())
        ema.requires_grad_(False)
        ema_params, model_params = list(ema.parameters()), list(model.parameters())
        ema_buffers, model_buffers = list(ema.buffers()), list(model.buffers())
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg["lr"], momentum=0.9, nesterov=True)
    elif cfg["optimizer"] == "adam":
        optimizer = torch.optim.Adam(groups, lr=cfg["lr"])
    else:
        optimizer = torch.optim.AdamW(groups, lr=cfg["lr"])

    history, epoch, step_in_epoch, best = [], 0, 0, {"val_acc": -1.0}
    # loss * n, correct, n of the epoch so far; kept on the device so that a GPU step never waits for .item()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    train_seconds = 0.0
    if resume and (out / LAST_FILE).exists():
        info = load_training_state(out / LAST_FILE, model, optimizer, ema)
        epoch, step_in_epoch = info["epoch"], info["step"]
        sums = torch.tensor(info["sums"], dtype=torch.float64, device=device)
        best, train_seconds = info["best"], info["train_seconds"]
        history = [row for row in info["history"] if row["epoch"] <= epoch]
        if is_main:
            print(f"resuming {out} at epoch {epoch + 1}, step {step_in_epoch}", file=sys.stderr)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    x_train = torch.as_tensor(train_set.images).to(device)
    y_train = torch.as_tensor(train_set.labels).to(device)
    soft_train = torch.as_tensor(train_set.soft).to(device) if train_set.soft is not None else None
    n_train, batch = len(train_set), cfg["batch_size"]
    per_rank = max(1, batch // world)
    steps_per_epoch = max(1, n_train // (per_rank * world))
    total_steps = steps_per_epoch * cfg["epochs"]
    augment = AugmentConfig(crop_pad=cfg["crop_pad"], resized_crop=cfg["resized_crop"], flip=cfg["flip"],
                            rotate=cfg["rotate"], scale=cfg["scale"], erase=cfg["erase"])
    generator = torch.Generator(device=device)
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run.write_status(steps_per_epoch=steps_per_epoch, epoch=epoch + 1, step=step_in_epoch)

    def save_state(at_epoch: int, at_step: int):
        if is_main:
            save_training_state(out / LAST_FILE, model, optimizer, dict(
                epoch=at_epoch, step=at_step, sums=sums.tolist(), best=best, train_seconds=train_seconds,
                history=history), ema)

    def meta(extra: dict) -> dict:
        return {"classes": list(EMOTIONS), "normalisation": {"mean": mean, "std": std},
                "training": {"config": cfg, "code_version": version, "device": str(device),
                             "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                             else f"CPU ({threads} threads x {world} processes)",
                             "world_size": world, "precision": precision, "data": cfg["data"],
                             "split_sizes": {cfg["train_split"]: n_train, cfg["val_split"]: len(val_set)}},
                **extra}

    last_save = time.time()
    state = "finished"
    while epoch < cfg["epochs"]:
        net.train()
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(step_seed(cfg["seed"], epoch, -1, 0)))
        perm = perm.to(device)
        epoch_start = epoch_began = time.time()  # epoch_start restarts at each mid-epoch save (train_seconds)
        images_seen = 0
        bar = Progress(steps_per_epoch, step_in_epoch, f"epoch {epoch + 1}/{cfg['epochs']}", is_main)
        while step_in_epoch < steps_per_epoch:
            global_step = epoch * steps_per_epoch + step_in_epoch
            if kill_at_step is not None and global_step == kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)
            seed = step_seed(cfg["seed"], epoch, step_in_epoch, rank)
            torch.manual_seed(seed)
            generator.manual_seed(seed)
            lo = step_in_epoch * per_rank * world + rank * per_rank
            idx = perm[lo:lo + per_rank]
            lr = learning_rate(cfg, global_step, total_steps, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = augment_batch(to_input(x_train[idx], mean, std), augment, generator)
            x = x.contiguous(memory_format=torch.channels_last)
            y = y_train[idx]
            target = soft_train[idx] if soft_train is not None else F.one_hot(y, len(EMOTIONS)).float()
            if cfg["mixup"] > 0:
                lam = float(np.random.default_rng(seed).beta(cfg["mixup"], cfg["mixup"]))
                order = torch.randperm(len(idx), generator=generator, device=device)
                x = lam * x + (1 - lam) * x[order]
                target = lam * target + (1 - lam) * target[order]
            with autocast_for(device, precision):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg["label_smoothing"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                with torch.no_grad():
                    d = min(cfg["ema"], (1 + global_step) / (10 + global_step))  # short memory early on
                    # one fused call per list: densenet201_fer has ~1,000 tensors, a launch each on a GPU
                    torch._foreach_lerp_(ema_params, model_params, 1 - d)
                    torch._foreach_copy_(ema_buffers, model_buffers)
            sums[0] += loss.detach().double() * len(idx)
            sums[1] += (logits.argmax(1) == y).sum()
            sums[2] += len(idx)
            images_seen += len(idx) * world
            step_in_epoch += 1
            bar.update(per_rank * world)
            elapsed = time.time() - epoch_began
            run.write_status(force=False, epoch=epoch + 1, step=step_in_epoch, lr=lr,
                             images_per_second=round(images_seen / max(elapsed, 1e-9), 1), **gpu_usage(device))
            flag = sum_across([float(stop["requested"])], device, world)[0] if world > 1 else stop["requested"]
            if flag:
                state = "stopped"
                break
            if time.time() - last_save > cfg["checkpoint_minutes"] * 60 and step_in_epoch < steps_per_epoch:
                train_seconds += time.time() - epoch_start
                epoch_start = time.time()
                save_state(epoch, step_in_epoch)
                last_save = time.time()
        bar.close()
        train_seconds += time.time() - epoch_start
        if state == "stopped":
            save_state(epoch, step_in_epoch)
            break

        # validation: each rank scores its shard, sums are combined
        eval_model = ema if ema is not None else model
        shard = slice(rank, None, world)
        probs = predict_proba(eval_model, val_set.images[shard], mean, std, device)
        labels = val_set.labels[shard]
        val = sum_across([float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).sum()),
                          float((probs.argmax(1) == labels).sum()), float(len(labels))], device, world)
        train_sums = sum_across(sums.tolist(), device, world)
        row = {"epoch": epoch + 1, "train_loss": train_sums[0] / train_sums[2],
               "train_acc": train_sums[1] / train_sums[2], "val_loss": val[0] / val[2],
               "val_acc": val[1] / val[2], "lr": lr, "seconds": round(time.time() - epoch_began, 2)}
        history.append(row)
        epoch += 1
        step_in_epoch = 0
        sums.zero_()
        improved = row["val_acc"] > best["val_acc"]
        if improved:
            best = {"val_acc": row["val_acc"], "val_loss": row["val_loss"], "epoch": row["epoch"]}
        if is_main:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            if improved:
                save_model(out, eval_model, meta({"metrics": {"best_epoch": best["epoch"], "split": cfg["val_split"],
                                                               "val_acc": best["val_acc"], "val_loss": best["val_loss"]}}),
                           half=cfg["half_weights"])
            run.write_history(history)
            save_state(epoch, 0)
            last_save = time.time()
        run.write_status(epoch=min(epoch + 1, cfg["epochs"]), step=0)
        if stop["requested"]:
            state = "stopped"
            break

    if is_main:
        images_per_second = n_train * len(history) / max(train_seconds, 1e-9)
        meta_now = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else None
        if meta_now is not None:
            meta_now["training"].update(epochs_done=len(history), state=state, seconds=round(train_seconds, 1),
                                        images_per_second=round(images_per_second, 1))
            atomic_write_json(out / "meta.json", meta_now)
    run.write_status(state=state, finished=time.time(), train_seconds=round(train_seconds, 1))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return state


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        cfg = resolve_config(args)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        state = train(cfg, out, args.resume, args.kill_at_step)
    except (DataError, CheckpointError) as err:
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
    status = {}
    if (out / "status.json").exists():
        try:
            status = json.loads((out / "status.json").read_text())
        except json.JSONDecodeError:
            pass
    status.update(state="failed", error=error, traceback=trace, pid=os.getpid(), heartbeat=time.time(),
                  finished=time.time())
    try:
        atomic_write_json(out / "status.json", status)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
