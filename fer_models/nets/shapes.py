"""Convolution arithmetic: PyTorch's output-size formula, the naive one students write, and a walk
through a model's conv and pooling layers comparing the formula with a real forward pass.

    conv_output_size(48, kernel=7, stride=2, padding=3)     # 24
    shape_walk(create_model("densenet201_fer"))             # one row per stem/transition layer
"""
from __future__ import annotations

import torch
import torch.nn as nn


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """PyTorch's output size (aten's pooling_output_shape): in ceil mode a window may hang over the end, so
    a 2/2 pool of a single pixel still gives 1, but never one that starts in the right-hand padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    if out < 1:
        raise ValueError(f"a {kernel}×{kernel} kernel (dilation {dilation}) spans {dilation * (kernel - 1) + 1} "
                         f"pixels, more than the padded input's {size + 2 * padding}: use a smaller kernel or "
                         "more padding")
    return out


def naive_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> float:
    return (size + 2 * padding - (kernel - 1)) / stride


def _window(module: nn.Module) -> tuple[int, int, int, int, bool]:
    def first(v):
        return v[0] if isinstance(v, (tuple, list)) else v
    return (first(module.kernel_size), first(module.stride), first(module.padding),
            first(getattr(module, "dilation", 1)), bool(getattr(module, "ceil_mode", False)))


def shape_walk(model: nn.Module, input_size: int = 48) -> list[dict]:
    """Every conv and pooling layer outside the dense blocks (for densenet201_fer: the stem and the
    transitions), with its input, the formula's output and the real output from a forward pass."""
    dense = [n for n, m in model.named_modules() if isinstance(m, nn.ModuleDict)]
    layers = {n: m for n, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
              and not any(n.startswith(d + ".") for d in dense)}
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, (tuple(i[0].shape), tuple(o.shape))))
             for n, m in layers.items()]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.input_spec.channels, input_size, input_size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    rows = []
    for name in seen:  # forward order
        (shape_in, shape_out), module = seen[name], layers[name]
        k, s, p, d, ceil = _window(module)
        rows.append({"layer": name, "type": type(module).__name__, "k": k, "s": s, "p": p, "d": d,
                     "input": shape_in[1:], "formula": conv_output_size(shape_in[2], k, s, p, d, ceil),
                     "naive": naive_output_size(shape_in[2], k, s, p), "output": shape_out[1:]})
    return rows
