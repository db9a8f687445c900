import json
import socket
import subprocess
import sys
import time

import pytest

from fer_models.core.constants import EMOTIONS
from fer_models.runs import registry
from fer_models.runs.registry import STALE_SECONDS, best_run, list_runs, read_evaluation, read_history, read_status
from helpers import make_run


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_list_runs_summarises_each_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "trainer_alive", lambda pid, run: pid == __import__("os").getpid())
    host = socket.gethostname()
    make_run(tmp_path, "b_finished", {"state": "finished", "host": host}, [0.3, 0.6, 0.5],
             {"arch": "cnn3", "metrics": {"val_acc": 0.6}}, evaluation="PublicTest")
    make_run(tmp_path, "a_live", {"state": "running", "pid": __import__("os").getpid(), "host": host,
                                  "heartbeat": time.time()}, [0.2])
    (tmp_path / "not_a_run").mkdir()
    runs = list_runs(tmp_path)
    assert [r.name for r in runs] == ["a_live", "b_finished"]
    live, done = runs
    assert live.state == "running" and live.epochs_done == 1 and live.epochs == 5 and live.arch == "cnn3"
    assert done.state == "finished" and done.val_acc == 0.6 and done.best_epoch == 2
    assert done.evaluations == ["PublicTest"] and live.evaluations == []


def test_a_pid_that_is_alive_but_not_the_runs_trainer_reads_as_interrupted(tmp_path):
    """After a reboot the pid in status.json may belong to any process: here, this test's own."""
    import os
    run = make_run(tmp_path, "r", {"state": "running", "pid": os.getpid(), "host": socket.gethostname(),
                                   "heartbeat": time.time()})
    assert read_status(run)["state"] == "interrupted"


def test_dead_job_reads_as_interrupted(tmp_path):
    run = make_run(tmp_path, "r", {"state": "running", "pid": dead_pid(), "host": socket.gethostname(),
                                   "heartbeat": time.time()})
    status = read_status(run)
    assert status["state"] == "interrupted" and status["recorded_state"] == "running"
    assert "resume" in status["error"]


@pytest.mark.parametrize("age, expected", [(5, "running"), (STALE_SECONDS + 60, "interrupted")])
def test_job_on_another_host_judged_by_heartbeat(tmp_path, age, expected):
    run = make_run(tmp_path, "r", {"state": "running", "pid": 1, "host": "elsewhere",
                                   "heartbeat": time.time() - age})
    assert read_status(run)["state"] == expected


def test_failed_run_keeps_its_error(tmp_path):
    run = make_run(tmp_path, "r", {"state": "failed", "error": "bad.csv: line 3: unknown label '9'"})
    summary = list_runs(tmp_path)[0]
    assert summary.state == "failed" and "line 3" in summary.error and summary.val_acc is None
    assert read_history(run).empty and list(read_history(run).columns)[0] == "epoch"


def test_empty_or_missing_root(tmp_path):
    assert list_runs(tmp_path) == [] and list_runs(tmp_path / "nowhere") == []


def test_read_evaluation(tmp_path):
    run = make_run(tmp_path, "r", {"state": "finished"}, evaluation="PublicTest")
    metrics, predictions, confusion = read_evaluation(run, "PublicTest")
    assert metrics["accuracy"] == 0.5
    assert predictions["id"].tolist() == ["007", "8"]  # ids stay strings
    assert list(confusion.index) == list(EMOTIONS) and confusion.to_numpy().trace() == 7
    with pytest.raises(FileNotFoundError, match="fer-studio evaluate"):
        read_evaluation(run, "PrivateTest")


def test_models_table_comes_from_the_run_folders(tmp_path):
    import json as _json

    from fer_models.runs.registry import TABLE_END, TABLE_START, models_table, reproduce_command, write_table
    from helpers import make_evaluated_run
    run = make_evaluated_run(tmp_path / "runs", "cnn3_ref")
    meta = _json.loads((run / "meta.json").read_text())
    meta["training"] = {"device_name": "CPU (2 threads x 1 processes)", "precision": "bf16", "seconds": 7200,
                        "images_per_second": 104.5}
    (run / "meta.json").write_text(_json.dumps(meta))
    (run / "config.json").write_text(_json.dumps({"args": {
        "model": "cnn3", "data": "/somewhere/fer2013.csv.gz", "epochs": 40, "optimizer": "sgd", "lr": 0.01,
        "label_smoothing": 0.1, "flip": False, "seed": 0}, "resumed": ["then", "later"], "threads_per_process": 2,
        "world_size": 1}))
    metrics = _json.loads((run / "eval" / "PublicTest" / "metrics.json").read_text())
    table = models_table(tmp_path / "runs")
    row = table.splitlines()[2]
    assert row.startswith("| cnn3_ref | cnn3 | 5.39M | 0 | 3 | 2.0 h | 4.0 | 104 | CPU (2 threads x 1 processes), "
                          f"bf16 | validation (it picked the best epoch) | {metrics['accuracy']:.2%} | not evaluated | "
                          f"{metrics['macro_f1']:.3f} | {metrics['precision']} |")
    assert reproduce_command(_json.loads((run / "config.json").read_text()), "cnn3_ref") == (
        "fer-studio train --model cnn3 --data path/to/fer2013.csv.gz --epochs 40 "
        "--label-smoothing 0.1 --no-flip --out artifacts/runs/cnn3_ref_again")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{TABLE_START}\nold\n{TABLE_END}\nafter\n")
    write_table(readme, tmp_path / "runs")
    text = readme.read_text()
    assert "old" not in text and "| cnn3_ref |" in text and text.endswith("after\n")


def test_best_run_is_the_most_accurate_finished_one(tmp_path):
    host = socket.gethostname()
    make_run(tmp_path, "a_small", {"state": "finished", "host": host}, [0.5, 0.55], {"arch": "cnn3"})
    make_run(tmp_path, "b_big", {"state": "finished", "host": host}, [0.6, 0.64], {"arch": "cnn3"})
    make_run(tmp_path, "c_dead", {"state": "running", "pid": dead_pid(), "host": host,
                                  "heartbeat": time.time()}, [0.9])  # died: its figure is no model's
    assert best_run(list_runs(tmp_path)).name == "b_big"
    assert best_run(list_runs(tmp_path)[2:]).name == "c_dead"  # nothing finished: the first run
    assert best_run([]) is None


def test_a_just_launched_job_is_listed_before_the_trainer_writes_anything(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(registry, "trainer_alive", lambda pid, run: pid == os.getpid())
    starting = tmp_path / "starting"
    starting.mkdir()
    (starting / "job.json").write_text(json.dumps({"pid": os.getpid(), "command": [
        sys.executable, "-m", "fer_models", "train", "--model", "resnet10_fer", "--out", str(starting)]}))
    gone = tmp_path / "gone"
    gone.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (gone / "job.json").write_text(json.dumps({"pid": dead.pid, "command": ["python"]}))
    (tmp_path / "not_a_run").mkdir()
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert set(runs) == {"starting", "gone"}
    starting = runs["starting"]
    assert (starting.state, starting.arch, starting.epochs_done) == ("running", "resnet10_fer", 0)
    assert (runs["gone"].state, runs["gone"].arch) == ("failed", None)
    # the trainer started, still loading: its status says running, no config.json yet (the card read "· ? ·")
    (tmp_path / "starting" / "status.json").write_text(json.dumps({
        "state": "running", "pid": os.getpid(), "host": socket.gethostname(), "starting": True}))
    starting = {r.name: r for r in list_runs(tmp_path)}["starting"]
    assert (starting.state, starting.arch) == ("running", "resnet10_fer")


def test_what_the_recipes_say_of_the_shipped_resnet10_fer_is_in_its_history():
    """A comment once said the 40-epoch run "overfitted from epoch 30"; its own history.csv says otherwise."""
    import pandas as pd

    from helpers import ROOT
    history = pd.read_csv(ROOT / "artifacts" / "runs" / "resnet10_fer" / "history.csv")
    text = (ROOT / "fer_models" / "runs" / "recipes.py").read_text()
    assert "overfitted" not in text
    best = history.loc[history["val_acc"].idxmax()]
    assert best["epoch"] == history["epoch"].max() == 40 and f"{best['val_acc']:.1%}" in text
    assert history["val_loss"].idxmin() == history.index[-1] and f"{history['train_acc'].iloc[-1]:.1%}" in text


@pytest.mark.parametrize("args, split, role", [
    ({"train_split": "Training", "val_split": "PublicTest"}, "PublicTest", "validation"),
    ({"train_split": "Training", "val_split": "PublicTest"}, "PublicTest-tta", "validation"),
    ({"train_split": "Training", "val_split": "PublicTest"}, "PrivateTest", "test"),
    ({"train_split": "Training", "val_split": "PublicTest", "val_fraction": 0.1}, "PublicTest", "test"),
    ({"train_split": "Training", "val_split": "PublicTest"}, "Training", "training"),
    (None, "PublicTest", "unknown")])
def test_each_split_is_named_for_what_it_was_to_the_run(args, split, role):
    from fer_models.runs.registry import split_role
    assert split_role({"args": args} if args else {}, split) == role
