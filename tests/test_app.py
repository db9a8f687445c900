"""The dashboard rendered headless with Streamlit's AppTest, on hand-made run folders."""
import os
import socket

import pytest

from fer_models.core.constants import EMOTIONS
from helpers import ROOT, make_run, open_app, shown


@pytest.fixture
def runs(tmp_path, monkeypatch):
    host = socket.gethostname()
    make_run(tmp_path, "cnn3_ref", {"state": "finished", "host": host}, [0.41, 0.55, 0.52],
             {"arch": "cnn3", "metrics": {"val_acc": 0.55}})
    make_run(tmp_path, "dense", {"state": "failed", "host": host, "error": "bad.csv: line 9: unknown label"},
             meta={"arch": "densenet201_fer"})
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    return tmp_path


def table_with(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_architecture_page_lists_every_layer(runs):
    at = open_app("app_pages/architecture.py")
    assert at.title[0].value == "Architecture"
    assert at.sidebar.selectbox[0].value == "cnn3_ref"
    assert [m.value for m in at.metric][:3] == ["5.39 M", "133.5 M", "18"]
    table = table_with(at, "output shape")
    assert len(table) == 18 and table["output shape"].iloc[0] == "64×48×48"
    assert at.query_params["run"] == "cnn3_ref"
    assert any("nothing is computed for nothing" in c.value for c in at.caption)


def test_run_from_the_url_is_selected(runs):
    at = open_app("app_pages/architecture.py", run="dense")
    assert at.sidebar.selectbox[0].value == "dense"
    assert len(table_with(at, "output shape")) == 619  # densenet201_fer's leaf layers


def test_an_unknown_run_in_the_url_is_said_and_the_shown_one_named(runs):
    """An old or mistyped link opened another run's numbers without a word."""
    for asked in ("gone", "../../etc", "x" * 5000):
        at = open_app(None, run=asked)  # the page the link opens (open_app's switch to another is a second run)
        assert at.sidebar.selectbox[0].value == "cnn3_ref" and at.query_params["run"] == "cnn3_ref"
        said = [shown(w.value) for w in at.warning]
        assert len(said) == 1 and f"No run named '{asked[:60]}" in said[0] and "showing cnn3_ref instead" in said[0]
        assert len(said[0]) < 200
    at = open_app(None, run="dense")
    assert not at.warning
    at.sidebar.selectbox[0].select("cnn3_ref").run()  # the URL now names a run: nothing more to say
    assert not at.warning


def test_a_run_picked_by_a_button_is_not_also_given_by_the_index(runs, monkeypatch):
    """Webcam's "Switch to" sets the picker's value; the picker passed its index as well, and Streamlit logged a
    warning of a widget given a value two ways."""
    import streamlit.elements.widgets.selectbox as selectbox

    given, real = [], selectbox.check_widget_policies

    def spy(dg, key, *args, default_value=None, **kwargs):
        given.append((key, default_value))
        return real(dg, key, *args, default_value=default_value, **kwargs)
    monkeypatch.setattr(selectbox, "check_widget_policies", spy)
    at = open_app(None, state={"run_name": "dense"})  # set as the button's callback sets it, index 1
    assert at.sidebar.selectbox[0].value == "dense" and ("run_name", None) in given
    assert [g for g in given if g[0] == "run_name" and g[1] is not None] == []
    gone = open_app(None, state={"run_name": "deleted since"})
    assert gone.sidebar.selectbox[0].value == "cnn3_ref" and not gone.exception


def test_a_page_that_stops_early_still_names_its_run_in_the_url(runs):
    """Once a page calls st.stop, Streamlit sends nothing more: the URL written as the run ended was lost, and the
    Quiz (which stops on a run with no evaluation) never named its run."""
    at = open_app(None)
    at.query_params.pop("run", None)
    at.switch_page("app_pages/quiz.py").run()
    assert any("has no evaluation" in i.value for i in at.info)  # it stopped there
    assert at.query_params["run"] == "cnn3_ref"
    pages = ROOT / "app_pages"
    stopped = [f.name for f in pages.glob("*.py") if "st.stop()" in f.read_text() and f.name != "_shared.py"]
    assert stopped == [], f"{stopped}: stop through _shared.stop_page, which writes the URL first"


def test_architecture_says_what_the_seed_densenet_never_uses(runs):
    at = open_app("app_pages/architecture.py", run="dense")
    said = " ".join(m.value for m in at.markdown)
    assert "1,048,576 weights never get a gradient" in said and "(5.1%) can never train" in said
    assert "`features.transition3.pool`" in said and "4 of the 9 cells" in said
    unused = table_with(at, "weights never trained")  # opens on the layers with a finding: 32 dead convs,
    # transition3.pool, and the 4 layers of 3x3 maps with dead cells
    assert len(unused) == 32 + 1 + 4 and unused["weights never trained"].sum() == 1_048_576


def test_history_page_draws_curves(runs):
    at = open_app(None)
    assert at.title[0].value == "Training history"
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    assert at.get("download_button")


def test_history_curves_are_built_once_for_every_session_until_the_history_changes(runs, monkeypatch):
    """Built and restyled through plotly's validation the curves took 55 ms a visit, and a class opens them
    thirty times at once: one figure per history.csv version serves every session."""
    import fer_models.teaching.figures as figures

    built, real = [], figures.history_figure
    monkeypatch.setattr(figures, "history_figure", lambda histories: built.append(1) or real(histories))
    for _ in range(2):  # two sessions
        assert len(open_app(None).get("plotly_chart")) == 1
    assert len(built) == 1
    history = runs / "cnn3_ref" / "history.csv"
    os.utime(history, ns=(history.stat().st_atime_ns, history.stat().st_mtime_ns + 10**9))  # a new epoch written
    assert len(open_app(None).get("plotly_chart")) == 1 and len(built) == 2


def test_history_page_explains_a_run_without_epochs(runs):
    at = open_app(None, run="dense")
    assert any("failed before its first epoch" in i.value and "line 9" in i.value for i in at.info)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("page", [None, "app_pages/architecture.py", "app_pages/confusion.py",
                                  "app_pages/mistakes.py", "app_pages/saliency.py", "app_pages/filters.py",
                                  "app_pages/webcam.py", "app_pages/report.py"])
def test_no_runs_says_how_to_make_one(tmp_path, monkeypatch, page):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "empty"))
    at = open_app(page)
    assert any("fer-studio train" in i.value for i in at.info)


@pytest.fixture
def evaluated(tmp_path, monkeypatch):
    from helpers import make_evaluated_run
    make_evaluated_run(tmp_path / "runs")
    make_run(tmp_path / "runs", "not_evaluated", {"state": "finished"}, [0.3], {"arch": "cnn3"})
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_confusion_page_shows_matrix_metrics_and_pairs(evaluated):
    import json
    metrics = json.loads((evaluated / "evaluated" / "eval" / "PublicTest" / "metrics.json").read_text())
    at = open_app("app_pages/confusion.py", run="evaluated")
    assert at.title[0].value == "Confusion matrix"
    assert at.selectbox[0].value == "PublicTest"
    assert at.metric[0].value == f"{metrics['accuracy']:.1%}"
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    assert table["faces"].sum() == 35 and list(table["class"])[3] == "happy"
    assert any("Most confused" in m.value for m in at.markdown)
    # a clicked cell's faces take the side column: its four figures stay above them in one line
    clicked = open_app("app_pages/confusion.py", run="evaluated", query={"cell": "happy,happy"})
    line = next(c.value for c in clicked.caption if c.value.startswith("Accuracy"))
    assert f"Accuracy **{metrics['accuracy']:.1%}**" in line and "top-2 **" in line and "ECE **" in line


def test_a_backtick_in_a_runs_name_cannot_close_the_evaluate_commands_code(evaluated):
    """The command sat in a Markdown code span: a backtick in the folder's name ended it, and the link after it was
    live."""
    name = "x`[a](javascript:alert(1))`"
    make_run(evaluated, name, {"state": "finished"}, [0.3], {"arch": "cnn3"})
    at = open_app("app_pages/confusion.py", run=name)
    assert not any("](" in e.value for e in [*at.info, *at.markdown, *at.caption])  # escaped where Markdown
    assert any(name in c.value and c.value.startswith("fer-studio evaluate --run '") for c in at.code)


def test_an_unknown_split_in_the_url_is_said_and_a_known_one_opens(evaluated):
    """An old link's ?split= showed PublicTest without a word (Confusion kept the bogus name in its URL, Mistakes
    replaced it silently)."""
    import shutil

    shutil.copytree(evaluated / "evaluated" / "eval" / "PublicTest", evaluated / "evaluated" / "eval" / "Mine")
    for page in ("confusion", "mistakes"):
        at = open_app(f"app_pages/{page}.py", run="evaluated", query={"split": "Bogus"})
        said = [shown(w.value) for w in at.warning]
        assert any("evaluated has no evaluation of 'Bogus': showing PublicTest" in w for w in said), (page, said)
        assert at.query_params["split"] == "PublicTest"
        at = open_app(f"app_pages/{page}.py", run="evaluated", query={"split": "Mine"})
        assert not at.warning and at.query_params["split"] == "Mine"
        assert "Mine" in [s.value for s in at.selectbox if s.label == "Evaluation"]


def test_confusion_page_without_evaluation_says_how(evaluated):
    at = open_app("app_pages/confusion.py", run="not_evaluated")
    assert any("has no evaluation yet" in i.value for i in at.info)
    assert any(c.value.startswith("fer-studio evaluate --run ") for c in at.code)


def test_architecture_diagrams(runs):
    at = open_app("app_pages/architecture.py")
    assert len(at.get("graphviz_chart")) == 0  # cnn3: the chain of blocks only, no dense block
    assert any("cnn3_ref" in shown(c.value) for c in at.caption)  # the page names the run
    at = open_app("app_pages/architecture.py", run="dense")
    assert len(at.get("graphviz_chart")) == 0  # drawn on request
    at.toggle(key="draw_dense_block").set_value(True).run()
    assert len(at.get("graphviz_chart")) == 1
    assert at.selectbox[0].value == "features.denseblock1"


def test_run_labels_name_the_model_once():
    from dataclasses import replace
    from pathlib import Path

    from app_pages._shared import describe, run_details
    from fer_models.runs.registry import RunSummary
    run = RunSummary("resnet10_fer", Path("r"), "resnet10_fer", "finished", 0.6428, 20, 20, 20)
    assert describe(run) == "resnet10_fer · 64.3%"  # finished, the settled state, goes under the picker
    assert run_details(run) == "Finished · 20/20 epochs · best validation 64.3% (epoch 20)"  # the picker's figure
    other = RunSummary("mine", Path("m"), "cnn3", "running", None, None, 0, 5)
    assert describe(other) == "mine · cnn3 · no epoch yet · running"
    assert describe(replace(run, name="resnet10_fer_long")) == "resnet10_fer_long · 64.3%"  # named for its model
    assert run_details(other) == "Running · 0/5 epochs"


def test_app_opens_on_the_most_accurate_finished_run(runs):
    make_run(runs, "z_best", {"state": "finished", "host": socket.gethostname()}, [0.5, 0.7], {"arch": "cnn3"})
    at = open_app(None)
    assert at.sidebar.selectbox[0].value == "z_best"
    assert at.query_params["run"] == "z_best"


def test_mistakes_page_without_votes_and_against_a_second_run(evaluated):
    import shutil

    import pandas as pd
    shutil.copytree(evaluated / "evaluated", evaluated / "twin")
    other = evaluated / "twin" / "eval" / "PublicTest" / "predictions.csv"
    table = pd.read_csv(other, dtype={"id": str})
    wrong = table.index[table["true"] != table["pred"]]
    table.loc[wrong[:3], "pred"] = table.loc[wrong[:3], "true"]  # the twin gets three of those faces right
    table.to_csv(other, index=False)
    at = open_app("app_pages/mistakes.py", run="evaluated")
    assert "No FER+ votes are available" in at.markdown[0].value
    at = open_app("app_pages/mistakes.py", run="evaluated", query={"with": "twin", "set": "only first"})
    radio = at.radio[0]
    assert radio.value == "only first" and "(3)" in radio.format_func("only first")
    cards = [c.value for c in at.caption if "· label" in c.value]
    assert len(cards) == 3 and all(c.split(" · ")[0].removeprefix("id ") in set(table.loc[wrong[:3], "id"])
                                   for c in cards)
    assert all(c.splitlines()[-1].startswith("twin: **") for c in cards)  # the other run last, after "then"
    assert all(c.splitlines()[-1].endswith("%") for c in cards)  # with its confidence, as the first run's
    assert not at.exception
    # with a class chosen, every set's count, the faces listed and the per-class table follow it
    ours = pd.read_csv(evaluated / "evaluated" / "eval" / "PublicTest" / "predictions.csv", dtype={"id": str})
    both = set(ours.loc[ours["true"] != ours["pred"], "id"]) & set(table.loc[table["true"] != table["pred"], "id"])
    true = int(ours.loc[ours["id"].isin(both), "true"].mode()[0])
    expected = int((ours["id"].isin(both) & (ours["true"] == true)).sum())
    assert 0 < expected < len(both)
    at = open_app("app_pages/mistakes.py", run="evaluated", query={"with": "twin", "set": "both",
                                                                    "true": EMOTIONS[true]})
    assert f"wrong for both ({expected})" == at.radio[0].format_func("both")
    assert any(f"**{expected} faces**" in m.value for m in at.markdown)
    summary = at.dataframe[0].value
    assert summary.iloc[-1]["mistakes"] == expected and summary["mistakes"].iloc[:-1].sum() == expected
    # the chosen class's row and the total: no other class reads "N faces, 0 mistakes", as if it were perfect
    assert list(summary["class"]) == [EMOTIONS[true], "all"]
    assert summary.iloc[-1]["faces"] == summary.iloc[0]["faces"] == (ours["true"] == true).sum()  # not all 35
    assert (summary["share with the model"] == "—").all()  # no votes here: "—", never "None"


def test_mistakes_page_without_evaluation_says_how(evaluated):
    at = open_app("app_pages/mistakes.py", run="not_evaluated")
    assert any("has no evaluation yet" in i.value for i in at.info)
    assert any(c.value.startswith("fer-studio evaluate --run ") for c in at.code)
