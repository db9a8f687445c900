"""What a network is made of, in one call: its layer table and totals, its block chain, what the 48x48
input leaves unused and its conv arithmetic, for the Architecture page, The math, the lesson and the report.

    s = structure_of("densenet201_fer")
    s.totals["parameters"]; s.layers; s.chain_html; s.findings; s.reach_table; s.walk; s.dense_blocks

Everything is read off one untrained instance per architecture (shapes, counts and which cells reach the
scores do not depend on the weights), computed once per process and kept: the gradient probe alone costs
densenet201_fer 0.4 s. torchinfo, the probe and the walk hook into that instance, so they run under one lock.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import pandas as pd
import torch.nn as nn

from fer_models.nets.architecture import block_chain_html, dense_blocks, layer_table
from fer_models.nets.models import FERModel, create_model
from fer_models.nets.reach import Reach, findings_in_words, reach_table, unused_parts
from fer_models.nets.shapes import shape_walk


@dataclass(frozen=True)
class Structure:
    arch: str
    model: FERModel              # the shared untrained instance: read its modules, never run or hook it
    layers: pd.DataFrame         # one row per leaf layer: output shape, kernel, stride, padding, parameters, mult-adds
    totals: dict                 # parameters, mult_adds, layers, activations_mib
    chain_html: str              # the network as a chain of blocks, the tensor shape on every arrow
    reach: Reach                 # kernel taps, weights and cells the input size leaves unused
    findings: list[str]          # the same in sentences (empty when nothing is unused)
    reach_table: pd.DataFrame
    walk: pd.DataFrame           # the stem's and transitions' conv arithmetic, formula against forward pass

    @property
    def dense_blocks(self) -> dict[str, nn.ModuleDict]:
        return dense_blocks(self.model)


_KEPT: dict[str, Structure] = {}
_LOCK = threading.Lock()  # one computation at a time: each hooks into the instance it measures


def structure_of(arch: str) -> Structure:
    """The structure of a registered architecture (KeyError naming the registered ones otherwise)."""
    with _LOCK:
        if arch not in _KEPT:
            model = create_model(arch)
            table, totals = layer_table(model)
            reach = unused_parts(model)
            _KEPT[arch] = Structure(arch, model, table, totals, block_chain_html(model), reach,
                                    findings_in_words(reach), reach_table(reach), pd.DataFrame(shape_walk(model)))
        return _KEPT[arch]
