"""How long the Filters page takes to show a layer's first patterns, for every conv layer it offers: live (rank
the 3,589 bundled PublicTest faces for the layer, then synthesise the two most active filters' patterns, the
page's first part for a layer its run's atlas lacks) and from the atlas (read the layer's part of atlas.npz, the
page's first visit, with the eight patterns the page shows by default in it: a layer with fewer is "lacking").

    python bench/filters_layers.py --run artifacts/runs/densenet201_fer [--every 10] [--live-every 40]

Target (issue 35, item 1): every layer's first patterns in ≤ 10 s on an idle 2-core machine. `--every N`
reads the atlas for every Nth layer (and the page's first layer), `--live-every N` times the live path for
every Nth (it costs up to 30 s a layer on densenet201_fer). Prints one JSON object (seconds).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_models.datasets.bundle import BUNDLED_PUBLICTEST  # noqa: E402
from fer_models.datasets.loading import load_faces  # noqa: E402
from fer_models.explain.atlas import LAYER_PATTERNS, checkpoint_hash, load_atlas  # noqa: E402
from fer_models.explain.features import Ranking, filter_responses, maximise_filters  # noqa: E402
from fer_models.runs.checkpoints import load_model  # noqa: E402

LIVE_FIRST = 2  # the patterns the page synthesises first, alone (app_pages/filters.py's FIRST)


def summary(times: dict) -> dict:
    values = list(times.values())
    return {"layers": len(values), "median_s": round(statistics.median(values), 3) if values else None,
            "max_s": round(max(values), 3) if values else None,
            "slowest": max(times, key=times.get) if values else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--live-every", type=int, default=0, help="0: no live timing")
    args = parser.parse_args()
    model, meta = load_model(args.run)
    faces = load_faces(BUNDLED_PUBLICTEST, splits=["PublicTest"])
    names, first = list(model.conv_layers()), model.deepest_filter_layer()
    weights = checkpoint_hash(args.run)
    atlas_s, short = {}, []
    for i, name in enumerate(names):
        if i % args.every and name != first:
            continue
        started = time.perf_counter()
        part = load_atlas(args.run, name, faces.ids, weights)
        atlas_s[name] = time.perf_counter() - started
        wanted = 0 if model.sees_the_image(name) else LAYER_PATTERNS
        if part is None or sum(part.pattern(c) is not None for c in part.ranking.most_active()[:wanted]) < wanted:
            short.append(name)  # the page would compute this layer's first patterns live
    live_s = {}
    norm = meta["normalisation"]
    for i, name in enumerate(names):
        if not args.live_every or (i % args.live_every and name not in (first, names[-1])):
            continue
        started = time.perf_counter()
        ranking = Ranking.of(filter_responses(model, name, faces.images, norm["mean"], norm["std"]))
        if not model.sees_the_image(name):
            maximise_filters(model, name, ranking.most_active()[:LIVE_FIRST], meta)
        live_s[name] = time.perf_counter() - started
    print(json.dumps({"run": Path(args.run).name, "conv_layers": len(names), "atlas": summary(atlas_s),
                      "layers_the_atlas_lacks": short, "live": summary(live_s)}, indent=1))


if __name__ == "__main__":
    main()
