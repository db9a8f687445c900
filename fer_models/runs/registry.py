"""Run registry: find run folders and read them as the dashboard and the launcher see them.

    fer-studio runs [--root artifacts/runs]            # the models table, or a line per bad run
    fer-studio runs --readme README.md                 # rewrite the README's models table

    from fer_models.runs.registry import list_runs
    for run in list_runs("artifacts/runs"):
        print(run.name, run.arch, run.state, run.val_acc)

Only reads; the trainer and the evaluator write (through fer_models.runs.folder). A run whose status says
"running" but whose process is gone (killed, machine restarted) reads as "interrupted", so a page never shows a
dead job as live; a run whose files cannot be used reads as "unreadable" with the reason, and every
other run is listed as usual.
"""
from __future__ import annotations

import math
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fer_models.core.arguments import OneLineParser
from fer_models.core.constants import EMOTIONS
from fer_models.core.guards import UntrustedFileError, capped_bytes, file_kind
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.datasets.facedata import DataError
from fer_models.datasets.folders import looks_like_class_folders
from fer_models.datasets.loading import dataset_source
from fer_models.runs.folder import CONFUSION_FILE, JOB_FILE, METRICS_FILE, PREDICTIONS_FILE, RunFolder, RunProblem
from fer_models.runs.processes import trainer_alive
from fer_models.runs.recipes import matching_recipe
from fer_models.runs.settings import OPTIMIZERS, RECIPE_FIELDS, SETTINGS, TrainConfig, flag

# A live trainer rewrites status.json every few seconds while it steps; validation and data
# loading can pause that for a while on a CPU, so only a long silence means it is gone.
STALE_SECONDS = 180
# two machines' clocks disagree by a little; a heartbeat further ahead than this was never written by a live trainer
FUTURE_SECONDS = 60

MAX_PREDICTIONS_BYTES = 256 * 2**20
MAX_README_BYTES = 16 * 2**20  # this project's is 30 kB  # a prediction row is ~100 bytes: room for 2 million faces


@dataclass
class RunSummary:
    name: str
    path: Path
    arch: str | None
    state: str                      # running | finished | failed | stopped | interrupted | unknown | unreadable
    val_acc: float | None           # best validation accuracy so far
    best_epoch: int | None
    epochs_done: int
    epochs: int | None
    evaluations: list[str] = field(default_factory=list)
    error: str | None = None


def read_status(run) -> dict:
    """status.json with `state` corrected for dead jobs; the state as written stays in `recorded_state`.
    Raises RunProblem for a malformed status.json."""
    status = RunFolder(run).status()
    state = status.get("state", "unknown")
    status["recorded_state"] = state
    status["state"] = state
    if state == "running":
        on_this_host = status.get("host") == socket.gethostname()
        age = time.time() - float(status.get("heartbeat") or 0)
        # a heartbeat from the future would keep a run "running" for ever, and Resume and Delete refused with it
        future = not math.isfinite(age) or age < -FUTURE_SECONDS
        fresh = not future and age < STALE_SECONDS
        alive = trainer_alive(status.get("pid"), RunFolder(run).path) if on_this_host else fresh
        if not alive:
            status["state"] = "interrupted"
            status["error"] = status.get("error") or (
                "its heartbeat lies in the future, so no trainer can be confirmed alive; resume it from its last "
                "checkpoint" if future and not on_this_host else
                "the training process is gone without finishing (killed or the machine restarted); "
                "resume it from its last checkpoint")
    return status


def read_history(run) -> pd.DataFrame:
    """history.csv (RunProblem if malformed); an empty table with the contract's columns if absent."""
    return RunFolder(run).history()


def list_evaluations(run) -> list[str]:
    return RunFolder(run).evaluations()


def read_evaluation(run, split: str) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
    """metrics.json, predictions.csv (ids as strings) and confusion.csv (None for an unlabelled split)."""
    run_folder = RunFolder(run)
    if Path(run).exists() and not Path(run).is_dir():  # the advice below (evaluate --run) would not apply
        raise RunProblem(f"{run}: is {file_kind(Path(run).stat().st_mode)}, not a run folder; give a run's folder")
    folder = run_folder.eval_dir(split)
    if not (folder / METRICS_FILE).exists():
        raise FileNotFoundError(f"{folder}: no evaluation; run fer-studio evaluate --run {run} "
                                f"--data DATA --split {split}")
    metrics = run_folder.evaluation_metrics(split)
    where = f"run {run_folder.name}: eval/{split}"
    for name in (PREDICTIONS_FILE, CONFUSION_FILE):
        path = folder / name
        if path.exists() and not path.is_file():
            raise RunProblem(f"{where}/{name}: is {file_kind(path.stat().st_mode)}, not a regular file")
        if path.is_symlink():  # pandas would parse whatever it points at (/etc/passwd) as this run's predictions
            raise RunProblem(f"{where}/{name}: is a link, not a file of the run's own; evaluate the run again")
        if path.exists() and path.stat().st_size > MAX_PREDICTIONS_BYTES:
            raise RunProblem(f"{where}/{name}: larger than {MAX_PREDICTIONS_BYTES // 2**20} MB, too large for "
                             "an evaluation")
    try:
        predictions = pd.read_csv(folder / PREDICTIONS_FILE, dtype={"id": str})
        confusion = None
        if (folder / CONFUSION_FILE).exists():
            confusion = pd.read_csv(folder / CONFUSION_FILE, index_col=0).reindex(index=list(EMOTIONS),
                                                                                   columns=list(EMOTIONS))
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise RunProblem(f"{where} cannot be read ({str(err).splitlines()[0]})") from err
    if not {"id", "true", "pred"} <= set(predictions.columns):
        raise RunProblem(f"{where}/{PREDICTIONS_FILE}: lacks the columns id, true, pred")
    n = len(EMOTIONS)
    checks = {"true": (-1, n - 1), "pred": (0, n - 1), **{f"p_{e}": (0, 1) for e in EMOTIONS
                                                          if f"p_{e}" in predictions.columns}}
    for column, (lo, hi) in checks.items():
        values = pd.to_numeric(predictions[column], errors="coerce")
        whole = column in ("true", "pred")
        if not (values.between(lo, hi) & (values % 1 == 0 if whole else True)).all():
            raise RunProblem(f"{where}/{PREDICTIONS_FILE}: column {column} holds values outside {lo}..{hi}")
        predictions[column] = values.astype(int) if whole else values
    counts = confusion.apply(pd.to_numeric, errors="coerce") if confusion is not None else None
    if counts is not None and (counts.isna() & confusion.notna() | (counts < 0)).any().any():
        raise RunProblem(f"{where}/{CONFUSION_FILE}: holds something that is not a count")
    return metrics, predictions, confusion


def faces_source(metrics: dict, split: str) -> Path | None:
    """The dataset an evaluation scored, if it is on this machine: a dataset file, or a folder laid out as class
    folders (the recorded path is untrusted: it is only ever read as data, and "/" or a pipe is not a dataset);
    else the bundled PublicTest faces for a PublicTest evaluation."""
    recorded = metrics.get("data")
    if isinstance(recorded, str) and recorded:
        try:
            path = dataset_source(recorded)
        except (DataError, OSError):
            path = None
        if path is not None and (path.is_file() or looks_like_class_folders(path)):
            return path
    if isinstance(split, str) and split.removesuffix("-tta") == "PublicTest" and BUNDLED_PUBLICTEST.exists():
        return BUNDLED_PUBLICTEST
    return None


def summarise(run) -> RunSummary:
    """What the picker and the tables show of one run; RunProblem if one of its files is malformed."""
    folder = RunFolder(run)
    meta, config = folder.meta(), folder.config()
    status = read_status(folder.path)
    history = folder.history()
    metrics = meta.get("metrics", {})
    best = history["val_acc"].idxmax() if len(history) and history["val_acc"].notna().any() else None
    state, arch = status["state"], meta.get("arch") or config.get("args", {}).get("model")
    # launched and its trainer not yet started, or started and still loading (no config.json yet: its card read
    # "name · ? · running"): the model its command names
    if (state == "unknown" or arch is None) and folder.file(JOB_FILE).exists():
        job = folder.job()
        command = job.get("command") if isinstance(job.get("command"), list) else []
        named = command[command.index("--model") + 1] if "--model" in command[:-1] else None
        arch = arch or (named if isinstance(named, str) else None)
        if state == "unknown":
            state = "running" if trainer_alive(job["pid"], folder.path) else "failed"
    epochs = config.get("args", {}).get("epochs")
    return RunSummary(
        name=folder.name, path=folder.path, arch=arch, state=state,
        val_acc=float(history["val_acc"][best]) if best is not None else metrics.get("val_acc"),
        best_epoch=int(history["epoch"][best]) if best is not None else metrics.get("best_epoch"),
        epochs_done=len(history),
        epochs=int(epochs) if isinstance(epochs, (int, float)) else None,
        evaluations=folder.evaluations(),
        error=status.get("error"),
    )


def unreadable(run: Path, why: str) -> RunSummary:
    return RunSummary(name=run.name, path=run, arch=None, state="unreadable", val_acc=None, best_epoch=None,
                      epochs_done=0, epochs=None, error=why)


def list_runs(root) -> list[RunSummary]:
    """Every run folder directly under root (one with a config.json, meta.json or status.json, or the
    job.json of a job the dashboard launched, which holds nothing else until the trainer has read its
    data), by name. A run that cannot be read is listed as unreadable, with the reason."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for path in sorted(root.iterdir()):
        folder = RunFolder(path)
        try:
            if not folder.is_run():
                continue
            runs.append(summarise(path))
        except (RunProblem, OSError, ValueError, KeyError, TypeError) as err:
            runs.append(unreadable(path, str(err) if isinstance(err, RunProblem) else
                                   f"run {path.name}: {type(err).__name__}: {err}"))
    return runs


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
    """The train command that made a run: its recipe when it follows one (fer_models.runs.recipes), else every
    argument that differs from the defaults (fer_models.runs.settings)."""
    args = config.get("args", {}) if isinstance(config.get("args"), dict) else {}
    recipe = matching_recipe(args)
    parts = ["fer-studio train"] + ([f"--recipe {recipe}"] if recipe else [f"--model {args.get('model')}"])
    # the data's and the run's names come from the folder: quoted, a pasted command runs nothing they hold
    parts.append(f"--data {shlex.quote('path/to/' + Path(args.get('data') or 'fer2013.csv.gz').name)}")
    optimizer = args.get("optimizer") if args.get("optimizer") in OPTIMIZERS else "sgd"
    defaults = TrainConfig(optimizer=optimizer).resolved()  # lr and weight decay: the optimizer's own
    for key, value in args.items():
        if key not in SETTINGS or key in ("model", "data", "recipe") or value is None or \
                (recipe and key in RECIPE_FIELDS) or value == getattr(defaults, key):
            continue
        if isinstance(value, bool):  # the trainer's switches: --no-flip, --half-weights
            parts.append(flag(key))
        else:
            parts.append(f"{flag(key)} {value}")
    # a folder of its own (a shipped one is never to be overwritten or restarted), beside the shipped runs, where
    # the dashboard's run picker and Train page look: under runs/ the new run never showed up
    parts.append(f"--out {shlex.quote(f'artifacts/runs/{run_name}_again')}")
    return " ".join(parts)


def split_role(config: dict, split: str) -> str:
    """What a split was to a run, from its recorded settings: "training" (it learned from it), "validation" (it
    picked the best epoch on it: its scores there are a little optimistic), or "test" (never seen in training
    or selection); "unknown" without settings."""
    args = config.get("args") if isinstance(config.get("args"), dict) else None
    if args is None:
        return "unknown"
    name = split.removesuffix("-tta") if isinstance(split, str) else split
    if name == args.get("train_split", "Training"):
        return "training"
    if not args.get("val_fraction") and name == args.get("val_split", "PublicTest"):
        return "validation"
    return "test"


ROLE_WORDS = {"training": "training (learned from it)", "validation": "validation (it picked the best epoch)",
              "test": "test (never seen)", "unknown": "unknown"}


def training_cost(meta: dict, config: dict) -> dict:
    """What a run's training took: sittings (the start and each resume), wall hours, core-hours (wall time times
    the threads of every process) and images per second, from meta.json and config.json."""
    training = meta.get("training", {}) if isinstance(meta.get("training"), dict) else {}
    seconds = training.get("seconds")
    resumed = config.get("resumed") if isinstance(config.get("resumed"), list) else []
    threads = config.get("threads_per_process") if isinstance(config.get("threads_per_process"), int) else None
    world = config.get("world_size") if isinstance(config.get("world_size"), int) else 1
    return {"sittings": 1 + len(resumed), "hours": seconds / 3600 if seconds else None,
            "core_hours": seconds * threads * world / 3600 if seconds and threads else None,
            "images_per_second": _images_per_second(training, config)}


def _images_per_second(training: dict, config: dict) -> float | None:
    """Training faces × epochs / seconds, as the trainer computes it: meta.json's own figure is rounded to 0.1,
    and rounding that again to a whole number can land on the wrong one (305.49 stored as 305.5 reads 306)."""
    args = config.get("args") if isinstance(config.get("args"), dict) else {}
    sizes = training.get("split_sizes") if isinstance(training.get("split_sizes"), dict) else {}
    split = args.get("train_split", "Training")
    faces = sizes.get(split) if isinstance(split, str) else None
    epochs, seconds = training.get("epochs_done"), training.get("seconds")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
           for v in (faces, epochs, seconds)):
        return faces * epochs / seconds
    return training.get("images_per_second")


# in a cell of the README's table: what Markdown or HTML would act on (an underscore only at a word's edge: inside
# one, as in resnet10_fer, GitHub leaves it alone, and the table stays readable)
_CELL_MARKDOWN = re.compile(r"([\\`*\[\]~$|!]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_CELL_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _cell(value) -> str:
    """Text from a run folder made inert in a Markdown table cell: on one line, its Markdown escaped, its HTML
    shown as text, and no | that would end the cell."""
    text = " ".join(str(value).splitlines())
    text = _CELL_MARKDOWN.sub(r"\\\1", text)
    return re.sub(r"[&<>]", lambda m: _CELL_HTML[m.group()], text)


def _code_cell(value) -> str:
    """Text shown as code in a table cell: a code span shows it as it is, but a | still ends the cell and a
    backtick the span, so the fence is longer than any run of backticks inside."""
    text = " ".join(str(value).splitlines()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def models_table(root) -> str:
    """A Markdown table of every run under root, each figure read from its run folder."""
    lines = ["| run | model | parameters | epochs | sittings | training time | core-hours | images/s | device, "
             "precision | PublicTest was | PublicTest accuracy | with flip TTA | macro F1 | scored in | reproduce |",
             "|" + " --- |" * 15]
    for run in list_runs(root):
        folder = RunFolder(run.path)
        if run.state == "unreadable":
            lines.append(f"| {_cell(run.name)} | unreadable: {_cell(run.error)} |" + " |" * 13)
            continue
        meta, config = folder.meta(), folder.config()
        training = meta.get("training", {})
        cost = training_cost(meta, config)
        plain, tta = (_metrics(folder, split) for split in ("PublicTest", "PublicTest-tta"))
        pct = lambda m: f"{m['accuracy']:.2%}" if "accuracy" in m else "not evaluated"  # noqa: E731
        lines.append(" | ".join([
            f"| {_cell(run.name)}", _cell(run.arch or "?"),
            f"{meta['params'] / 1e6:.2f}M" if meta.get("params") is not None else "?",
            str(run.epochs_done), str(cost["sittings"]),
            f"{cost['hours']:.1f} h" if cost["hours"] else "?",
            f"{cost['core_hours']:.1f}" if cost["core_hours"] else "?",
            f"{cost['images_per_second']:.0f}" if cost["images_per_second"] else "?",
            _cell(", ".join(filter(None, [training.get("device_name", "?"), training.get("precision")]))),
            ROLE_WORDS[split_role(config, "PublicTest")], pct(plain), pct(tta),
            f"{plain['macro_f1']:.3f}" if "macro_f1" in plain else "-", _cell(plain.get("precision") or "?"),
            f"{_code_cell(reproduce_command(config, run.name))} |"]))
    return "\n".join(lines)


def _metrics(folder: RunFolder, split: str) -> dict:
    try:
        return folder.evaluation_metrics(split)
    except RunProblem:
        return {}


def write_table(readme, root) -> None:
    readme = Path(readme)
    try:  # says what is there instead (a folder, a named pipe, nothing), and a README's size before reading it
        text = capped_bytes(readme, MAX_README_BYTES).decode("utf-8")
    except UntrustedFileError as err:
        raise ValueError(f"{err}; give the README to rewrite") from None
    except UnicodeDecodeError:
        raise ValueError(f"{readme}: is not UTF-8 text; give the README (Markdown) to rewrite") from None
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{readme}: add the lines {TABLE_START} and {TABLE_END} where the table goes")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    readme.write_text(f"{head}{TABLE_START}\n{models_table(root)}\n{TABLE_END}{tail}")


def parser() -> OneLineParser:
    parser = OneLineParser(prog="fer-studio runs",
                           description="Print the models table of a runs folder, or write it into a README.")
    parser.add_argument("--root", default="artifacts/runs")
    parser.add_argument("--readme", help="rewrite the table between the models-table markers of this file")
    return parser


def main(argv=None) -> int:
    cli = parser().parse_args(argv)
    try:
        if cli.readme:
            write_table(cli.readme, cli.root)
        else:
            print(models_table(cli.root))
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for run in list_runs(cli.root):
        if run.state == "unreadable":
            print(f"warning: {run.error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
