"""Inference speed per model on this machine, in fp32 and in bf16 autocast side by side: latency at
batch 1, throughput at batch 256, and the time to score all of PublicTest (3,589 faces) as
fer_models.evaluation.evaluate does.

    python bench/inference.py [--runs artifacts/runs/*] [--models cnn3 densenet201_fer] [--precisions fp32 bf16]

With --runs it loads those checkpoints and also scores the bundled PublicTest faces in each precision:
accuracy, and the share of faces whose predicted class agrees with fp32's. Otherwise freshly
initialised registry models (same speed, no accuracy). `auto_precision` is what scoring uses here
(fer_models.nets.precision.inference_precision). Prints one JSON object.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fer_models.datasets.bundle import BUNDLED_PUBLICTEST  # noqa: E402
from fer_models.evaluation.scoring import predict_proba  # noqa: E402
from fer_models.nets.models import create_model, list_models  # noqa: E402
from fer_models.nets.precision import autocast_for, inference_precision  # noqa: E402
from fer_models.runs.checkpoints import load_model  # noqa: E402


@torch.no_grad()
def speed(model, precision: str, faces: np.ndarray, norm: dict) -> dict:
    model.eval().to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    one = torch.randn(1, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    big = torch.randn(256, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    with autocast_for(cpu, precision):
        for _ in range(5):
            model(one)
        latencies = []
        for _ in range(50):
            t = time.perf_counter()
            model(one)
            latencies.append(time.perf_counter() - t)
        model(big)
        t = time.perf_counter()
        for _ in range(3):
            model(big)
        throughput = 3 * 256 / (time.perf_counter() - t)
    t = time.perf_counter()
    probs = predict_proba(model, faces, norm["mean"], norm["std"], precision=precision)
    return {"latency_ms_batch1_median": round(1000 * statistics.median(latencies), 2),
            "latency_ms_batch1_p90": round(1000 * sorted(latencies)[44], 2),
            "images_per_second_batch256": round(throughput, 1),
            "publictest_eval_seconds": round(time.perf_counter() - t, 2)}, probs


def measure(model, precisions, norm=None, labels=None, faces=None) -> dict:
    """Per precision: speed; with real faces and labels also accuracy and agreement with the first precision."""
    if faces is None:
        faces = np.random.default_rng(0).integers(0, 256, (3589, 1, 48, 48), dtype=np.uint8)
    out, first = {}, None
    for precision in precisions:
        out[precision], probs = speed(model, precision, faces, norm or {"mean": 0.5, "std": 0.25})
        if labels is not None:
            pred = probs.argmax(1)
            first = pred if first is None else first
            out[precision]["publictest_accuracy"] = round(float((pred == labels).mean()), 4)
            out[precision][f"agrees_with_{precisions[0]}"] = round(float((pred == first).mean()), 4)
    if len(precisions) == 2:
        a, b = (out[p]["publictest_eval_seconds"] for p in precisions)
        out[f"{precisions[1]}_speedup"] = round(a / b, 2)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--models", nargs="*", default=None)
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    result = {"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "auto_precision": inference_precision("cpu"), "models": {}}
    bundle = np.load(BUNDLED_PUBLICTEST) if args.runs else None
    for run in args.runs:
        model, meta = load_model(run)
        result["models"][Path(run).name] = {"arch": meta["arch"], **measure(
            model, args.precisions, meta["normalisation"], bundle["labels"], bundle["images"])}
    for name in args.models if args.models is not None else ([] if args.runs else list_models()):
        result["models"][name] = {"arch": name, "weights": "random init",
                                  **measure(create_model(name), args.precisions)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
