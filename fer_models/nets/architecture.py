"""What a model is made of, read off the model object (never typed in): a layer table for a 1x48x48 input.

    from fer_models.nets.architecture import layer_table
    table, totals = layer_table(create_model("cnn3"))
"""
from __future__ import annotations

import pandas as pd
import torch.nn as nn
import torchinfo

from fer_models.core.constants import EMOTIONS
from fer_models.nets.models import FERModel

WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)  # the layers with a stride and a padding

def _pair(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return "×".join(str(v) for v in value) if len(set(value)) > 1 else str(value[0])
    return str(value)


def layer_table(model: FERModel) -> tuple[pd.DataFrame, dict]:
    """One row per leaf layer in forward order: name, type, output shape, kernel, stride, padding,
    parameters, mult-adds; and totals (parameters, mult-adds, activation memory)."""
    spec = model.input_spec
    was_training = model.training
    stats = torchinfo.summary(model, input_size=(1, spec.channels, spec.size, spec.size), verbose=0,
                              depth=100, col_names=("output_size", "num_params", "mult_adds"))
    model.train(was_training)
    names = {id(m): n for n, m in model.named_modules()}
    rows = []
    for layer in stats.summary_list:
        if not layer.is_leaf_layer:
            continue
        m = layer.module
        rows.append({
            "layer": names.get(id(m), layer.var_name),
            "type": layer.class_name,
            "output shape": "×".join(str(d) for d in layer.output_size[1:]),
            "kernel": _pair(getattr(m, "kernel_size", None)),
            "stride": _pair(getattr(m, "stride", None)) if isinstance(m, WINDOWED) else "",
            "padding": _pair(getattr(m, "padding", None)) if isinstance(m, WINDOWED) else "",
            "parameters": int(layer.num_params),
            "mult-adds": int(layer.macs),
        })
    totals = {"parameters": int(stats.total_params), "mult_adds": int(stats.total_mult_adds),
              "layers": len(rows), "activations_mib": round(stats.total_output_bytes / 2**20, 2)}
    return pd.DataFrame(rows), totals


def _stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks a reader thinks in: top-level children, with Sequential containers opened one level."""
    stages = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and not hasattr(child, "arch") and len(child) > 1 \
                and any(isinstance(c, (nn.ModuleDict, nn.Sequential)) for c in child.children()):
            stages += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            stages.append((name, child))
    return stages


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.ModuleDict) and all(hasattr(m, "conv1") and hasattr(m, "conv2")
                                                 for m in module.values()):  # a dense block, with its arithmetic
        first = next(iter(module.values()))
        c0, growth, n = first.conv1.in_channels, first.conv2.out_channels, len(module)
        return f"dense block: {n} layers, each adds {growth} channels ({c0} + {n}·{growth} = {c0 + n * growth})"
    if isinstance(module, nn.ModuleDict):
        return f"{type(module).__name__.strip('_')} ×{len(module)}"
    blocks = list(module.children())
    if isinstance(module, nn.Sequential) and blocks and all(type(b) is type(blocks[0]) for b in blocks) \
            and next(blocks[0].children(), None) is not None:  # a stage of repeated blocks (a residual stage)
        return f"{type(blocks[0]).__name__.strip('_')} ×{len(blocks)}"
    if isinstance(module, nn.Sequential):
        return " → ".join(type(m).__name__ for m in module.children())
    return type(module).__name__


def block_diagram(model: FERModel) -> list[dict]:
    """The network as a chain of stages with the tensor shape after each (for one face), from forward hooks."""
    import torch

    spec = model.input_spec
    stages = _stages(model)
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
             for n, m in stages]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, spec.channels, spec.size, spec.size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [{"name": n, "what": _describe(m), "shape": shapes.get(n),
             "parameters": sum(p.numel() for p in m.parameters()), "single": next(m.children(), None) is None}
            for n, m in stages]


def compact_diagram(model: FERModel) -> list[dict]:
    """block_diagram with each run of single layers (a stem's conv, norm, ReLU, pool) merged into one stage,
    so that the chain fits a projector's screen."""
    merged: list[dict] = []
    for stage in block_diagram(model):
        last = merged[-1] if merged else None
        if stage["single"] and last is not None and last["single"]:
            last["names"].append(stage["name"])
            last["what"] += f" → {stage['what']}"
            last["parameters"] += stage["parameters"]
            last["shape"] = stage["shape"]
        else:
            merged.append({**stage, "names": [stage["name"]]})
    for stage in merged:
        names = stage.pop("names")
        if len(names) > 1:
            stage["name"] = f"{names[0]} … {names[-1].rsplit('.', 1)[-1]}"
    return merged


def _shape(shape) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def block_chain_html(model: FERModel, font_px: int = 15) -> str:
    """The compact chain as boxes that wrap across the width (HTML with its own style): the whole network
    on one screen with text at font_px, the tensor shape (channels×height×width) on every arrow."""
    from html import escape

    spec = model.input_spec
    box = ("display:inline-flex;flex-direction:column;justify-content:center;background:#eef3fb;"
           "border:1px solid #9fb3d1;border-radius:8px;padding:6px 10px;max-width:260px;line-height:1.3")
    arrow = "display:inline-flex;flex-direction:column;align-items:center;color:#333;padding:0 4px"
    parts = [f'<div style="{box};background:#fff"><b>input face</b></div>']
    shape = (spec.channels, spec.size, spec.size)
    for stage in compact_diagram(model):
        parts.append(f'<div style="{arrow}"><span>{_shape(shape)}</span><span>→</span></div>')
        params = f"<br><span style='color:#444'>{stage['parameters']:,} parameters</span>" if stage["parameters"] \
            else ""
        parts.append(f'<div style="{box}"><b>{escape(stage["name"])}</b>{escape(stage["what"])}{params}</div>')
        shape = stage["shape"]
    parts.append(f'<div style="{arrow}"><span>{_shape(shape)}</span><span>→</span></div>')
    parts.append(f'<div style="{box};background:#fff"><b>{len(EMOTIONS)} class scores</b></div>')
    return (f'<div style="display:flex;flex-wrap:wrap;align-items:center;row-gap:12px;font-size:{font_px}px;'
            f'color:#111">{"".join(parts)}</div>')


def dense_blocks(model: nn.Module) -> dict[str, nn.ModuleDict]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.ModuleDict) and
            all(hasattr(layer, "conv1") for layer in m.values())}


def dense_block_dot(block: nn.ModuleDict, head: int = 3) -> str:
    """One dense block: its first `head` layers and its last drawn with every connection, the layers between
    as one node that says what each of them does, then the concatenation. Text at 14 pt, never scaled down."""
    layers = list(block.values())
    growth, c0, n = layers[0].conv2.out_channels, layers[0].conv1.in_channels, len(layers)
    shown = list(range(1, n + 1)) if n <= head + 2 else list(range(1, head + 1)) + [n]
    lines = ['digraph D {', 'rankdir=TB; nodesep=0.25; ranksep=0.3; node [shape=box, style="rounded,filled", '
             'fillcolor="#eef3fb", fontname="Helvetica", fontsize=14]; edge [color="#7f8fa6", arrowsize=0.6];',
             f'x0 [label="block input: {c0} channels", fillcolor="#ffffff"];']
    nodes = ["x0"]
    for k in shown:
        if k == n and n > head + 2:
            lines.append(f'mid [label="layers {head + 1} … {n - 1}: each reads all earlier outputs\\n'
                         f'and adds {growth} channels", style="rounded,dashed"];')
            lines.append(f"{nodes[-1]} -> mid;")
            nodes.append("mid")
        lines.append(f'x{k} [label="layer {k}: in {c0} + {growth}·{k - 1} = {c0 + growth * (k - 1)}, '
                     f'out {growth}"];')
        # the chain top to bottom; every earlier output also feeds this layer (dense connectivity)
        lines += [f"{j} -> x{k}" + (";" if j == nodes[-1] else " [constraint=false];") for j in nodes]
        nodes.append(f"x{k}")
    lines.append(f'cat [label="concatenation: {c0} + {n}·{growth} = {c0 + growth * n} channels", '
                 'fillcolor="#ffffff"];')
    lines += [f"{j} -> cat" + (";" if j == nodes[-1] else " [constraint=false];") for j in nodes]
    return "\n".join(lines + ["}"])
