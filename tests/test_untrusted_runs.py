"""Run folders are untrusted input: each attack of the run-folder audit, reproduced and shown to fail, and
malformed folders reported by name while every other run keeps working."""
import json
import os
import signal
import subprocess
import sys

import pytest
from warm_cli import run as warm

from fer_models.runs.evaluating import evaluate
from fer_models.runs.jobs import JobError, delete, resume, stop
from fer_models.runs.registry import list_runs, models_table
from helpers import make_evaluated_run, shown, wait_for, write_fer_csv

TINY = {"model": "cnn3", "epochs": 1, "batch_size": 16, "threads": 1, "device": "cpu"}


def stopped_run(root, name="victim", data="/nowhere/fer2013.csv"):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"args": {**TINY, "data": str(data)}, "world_size": 1}))
    (run / "status.json").write_text(json.dumps({"state": "stopped", "pid": 999999}))
    return run


def test_resume_never_runs_the_command_stored_in_job_json(tmp_path):
    root = tmp_path / "runs"
    run = stopped_run(root)
    marker = tmp_path / "PWNED"
    (run / "job.json").write_text(json.dumps({"pid": 999999, "devices": ["cpu"], "command": [
        "/bin/sh", "-c", f"touch {marker}", "fer_models", "train"]}))
    job = resume(run, root)
    assert job["command"][1:] == ["-m", "fer_models", "train", "--out", str(run.resolve()), "--resume"]
    wait_for(lambda: subprocess.run(["ps", "-p", str(job["pid"])], capture_output=True).returncode != 0, 120,
             "the resumed trainer to exit (its data does not exist)")
    assert not marker.exists()


def test_resume_refuses_a_config_that_is_not_training_settings(tmp_path):
    root = tmp_path / "runs"
    run = stopped_run(root)
    (run / "config.json").write_text(json.dumps({"args": {**TINY, "epochs": "; rm -rf /", "device": "cpu"}}))
    with pytest.raises(JobError, match="epochs"):
        resume(run, root)
    assert not (run / "job.json").exists()


def test_stop_signals_only_this_runs_trainer(tmp_path):
    root = tmp_path / "runs"
    run = stopped_run(root)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (run / "job.json").write_text(json.dumps({"pid": bystander.pid, "devices": ["cpu"]}))
        (run / "status.json").write_text(json.dumps({"state": "running", "pid": bystander.pid}))
        with pytest.raises(JobError, match="not this run's trainer; nothing was signalled"):
            stop(run)
        assert bystander.poll() is None  # still alive
    finally:
        bystander.kill()
        bystander.wait()


def test_delete_acts_only_on_direct_children_of_the_runs_root(tmp_path):
    root = tmp_path / "runs"
    stopped_run(root, "mine")
    (tmp_path / "config.json").write_text("{}")  # the parent looks like a run folder too
    for target in (root / "..", tmp_path, root, root / "mine" / ".." / ".."):
        with pytest.raises(JobError, match="not a run folder directly under"):
            delete(target, root)
    outside = stopped_run(tmp_path / "elsewhere", "precious")
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(JobError, match="not a run folder directly under"):
        delete(root / "link", root)
    assert (tmp_path / "config.json").exists() and (outside / "config.json").exists() and (root / "mine").exists()
    delete(root / "mine", root)
    assert not (root / "mine").exists()


def test_split_names_never_escape_the_run_folder(tmp_path, run_env):
    run = make_evaluated_run(tmp_path / "runs", "r")
    data = write_fer_csv(tmp_path / "fer.csv", {"Training": 7, "../../escaped_eval": 7})
    done = warm(["evaluate", "--run", str(run), "--data", str(data),
                 "--split", "../../escaped_eval"], env=run_env, timeout=120)
    assert done.returncode == 2 and "not a plain name" in done.stderr and len(done.stderr.splitlines()) == 1
    [result] = evaluate(run, data, ["../../escaped_eval"])
    assert "not a plain name" in result["error"]
    assert not list(tmp_path.rglob("escaped_eval"))


# ---------------------------------------------------------------- one bad run never breaks the others

# a run that has written nothing useful yet: listed as it is, state unknown
EMPTY_RUN = {"config.json": json.dumps({"args": {}}), "history.csv": ""}
BAD_RUNS = {
    "wrong_history_columns": {"config.json": json.dumps({"args": {"model": "cnn3"}}), "history.csv": "a,b\n1,2\n"},
    "heartbeat_soon": {"status.json": json.dumps({"state": "running", "pid": 1, "heartbeat": "soon"})},
    "config_a_list": {"config.json": "[1, 2]"},
    "status_garbage": {"status.json": "\x00\xff garbage"},
    "meta_classes_7": {"meta.json": json.dumps({"arch": "cnn3", "classes": 7})},
    "meta_std_0": {"meta.json": json.dumps({"arch": "cnn3", "normalisation": {"mean": 0.5, "std": 0}})},
    "history_text_accuracy": {"status.json": json.dumps({"state": "finished"}),
                              "history.csv": "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
                                             "1,1,1,1,high,1,1\n"},
    "job_pid_text": {"job.json": json.dumps({"pid": "1; kill", "command": ["x"]})},
    # found by an adversarial review: numbers no float holds, JSON nested past Python's recursion limit,
    # a history with a column per byte, an empty or infinite cell
    "status_huge_int": {"status.json": '{"state": "running", "epochs": 1' + "0" * 400 + "}"},
    "config_infinity": {"config.json": '{"args": {"model": "cnn3", "epochs": Infinity}}'},
    "config_deep": {"config.json": "[" * 100_000 + "]" * 100_000},
    "job_5000_digits": {"job.json": '{"pid": ' + "9" * 5000 + "}"},
    "meta_params_text": {"meta.json": json.dumps({"arch": "cnn3", "params": "lots"})},
    "history_inf_epoch": {"status.json": json.dumps({"state": "finished"}),
                          "history.csv": "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\ninf,1,1,1,1,1,1\n"},
    "history_empty_cell": {"status.json": json.dumps({"state": "finished"}),
                           "history.csv": "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,1,1,1,,1,1\n"},
    "history_100k_columns": {"status.json": json.dumps({"state": "finished"}),
                             "history.csv": ",".join(f"c{i}" for i in range(100_000)) + "\n"},
}


def bad_runs_beside_a_good_one(root):
    good = make_evaluated_run(root, "good")
    (good / "history.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,1,0.5,1,0.5,0.1,3\n")
    for name, files in {**BAD_RUNS, "empty": EMPTY_RUN}.items():
        (root / name).mkdir()
        for file, text in files.items():
            (root / name / file).write_text(text)
    return good


def test_each_bad_run_is_listed_as_unreadable_with_its_reason(tmp_path):
    bad_runs_beside_a_good_one(tmp_path)
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert runs["good"].state == "finished" and runs["good"].val_acc == 0.5
    assert runs["empty"].state == "unknown" and runs["empty"].epochs_done == 0
    for name in BAD_RUNS:
        assert runs[name].state == "unreadable" and name in runs[name].error, (name, runs[name])
    assert "heartbeat 'soon', not a number" in runs["heartbeat_soon"].error
    assert "std" in runs["meta_std_0"].error and "lacks the column" in runs["wrong_history_columns"].error
    table = models_table(tmp_path)
    assert "| good | cnn3 |" in table and "| heartbeat_soon | unreadable: " in table


def test_runs_cli_lists_good_runs_and_names_bad_ones(tmp_path, run_env):
    bad_runs_beside_a_good_one(tmp_path)
    done = warm(["runs", "--root", str(tmp_path)], env=run_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| good | cnn3 |" in done.stdout and "Traceback" not in done.stderr
    assert all(f"run {name}:" in done.stderr for name in BAD_RUNS)


@pytest.mark.parametrize("page", ["app_pages/history.py", "app_pages/architecture.py", "app_pages/confusion.py",
                                  "app_pages/train.py", "app_pages/report.py"])
def test_every_page_opens_with_bad_runs_in_the_root(tmp_path, monkeypatch, page):
    from helpers import open_app

    bad_runs_beside_a_good_one(tmp_path)
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = open_app(page, run="good")  # asserts no exception box
    picker = at.sidebar.selectbox[0]
    assert "good" in picker.options[0] or any("good" in o for o in picker.options)
    if page.endswith("train.py"):  # the bad runs with a job.json are shown, with their reason, and deletable
        assert any("job_pid_text" in shown(e.value) for e in at.error)
    for name in ("heartbeat_soon", "meta_std_0"):  # a bad run picked: said, not raised
        bad = open_app(page, run=name)
        assert bad.sidebar.selectbox[0].value == name


def test_special_files_in_a_run_are_refused_not_read(tmp_path):
    import os

    pipe = tmp_path / "pipe"
    pipe.mkdir()
    os.mkfifo(pipe / "status.json")  # reading it would block for ever
    endless = tmp_path / "endless"
    endless.mkdir()
    (endless / "config.json").symlink_to("/dev/zero")  # reading it would never end
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert runs["pipe"].state == runs["endless"].state == "unreadable"
    assert "not a regular file" in runs["pipe"].error and "not a regular file" in runs["endless"].error


def test_a_bad_evaluation_is_said_on_its_page_and_left_out_of_the_table(tmp_path, monkeypatch):
    from helpers import open_app

    run = bad_runs_beside_a_good_one(tmp_path)
    metrics = run / "eval" / "PublicTest" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "accuracy": "high"}))
    good = next(line for line in models_table(tmp_path).splitlines() if line.startswith("| good | cnn3 | 5.39M | 1 |"))
    assert "| not evaluated | not evaluated |" in good
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = open_app("app_pages/confusion.py", run="good")
    assert any("accuracy 'high', not a number" in shown(e.value) for e in at.error)


def test_nothing_is_written_through_links_in_a_run(tmp_path, run_env):
    outside = tmp_path / "outside"
    outside.mkdir()
    run = make_evaluated_run(tmp_path / "runs", "r")
    import shutil
    shutil.rmtree(run / "eval" / "PublicTest")
    (run / "eval" / "PublicTest").symlink_to(outside, target_is_directory=True)
    data = write_fer_csv(tmp_path / "fer.csv", {"PublicTest": 7})
    done = warm(["evaluate", "--run", str(run), "--data", str(data)],
                env=run_env, timeout=120)
    assert done.returncode == 2 and "eval/PublicTest: is a link" in done.stderr
    root = tmp_path / "runs2"
    stopped = stopped_run(root)
    (stopped / "train.log").symlink_to(outside / "victim.txt")
    with pytest.raises(JobError, match="cannot write its train.log"):
        resume(stopped, root)
    assert not list(outside.iterdir())
    (stopped / "train.log").unlink()
    (outside / "hard.txt").write_text("mine\n")
    os.link(outside / "hard.txt", stopped / "train.log")
    with pytest.raises(JobError, match="cannot write its train.log"):
        resume(stopped, root)
    assert (outside / "hard.txt").read_text() == "mine\n"


def test_stop_needs_python_running_the_trainer_module(tmp_path):
    root = tmp_path / "runs"
    run = stopped_run(root)
    # a shell, and a Python program, whose arguments merely name the module and the run
    for decoy_command in (["bash", "-c", "sleep 300; true", "fer_models", "train", "--out", str(run)],
                          [sys.executable, "-c", "import time; time.sleep(300)", "-m", "fer_models", "train", "--out",
                           str(run)]):
        decoy = subprocess.Popen(decoy_command, start_new_session=True)
        try:
            (run / "job.json").write_text(json.dumps({"pid": decoy.pid, "devices": ["cpu"]}))
            with pytest.raises(JobError, match="not this run's trainer"):
                stop(run)
            assert decoy.poll() is None
        finally:
            decoy.kill()
            decoy.wait()


@pytest.mark.parametrize("meta", ["{not json", json.dumps({"shipped": {}})])
def test_delete_keeps_a_run_that_may_be_shipped(tmp_path, meta):
    root = tmp_path / "runs"
    run = stopped_run(root)
    (run / "meta.json").write_text(meta)
    with pytest.raises(JobError, match="shipped"):
        delete(run, root)
    assert run.exists()


# ---------------------------------------------------------------- dead ends of a failed start

def test_a_start_that_died_before_its_config_is_started_again(tmp_path, run_env, fer_csv):
    out = tmp_path / "run"
    out.mkdir()
    (out / "status.json").write_text(json.dumps({"state": "failed", "error": "empty CSV"}))
    (out / "train.log").write_text("error\n")
    done = warm(["train", "--data", str(fer_csv), "--epochs", "1",
                 "--batch-size", "32", "--threads", "1", "--out", str(out)],
                env=run_env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


def test_a_truncated_checkpoint_names_the_way_out_and_restart_takes_it(tmp_path, run_env, fer_csv):
    out = tmp_path / "run"
    args = ["--data", str(fer_csv), "--epochs", "1", "--batch-size", "32", "--threads", "1", "--out", str(out)]
    assert warm(["train", *args], env=run_env).returncode == 0
    last = out / "last.safetensors"
    last.write_bytes(last.read_bytes()[:100])
    status = json.loads((out / "status.json").read_text())
    (out / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    resumed = warm(["train", "--out", str(out), "--resume", "--epochs", "2"], env=run_env)
    assert resumed.returncode == 2 and "--restart" in resumed.stderr.splitlines()[-1]
    again = warm(["train", *args], env=run_env)
    assert again.returncode == 2 and "--restart" in again.stderr
    restarted = warm(["train", *args, "--restart"], env=run_env)
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


def test_ctrl_c_while_the_data_loads_leaves_a_run_that_resumes(tmp_path, run_env):
    data = write_fer_csv(tmp_path / "big.csv", {"Training": 600, "PublicTest": 35})
    out = tmp_path / "run"
    start = [sys.executable, "-m", "fer_models", "train", "--data", str(data), "--epochs", "1", "--batch-size", "64",
             "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen(start, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "status.json").exists(), 120, "the trainer's first status")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads((out / "status.json").read_text())["state"] == "stopped"
    # stopped before its config was written, it starts again; after, it resumes: either way it goes on
    again = ["--out", str(out), "--resume"] if (out / "config.json").exists() else start[4:]
    resumed = subprocess.run(start[:4] + again, env=run_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


def test_ship_leaves_nothing_behind_when_it_fails(tmp_path, run_env, fer_csv):
    from fer_models.training.ship import main as ship_main

    run = make_evaluated_run(tmp_path / "runs", "done")
    (run / "config.json").write_text(json.dumps({"args": {"model": "cnn3"}}))
    (run / "history.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n")
    target = tmp_path / "shipped" / "ref"
    assert ship_main(["--run", str(run), "--to", str(target), "--data", str(tmp_path / "nope.csv")]) == 2
    assert not target.exists() and not list((tmp_path / "shipped").iterdir())
    assert ship_main(["--run", str(run), "--to", str(target), "--data", str(fer_csv), "--atlas-patterns", "-1"]) == 0
    assert json.loads((target / "meta.json").read_text())["shipped"]["from"] == "done"

