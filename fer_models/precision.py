"""Which number format a device computes in: one choice for the trainer, the evaluator and the app."""
from __future__ import annotations

from contextlib import nullcontext

import torch


def resolve_precision(requested: str, device: torch.device) -> str:
    """"auto": bf16 where the hardware computes it natively (CUDA, CPUs with AVX512-BF16/AMX), else fp32.

    On a CPU without native bf16 (AVX2 only), autocast emulates it and a training step runs about ten
    times slower than in fp32 (bench/train_throughput.py measures both).
    """
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16"
    try:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # a private probe; without it, assume no native bf16
        native = False
    return "bf16" if native else "fp32"


def autocast_for(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
