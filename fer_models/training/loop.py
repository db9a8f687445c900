"""The training loop: `train()` builds a Trainer once, then runs `train_one_epoch` and `end_of_epoch`
(validate, log, keep the best weights, save the state to resume from) until the epochs are done or a
stop is asked for. SIGTERM or Ctrl-C stops gracefully: the current step finishes, the state is saved,
the run is "stopped".
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from fer_models.core.constants import EMOTIONS
from fer_models.datasets.augment import AugmentConfig, augment_batch, to_input
from fer_models.datasets.facedata import DataError
from fer_models.evaluation.scoring import predict_proba
from fer_models.nets.precision import autocast_for, resolve_precision
from fer_models.runs.checkpoints import load_training_state, save_model, save_training_state
from fer_models.runs.folder import CONFIG_FILE, LAST_FILE, META_FILE, MODEL_FILE, RunFolder, RunProblem
from fer_models.runs.settings import TrainConfig
from fer_models.training.components import Teacher, WeightEMA, build_model, build_optimizer
from fer_models.training.distributed import gather_across, gpu_usage, setup_distributed, sum_across
from fer_models.training.schedule import learning_rate, step_seed
from fer_models.training.splits import Splits, load_splits
from fer_models.training.state import Progress, StatusWriter, StopSignal, TrainState, code_version, config_record


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


DIVERGENCE_EVERY = 10  # steps between checks of the loss for NaN or infinity


class Diverged(Exception):
    """The loss is no longer a finite number: the run stops as "diverged", with this as its reason."""


def batch(t: Trainer, state: TrainState, perm, x_train, y_train, soft_train, generator, augment):
    """This rank's augmented (and mixed-up) batch of the step, every random draw seeded from (seed, epoch, step)."""
    cfg, world, rank = t.cfg, t.world, t.rank
    per_rank = max(1, cfg.batch_size // world)
    seed = step_seed(cfg.seed, state.epoch, state.step, rank)
    torch.manual_seed(seed)
    generator.manual_seed(seed)
    lo = state.step * per_rank * world + rank * per_rank
    idx = perm[lo:lo + per_rank]
    x = augment_batch(to_input(x_train[idx], t.splits.mean, t.splits.std), augment, generator)
    x = x.contiguous(memory_format=torch.channels_last)
    y = y_train[idx]
    target = soft_train[idx] if soft_train is not None else F.one_hot(y, len(EMOTIONS)).float()
    if cfg.mixup > 0:
        lam = float(np.random.default_rng(seed).beta(cfg.mixup, cfg.mixup))
        order = torch.randperm(len(idx), generator=generator, device=t.device)
        x = lam * x + (1 - lam) * x[order]
        target = lam * target + (1 - lam) * target[order]
    return x, y, target


def train_one_epoch(t: Trainer, state: TrainState, x_train, y_train, soft_train, steps_per_epoch: int,
                    total_steps: int) -> tuple[bool, float, float]:
    """Steps from state.step to the end of the epoch. Returns (completed: False if a stop was requested,
    the state then saved), the last learning rate, and the epoch's wall seconds."""
    cfg, world, device = t.cfg, t.world, t.device
    per_rank = max(1, cfg.batch_size // world)
    augment = AugmentConfig(crop_pad=cfg.crop_pad, resized_crop=cfg.resized_crop, flip=cfg.flip,
                            rotate=cfg.rotate, scale=cfg.scale, erase=cfg.erase)
    generator = torch.Generator(device=device)
    t.net.train()
    perm = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(step_seed(cfg.seed, state.epoch,
                                                                                          -1, 0))).to(device)
    # loss * n, correct, n of the epoch so far; kept on the device so that a GPU step never waits for .item()
    sums = torch.tensor(state.sums, dtype=torch.float64, device=device)
    clock = started = last_save = time.time()  # clock restarts at each mid-epoch save (train_seconds)
    began = started - state.epoch_seconds  # a resumed epoch's time counts what it took before the stop
    images_seen = 0
    bar = Progress(steps_per_epoch, state.step, f"epoch {state.epoch + 1}/{cfg.epochs}", t.is_main)
    stopped = False
    # a stop on an epoch's last step saved the epoch whole but not yet validated: its resume runs no step and goes
    # straight to the epoch's end, with the learning rate that last step used (it was unset there: a crash)
    lr = learning_rate(cfg, state.epoch * steps_per_epoch + max(state.step - 1, 0), total_steps, steps_per_epoch)
    while state.step < steps_per_epoch:
        global_step = state.epoch * steps_per_epoch + state.step
        if t.kill_at_step is not None and global_step == t.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if t.stop_at_step is not None and global_step == t.stop_at_step:
            t.stop.requested = True
        lr = learning_rate(cfg, global_step, total_steps, steps_per_epoch)
        for group in t.optimizer.param_groups:
            group["lr"] = lr
        x, y, target = batch(t, state, perm, x_train, y_train, soft_train, generator, augment)
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

        sums += torch.stack([loss.detach().double() * len(y), (logits.argmax(1) == y).sum().double(),
                             torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
        images_seen += len(y) * world
        state.step += 1
        bar.update(per_rank * world)
        t.status.write(force=False, epoch=state.epoch + 1, step=state.step, lr=lr,
                       images_per_second=round(images_seen / max(time.time() - started, 1e-9), 1),
                       **gpu_usage(device))
        # one collective a step decides for every rank: stop now, save now, or give up on a diverged run (its
        # loss checked every few steps, so that a GPU step does not wait for the loss each time)
        save_due = time.time() - last_save > cfg.checkpoint_minutes * 60 and state.step < steps_per_epoch
        checked = world > 1 or state.step % DIVERGENCE_EVERY == 0 or state.step == steps_per_epoch
        bad = float(not torch.isfinite(loss).item()) if checked else 0.0
        stop, save, bad = sum_across([float(t.stop.requested), float(save_due and t.is_main), bad], device, world)
        if bad:
            raise Diverged(f"the training loss became {loss.item():g} at epoch {state.epoch + 1}, step {state.step} "
                           f"(learning rate {lr:.3g}); the weights are lost from there on. Start it again with a "
                           "lower learning rate (model.safetensors keeps the best epoch before it, if there was one)")
        if stop or save:
            state.sums = sums.tolist()
            state.train_seconds += time.time() - clock
            clock = last_save = time.time()
            state.epoch_seconds = clock - began
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
    if not (math.isfinite(val_loss) and math.isfinite(loss_sum)):
        raise Diverged(f"epoch {state.epoch + 1} ended with a {'training' if math.isfinite(val_loss) else 'validation'}"
                       f" loss that is not a number (learning rate {lr:.3g}); the weights are lost from there on. "
                       "Start it again with a lower learning rate (model.safetensors keeps the best epoch before it, "
                       "if there was one)")
    row = {"epoch": state.epoch + 1, "train_loss": loss_sum / n, "train_acc": correct / n, "val_loss": val_loss,
           "val_acc": val_acc, "lr": lr, "seconds": seconds}
    state.history.append(row)
    state.epoch, state.step, state.sums, state.epoch_seconds = state.epoch + 1, 0, [0.0, 0.0, 0.0], 0.0
    improved = val_acc > state.best["val_acc"]
    if improved:
        state.best = {"val_acc": val_acc, "val_loss": val_loss, "epoch": row["epoch"]}
    if t.is_main:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        # the best weights before the state that says they exist: killed in between, a resume redoes the epoch.
        # The other way round, a run killed after its last epoch's state resumed as "finished" without them.
        if improved:
            save_best(t, state)
    t.save_state(state)
    if t.is_main:
        t.run.write_history(state.history)


def save_best(t: Trainer, state: TrainState) -> None:
    metrics = {"best_epoch": state.best["epoch"], "split": t.cfg.val_split, "val_acc": state.best["val_acc"],
               "val_loss": state.best["val_loss"]}
    save_model(t.run.path, t.eval_model, {**t.meta_base, "metrics": metrics}, half=t.cfg.half_weights)


def repair_after_resume(t: Trainer, state: TrainState) -> None:
    """What a kill between the last saves can leave behind, put right from the saved state: the history's rows,
    and the best weights when the best epoch is the one the state was saved at (its weights are the ones just
    loaded). Runs killed by earlier versions, which saved the state first, are repaired this way."""
    if not t.is_main:
        return
    t.run.write_history(state.history)
    best_epoch = state.best.get("epoch")
    try:
        saved = t.run.read_json(META_FILE).get("metrics", {}).get("best_epoch")
    except RunProblem:
        saved = None
    if best_epoch is not None and best_epoch == state.epoch and state.step == 0 and \
            (saved != best_epoch or not t.run.file(MODEL_FILE).exists()):
        save_best(t, state)
        print(f"repaired: model.safetensors now holds epoch {best_epoch}, the best, which a stop had left unsaved",
              file=sys.stderr)


def record_outcome(run: RunFolder, state: TrainState, train_faces: int, outcome: str) -> None:
    """meta.json's account of the training: epochs done, how it ended, seconds and images per second."""
    meta_now = run.read_json(META_FILE)
    if meta_now:
        meta_now["training"].update(epochs_done=len(state.history), state=outcome,
                                    seconds=round(state.train_seconds, 1),
                                    images_per_second=round(train_faces * len(state.history)
                                                            / max(state.train_seconds, 1e-9), 1))
        run.write_json(META_FILE, meta_now)


def build_trainer(cfg: TrainConfig, run: RunFolder, device, rank: int, world: int, threads: int, precision: str,
                  splits: Splits, status: StatusWriter, stop: StopSignal, resume: bool) -> tuple[Trainer, TrainState]:
    """The model, its EMA, the teacher and the optimizer, restored from last.safetensors on a resume, and what
    every saved meta.json says of the training."""
    model = build_model(cfg, device)
    ema = WeightEMA(model, cfg.model, cfg.ema) if cfg.ema else None
    teacher = Teacher(cfg.teacher, device, splits.mean, splits.std, cfg.temperature) if cfg.teacher else None
    optimizer = build_optimizer(model, cfg)
    state = TrainState()
    if resume and run.file(LAST_FILE).exists():
        info = load_training_state(run.file(LAST_FILE), model, optimizer, ema.module if ema is not None else None)
        state = TrainState.from_info(info, rank)
        if rank == 0:
            print(f"resuming {run.path} at epoch {state.epoch + 1}, step {state.step}", file=sys.stderr)
    meta_base = {"classes": list(EMOTIONS), "normalisation": {"mean": splits.mean, "std": splits.std},
                 "training": {"config": cfg.as_args(), "code_version": code_version(), "device": str(device),
                              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                              else f"CPU ({threads} threads x {world} processes)",
                              "world_size": world, "precision": precision, "data": cfg.data,
                              "recipe": cfg.recipe, "teacher": teacher.info if teacher is not None else None,
                              "split_sizes": {cfg.train_split: len(splits.train), cfg.val_split: len(splits.val)}}}
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    return Trainer(cfg, run, device, rank, world, precision, model, net, optimizer, ema, teacher, splits, status,
                   meta_base, stop), state


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

    t, state = build_trainer(cfg, run, device, rank, world, threads, precision, splits, status, stop, resume)
    t.kill_at_step, t.stop_at_step = kill_at_step, stop_at_step
    if resume:
        repair_after_resume(t, state)

    x_train = torch.as_tensor(splits.train.images).to(device)
    y_train = torch.as_tensor(splits.train.labels).to(device)
    soft_train = torch.as_tensor(splits.train.soft).to(device) if splits.train.soft is not None else None
    steps_per_epoch = max(1, len(x_train) // (max(1, cfg.batch_size // world) * world))
    total_steps = steps_per_epoch * cfg.epochs
    status.write(steps_per_epoch=steps_per_epoch, epoch=state.epoch + 1, step=state.step)

    outcome, why = "finished", None
    try:
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
    except Diverged as err:  # the history and the best weights stay as they were at the last good epoch
        outcome, why = "diverged", str(err)
        if rank == 0:
            print(f"error: {why}", file=sys.stderr)

    if rank == 0:
        record_outcome(run, state, len(x_train), outcome)
    status.write(state=outcome, finished=time.time(), train_seconds=round(state.train_seconds, 1),
                 **({"error": why} if why else {}))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return outcome
