"""Dashboard speed through a real browser: cold start to the first rendered page, and page switches.

    python bench/app_startup.py [--runs artifacts/runs] [--run NAME]
    python bench/app_startup.py --every-page [--runs artifacts/runs] [--run NAME] [--settle 5]
    python bench/app_startup.py --lesson [--runs artifacts/runs] [--run NAME] [--settle 5]

Starts `streamlit run app.py` on a free port, opens it in Debian's Chromium (Playwright) and times
(1) from launching the server to the first page drawn with no script running, and (2) each click
on a page in the sidebar until that page is drawn, three rounds over every page. Targets
(issue 4): cold start <= 5 s, page switch <= 1 s. With --every-page: for each run, a fresh server,
then (after --settle seconds on the landing page) every page of the sidebar visited once (its first
visit: caches cold) and again (second visit), each timed from the click until the script is idle and
no skeleton is left (targets: first visit <= 2 s, second <= 1 s), and the server's resident memory after
each round. With --lesson: for each run, a fresh server, the six lesson steps walked with Next (first views)
and back with Back (second views), a click on a cell of One convolution's feature map, and the Saliency page's
seven-method grid on a face not seen before (targets, issue 34: first view <= 3 s, Next/Back <= 1 s, cell
click <= 300 ms, seven methods <= 5 s for cnn3 and resnet10_fer, <= 10 s for densenet201_fer). Prints one JSON
object.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PAGES = {"Architecture": "Architecture", "Training history": "Training history",
         "Confusion matrix": "Confusion matrix"}


NAV = ["Architecture", "Training history", "Confusion matrix", "Mistakes", "Saliency", "Filters",
       "Webcam and video", "Train", "The math", "Report"]


def start_server(runs: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                               "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                              cwd=ROOT, env=dict(os.environ, FER_STUDIO_RUNS=runs), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return server, port
        except OSError:
            time.sleep(0.05)


def visit(page, link: str) -> float:
    t = time.perf_counter()
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=link, exact=True).click()
    page.get_by_role("heading", name=link, exact=True).wait_for(timeout=600_000)  # the new page is drawing
    page.wait_for_selector(IDLE, timeout=600_000)
    page.wait_for_selector("[data-testid='stSkeleton']", state="detached", timeout=600_000)
    return round(time.perf_counter() - t, 2)


def resident_mib(pid: int) -> int:
    """The server's resident memory: second visits must not keep adding to it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def per_run(runs: str, only: str | None, settle: float, walk) -> dict:
    """For each run (or `only`): a fresh server, Chromium at 1280×720 on its landing page, `settle` seconds there
    (a reader's pause while torch is imported behind it), then walk(page, base, run, server)'s figures."""
    from fer_models.runs.registry import list_runs

    out = {}
    for run in [r.name for r in list_runs(runs) if only in (None, r.name)]:
        server, port = start_server(runs)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox",
                                                                                        "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(f"http://127.0.0.1:{port}/?run={run}")
                idle(page)
                time.sleep(settle)
                out[run] = {"settle_seconds": settle, **walk(page, f"http://127.0.0.1:{port}", run, server)}
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    return out


def every_page_walk(page, base: str, run: str, server) -> dict:
    first = {link: visit(page, link) for link in NAV}
    after_first = resident_mib(server.pid)
    second = {link: visit(page, link) for link in NAV}
    return {"first_visit_seconds": first, "second_visit_seconds": second,
            "server_rss_mib": {"after_first_visits": after_first, "after_second_visits": resident_mib(server.pid)},
            "errors": page.locator("[data-testid='stException']").count()}


def idle(page) -> None:
    page.wait_for_selector(IDLE, timeout=600_000)
    page.wait_for_selector("[data-testid='stSkeleton']", state="detached", timeout=600_000)


def timed(page, act, done) -> float:
    """Seconds from act() until done() has returned and the script is idle."""
    t = time.perf_counter()
    act()
    try:
        page.wait_for_function(STARTED, timeout=1_000)
    except Exception:  # noqa: BLE001 - the run ended before the poll saw it start
        pass
    done()
    idle(page)
    return round(time.perf_counter() - t, 2)


STARTED = ("() => document.querySelector(\"[data-testid='stApp']\")?.getAttribute('data-test-script-state') "
           "!== 'notRunning'")


def lesson_walk(page, base: str, run: str, server=None) -> dict:
    from fer_models.teaching.lesson import STEPS

    def heading(i: int):
        return page.get_by_role("heading", name=f"{i + 1}/6 · {STEPS[i].question}")

    first = {STEPS[0].slug: timed(page, lambda: page.goto(f"{base}/lesson?run={run}&lesson=layers"),
                                  lambda: heading(0).wait_for(timeout=600_000))}
    for i in range(1, len(STEPS)):
        first[STEPS[i].slug] = timed(page, lambda: page.get_by_role("button", name="Next").click(),
                                     lambda i=i: heading(i).wait_for(timeout=600_000))
    back = {}
    for i in range(len(STEPS) - 2, -1, -1):
        back[STEPS[i].slug] = timed(page, lambda: page.get_by_role("button", name="Back").click(),
                                    lambda i=i: heading(i).wait_for(timeout=600_000))
    page.goto(f"{base}/convolution?run={run}")
    idle(page)
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    clicks = [timed(page, lambda dx=dx: page.mouse.click(box["x"] + box["width"] * dx, box["y"] + box["height"] * 0.3),
                    lambda: None) for dx in (0.3, 0.6, 0.45)]
    page.goto(f"{base}/saliency?run={run}&face=28800")  # a face no step above explained: its maps are not cached
    idle(page)
    seven = timed(page, lambda: page.get_by_role("radio", name="All seven methods").click(),
                  lambda: page.get_by_text("of each map's own maximum").first.wait_for(timeout=600_000))
    return {"lesson_first_view_seconds": first, "lesson_back_seconds": back, "convolution_cell_click_seconds": clicks,
            "saliency_seven_methods_seconds": seven, "errors": page.locator("[data-testid='stException']").count()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", default=str(ROOT / "artifacts" / "runs"))
    p.add_argument("--run", help="run to open (default: the picker's first)")
    p.add_argument("--every-page", action="store_true", help="first and second visit of every page, per run")
    p.add_argument("--lesson", action="store_true", help="the lesson's steps, a convolution click, seven methods")
    p.add_argument("--settle", type=float, default=0.0,
                   help="with --every-page: seconds on the landing page before the first click (default: none)")
    args = p.parse_args()
    if args.lesson or args.every_page:
        sys.path.insert(0, str(ROOT))
        walk = lesson_walk if args.lesson else every_page_walk
        print(json.dumps({"runs": args.runs, "viewport": "1280x720", **per_run(args.runs, args.run, args.settle, walk)},
                         indent=1))
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, FER_STUDIO_RUNS=args.runs)
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                               "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            server_up = time.perf_counter() - t0
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            query = f"?run={args.run}" if args.run else ""
            page.goto(f"http://127.0.0.1:{port}/{query}")
            page.wait_for_selector(IDLE, timeout=120_000)
            page.get_by_role("heading", name="Training history").wait_for()
            cold = time.perf_counter() - t0
            switches = {name: [] for name in PAGES}
            for _ in range(3):
                for link, heading in PAGES.items():
                    t = time.perf_counter()
                    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=link, exact=True).click()
                    page.get_by_role("heading", name=heading).wait_for()
                    page.wait_for_selector(IDLE)
                    switches[link].append(time.perf_counter() - t)
            errors = page.locator("[data-testid='stException']").count()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps({
        "runs": args.runs, "server_up_seconds": round(server_up, 2), "cold_start_seconds": round(cold, 2),
        "page_switch_seconds_median": {k: round(statistics.median(v), 3) for k, v in switches.items()},
        "page_switch_seconds_max": round(max(max(v) for v in switches.values()), 3), "errors": errors}))


if __name__ == "__main__":
    main()
