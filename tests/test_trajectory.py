"""A run stopped or killed anywhere resumes on the trajectory an uninterrupted run follows, alone and under
DDP, in both number formats whatever this CPU computes natively: bf16 forced on a CPU without it is emulated
(slow, the same numbers), so every machine checks the path the others take. Small runs (70 faces, batch 16,
4 steps an epoch) keep the emulated bf16 affordable."""
import json
import signal
import subprocess
import sys

import pandas as pd
import pytest

from fer_models.runs.registry import read_status

TRAIN = [sys.executable, "-m", "fer_models", "train"]
SMALL = ["--model", "cnn3", "--epochs", "2", "--batch-size", "16", "--lr", "0.01", "--seed", "1", "--threads", "1"]
PRECISIONS = ["fp32", "bf16"]


def train_cli(args, env):
    return subprocess.run(TRAIN + args, env=env, capture_output=True, text=True, timeout=600)


def torchrun(args, env):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "fer_models", "train"] + args, env=env, capture_output=True, text=True, timeout=600)


def history(run):
    return pd.read_csv(run / "history.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    from helpers import write_fer_csv
    return write_fer_csv(tmp_path_factory.mktemp("data") / "fer2013.csv", {"Training": 70, "PublicTest": 35})


@pytest.fixture(scope="module")
def env():
    import os

    from helpers import ROOT
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_csv, env):
    """uninterrupted(precision): the run nothing stops, trained once per module and format."""
    made = {}

    def get(precision):
        if precision not in made:
            out = tmp_path_factory.mktemp("runs") / f"whole_{precision}"
            done = train_cli(SMALL + ["--precision", precision, "--data", str(data_csv), "--out", str(out)], env)
            assert done.returncode == 0, done.stderr
            made[precision] = out
        return made[precision]
    return get


@pytest.mark.parametrize("precision", PRECISIONS)
def test_kill_and_resume_follows_the_same_trajectory(tmp_path, uninterrupted, data_csv, env, precision):
    out = tmp_path / "killed"
    # 70 faces / batch 16 = 4 steps an epoch: step 6 is in the middle of epoch 2
    killed = train_cli(SMALL + ["--precision", precision, "--data", str(data_csv), "--out", str(out),
                                "--kill-at-step", "6"], env)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((out / "status.json").read_text())["state"] == "running"  # died without a word
    assert read_status(out)["state"] == "interrupted"  # ...which the registry sees
    assert history(out)["epoch"].tolist() == [1]
    resumed = train_cli(["--out", str(out), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "epoch 2, step 0" in resumed.stderr
    assert json.loads((out / "config.json").read_text())["precision"] == precision
    pd.testing.assert_frame_equal(history(out), history(uninterrupted(precision)), atol=1e-4)
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


@pytest.mark.parametrize("precision", PRECISIONS)
def test_graceful_stop_mid_epoch_then_resume(tmp_path, uninterrupted, data_csv, env, precision):
    out = tmp_path / "stopped"
    # --stop-at-step takes the path of a SIGTERM arriving during step 1 (the jobs tests send real signals)
    stopped = train_cli(SMALL + ["--precision", precision, "--data", str(data_csv), "--out", str(out),
                                 "--stop-at-step", "1"], env)
    assert stopped.returncode == 0, stopped.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped" and status["epoch"] == 1 and status["step"] == 2
    resumed = train_cli(["--out", str(out), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"epoch 1, step {status['step']}" in resumed.stderr
    pd.testing.assert_frame_equal(history(out), history(uninterrupted(precision)), atol=1e-4)
    # the resumed epoch's time counts the steps before the stop too (it once counted only those after)
    assert pd.read_csv(out / "history.csv")["seconds"].iloc[0] >= 0.9 * status["train_seconds"] > 0


def test_a_stop_on_an_epochs_last_step_resumes_to_that_epochs_end(tmp_path, uninterrupted, data_csv, env):
    """Seen in CI: a job stopped just as its epoch's last step ended was saved at step N of N, unvalidated, and
    its resume ran no step and crashed on an unset learning rate."""
    per_epoch = json.loads((uninterrupted("fp32") / "status.json").read_text())["steps_per_epoch"]
    out = tmp_path / "stopped"
    stopped = train_cli(SMALL + ["--precision", "fp32", "--data", str(data_csv), "--out", str(out),
                                 "--stop-at-step", str(per_epoch - 1)], env)
    assert stopped.returncode == 0, stopped.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped" and (status["epoch"], status["step"]) == (1, per_epoch)
    resumed = train_cli(["--out", str(out), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(history(out), history(uninterrupted("fp32")), atol=1e-4)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, data_csv, env):
    out = tmp_path_factory.mktemp("ddp") / "ddp"
    done = torchrun(SMALL + ["--data", str(data_csv), "--out", str(out)], env)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_ddp_two_cpu_processes(ddp_run):
    config = json.loads((ddp_run / "config.json").read_text())
    assert config["world_size"] == 2
    logged = history(ddp_run)
    assert logged["epoch"].tolist() == [1, 2] and logged["val_acc"].between(0, 1).all()
    assert json.loads((ddp_run / "status.json").read_text())["state"] == "finished"
    assert json.loads((ddp_run / "meta.json").read_text())["training"]["world_size"] == 2


def test_ddp_validation_scores_exactly_the_saved_weights(ddp_run, data_csv):
    """Each rank validates its shard: with rank 1's own BatchNorm statistics the history's figures were
    not those of the saved (rank 0) model, so the best epoch was chosen on weights nobody kept."""
    import numpy as np

    from fer_models.datasets.loading import load_faces
    from fer_models.evaluation.scoring import predict_proba
    from fer_models.runs.checkpoints import load_model

    model, meta = load_model(ddp_run)
    val = load_faces(data_csv, splits=["PublicTest"]).split("PublicTest")
    norm = meta["normalisation"]
    probs = predict_proba(model, val.images, norm["mean"], norm["std"], precision="fp32")
    loss = float(-np.log(np.clip(probs[np.arange(len(val.labels)), val.labels], 1e-12, None)).mean())
    best = pd.read_csv(ddp_run / "history.csv").set_index("epoch").loc[meta["metrics"]["best_epoch"]]
    assert loss == pytest.approx(best["val_loss"], abs=2e-6)
    assert float((probs.argmax(1) == val.labels).mean()) == pytest.approx(best["val_acc"], abs=1e-6)  # 6 digits


def test_ddp_stopped_mid_epoch_and_resumed_logs_what_an_uninterrupted_run_logs(tmp_path, ddp_run, data_csv, env):
    out = tmp_path / "ddp_stopped"
    # 70 faces / global batch 16 = 4 steps an epoch: step 5 is in the middle of epoch 2, where each rank has its
    # own partial loss and accuracy sums
    stopped = torchrun(SMALL + ["--data", str(data_csv), "--out", str(out), "--stop-at-step", "5"], env)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert json.loads((out / "status.json").read_text())["state"] == "stopped"
    resumed = torchrun(["--out", str(out), "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    pd.testing.assert_frame_equal(history(out), history(ddp_run), atol=1e-6)


def test_a_run_killed_between_its_last_two_saves_is_repaired_on_resume(tmp_path, uninterrupted, env):
    """Killed after last.safetensors recorded the final epoch but before model.safetensors held it, a resumed
    run reported "finished" with no weights to load."""
    import shutil

    from fer_models.runs.checkpoints import load_model

    out = tmp_path / "cut"
    shutil.copytree(uninterrupted("fp32"), out)
    best = int(json.loads((out / "meta.json").read_text())["metrics"]["best_epoch"])
    assert best == 2  # the state saved last is the best epoch's: its weights are the ones to keep
    (out / "model.safetensors").unlink()
    (out / "history.csv").write_text(pd.read_csv(out / "history.csv").head(1).to_csv(index=False))
    resumed = train_cli(["--out", str(out), "--resume"], env)
    assert resumed.returncode == 0 and "repaired" in resumed.stderr, resumed.stderr
    model, meta = load_model(out)
    assert meta["metrics"]["best_epoch"] == 2 and history(out)["epoch"].tolist() == [1, 2]
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
