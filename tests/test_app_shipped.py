"""Every page on the reference runs that ship in artifacts/runs (what a fresh clone opens on), with no
FER2013 on disk: the faces come from the bundled PublicTest split."""
import json

import pytest

from fer_models.runs.registry import list_runs
from helpers import ROOT, open_app, shown

SHIPPED = ROOT / "artifacts" / "runs"
RUNS = [r.name for r in list_runs(SHIPPED)]
PAGES = ["app_pages/history.py", "app_pages/architecture.py", "app_pages/confusion.py", "app_pages/mistakes.py",
         "app_pages/saliency.py",
         "app_pages/filters.py", "app_pages/webcam.py", "app_pages/train.py", "app_pages/learn.py",
         "app_pages/report.py", "app_pages/lesson.py", "app_pages/quiz.py", "app_pages/convolution.py"]


@pytest.fixture(autouse=True)
def shipped_runs(monkeypatch):
    monkeypatch.delenv("FER_STUDIO_RUNS", raising=False)  # the app's default: artifacts/runs


def test_reference_runs_ship_complete():
    assert RUNS, "artifacts/runs holds no reference run"
    for name in RUNS:
        run = SHIPPED / name
        for required in ("config.json", "history.csv", "status.json", "meta.json", "model.safetensors",
                         "eval/PublicTest/metrics.json", "eval/PublicTest/predictions.csv"):
            assert (run / required).exists(), f"{name}: {required} missing"
        assert not (run / "last.safetensors").exists()
        assert json.loads((run / "meta.json").read_text())["shipped"]
        assert json.loads((run / "status.json").read_text())["state"] == "finished"


def test_readme_table_is_the_one_the_run_folders_give():
    from fer_models.runs.registry import models_table
    assert models_table(SHIPPED) in (ROOT / "README.md").read_text(), \
        "README's models table is stale: fer-studio runs --readme README.md"


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_a_reference_run(run, page):
    at = open_app(page, run=run, state={"webcam_mode": "Snapshot"}, timeout=300)
    assert not at.error, [e.value for e in at.error]
    assert run in at.sidebar.selectbox[0].value


@pytest.mark.parametrize("run", RUNS)
def test_confusion_page_shows_the_shipped_evaluation_and_its_faces(run):
    metrics = json.loads((SHIPPED / run / "eval" / "PublicTest" / "metrics.json").read_text())
    at = open_app("app_pages/confusion.py", run=run)
    assert any(m.label == "Accuracy" and m.value == f"{metrics['accuracy']:.1%}" for m in at.metric)
    assert len(at.get("plotly_chart")) == 1


@pytest.mark.parametrize("run", RUNS)
def test_saliency_on_a_bundled_face_of_a_reference_run(run):
    at = open_app("app_pages/saliency.py", run=run, query={"face": "28709", "split": "PublicTest"})
    assert any(f"{run}** reads" in shown(m.value) for m in at.markdown)


@pytest.mark.parametrize("run", RUNS)
def test_mistakes_page_on_a_reference_run(run):
    import pandas as pd

    from fer_models.evaluation.mistakes import MODEL, mistake_table, votes_from_bundle
    predictions = pd.read_csv(SHIPPED / run / "eval" / "PublicTest" / "predictions.csv", dtype={"id": str})
    mistakes = mistake_table(predictions, votes_from_bundle(ROOT / "artifacts" / "data" / "fer2013_publictest.npz")[0])
    at = open_app("app_pages/mistakes.py", run=run, query={"true": "sad", "votes": MODEL})
    said = at.markdown[0].value
    assert f"gets **{len(mistakes):,} of 3,589** PublicTest faces wrong" in said
    assert f"On **{(mistakes['verdict'] == MODEL).sum():,}** of them" in said
    wanted = mistakes[(mistakes["true"] == 4) & (mistakes["verdict"] == MODEL)]
    assert any(f"**{len(wanted):,} faces**" in m.value for m in at.markdown)
    first = wanted.sort_values("confidence", ascending=False, kind="stable")["id"].iloc[0]
    cards = [c.value for c in at.caption if "· label" in c.value]
    assert cards[0].startswith(f"id {first} · label **sad**") and len(cards) == min(len(wanted), 12)
    assert at.query_params["true"] == "sad" and at.query_params["votes"] == MODEL
    assert at.dataframe[0].value.iloc[-1]["mistakes"] == len(wanted)  # the per-class table counts what is listed
    table = at.dataframe[0].value
    assert list(table["class"]) == ["sad", "all"]  # the filtered class alone: no other reads "N faces, 0 mistakes"
    assert table["share with the model"].str.fullmatch(r"\d+%").all(), list(table["share with the model"])
    assert any("the ten FER+ annotators' votes, one colour per class" in h.proto.body for h in at.get("html"))


def test_a_shipped_runs_scores_say_that_publictest_picked_its_epoch():
    """Every shipped run validated on PublicTest: its scores there are validation scores, and the pages say so."""
    for page in ("app_pages/confusion.py", "app_pages/mistakes.py"):
        at = open_app(page, run="resnet10_fer")
        assert any("PublicTest is **validation** for resnet10\\_fer" in c.value for c in at.caption), page
    for run in ("cnn3", "densenet201_fer", "resnet10_fer"):
        metrics = json.loads((SHIPPED / run / "eval" / "PublicTest" / "metrics.json").read_text())
        assert metrics["precision"] in ("fp32", "bf16")  # every evaluation says what it was scored in


@pytest.mark.parametrize("name", RUNS)
def test_history_says_what_training_cost_as_the_readme_does(name):
    from fer_models.runs.folder import RunFolder
    from fer_models.runs.registry import training_cost

    cost = training_cost(RunFolder(SHIPPED / name).meta(), RunFolder(SHIPPED / name).config())
    at = open_app(None, run=name)
    said = next(c.value for c in at.caption if c.value.startswith("Training took"))
    assert f"{cost['hours']:.1f} h in {cost['sittings']} sitting" in said
    assert f"{cost['core_hours']:.1f} core-hours" in said and f"{cost['images_per_second']:.0f} training images" in said
    readme = (ROOT / "README.md").read_text()
    assert f"| {cost['images_per_second']:.0f} |" in readme.split(f"| {name} |")[1].split("\n")[0] + " |"


def test_filters_says_why_a_late_densenet_layers_maps_are_one_cell_before_drawing_them(quick_patterns):
    """Below 32 tiles the explanation was off a 720-px screen: it comes first."""
    at = open_app("app_pages/filters.py", run="densenet201_fer", timeout=300)
    at.selectbox(key="filters_layer_densenet201_fer").set_value("features.denseblock4.denselayer1.conv2").run()
    assert not at.exception, at.exception
    maps_tab = at.tabs[1]
    order = [type(e).__name__ + ":" + (e.value if isinstance(getattr(e, "value", None), str) else "")
             for e in maps_tab]
    said = next(i for i, e in enumerate(order) if "Each map is one cell" in e)
    drawn = next(i for i, e in enumerate(order) if e.startswith(("Image", "UnknownElement")))
    assert said < drawn, order


def test_back_moves_the_widgets_that_keep_their_state_with_the_url():
    """A keyed widget outlived Back: the URL went back, the page wrote the widget's choice over it again. And
    Mistakes' page box, made anew from the URL each run, lost every other click on +."""
    at = open_app("app_pages/mistakes.py", run="cnn3")
    for wanted in (2, 3, 4):
        at.number_input(key="mistakes_page").increment().run()
        assert at.number_input(key="mistakes_page").value == wanted and at.query_params["page"] == str(wanted)
    at.query_params["page"] = "3"  # Back
    at.run()
    assert at.number_input(key="mistakes_page").value == 3 and at.query_params["page"] == "3"
    at.switch_page("app_pages/convolution.py").run()
    first = at.selectbox(key="conv_layer").value
    at.selectbox(key="conv_layer").select("block3.conv").run()
    assert at.query_params["layer"] == "block3.conv"
    at.query_params["layer"] = first  # Back
    at.run()
    assert at.selectbox(key="conv_layer").value == first and at.query_params["layer"] == first
    at.switch_page("app_pages/lesson.py").run()
    at.sidebar.toggle(key="lesson_presenter").set_value(True).run()
    assert at.query_params["presenter"] == "1"
    at.query_params.pop("presenter")  # Back
    at.run()
    assert not at.sidebar.toggle(key="lesson_presenter").value and "presenter" not in at.query_params
