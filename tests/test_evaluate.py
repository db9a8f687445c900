import json

import numpy as np
import pandas as pd
import pytest
import torch
from warm_cli import run as warm

from fer_models.core.constants import EMOTIONS
from fer_models.evaluation.scoring import classification_metrics, confusion_counts
from fer_models.nets.models import create_model
from fer_models.runs.checkpoints import save_model
from helpers import write_fer_csv


@pytest.fixture
def run_dir(tmp_path):
    torch.manual_seed(0)
    save_model(tmp_path / "run", create_model("cnn3"), {"classes": list(EMOTIONS),
                                                        "normalisation": {"mean": 0.3, "std": 0.2}})
    return tmp_path / "run"


def evaluate_cli(args, env):
    return warm(["evaluate", *args], env=env, timeout=120)


@pytest.mark.parametrize("tta", [False, True])
def test_evaluate_cli_writes_files_and_json_line(tmp_path, run_dir, run_env, tta):
    data = write_fer_csv(tmp_path / "fer.csv", {"Training": 7, "PublicTest": 21, "PrivateTest": 14})
    done = evaluate_cli(["--run", str(run_dir), "--data", str(data), "--split", "PrivateTest"]
                        + (["--tta"] if tta else []), run_env)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["split"] == "PrivateTest" and line["n"] == 14 and 0 <= line["accuracy"] <= 1
    assert 0 <= line["macro_f1"] <= 1 and line["tta"] is tta
    out = run_dir / "eval" / ("PrivateTest-tta" if tta else "PrivateTest")
    predictions = pd.read_csv(out / "predictions.csv", dtype={"id": str})
    assert list(predictions.columns) == ["id", "true", "pred"] + [f"p_{e}" for e in EMOTIONS]
    assert predictions["id"].tolist() == [str(i) for i in range(28, 42)]
    np.testing.assert_allclose(predictions[[f"p_{e}" for e in EMOTIONS]].sum(axis=1), 1, atol=1e-4)
    confusion = pd.read_csv(out / "confusion.csv", index_col=0)
    assert confusion.to_numpy().sum() == 14 and list(confusion.columns) == list(EMOTIONS)
    assert np.trace(confusion.to_numpy()) / 14 == pytest.approx(line["accuracy"])
    np.testing.assert_array_equal(confusion.to_numpy().sum(1), np.bincount(predictions["true"], minlength=7))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_class"]) == set(EMOTIONS) and 0 <= metrics["ece"] <= 1
    assert metrics["accuracy"] <= metrics["top2_accuracy"]


def test_evaluate_on_class_folders_and_unlabelled_csv(tmp_path, run_dir, run_env):
    from PIL import Image
    for i, emotion in enumerate(["happy", "sad", "sad"]):
        (tmp_path / "tree" / "val" / emotion).mkdir(parents=True, exist_ok=True)
        Image.new("L", (60, 60), 40 * i).save(tmp_path / "tree" / "val" / emotion / f"{i}.png")
    done = evaluate_cli(["--run", str(run_dir), "--data", str(tmp_path / "tree"), "--split", "val"], run_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 3
    test = tmp_path / "test.csv"
    test.write_text("id,feature\n" + "".join(f"{i},{' '.join(['9'] * 2304)}\n" for i in range(4)))
    done = evaluate_cli(["--run", str(run_dir), "--data", str(test), "--split", "Test"], run_env)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["n"] == 4 and line["accuracy"] is None
    assert len(pd.read_csv(run_dir / "eval" / "Test" / "predictions.csv")) == 4


def test_evaluate_cli_errors(tmp_path, run_dir, run_env):
    data = write_fer_csv(tmp_path / "fer.csv", {"Training": 7})
    done = evaluate_cli(["--run", str(run_dir), "--data", str(data), "--split", "PublicTest"], run_env)
    assert done.returncode == 2 and "PublicTest empty or absent" in done.stderr and "Traceback" not in done.stderr
    (run_dir / "model.safetensors").write_bytes(b"junk" * 100)
    done = evaluate_cli(["--run", str(run_dir), "--data", str(data), "--split", "Training"], run_env)
    assert done.returncode == 2 and "corrupt or truncated" in done.stderr


def test_metrics_by_hand():
    true = np.array([0, 0, 1, 1, 2, 2])
    probs = np.full((6, 7), 0.01)
    for i, p in enumerate([0, 1, 1, 1, 2, 0]):
        probs[i, p] = 0.94
    m = classification_metrics(true, probs)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["angry"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["disgust"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["disgust"]["recall"] == 1.0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # over the classes present
    assert m["ece"] == pytest.approx(abs(4 / 6 - 0.94))
    np.testing.assert_array_equal(confusion_counts(true, probs.argmax(1))[:3, :3],
                                  [[1, 1, 0], [0, 2, 0], [1, 0, 1]])


def test_bf16_scoring_agrees_with_fp32_on_a_shipped_run():
    """Where bf16 is native, scoring runs in it (inference_precision); the deepest shipped network accumulates
    the most rounding, so it is the one held to >= 99.5% agreement (forced bf16 here: emulated, slow, same
    numbers)."""
    from fer_models.evaluation.scoring import predict_proba
    from fer_models.runs.checkpoints import load_model
    from helpers import ROOT, bundled_faces

    model, meta = load_model(ROOT / "artifacts" / "runs" / "densenet201_fer")
    faces, norm = bundled_faces()[:200], meta["normalisation"]
    fp32 = predict_proba(model, faces, norm["mean"], norm["std"], precision="fp32")
    bf16 = predict_proba(model, faces, norm["mean"], norm["std"], precision="bf16")
    assert (fp32.argmax(1) == bf16.argmax(1)).mean() >= 0.995
    assert np.abs(fp32 - bf16).max() < 0.05


def test_precision_policy(tmp_path, run_dir, run_env):
    from fer_models.nets.precision import inference_precision

    assert inference_precision("cpu", "fp32") == "fp32" and inference_precision("cpu", "bf16") == "bf16"
    assert inference_precision("cpu") == ("bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32")
    with pytest.raises(ValueError, match="fp16"):
        inference_precision("cpu", "fp16")
    data = write_fer_csv(tmp_path / "fer.csv", {"Training": 7, "PublicTest": 14})
    done = evaluate_cli(["--run", str(run_dir), "--data", str(data), "--precision", "fp32"], run_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["precision"] == "fp32"
    assert json.loads((run_dir / "eval" / "PublicTest" / "metrics.json").read_text())["precision"] == "fp32"
    refused = evaluate_cli(["--run", str(run_dir), "--data", str(data), "--precision", "fp16"], run_env)
    assert refused.returncode == 2 and "fp16" in refused.stderr


def test_top_k_breaks_ties_as_argmax_does_so_top_1_is_the_accuracy():
    from fer_models.evaluation.scoring import classification_metrics, top_k_accuracy

    probs = np.array([[0.5, 0.25, 0.25, 0, 0, 0, 0],    # label 2 tied with 1 for second: argmax order puts 1 first
                      [0.5, 0.25, 0.25, 0, 0, 0, 0],    # label 1 tied with 2: 1 is second
                      [0.4, 0.4, 0.2, 0, 0, 0, 0]])     # label 1 tied with 0 for first: argmax says 0
    true = np.array([2, 1, 1])
    assert top_k_accuracy(true, probs, 2) == 2 / 3
    assert top_k_accuracy(true, probs, 1) == classification_metrics(true, probs)["accuracy"] == 0.0
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), 200)
    true = rng.integers(0, 7, 200)
    assert top_k_accuracy(true, probs, 1) == (probs.argmax(1) == true).mean()
    assert top_k_accuracy(true, probs, 7) == 1.0
