"""fer-studio report: one self-contained HTML file with every section, and bad runs refused clearly."""
import json
import re
import shutil
from html.parser import HTMLParser

import pytest

from fer_models.teaching.report import main, sample_faces
from helpers import make_reported_run


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    return make_reported_run(tmp_path_factory.mktemp("report"))


class Resources(HTMLParser):
    """Every URL the page would load or link to: src/href attributes and CSS url(...)."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "data", "poster") and v]


def test_the_report_carries_the_plotly_js_that_plotly_py_writes_its_figures_for():
    import gzip

    import plotly.offline

    from fer_models.teaching.report_pieces import PLOTLY_BUNDLE

    head = gzip.decompress(PLOTLY_BUNDLE.read_bytes())[:200].decode()
    version = plotly.offline.get_plotlyjs_version()
    assert "plotly.js (cartesian - minified) v" in head
    carried = head.split(" v", 1)[1].split()[0]
    assert carried.split(".")[0] == version.split(".")[0], (carried, version)


def test_report_has_every_section_and_loads_nothing(reported):
    _, out = reported
    text = out.read_text()
    for title in ("1. Architecture: cnn3", "2. Training history", "3. Confusion matrix on PublicTest",
                  "4. Mistakes", "5. Saliency", "6. Filters of block3.conv", "7. The math", "Batch normalisation",
                  "A batch whose values are all equal", "Softmax with cross-entropy", "Convolution arithmetic"):
        assert f">{title}<" in text, title
    assert text.count('class="plotly-graph-div"') == 2  # training curves and confusion matrix
    # plotly.js's cartesian bundle travels gzipped: the whole plotly.js was 4.7 MB, then 1.9 MB gzipped as base64
    assert len(out.read_bytes()) < 1.5 * 2**20
    from fer_models.teaching.report import PLOT_LATER
    assert text.count(f'<script type="{PLOT_LATER}">') == 2  # each figure drawn once plotly.js is unpacked
    assert "$" not in text.split("<body>")[1].split("plotly-gz")[0]  # inline math rendered, none left raw
    assert text.count("<math") >= 15 and "xmlns" not in text.split("<body>")[1]
    parser = Resources()
    parser.feed(text)
    assert parser.urls and all(u.startswith(("data:", "#")) for u in parser.urls), \
        [u[:60] for u in parser.urls if not u.startswith(("data:", "#"))]
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text) and "@import" not in text
    assert "<script src" not in text and "<link" not in text


def test_report_content_comes_from_the_run(reported):
    run, out = reported
    text = out.read_text()
    metrics = json.loads((run / "eval" / "PublicTest" / "metrics.json").read_text())
    assert f"accuracy {metrics['accuracy']:.2%} on PublicTest" in text
    assert "best validation accuracy 45.00% at epoch 2" in text
    assert text.count('download="saliency_') == 7  # one face of each class, each downloadable
    assert text.count('download="filter_') == 2    # the pattern and its top faces
    assert "5,386,183 parameters" in text           # torchinfo on cnn3
    # the layer table writes its counts as the text does (it wrote 21233664 under "1,227,623 parameters")
    from fer_models.nets.structure import structure_of
    layers = structure_of("cnn3").layers
    big = [n for n in layers["mult-adds"] if n >= 1000]
    assert big and all(f"<td>{n:,}</td>" in text for n in big)
    assert "Expected more than 1" not in text


def test_saliency_sample_is_per_class_and_repeatable(reported):
    import pandas as pd
    run, _ = reported
    predictions = pd.read_csv(run / "eval" / "PublicTest" / "predictions.csv", dtype={"id": str})
    rows = sample_faces(predictions, 2)
    assert rows == sample_faces(predictions, 2)
    assert sorted(predictions["true"].iloc[rows].tolist()) == sorted(list(range(7)) * 2)


def test_a_run_without_evaluation_still_reports_and_says_how(reported, tmp_path):
    run, _ = reported
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("eval"))
    out = tmp_path / "bare.html"
    assert main(["--run", str(bare), "--out", str(out), "--filters", "1"]) == 0
    text = out.read_text()
    assert "fer-studio evaluate --run" in text and "No faces to explain" in text
    assert ">7. The math<" in text


@pytest.mark.parametrize("damage", ["corrupt", "pickle", "missing"])
def test_a_bad_checkpoint_is_refused_with_its_reason(reported, tmp_path, capsys, damage):
    run, _ = reported
    bad = tmp_path / damage
    shutil.copytree(run, bad)
    weights = bad / "model.safetensors"
    if damage == "corrupt":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "pickle":
        import torch
        weights.unlink()
        torch.save({"w": torch.zeros(1)}, weights)
    else:
        weights.unlink()
    out = tmp_path / "r.html"
    assert main(["--run", str(bad), "--out", str(out)]) == 2
    assert "error:" in capsys.readouterr().err and not out.exists()


def test_the_report_says_a_shipped_runs_training_time_as_history_and_the_readme_do():
    from fer_models.runs.registry import training_cost
    from fer_models.teaching.report import training_time
    from helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    for run in sorted((ROOT / "artifacts" / "runs").iterdir()):
        meta, config = (json.loads((run / f).read_text()) for f in ("meta.json", "config.json"))
        hours = f"{training_cost(meta, config)['hours']:.1f} h"
        assert training_time(meta) == f"{hours} of training"
        assert f"| {hours} |" in readme.split(f"| {run.name} |")[1].split("\n")[0]  # the table's column


def test_the_reports_walk_mentions_dense_blocks_only_for_a_model_that_has_them():
    from fer_models.nets.models import create_model
    from fer_models.teaching.report import math_section

    for arch, said in (("densenet201_fer", True), ("resnet10_fer", False)):
        assert ("outside the dense blocks" in math_section(create_model(arch))) is said, arch


def test_progress_goes_face_by_face_and_step_by_step_and_only_forward(reported, quick_patterns):
    """The page's bar moved from "Saliency maps" at 30% to "Filters" with nothing between for most of the time
    (80% of it on densenet201_fer), and so could say no time left."""
    from fer_models.teaching.report import build_report

    run, _ = reported
    heard = []
    build_report(run, faces_per_class=1, filters=2, progress=lambda text, f: heard.append((text, f)))
    fractions = [f for _, f in heard]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    faces = [t for t, _ in heard if t.startswith("Saliency maps: face ")]
    assert len(faces) == 7 and faces[-1] == "Saliency maps: face 7 of 7"  # one face per class
    assert sum(t.startswith("Filters: patterns, step ") for t, _ in heard) == 12  # no atlas: synthesised here


def test_the_cli_says_each_step_and_each_tenth_not_each_face(capsys):
    from fer_models.teaching.report import said_to_stderr

    progress = said_to_stderr()
    progress("Mistakes", 0.12)
    for i in range(100):
        progress(f"Saliency maps: face {i + 1} of 100", 0.15 + 0.65 * i / 100)
    progress("Filters", 0.8)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == " 12% Mistakes" and lines[-1] == " 80% Filters" and 8 <= len(lines) <= 11, lines


def test_a_pictures_alt_text_is_its_caption_escaped_once():
    import numpy as np

    from fer_models.teaching.report_pieces import escaped, picture

    tile = picture(np.zeros((4, 4), np.uint8), "t", f"{escaped(chr(39) + '<x>')} <b>pick</b>")
    assert 'alt="&#x27;&lt;x&gt; pick"' in tile  # read aloud as "'<x> pick", not "&#x27;..."


def test_the_terms_it_uses_are_explained_at_its_end(reported):
    """Offline there is no tooltip: the glossary's sentences go in the report."""
    from fer_models.teaching.glossary import GLOSSARY
    from fer_models.teaching.report_pieces import escaped

    _, out = reported
    text = out.read_text()
    assert "href='#terms'" in text and "<h2 id='terms'>Terms</h2>" in text
    terms = text.split("<h2 id='terms'>")[1]
    for term in ("top-2 accuracy", "macro F1", "mult-adds", "Grad-CAM"):
        assert f"<dt>{term}</dt><dd>{escaped(GLOSSARY[term])}</dd>" in terms, term


def test_each_terms_first_use_in_running_text_carries_its_sentence_as_a_tooltip():
    from fer_models.teaching.report_pieces import first_uses

    body = ("<h2>Grad-CAM maps</h2><p>top-2 accuracy 80%, and top-2 accuracy again</p><math><mi>logit</mi></math>"
            "<script>{\"name\": \"Grad-CAM\"}</script><p>Grad-CAM (the logit's gradient) and Grad-CAMs</p>")
    out = first_uses(body, {"Grad-CAM": "a map's 'why'", "top-2 accuracy": "two guesses", "logit": "a raw score"})
    assert out.count("<abbr") == 3 and out.startswith("<h2>Grad-CAM maps</h2>")  # headings are left alone
    assert "<p><abbr title='two guesses'>top-2 accuracy</abbr> 80%, and top-2 accuracy again</p>" in out
    assert "<mi>logit</mi>" in out and '{"name": "Grad-CAM"}' in out  # nor math, nor a figure's data
    assert ("<abbr title='a map&#x27;s &#x27;why&#x27;'>Grad-CAM</abbr> (the "
            "<abbr title='a raw score'>logit</abbr>") in out


def test_the_report_explains_its_terms_where_they_are_first_used(reported):
    _, out = reported
    body = out.read_text().split("<body>")[1]
    assert "<abbr title='Share of faces whose label is among the model&#x27;s two most probable" in body
    assert body.index("<abbr") < body.index("id='terms'")
