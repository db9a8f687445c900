"""Which number format a device computes in: one choice for the trainer, the evaluator and the app."""
from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(requested: str, device: torch.device) -> str:
    """"auto": bf16 where the hardware computes it natively (CUDA, CPUs with AVX512-BF16/AMX), else fp32.

    On a CPU without native bf16 (AVX2 only), autocast emulates it and a training step runs about ten
    times slower than in fp32 (bench/train_throughput.py measures both).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision {requested!r}: use one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16"
    return "bf16" if _cpu_has_native_bf16() else "fp32"


@lru_cache(maxsize=1)
def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private probe; without it, assume no native bf16
        return False


def inference_precision(device: torch.device | str = "cpu", requested: str = "auto") -> str:
    """The format scoring runs in: bf16 autocast where it is native (agreement with fp32 is tested, and
    bench/inference.py times both), fp32 elsewhere, where emulated bf16 is ~10x slower."""
    return resolve_precision(requested, torch.device(device))


def autocast_for(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
