"""What of a network its input size leaves unused, found from the model object and the input size, never typed.

    from fer_models.nets.reach import unused_parts, gradcam_layer_by_rule
    report = unused_parts(create_model("densenet201_fer"))    # dead kernel taps, dropped rows, dead cells
    gradcam_layer_by_rule(create_model("resnet10_fer"))       # "stage4.0.relu2"

Two kinds of evidence, each exact:
- arithmetic: a kernel tap that no output position places over a real (non-padding) pixel only ever
  multiplies zeros, so its weights get no gradient; a window grid that stops before the last row or column
  never reads them;
- gradients: a map cell whose gradient is exactly zero for every class score and random input does not
  influence the output (in eval mode the network is piecewise linear in its input, and random inputs do not
  sit on its kinks).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
# the Grad-CAM layer's rule, in the one wording the Saliency page, the webcam page, the report and the README use
GRADCAM_RULE = ("the last activation wider than 1×1 whose every cell reaches the class scores and through which "
                "the whole input passes")


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def used_taps(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> list[bool]:
    """Along one axis: for each kernel tap, whether some output position places it over a real input pixel."""
    return [any(0 <= o * stride - padding + i * dilation < size for o in range(out)) for i in range(kernel)]


def rows_read(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> list[bool]:
    """Along one axis: for each input pixel, whether some window covers it."""
    read = [False] * size
    for o in range(out):
        for i in range(kernel):
            at = o * stride - padding + i * dilation
            if 0 <= at < size:
                read[at] = True
    return read


@dataclass
class LayerReach:
    layer: str
    kind: str
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    kernel: tuple[int, int] | None = None
    stride: int = 1
    taps_used: int = 0           # kernel taps that can ever see a real pixel (windowed layers)
    taps: int = 0
    dead_parameters: int = 0     # conv weights on those never-used taps
    rows_dropped: int = 0        # trailing rows/columns no window reads
    cols_dropped: int = 0
    cells_alive: int = 0         # output cells whose value influences the class scores
    cells: int = 0

    @property
    def finding(self) -> bool:
        return bool(self.dead_parameters or self.rows_dropped or self.cols_dropped or self.cells_alive < self.cells)


@dataclass
class Reach:
    arch: str
    input_size: int
    parameters: int
    layers: list[LayerReach] = field(default_factory=list)

    @property
    def dead_parameters(self) -> int:
        return sum(r.dead_parameters for r in self.layers)

    @property
    def findings(self) -> list[LayerReach]:
        return [r for r in self.layers if r.finding]


def _map_outputs(model: nn.Module, x: torch.Tensor, grads: bool) -> tuple[dict, dict, torch.Tensor]:
    """Every leaf module's input and output spatial size, and (if grads) its output tensor with its grad kept."""
    sizes, outputs = {}, {}
    names = {m: n for n, m in model.named_modules() if n and next(m.children(), None) is None}

    def hook(module, args, out):
        if not (torch.is_tensor(out) and out.dim() == 4 and args and torch.is_tensor(args[0])):
            return
        name = names[module]
        sizes[name] = (tuple(args[0].shape[2:]), tuple(out.shape[2:]))
        if grads and out.requires_grad:
            out.retain_grad()
            outputs[name] = out

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return sizes, outputs, logits


def _probe(model: nn.Module, samples: int = 3, seed: int = 0) -> tuple[dict, dict]:
    """Sizes of every leaf layer, and for each a H x W bool map of the output cells with a non-zero gradient
    of some class score, on random inputs."""
    spec = model.input_spec
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, spec.channels, spec.size, spec.size, generator=g)
    try:
        with torch.enable_grad():
            sizes, outputs, logits = _map_outputs(model, x, grads=True)
            # one backward pass of a random mix of the class scores: a cell's gradient is then the mix of its
            # per-class gradients, zero only if all of them are (cancelling by chance has probability zero),
            # at a seventh of the cost of one pass per class
            mix = torch.randn(logits.shape, generator=g)
            (logits * mix).sum().backward()
            alive = {name: out.grad.abs().sum((0, 1)) > 0 if out.grad is not None
                     else torch.zeros(out.shape[2:], dtype=torch.bool) for name, out in outputs.items()}
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return sizes, alive


def unused_parts(model: nn.Module) -> Reach:
    """Per leaf layer with a spatial output: sizes, kernel taps that can see a real pixel, the weights that can
    never train, trailing rows/columns a window grid never reads, and output cells that reach the scores."""
    sizes, alive = _probe(model)
    modules = dict(model.named_modules())
    report = Reach(getattr(model, "arch", type(model).__name__), model.input_spec.size,
                   sum(p.numel() for p in model.parameters()))
    for name, ((h, w), (oh, ow)) in sizes.items():
        m = modules[name]
        row = LayerReach(name, type(m).__name__, (h, w), (oh, ow))
        cells = alive.get(name)
        row.cells = oh * ow
        row.cells_alive = int(cells.sum()) if cells is not None else 0
        if isinstance(m, WINDOWED):
            (kh, kw), (sh, sw) = _pair(m.kernel_size), _pair(m.stride)
            (ph, pw), (dh, dw) = _pair(m.padding), _pair(getattr(m, "dilation", 1))
            th, tw = used_taps(h, oh, kh, sh, ph, dh), used_taps(w, ow, kw, sw, pw, dw)
            row.kernel, row.stride = (kh, kw), sh
            row.taps, row.taps_used = kh * kw, sum(th) * sum(tw)
            if isinstance(m, nn.Conv2d):
                per_tap = m.out_channels * m.in_channels // m.groups
                row.dead_parameters = per_tap * (row.taps - row.taps_used)
            else:  # a pooling grid that ends early: a strided conv subsamples by design, so only pools count
                rh, rw = rows_read(h, oh, kh, sh, ph, dh), rows_read(w, ow, kw, sw, pw, dw)
                row.rows_dropped = len(rh) - (max(i for i, r in enumerate(rh) if r) + 1) if any(rh) else h
                row.cols_dropped = len(rw) - (max(i for i, r in enumerate(rw) if r) + 1) if any(rw) else w
        report.layers.append(row)
    return report


def _cuts(model: nn.Module, layers: list[nn.Module]) -> list[bool]:
    """For each layer, whether the class scores depend on the input only through its output (so Grad-CAM
    there accounts for everything): with that output detached, no gradient may reach the input. One pass:
    row j of the batch detaches layer j only (in eval mode the rows do not interact)."""
    spec = model.input_spec
    x = torch.randn(len(layers), spec.channels, spec.size, spec.size, requires_grad=True)

    def detach_row(j):
        def hook(module, args, out):
            keep = torch.ones(len(out), 1, 1, 1, dtype=out.dtype)
            keep[j] = 0
            return out * keep + out.detach() * (1 - keep)
        return hook

    handles = [layer.register_forward_hook(detach_row(j)) for j, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(x).sum().backward()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return [not bool(x.grad[j].abs().sum() > 0) for j in range(len(layers))]


def gradcam_layer_by_rule(model: nn.Module) -> str:
    """The last activation (ReLU) with a map larger than 1 x 1 at which every cell influences the class
    scores and through which the whole input passes. Where a pooling grid drops the last row and column
    downstream (densenet201_fer's transition3), a map there would show evidence the model cannot use."""
    sizes, alive = _probe(model)
    modules = dict(model.named_modules())
    candidates = [n for n in sizes if isinstance(modules[n], nn.ReLU) and n in alive
                  and alive[n].numel() > 1 and bool(alive[n].all())]
    cut = _cuts(model, [modules[n] for n in candidates]) if candidates else []
    for name, whole in zip(reversed(candidates), reversed(cut)):
        if whole:
            return name
    raise ValueError(f"{type(model).__name__}: no activation map wider than 1 x 1 reaches the output at every cell")


def _hw(hw) -> str:
    return f"{hw[0]}×{hw[1]}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}" if n != 1 else noun


def _span(names: list[str]) -> str:
    """'a.b1.c' or, for a run of layers, 'a.b1.c … a.b32.c' shortened to what changes."""
    if len(names) == 1:
        return f"`{names[0]}`"
    first, last = names[0], names[-1]
    common = 0
    while common < min(len(first), len(last)) and first[common] == last[common]:
        common += 1
    cut = first.rfind(".", 0, common) + 1
    return f"`{first}` … `{last[cut:]}`"


def _runs(rows: list[LayerReach], key) -> list[list[LayerReach]]:
    """Consecutive layers (forward order) sharing key."""
    groups: list[list[LayerReach]] = []
    for r in rows:
        if groups and key(groups[-1][-1]) == key(r):
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def findings_in_words(report: Reach) -> list[str]:
    """What the input size leaves unused, as sentences (Markdown); empty when every tap and cell is used."""
    said = []
    dead = [r for r in report.layers if r.dead_parameters]
    for group in _runs(dead, lambda r: (r.input_hw, r.kernel, r.taps_used)):
        r, weights = group[0], sum(g.dead_parameters for g in group)
        what = f"{len(group)} convolutions" if len(group) > 1 else "The convolution"
        said.append(f"{what} {_span([g.layer for g in group])} run on a {_hw(r.input_hw)} map, so of each "
                    f"{_hw(r.kernel)} kernel only {r.taps_used} of {r.taps} taps ever sees a real pixel; the other "
                    f"taps only meet zero padding and their **{weights:,} weights never get a gradient from the "
                    "loss**.")
    if dead:
        share = report.dead_parameters / max(report.parameters, 1)
        said.append(f"In all, **{report.dead_parameters:,} of the network's {report.parameters:,} parameters "
                    f"({share:.1%}) can never train** at a {report.input_size}×{report.input_size} input: "
                    "only weight decay moves them, towards zero.")
    for r in report.layers:
        if r.rows_dropped or r.cols_dropped:
            said.append(f"`{r.layer}` ({r.kind} {r.kernel[0]}/{r.stride}) reads a {_hw(r.input_hw)} map in "
                        f"windows that stop before its last {_count(r.rows_dropped, 'row')} and "
                        f"{_count(r.cols_dropped, 'column')}: nothing there reaches the output.")
    partial = [r for r in report.layers if r.cells_alive < r.cells]
    for group in _runs(partial, lambda r: (r.output_hw, r.cells_alive)):
        r = group[0]
        said.append(f"Only {r.cells_alive} of the {r.cells} cells of the {_hw(r.output_hw)} output of "
                    f"{_span([g.layer for g in group])} influence the class scores; the rest are computed and "
                    "thrown away (a Grad-CAM map there would show evidence the model cannot use).")
    return said


def reach_table(report: Reach):
    """One row per layer with a spatial output, for the Architecture page and the report."""
    import pandas as pd

    return pd.DataFrame([{
        "layer": r.layer, "type": r.kind, "input": _hw(r.input_hw), "output": _hw(r.output_hw),
        "kernel taps used": f"{r.taps_used}/{r.taps}" if r.taps else "",
        "weights never trained": r.dead_parameters,
        "rows × cols dropped": f"{r.rows_dropped} × {r.cols_dropped}" if r.rows_dropped or r.cols_dropped else "",
        "cells reaching the output": f"{r.cells_alive}/{r.cells}",
    } for r in report.layers])
