"""The prepared GPU job's CPU-side steps: the Training split packed in two halves, merged back with the
bundled PublicTest into one dataset the trainer reads, and the epochs planned from measured speeds."""
import importlib.util
from pathlib import Path

import numpy as np

from fer_models.datasets.loading import load_faces
from helpers import write_fer_csv

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_reference_runs.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_reference_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_then_merge_gives_back_every_training_face_and_publictest(tmp_path):
    gpu = load_script()
    csv = write_fer_csv(tmp_path / "fer.csv", {"Training": 41, "PublicTest": 9})
    gpu.pack(str(csv), tmp_path / "packed")
    halves = [load_faces(tmp_path / "packed" / f"part{i}" / "train.npz") for i in (1, 2)]
    assert [len(h) for h in halves] == [20, 21] and all(set(h.splits) == {"Training"} for h in halves)

    n_train = gpu.merge([tmp_path / "packed" / f"part{i}" / "train.npz" for i in (1, 2)], tmp_path / "all.npz")
    merged = load_faces(tmp_path / "all.npz")
    original = load_faces(csv, splits=["Training"])
    assert n_train == 41 and merged.split_sizes() == {"Training": 41, "PublicTest": 3589}
    assert np.array_equal(merged.split("Training").images, original.images)
    assert np.array_equal(merged.split("Training").labels, original.labels)

    assert gpu.merge([tmp_path / "packed" / f"part{i}" / "train.npz" for i in (1, 2)], tmp_path / "few.npz",
                     limit=5) == 10


def test_epochs_fit_the_minutes_within_each_recipe():
    gpu = load_script()
    plan = gpu.plan_epochs({"cnn3": 20000.0, "resnet10_fer": 3000.0, "densenet201_fer": 10.0}, 7, 28709)
    assert plan == {"cnn3": gpu.RECIPES["cnn3"]["max_epochs"], "resnet10_fer": 43, "densenet201_fer": 1}


def test_runs_name_the_csv_their_faces_came_from_not_the_npz_they_travelled_in(tmp_path):
    import json

    from fer_models.runs.registry import reproduce_command
    gpu = load_script()
    merged = Path("/root/fer_gpu/fer2013_gpu.npz")
    run = tmp_path / "resnet10_fer"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"args": {"model": "resnet10_fer", "data": str(merged), "epochs": 5},
                                                 "data": {"path": str(merged), "notes": []}}))
    (run / "meta.json").write_text(json.dumps({"training": {"data": str(merged), "config": {"data": str(merged)}}}))
    gpu.record_source_data(run, merged)
    config = json.loads((run / "config.json").read_text())
    assert "--data path/to/fer2013.csv.gz " in reproduce_command(config, "resnet10_fer")
    assert config["data"]["path"] == "fer2013.csv.gz" and "fer2013_gpu.npz" in config["data"]["notes"][0]
    assert "fer2013_gpu" not in (run / "meta.json").read_text()
