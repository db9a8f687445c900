"""The Train page rendered headless (AppTest), launching real tiny CPU jobs on synthetic data."""
import pytest
from streamlit.testing.v1 import AppTest

from fer_models.runs.jobs import TrainRequest, job_state, launch, stop
from helpers import open_app, shown, training_started, wait_for, wait_for_job, write_fer_csv

PATH_LABEL = "Path to a FER2013 CSV (.csv or .csv.gz), a class-folder tree or a .npz"


@pytest.fixture
def setup(tmp_path, monkeypatch):
    data = write_fer_csv(tmp_path / "tiny.csv", {"Training": 112, "PublicTest": 35})
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "runs"))
    return data, tmp_path / "runs"


def open_train(run=None) -> AppTest:
    return open_app("app_pages/train.py", run)


def by_label(widgets, label):
    return next(w for w in widgets if w.label == label)


def fill(at, data, name):
    by_label(at.text_input, PATH_LABEL).set_value(str(data)).run()
    by_label(at.text_input, "Run name").set_value(name)
    by_label(at.number_input, "Epochs").set_value(1)
    by_label(at.number_input, "Batch size").set_value(16)
    by_label(at.selectbox, "Device").set_value("cpu")
    return at


def test_launch_from_the_form_finish_and_select_the_run(setup):
    data, root = setup
    at = open_train()
    assert any("No jobs yet" in i.value for i in at.info)
    fill(at, data, "from the page")
    assert any("Training 112 faces" in c.value for c in at.caption)
    by_label(at.button, "Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Started from_the_page" in shown(s.value) for s in at.success)
    wait_for_job(root / "from_the_page", {"finished", "failed"})
    assert job_state(root / "from_the_page")["state"] == "finished"
    later = open_train(run="from_the_page")  # a new session: the run is in the picker and the panel
    assert "from_the_page" in later.sidebar.selectbox[0].options[0]
    assert any("**from_the_page** · cnn3 · finished · best validation" in shown(m.value) for m in later.markdown)
    by_label(later.button, "Evaluate").click().run()
    assert not later.exception, later.exception
    # scored in a thread of the server: the page stays live, the bar says how far it is
    assert any("Evaluating from_the_page" in shown(b.proto.text) for b in later.get("progress"))
    job = later.session_state["evaluating_from_the_page"]
    wait_for(lambda: not job.running, timeout=240, what="the evaluation")
    later.run()
    said = [s.value for s in later.success if "PublicTest: accuracy" in s.value]
    assert said and "[Open its confusion matrix](confusion?run=from_the_page)" in said[0]
    later.run()  # the panel redraws (every 2 s while a job runs): the result stays
    assert [s.value for s in later.success if "PublicTest: accuracy" in s.value] == said
    assert (root / "from_the_page" / "eval" / "PublicTest" / "metrics.json").exists()


def test_a_job_started_from_a_runs_settings_trains_with_them(setup):
    import json

    data, root = setup
    ref = root / "reference"
    ref.mkdir(parents=True)
    (ref / "config.json").write_text(json.dumps({"args": {
        "model": "resnet10_fer", "epochs": 20, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4,
        "ema": 0.999, "erase": 0.1, "label_smoothing": 0.1, "scale": 0.05, "flip": True, "data": "/x/fer2013.csv"}}))
    at = open_train()
    assert by_label(at.number_input, "Weight decay").value is None  # the optimizer's default until set
    by_label(at.selectbox, "Start from").set_value("reference").run()
    assert not at.exception
    assert by_label(at.selectbox, "Model").value == "resnet10_fer"
    assert by_label(at.selectbox, "Optimizer").value == "sgd"
    form = {w.label: w.value for w in at.number_input}
    assert form["Learning rate"] == 0.1 and form["Weight decay"] == 5e-4 and form["Weight EMA"] == 0.999
    assert form["Random erasing"] == 0.1 and form["Scale ±"] == 0.05 and form["Epochs"] == 20
    fill(at, data, "again")  # the data is still this machine's; a short run of that recipe
    by_label(at.button, "Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    command = json.loads((root / "again" / "job.json").read_text())["command"]
    for flag, value in (("--model", "resnet10_fer"), ("--optimizer", "sgd"), ("--lr", "0.1"),
                        ("--weight-decay", "0.0005"), ("--ema", "0.999"), ("--scale", "0.05")):
        assert command[command.index(flag) + 1] == value, flag
    wait_for_job(root / "again", {"finished", "failed"})
    by_label(at.selectbox, "Start from").set_value("").run()  # back to the defaults
    assert by_label(at.selectbox, "Model").value == "cnn3" and by_label(at.number_input, "Weight decay").value is None
    odd = root / "odd"  # made elsewhere, with values the form's bounds do not take
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"args": {"model": "no_such_net", "epochs": 500_000, "rotate": 60}}))
    at.run()
    by_label(at.selectbox, "Start from").set_value("odd").run()
    assert not at.exception
    assert any("epochs 500000" in w.value and "rotate 60" in w.value for w in at.warning)
    assert by_label(at.number_input, "Epochs").value == 100_000 and by_label(at.number_input, "Rotation °").value == 45
    assert by_label(at.selectbox, "Model").value == "cnn3"  # an unknown model is not taken over


def test_invalid_form_values_are_refused_before_launch(setup, tmp_path):
    data, root = setup
    at = fill(open_train(), data, "...")  # empty is allowed: the model and the start time name the run
    by_label(at.button, "Start training").click().run()
    assert any("Not started" in e.value and "no letter or digit" in e.value for e in at.error)
    at = fill(open_train(), tmp_path / "missing.csv", "x")
    said = [e.value for e in at.error if "cannot be used" in e.value]
    assert said and "missing.csv: no such file or directory; give a path on this server" in shown(said[0])
    assert "Errno" not in said[0]
    by_label(at.button, "Start training").click().run()
    assert any("Not started" in e.value and "does not exist" in e.value for e in at.error)
    assert not root.exists() or not any(root.iterdir())


def test_the_forms_problems_name_its_own_boxes_not_the_trainers_flags(setup):
    """"rotate must be at most 45 (--rotate 60)" spoke the command line's language on a page of boxes."""
    data, root = setup
    at = fill(open_train(), data, "x")
    by_label(at.number_input, "Epochs").set_value(0)
    by_label(at.number_input, "Rotation °").set_value(60)
    by_label(at.selectbox, "Train on").set_value("Training")
    by_label(at.selectbox, "Validate on").set_value("Training")
    by_label(at.button, "Start training").click().run()
    said = shown(next(e.value for e in at.error if "Not started" in e.value))
    assert "Epochs must be at least 1, not 0" in said and "Rotation ° must be at most 45, not 60" in said, said
    assert "measures nothing: pick another split or a hold-out in Validate on" in said and "--" not in said
    assert not root.exists() or not any(root.iterdir())


def test_a_job_started_elsewhere_is_seen_and_stopped(setup):
    data, root = setup
    # far longer than the test (a fast CPU finished 200 of these tiny epochs before the page stopped it)
    launch(TrainRequest(model="cnn3", data=str(data), name="elsewhere", epochs=100_000, batch_size=16, device="cpu"),
           root)
    try:
        wait_for_job(root / "elsewhere", {"running"})
        wait_for(lambda: training_started(root / "elsewhere"), 120, "the job's first step")
        at = open_train()
        assert any("**elsewhere** · cnn3 · running" in m.value for m in at.markdown)
        assert len(at.get("progress")) == 2  # the epoch and the whole run
        by_label(at.button, "Stop").click().run()
        assert not at.exception and not at.toast  # said on the card, where it goes when the card reads stopped
        if job_state(root / "elsewhere")["state"] == "running":  # still saving: the card says so, its Stop gone
            assert any(shown(c.value).startswith("Stopping: it finishes its step") for c in at.caption)
            assert not any(b.label == "Stop" for b in at.button)
        wait_for_job(root / "elsewhere", {"stopped"}, timeout=120)
    finally:  # a failed assertion must not leave a 100,000-epoch job running under the rest of the suite
        if job_state(root / "elsewhere")["state"] == "running":
            stop(root / "elsewhere", wait=60)
    at = open_train()
    assert any("**elsewhere** · cnn3 · stopped" in m.value for m in at.markdown)
    assert any(shown(c.value).startswith("stopped by Stop ") and "% of the run" in c.value for c in at.caption)
    assert any(b.label == "Resume" for b in at.button)


def test_a_crashed_job_shows_failed_with_its_log(setup, tmp_path):
    _, root = setup
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n9," + " ".join(["0"] * 2304) + ",Training\n")
    launch(TrainRequest(model="cnn3", data=str(bad), name="crash", epochs=1, device="cpu"), root)
    wait_for_job(root / "crash", {"failed", "interrupted"})
    at = open_train()
    assert any("crash failed" in shown(e.value) and "label" in e.value for e in at.error)
    assert any("error" in c.value for c in at.code)
    if job_state(root / "crash")["state"] == "running":  # never, but do not leave a process behind
        stop(root / "crash")


def test_job_cards_newest_launch_first_with_their_outcome(setup):
    import json
    import os
    import socket

    from helpers import make_run

    _, root = setup
    for when, name in ((1000, "first_launched"), (2000, "last_launched")):  # by name, the first comes first
        make_run(root, name, {"state": "finished", "host": socket.gethostname()}, [0.4, 0.5], {"arch": "cnn3"})
        job = root / name / "job.json"
        job.write_text(json.dumps({"pid": 1, "command": ["python"], "devices": ["cpu"], "started": float(when)}))
        os.utime(job, (when, when))
    at = open_train()
    heads = [shown(m.value) for m in at.markdown if " · cnn3 · " in shown(m.value)]
    assert [h.split("**")[1] for h in heads] == ["last_launched", "first_launched"]
    assert "finished · best validation 50.0% (epoch 2)" in heads[0]


def test_a_job_stopped_before_it_trained_reads_stopped_and_says_there_is_nothing_to_resume(setup):
    from fer_models.runs.jobs import resumable

    data, root = setup
    launch(TrainRequest(model="cnn3", data=str(data), name="early", epochs=100_000, batch_size=16, device="cpu"), root)
    assert stop(root / "early", wait=60)  # at once: the trainer is still importing torch, no status written
    assert not (root / "early" / "status.json").exists() and not resumable(root / "early")
    state = job_state(root / "early")
    assert state["state"] == "stopped" and not state.get("error") and "nothing to resume" in state["note"]
    at = open_train()
    assert any("**early** · cnn3 · stopped" in shown(m.value) for m in at.markdown)
    assert not at.error and not any(b.label == "Resume" for b in at.button)
    assert any("nothing to resume" in i.value and "start it again" in i.value for i in at.info)


def test_the_started_banner_goes_when_its_job_has_ended(setup):
    data, root = setup
    at = fill(open_train(), data, "brief")
    by_label(at.button, "Start training").click().run()
    assert any("Started brief" in shown(s.value) for s in at.success)
    # under the button too (the card is a screen above it), once, with a link up to the card
    assert [shown(t.value) for t in at.toast] == ["Started brief"]
    below = [s.value for s in at.success if "its card is the first under" in s.value]
    assert below and "[Jobs](#jobs)" in below[0]
    at.run()
    assert not at.toast and not any("its card is the first under" in s.value for s in at.success)
    wait_for_job(root / "brief", {"finished", "failed"})
    at.run()
    assert not any("Started brief" in shown(s.value) for s in at.success)


def test_a_demo_run_says_why_it_has_no_split_to_evaluate(setup):
    import json
    import socket

    from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
    from helpers import make_run

    _, root = setup
    run = make_run(root, "demo", {"state": "finished", "host": socket.gethostname()}, [0.3], {"arch": "cnn3"})
    (run / "config.json").write_text(json.dumps({"args": {"model": "cnn3", "epochs": 1, "data": str(BUNDLED_PUBLICTEST),
                                                          "train_split": "PublicTest", "val_fraction": 0.1}}))
    (run / "job.json").write_text(json.dumps({"pid": 1, "command": ["python"], "devices": ["cpu"], "started": 1.0}))
    at = open_train()
    assert not any(b.label == "Evaluate" for b in at.button)
    assert any("is one it trained on" in c.value and "best validation accuracy" in c.value for c in at.caption)
    # the confusion page agrees: no "score it on PublicTest" for a run that trained on PublicTest
    said = [i.value for i in open_app("app_pages/confusion.py", "demo").info]
    assert said and "PublicTest would not test it: it trained on PublicTest" in said[0], said
    assert "--split PublicTest" not in said[0]


def test_a_jobs_bar_says_it_is_timing_its_first_steps_not_question_marks():
    from app_pages._shared import pace

    assert pace({"images_per_second": None, "eta_seconds": None}) == "timing its first steps"
    assert pace({"images_per_second": 181.4, "eta_seconds": 75}) == "181.4 images/s · about 1 min 15 s left"
    assert pace({"images_per_second": 90, "eta_seconds": 3 * 3600 + 5 * 60}) == "90 images/s · about 3 h 05 min left"


def test_an_evaluations_bar_says_the_faces_scored_and_the_time_left():
    from app_pages._evaluation_job import EvaluationJob

    clock = iter([100.0, 110.0])  # its first faces at 100 s, asked 10 s later
    job = EvaluationJob("tiny", ["PublicTest", "PrivateTest"], clock=lambda: next(clock))
    assert job.progress() == (0.0, "Evaluating tiny: starting, then reading the faces…")
    job.heard("PublicTest", 1000, 3000)
    share, words = job.progress()
    assert share == 1000 / 3000 / 2
    assert words == "Evaluating tiny on PublicTest (1 of 2): 1,000 of 3,000 faces scored, about 20 s left"


def test_the_train_page_reads_the_runs_folder_once_a_visit(setup, monkeypatch):
    """Each reading parses every run's history (16 ms for the shipped five); the page read it three times a
    visit, a tenth of a 30-user class's server time (py-spy)."""
    import app_pages._shared  # noqa: F401  (its cached listing for the run picker keeps its own reference)
    import fer_models.runs.registry as registry
    from helpers import make_run

    make_run(setup[1], "done", {"state": "finished"}, [0.3, 0.4])
    readings, real = [], registry.list_runs
    monkeypatch.setattr(registry, "list_runs", lambda root: readings.append(root) or real(root))
    at = open_train()
    assert len(readings) == 1 and "done" in by_label(at.selectbox, "Start from").options[1]
