"""Each piece of jargon the pages show is explained, in one plain sentence from fer_models.teaching.glossary, in
the tooltip of the first widget or metric that names it (issue 35, item 16)."""
import pytest

from fer_models.teaching.glossary import GLOSSARY
from helpers import open_app


@pytest.fixture
def runs(small_runs):
    return small_runs


def help_of(elements, label):
    [element] = [e for e in elements if e.label.startswith(label)]
    return element.help or ""


# page, the kind of element, its label, the terms its tooltip explains
WHERE = [("architecture", "metric", "Mult-adds per face", ["mult-adds"]),
         ("confusion", "metric", "Top-2 accuracy", ["top-2 accuracy"]),
         ("confusion", "metric", "Macro F1", ["macro F1"]),
         ("confusion", "metric", "Calibration (ECE)", ["ECE"]),
         ("saliency", "selectbox", "Method", ["Grad-CAM"]),
         ("webcam", "toggle", "Grad-CAM overlay", ["Grad-CAM"]),  # opened in snapshot mode (no WebRTC here)
         ("learn", "number_input", "temperature T", ["logit"]),
         ("train", "number_input", "Weight EMA", ["EMA"])]


def test_every_term_is_explained_where_a_page_first_names_it(runs):
    assert {term for *_, terms in WHERE for term in terms} == set(GLOSSARY)  # no term unexplained, none unused
    for page in dict.fromkeys(page for page, *_ in WHERE):
        at = open_app(f"app_pages/{page}.py", run="small",
                      state={"webcam_mode": "Snapshot", "math_tab": "Softmax and cross-entropy"})
        for _, kind, label, terms in (w for w in WHERE if w[0] == page):
            tip = help_of(getattr(at, kind), label)
            assert all(GLOSSARY[term] in tip for term in terms), f"{page}: {label!r} has the tooltip {tip!r}"


def test_the_architecture_tables_mult_adds_column_is_explained(runs):
    import json

    at = open_app("app_pages/architecture.py", run="small")
    [table] = [d for d in at.dataframe if "mult-adds" in d.value.columns]
    assert json.loads(table.proto.columns)["mult-adds"]["help"] == GLOSSARY["mult-adds"]


def test_the_architecture_findings_grad_cam_is_explained():
    """densenet201_fer's finding that only some cells of a map reach the scores names Grad-CAM."""
    at = open_app("app_pages/architecture.py", run="densenet201_fer")
    [said] = [m for m in at.markdown if "Grad-CAM" in m.value]
    assert said.help == GLOSSARY["Grad-CAM"]


def test_the_figures_a_class_reads_are_explained_in_sight_not_only_on_hover(runs):
    for page, terms in (("confusion", ["macro F1", "top-2 accuracy", "ECE"]), ("architecture", ["mult-adds"])):
        at = open_app(f"app_pages/{page}.py", run="small")
        captions = " ".join(c.value for c in at.caption)
        assert all(GLOSSARY[term] in captions for term in terms), page
