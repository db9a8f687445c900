"""Train a FER model and write a run folder (config, history, status, best weights, resumable state).

    fer-studio train --model cnn3 --data fer2013.csv.gz --epochs 30 --out runs/cnn3
    fer-studio train --recipe resnet10_fer --data fer2013.csv.gz --out runs/resnet10_fer
    fer-studio train --out runs/cnn3 --resume              # after a kill or a stop
    torchrun --standalone --nproc_per_node=2 -m fer_models train ...      # DDP (gloo on CPU, nccl on GPU)

Trains on --train-split (Training), validates every epoch on --val-split (PublicTest) and keeps the
best epoch's weights in model.safetensors. The whole dataset sits on the training device as uint8 and
batches are augmented there (fer_models.datasets.augment): no data loader workers, no per-image PIL.
Every setting, its default and its bounds: fer_models.runs.settings.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

from fer_models.core.arguments import OneLineParser
from fer_models.datasets.facedata import DataError
from fer_models.nets.models import list_models
from fer_models.runs.checkpoints import CheckpointError
from fer_models.runs.folder import CONFIG_FILE, META_FILE, STATUS_FILE, RunFolder, RunProblem
from fer_models.runs.recipes import RECIPES, recipe
from fer_models.runs.settings import RESUMABLE_FIELDS, SETTINGS, TrainConfig, add_arguments, config_from, flag
from fer_models.training.loop import train


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio train", description=__doc__.split("\n")[0])
    add_arguments(p, model_choices=list_models())
    p.add_argument("--out", required=True, help="run folder, e.g. artifacts/runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved state")
    p.add_argument("--restart", action="store_true",
                   help="discard the training state in --out (a failed or broken start) and start anew")
    p.add_argument("--kill-at-step", type=int, help=argparse.SUPPRESS)  # tests: SIGKILL ourselves at this step
    p.add_argument("--stop-at-step", type=int, help=argparse.SUPPRESS)  # tests: as if SIGTERM came at this step
    return p


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
    if run.path.is_dir() and _shipped(run):
        raise DataError(f"{run.path} is a shipped reference run: train into a folder of your own (--out runs/NAME); "
                        "it is never restarted or overwritten")
    if run.path.is_dir():
        if run.has_training_state() and not args.restart:
            raise DataError(f"{run.path}: run folder already exists and holds a run; use --resume to continue it, "
                            "--restart to discard it and start anew, or another --out")
        try:  # --restart, or a start that died before writing its config: its training files go, nothing else
            run.clear_training_state()
        except RunProblem as err:  # an eval/ there, kept: the user moves it
            raise DataError(str(err)) from err
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


def _shipped(run: RunFolder) -> bool:
    try:
        return "shipped" in run.read_json(META_FILE)
    except RunProblem:
        return False


def main(argv=None) -> int:
    args = parser().parse_args(argv)
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
        mark_failed(out, str(err))
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk: what was saved before stays, and resumes once there is room
        why = f"cannot write the run folder ({err.strerror or err}); make room and resume it with --resume"
        mark_failed(out, why)
        print(f"error: {out}: {why}", file=sys.stderr)
        return 2
    except Exception as err:
        mark_failed(out, f"{type(err).__name__}: {err}", traceback.format_exc())
        raise
    return 0 if state in ("finished", "stopped") else 1


def mark_failed(out: Path, error: str, trace: str | None = None) -> None:
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
