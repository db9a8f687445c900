"""Inference speed per model on this machine: latency at batch 1, throughput at batch 256, and the
time to score all of PublicTest (3,589 faces) as fer_models.evaluate does.

    python bench/inference.py [--runs artifacts/runs/*] [--models cnn3 densenet201_fer]

With --runs it loads those checkpoints; otherwise freshly initialised registry models (same
speed, no accuracy). Prints one JSON object.
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

from fer_models.checkpoints import load_model  # noqa: E402
from fer_models.evaluate import predict_proba  # noqa: E402
from fer_models.models import create_model, list_models  # noqa: E402


@torch.no_grad()
def measure(model, n_eval=3589):
    model.eval().to(memory_format=torch.channels_last)
    one = torch.randn(1, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    for _ in range(5):
        model(one)
    latencies = []
    for _ in range(50):
        t = time.perf_counter()
        model(one)
        latencies.append(time.perf_counter() - t)
    big = torch.randn(256, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    model(big)
    t = time.perf_counter()
    for _ in range(3):
        model(big)
    throughput = 3 * 256 / (time.perf_counter() - t)
    faces = np.random.default_rng(0).integers(0, 256, (n_eval, 1, 48, 48), dtype=np.uint8)
    t = time.perf_counter()
    predict_proba(model, faces, 0.5, 0.25)
    return {"latency_ms_batch1_median": round(1000 * statistics.median(latencies), 2),
            "latency_ms_batch1_p90": round(1000 * sorted(latencies)[44], 2),
            "images_per_second_batch256": round(throughput, 1),
            "publictest_eval_seconds": round(time.perf_counter() - t, 2)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--models", nargs="*", default=None)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    result = {"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "models": {}}
    for run in args.runs:
        model, meta = load_model(run)
        result["models"][Path(run).name] = {"arch": meta["arch"], **measure(model)}
    for name in args.models if args.models is not None else ([] if args.runs else list_models()):
        result["models"][name] = {"arch": name, "weights": "random init", **measure(create_model(name))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
