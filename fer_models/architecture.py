"""What a model is made of, read off the model object (never typed in): a layer table for a 1x48x48 input.

    from fer_models.architecture import layer_table
    table, totals = layer_table(create_model("cnn3"))
"""
from __future__ import annotations

import pandas as pd
import torch.nn as nn
import torchinfo

from .models import FERModel


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
            "stride": _pair(getattr(m, "stride", None)) if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) else "",
            "padding": _pair(getattr(m, "padding", None)) if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) else "",
            "parameters": int(layer.num_params),
            "mult-adds": int(layer.macs),
        })
    totals = {"parameters": int(stats.total_params), "mult_adds": int(stats.total_mult_adds),
              "layers": len(rows), "activations_mib": round(stats.total_output_bytes / 2**20, 2)}
    return pd.DataFrame(rows), totals
