"""The Learn pages rendered headless (AppTest): the math checks hold as inputs change; the report exports."""
import re

import pytest

from helpers import open_app, shown

SAME = r"\((exactly the same|the same within \S+, float rounding)\)"  # what the page says when they agree


@pytest.fixture
def runs(small_runs):
    return small_runs


def by_label(widgets, label):
    return next(w for w in widgets if w.label == label)


def open_tab(at, name: str):
    at.session_state["math_tab"] = name
    return at.run()


def test_math_page_checks_hold_with_no_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "empty"))
    at = open_app("app_pages/learn.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Formula"] == "1 × 64 × 24 × 24" == metrics["nn.Conv2d returns"]
    equations = len(at.get("latex"))
    # only the open tab is drawn
    assert equations >= 3 and not at.success and "values per channel m" not in [n.label for n in at.number_input]
    for tab in ("Batch normalisation", "Softmax and cross-entropy"):
        open_tab(at, tab)
        assert not at.exception and "Formula" not in [m.label for m in at.metric]
        assert len(at.success) == 1 and "the derivation holds" in at.success[0].value
        equations += len(at.get("latex"))
    assert equations >= 15
    assert any("made-up example" in c.value for c in at.caption)


def test_conv_calculator_flags_the_naive_formula_and_refuses_a_kernel_too_big(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "empty"))
    at = open_app("app_pages/learn.py")
    by_label(at.number_input, "kernel k").set_value(2).run()
    by_label(at.number_input, "padding p").set_value(0).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Formula"] == "1 × 64 × 24 × 24" and metrics["Naive (H + 2p − (k − 1)) / s"] == "23.5 × 23.5"
    assert any("floor is missing" in c.value for c in at.caption)
    by_label(at.number_input, "kernel k").set_value(60).run()
    assert not at.exception
    assert any("more padding" in e.value for e in at.error)


def test_the_walk_mentions_dense_blocks_only_for_a_model_that_has_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "empty"))
    at = open_app("app_pages/learn.py")
    for arch, said in (("densenet201_fer", True), ("resnet10_fer", False)):
        by_label(at.selectbox, "Model").set_value(arch).run()
        walk = next(c.value for c in at.caption if c.value.startswith(f"Every conv and pooling layer of {arch}"))
        assert ("outside its dense blocks" in walk) is said, walk


def test_degenerate_and_single_value_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "empty"))
    at = open_tab(open_app("app_pages/learn.py"), "Batch normalisation")
    by_label(at.toggle, "All values equal").set_value(True).run()
    assert not at.exception and len(at.success) == 1
    assert any("every y = 0.2 (= β)" in m.value for m in at.markdown)
    by_label(at.number_input, "values per channel m").set_value(1).run()
    assert any("refuses this batch" in w.value for w in at.warning)


def test_temperature_demo_uses_the_runs_logits_by_face_id(runs):
    import pandas as pd

    from fer_models.core.constants import EMOTIONS
    predictions = pd.read_csv(runs / "small" / "eval" / "PublicTest" / "predictions.csv", dtype={"id": str})
    top = predictions[[f"p_{e}" for e in EMOTIONS]].max(axis=1)
    unsure = predictions["id"][(top - 0.6).abs().idxmin()]
    at = open_tab(open_app("app_pages/learn.py", run="small"), "Softmax and cross-entropy")
    assert any(f"small on PublicTest face {unsure} " in c.value for c in at.caption)  # the least sure by default
    face = next(t for t in at.text_input if t.label.startswith("Face id (small's PublicTest predictions: 100–134)"))
    face.set_value("103").run()
    assert any("small on PublicTest face 103 " in c.value for c in at.caption)
    face.set_value("12").run()
    assert any("No PublicTest face has id '12'" in shown(w.value) for w in at.warning)
    by_label(at.slider, "T").set_value(5.0).run()
    assert not at.exception


def test_walk_a_model_follows_the_sidebar(runs):
    at = open_app("app_pages/learn.py", run="small")
    assert next(s for s in at.selectbox if s.label == "Model").value == "cnn3"


def test_report_page_exports_a_report(runs):
    at = open_app("app_pages/report.py", run="small", timeout=300)
    assert not at.get("download_button")
    by_label(at.slider, "Faces per class in the saliency section").set_value(1)
    by_label(at.slider, "Filters in the filters section").set_value(1)
    at.run()
    assert any("--faces-per-class 1 --filters 1" in c.value for c in at.code)
    by_label(at.button, "Export report").click().run()
    assert not at.exception and not at.error
    downloads = at.get("download_button")
    assert len(downloads) == 1 and "small_report.html" in downloads[0].proto.label


def test_report_page_with_no_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "empty"))
    at = open_app("app_pages/report.py")
    assert any("fer-studio train" in i.value for i in at.info)


def test_convolution_page_agrees_with_the_forward_pass_on_every_layer(runs):
    at = open_app("app_pages/convolution.py", run="small")
    assert any(re.search(SAME, s.value) for s in at.success)
    assert any("reads input rows" in c.value for c in at.caption)
    layers = at.selectbox(key="conv_layer")
    names = [option.split(":")[0] for option in layers.options]
    assert layers.value == names[0]
    for layer in names[1:]:
        at.selectbox(key="conv_layer").set_value(layer).run()
        assert not at.exception and not at.error
        assert any(re.search(SAME, s.value) for s in at.success), layer
        # past the first conv the sum runs over input channels, the biggest contributors offered first
        assert at.radio(key=f"conv_{layer}_in").options
    assert layer in at.query_params["layer"]


def test_convolution_opens_on_the_cell_where_the_filter_responds_most(runs):
    """It opened on the centre cell, often 0 after the ReLU: "+0.00000 (exactly the same)" was the first thing a
    class saw."""
    import numpy as np

    from app_pages._convolution_view import strongest_cell

    plane = np.zeros((5, 6), np.float32)
    assert strongest_cell(plane) == (2, 3)  # nothing fires: the centre
    plane[4, 1] = 0.7
    assert strongest_cell(plane) == (4, 1)
    at = open_app("app_pages/convolution.py", run="small")
    said = next(c.value for c in at.caption if "click a cell" in c.value)
    assert re.search(r"now row \d+, column \d+, where it responds most", said), said


def test_convolution_keeps_its_filter_in_the_url(runs):
    at = open_app("app_pages/convolution.py", run="small", query={"filter": "3"})
    assert at.number_input(key="conv_channel").value == 3 and at.query_params["filter"] == "3"
    at.number_input(key="conv_channel").set_value(5).run()
    assert at.query_params["filter"] == "5"
    for odd, expected in (("-2", 0), ("x", 0), ("9" * 5000, 0), ("999999", 63)):  # cnn3's first layer: 64 filters
        at = open_app("app_pages/convolution.py", run="small", query={"filter": odd})
        assert not at.exception and at.number_input(key="conv_channel").value == expected, odd


def test_convolution_page_refuses_an_unknown_layer_in_the_url(runs):
    at = open_app("app_pages/convolution.py", run="small", query={"layer": "../../etc"})
    layers = at.selectbox(key="conv_layer")
    assert layers.value == layers.options[0].split(":")[0] and not at.exception


def test_an_architecture_row_and_the_math_page_open_one_convolution_on_their_layer(runs):
    from urllib.parse import parse_qsl, urlsplit

    at = open_app("app_pages/architecture.py", run="small")
    table = next(d.value for d in at.dataframe if "by hand" in d.value.columns)
    link = table.loc[table["layer"] == "block2.conv", "by hand"].item()
    assert table.loc[table["type"] != "Conv2d", "by hand"].eq("").all()
    page, query = urlsplit(link).path, dict(parse_qsl(urlsplit(link).query))
    assert page == "convolution" and query == {"run": "small", "layer": "block2.conv"}
    at = open_app("app_pages/convolution.py", query=query)
    assert at.selectbox(key="conv_layer").value == "block2.conv"
    math = open_app("app_pages/learn.py", run="small")
    assert any("first conv, computed by hand" in str(p.proto) for p in math.get("page_link"))
