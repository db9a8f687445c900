"""The run folder contract: every file's name, atomic writes, and reads that validate what they return.

    from fer_models.runs.folder import RunFolder, RunProblem
    run = RunFolder("artifacts/runs/cnn3")
    run.status()["state"]; run.history(); run.meta()["normalisation"]; run.settings().epochs

A run folder is untrusted input: runs are copied between machines and shared between people. Every
read checks types and ranges and raises RunProblem naming the run, the file and what is wrong, so a
caller can report that one run and go on with the others. A missing optional file reads as empty.
Writes go to a temporary file that is then renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from fer_models.core.constants import EMOTIONS
from fer_models.core.files import atomic_write_json, atomic_write_text
from fer_models.core.guards import file_kind
from fer_models.runs.settings import SPLIT_PATTERN, TrainConfig, config_from

CONFIG_FILE, HISTORY_FILE, STATUS_FILE = "config.json", "history.csv", "status.json"
MODEL_FILE, META_FILE, LAST_FILE = "model.safetensors", "meta.json", "last.safetensors"
JOB_FILE, LOG_FILE, EVAL_DIR = "job.json", "train.log", "eval"
ATLAS_FILE = "atlas.npz"  # fer_models.explain.atlas: the Filters page's rankings and patterns, precomputed
PREDICTIONS_FILE, CONFUSION_FILE, METRICS_FILE = "predictions.csv", "confusion.csv", "metrics.json"
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
STATES = ("running", "finished", "failed", "stopped", "diverged")
# a folder is a run if it holds one of these; until config.json exists it holds no training state
MARKERS = (CONFIG_FILE, META_FILE, STATUS_FILE, JOB_FILE)
TRAINING_STATE = (CONFIG_FILE, LAST_FILE, MODEL_FILE, META_FILE, HISTORY_FILE)
_MAX_RECORD_BYTES = 8 * 2**20  # a record is a few kB (a history of 10,000 epochs ~0.6 MB); larger is not one
_MAX_HISTORY_COLUMNS = 64
_EVAL_NAME = re.compile(SPLIT_PATTERN.pattern + r"(-tta)?")


class RunProblem(ValueError):
    """A run folder file that cannot be used; the message names the run, the file and the problem."""


def _number(value, integer: bool = False) -> bool:
    """A finite JSON number (an int too large for a float is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and (not integer or float(value).is_integer())
    except OverflowError:
        return False


def valid_split(split) -> str:
    """A split or evaluation name that is safe as one folder name (eval/<split>/), else RunProblem."""
    if not isinstance(split, str) or not _EVAL_NAME.fullmatch(split):
        raise RunProblem(f"split name {split!r} is not a plain name (letters, digits, '_', '-', '.', at most "
                         "64 characters, not starting with '.'): it would be used as a folder name")
    return split


def split_argument(text: str) -> str:
    """valid_split as an argparse type: a bad --split is refused while the arguments are read, before any work."""
    import argparse

    try:
        return valid_split(text)
    except RunProblem as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class RunFolder:
    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def is_run(self) -> bool:
        return self.path.is_dir() and any((self.path / f).exists() for f in MARKERS)

    def has_training_state(self) -> bool:
        return any((self.path / f).exists() for f in TRAINING_STATE)

    # ------------------------------------------------------------ reading

    def problem(self, file: str, why: str) -> RunProblem:
        return RunProblem(f"run {self.name}: {file}: {why}")

    def read_bytes(self, name: str, limit: int = _MAX_RECORD_BYTES) -> bytes | None:
        """A record's bytes, None if absent. Only a regular file is read (a pipe would block, a device
        never end) and only up to `limit` bytes (the size of a record unless said)."""
        path = self.path / name
        if not path.exists() and not path.is_symlink():
            return None
        if not path.is_file():
            try:
                kind = file_kind(path.stat().st_mode)
            except OSError:
                kind = "a link to nothing"
            raise self.problem(name, f"{kind}, not a regular file")
        if path.is_symlink():  # a link could make /etc/passwd, or another run's record, read as this run's
            raise self.problem(name, "is a link, not a file of the run's own; put the file itself there")
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError as err:
            raise self.problem(name, f"cannot be read ({err.strerror or err})") from err
        if len(data) > limit:
            raise self.problem(name, f"larger than {limit // 2**20} MB, too large for a run record")
        return data

    def read_json(self, name: str, required: bool = False) -> dict:
        """A JSON object file; {} if it is absent and not required."""
        data = self.read_bytes(name)
        if data is None:
            if required:
                raise self.problem(name, "missing")
            return {}
        try:
            value = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise self.problem(name, f"not UTF-8 text ({err.reason})") from err
        except json.JSONDecodeError as err:
            raise self.problem(name, f"not valid JSON ({err.msg} at line {err.lineno})") from err
        except (ValueError, RecursionError) as err:  # a 5,000-digit number; brackets nested 100,000 deep
            raise self.problem(name, f"not usable JSON ({str(err)[:80]})") from err
        if not isinstance(value, dict):
            raise self.problem(name, f"holds a {type(value).__name__}, not a JSON object")
        return value

    def config(self) -> dict:
        """config.json with its `args` validated as training settings; {} if absent."""
        config = self.read_json(CONFIG_FILE)
        if config:
            self.settings(config)
        return config

    def settings(self, config: dict | None = None) -> TrainConfig:
        config = self.read_json(CONFIG_FILE, required=True) if config is None else config
        args = config.get("args")
        if not isinstance(args, dict):
            raise self.problem(CONFIG_FILE, "has no 'args' object with the training settings")
        try:
            return config_from(args)
        except ValueError as err:
            raise self.problem(CONFIG_FILE, f"has bad settings: {err}") from err

    def status(self) -> dict:
        """status.json as written; {} if absent. `state` is one of STATES, counters are numbers."""
        status = self.read_json(STATUS_FILE)
        if not status:
            return {}
        if status.get("state") not in STATES:
            raise self.problem(STATUS_FILE, f"has state {status.get('state')!r}, not one of {', '.join(STATES)}")
        for key in ("pid", "epoch", "step", "epochs", "steps_per_epoch", "world_size"):
            if status.get(key) is not None and not (_number(status[key], integer=True) and status[key] >= 0):
                raise self.problem(STATUS_FILE, f"has {key} {status[key]!r}, not a whole number ≥ 0")
        for key in ("heartbeat", "started", "finished", "lr", "images_per_second", "train_seconds",
                    "gpu_memory_mib", "gpu_utilisation"):
            if status.get(key) is not None and not _number(status[key]):
                raise self.problem(STATUS_FILE, f"has {key} {status[key]!r}, not a number")
        for key in ("error", "host", "device"):
            if status.get(key) is not None and not isinstance(status[key], str):
                raise self.problem(STATUS_FILE, f"has {key} {status[key]!r}, not text")
        return status

    def history(self) -> pd.DataFrame:
        """history.csv, one row per epoch, every HISTORY_COLUMNS cell a finite number and each epoch a whole
        number ≥ 1; an empty table if absent or empty."""
        import io

        data = self.read_bytes(HISTORY_FILE)
        if not data or not data.strip():
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        header = data.split(b"\n", 1)[0]
        if header.count(b",") >= _MAX_HISTORY_COLUMNS:
            raise self.problem(HISTORY_FILE, f"has {header.count(b',') + 1:,} columns; it has "
                                             f"{len(HISTORY_COLUMNS)}: {', '.join(HISTORY_COLUMNS)}")
        try:
            table = pd.read_csv(io.BytesIO(data))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
            raise self.problem(HISTORY_FILE, f"not a readable CSV ({str(err).splitlines()[0]})") from err
        missing = [c for c in HISTORY_COLUMNS if c not in table.columns]
        if missing:
            raise self.problem(HISTORY_FILE, f"lacks the column(s) {', '.join(missing)}")
        table = table[HISTORY_COLUMNS]
        if table.columns.duplicated().any():
            raise self.problem(HISTORY_FILE, "names a column twice")
        numeric = table.apply(pd.to_numeric, errors="coerce")
        bad = ~numeric.apply(lambda column: column.map(lambda v: _number(v)))
        if bad.any().any():
            row, column = bad.stack()[lambda s: s].index[0]
            # where, not what: the cell's text is the folder's, and the message goes on screen
            raise self.problem(HISTORY_FILE, f"has a value that is not a finite number in column {column} "
                                             f"(line {row + 2})")
        if not ((numeric["epoch"] >= 1) & (numeric["epoch"] % 1 == 0)).all():
            raise self.problem(HISTORY_FILE, "has an epoch that is not a whole number ≥ 1")
        return numeric

    def meta(self, required: bool = False) -> dict:
        """meta.json, checked: architecture name, 7 class names, a usable normalisation where there is one
        (see normalisation()), metrics that are numbers. {} if absent and not required."""
        meta = self.read_json(META_FILE, required=required)
        if not meta:
            return {}
        if not isinstance(meta.get("arch"), str) or not meta["arch"]:
            raise self.problem(META_FILE, "has no 'arch' entry naming the architecture")
        classes = meta.get("classes", list(EMOTIONS))
        if not isinstance(classes, list) or len(classes) != len(EMOTIONS) or \
                not all(isinstance(c, str) for c in classes):
            raise self.problem(META_FILE, f"has classes {classes!r}, not a list of the {len(EMOTIONS)} class names")
        if meta.get("normalisation") is not None:
            self.normalisation(meta)
        for section in ("metrics", "training", "input"):
            if section in meta and not isinstance(meta[section], dict):
                raise self.problem(META_FILE, f"has a {section!r} entry that is not an object")
        for key, value in meta.get("metrics", {}).items():
            if key in ("val_acc", "val_loss", "best_epoch") and value is not None and not _number(value):
                raise self.problem(META_FILE, f"has metrics.{key} {value!r}, not a number")
        if meta.get("params") is not None and not (_number(meta["params"], integer=True) and meta["params"] >= 0):
            raise self.problem(META_FILE, f"has params {meta['params']!r}, not a count")
        training = meta.get("training", {})
        for key in ("seconds", "images_per_second", "epochs_done", "world_size"):
            if training.get(key) is not None and not _number(training[key]):
                raise self.problem(META_FILE, f"has training.{key} {training[key]!r}, not a number")
        for key in ("device_name", "device", "precision", "data", "recipe"):
            if training.get(key) is not None and not isinstance(training[key], str):
                raise self.problem(META_FILE, f"has training.{key} {training[key]!r}, not text")
        if meta.get("shipped") is not None and not isinstance(meta["shipped"], dict):
            raise self.problem(META_FILE, "has a 'shipped' entry that is not an object")
        return meta

    def normalisation(self, meta: dict) -> dict:
        """The pixel statistics the model was trained with, which loading it needs: a finite mean, a std > 0."""
        norm = meta.get("normalisation")
        if not (isinstance(norm, dict) and _number(norm.get("mean")) and _number(norm.get("std")) and norm["std"] > 0):
            raise self.problem(META_FILE, f"has normalisation {norm!r}: it needs a finite 'mean' and a 'std' "
                                          "above 0 (the pixel statistics the model was trained with)")
        return norm

    def job(self) -> dict:
        """job.json of a job the dashboard launched: pid (a positive whole number) and devices; {} if absent."""
        job = self.read_json(JOB_FILE)
        if not job:
            return {}
        if not (_number(job.get("pid"), integer=True) and job["pid"] > 0):
            raise self.problem(JOB_FILE, f"has pid {job.get('pid')!r}, not a process id")
        devices = job.get("devices", [])
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise self.problem(JOB_FILE, f"has devices {devices!r}, not a list of device names")
        return job

    def evaluations(self) -> list[str]:
        """The evaluation names under eval/ that hold a metrics.json (folders with other names are ignored)."""
        root = self.path / EVAL_DIR
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir()
                      if _EVAL_NAME.fullmatch(p.name) and (p / METRICS_FILE).is_file())

    def eval_dir(self, split: str) -> Path:
        """eval/<split>/, a real folder inside the run: a symlink there (or at eval/) would send the
        evaluator's writes elsewhere."""
        path = self.path / EVAL_DIR / valid_split(split)
        for part in (self.path / EVAL_DIR, path):
            if part.is_symlink() or (part.exists() and not part.is_dir()):
                raise self.problem(f"{part.relative_to(self.path)}", "is a link or a file, not a folder of the run")
        return path

    def evaluation_metrics(self, split: str) -> dict:
        """eval/<split>/metrics.json with its figures checked (numbers, or absent for an unlabelled split)."""
        self.eval_dir(split)
        # read as the run's own file, so that a problem names the run (not the split's folder) and the whole path
        metrics = self.read_json(f"{EVAL_DIR}/{split}/{METRICS_FILE}")
        for key in ("accuracy", "macro_f1", "top2_accuracy", "ece", "nll", "n", "seconds"):
            if metrics.get(key) is not None and not _number(metrics[key]):
                raise self.problem(f"{EVAL_DIR}/{split}/{METRICS_FILE}", f"has {key} {metrics[key]!r}, not a number")
        per_class = metrics.get("per_class", {})
        if not isinstance(per_class, dict) or not all(
                isinstance(v, dict) and all(_number(x) for x in v.values()) for v in per_class.values()):
            raise self.problem(f"{EVAL_DIR}/{split}/{METRICS_FILE}", "has per_class scores that are not numbers")
        if metrics.get("data") is not None and not isinstance(metrics["data"], str):
            raise self.problem(f"{EVAL_DIR}/{split}/{METRICS_FILE}", "has a data path that is not text")
        return metrics

    # ------------------------------------------------------------ writing (the trainer and the evaluator)

    def write_json(self, name: str, value: dict) -> None:
        atomic_write_json(self.path / name, value)

    def write_history(self, rows: list[dict]) -> None:
        lines = [",".join(HISTORY_COLUMNS)] + [",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])
                                                        for c in HISTORY_COLUMNS) for r in rows]
        atomic_write_text(self.path / HISTORY_FILE, "\n".join(lines) + "\n")

    def clear_training_state(self) -> list[str]:
        """Remove the files of a start that never got going (and of --restart): the contract's training files
        only, never anything else a user put in the folder. An eval/ folder is not training state (evaluations,
        perhaps the user's own): RunProblem, before anything is removed, asks for it to be moved. Returns the
        names removed."""
        if (self.path / EVAL_DIR).exists() or (self.path / EVAL_DIR).is_symlink():
            raise self.problem(f"{EVAL_DIR}/", "holds evaluations that a new training would delete; move eval/ out "
                                               "of the folder, or train into an empty folder")
        removed = []
        for name in (*TRAINING_STATE, STATUS_FILE):
            path = self.path / name
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed.append(name)
        return removed
