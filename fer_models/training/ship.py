"""Copy a finished run into the repository as a reference run, and evaluate it there.

    fer-studio ship --run /root/fer_runs/cnn3 --to artifacts/runs/cnn3 \\
        --data path/to/fer2013.csv.gz --half

What ships is the run's record (config.json, history.csv, status.json, meta.json) and its best
weights, without the optimizer state (last.safetensors). With --half the conv and linear weights
are stored in fp16, but only if that moves PublicTest accuracy by less than 0.1 points;
otherwise fp32 is kept and the reason printed. Then eval/PublicTest and eval/PublicTest-tta are
written by fer_models.evaluation.evaluate on the shipped weights, and the filter atlas (fer_models.explain.atlas) on
them. Recorded data paths are cut to the file's name (the run leaves this machine). Prints one
JSON line.
"""
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from fer_models.core.arguments import OneLineParser, bounded_int
from fer_models.core.files import UMASK
from fer_models.datasets.facedata import DataError
from fer_models.evaluation.evaluate import evaluate_run
from fer_models.runs.checkpoints import CheckpointError, load_model, save_model
from fer_models.runs.folder import (
    CONFIG_FILE,
    EVAL_DIR,
    HISTORY_FILE,
    META_FILE,
    METRICS_FILE,
    STATUS_FILE,
    RunFolder,
    RunProblem,
)

ROOT = Path(__file__).resolve().parents[2]

RECORD = (CONFIG_FILE, HISTORY_FILE, STATUS_FILE)
HALF_TOLERANCE = 0.001  # accuracy, as a fraction: 0.1 points


def ship(run, to, data, half: bool = False, split: str = "PublicTest", atlas_patterns: int = 64) -> dict:
    """Build the reference run in a temporary folder beside `to` and rename it into place only once it is
    complete: a failure (bad data, a full disk) leaves no half-shipped run behind."""
    run, to = Path(run), Path(to)
    try:
        status = RunFolder(run).status()
    except RunProblem as err:
        raise CheckpointError(f"{err}; a reference run must come from a finished run") from err
    if status.get("state") != "finished":
        raise CheckpointError(f"{run}: state is '{status.get('state', 'unknown')}', not finished; a reference run "
                              "must have run all its epochs (resume it with fer-studio train --resume)")
    try:
        RunFolder(run).config()  # checked here, so that a problem names this run, not the folder being built
    except RunProblem as err:
        raise CheckpointError(str(err)) from err
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise CheckpointError(f"{to}: already exists and is not empty; remove it first")
    model, meta = load_model(run)
    # the dashboard's launcher never deletes a run marked shipped
    meta = {**meta, "shipped": {"from": run.name, "at": time.strftime("%Y-%m-%d")}}
    to.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{to.name}.", suffix=".shipping", dir=to.parent))
    try:
        report = _build(run, building, to, model, meta, data, half, split, atlas_patterns)
        building.chmod(0o777 & ~UMASK)  # mkdtemp makes 0700: a shipped run reads like any folder
        if to.exists():
            to.rmdir()  # empty, checked above
        os.replace(building, to)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    report["run"] = str(to)
    return report


def _build(run: Path, to: Path, final: Path, model, meta: dict, data, half: bool, split: str,
           atlas_patterns: int) -> dict:
    source = RunFolder(run)
    for name in RECORD:
        _own_record(source, name)
        record = source.read_bytes(name)  # a regular file, of a record's size: never a pipe, a device, /dev/zero
        if record is None:
            raise source.problem(name, "missing; a reference run ships the whole record of a finished run")
        (to / name).write_bytes(record)
    save_model(to, model, {k: v for k, v in meta.items() if k not in ("weights_dtype",)}, half=False)
    full = evaluate_run(to, data, split)
    report = {"arch": meta["arch"], "accuracy_fp32": full["accuracy"], "weights": "float32"}
    if half:
        save_model(to, model, meta, half=True)
        halved = evaluate_run(to, data, split)
        report["accuracy_fp16"] = halved["accuracy"]
        if abs(halved["accuracy"] - full["accuracy"]) < HALF_TOLERANCE:
            report["weights"] = "float16"
        else:
            report["refused_fp16"] = (f"fp16 weights moved {split} accuracy by "
                                      f"{100 * (halved['accuracy'] - full['accuracy']):+.2f} points")
            save_model(to, model, meta, half=False)
            evaluate_run(to, data, split)
    report["accuracy_tta"] = evaluate_run(to, data, split, tta=True)["accuracy"]
    from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
    if BUNDLED_PUBLICTEST.exists() and atlas_patterns >= 0:  # the Filters page and report then open at once
        from fer_models.explain.atlas import make_for_run
        report["atlas_layer"] = make_for_run(to, atlas_patterns)[1].layer
    make_portable(to, final, data)
    report["bytes"] = sum(p.stat().st_size for p in to.rglob("*") if p.is_file())
    return report


def make_portable(folder: Path, final: Path, data) -> None:
    """Rewrite the run's JSON records for the machines it travels to: the folder it was built in becomes its final
    place (as the repository names it), the data paths of this machine the file's name alone (the app then uses
    the bundled faces), a teacher that is a reference run the path the recipes name it by."""
    args = RunFolder(folder).config().get("args", {})
    renamed = {str(folder): _in_repository(final)}
    for path in (str(Path(data).resolve()), str(data), args.get("data")):
        if isinstance(path, str) and path:
            renamed[path] = Path(path).name
    if isinstance(args.get("teacher"), str) and args["teacher"]:
        renamed[args["teacher"]] = _portable_teacher(args["teacher"])
    run = RunFolder(folder)
    for name in json_records(folder):
        run.write_json(name, _renamed(run.read_json(name), renamed))


def json_records(folder: Path) -> list[str]:
    """The run's own JSON records that may name paths (config, meta, status, each evaluation's metrics), relative
    to it: never whatever else *.json lies in the folder (a user's notes, a pipe), and RunProblem for a link."""
    run = RunFolder(folder)
    names = [name for name in (CONFIG_FILE, META_FILE, STATUS_FILE) if os.path.lexists(folder / name)]
    for split in run.evaluations():
        run.eval_dir(split)  # a link at eval/ or at eval/<split> is refused there
        names.append(f"{EVAL_DIR}/{split}/{METRICS_FILE}")
    for name in names:
        _own_record(run, name)
    return names


def _own_record(run: RunFolder, name: str) -> None:
    """RunProblem unless the record `name` is a regular file of the run's own, or absent: a link would copy, or
    rewrite, a file from anywhere (/etc/passwd) as the run's, and a pipe would block."""
    path = run.path / name
    if path.is_symlink():
        raise run.problem(name, "is a link, not a file of the run's own; put the file itself there")
    if path.exists() and not path.is_file():
        raise run.problem(name, "not a regular file (a folder, a pipe or a device); put the file itself there")


def _in_repository(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def reevaluate(ref, data, split: str = "PublicTest", precision: str = "auto") -> dict:
    """A reference run evaluated again where it lies (the split and its flip TTA), its records made portable:
    for evaluations from before metrics.json recorded the number format they were scored in."""
    ref = Path(ref)
    json_records(ref)  # refused now, before minutes of evaluating, if one is a link
    plain = evaluate_run(ref, data, split, precision=precision)
    tta = evaluate_run(ref, data, split, tta=True, precision=precision)
    make_portable(ref, ref, data)
    return {"run": ref.name, "accuracy": plain["accuracy"], "accuracy_tta": tta["accuracy"],
            "precision": plain["precision"]}


def _portable_teacher(teacher: str) -> str:
    """A teacher that is itself a reference run is named as the recipes name it, from the repository root."""
    try:
        return Path(teacher).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return Path(teacher).name


def _renamed(record: dict, renamed: dict[str, str]) -> dict:
    """Every string in a JSON record that is one of `renamed`'s paths, or lies under one, rewritten; parsed and
    written as JSON (a text replacement turned a data path of "." into invalid JSON)."""
    def rename(value):
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, str):
            for old in sorted(renamed, key=len, reverse=True):
                if value == old:
                    return renamed[old]
                if old.startswith("/") and value.startswith(old.rstrip("/") + "/"):  # a file in that folder
                    return renamed[old] + value[len(old):]
        return value
    return rename(record)


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio ship", description=__doc__.split("\n")[0])
    p.add_argument("--run", help="the finished run folder")
    p.add_argument("--to", help="where the reference run goes, e.g. artifacts/runs/cnn3")
    p.add_argument("--reevaluate", metavar="REF",
                   help="instead: evaluate this reference run again in place, in the scoring policy's number format")
    p.add_argument("--data", required=True, help="FER2013 CSV holding the evaluation split")
    p.add_argument("--half", action="store_true", help="fp16 weights if accuracy moves < 0.1 points")
    p.add_argument("--atlas-patterns", type=bounded_int(-1, 512), default=64,
                   help="filters whose pattern the atlas stores (-1: no atlas)")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not args.reevaluate and not (args.run and args.to):
        p.error("give --run and --to (ship a run), or --reevaluate REF (evaluate a reference run again)")
    try:
        if args.reevaluate:
            report = reevaluate(args.reevaluate, args.data)
        else:
            report = ship(args.run, args.to, args.data, args.half, atlas_patterns=args.atlas_patterns)
    except (CheckpointError, DataError, RunProblem) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk: the half-built folder is gone, the run and any earlier ship untouched
        done = ("each evaluation was written whole or left as it was" if args.reevaluate
                else f"nothing was shipped to {args.to}")
        print(f"error: {err.filename or args.reevaluate or args.to}: cannot be written ({err.strerror or err}); "
              f"{done}: free some space or choose another place", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
