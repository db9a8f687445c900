"""Property: whatever a run folder holds (missing, empty, truncated, garbage or wrongly typed files of every
kind in the contract), listing and summarising runs, the runs CLI, the launcher's view and every dashboard
page never raise, report the bad run by name, and keep showing the good run beside it."""
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fer_models.runs import registry as runs_module
from fer_models.runs.jobs import job_state, recipe_of
from fer_models.runs.registry import list_runs, models_table
from helpers import make_evaluated_run

VALID = {
    "config.json": json.dumps({"args": {"model": "cnn3", "epochs": 3, "data": "/x/fer2013.csv"}, "world_size": 1}),
    "status.json": json.dumps({"state": "finished", "pid": 12, "epoch": 3, "step": 0, "heartbeat": 1.5}),
    "history.csv": "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,1.2,0.4,1.3,0.45,0.01,3.0\n",
    "meta.json": json.dumps({"arch": "cnn3", "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise",
                                                         "neutral"], "normalisation": {"mean": 0.5, "std": 0.25},
                             "metrics": {"val_acc": 0.45, "best_epoch": 1}}),
    "job.json": json.dumps({"pid": 12, "command": ["python"], "devices": ["cpu"]}),
    "eval/PublicTest/metrics.json": json.dumps({"split": "PublicTest", "accuracy": 0.5}),
    "eval/PublicTest/predictions.csv": "id,true,pred\n1,3,3\n",
}
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=3), max_leaves=8)


def file_forms(name: str):
    valid = VALID[name]
    forms = [st.just(None), st.just(""), st.integers(1, max(1, len(valid) - 1)).map(lambda n: valid[:n]),
             st.binary(max_size=40).map(lambda b: b.decode("latin-1")), st.just(valid)]
    if name.endswith(".json"):
        base = json.loads(valid)
        forms.append(json_values.map(json.dumps))
        forms.append(st.sampled_from(sorted(base)).flatmap(  # one known key with a value of the wrong kind
            lambda key: json_values.map(lambda v: json.dumps({**base, key: v}))))
    return st.one_of(forms)


run_folders = st.fixed_dictionaries({name: file_forms(name) for name in VALID})


def write_run(path: Path, files: dict) -> None:
    path.mkdir(parents=True)
    for name, text in files.items():
        if text is not None:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text, encoding="utf-8", errors="surrogateescape")


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return make_evaluated_run(tmp_path_factory.mktemp("good"), "good")


@contextmanager
def root_with(good: Path, files: dict):
    """A runs root holding a copy of the good run and the odd one (hypothesis runs many examples in one test,
    so each gets a folder of its own, removed after)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(good, root / "good")
        write_run(root / "odd", files)
        yield root


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=run_folders)
def test_listing_summarising_and_the_cli_never_raise(good_run, files, capsys):
    with root_with(good_run, files) as root:
        check_listing(root, capsys)


def check_listing(root: Path, capsys) -> None:
    found = {r.name: r for r in list_runs(root)}
    assert found["good"].state == "finished" and found["good"].evaluations == ["PublicTest"]
    odd = found.get("odd")
    if odd is not None and odd.state == "unreadable":
        assert odd.error.startswith("run odd: ")
    table = models_table(root)
    assert "| good | cnn3 |" in table
    assert runs_module.main(["--root", str(root)]) == 0
    err = capsys.readouterr().err
    assert (odd is not None and odd.state == "unreadable") == ("run odd:" in err)
    job_state(root / "odd")
    assert isinstance(recipe_of(root / "odd"), dict)


PAGES = ["app_pages/history.py", "app_pages/architecture.py", "app_pages/confusion.py", "app_pages/saliency.py",
         "app_pages/filters.py", "app_pages/train.py", "app_pages/report.py", "app_pages/learn.py"]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=run_folders)
def test_every_page_opens_on_the_odd_run_and_beside_it(good_run, files, monkeypatch):
    from helpers import open_app

    with root_with(good_run, files) as root:
        monkeypatch.setenv("FER_STUDIO_RUNS", str(root))
        at = open_app(run="odd")  # asserts that no exception box is drawn
        for page in PAGES:  # walked as a user does, in one session
            at.switch_page(page).run()
            assert not at.exception, (page, at.exception)
        open_app("app_pages/train.py", run="good")
