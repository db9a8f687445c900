import json
from pathlib import Path

import pandas as pd
import pytest

from fer_models.runs.checkpoints import load_model
from fer_models.runs.folder import HISTORY_COLUMNS
from fer_models.runs.settings import TrainConfig
from fer_models.training.schedule import learning_rate

TINY = ["--model", "cnn3", "--epochs", "3", "--batch-size", "32", "--lr", "0.01", "--seed", "1", "--threads", "1"]


def train_cli(args, env, cwd=None):
    from warm_cli import run
    return run(["train", *args], env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    from helpers import write_fer_csv
    return write_fer_csv(tmp_path_factory.mktemp("data") / "fer2013.csv")


@pytest.fixture(scope="module")
def env():
    import os

    from helpers import ROOT
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return e


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data_csv, env):
    out = tmp_path_factory.mktemp("runs") / "reference"
    done = train_cli(TINY + ["--precision", "fp32", "--data", str(data_csv), "--out", str(out)], env)
    assert done.returncode == 0, done.stderr
    return out
def read_history(run):
    return pd.read_csv(run / "history.csv")


def test_run_folder_is_complete(reference_run, data_csv):
    run = reference_run
    for name in ("config.json", "history.csv", "status.json", "model.safetensors", "meta.json", "last.safetensors"):
        assert (run / name).exists(), name
    history = read_history(run)
    assert list(history.columns) == HISTORY_COLUMNS and history["epoch"].tolist() == [1, 2, 3]
    assert history["val_acc"].iloc[-1] > 0.5  # chance is 1/7: it learned the synthetic classes
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["heartbeat"] > 0 and status["error"] is None
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["model"] == "cnn3" and config["args"]["seed"] == 1
    assert config["data"]["split_sizes"] == {"Training": 210, "PublicTest": 70}
    assert config["data"]["path"] == str(Path(data_csv).resolve()) and config["code_version"]
    meta = json.loads((run / "meta.json").read_text())
    best = history["val_acc"].idxmax()
    assert meta["metrics"]["best_epoch"] == history["epoch"][best]
    assert meta["metrics"]["val_acc"] == pytest.approx(history["val_acc"][best], abs=1e-5)
    assert meta["classes"][3] == "happy" and meta["normalisation"]["std"] > 0
    assert meta["training"]["seconds"] > 0 and meta["training"]["images_per_second"] > 0
    assert meta["training"]["device"] == "cpu" and meta["params"] > 1e6
    model, _ = load_model(run)
    assert model.arch == "cnn3"


def test_epoch_seconds_count_the_whole_epoch_across_mid_epoch_saves(tmp_path, data_csv, env):
    out = tmp_path / "saves"
    args = TINY[:2] + ["--epochs", "1", "--batch-size", "32", "--threads", "1", "--checkpoint-minutes", "0"]
    done = train_cli(args + ["--data", str(data_csv), "--out", str(out)], env)
    assert done.returncode == 0, done.stderr
    epoch_seconds = read_history(out)["seconds"].iloc[0]
    training_seconds = json.loads((out / "meta.json").read_text())["training"]["seconds"]
    assert epoch_seconds >= 0.9 * training_seconds  # saving after every step must not restart the clock


def test_bad_data_marks_the_run_failed(tmp_path, env):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    out = tmp_path / "failed"
    done = train_cli(["--data", str(bad), "--out", str(out)], env)
    assert done.returncode == 2 and "line 2: expected 2304 pixel values" in done.stderr
    assert "Traceback" not in done.stderr
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "line 2" in status["error"]


def test_refusals(tmp_path, reference_run, data_csv, env):
    done = train_cli(["--data", str(data_csv), "--out", str(reference_run)], env)
    assert done.returncode == 2 and "already exists" in done.stderr
    done = train_cli(["--out", str(reference_run), "--resume", "--lr", "0.5"], env)
    assert done.returncode == 2 and "--lr" in done.stderr
    done = train_cli(["--out", str(tmp_path / "new"), "--resume"], env)
    assert done.returncode == 2 and "no config.json" in done.stderr
    done = train_cli(["--data", str(data_csv), "--out", str(tmp_path / "x"), "--device", "cuda:3"], env)
    assert done.returncode == 2 and "no CUDA device" in done.stderr


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step", "constant"])
def test_learning_rate_schedules(schedule):
    cfg = TrainConfig(lr=0.1, schedule=schedule, warmup_epochs=1.0 if schedule != "onecycle" else 0.0)
    lrs = [learning_rate(cfg, s, 1000, 100) for s in range(1000)]
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    if schedule == "onecycle":
        assert lrs[0] == pytest.approx(0.1 / 25) and lrs.index(max(lrs)) in range(295, 305) and lrs[-1] < 1e-3
    else:
        assert lrs[0] == pytest.approx(0.001) and lrs[99] == pytest.approx(0.1)
    if schedule == "cosine":
        assert lrs[-1] < 1e-5 and all(a >= b for a, b in zip(lrs[100:], lrs[101:]))
    if schedule == "step":
        assert lrs[600] == pytest.approx(0.01) and lrs[900] == pytest.approx(0.001)


def test_ferplus_soft_labels_with_mixup_ema_adamw(tmp_path, env):
    from helpers import write_fer_csv
    data = write_fer_csv(tmp_path / "fer2013.csv", {"Training": 70, "PublicTest": 14})
    head = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    rows = []
    for usage, n in (("Training", 70), ("PublicTest", 14)):
        for i in range(n):
            rows.append(f"{usage},,0,0,0,0,0,0,0,0,0,10\n" if i == 3 else
                        f"{usage},f{i}.png,{'5,5' if i % 2 else '10,0'},0,0,0,0,0,0,0,0\n")
    (tmp_path / "fer2013new.csv").write_text(head + "".join(rows))
    out = tmp_path / "soft"
    done = train_cli(["--data", str(data), "--label-source", "ferplus-soft", "--epochs", "1", "--batch-size", "16",
                      "--optimizer", "adamw", "--schedule", "cosine", "--mixup", "0.4", "--ema", "0.99",
                      "--label-smoothing", "0.1", "--resized-crop", "0.6", "--threads", "1", "--out", str(out)], env)
    assert done.returncode == 0, done.stderr
    assert "1 unlabelled images of Training left out" in done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["split_sizes"] == {"Training": 69, "PublicTest": 13}
    assert config["args"]["label_source"] == "ferplus-soft"
    history = read_history(out)
    assert len(history) == 1 and history["train_loss"].notna().all() and history["val_loss"].notna().all()
    load_model(out)


def test_course_csv_with_a_validation_fraction(tmp_path, env):
    from helpers import synthetic_faces
    images, labels = synthetic_faces(70)
    train = tmp_path / "train.csv"
    train.write_text("label,feature\n" + "".join(f"{lab},{' '.join(map(str, im.ravel()))}\n"
                                                 for lab, im in zip(labels, images)))
    out = tmp_path / "course"
    done = train_cli(["--data", str(train), "--val-fraction", "0.2", "--epochs", "1", "--batch-size", "16",
                      "--threads", "1", "--out", str(out)], env)
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["split_sizes"] == {"Training": 56, "Training-holdout": 14}
    assert json.loads((out / "meta.json").read_text())["metrics"]["split"] == "Training-holdout"
    done = train_cli(["--data", str(train), "--out", str(tmp_path / "nofrac")], env)
    assert done.returncode == 2 and "PublicTest empty or absent" in done.stderr and "--val-fraction" in done.stderr


def test_resume_a_run_saved_before_an_option_existed(tmp_path, reference_run, env):
    import shutil
    run = tmp_path / "old"
    shutil.copytree(reference_run, run)
    config = json.loads((run / "config.json").read_text())
    del config["args"]["val_fraction"]
    (run / "config.json").write_text(json.dumps(config))
    done = train_cli(["--out", str(run), "--resume"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "config.json").read_text())["args"]["val_fraction"] == 0.0
    assert read_history(run)["epoch"].tolist() == [1, 2, 3]


def test_progress_prints_plain_lines_off_a_terminal(monkeypatch, capsys):
    import fer_models.training.state as train_module
    clock = iter(range(0, 1000, 20))  # every call: 20 s later
    monkeypatch.setattr(train_module.time, "time", lambda: next(clock))
    progress = train_module.Progress(total=10, initial=2, desc="epoch 3/30", enabled=True)
    for _ in range(4):
        progress.update(128)
    progress.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and all(line.startswith("epoch 3/30 step ") and "img/s" in line and "eta" in line
                         for line in lines)
    assert "\r" not in "".join(lines) and len(lines) <= 4


def test_one_cycle_is_torchs_one_cycle_ending_at_base_over_ten_thousand():
    """The comment on the schedule claims torch's shape with another end value: check both claims."""
    import torch

    cfg, total = TrainConfig(lr=0.1, schedule="onecycle"), 1000
    ours = [learning_rate(cfg, s, total, 100) for s in range(total)]
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    # torch ends at max_lr / div_factor / final_div_factor: 400 makes that base / 1e4
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=total, pct_start=0.3,
                                                   div_factor=25, final_div_factor=400, cycle_momentum=False)
    theirs = []
    for _ in range(total):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 0.001  # 1% of the peak: torch's phases end a step apart
    assert ours[-1] == pytest.approx(0.1 / 1e4, rel=0.1) and theirs[-1] == pytest.approx(0.1 / 1e4)


def test_a_run_resumes_on_another_machines_copy_of_its_data_and_refuses_other_data(tmp_path, data_csv, env):
    import shutil

    from helpers import write_fer_csv
    out = tmp_path / "moved"
    stopped = train_cli(TINY + ["--epochs", "1", "--data", str(data_csv), "--out", str(out), "--stop-at-step", "2"],
                        env)
    assert stopped.returncode == 0, stopped.stderr
    copy = shutil.copy(data_csv, tmp_path / "elsewhere.csv")  # the same file where this machine keeps it
    other = write_fer_csv(tmp_path / "other.csv", {"Training": 140, "PublicTest": 70})
    refused = train_cli(["--out", str(out), "--resume", "--data", str(other)], env)
    assert refused.returncode == 2 and "was trained on {'Training': 210, 'PublicTest': 70}" in refused.stderr
    resumed = train_cli(["--out", str(out), "--resume", "--data", str(copy)], env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "config.json").read_text())["args"]["data"] == str(copy)
    assert read_history(out)["epoch"].tolist() == [1]


def test_a_diverging_run_stops_as_diverged_and_stays_readable(tmp_path, data_csv, env):
    from fer_models.runs.jobs import JobError, resume
    from fer_models.runs.registry import list_runs

    out = tmp_path / "runs" / "wild"
    done = train_cli(["--model", "cnn3", "--epochs", "3", "--batch-size", "32", "--lr", "10", "--threads", "1",
                      "--data", str(data_csv), "--out", str(out)], env)
    assert done.returncode == 1 and "learning rate" in done.stderr.splitlines()[-1]
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "diverged" and "lower learning rate" in status["error"]
    from fer_models.runs.folder import RunFolder
    RunFolder(out).history()  # validated: every cell a finite number (it diverged in epoch 1: no row at all)
    summary = list_runs(tmp_path / "runs")[0]
    assert summary.state == "diverged" and summary.error == status["error"]
    with pytest.raises(JobError, match="diverged"):
        resume(out, tmp_path / "runs")
