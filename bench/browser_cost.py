"""What each page costs the browser that opens it: Chromium's CPU seconds, what it spent them on, bytes received.

    python bench/browser_cost.py [--runs artifacts/runs] [--run resnet10_fer] [--visits 3]

One Chromium at 1280x720 opens every page of a warm server by its URL (a full page load, as bench/load.py's
users do), one page at a time, each page once unmeasured and then `--visits` times. Per page, the median over
the visits of: the browser's CPU seconds (all of Chromium's processes, from /proc), the renderer's main-thread
seconds in script, style and layout (Chrome's own Performance metrics), the bytes it received (HTTP and the
websocket Streamlit draws through), the DOM's elements, and the seconds until the page is drawn. A class of N
browsers sharing one machine's cores pays N times a page's CPU seconds: the pages that cost the browser most
are where bench/load.py's class waits longest once the server is quick.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import ARGS, CHROMIUM, IDLE, PAGES, ROOT, cores, cpu_seconds, start_server  # noqa: E402

METRICS = {"ScriptDuration": "script_s", "RecalcStyleDuration": "style_s", "LayoutDuration": "layout_s",
           "TaskDuration": "main_thread_s"}


def chromium_cpu_seconds() -> float:
    """CPU seconds of every Chromium process descended from this one (the browser, its renderers, GPU and
    utility processes; not the server, which is Python)."""
    parents, names = {}, {}
    for entry in Path("/proc").iterdir():
        try:
            name, rest = (entry / "stat").read_text().rsplit(")", 1) if entry.name.isdigit() else ("", "")
        except OSError:
            continue
        if name:
            parents[int(entry.name)], names[int(entry.name)] = int(rest.split()[1]), name.split("(", 1)[1]

    def mine(pid: int) -> bool:
        while pid in parents and pid not in (os.getpid(), 0, 1):
            pid = parents[pid]
        return pid == os.getpid()
    total = 0.0
    for pid, name in names.items():
        if name.startswith("chrom") and mine(pid):
            try:
                total += cpu_seconds(pid)
            except OSError:  # ended since the listing
                pass
    return total


def visit(page, cdp, url: str, received: list) -> dict:
    before_cpu, before = chromium_cpu_seconds(), metrics(cdp)
    received.clear()
    started = time.perf_counter()
    page.goto(url, timeout=600_000)
    page.wait_for_selector(IDLE, timeout=600_000)
    page.wait_for_selector("[data-testid='stSkeleton']", state="detached", timeout=600_000)
    drawn = time.perf_counter() - started
    page.wait_for_timeout(500)  # what the browser draws after the script's end (Plotly, pictures decoding)
    after = metrics(cdp)
    out = {"browser_cpu_s": chromium_cpu_seconds() - before_cpu, "drawn_s": drawn,
           "received_kib": sum(received) / 1024,
           "elements": page.evaluate("document.getElementsByTagName('*').length")}
    for name, key in METRICS.items():
        now, then = after.get(name, 0.0), before.get(name, 0.0)
        out[key] = now - then if now >= then else now  # a full page load restarts the new document's counters
    return out


def metrics(cdp) -> dict:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def measure(runs: str, run: str, visits: int, chromium: str = CHROMIUM) -> dict:
    from playwright.sync_api import sync_playwright

    server, port = start_server(runs)
    base = f"http://127.0.0.1:{port}"
    pages = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            cdp.send("Network.enable")
            received: list = []
            cdp.on("Network.loadingFinished", lambda e: received.append(e["encodedDataLength"]))
            cdp.on("Network.webSocketFrameReceived", lambda e: received.append(
                len(e["response"]["payloadData"]) * (3 / 4 if e["response"]["opcode"] == 2 else 1)))
            for path in PAGES:
                url = f"{base}/{path}?run={run}"
                visit(page, cdp, url, received)  # the server's caches filled, the browser's cache too
                seen = [visit(page, cdp, url, received) for _ in range(visits)]
                pages[path or "history"] = {key: round(statistics.median(v[key] for v in seen), 2)
                                            for key in seen[0]}
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"run": run, "visits": visits, **cores(), "pages": pages,
            "total_browser_cpu_s": round(sum(v["browser_cpu_s"] for v in pages.values()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "artifacts" / "runs"))
    parser.add_argument("--run", default="resnet10_fer")
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--chromium", default=CHROMIUM, help="the browser's executable")
    args = parser.parse_args()
    print(json.dumps(measure(args.runs, args.run, args.visits, args.chromium)), flush=True)


if __name__ == "__main__":
    main()
