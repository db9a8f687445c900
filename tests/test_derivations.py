"""The Learn page's math: the formulas against PyTorch, the analytic gradients against autograd and finite
differences, all in float64 to 1e-8."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn

from fer_models.nets.models import create_model, list_models
from fer_models.nets.shapes import conv_output_size, naive_output_size, shape_walk
from fer_models.teaching.derivations import (
    check_batchnorm,
    check_conv,
    check_softmax_cross_entropy,
    cross_entropy,
    finite_difference,
    softmax,
)


def test_conv_formula_matches_nn_conv2d_over_a_grid():
    for size, k, s, p, d in itertools.product((1, 5, 7, 12, 48), (1, 2, 3, 5, 7), (1, 2, 3), (0, 1, 3), (1, 2)):
        if size + 2 * p < d * (k - 1) + 1:
            with pytest.raises(ValueError, match="more padding"):
                conv_output_size(size, k, s, p, d)
            continue
        out = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)(torch.zeros(1, 1, size, size))
        assert conv_output_size(size, k, s, p, d) == out.shape[-1], (size, k, s, p, d)


def test_pool_formula_with_ceil_mode_matches_pytorch():
    # sizes 1 and 2 include windows longer than the input, which ceil mode still lets torch place once
    for size, k, s, p in itertools.product((1, 2, 3, 5, 6, 7, 12, 13), (2, 3, 4), (1, 2, 3), (0, 1, 2)):
        if p > k // 2:
            continue
        for ceil in (False, True):
            try:
                out = nn.MaxPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, size, size)).shape[-1]
            except RuntimeError:  # "output size is too small"
                with pytest.raises(ValueError, match="more padding"):
                    conv_output_size(size, k, s, p, 1, ceil)
                continue
            assert conv_output_size(size, k, s, p, 1, ceil) == out, (size, k, s, p, ceil)


def test_check_conv_compares_rectangles_and_flags_the_naive_formula():
    check = check_conv(2, 3, 47, 30, 8, kernel=3, stride=2, padding=1)
    assert check.agrees and check.torch_shape == (2, 8, 24, 15)
    assert check.naive_hw == (23.5, 15.0) and check.naive_is_wrong  # right for W, a fraction for H
    dilated = check_conv(1, 1, 48, 48, 4, kernel=3, stride=1, padding=1, dilation=2)
    assert dilated.formula_shape[2:] == (46, 46) and naive_output_size(48, 3, 1, 1) == 48 and dilated.naive_is_wrong
    assert not check_conv(1, 1, 48, 48, 64, kernel=7, stride=2, padding=3).naive_is_wrong


@pytest.mark.parametrize("arch", list_models())
def test_shape_walk_matches_the_forward_pass_for_every_model(arch):
    walk = shape_walk(create_model(arch))
    assert walk
    for row in walk:
        assert row["formula"] == row["output"][-1], row


def test_densenet_walk_is_the_stem_and_the_transitions():
    walk = shape_walk(create_model("densenet201_fer"))
    assert [r["layer"] for r in walk] == ["features.conv0", "features.pool0"] + [
        f"features.transition{i}.{part}" for i in (1, 2, 3) for part in ("conv", "pool")]
    assert [r["output"][-1] for r in walk] == [24, 12, 12, 6, 6, 3, 3, 1]
    assert [r["output"][0] for r in walk if r["type"] == "Conv2d"] == [64, 128, 256, 896]


def test_finite_difference_of_a_known_function():
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    assert np.abs(finite_difference(lambda v: float((v ** 3).sum()), x, 1e-3) - 3 * x ** 2).max() < 1e-10


@pytest.mark.parametrize("kwargs", [
    dict(batch=2, features=1), dict(batch=8, features=4), dict(batch=64, features=8, gamma=-0.7, beta=3.0, eps=1e-3),
    dict(batch=32, features=3, eps=1e-8, seed=5), dict(batch=1, features=3),
    dict(batch=8, features=4, constant=3.0), dict(batch=5, features=2, constant=-200.0),
    dict(batch=16, features=1, constant=1.0, eps=1e-8),
])
def test_batchnorm_gradients_agree_three_ways(kwargs):
    check = check_batchnorm(**kwargs)
    assert check.worst < 1e-8, check.rows
    compared = {k for row in check.rows for k in row if k.startswith("vs ")}
    assert {"vs autograd", "vs finite differences"} <= compared
    quantities = {row["quantity"] for row in check.rows}
    assert {"beta", "gamma", "x_hat", "var", "mu", "x"} <= quantities


def test_a_wrong_batchnorm_gradient_would_be_caught(monkeypatch):
    import fer_models.teaching.derivations as d
    right = d.batchnorm_backward

    def without_the_mean_term(dy, x, gamma, eps):  # a classic mistake: forgetting that μ depends on x
        grads = right(dy, x, gamma, eps)
        grads["x"] = grads["x"] - grads["mu"] / x.shape[0]
        return grads

    monkeypatch.setattr(d, "batchnorm_backward", without_the_mean_term)
    assert d.check_batchnorm(batch=8, features=4).worst > 1e-3


def test_degenerate_batch_normalises_to_beta():
    check = check_batchnorm(batch=6, features=2, gamma=2.0, beta=0.7, eps=1e-4, constant=5.0)
    f = check.forward
    assert np.all(f["mu"] == 5.0) and np.all(f["var"] == 0.0)
    assert np.allclose(f["y"], 0.7)
    assert np.all(f["analytic"]["gamma"] == 0)
    dy = f["dy"]
    expected = 2.0 / (6 * np.sqrt(1e-4)) * (6 * dy - dy.sum(0))
    assert np.allclose(f["analytic"]["x"], expected)


def test_one_value_per_channel_is_refused_by_pytorch_and_said_so():
    check = check_batchnorm(batch=1, features=3)
    assert "Expected more than 1 value per channel" in check.forward["torch_refuses"]
    assert np.allclose(check.forward["y"], 0.2)


@pytest.mark.parametrize("kwargs", [dict(), dict(temperature=0.2), dict(temperature=10.0, soft=True, batch=16),
                                    dict(batch=1, classes=2, temperature=3.0)])
def test_softmax_cross_entropy_gradient_is_p_minus_y_over_t(kwargs):
    check = check_softmax_cross_entropy(**kwargs)
    assert check.worst < 1e-8, check.rows
    f = check.forward
    t = kwargs.get("temperature", 1.0)
    assert np.allclose(f["analytic"], (f["p"] - f["y"]) / t)


def test_softmax_is_stable_and_temperature_keeps_the_argmax():
    z = np.array([1000.0, 999.0, -1000.0])
    assert np.allclose(softmax(z), [1 / (1 + np.e ** -1), 1 / (1 + np.e), 0])
    assert np.isfinite(cross_entropy(z[None], np.eye(3)[[2]]))
    for t in (0.1, 1.0, 50.0):
        assert softmax(z, t).argmax() == 0
    assert np.allclose(softmax(np.array([1.0, 2.0]), 1e6), 0.5)
