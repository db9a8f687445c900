"""One output cell of a trained network's conv layer, computed by hand: the input patch the kernel sees, the
kernel, their products, the sum and bias, then the batch norm and the ReLU that follow, down to the value in the
feature map, checked against the model's own forward pass (as CNN Explainer does for a toy CNN, Wang et al.
2020, here on the trained FER networks and any face).

    trace = layer_trace(model, "block2.conv", face_input(face48, meta))   # one hooked forward pass
    step = convolution_step(trace, channel=5, row=3, col=7)               # numpy only: fast for every click
    step.value, step.forward_value                                         # equal within float rounding

The forward pass runs on a private view of the model (explain.shared): hooks on a model other sessions share
would fire in their forward passes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from fer_models.explain.shared import private_view
from fer_models.nets.models import FERModel


@dataclass
class LayerTrace:
    """What one forward pass leaves to compute any cell of `layer` by hand."""
    layer: str
    inputs: np.ndarray            # C_in x H x W: what the conv reads (the face itself for a first layer)
    outputs: np.ndarray           # C_out x H' x W': the conv's own output
    weight: np.ndarray            # C_out x C_in x k x k
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    norm: dict | None = None      # the BatchNorm2d that reads the conv's output: gamma, beta, mean, var, eps, name
    norm_outputs: np.ndarray | None = None
    relu: str | None = None       # the ReLU that reads the norm's output, by name
    relu_outputs: np.ndarray | None = None
    first: bool = False           # the conv reads the face itself


@dataclass
class ConvStep:
    channel: int
    row: int
    col: int
    rows_in: list[int]            # the input row of each kernel row: outside 0..H-1 is padding
    cols_in: list[int]
    padded: np.ndarray            # k x k: the tap falls on padding (a zero)
    patch: np.ndarray             # C_in x k x k input values (0 on padding)
    weights: np.ndarray           # C_in x k x k
    products: np.ndarray          # C_in x k x k
    per_channel: np.ndarray       # C_in: each input channel's share of the sum
    bias: float
    conv_value: float             # the sum of the products, plus the bias
    stages: list[tuple[str, float]] = field(default_factory=list)  # (what, value) after the conv, in order
    forward_value: float = 0.0    # the model's own value at the last stage
    after: str = ""               # what the network does next, when it is not a ReLU on this value

    @property
    def value(self) -> float:
        return self.stages[-1][1] if self.stages else self.conv_value

    def ranked_channels(self, top: int = 4) -> tuple[list[int], int]:
        """The input channels that contribute most (by |share|), and how many more there are."""
        order = np.argsort(-np.abs(self.per_channel), kind="stable")
        return [int(c) for c in order[:top]], max(len(order) - top, 0)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@torch.no_grad()
def layer_trace(model: FERModel, layer: str, x: torch.Tensor) -> LayerTrace:
    """One fp32 forward pass of one face, recording the conv `layer`'s input and output and the BatchNorm and
    ReLU that read them straight after (a pre-activation DenseNet layer's conv has its norm before it: then
    only the conv is shown, and its output is the value)."""
    with private_view(model) as view:
        modules = dict(view.named_modules())
        conv = modules.get(layer)
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"{model.arch} has no conv layer '{layer}'; conv layers: {', '.join(view.conv_layers())}")
        if conv.groups != 1:
            raise ValueError(f"{layer} is a grouped convolution, which this view does not take apart")
        seen: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
        names = {id(m): n for n, m in modules.items()}
        first = layer == next(iter(view.conv_layers()))
        handles = [m.register_forward_hook(lambda mod, inp, out: seen.append((names[id(mod)], mod, inp[0], out)))
                   for m in view.modules() if next(m.children(), None) is None]
        try:
            view(x.float())
        finally:
            for h in handles:
                h.remove()
    index = next(i for i, s in enumerate(seen) if s[0] == layer)
    _, _, conv_in, conv_out = seen[index]
    trace = LayerTrace(layer, conv_in[0].float().numpy(), conv_out[0].float().numpy(), conv.weight.float().numpy(),
                       None if conv.bias is None else conv.bias.float().numpy(), _pair(conv.stride),
                       _pair(conv.padding), _pair(conv.dilation), first=first)
    after = next(((n, m, o) for n, m, i, o in seen[index + 1:] if i is conv_out), None)
    if after is not None and isinstance(after[1], nn.BatchNorm2d):
        bn = after[1]
        trace.norm = {"name": after[0], "gamma": bn.weight.float().numpy(), "beta": bn.bias.float().numpy(),
                      "mean": bn.running_mean.float().numpy(), "var": bn.running_var.float().numpy(), "eps": bn.eps}
        trace.norm_outputs = after[2][0].float().numpy()
        relu = next(((n, m, o) for n, m, i, o in seen[index + 1:] if i is after[2]), None)
        if relu is not None and isinstance(relu[1], nn.ReLU):
            trace.relu, trace.relu_outputs = relu[0], relu[2][0].float().numpy()
    return trace


def convolution_step(trace: LayerTrace, channel: int, row: int, col: int) -> ConvStep:
    """Output cell (row, col) of `channel`, by hand, in float64, from the trace's numbers."""
    c_out, h_out, w_out = trace.outputs.shape
    if not (0 <= channel < c_out and 0 <= row < h_out and 0 <= col < w_out):
        raise ValueError(f"{trace.layer} has {c_out} channels of {h_out}×{w_out}: no cell ({channel}, {row}, {col})")
    weights = trace.weight[channel].astype(np.float64)
    k_h, k_w = weights.shape[1:]
    (s_h, s_w), (p_h, p_w), (d_h, d_w) = trace.stride, trace.padding, trace.dilation
    rows_in = [row * s_h - p_h + i * d_h for i in range(k_h)]
    cols_in = [col * s_w - p_w + j * d_w for j in range(k_w)]
    _, h_in, w_in = trace.inputs.shape
    padded = np.array([[not (0 <= r < h_in and 0 <= c < w_in) for c in cols_in] for r in rows_in])
    patch = np.zeros(weights.shape)
    for i, r in enumerate(rows_in):
        for j, c in enumerate(cols_in):
            if not padded[i, j]:
                patch[:, i, j] = trace.inputs[:, r, c]
    products = patch * weights
    bias = float(trace.bias[channel]) if trace.bias is not None else 0.0
    step = ConvStep(channel, row, col, rows_in, cols_in, padded, patch, weights, products,
                    products.sum(axis=(1, 2)), bias, float(products.sum()) + bias)
    step.forward_value = float(trace.outputs[channel, row, col])
    if trace.norm is not None:
        n = trace.norm
        normed = (step.conv_value - n["mean"][channel]) / np.sqrt(float(n["var"][channel]) + n["eps"]) \
            * n["gamma"][channel] + n["beta"][channel]
        step.stages.append(("batch norm", float(normed)))
        step.forward_value = float(trace.norm_outputs[channel, row, col])
        if trace.relu is not None:
            step.stages.append(("ReLU", max(float(normed), 0.0)))
            step.forward_value = float(trace.relu_outputs[channel, row, col])
        else:
            step.after = "the block adds its shortcut to this value before its ReLU"
    return step
