"""What a model is made of, read off the model object (never typed in): a layer table for a 1x48x48 input.

    from fer_models.architecture import layer_table
    table, totals = layer_table(create_model("cnn3"))
"""
from __future__ import annotations

import pandas as pd
import torch.nn as nn
import torchinfo

from .constants import EMOTIONS
from .models import FERModel


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
    if isinstance(module, nn.ModuleDict):  # a dense block: its layers in order
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
             "parameters": sum(p.numel() for p in m.parameters())} for n, m in stages]


def _shape(shape) -> str:
    return "×".join(map(str, shape)) if shape else "?"


def _wrap_chain(what: str, per_line: int = 3) -> str:
    """A long chain of layers ("BatchNorm1d → Linear → ReLU → …") over several label lines: the widest
    box sets the diagram's width, and the page scales the whole diagram down to fit its column."""
    parts = what.split(" → ")
    rows = [" → ".join(parts[i:i + per_line]) for i in range(0, len(parts), per_line)]
    return " →\\n".join(rows)


def block_diagram_dot(model: FERModel) -> str:
    """Graphviz DOT of block_diagram: one box per stage, the tensor shape on every edge."""
    spec = model.input_spec
    lines = ['digraph G {', 'rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontsize=10];',
             'input [label="input face", fillcolor="#ffffff"];']
    previous, shape = "input", (spec.channels, spec.size, spec.size)
    for i, stage in enumerate(block_diagram(model)):
        node = f"s{i}"
        params = f"\\n{stage['parameters']:,} parameters" if stage["parameters"] else ""
        lines.append(f'{node} [label="{stage["name"]}\\n{_wrap_chain(stage["what"])}{params}"];')
        lines.append(f'{previous} -> {node} [label=" {_shape(shape)}"];')
        previous, shape = node, stage["shape"]
    lines.append(f'logits [label="{len(EMOTIONS)} class scores", fillcolor="#ffffff"];')
    lines.append(f'{previous} -> logits [label=" {_shape(shape)}"];')
    return "\n".join(lines + ["}"])


def dense_blocks(model: nn.Module) -> dict[str, nn.ModuleDict]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.ModuleDict) and
            all(hasattr(layer, "conv1") for layer in m.values())}


def dense_block_dot(block: nn.ModuleDict, max_layers: int = 12) -> str:
    """One dense block: every layer's input channels and its connections to all earlier outputs."""
    layers = list(block.values())[:max_layers]
    growth = layers[0].conv2.out_channels
    c0 = layers[0].conv1.in_channels
    # top to bottom, like the blocks diagram beside it: left to right, 14 boxes in a row were scaled
    # down to unreadable text in the page's column
    lines = ['digraph D {', 'rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica", fontsize=10]; edge [color="#7f8fa6", arrowsize=0.5];',
             f'x0 [label="block input\\n{c0} ch", fillcolor="#ffffff"];']
    for k, layer in enumerate(layers, start=1):
        cin = layer.conv1.in_channels
        lines.append(f'x{k} [label="layer {k}\\nin {cin} = {c0} + {growth}·{k - 1}\\nout {growth}"];')
        # the chain top to bottom; the skip connections arc beside it without moving the nodes
        lines += [f"x{j} -> x{k}" + (";" if j == k - 1 else " [constraint=false];") for j in range(k)]
    if len(block) > max_layers:
        lines.append(f'more [label="… {len(block) - max_layers} more layers", shape=plaintext, fillcolor="#ffffff"];')
        lines.append(f"x{len(layers)} -> more;")
    lines.append(f'cat [label="concatenation\\n{c0} + {growth}·{len(block)} = {c0 + growth * len(block)} ch", '
                 'fillcolor="#ffffff"];')
    lines += [f"x{j} -> cat" + (";" if j == len(layers) else " [constraint=false];") for j in range(len(layers) + 1)]
    return "\n".join(lines + ["}"])
