"""Where a model finds the evidence for a class: Captum attributions of one face (gradient saliency,
SmoothGrad, Integrated Gradients, Guided Backprop, Grad-CAM, Guided Grad-CAM, Occlusion), each with
what it shows and where it misleads, and the model's probabilities.

    x = face_input(face48, meta)                           # 1 x 1 x 48 x 48, normalised as in training
    maps = attribute_classes(model, x, "gradcam", [3, 4])   # one Attribution per class, one batch
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fer_models.datasets.augment import to_input
from fer_models.explain.shared import private_view, ready
from fer_models.nets.models import FERModel, layer_output_sizes
from fer_models.nets.precision import autocast_for, inference_precision
from fer_models.nets.reach import GRADCAM_RULE


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
           f"2017). Class-specific and robust, but as coarse as that layer: {GRADCAM_RULE} (12×12 for cnn3; "
           "6×6 for resnet10_fer, where it equals CAM; 6×6 for "
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


def gradcam_map_size(model: FERModel) -> tuple[int, int]:
    """Height and width of the Grad-CAM layer's output for one face."""
    return layer_output_sizes(model.arch)[model.gradcam_layer_name]


@torch.no_grad()
def probabilities(model: FERModel, x: torch.Tensor) -> np.ndarray:
    with autocast_for(x.device, inference_precision(x.device)):
        return ready(model)(x).float().softmax(1).numpy()


def _attribute_batch(model: FERModel, x: torch.Tensor, method: str, targets: list[int]):
    """Raw Captum attributions for len(targets) copies of one face; (N x 1 x 48 x 48, delta or None)."""
    from captum.attr import (
        GuidedBackprop,
        GuidedGradCam,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Occlusion,
        Saliency,
    )

    xs = x.detach().repeat(len(targets), 1, 1, 1).requires_grad_(True)
    baseline = torch.zeros_like(xs)  # 0 in normalised units = the dataset's mean gray
    if method == "saliency":
        return Saliency(model).attribute(xs, target=targets, abs=True), None
    if method == "smoothgrad":
        return _smoothgrad(model, xs, targets), None
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


def _smoothgrad(model: FERModel, xs: torch.Tensor, targets: list[int], samples: int = 25,
                seed: int = 0) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): |gradient| averaged over `samples` noisy copies of each input, the
    noise 15% of the face's pixel range. The noise comes from a generator of its own, seeded: the same face
    gives the same map on every call and in every thread (Captum's NoiseTunnel draws from torch's global
    generator, which concurrent sessions share)."""
    from captum.attr import Saliency

    faces = xs.detach()  # a scalar from a tensor that needs its gradient warned on every call
    spread = 0.15 * float(faces.max() - faces.min())
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((samples, *xs.shape), generator=generator) * spread
    noisy = (faces.unsqueeze(0) + noise).reshape(-1, *xs.shape[1:]).requires_grad_(True)
    grads = Saliency(model).attribute(noisy, target=list(targets) * samples, abs=True)
    return grads.reshape(samples, *xs.shape).mean(0)


def attribute(model: FERModel, x: torch.Tensor, method: str, target: int) -> Attribution:
    """One map for one face (1 x 1 x 48 x 48 normalised input) and one class."""
    return attribute_classes(model, x, method, [target])[0]


def attribute_classes(model: FERModel, x: torch.Tensor, method: str, targets: list[int]) -> list[Attribution]:
    """The map of `method` for each class in `targets`, computed as one batch."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method '{method}'; choose one of {', '.join(METHODS)}")
    with private_view(model) as view:
        raw, delta = _attribute_batch(view, x, method, list(targets))
    maps = raw.detach().float().sum(1).numpy()  # one input channel: the sum is that channel
    deltas = delta.detach().abs().numpy() if delta is not None else [None] * len(targets)
    return [Attribution(method, t, m.astype(np.float32), METHODS[method].signed,
                        None if d is None else float(d)) for t, m, d in zip(targets, maps, deltas)]
