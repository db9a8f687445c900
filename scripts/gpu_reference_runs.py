"""Train the three reference runs on a lent GPU machine (the `device` tool), in two short calls.

The Training split does not fit beside the repository in one call's 64 MiB, so it travels in two
halves; the machine keeps the first half on its disk while it stays warm (30 s after a call).

Here (once):
    echo /.gpu_data/ >> .git/info/exclude
    python scripts/gpu_reference_runs.py pack --data path/to/fer2013.csv.gz --to .gpu_data
Device call 1 (carry [".gpu_data/part1"]): keeps half 1 and times 3 epochs of every model, all at once, on PublicTest
    python3 scripts/gpu_reference_runs.py calibrate --part .gpu_data/part1/train.npz
Device call 2, at once (carry [".gpu_data/part2"]): trains all three together for --minutes
    python3 scripts/gpu_reference_runs.py train --part .gpu_data/part2/train.npz --minutes 7 --out $OUT
Here: unpack what came back and ship each run with fer_models.training.ship (which evaluates on PublicTest)
    cat /work/.device/<files_at>/runs.tar.* | tar -x -C /root/fer_runs_gpu

Epochs come from the calibration: as many as fit in --minutes at the measured concurrent speed,
capped by each recipe's own ceiling. Only the Training split is ever trained on; PublicTest (the
bundled npz) is the validation split, as on the CPU.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEEP = Path("/root/fer_gpu")  # on the device machine: survives between calls while it is warm
PUBLICTEST = ROOT / "artifacts" / "data" / "fer2013_publictest.npz"
CHUNK = 15 * 2 ** 20  # files back from $OUT: at most 16 MiB each, 8 in all

# The reference runs' recipes (fer_models.runs.recipes), with the epochs the GPU affords (each at most these).
MAX_EPOCHS = {"cnn3": 80, "resnet10_fer": 150, "densenet201_fer": 100}
RECIPES = {name: dict(max_epochs=epochs, args=["--recipe", name]) for name, epochs in MAX_EPOCHS.items()}


def pack(data: str, to: Path) -> None:
    from fer_models.datasets.loading import load_faces
    train = load_faces(data, splits=["Training"]).split("Training")
    half = len(train) // 2
    for i, part in enumerate((slice(0, half), slice(half, None)), start=1):
        mask = np.zeros(len(train), bool)
        mask[part] = True
        (to / f"part{i}").mkdir(parents=True, exist_ok=True)
        train.select(mask).save_npz(to / f"part{i}" / "train.npz")
        print(f"{to}/part{i}/train.npz: {mask.sum()} faces, "
              f"{(to / f'part{i}' / 'train.npz').stat().st_size / 2 ** 20:.1f} MiB")


def merge(parts: list[Path], out: Path, limit: int | None = None) -> int:
    """One FaceData npz: both Training halves (the first `limit` faces of each, for a smoke test) and the
    bundled PublicTest. Returns the number of training faces."""
    from fer_models.datasets.facedata import read_npz
    pieces = [read_npz(p) for p in parts]
    if limit:
        pieces = [p.select(np.arange(len(p)) < limit) for p in pieces]
    pieces.append(read_npz(PUBLICTEST))
    merged = pieces[0]
    for p in pieces[1:]:
        merged.images = np.concatenate([merged.images, p.images])
        merged.labels = np.concatenate([merged.labels, p.labels])
        merged.splits = np.concatenate([merged.splits, p.splits])
        merged.ids = np.concatenate([merged.ids, p.ids])
    merged.soft = None
    merged.save_npz(out, compressed=False)
    return int((merged.splits == "Training").sum())


def run_all(data: Path, runs: Path, epochs: dict, extra: list[str]) -> dict:
    """Train every model at once (one process each) and wait; returns each one's exit status."""
    procs, logs = {}, []
    for name, n in epochs.items():
        cmd = [sys.executable, "-m", "fer_models", "train", *RECIPES[name]["args"], "--data", str(data),
               "--epochs", str(n), "--half-weights", "--checkpoint-minutes", "1000", "--out", str(runs / name), *extra]
        logs.append(open(runs / f"{name}.log", "w"))
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=logs[-1], stderr=subprocess.STDOUT)
    codes = {name: p.wait() for name, p in procs.items()}
    for log in logs:
        log.close()
    return codes


def record_source_data(run: Path, merged: Path, source: str = "fer2013.csv.gz") -> None:
    """Name the dataset the faces came from, not the npz they travelled in, in the run's records: the
    README's reproduce command is made from them, and on any other machine the data is the CSV."""
    for record in run.glob("*.json"):
        text = record.read_text()
        if str(merged) in text:
            record.write_text(text.replace(json.dumps(str(merged))[1:-1], source))
    config_path = run / "config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text())
        config.setdefault("data", {}).setdefault("notes", []).append(
            f"trained on the GPU machine from {merged.name}: {source}'s Training split, packed in two halves "
            "by scripts/gpu_reference_runs.py, with the bundled PublicTest; the same faces and labels")
        config_path.write_text(json.dumps(config, indent=1))


def calibrate(part: Path, epochs: int, faces: int | None) -> None:
    KEEP.mkdir(parents=True, exist_ok=True)
    shutil.copy(part, KEEP / "part1.npz")
    runs = KEEP / "calibration"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    # PublicTest alone stands in for the training set here: the speed is what is measured
    from fer_models.datasets.facedata import read_npz
    sample = read_npz(PUBLICTEST)
    sample = sample.select(np.arange(len(sample)) < (faces or len(sample)))
    sample.save_npz(runs / "sample.npz", compressed=False)
    codes = run_all(runs / "sample.npz", runs, {name: epochs for name in RECIPES},
                    ["--val-fraction", "0.1", "--train-split", "PublicTest"])
    speed = {}
    for name in RECIPES:
        history = (runs / name / "history.csv").read_text().splitlines() if codes[name] == 0 else []
        if len(history) < epochs + 1:
            print(f"{name} failed ({codes[name]}):\n" + (runs / f"{name}.log").read_text()[-3000:])
            continue
        seconds = float(history[-1].split(",")[-1])  # the last epoch: warmed up, validation included
        n = json.loads((runs / name / "config.json").read_text())["data"]["split_sizes"]["PublicTest"]
        speed[name] = round(n / seconds, 1)
    (KEEP / "calibration.json").write_text(json.dumps(speed))
    print(json.dumps({"images_per_second_concurrent": speed, "gpu": gpu_name()}))


def plan_epochs(speed: dict, minutes: float, n_train: int) -> dict:
    """As many epochs as `minutes` allow at each model's measured images/s, within its recipe's ceiling."""
    return {name: max(1, min(RECIPES[name]["max_epochs"], math.floor(minutes * 60 * s / n_train)))
            for name, s in speed.items()}


def gpu_name() -> str:
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"


def train(part: Path, minutes: float, out: Path, limit: int | None) -> int:
    if not (KEEP / "part1.npz").exists() or not (KEEP / "calibration.json").exists():
        print("the first half and the calibration are not on this machine: it was given back since call 1; "
              "run the calibrate call again, then this one at once")
        return 2
    speed = json.loads((KEEP / "calibration.json").read_text())
    data = KEEP / "fer2013_gpu.npz"
    n_train = merge([KEEP / "part1.npz", part], data, limit)
    epochs = plan_epochs(speed, minutes, n_train)
    print(json.dumps({"epochs": epochs, "gpu": gpu_name()}), flush=True)
    runs = KEEP / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    started = time.time()
    codes = run_all(data, runs, epochs, [])
    for name in epochs:
        (runs / name / "last.safetensors").unlink(missing_ok=True)  # optimizer state does not ship
        record_source_data(runs / name, data)
    subprocess.run(["tar", "-cf", str(KEEP / "runs.tar"), "-C", str(runs), "."], check=True)
    blob = (KEEP / "runs.tar").read_bytes()
    for i in range(0, len(blob), CHUNK):
        (out / f"runs.tar.{i // CHUNK:02d}").write_bytes(blob[i:i + CHUNK])
    print(json.dumps({"exit_codes": codes, "wall_seconds": round(time.time() - started, 1),
                      "tar_mib": round(len(blob) / 2 ** 20, 1)}))
    return 0 if all(c == 0 for c in codes.values()) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--data", required=True)
    a.add_argument("--to", type=Path, default=Path(".gpu_data"))
    c = sub.add_parser("calibrate")
    c.add_argument("--part", type=Path, required=True)
    c.add_argument("--epochs", type=int, default=3)
    c.add_argument("--faces", type=int, help="time on this many PublicTest faces (a CPU smoke test)")
    t = sub.add_parser("train")
    t.add_argument("--part", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=7.0)
    t.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    t.add_argument("--limit", type=int, help="train on this many faces of each half (a CPU smoke test)")
    args = p.parse_args(argv)
    if args.verb == "pack":
        pack(args.data, args.to)
    elif args.verb == "calibrate":
        calibrate(args.part, args.epochs, args.faces)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        return train(args.part, args.minutes, args.out, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
