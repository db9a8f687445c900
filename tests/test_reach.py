import re

import pytest
import torch
import torch.nn as nn

from fer_models.explain.attributions import METHODS
from fer_models.nets.models import FERModel, create_model, list_models
from fer_models.nets.reach import (
    findings_in_words,
    gradcam_layer_by_rule,
    reach_table,
    rows_read,
    unused_parts,
    used_taps,
)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {arch: create_model(arch).eval() for arch in list_models()}


@pytest.fixture(scope="module")
def reports(models):
    return {arch: unused_parts(m) for arch, m in models.items()}


def cell_gradients(model, layer_name, inputs=3):
    """|gradient| of each class score at every cell of the layer's output, summed over channels and faces."""
    layer = model.get_submodule(layer_name)
    kept = {}
    handle = layer.register_forward_hook(lambda m, a, out: kept.update(out=out))
    try:
        logits = model(torch.randn(inputs, 1, 48, 48))
    finally:
        handle.remove()
    return [torch.autograd.grad(logits[:, k].sum(), kept["out"], retain_graph=True)[0].abs().sum((0, 1))
            for k in range(logits.shape[1])]


@pytest.mark.parametrize("arch", list_models())
def test_every_cell_of_the_gradcam_layer_reaches_every_class_score(models, arch):
    model = models[arch]
    for k, grad in enumerate(cell_gradients(model, model.gradcam_layer_name)):
        assert grad.numel() > 1 and bool((grad > 0).all()), (arch, k, grad)


@pytest.mark.parametrize("arch", list_models())
def test_each_model_declares_the_gradcam_layer_the_rule_finds(models, arch):
    assert models[arch].gradcam_layer_name == gradcam_layer_by_rule(models[arch])


def test_the_seed_densenets_old_gradcam_layer_had_dead_cells(models):
    """The audit's repro: at transition3 the bottom row and right column never get a gradient."""
    grad = cell_gradients(models["densenet201_fer"], "features.transition3.conv")[3]
    assert grad.shape == (3, 3)
    assert bool((grad[2, :] == 0).all() and (grad[:, 2] == 0).all() and (grad[:2, :2] > 0).all())


def test_the_saliency_caption_names_each_models_gradcam_map_size(models):
    caption = METHODS["gradcam"].caption
    for arch, model in models.items():
        size = cell_gradients(model, model.gradcam_layer_name, inputs=1)[0].shape
        assert re.search(rf"{size[0]}×{size[1]} for {arch}", caption), (arch, size)


def test_the_densenet_audit_in_numbers_and_words(reports):
    report = reports["densenet201_fer"]
    assert report.dead_parameters == 32 * 128 * 32 * 8 == 1_048_576  # block 4: 32 layers, 8 of 9 taps dead
    assert report.parameters == 20_715_527 and round(100 * report.dead_parameters / report.parameters, 1) == 5.1
    rows = {r.layer: r for r in report.layers}
    pool = rows["features.transition3.pool"]
    assert (pool.input_hw, pool.output_hw, pool.rows_dropped, pool.cols_dropped) == ((3, 3), (1, 1), 1, 1)
    assert (rows["features.transition3.conv"].cells_alive, rows["features.transition3.conv"].cells) == (4, 9)
    assert rows["features.transition2.relu"].cells_alive == 36
    first = rows["features.denseblock4.denselayer1.conv2"]
    assert (first.taps_used, first.taps, first.dead_parameters) == (1, 9, 32_768)
    words = " ".join(findings_in_words(report))
    assert "1,048,576" in words and "5.1%" in words and "`features.transition3.pool`" in words
    assert "4 of the 9 cells" in words and "denselayer32.conv2" in words
    table = reach_table(report).set_index("layer")
    assert table.loc["features.denseblock4.denselayer7.conv2", "kernel taps used"] == "1/9"
    assert table.loc["features.transition3.pool", "rows × cols dropped"] == "1 × 1"


@pytest.mark.parametrize("arch", ["cnn3", "resnet10_fer"])
def test_models_that_use_everything_have_nothing_to_say(reports, arch):
    assert reports[arch].dead_parameters == 0 and not reports[arch].findings and findings_in_words(reports[arch]) == []


def test_tap_and_row_arithmetic_on_small_cases():
    assert used_taps(1, 1, 3, 1, 1) == [False, True, False]          # 3x3 same-padding conv on one pixel
    assert used_taps(3, 3, 3, 1, 1) == [True, True, True]
    assert used_taps(2, 1, 5, 1, 2) == [False, False, True, True, False]
    assert rows_read(5, 2, 2, 2, 0) == [True, True, True, True, False]  # 2/2 pool of 5 rows drops the last
    assert rows_read(6, 3, 2, 2, 0) == [True] * 6


class _OddPool(FERModel):
    """A toy whose 3x3 conv meets a 1x1 map and whose pooling drops a row, to check the analysis on any model."""
    input_spec = FERModel.input_spec

    def __init__(self):
        super().__init__()
        self.squeeze = nn.Conv2d(1, 4, 48, bias=False)           # 48x48 -> 1x1
        self.wide = nn.Conv2d(4, 4, 3, padding=1, bias=False)     # only its centre tap sees the pixel
        self.head = nn.Linear(4, 7)

    def forward(self, x):
        return self.head(self.wide(self.squeeze(x)).flatten(1))


def test_the_analysis_reads_any_model():
    report = unused_parts(_OddPool())
    wide = {r.layer: r for r in report.layers}["wide"]
    assert (wide.taps_used, wide.dead_parameters) == (1, 4 * 4 * 8)
    assert report.dead_parameters == 128 and "128 weights never get a gradient" in findings_in_words(report)[0]


def test_the_report_says_it_in_html(models):
    from fer_models.teaching.report import unused_paragraphs

    html = unused_paragraphs(models["densenet201_fer"])
    assert "<b>1,048,576 weights never get a gradient from the loss</b>" in html
    assert "<code>features.transition3.pool</code>" in html and "`" not in html
    assert unused_paragraphs(models["resnet10_fer"]) == ""


def test_the_pages_the_report_and_the_readme_state_one_gradcam_rule():
    """The rule once lost its second condition (the whole input passes through the layer) on the page."""
    from fer_models.explain.attributions import METHODS
    from fer_models.nets.reach import GRADCAM_RULE
    from helpers import ROOT

    assert "through which the whole input passes" in GRADCAM_RULE and "every cell reaches" in GRADCAM_RULE
    assert GRADCAM_RULE in METHODS["gradcam"].caption
    assert " ".join((ROOT / "README.md").read_text().split()).count(" ".join(GRADCAM_RULE.split())) == 1
    for page in ("app_pages/webcam.py", "fer_models/teaching/report.py"):
        assert "GRADCAM_RULE" in (ROOT / page).read_text(), page
