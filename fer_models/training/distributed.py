"""DDP plumbing for the trainer: the device and process group of this rank, sums and gathers across
ranks (plain values when there is one process), and the GPU's memory and utilisation for status.json.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from fer_models.datasets.facedata import DataError


def setup_distributed(requested: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DataError(f"--device {requested}: no CUDA device is visible; use --device cpu")
        device = torch.device(f"cuda:{local_rank}" if world > 1 or requested == "cuda" else requested)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def gpu_usage(device) -> dict:
    """Memory and utilisation of the training GPU for status.json (the Train page shows them)."""
    if device.type != "cuda":
        return {}
    usage = {"gpu_memory_mib": round(torch.cuda.memory_reserved(device) / 2**20)}
    try:
        usage["gpu_utilisation"] = torch.cuda.utilization(device)  # needs NVML (pynvml); absent is fine
    except Exception:  # noqa: BLE001 - whatever NVML raises, the figure is optional
        pass
    return usage


def sum_across(values: list[float], device, world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_across(values: list[float], device, world: int) -> list[list[float]]:
    if world == 1:
        return [values]
    t = torch.tensor(values, dtype=torch.float64, device=device)
    parts = [torch.zeros_like(t) for _ in range(world)]
    dist.all_gather(parts, t)
    return [p.tolist() for p in parts]
