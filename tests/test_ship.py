"""Shipping a finished run as a reference run: no optimizer state, fp16 only if accuracy holds."""
import json

import pytest
from warm_cli import run as warm

from fer_models.runs.checkpoints import CheckpointError, load_model
from fer_models.training.ship import ship
from helpers import write_fer_csv


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    import os

    from helpers import ROOT
    root = tmp_path_factory.mktemp("ship")
    data = write_fer_csv(root / "fer2013.csv")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = warm(["train", "--model", "cnn3", "--epochs", "2",
                 "--batch-size", "32", "--threads", "1", "--data", str(data), "--out", str(root / "run")],
                env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return root / "run", data


def test_ships_record_weights_and_evaluations_without_optimizer_state(finished, tmp_path, monkeypatch):
    import fer_models.training.ship as ship_module
    # fp16 accepted whatever it moves: whether it moves a tiny two-epoch model's 70 faces by one (1.4 points)
    # depends on that model's margins, not on shipping (the refusal has its own test below)
    monkeypatch.setattr(ship_module, "HALF_TOLERANCE", 1.0)
    run, data = finished
    report = ship(run, tmp_path / "ref", data, half=True, atlas_patterns=2)
    ref = tmp_path / "ref"
    names = sorted(str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file())
    assert names == ["atlas.npz", "config.json", "eval/PublicTest-tta/confusion.csv",
                     "eval/PublicTest-tta/metrics.json", "eval/PublicTest-tta/predictions.csv",
                     "eval/PublicTest/confusion.csv", "eval/PublicTest/metrics.json",
                     "eval/PublicTest/predictions.csv", "history.csv", "meta.json", "model.safetensors", "status.json"]
    assert abs(report["accuracy_fp16"] - report["accuracy_fp32"]) < 0.05 and report["weights"] == "float16"
    meta = json.loads((ref / "meta.json").read_text())
    assert meta["weights_dtype"] == "float16"
    assert ref.stat().st_mode & 0o055 == 0o055  # others can read it, as any folder (mkdtemp made it 0700)
    for record in ref.rglob("*.json"):  # rewritten as JSON, with this machine's paths made portable
        text = record.read_text()
        assert str(tmp_path) not in text.replace(str(ref), "") and json.loads(text)
    assert meta["metrics"] == json.loads((run / "meta.json").read_text())["metrics"]
    assert meta["shipped"]["from"] == run.name  # the launcher never deletes it
    for record in ref.rglob("*.json"):  # no path of this machine's data travels with the run
        assert str(data.parent) not in record.read_text(), record
    assert json.loads((ref / "eval" / "PublicTest" / "metrics.json").read_text())["data"] == "fer2013.csv"
    assert (ref / "model.safetensors").stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    model, _ = load_model(ref)
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"
    shipped = json.loads((ref / "eval" / "PublicTest" / "metrics.json").read_text())
    assert shipped["accuracy"] == report["accuracy_fp16"]
    assert json.loads((ref / "eval" / "PublicTest-tta" / "metrics.json").read_text())["tta"] is True
    from fer_models.explain.atlas import load_atlas
    from helpers import bundled_ids
    atlas = load_atlas(ref, report["atlas_layer"], bundled_ids())  # made on the shipped (fp16) weights
    assert atlas is not None and len(atlas.filters) == 2 and atlas.ranking.top.shape == (512, 9)


def test_fp16_refused_when_accuracy_moves(finished, tmp_path, monkeypatch):
    import fer_models.training.ship as ship_module
    monkeypatch.setattr(ship_module, "HALF_TOLERANCE", 0.0)  # any change, even none, counts as too much
    run, data = finished
    report = ship(run, tmp_path / "ref", data, half=True, atlas_patterns=-1)
    assert report["weights"] == "float32" and "refused_fp16" in report
    assert json.loads((tmp_path / "ref" / "meta.json").read_text())["weights_dtype"] == "float32"


def test_refuses_unfinished_runs_and_occupied_targets(finished, tmp_path):
    run, data = finished
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "status.json").write_text(json.dumps({"state": "stopped"}))
    with pytest.raises(CheckpointError, match="state is 'stopped', not finished"):
        ship(unfinished, tmp_path / "a", data)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(CheckpointError, match="already exists"):
        ship(run, tmp_path / "b", data)


def test_a_data_path_of_a_dot_keeps_every_record_valid_json(finished, tmp_path, monkeypatch):
    """Paths were once made portable by text replacement: a recorded data path of "." replaced every dot."""
    import shutil
    run, data = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["args"]["data"] = "."
    (copy / "config.json").write_text(json.dumps(config))
    ship(copy, tmp_path / "ref", data, atlas_patterns=-1)
    for record in (tmp_path / "ref").rglob("*.json"):
        json.loads(record.read_text())  # raised JSONDecodeError before: "0.01" had become "001"
    assert json.loads((tmp_path / "ref" / "config.json").read_text())["args"]["lr"] == config["args"]["lr"]
