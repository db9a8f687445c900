"""One convolution, step by step, on the shipped networks: the hand-computed value of any output cell equals the
model's own forward pass, padding taps read zeros, and the stride is the step between patches."""
import numpy as np
import pytest

from fer_models.explain.attributions import face_input
from fer_models.runs.checkpoints import load_model
from fer_models.teaching.convolution import convolution_step, layer_trace
from helpers import ROOT, bundled_faces

RUNS = sorted(p.name for p in (ROOT / "artifacts" / "runs").iterdir() if (p / "model.safetensors").is_file())


@pytest.fixture(scope="module")
def shipped():
    return {run: load_model(ROOT / "artifacts" / "runs" / run) for run in RUNS}


@pytest.mark.parametrize("run", RUNS)
def test_every_cell_of_the_first_three_conv_layers_equals_the_forward_pass(shipped, run):
    model, meta = shipped[run]
    x = face_input(bundled_faces()[7, 0], meta)
    rng = np.random.default_rng(0)
    for layer in list(model.conv_layers())[:3]:
        trace = layer_trace(model, layer, x)
        c, h, w = trace.outputs.shape
        cells = [(0, 0, 0), (c - 1, h - 1, w - 1), *[(rng.integers(c), rng.integers(h), rng.integers(w))
                                                     for _ in range(20)]]
        for channel, row, col in cells:
            step = convolution_step(trace, int(channel), int(row), int(col))
            assert abs(step.value - step.forward_value) < 1e-4, (run, layer, channel, row, col)
        assert trace.first == (layer == next(iter(model.conv_layers())))


def test_a_border_cell_reads_padding_and_the_stride_steps_the_patch(shipped):
    """densenet201_fer's stem: 7x7, stride 2, padding 3 on the 48x48 face."""
    model, meta = shipped["densenet201_fer"]
    trace = layer_trace(model, "features.conv0", face_input(bundled_faces()[7, 0], meta))
    corner = convolution_step(trace, 0, 0, 0)
    assert corner.rows_in == list(range(-3, 4)) and corner.cols_in == list(range(-3, 4))
    assert corner.padded[:3].all() and corner.padded[:, :3].all() and not corner.padded[3:, 3:].any()
    assert (corner.patch[:, :3] == 0).all() and (corner.products[:, corner.padded] == 0).all()
    assert convolution_step(trace, 0, 0, 1).cols_in == list(range(-1, 6))  # one cell right: two pixels on
    last = convolution_step(trace, 0, 23, 23)
    assert last.rows_in[-1] == 49 and last.padded[-2:].all()  # 23 * 2 - 3 + 6 = 49: past the 48 rows
    assert np.isclose(corner.products.sum() + corner.bias, corner.conv_value)


def test_a_later_layer_ranks_the_input_channels_it_adds_up(shipped):
    model, meta = shipped["cnn3"]
    trace = layer_trace(model, "block2.conv", face_input(bundled_faces()[7, 0], meta))
    step = convolution_step(trace, 5, 6, 6)
    top, more = step.ranked_channels(4)
    assert len(top) == 4 and more == 64 - 4 and len(step.per_channel) == 64
    assert abs(step.per_channel[top[0]]) >= abs(step.per_channel[top[-1]])
    assert [s[0] for s in step.stages] == ["batch norm", "ReLU"]
    with pytest.raises(ValueError, match="no cell"):
        convolution_step(trace, 200, 0, 0)


def test_the_batch_norm_sentence_computes_what_it_states(shipped):
    """It wrote "(+0.2579 − μ +0.0052)", read as a sum: now the formula, then the same with its numbers; the
    expression as printed, evaluated, gives the printed result (negative terms in brackets)."""
    from app_pages._convolution_view import arithmetic

    model, meta = shipped["resnet10_fer"]
    trace = layer_trace(model, list(model.conv_layers())[0], face_input(bundled_faces()[7, 0], meta))
    checked = 0
    for channel in range(trace.outputs.shape[0]):
        step = convolution_step(trace, channel, 5, 5)
        line = next(line for line in arithmetic(trace, step, channel) if line.startswith("Batch norm"))
        assert ": (x − μ) / √(σ² + ε) × γ + β = (" in line, line
        expression, result = line.split(" = ", 1)[1].rsplit(" = ", 1)
        value = eval(expression.replace("−", "-").replace("×", "*").replace("√", "np.sqrt"), {"np": np})
        assert abs(value - float(result.strip("*."))) < 2e-4, line
        checked += any(t in expression for t in ("- (", "+ ("))
    assert checked  # some channel has a negative mean, scale or shift: the brackets were exercised
