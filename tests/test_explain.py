"""Attributions, feature maps and filter visualisation on a small model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_models.explain.attributions import METHODS, attribute, attribute_classes, face_input, probabilities
from fer_models.explain.features import (
    Ranking,
    feature_maps,
    filter_responses,
    layer_rankings,
    maximise_filters,
)
from fer_models.explain.pictures import enlarge, framed, robust_top, to_unit
from fer_models.nets.models import create_model
from helpers import synthetic_faces

META = {"normalisation": {"mean": 0.3, "std": 0.25}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = create_model("cnn3").eval()
    # non-trivial BN statistics, as after training, so activations are not all centred at 0
    for bn in (m.block1.bn, m.block2.bn, m.block3.bn):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return m


@pytest.fixture(scope="module")
def x():
    images, _ = synthetic_faces(1, seed=3)
    return face_input(images[0], META)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.filterwarnings("error:Converting a tensor with requires_grad")  # the server's log, every SmoothGrad
def test_every_method_gives_a_finite_48x48_map(model, x, method):
    a = attribute(model, x, method, target=2)
    assert a.map.shape == (48, 48) and np.isfinite(a.map).all()
    assert np.abs(a.map).max() > 0
    if not METHODS[method].signed:
        assert a.map.min() >= 0
    assert (a.delta is not None) == (method == "integrated_gradients")


def test_integrated_gradients_completeness(model, x):
    """The attributions add up to f(x) - f(baseline) for the target's logit (baseline = 0)."""
    target = 4
    a = attribute(model, x, "integrated_gradients", target)
    with torch.no_grad():
        gap = float(model(x)[0, target] - model(torch.zeros_like(x))[0, target])
    assert abs(gap) > 1e-3
    assert a.map.sum() == pytest.approx(gap, rel=0.02, abs=1e-3)
    assert a.delta < 0.02 * abs(gap) + 1e-3


def test_gradcam_is_the_upsampled_weighted_last_conv_map(model, x):
    """Grad-CAM by hand: the 12x12 maps of cnn3's block3.relu weighted by their mean gradient,
    summed (signed: the page shows evidence against the class in blue, where the paper's ReLU
    would drop it), bilinear to 48x48; Captum's result must be that map."""
    target = 1
    seen = {}
    handle = model.gradcam_layer().register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))
    score = model(x)[0, target]
    handle.remove()
    acts = seen["a"]
    grads, = torch.autograd.grad(score, acts)
    assert acts.shape[-2:] == (12, 12)
    cam = (grads.mean((2, 3), keepdim=True) * acts).sum(1, keepdim=True)
    expected = F.interpolate(cam, size=(48, 48), mode="bilinear", align_corners=False)[0, 0].detach().numpy()
    got = attribute(model, x, "gradcam", target).map
    assert got.shape == (48, 48)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_seven_class_batch_matches_one_class_at_a_time(model, x):
    batch = attribute_classes(model, x, "saliency", list(range(7)))
    assert [a.target for a in batch] == list(range(7))
    for t in (0, 3, 6):
        np.testing.assert_allclose(batch[t].map, attribute(model, x, "saliency", t).map, rtol=1e-4, atol=1e-7)
    assert not np.allclose(batch[0].map, batch[3].map)  # each class gets its own map


def test_explaining_leaves_the_model_as_it_was(model, x):
    before = probabilities(model, x)
    for method in ("guided_backprop", "guided_gradcam", "gradcam"):
        attribute(model, x, method, 0)
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
                for m in model.modules())
    assert hooks == 0
    assert all(p.grad is None for p in model.parameters())
    np.testing.assert_allclose(probabilities(model, x), before, rtol=1e-5)
    assert before.shape == (1, 7) and before.sum() == pytest.approx(1, abs=1e-5)


def test_unknown_method_and_layer_are_named(model, x):
    with pytest.raises(ValueError, match="unknown attribution method 'lime'"):
        attribute(model, x, "lime", 0)
    with pytest.raises(ValueError, match="no layer 'block9.conv'.*block1.conv"):
        feature_maps(model, "block9.conv", x)


def test_feature_maps_of_each_conv_layer(model, x):
    shapes = {name: feature_maps(model, name, x).shape for name in model.conv_layers()}
    assert shapes == {"block1.conv": (64, 48, 48), "block2.conv": (128, 24, 24), "block3.conv": (512, 12, 12)}


@pytest.mark.parametrize("fft", [True, False])
def test_activation_maximisation_raises_the_filter_activation(model, fft):
    v, = maximise_filters(model, "block3.conv", [7], META, steps=40, fft=fft)
    assert v.image.shape == (48, 48) and v.image.dtype == np.uint8 and v.channel == 7
    assert v.activation > v.start_activation + 0.01
    # ... and above what any of a set of faces and noise images gives that filter
    faces, _ = synthetic_faces(30, seed=7)
    noise = np.random.default_rng(0).integers(0, 256, (30, 48, 48), dtype=np.uint8)
    others = [feature_maps(model, "block3.conv", face_input(img, META))[7].mean()
              for img in np.concatenate([faces, noise])]
    assert v.activation > max(others)
    assert v.image.std() > 2  # a pattern, not a flat gray
    assert all(p.grad is None for p in model.parameters())


def test_filters_maximised_together_each_get_their_own_pattern(model):
    steps = []
    together = maximise_filters(model, "block2.conv", [3, 9, 40], META, steps=30,
                                on_step=lambda i, n: steps.append((i, n)))
    assert steps == [(i, 30) for i in range(1, 31)]
    assert [v.channel for v in together] == [3, 9, 40] and all(len(v.trace) == 30 for v in together)
    alone, = maximise_filters(model, "block2.conv", [9], META, steps=30)
    # the same pattern as when optimised alone, to float rounding (amplified a little by the ascent)
    assert np.corrcoef(together[1].image.ravel(), alone.image.ravel())[0, 1] > 0.95
    assert together[1].start_activation == pytest.approx(alone.start_activation, rel=1e-5)
    # and each image is the one its own filter prefers
    for v in together:
        on_own = feature_maps(model, "block2.conv", face_input(v.image, META))
        others = [w for w in together if w is not v]
        assert all(on_own[v.channel].mean()
                   > feature_maps(model, "block2.conv", face_input(w.image, META))[v.channel].mean() for w in others)
    assert maximise_filters(model, "block2.conv", [], META) == []


def test_capturing_a_layer_skips_the_layers_after_it(model, x):
    ran = []
    handle = model.block3.register_forward_hook(lambda *a: ran.append(1))
    try:
        feature_maps(model, "block2.conv", x)
        filter_responses(model, "block1.conv", np.zeros((3, 1, 48, 48), np.uint8), **META["normalisation"])
        assert ran == []
        feature_maps(model, "block3.conv", x)
        assert ran == []  # block3's conv is inside block3, which never finishes
    finally:
        handle.remove()


def test_top_faces_are_the_highest_responses(model):
    images, _ = synthetic_faces(40, seed=5)
    responses = filter_responses(model, "block2.conv", images[:, None], **META["normalisation"], batch_size=16)
    assert responses.shape == (40, 128)
    ranking = Ranking.of(responses)
    for channel in (0, 9, 127):
        np.testing.assert_array_equal(ranking.top[channel], np.argsort(-responses[:, channel])[:9])
        np.testing.assert_allclose(ranking.peak[channel], np.sort(responses[:, channel])[::-1][:9])
    assert ranking.most_active() == np.argsort(-responses.mean(0), kind="stable").tolist()
    assert Ranking.of(responses[:4]).top.shape == (128, 4)  # fewer faces than a mosaic: all of them, ranked
    # every layer's ranking from one pass is each layer's own
    both = layer_rankings(model, ["block1.conv", "block2.conv"], images[:, None], **META["normalisation"],
                          batch_size=16)
    np.testing.assert_array_equal(both["block2.conv"].top, ranking.top)
    top = ranking.top[9][:5]
    # one face alone gives the same response as within a batch
    one = filter_responses(model, "block2.conv", images[top[:1], None], **META["normalisation"])
    assert one[0, 9] == pytest.approx(responses[top[0], 9], rel=1e-4)


def test_display_scaling_can_share_one_scale():
    weak, strong = np.full((4, 4), 0.1), np.full((4, 4), 1.0)
    assert to_unit(weak, signed=False).max() == 1  # alone, any map fills the scale
    assert to_unit(weak, signed=False, top=robust_top(strong)).max() == pytest.approx(0.1)


def test_display_scaling():
    m = np.array([[-2.0, 0.0], [1.0, 4.0]])
    assert to_unit(m, signed=True).min() >= -1 and to_unit(m, signed=True)[0, 1] == 0
    assert to_unit(np.abs(m), signed=False).min() == 0 and to_unit(np.abs(m), signed=False).max() == 1
    assert np.isfinite(to_unit(np.zeros((3, 3)), signed=False)).all()


def test_a_white_map_keeps_a_visible_frame():
    white = framed(enlarge(np.full((1, 1), 255, np.uint8), 72))  # a 1x1 layer's strongest map
    assert white.shape == (74, 74) and (white[0] == 128).all() and (white[:, -1] == 128).all()
    assert (white[1:-1, 1:-1] == 255).all()
    assert framed(np.zeros((4, 4, 3), np.uint8)).shape == (6, 6, 3)
