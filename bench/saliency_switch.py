"""Saliency with a second run to compare, as a teacher uses it: a face, then each method and two classes in turn.

    python bench/saliency_switch.py --run densenet201_fer --compare resnet10_fer [--think 3] [--faces 28800 28950]

A fresh server (bench/app_startup.py's), Chromium at 1280×720 on the run's Saliency page, the compare run picked,
then for each face (by id, so none was computed before): the face opened, and every method after the first and
the classes "happy" and "sad" picked one after the other, each timed from the click until the page is idle,
`--think` seconds between clicks (a reader looking at the map; 0: clicks as fast as the page allows). Target
(issue 35, item 2): switching method or class ≤ 1 s with the compare on. Prints one JSON object (seconds).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app_startup import ROOT, idle, per_run, timed  # noqa: E402

METHODS = ["SmoothGrad", "Integrated Gradients", "Guided Backprop", "Grad-CAM", "Guided Grad-CAM", "Occlusion"]
CLASSES = ["happy", "sad"]


def pick(page, label: str, option: str) -> None:
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click()
    page.get_by_role("option").filter(has_text=option).first.click()


def switching(compare: str, faces: list[int], think: float):
    def walk(page, base: str, run: str, server) -> dict:
        page.goto(f"{base}/saliency?run={run}")
        idle(page)
        pick(page, "Compare with another run", f"{compare} ·")
        idle(page)
        clicks = {name: [] for name in METHODS + CLASSES}
        opened = []
        for face in faces:
            opened.append(timed(page, lambda face=face: page.goto(f"{base}/saliency?run={run}&face={face}"),
                                lambda: None))
            pick(page, "Method", "Gradient saliency")  # each face starts from the page's default method
            idle(page)
            for name in METHODS:
                time.sleep(think)
                clicks[name].append(timed(page, lambda name=name: pick(page, "Method", name), lambda: None))
            for name in CLASSES:
                time.sleep(think)
                clicks[name].append(timed(page, lambda name=name: pick(page, "Class to explain", name),
                                          lambda: None))
        every = [t for times in clicks.values() for t in times]
        return {"compare": compare, "think_seconds": think, "face_opened_seconds": opened,
                "switch_seconds": clicks, "median": round(statistics.median(every), 2), "max": max(every),
                "over_1_s": sum(t > 1 for t in every), "switches": len(every),
                "errors": page.locator("[data-testid='stException']").count()}
    return walk


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default=str(ROOT / "artifacts" / "runs"))
    p.add_argument("--run", default="densenet201_fer")
    p.add_argument("--compare", default="resnet10_fer")
    p.add_argument("--faces", type=int, nargs="+", default=[28800, 28950])
    p.add_argument("--think", type=float, default=3.0)
    args = p.parse_args()
    print(json.dumps({"viewport": "1280x720", **per_run(args.runs, args.run, 5.0,
                                                         switching(args.compare, args.faces, args.think))}, indent=1))


if __name__ == "__main__":
    main()
