"""Run registry: find run folders and read them as the dashboard and the launcher see them.

    from fer_models.runs import list_runs, read_status, read_history, read_evaluation
    for run in list_runs("artifacts/runs"):
        print(run.name, run.arch, run.state, run.val_acc)

Only reads; the trainer (fer_models.train) and the evaluator (fer_models.evaluate) write. A run
whose status says "running" but whose process is gone (killed, machine restarted) reads as
"died", so a page never shows a dead job as live.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .data import EMOTIONS

# A live trainer rewrites status.json every few seconds while it steps; validation and data
# loading can pause that for a while on a CPU, so only a long silence means it is gone.
STALE_SECONDS = 180

# the one dataset file the project ships (README: FER2013 credits), so faces show with no dataset installed
BUNDLED_PUBLICTEST = Path(__file__).resolve().parents[1] / "artifacts" / "data" / "fer2013_publictest.npz"


@dataclass
class RunSummary:
    name: str
    path: Path
    arch: str | None
    state: str                      # running | finished | failed | stopped | died | unknown
    val_acc: float | None           # best validation accuracy so far
    best_epoch: int | None
    epochs_done: int
    epochs: int | None
    evaluations: list[str] = field(default_factory=list)
    error: str | None = None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _alive_or_zombie(pid) -> bool:
    try:  # reap it if it is our child, so that a finished job does not look alive
        done, _ = os.waitpid(int(pid), os.WNOHANG)
        if done:
            return False
    except (ChildProcessError, TypeError, ValueError):
        pass
    return _process_alive(pid)


def read_status(run) -> dict:
    """status.json with `state` corrected for dead jobs; the state as written stays in `recorded_state`."""
    status = _read_json(Path(run) / "status.json")
    state = status.get("state", "unknown")
    status["recorded_state"] = state
    if state == "running":
        on_this_host = status.get("host") == socket.gethostname()
        fresh = time.time() - float(status.get("heartbeat") or 0) < STALE_SECONDS
        alive = _process_alive(status.get("pid")) if on_this_host else fresh
        if not alive:
            status["state"] = "died"
            status["error"] = status.get("error") or (
                "the training process is gone without finishing (killed or the machine restarted); "
                "resume it from its last checkpoint")
    else:
        status["state"] = state
    return status


def read_history(run) -> pd.DataFrame:
    path = Path(run) / "history.csv"
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    if not path.exists():
        return pd.DataFrame(columns=columns)
    return pd.read_csv(path)


def list_evaluations(run) -> list[str]:
    root = Path(run) / "eval"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "metrics.json").exists())


def read_evaluation(run, split: str) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
    """metrics.json, predictions.csv (ids as strings) and confusion.csv (None for an unlabelled split)."""
    folder = Path(run) / "eval" / split
    if not (folder / "metrics.json").exists():
        raise FileNotFoundError(f"{folder}: no evaluation; run python -m fer_models.evaluate --run {run} "
                                f"--data DATA --split {split}")
    metrics = _read_json(folder / "metrics.json")
    predictions = pd.read_csv(folder / "predictions.csv", dtype={"id": str})
    confusion = None
    if (folder / "confusion.csv").exists():
        confusion = pd.read_csv(folder / "confusion.csv", index_col=0).reindex(index=list(EMOTIONS),
                                                                                columns=list(EMOTIONS))
    return metrics, predictions, confusion


def faces_source(metrics: dict, split: str) -> Path | None:
    """The dataset an evaluation scored, if it is on this machine; else the bundled PublicTest faces."""
    recorded = Path(metrics.get("data", ""))
    if metrics.get("data") and recorded.exists():
        return recorded
    if split.removesuffix("-tta") == "PublicTest" and BUNDLED_PUBLICTEST.exists():
        return BUNDLED_PUBLICTEST
    return None


def summarise(run) -> RunSummary:
    run = Path(run)
    meta, config = _read_json(run / "meta.json"), _read_json(run / "config.json")
    status = read_status(run)
    history = read_history(run)
    metrics = meta.get("metrics", {})
    best = history["val_acc"].idxmax() if len(history) else None
    state, arch = status["state"], meta.get("arch") or config.get("args", {}).get("model")
    if state == "unknown" and (run / "job.json").exists():  # launched, the trainer not yet started
        job = _read_json(run / "job.json")
        command = job.get("command") or []
        arch = arch or (command[command.index("--model") + 1] if "--model" in command[:-1] else None)
        state = "running" if _alive_or_zombie(job.get("pid")) else "failed"
    return RunSummary(
        name=run.name, path=run,
        arch=arch,
        state=state,
        val_acc=float(history["val_acc"][best]) if best is not None else metrics.get("val_acc"),
        best_epoch=int(history["epoch"][best]) if best is not None else metrics.get("best_epoch"),
        epochs_done=len(history),
        epochs=config.get("args", {}).get("epochs"),
        evaluations=list_evaluations(run),
        error=status.get("error"),
    )


def list_runs(root) -> list[RunSummary]:
    """Every run folder directly under root (one with a config.json, meta.json or status.json, or the
    job.json of a job the dashboard launched, which holds nothing else until the trainer has read its
    data), by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = [p for p in sorted(root.iterdir()) if p.is_dir()
               and any((p / f).exists() for f in ("config.json", "meta.json", "status.json", "job.json"))]
    return [summarise(p) for p in folders]


def best_run(runs: list[RunSummary]) -> RunSummary | None:
    """The finished run with the highest validation accuracy (ties: first by name), else the first run:
    what the app opens on, so a fresh clone shows its best model rather than the alphabetically first."""
    finished = [r for r in runs if r.state == "finished" and r.val_acc is not None]
    if finished:
        return max(finished, key=lambda r: r.val_acc)  # max keeps the first of equals
    return runs[0] if runs else None


# ---------------------------------------------------------------- the README's models table

TABLE_START, TABLE_END = "<!-- models-table -->", "<!-- /models-table -->"


def reproduce_command(config: dict, run_name: str) -> str:
    """The train command that made a run: every argument that differs from the trainer's defaults."""
    from .train import DEFAULT_LR, DEFAULTS  # the trainer's defaults define what needs saying

    args = config.get("args", {})
    parts = ["python -m fer_models.train", f"--model {args.get('model')}",
             f"--data path/to/{Path(args.get('data') or 'fer2013.csv.gz').name}"]
    for key, value in args.items():
        if key in ("model", "data") or value is None:
            continue
        default = DEFAULT_LR.get(args.get("optimizer")) if key == "lr" else DEFAULTS.get(key)
        if value == default:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):  # the trainer's switches: --no-flip, --half-weights
            parts.append("--no-flip" if key == "flip" else flag)
        else:
            parts.append(f"{flag} {value}")
    parts.append(f"--out artifacts/runs/{run_name}")
    return " ".join(parts)


def models_table(root) -> str:
    """A Markdown table of every run under root, each figure read from its run folder."""
    lines = ["| run | model | parameters | epochs | device, precision | training time | PublicTest accuracy | "
             "with flip TTA | macro F1 | reproduce |", "|" + " --- |" * 10]
    for run in list_runs(root):
        meta, config = _read_json(run.path / "meta.json"), _read_json(run.path / "config.json")
        training = meta.get("training", {})
        plain = _read_json(run.path / "eval" / "PublicTest" / "metrics.json")
        tta = _read_json(run.path / "eval" / "PublicTest-tta" / "metrics.json")
        seconds = training.get("seconds")
        pct = lambda m: f"{m['accuracy']:.2%}" if "accuracy" in m else "not evaluated"  # noqa: E731
        lines.append(" | ".join([
            f"| {run.name}", run.arch or "?", f"{meta.get('params', 0) / 1e6:.2f}M",
            str(run.epochs_done), ", ".join(filter(None, [training.get("device_name", "?"), training.get("precision")])),
            f"{seconds / 3600:.1f} h" if seconds else "?", pct(plain), pct(tta),
            f"{plain['macro_f1']:.3f}" if "macro_f1" in plain else "-",
            f"`{reproduce_command(config, run.name)}` |"]))
    return "\n".join(lines)


def write_table(readme, root) -> None:
    readme = Path(readme)
    text = readme.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{readme}: add the lines {TABLE_START} and {TABLE_END} where the table goes")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    readme.write_text(f"{head}{TABLE_START}\n{models_table(root)}\n{TABLE_END}{tail}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fer_models.runs",
                                     description="Print the models table of a runs folder, or write it into a README.")
    parser.add_argument("--root", default="artifacts/runs")
    parser.add_argument("--readme", help="rewrite the table between the models-table markers of this file")
    cli = parser.parse_args()
    if cli.readme:
        write_table(cli.readme, cli.root)
    else:
        print(models_table(cli.root))
