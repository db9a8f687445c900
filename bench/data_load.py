"""FER2013 load time: the first parse of the CSV, then the load from the parse cache.

    python bench/data_load.py [--data ../shared/data/fer2013/fer2013.csv.gz]

Targets (issue 2): parse < 10 s, cached load < 1 s. The cache goes to a fresh temporary folder,
so the first load really parses. Prints one JSON object.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_models.datasets.loading import load_faces  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FER_STUDIO_CACHE"] = cache
        source = Path(args.data)
        beside = source.with_name(source.name + ".cache.npz")
        if beside.exists():
            sys.exit(f"{beside} exists: remove it so that the first load parses")
        t = time.perf_counter()
        data = load_faces(source)
        parse = time.perf_counter() - t
        t = time.perf_counter()
        again = load_faces(source)
        cached = time.perf_counter() - t
        cache_files = list(Path(cache).glob("*.npz")) or ([beside] if beside.exists() else [])
        result = {"data": str(source), "rows": len(data), "splits": data.split_sizes(),
                  "parse_seconds": round(parse, 2), "cached_load_seconds": round(cached, 3),
                  "cache_mib": round(sum(f.stat().st_size for f in cache_files) / 2**20, 1),
                  "same_images": bool((data.images == again.images).all())}
        beside.unlink(missing_ok=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
