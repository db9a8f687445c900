"""What a conv layer's filters respond to: a face's feature maps, every face's peak response to every
filter (rankings), and the input that excites a filter most, by gradient ascent (activation
maximisation, Olah et al. "Feature Visualization", Distill 2017).

    maps = feature_maps(model, "block3.conv", face_input(face48, meta))       # C x H x W
    patterns = maximise_filters(model, "block3.conv", [0, 5, 9], meta)      # one batch, 48 x 48 each
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from fer_models.datasets.augment import AugmentConfig, augment_batch, to_input
from fer_models.explain.shared import private_view
from fer_models.nets.models import FERModel
from fer_models.nets.precision import autocast_for, inference_precision


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


def capture(model: FERModel, layer_name: str, x: torch.Tensor) -> torch.Tensor:
    """The output of one layer for input x; the forward pass stops there. It hooks `model`: pass a private
    view (explain.shared), never a model other threads may be running."""
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
    with private_view(model) as view:
        return capture(view, layer_name, x)[0].float().contiguous().numpy()


@torch.no_grad()
def filter_responses(model: FERModel, layer_name: str, images_uint8: np.ndarray, mean: float, std: float,
                     batch_size: int = 256, on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """N x C: each face's peak activation (the spatial maximum) of every filter of `layer_name`;
    one pass over the faces gives every filter's ranking at once. The peak, not the mean, as in
    dataset-example galleries: the mean favours high-contrast faces for every filter alike, the
    peak finds the faces that hold the local feature the filter detects."""
    out = []
    with private_view(model) as view, autocast_for(torch.device("cpu"), inference_precision("cpu")):
        for start in range(0, len(images_uint8), batch_size):
            x = to_input(torch.as_tensor(images_uint8[start:start + batch_size]), mean, std)
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(capture(view, layer_name, x).float().amax((2, 3)))
            if on_batch is not None:
                on_batch(min(start + batch_size, len(images_uint8)), len(images_uint8))
    return torch.cat(out).numpy()


TOP = 9  # faces kept per filter: the 3 x 3 mosaic every view of a filter draws


@dataclass
class Ranking:
    """What a layer's filters respond to over a set of faces, as much as any view of them uses: each filter's
    mean peak response (which filters are the most active) and its TOP faces with the highest peak, highest
    first. Kept this small, every layer's fits in a run's atlas (densenet201_fer's 200 layers with their
    patterns: 1.4 MiB)."""
    mean: np.ndarray   # C float32
    top: np.ndarray    # C x TOP face indices
    peak: np.ndarray   # C x TOP float32: those faces' peak responses

    @classmethod
    def of(cls, responses: np.ndarray) -> "Ranking":
        """From N x C responses (filter_responses)."""
        k = min(TOP, len(responses))
        top = np.argpartition(-responses, k - 1, axis=0)[:k].T
        peak = np.take_along_axis(responses.T, top, 1)
        order = np.argsort(-peak, 1, kind="stable")
        return cls(responses.mean(0).astype(np.float32), np.take_along_axis(top, order, 1),
                   np.take_along_axis(peak, order, 1).astype(np.float32))

    def most_active(self) -> list[int]:
        """Every filter, highest mean peak response first."""
        return [int(c) for c in np.argsort(-self.mean, kind="stable")]


@torch.no_grad()
def layer_rankings(model: FERModel, layer_names: list[str], images_uint8: np.ndarray, mean: float, std: float,
                   batch_size: int = 256, on_batch: Callable[[int, int], None] | None = None) -> dict[str, Ranking]:
    """The Ranking of every named layer, from one forward pass over the faces (a pass per layer cost
    densenet201_fer's 200 layers 200 passes)."""
    peaks: dict[str, list] = {name: [] for name in layer_names}
    with private_view(model) as view, autocast_for(torch.device("cpu"), inference_precision("cpu")):
        own = dict(view.named_modules())
        for name in set(layer_names) - set(own):
            _layer(view, name)  # raises, naming the conv layers there are
        handles = [own[name].register_forward_hook(
            lambda module, inputs, output, name=name: peaks[name].append(output.float().amax((2, 3))))
            for name in layer_names]
        try:
            for start in range(0, len(images_uint8), batch_size):
                x = to_input(torch.as_tensor(images_uint8[start:start + batch_size]), mean, std)
                view(x.contiguous(memory_format=torch.channels_last))
                if on_batch is not None:
                    on_batch(min(start + batch_size, len(images_uint8)), len(images_uint8))
        finally:
            for handle in handles:
                handle.remove()
    return {name: Ranking.of(torch.cat(found).numpy()) for name, found in peaks.items()}


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
        return capture(view, layer_name, x.contiguous(memory_format=torch.channels_last))[index, wanted].mean((1, 2))

    def same_transform(x):
        # the batch as one many-channel image, so augment_batch draws one transform for all
        return augment_batch(x.reshape(1, -1, size, size), transform, gen).reshape(x.shape)

    opt = torch.optim.Adam(params, lr=lr)
    trace = []
    with private_view(model) as view:
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
