"""Training jobs launched as real processes on tiny synthetic data: finish, stop and resume, crash, DDP with
gloo, the one-job-per-device rule, evaluate, delete, and requests refused before launch."""
import json
import sys

import pytest

from fer_models.runs.evaluating import evaluate
from fer_models.runs.jobs import (
    JobError,
    TrainRequest,
    data_summary,
    delete,
    job_state,
    launch,
    live_jobs,
    log_tail,
    recipe_of,
    resume,
    sanitise_name,
    stop,
)
from fer_models.runs.registry import list_runs
from helpers import training_started, wait_for, wait_for_job, write_fer_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fer_csv(tmp_path_factory.mktemp("data") / "tiny.csv", {"Training": 112, "PublicTest": 35})


def request(data, name, **kw):
    settings = dict(model="cnn3", data=str(data), name=name, epochs=1, batch_size=16, device="cpu",
                    erase=0.0, label_smoothing=0.0)
    return TrainRequest(**{**settings, **kw})


def test_a_taken_name_suggests_resuming_only_what_resume_takes(data, tmp_path):
    """"choose another name, or resume it" sent a teacher to Resume for a finished run, which refuses it."""
    from helpers import make_run

    root = tmp_path / "runs"
    for state, offered in (("finished", False), ("diverged", False), ("stopped", True), ("failed", True)):
        make_run(root, state, {"state": state})
        with pytest.raises(JobError, match=f"a run named {state} already exists .*: choose another name") as said:
            launch(request(data, state), root)
        assert ("or resume it" in str(said.value)) == offered, (state, str(said.value))


def test_names_are_sanitised():
    assert sanitise_name("  my run/../../etc ") == "my_run_.._.._etc"
    assert sanitise_name(".hidden") == "hidden"
    assert sanitise_name("ä cnn3 (v2)") == "cnn3_v2"
    with pytest.raises(JobError, match="no letter or digit"):
        sanitise_name("../")


def test_bad_requests_are_refused_before_launch(data, tmp_path):
    bad = TrainRequest(model="resnet9000", data=str(tmp_path / "nope.csv"), name="///", epochs=0, batch_size=0,
                       lr=-1.0, val_fraction=1.5)
    problems = " | ".join(bad.problems())
    for expected in ("not registered", "does not exist", "no letter or digit", "epochs must be at least 1",
                     "batch size", "learning rate", "validation fraction"):
        assert expected in problems
    with pytest.raises(JobError, match="not registered"):
        launch(bad, tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert request(data, "ok").problems() == []


def test_weight_decay_defaults_to_the_optimizers_own(data, tmp_path):
    def decay_arg(**kw):
        args = request(data, "r", **kw).train_args(tmp_path)
        return float(args[args.index("--weight-decay") + 1])
    # SGD's decay is an L2 term in the gradient: AdamW's decoupled 0.05 there would crush the weights
    assert decay_arg(optimizer="sgd") == 5e-4 and decay_arg(optimizer="adamw") == 0.05
    assert decay_arg(optimizer="sgd", weight_decay=0.0) == 0.0
    assert decay_arg(optimizer="adamw", weight_decay=1e-3) == 1e-3
    assert any("weight decay" in p for p in request(data, "r", weight_decay=1.5).problems())


def test_a_runs_recipe_is_its_training_settings_only(tmp_path):
    run = tmp_path / "ref"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"args": {
        "model": "resnet10_fer", "data": "/elsewhere/fer2013.csv.gz", "epochs": 20, "optimizer": "sgd", "lr": 0.1,
        "weight_decay": 5e-4, "ema": 0.999, "erase": 0.1, "device": "cuda:0", "train_split": "Training",
        "ferplus": None}}))
    assert recipe_of(run) == {"model": "resnet10_fer", "epochs": 20, "optimizer": "sgd", "lr": 0.1,
                              "weight_decay": 5e-4, "ema": 0.999, "erase": 0.1}
    assert recipe_of(tmp_path / "missing") == {}


def test_data_summary_gives_split_sizes(data):
    sizes = data_summary(data)
    assert {k: v["faces"] for k, v in sizes.items()} == {"PublicTest": 35, "Training": 112}
    assert sum(sizes["Training"]["classes"].values()) == 112


def test_a_job_finishes_writes_its_run_and_can_be_evaluated(data, tmp_path):
    root = tmp_path / "runs"
    job = launch(request(data, "first run", epochs=2), root)
    run = root / "first_run"
    assert job["run"] == str(run) and job["command"][1:4] == ["-m", "fer_models", "train"]
    state = wait_for_job(run, {"finished", "failed"})
    assert state["state"] == "finished", log_tail(run)
    assert state["run_fraction"] == pytest.approx(1.0)
    assert (run / "model.safetensors").exists() and (run / "train.log").exists()
    assert [r.name for r in list_runs(root)] == ["first_run"] and list_runs(root)[0].arch == "cnn3"
    with pytest.raises(JobError, match="already exists"):
        launch(request(data, "first run"), root)
    with pytest.raises(JobError, match="has finished"):
        resume(run)
    said = []
    results = evaluate(run, data, ["PublicTest"], progress=lambda *p: said.append(p))
    assert results[0]["split"] == "PublicTest" and 0 <= results[0]["accuracy"] <= 1
    # the faces read (0 scored), then each batch as it is scored, to the last face
    n = results[0]["n"]
    assert said[0] == ("PublicTest", 0, n) and said[-1] == ("PublicTest", n, n)
    assert (run / "eval" / "PublicTest" / "confusion.csv").exists()
    assert evaluate(run, data, ["PrivateTest"])[0]["error"]  # a split the data lacks: said, not raised


def test_stop_then_resume_and_one_job_per_device(data, tmp_path):
    root = tmp_path / "runs"
    # far longer than the test: a 2-core AVX-512 CPU ran 200 of these tiny epochs in 100 s, before the stop
    launch(request(data, "long", epochs=100_000), root)
    run = root / "long"
    try:
        wait_for_job(run, {"running"})
        wait_for(lambda: training_started(run), 120, "the job's first step")
        with pytest.raises(JobError, match="cpu is busy with long"):
            launch(request(data, "second"), root)
        assert not (root / "second").exists()
        assert [j["run"] for j in live_jobs(root)] == [str(run)]
        stop(run)
        saving = job_state(run)  # the trainer finishes its step and saves: the card says stopping meanwhile
        assert saving["stopping"] if saving["state"] == "running" else saving["state"] == "stopped", saving
        wait_for(lambda: not live_jobs(root), 120, "the trainer to exit")
        state = job_state(run)
        assert state["state"] == "stopped" and not state["stopping"], log_tail(run)
        assert (run / "last.safetensors").exists()
        step_at_stop = (state["epoch"], state["step"])
        job = resume(run, root)
        assert job["resumed"] and job["command"][-1] == "--resume"
        assert resume(run, root)["pid"] == job["pid"]  # a second Resume at once joins it: one trainer, not two
        # at once, before the new trainer has written a word: its launch, not the stale "stopped" (issue 35, 7)
        now = job_state(run)
        assert now["state"] == "running" and now["starting"] and now["resumed"] and not now.get("error"), now
        assert not now["stopping"], now  # the stop it resumed from is over: nothing says stopping (issue 35, 10)
        wait_for_job(run, {"running"})
        # and through the new trainer's first word (epoch 0, no steps yet): starting, never "epoch 0 of N"
        seen = []
        wait_for(lambda: seen.append(job_state(run)) or not seen[-1].get("starting"), 300, "its first steps")
        assert all(s.get("steps_per_epoch") for s in seen if not s.get("starting")), seen
        # went on from where it stopped
        wait_for(lambda: (job_state(run)["epoch"], job_state(run)["step"]) > step_at_stop, 300, "a step past the stop")
        assert "resuming" in log_tail(run, 200)
        with pytest.raises(JobError, match="running: stop it first"):
            delete(run, root)
        assert stop(run, wait=120)
    finally:  # a failed assertion must not leave a 100,000-epoch job running under the rest of the suite
        if job_state(run)["state"] == "running":
            stop(run, wait=60)


def test_a_crashing_job_shows_failed_with_its_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n9," + " ".join(["0"] * 2304) + ",Training\n")
    root = tmp_path / "runs"
    launch(TrainRequest(model="cnn3", data=str(bad), name="crash", epochs=1, device="cpu"), root)
    state = wait_for_job(root / "crash", {"failed", "interrupted"})
    assert state["state"] == "failed" and "label" in state["error"]
    assert "error" in log_tail(root / "crash")


def test_ddp_over_two_cpu_processes(data, tmp_path):
    root = tmp_path / "runs"
    job = launch(request(data, "ddp", gpus=2, batch_size=32), root)
    assert "torch.distributed.run" in job["command"] and "--nproc_per_node=2" in job["command"]
    state = wait_for_job(root / "ddp", {"finished", "failed"}, timeout=300)
    assert state["state"] == "finished", log_tail(root / "ddp", 60)
    assert json.loads((root / "ddp" / "meta.json").read_text())["training"]["world_size"] == 2


def test_delete_refuses_shipped_runs_and_removes_user_runs(data, tmp_path):
    root = tmp_path / "runs"
    shipped = root / "reference"
    shipped.mkdir(parents=True)
    (shipped / "config.json").write_text("{}")
    (shipped / "meta.json").write_text(json.dumps({"shipped": {"from": "x"}}))
    with pytest.raises(JobError, match="shipped reference run"):
        delete(shipped, root)
    assert shipped.exists()
    user = root / "mine"
    user.mkdir()
    (user / "config.json").write_text("{}")
    (user / "status.json").write_text(json.dumps({"state": "stopped"}))
    delete(user, root)
    assert not user.exists()
    (root / "stray").mkdir()
    with pytest.raises(JobError, match="does not look like a run folder"):
        delete(root / "stray", root)


def test_eta_uses_the_finished_epochs_pace(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"args": {"batch_size": 100}}))
    status = {"state": "finished", "epochs": 4, "steps_per_epoch": 10, "epoch": 1, "step": 5,
              "images_per_second": 1000.0}
    (run / "status.json").write_text(json.dumps(status))
    assert job_state(run)["eta_seconds"] is None  # nothing left to do
    (run / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    assert job_state(run)["eta_seconds"] == pytest.approx(35 * 100 / 1000)  # first epoch: the current speed
    (run / "history.csv").write_text("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
                                     "1,1,0.3,1,0.3,0.1,50\n2,1,0.3,1,0.3,0.1,70\n")
    (run / "status.json").write_text(json.dumps({**status, "state": "stopped", "epoch": 3, "step": 5}))
    assert job_state(run)["eta_seconds"] == pytest.approx(1.5 * 60)  # 1.5 epochs at the 60 s mean


def test_a_launch_never_writes_through_a_link_nor_over_a_file(data, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "linked").symlink_to(outside)
    (root / "afile").write_text("mine\n")
    for name in ("linked", "afile"):
        with pytest.raises(JobError, match="is not a run folder: choose another name"):
            launch(TrainRequest(model="cnn3", data=str(data), name=name, epochs=1, device="cpu"), root)
    assert not any(outside.iterdir()) and (root / "afile").read_text() == "mine\n"


def test_a_trainer_seen_mid_exec_is_still_its_runs_trainer(data, tmp_path, monkeypatch):
    """Launched through vfork, a child's command line reads empty for a moment after the launch returns; the
    launcher once called such a starting job "failed"."""
    from fer_models.runs import processes

    job = launch(request(data, "starting", epochs=1), tmp_path / "runs")
    real, calls = processes.command_line, []
    monkeypatch.setattr(processes, "command_line", lambda pid: real(pid) if calls.append(pid) or len(calls) > 1 else [])
    assert processes.trainer_alive(job["pid"], tmp_path / "runs" / "starting") and len(calls) == 2
    monkeypatch.undo()
    stop(tmp_path / "runs" / "starting")


def test_an_ended_job_says_how_far_it_got_and_why():
    from fer_models.runs.jobs import how_it_ended

    mid = {"state": "stopped", "epochs": 4, "steps_per_epoch": 10, "epoch": 2, "step": 5}
    assert how_it_ended(mid, 1) == "stopped by Stop in epoch 2 of 4, at step 5 of 10 (38% of the run)"
    between = {"state": "interrupted", "epochs": 4, "steps_per_epoch": 10, "epoch": 3, "step": 0}
    assert how_it_ended(between, 2).endswith("(killed, or the server restarted) after epoch 2 of 4 (50% of the run)")
    first = {"state": "failed", "epochs": 4, "steps_per_epoch": 10, "epoch": 1, "step": 3}
    assert how_it_ended(first, 0) == ("failed in epoch 1 of 4, at step 3 of 10 (8% of the run); no epoch finished, "
                                      "so it has no validation score")
    assert how_it_ended({"state": "stopped", "epochs": 4}, 0) == "stopped by Stop before its first step"


def test_an_evaluation_past_its_time_is_stopped_and_said():
    from fer_models.runs.evaluating import _run_reading_progress

    code, _, err = _run_reading_progress([sys.executable, "-c", "import time; time.sleep(60)"], 1, print)
    assert code != 0 and "took over 1 s and was stopped" in err
