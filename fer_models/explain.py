"""What a model looks at, and what its filters respond to: Captum attributions, feature maps,
activation maximisation and the dataset faces that excite a filter most.

    from fer_models.checkpoints import load_model
    from fer_models.explain import attribute, face_input
    model, meta = load_model("artifacts/runs/cnn3")
    x = face_input(face48, meta)                      # uint8 48 x 48 -> 1 x 1 x 48 x 48
    a = attribute(model, x, "integrated_gradients", target=3)
    a.map, a.delta                                    # 48 x 48 float, convergence delta

Captum's hooks (guided backprop's ReLU overrides, layer hooks) live on the model while a call
runs, so calls on one model are serialised by a lock: the dashboard shares one cached model
between its sessions.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from fer_models.data import AugmentConfig, augment_batch, to_input
from fer_models.models import FERModel
from fer_models.precision import autocast_for, inference_precision

_LOCK = threading.RLock()


@dataclass(frozen=True)
class Method:
    key: str
    title: str
    signed: bool     # True: positive and negative evidence, drawn on a diverging scale
    caption: str


METHODS = {m.key: m for m in [
    Method("saliency", "Gradient saliency", False,
           "|∂ score / ∂ pixel|: how much a tiny change of each pixel would move the class score (Simonyan et al. "
           "2014; the seed report's map). Cheap, but noisy and local: it says where the score is sensitive, "
           "not what evidence the model used."),
    Method("smoothgrad", "SmoothGrad", False,
           "The gradient saliency averaged over 25 noisy copies of the face (Smilkov et al. 2017): less speckle, "
           "the same meaning. The noise level (15% of the pixel range) trades sharpness for stability."),
    Method("integrated_gradients", "Integrated Gradients", True,
           "Gradients summed along the path from a baseline (a flat face at the dataset's mean gray) to the face, "
           "times the pixel change (Sundararajan et al. 2017). The map adds up to score(face) − score(baseline); "
           "the convergence delta is how far 50 steps are from that. The picture depends on the baseline chosen."),
    Method("guided_backprop", "Guided Backprop", False,
           "The gradient with negative signals stopped at every ReLU on the way back (Springenberg et al. 2015). "
           "Sharp, edge-like images, but Adebayo et al. (2018) showed they barely change when the weights are "
           "randomised: they show the image's edges more than the model's reasoning."),
    Method("gradcam", "Grad-CAM", True,
           "A late layer's maps weighted by their mean gradient for the class, then upsampled (Selvaraju et al. "
           "2017). Class-specific and robust, but as coarse as that layer: the last activation whose every cell "
           "reaches the class scores (12×12 for cnn3; 6×6 for resnet10_fer, where it equals CAM; 6×6 for "
           "densenet201_fer, whose later 3×3 map loses 5 of its 9 cells to a 2×2 pool). Positive = evidence for "
           "the class."),
    Method("guided_gradcam", "Guided Grad-CAM", False,
           "Guided Backprop times Grad-CAM: fine detail inside the regions Grad-CAM picks for the class. "
           "Inherits Guided Backprop's weakness."),
    Method("occlusion", "Occlusion", True,
           "The drop in the class score when an 8×8 patch (stride 4) is set to the mean gray (Zeiler & Fergus "
           "2014). Model-agnostic and easy to read, but blocky, slow (one forward pass per patch), and blind to "
           "evidence spread over several patches."),
]}


@dataclass
class Attribution:
    method: str
    target: int
    map: np.ndarray                 # 48 x 48 float32
    signed: bool
    delta: float | None = None      # Integrated Gradients' convergence delta


def face_input(face_uint8: np.ndarray, meta: dict) -> torch.Tensor:
    """uint8 48 x 48 (or 1 x 48 x 48) to the normalised 1 x 1 x 48 x 48 tensor the model was trained on."""
    norm = meta["normalisation"]
    x = torch.as_tensor(np.ascontiguousarray(face_uint8)).reshape(1, 1, *face_uint8.shape[-2:])
    return to_input(x, norm["mean"], norm["std"]).contiguous(memory_format=torch.channels_last)


def _ready(model: FERModel) -> FERModel:
    """Eval mode and channels_last: oneDNN's convolutions are faster on a CPU in that layout
    (bench/explain.py measures it). The layout is set once per model object: walking every
    parameter again costs 0.7 ms a call, a webcam frame's budget is 20."""
    if not model.__dict__.get("_channels_last"):
        model.to(memory_format=torch.channels_last)
        model.__dict__["_channels_last"] = True
    return model.eval()


@torch.no_grad()
def gradcam_map_size(model: FERModel) -> tuple[int, int]:
    """Height and width of the Grad-CAM layer's output for one face (one forward pass per model object)."""
    if "_gradcam_size" in model.__dict__:
        return model.__dict__["_gradcam_size"]
    kept = {}
    handle = model.gradcam_layer().register_forward_hook(lambda m, a, out: kept.update(shape=out.shape))
    spec = model.input_spec
    try:
        with _LOCK:
            _ready(model)(torch.zeros(1, spec.channels, spec.size, spec.size))
    finally:
        handle.remove()
    model.__dict__["_gradcam_size"] = tuple(kept["shape"][2:])
    return model.__dict__["_gradcam_size"]


@torch.no_grad()
def probabilities(model: FERModel, x: torch.Tensor) -> np.ndarray:
    with _LOCK, autocast_for(x.device, inference_precision(x.device)):
        return _ready(model)(x).float().softmax(1).numpy()


def _attribute_batch(model: FERModel, x: torch.Tensor, method: str, targets: list[int]):
    """Raw Captum attributions for len(targets) copies of one face; (N x 1 x 48 x 48, delta or None)."""
    from captum.attr import (GuidedBackprop, GuidedGradCam, IntegratedGradients, LayerAttribution,
                             LayerGradCam, NoiseTunnel, Occlusion, Saliency)

    xs = x.detach().repeat(len(targets), 1, 1, 1).requires_grad_(True)
    baseline = torch.zeros_like(xs)  # 0 in normalised units = the dataset's mean gray
    if method == "saliency":
        return Saliency(model).attribute(xs, target=targets, abs=True), None
    if method == "smoothgrad":
        spread = 0.15 * float(x.max() - x.min())
        return NoiseTunnel(Saliency(model)).attribute(xs, nt_type="smoothgrad", nt_samples=25, stdevs=spread,
                                                      target=targets, abs=True), None
    if method == "integrated_gradients":
        a, delta = IntegratedGradients(model).attribute(xs, baselines=baseline, target=targets, n_steps=50,
                                                        internal_batch_size=25, return_convergence_delta=True)
        return a, delta
    if method == "guided_backprop":
        return GuidedBackprop(model).attribute(xs, target=targets).abs(), None
    if method == "gradcam":
        cam = LayerGradCam(model, model.gradcam_layer()).attribute(xs, target=targets)
        return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear"), None
    if method == "guided_gradcam":
        return GuidedGradCam(model, model.gradcam_layer()).attribute(
            xs, target=targets, interpolate_mode="bilinear").abs(), None
    if method == "occlusion":
        return Occlusion(model).attribute(xs, target=targets, sliding_window_shapes=(1, 8, 8), strides=(1, 4, 4),
                                          baselines=0.0, perturbations_per_eval=64), None
    raise ValueError(f"unknown attribution method '{method}'; choose one of {', '.join(METHODS)}")


def attribute(model: FERModel, x: torch.Tensor, method: str, target: int) -> Attribution:
    """One map for one face (1 x 1 x 48 x 48 normalised input) and one class."""
    return attribute_classes(model, x, method, [target])[0]


def attribute_classes(model: FERModel, x: torch.Tensor, method: str, targets: list[int]) -> list[Attribution]:
    """The map of `method` for each class in `targets`, computed as one batch."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method '{method}'; choose one of {', '.join(METHODS)}")
    with _LOCK:
        _ready(model)
        raw, delta = _attribute_batch(model, x, method, list(targets))
    maps = raw.detach().float().sum(1).numpy()  # one input channel: the sum is that channel
    deltas = delta.detach().abs().numpy() if delta is not None else [None] * len(targets)
    return [Attribution(method, t, m.astype(np.float32), METHODS[method].signed,
                        None if d is None else float(d)) for t, m, d in zip(targets, maps, deltas)]


def _layer(model: FERModel, name: str) -> torch.nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(f"{model.arch} has no layer '{name}'; conv layers: {', '.join(model.conv_layers())}")
    return modules[name]


class _Reached(Exception):
    """Raised by the capture hook: the layer's output is all we need, so the rest of the network
    is skipped (for a middle layer of densenet201_fer, most of its cost)."""

    def __init__(self, output):
        self.output = output


def _capture(model: FERModel, layer_name: str, x: torch.Tensor) -> torch.Tensor:
    """The output of one layer for input x; the forward pass stops there."""
    def hook(module, inputs, output):
        raise _Reached(output)

    handle = _layer(model, layer_name).register_forward_hook(hook)
    try:
        model(x)
    except _Reached as reached:
        return reached.output
    finally:
        handle.remove()
    raise RuntimeError(f"{model.arch}'s forward pass never ran layer '{layer_name}'")


@torch.no_grad()
def feature_maps(model: FERModel, layer_name: str, x: torch.Tensor) -> np.ndarray:
    """C x H x W float32 output of `layer_name` for one face."""
    with _LOCK:
        return _capture(_ready(model), layer_name, x)[0].float().contiguous().numpy()


@torch.no_grad()
def filter_responses(model: FERModel, layer_name: str, images_uint8: np.ndarray, mean: float, std: float,
                     batch_size: int = 256, on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """N x C: each face's peak activation (the spatial maximum) of every filter of `layer_name`;
    one pass over the faces gives every filter's ranking at once. The peak, not the mean, as in
    dataset-example galleries: the mean favours high-contrast faces for every filter alike, the
    peak finds the faces that hold the local feature the filter detects."""
    out = []
    with _LOCK, autocast_for(torch.device("cpu"), inference_precision("cpu")):
        _ready(model)
        for start in range(0, len(images_uint8), batch_size):
            x = to_input(torch.as_tensor(images_uint8[start:start + batch_size]), mean, std)
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(_capture(model, layer_name, x).float().amax((2, 3)))
            if on_batch is not None:
                on_batch(min(start + batch_size, len(images_uint8)), len(images_uint8))
    return torch.cat(out).numpy()


def top_faces(responses: np.ndarray, channel: int, k: int = 9) -> np.ndarray:
    """Indices of the k faces whose response to `channel` is highest, highest first."""
    column = responses[:, channel]
    top = np.argpartition(-column, min(k, len(column) - 1))[:k]
    return top[np.argsort(-column[top])]


@dataclass
class Visualisation:
    layer: str
    channel: int
    image: np.ndarray                 # uint8 48 x 48
    start_activation: float           # the channel's mean activation on the starting noise
    activation: float                 # ... on the result
    trace: list = field(default_factory=list)


def _fft_scale(size: int) -> torch.Tensor:
    """1/f amplitude per frequency: optimising these coefficients favours smooth, natural-looking
    images over the high-frequency patterns plain pixel ascent finds (Olah et al. 2017)."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    scale = 1.0 / torch.sqrt(fx ** 2 + fy ** 2).clamp(min=1.0 / size)
    return scale / scale.mean()  # with the orthonormal FFT, Adam's steps then move pixels as fast as plain ascent


def maximise_filters(model: FERModel, layer_name: str, channels: list[int], meta: dict, steps: int = 96,
                     lr: float = 0.05, fft: bool = True, jitter: int = 2, rotate: float = 5.0, scale: float = 0.05,
                     decay: float = 1e-3, seed: int = 0, size: int = 48,
                     on_step: Callable[[int, int], None] | None = None) -> list[Visualisation]:
    """For each channel, the input that maximises the filter's mean activation, by gradient ascent
    from noise; all channels are optimised together as one batch, several times faster than one at a
    time (bench/explain.py gives both).

    Every step sees a randomly shifted (±jitter px), rotated and scaled copy, so the result must
    excite the filter robustly rather than through one exact pixel pattern; `decay` pulls pixels
    towards mid-gray; a sigmoid keeps the image within the valid pixel range. Each channel's image
    depends only on (channel, seed): its starting noise is seeded by both, every image in a step
    gets the same transform, and the losses add up, so Adam (elementwise) updates each image as if
    it were optimised alone. One filter's pattern thus does not depend on the others chosen, up to
    float rounding in the batched convolutions (which the ascent amplifies to a few gray levels).
    """
    if not channels:
        return []
    norm = meta["normalisation"]
    lo, hi = (0 - norm["mean"]) / norm["std"], (1 - norm["mean"]) / norm["std"]
    noise = torch.cat([torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(seed * 100_003 + c))
                       for c in channels]) * 0.1
    gen = torch.Generator().manual_seed(seed)
    if fft:
        spectrum_scale = _fft_scale(size)
        coeffs = (torch.fft.rfft2(noise, norm="ortho") / spectrum_scale).detach().requires_grad_(True)
        params = [coeffs]
        def render():
            return torch.fft.irfft2(coeffs * spectrum_scale, s=(size, size), norm="ortho")
    else:
        pixels = noise.clone().requires_grad_(True)
        params = [pixels]
        def render():
            return pixels
    # a sigmoid keeps pixels in the valid range smoothly; clamping left most of them pinned at
    # black or white, where they get no gradient back
    def image():
        return lo + (hi - lo) * torch.sigmoid(render())
    transform = AugmentConfig(crop_pad=jitter, flip=False, rotate=rotate, scale=scale, erase=0.0)
    index = torch.arange(len(channels))
    wanted = torch.as_tensor(channels)

    def activations(x):
        return _capture(model, layer_name, x.contiguous(memory_format=torch.channels_last))[index, wanted].mean((1, 2))

    def same_transform(x):
        # the batch as one many-channel image, so augment_batch draws one transform for all
        return augment_batch(x.reshape(1, -1, size, size), transform, gen).reshape(x.shape)

    opt = torch.optim.Adam(params, lr=lr)
    trace = []
    with _LOCK:
        _ready(model)
        with torch.no_grad():
            start = activations(image())
        for step in range(steps):
            opt.zero_grad()
            act = activations(same_transform(image()))
            loss = (-act + decay * (render() ** 2).mean((1, 2, 3))).sum()  # decay: towards mid-gray
            # autograd.grad, not backward(): the shared model's parameters get no .grad
            params[0].grad, = torch.autograd.grad(loss, params)
            opt.step()
            trace.append(act.detach())
            if on_step:
                on_step(step + 1, steps)
        with torch.no_grad():
            final = image()
            end = activations(final)
    pixels = ((final[:, 0] * norm["std"] + norm["mean"]).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    trace = torch.stack(trace, 1).tolist() if trace else [[] for _ in channels]
    return [Visualisation(layer_name, int(c), pixels[i], float(start[i]), float(end[i]), trace[i])
            for i, c in enumerate(channels)]
