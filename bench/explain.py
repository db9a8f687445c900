"""Speed of the explain pages' work on this machine: each attribution method per model, one
activation-maximisation image, and ranking PublicTest faces for a layer's filters (face detection:
bench/detect.py).

    python bench/explain.py [--runs artifacts/runs/cnn3 artifacts/runs/densenet201_fer] [--repeat 5]

Targets (issue 5): saliency ≤ 50 ms and Integrated Gradients (50 steps) ≤ 300 ms on cnn3, IG
≤ 2 s on densenet201_fer, one activation-maximisation image ≤ 3 s on cnn3. Prints one JSON object
(medians in ms).
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

from fer_models.explain.attributions import METHODS, attribute, face_input
from fer_models.explain.features import filter_responses, maximise_filters  # noqa: E402
from fer_models.nets.models import create_model  # noqa: E402
from fer_models.runs.checkpoints import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "artifacts" / "data" / "fer2013_publictest.npz"


def median_ms(fn, repeat):
    fn()  # warm-up: first calls pay for allocations and oneDNN kernel selection
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    faces = np.load(FACES)["images"] if FACES.exists() else \
        np.random.default_rng(0).integers(0, 256, (3589, 1, 48, 48), dtype=np.uint8)
    if args.runs:
        models = [load_model(r) for r in args.runs]
    else:
        models = [(create_model(a).eval(), {"arch": a, "normalisation": {"mean": 0.5, "std": 0.25}})
                  for a in ("cnn3", "densenet201_fer")]
    result = {"threads": torch.get_num_threads(), "trained": bool(args.runs), "models": {}}
    for model, meta in models:
        x = face_input(faces[0], meta)
        row = {f"{m}_ms": median_ms(lambda m=m, model=model, x=x: attribute(model, x, m, 3), args.repeat)
               for m in METHODS}
        last = model.deepest_filter_layer()
        row["activation_maximisation_ms"] = median_ms(
            lambda model=model, last=last, meta=meta: maximise_filters(model, last, [0], meta), 2)
        # the Filters page's default: 8 filters of the last conv layer, synthesized as one batch
        row["activation_maximisation_8_filters_ms"] = median_ms(
            lambda model=model, last=last, meta=meta: maximise_filters(model, last, list(range(8)), meta), 2)
        norm = meta["normalisation"]
        t = time.perf_counter()
        filter_responses(model, last, faces, norm["mean"], norm["std"])
        row["rank_publictest_for_last_conv_s"] = round(time.perf_counter() - t, 2)
        result["models"][meta["arch"]] = row
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
