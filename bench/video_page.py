"""A video file analysed from the Webcam and video page, as a user meets it on a fresh server: the first analysis
of a short clip, start-up included, and a second one.

    python bench/video_page.py [--runs artifacts/runs] [--run cnn3 resnet10_fer] [--seconds 3] [--pick 3]

For each run: a fresh server (bench/app_startup.py's), Chromium at 1280×720 on the page, Video file mode,
`--pick` seconds (a user finding the file), then a 640×480 30-fps clip of `--seconds` seconds (bench/video.py's)
uploaded and analysed twice; each analysis's time is what the page's result says ("… in X s"), the pace that
clip's seconds over it. Target (issue 35, item 4): ≥ 3× real time. Prints one JSON object.
"""
import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from app_startup import ROOT, idle, start_server  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from helpers import write_clip  # noqa: E402


def analyse(page, clip: Path, run: str) -> float:
    page.locator("[data-testid='stFileUploader'] input[type=file]").set_input_files(str(clip))
    page.get_by_role("button", name=f"Analyse {clip.name} with {run}").click()
    said = page.get_by_text(re.compile(rf"{clip.name} with {run}: \d+ frames")).first
    said.wait_for(timeout=600_000)
    return float(re.search(r"\) in ([\d.]+) s", said.inner_text()).group(1))


def one_run(runs: str, run: str, seconds: int, pick: float, folder: Path) -> dict:
    first, again = (write_clip(folder / f"{name}.mp4", frames=30 * seconds, shape=(480, 640), fps=30, step=1)
                    for name in ("first", "again"))
    server, port = start_server(runs)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(f"http://127.0.0.1:{port}/webcam?run={run}")
            idle(page)
            page.locator("[data-testid='stRadio']").get_by_text("Video file", exact=True).click()
            idle(page)
            time.sleep(pick)
            walls = [analyse(page, first, run), analyse(page, again, run)]
            errors = page.locator("[data-testid='stException']").count()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"first_seconds": walls[0], "first_times_real_time": round(seconds / walls[0], 2),
            "second_seconds": walls[1], "second_times_real_time": round(seconds / walls[1], 2), "errors": errors}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default=str(ROOT / "artifacts" / "runs"))
    p.add_argument("--run", nargs="+", default=["cnn3", "resnet10_fer"])
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--pick", type=float, default=3.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = {run: one_run(args.runs, run, args.seconds, args.pick, Path(tmp)) for run in args.run}
    print(json.dumps({"clip": f"640x480, 30 fps, {args.seconds} s", "pick_seconds": args.pick, "runs": out},
                     indent=1))


if __name__ == "__main__":
    main()
