"""The Saliency and Filters pages rendered headless (AppTest) on a small evaluated run."""
import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from helpers import face_photo, make_evaluated_run, make_run, open_app, shown, wait_for


@pytest.fixture
def runs(tmp_path, monkeypatch, small_bundle):
    import shutil
    small = make_evaluated_run(tmp_path / "runs", "small")
    shutil.copytree(small, tmp_path / "runs" / "unevaluated", ignore=shutil.ignore_patterns("eval"))
    make_run(tmp_path / "runs", "no_weights", {"state": "running", "pid": 1}, [0.3], {"arch": "cnn3"})
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def open_page(page, run="small", **options) -> AppTest:
    return open_app(page, run, **options)


def photo_bytes(fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(face_photo()).save(buf, fmt)
    return buf.getvalue()


def test_saliency_on_a_linked_face_of_the_evaluated_data(runs):
    """Arriving from a confusion-matrix face (?face=ID&split=PublicTest): that face of the data the
    evaluation scored (here the synthetic faces 100-134), its label, the probabilities and a map."""
    at = open_page("app_pages/saliency.py", query={"face": "102", "split": "PublicTest"})
    assert at.radio(key="face_source").value == "Dataset"
    assert at.text_input(key="face_id").value == "102"
    assert "Face id (100–134)" == at.text_input(key="face_id").label
    assert "PublicTest face" in at.text_input(key="face_id").help  # the split, where the label has no room
    from fer_models.core.constants import EMOTIONS
    assert f"the dataset says **{EMOTIONS[2]}**" in at.markdown[0].value  # synthetic labels cycle 0..6
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("image")) >= 3  # what the model sees, the overlay, the map alone


def test_a_run_that_trained_on_the_faces_offered_says_so(runs):
    """The quick demo trains on the bundled PublicTest faces, the very faces Saliency and Filters offer: what it
    makes of them is no sign of how it reads a new face."""
    import json
    import shutil

    shutil.copytree(runs / "unevaluated", runs / "demo")
    (runs / "demo" / "config.json").write_text(json.dumps({"args": {"model": "cnn3", "train_split": "PublicTest",
                                                                    "val_fraction": 0.1}}))
    for page in ("saliency", "filters"):
        said = [shown(c.value) for c in open_page(f"app_pages/{page}.py", "demo").caption]
        assert any(c.startswith("demo trained on these PublicTest faces") for c in said), (page, said)
    (runs / "unevaluated" / "config.json").write_text(json.dumps({"args": {"model": "cnn3"}}))  # on Training
    assert not any("trained on these" in c.value for c in open_page("app_pages/saliency.py", "unevaluated").caption)


def test_a_linked_split_with_no_faces_here_is_said(runs):
    """?split=PrivateTest on a run with no such evaluation showed a PublicTest face without a word."""
    at = open_page("app_pages/saliency.py", run="unevaluated", query={"face": "28711", "split": "PrivateTest"})
    said = [shown(w.value) for w in at.warning]
    assert said == ["No PrivateTest faces evaluated for unevaluated on this machine: these are the bundled "
                    "PublicTest faces."], said
    assert at.text_input(key="face_id").value == "28711" and len(at.get("plotly_chart")) == 1
    at = open_page("app_pages/saliency.py", run="unevaluated", query={"face": "28711"})
    assert not at.warning


def test_saliency_on_a_bundled_publictest_face(runs, small_bundle):
    with np.load(small_bundle) as z:
        labels, ids = z["labels"], z["ids"]
    at = open_page("app_pages/saliency.py", run="unevaluated", query={"face": "28711"})
    label = int(labels[2])
    from fer_models.core.constants import EMOTIONS
    assert f"the dataset says **{EMOTIONS[label]}**" in at.markdown[0].value
    at.selectbox(key="face_class").set_value("happy")
    at.run()
    happy = set(ids[labels == 3].tolist())
    assert at.text_input(key="face_id").value in happy  # a class filter moves the pick into that class
    at.button[0].click()
    at.run()
    assert not at.exception and at.text_input(key="face_id").value in happy


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_saliency_every_class_grid(runs, method):
    at = open_page("app_pages/saliency.py")
    at.selectbox(key="saliency_method").set_value(method)
    at.button_group(key="saliency_view").set_value("Every class")
    at.run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert (method == "integrated_gradients") == any("convergence delta" in c for c in captions)
    assert any("Red: evidence for the class" in c for c in captions)
    target = next(s for s in at.selectbox if s.label == "Class to explain")
    assert target.disabled  # every class is shown: picking one does nothing


def test_the_saliency_choices_are_in_the_url_and_a_reload_keeps_them(runs):
    """A reload or a shared link opened on Grad-CAM, one map, the predicted class and no compare, whatever was
    picked."""
    at = open_page("app_pages/saliency.py")
    target = next(s for s in at.selectbox if s.label == "Class to explain")
    other_class = target.options[-1]  # a class neither predicted nor true
    at = open_page("app_pages/saliency.py", query={"method": "saliency", "view": "one", "with": "unevaluated",
                                                   "class": other_class})
    assert not at.exception
    assert at.selectbox(key="saliency_method").value == "saliency"
    assert at.selectbox(key="saliency_compare").value == "unevaluated"
    assert next(s for s in at.selectbox if s.label == "Class to explain").value[0] == other_class
    at.button_group(key="saliency_view").set_value("Every class").run()
    assert {k: at.query_params[k] for k in ("method", "view", "with", "class")} == {
        "method": "saliency", "view": "every", "with": "unevaluated", "class": other_class}
    # each run's row names the method: its picker is under the rows, off the first screen
    assert [h.value.endswith(" · Gradient saliency") for h in at.subheader] == [True, True]
    import shutil

    from app_pages._shared import cached_runs

    shutil.copytree(runs / "unevaluated", runs / "twin")  # the same faces as its twin: the bundle's
    cached_runs.clear()
    at = open_page("app_pages/saliency.py", run="unevaluated", query={"with": "twin"})
    assert at.selectbox(key="saliency_compare").value == "twin"
    at.sidebar.selectbox[0].select("twin").run()  # the run compared becomes the run shown
    assert not at.exception and at.selectbox(key="saliency_compare").value is None and "with" not in at.query_params
    odd = open_page("app_pages/saliency.py", query={"method": "nope", "view": "nope", "with": "nope", "class": "x"})
    assert not odd.exception and odd.selectbox(key="saliency_method").value == "gradcam"
    assert odd.button_group(key="saliency_view").value == "One map"
    assert odd.selectbox(key="saliency_compare").value is None
    assert not {"method", "view", "with", "class"} & set(odd.query_params)  # the defaults: a link's URL as it was


def test_saliency_all_seven_methods_in_one_grid_and_the_view_kept_across_pages(runs):
    from fer_models.explain.attributions import METHODS

    at = open_page("app_pages/saliency.py")
    at.button_group(key="saliency_view").set_value("All seven methods").run()
    assert not at.exception
    titles = [shown(img.caption) for element in at.get("image") for img in element.proto.imgs]
    assert all(any(t.startswith(m.title) for t in titles) for m in METHODS.values()), titles
    assert sorted(t for t in titles if t.endswith("signed")) == ["dark-bright: unsigned", "red-blue: signed"]
    assert not any(c.value == m.caption for c in at.caption for m in METHODS.values())  # no one method's words
    assert at.selectbox(key="saliency_method").disabled
    at.switch_page("app_pages/filters.py").run()
    at.switch_page("app_pages/saliency.py").run()
    assert at.button_group(key="saliency_view").value == "All seven methods"


def test_saliency_opens_on_gradcam_and_names_the_runs_gradcam_layer(runs):
    """Grad-CAM first: the gradient map it opened on was a faint speckle on a projector."""
    at = open_page("app_pages/saliency.py")
    assert at.selectbox(key="saliency_method").value == "gradcam"
    assert any("Grad-CAM layer: `block3.relu`, 12×12 cells" in c.value for c in at.caption)
    assert not next(s for s in at.selectbox if s.label == "Class to explain").disabled
    from fer_models.core.constants import EMOTIONS

    # each class once: "predicted: angry", "true: angry" and "angry" named one class three times
    options = next(s for s in at.selectbox if s.label == "Class to explain").options
    assert sorted(o.split(": ")[-1] for o in options) == sorted(EMOTIONS), options
    assert options[0].startswith("predicted")
    at.selectbox(key="saliency_method").set_value("smoothgrad").run()
    at.switch_page("app_pages/filters.py").run()
    at.switch_page("app_pages/saliency.py").run()
    assert at.selectbox(key="saliency_method").value == "smoothgrad"  # kept across pages, as the face is


def test_saliency_on_an_uploaded_photo(runs):
    """The photo is decoded, its face found and cropped; what the model sees is shown."""
    at = open_page("app_pages/saliency.py", state={"_face_source": "Upload", "_upload": ("me.png", photo_bytes())})
    assert any("1 face found" in i.value for i in at.info)
    assert any("What the model sees" in (c.value or "") for c in at.caption) or at.get("image")
    assert "reads" in at.markdown[0].value and "dataset says" not in at.markdown[0].value


@pytest.mark.parametrize("data, words", [(b"", "empty file"), (b"%PDF-1.4 not a photo", "not an image"),
                                         (photo_bytes("JPEG")[:3000], "truncated or corrupt")])
def test_bad_uploads_get_a_message(runs, data, words):
    at = open_page("app_pages/saliency.py", state={"_face_source": "Upload", "_upload": ("bad.jpg", data)})
    assert any(words in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("plotly_chart")


def test_photo_without_a_face_is_announced(runs):
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (120, 130, 140)).save(buf, "PNG")
    at = open_page("app_pages/saliency.py", state={"_face_source": "Upload", "_upload": ("wall.png", buf.getvalue())})
    assert any("No face was found" in w.value for w in at.warning)
    assert at.get("plotly_chart")  # still answers, on the announced centre crop


def test_unknown_face_id(runs):
    at = open_page("app_pages/saliency.py", run="unevaluated", query={"face": "12"})
    assert any("No PublicTest face has id '12'" in e.value for e in at.error)


def test_run_without_weights_says_so(runs):
    at = open_page("app_pages/saliency.py", run="no_weights")
    assert any("no checkpoint yet" in i.value for i in at.info)


def test_filters_page_for_a_dataset_face(runs, monkeypatch, quick_patterns):
    import fer_models.explain.atlas

    monkeypatch.setattr(fer_models.explain.atlas, "PATTERNS", 8)  # the atlas made below: no more than the page shows
    at = open_page("app_pages/filters.py", run="unevaluated", query={"face": "28711"})
    assert at.selectbox(key="filters_layer_cnn3").value == "block3.conv" and at.query_params["layer"] == "block3.conv"
    assert next(s for s in at.selectbox if s.label == "Which filters").value == "most active on PublicTest"
    assert [t.label for t in at.tabs] == ["What excites a filter", "Feature maps on this face"]  # patterns first
    lines = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert len(lines) == 8 and all("on the starting noise" in line and "Its 9 top faces" in line for line in lines)
    # the patterns beat the noise they started from
    import re
    for line in lines:
        got, start = map(float, re.findall(r"activation (-?[\d.]+) on this pattern, (-?[\d.]+)", line)[0])
        assert got > start
    # no atlas yet: the page offers to make one, and reads it once made
    assert not (runs / "unevaluated" / "atlas.npz").exists() and not any("come from" in c.value for c in at.caption)
    next(b for b in at.button if b.label.startswith("Precompute the atlas")).click().run()
    assert not at.exception, at.exception
    assert (runs / "unevaluated" / "atlas.npz").exists()
    assert any("come from the run's atlas" in c.value for c in at.caption)


def test_the_filters_layer_is_in_the_url_and_a_reload_keeps_it(runs, quick_patterns):
    """A reload (or a shared link) opened on the deepest layer whatever the teacher had picked."""
    at = open_page("app_pages/filters.py", run="unevaluated", query={"layer": "block1.conv"})
    assert at.selectbox(key="filters_layer_cnn3").value == "block1.conv"
    at.selectbox(key="filters_layer_cnn3").set_value("block2.conv").run()
    assert at.query_params["layer"] == "block2.conv"
    unknown = open_page("app_pages/filters.py", run="unevaluated", query={"layer": "no.such.layer"})
    assert unknown.selectbox(key="filters_layer_cnn3").value == "block3.conv" and not unknown.exception


def test_filters_page_by_number_on_an_upload(runs):
    # opened on the first layer: the deepest one's patterns are another test's
    at = open_page("app_pages/filters.py", state={"_face_source": "Upload", "_upload": ("me.png", photo_bytes()),
                                                  "filters_layer_cnn3": "block1.conv"})
    assert at.selectbox(key="filters_layer_cnn3").value == "block1.conv"
    next(s for s in at.selectbox if s.label == "Which filters").set_value("by number")
    at.run()
    assert not at.exception, at.exception
    at.multiselect[0].set_value([3, 5])
    at.run()
    lines = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert [line.split(":")[0] for line in lines] == ["**#3**", "**#5**"]
    # the first layer reads the face: its 3x3 kernels are shown, not synthesized patterns
    assert all("weights from" in line for line in lines)
    assert any("reads the face itself" in c.value for c in at.caption) and at.toggle[0].disabled


def test_two_runs_side_by_side_on_the_same_face(runs):
    at = open_page("app_pages/saliency.py", run="unevaluated", query={"face": "28711"})
    compare = next(s for s in at.selectbox if s.label.startswith("Compare with another run"))
    compare.select_index(next(i for i, o in enumerate(compare.options) if o.startswith("vs small · ")))
    at.run()
    assert not at.exception, at.exception
    headings = [h.value for h in at.subheader]
    assert [h.split(":")[0] for h in headings] == ["unevaluated", "small"]
    # the same weights in both runs: the same reading
    assert headings[0].split(": ")[1] == headings[1].split(": ")[1]
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert sum("over the face" in c for c in captions) == 2
    # the colour key on the first screen too, where the two maps are (their scales are under the controls)
    assert sum(c.endswith("over the face; red: for it, blue: against") for c in captions) == 2, captions
    # the first line, above both maps, names both readings; each run's bars under its name
    verdict = at.markdown[0].value
    assert verdict.startswith("**unevaluated** reads **") and " · **small** reads **" in verdict, verdict
    assert len(at.get("plotly_chart")) == 2


def test_the_next_methods_are_guessed_for_both_runs_while_the_server_is_idle(runs):
    """A teacher tries the methods one after the other: the page queues the next ones for both runs (computed in
    the background), and a switch to one draws it from the memo, arrays no page can write into."""
    from fer_models.explain.memo import MEMO

    at = open_page("app_pages/saliency.py", run="unevaluated", query={"face": "28711"})
    compare = next(s for s in at.selectbox if s.label.startswith("Compare with another run"))
    compare.select_index(next(i for i, o in enumerate(compare.options) if o.startswith("vs small · ")))
    at.run()

    def guessed(method):
        return {key[1].split("@")[0] for key in list(MEMO._done) if key[0] == "maps" and key[3] == method
                and key[1].startswith(str(runs))}

    both = {str(runs / "unevaluated"), str(runs / "small")}
    wait_for(lambda: all(guessed(m) == both for m in ("occlusion", "smoothgrad", "integrated_gradients")),
             timeout=120, what="both runs' Occlusion, SmoothGrad and Integrated Gradients maps, guessed")
    at.selectbox(key="saliency_method").set_value("occlusion").run()
    assert not at.exception, at.exception
    maps = [v for k, v in list(MEMO._done.items()) if k[0] == "maps" and k[1].startswith(str(runs))]
    with pytest.raises(ValueError, match="read-only"):
        maps[0][0].map[0, 0] = 1.0


def test_an_uploaded_photo_is_searched_with_the_chosen_detector(runs):
    """MTCNN by default (a real photo: its landmarks level the crop); Haar on request, the same photo."""
    from helpers import astronaut

    buf = io.BytesIO()
    Image.fromarray(astronaut()).save(buf, "PNG")
    at = open_page("app_pages/saliency.py", state={"_face_source": "Upload", "_upload": ("nasa.png", buf.getvalue())})
    assert not at.exception, at.exception
    assert any("1 face found (MTCNN)" in i.value for i in at.info)
    at.radio(key="face_detector").set_value("haar").run()
    assert not at.exception, at.exception
    assert any("1 face found (Haar frontal)" in i.value for i in at.info)
