"""A class at once: N browser users open every page of one dashboard server at the same time.

    python bench/load.py --users 10 [--runs artifacts/runs] [--run resnet10_fer] [--rounds 1]
    python bench/load.py --users 10 30                # one fresh server per user count
    python bench/load.py --users 10 30 --server-cpus 0 1 --chromium PATH   # a 2-core server, browsers elsewhere
    python bench/load.py --users 10 --clicks          # after the first page, through the sidebar's links

Starts `streamlit run app.py` on a free port over the runs folder, then N users, each a browser context of its
own (its own Streamlit session) in Debian's Chromium, all at once, each opening every page by its URL in an
order of its own (user k starts at page k), waiting until the page is drawn (the script idle, no skeleton
left) and counting the exception boxes on it. Prints one JSON object per user count: per page the median and
slowest time over the users, the exceptions (0 is the target), the wall time of the whole round, the
server's peak resident memory, and where the machine's CPU went: the server's seconds, everything else's (the
browsers, and this script driving them), and what that leaves as a floor: the browsers' own CPU per page visit
times the users sharing the cores, the time a visit takes here even if the server cost nothing.

With --clicks each user opens its first page by URL and moves to the others through the sidebar, as a class
does once the app is open: no page load each time (the browser keeps Streamlit's frontend, its websocket and
session), so the browsers' part shrinks and the server's shows.

With --server-cpus the server runs on those CPUs alone (one OpenMP thread per CPU) and the browsers on the
others: a class's laptops reaching the teacher's 2-core machine, measured on one machine with more cores.
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SERVER_CPUS: set[int] = set()  # empty: the server shares every CPU with the browsers
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PAGES = ["architecture", "", "confusion", "mistakes", "saliency", "filters", "webcam", "train", "learn", "report"]
TITLES = {"architecture": "Architecture", "": "Training history", "confusion": "Confusion matrix",
          "mistakes": "Mistakes", "saliency": "Saliency", "filters": "Filters", "webcam": "Webcam and video",
          "train": "Train", "learn": "The math", "report": "Report"}  # each page's link and heading


def start_server(runs: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, FER_STUDIO_RUNS=runs)
    if SERVER_CPUS:
        env["OMP_NUM_THREADS"] = str(len(SERVER_CPUS))
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                               "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=(lambda: os.sched_setaffinity(0, SERVER_CPUS)) if SERVER_CPUS else None)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start in 120 s")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds used so far by the process `pid` (all its threads), or by the whole machine."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    user, nice, system, _, _, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / tick


def cpu_share(machine: float, server: float, users: int, visits: int) -> dict:
    others = machine - server
    per_visit = others / max(visits, 1)
    return {"machine_cpu_s": round(machine, 1), "server_cpu_s": round(server, 1), "browsers_cpu_s": round(others, 1),
            "browser_cpu_s_per_visit": round(per_visit, 2),
            "browser_floor_s": round(per_visit * users / len(os.sched_getaffinity(0)), 1)}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def one_user(browser, base: str, run: str, k: int, rounds: int, times: dict, exceptions: dict,
                   clicks: bool = False):
    """User k opens every page from page k on, each by its URL (a full page load), or with `clicks` the first by
    its URL and the others by their link in the sidebar, as a student moves through the app once it is open."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    order = PAGES[k % len(PAGES):] + PAGES[:k % len(PAGES)]
    try:
        for lap in range(rounds):
            for path in order:
                started = time.perf_counter()
                if clicks and (lap or path != order[0]):
                    await page.locator("[data-testid='stSidebarNav']").get_by_role(
                        "link", name=TITLES[path], exact=True).click(timeout=600_000)
                else:
                    await page.goto(f"{base}/{path}?run={run}", timeout=600_000)
                # the new page's own heading first: the last page's idle state shows until its script starts
                await page.get_by_role("heading", name=TITLES[path], exact=True).wait_for(timeout=600_000)
                await page.wait_for_selector(IDLE, timeout=600_000)
                await page.wait_for_selector("[data-testid='stSkeleton']", state="detached", timeout=600_000)
                times[path or "history"].append(time.perf_counter() - started)
                boxes = await page.locator("[data-testid='stException']").all_inner_texts()
                if boxes:
                    exceptions[path or "history"].extend(text.splitlines()[0][:200] for text in boxes)
    finally:
        await context.close()


async def load(users: int, runs: str, run: str, rounds: int, settle: float, clicks: bool = False) -> dict:
    from playwright.async_api import async_playwright

    server, port = start_server(runs)
    base = f"http://127.0.0.1:{port}"
    times = {p or "history": [] for p in PAGES}
    exceptions = {p or "history": [] for p in PAGES}
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            warm = await browser.new_page()  # the first visit starts the server's warm-up, as a teacher's would
            await warm.goto(f"{base}/?run={run}")
            await warm.wait_for_selector(IDLE, timeout=600_000)
            await asyncio.sleep(settle)
            started, machine, served = time.perf_counter(), cpu_seconds(), cpu_seconds(server.pid)
            await asyncio.gather(*(one_user(browser, base, run, k, rounds, times, exceptions, clicks)
                                   for k in range(users)))
            wall = time.perf_counter() - started
            cpu = cpu_share(cpu_seconds() - machine, cpu_seconds(server.pid) - served, users,
                            sum(len(v) for v in times.values()))
            await browser.close()
        rss = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"users": users, "run": run, "rounds": rounds, "navigation": "sidebar clicks" if clicks else "page loads",
            **cores(), "wall_seconds": round(wall, 1),
            "server_peak_rss_mib": rss, **cpu, **figures(times, exceptions)}


def cores() -> dict:
    """The CPU, and which of its cores the server and the clients (browsers or websocket sessions) had."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {"cpu": model, "server_cpus": sorted(SERVER_CPUS) or "all, shared with the clients",
            "client_cpus": len(os.sched_getaffinity(0))}


def figures(times: dict, exceptions: dict) -> dict:
    """Exceptions, and per page the median and slowest time over the users (this bench's and load_server's)."""
    return {"exceptions": sum(len(v) for v in exceptions.values()),
            "exception_lines": sorted({line for v in exceptions.values() for line in v})[:10],
            "pages": {name: {"median_s": round(statistics.median(v), 2), "slowest_s": round(max(v), 2)}
                      for name, v in times.items() if v},
            "slowest_median_s": round(max(statistics.median(v) for v in times.values() if v), 2),
            "slowest_page_s": round(max(max(v) for v in times.values() if v), 2)}


def pin(server_cpus: list[int], chromium: str) -> None:
    """The server on `server_cpus` alone, this script and the browsers it starts on every other CPU."""
    global CHROMIUM
    CHROMIUM = chromium
    if not server_cpus:
        return
    cpus = os.sched_getaffinity(0)
    if not siblings(set(server_cpus)) < cpus:
        sys.exit(f"--server-cpus {server_cpus}: this machine's CPUs are {sorted(cpus)}; leave some for the browsers")
    SERVER_CPUS.update(server_cpus)
    os.sched_setaffinity(0, cpus - siblings(SERVER_CPUS))


def siblings(cpus: set[int]) -> set[int]:
    """`cpus` and their hyperthread siblings: the browsers stay off the server's physical cores."""
    out = set(cpus)
    for cpu in cpus:
        listed = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        for part in (listed.read_text().strip().split(",") if listed.exists() else []):
            first, _, last = part.partition("-")
            out.update(range(int(first), int(last or first) + 1))
    return out


def main(load=load, description: str = __doc__.split("\n")[0], browsers: bool = True) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--users", type=int, nargs="+", default=[10])
    parser.add_argument("--runs", default=str(ROOT / "artifacts" / "runs"))
    parser.add_argument("--run", default="resnet10_fer")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the first visit before the class")
    parser.add_argument("--chromium", default=CHROMIUM, help="the browser's executable")
    parser.add_argument("--server-cpus", type=int, nargs="+", default=[], help="the server's CPUs; the rest browse")
    if browsers:
        parser.add_argument("--clicks", action="store_true",
                            help="each user's first page by its URL, the others through the sidebar's links")
    args = parser.parse_args()
    pin(args.server_cpus, args.chromium)
    options = {"clicks": args.clicks} if browsers else {}
    for users in args.users:
        print(json.dumps(asyncio.run(load(users, args.runs, args.run, args.rounds, args.settle, **options))),
              flush=True)


if __name__ == "__main__":
    main()
