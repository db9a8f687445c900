"""A class at once, the server's part alone: N users each open every page over Streamlit's own websocket
protocol, with no browser.

    python bench/load_server.py --users 10 30 [--runs artifacts/runs] [--run resnet10_fer] [--rounds 1]

bench/load.py runs N Chromium instances on the server's own two cores, so its times measure the browsers as
much as the server; in a classroom each student's browser runs on the student's machine. Here each user is
one websocket session that asks the server to run every page (as a click in the sidebar does, user k starting
at page k), fetches the pictures the page names (as a browser does) and waits for the server to say the script
finished; the time is from the request to that message, and every exception the page would show is counted.
Prints one JSON object per user count, as bench/load.py.
"""
import asyncio
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import PAGES, cores, cpu_seconds, figures, main, peak_rss_mib, start_server  # noqa: E402


def fetch(url: str, problems: list) -> None:
    try:
        with urllib.request.urlopen(url, timeout=600) as response:
            response.read()
    except OSError as err:
        problems.append(f"{url}: {err}"[:200])


async def one_page(ws, base: str, page: str, run: str) -> tuple[float, list[str]]:
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = BackMsg()
    msg.rerun_script.query_string = f"run={run}"
    msg.rerun_script.page_name = page
    started = time.perf_counter()
    await ws.send(msg.SerializeToString())
    problems, fetches = [], []
    while True:
        forward = ForwardMsg()
        forward.ParseFromString(await ws.recv())
        kind = forward.WhichOneof("type")
        element = forward.delta.new_element if kind == "delta" and forward.delta.WhichOneof("type") == \
            "new_element" else None
        if element is not None and element.WhichOneof("type") == "exception":
            problems.append(f"{element.exception.type}: {element.exception.message}"[:200])
        elif element is not None and element.WhichOneof("type") == "imgs":
            # each picture fetched as it is named, while the page goes on, as a browser does
            fetches += [asyncio.create_task(asyncio.to_thread(fetch, f"{base}{img.url}", problems))
                        for img in element.imgs.imgs if img.url.startswith("/")]
        elif kind == "page_not_found":
            problems.append(f"page not found: {page!r}")
        elif kind == "script_finished":
            if forward.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                problems.append("the page did not compile")
            if forward.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                await asyncio.gather(*fetches)
                return time.perf_counter() - started, problems


async def one_user(port: int, run: str, k: int, rounds: int, times: dict, exceptions: dict) -> None:
    import websockets

    order = PAGES[k % len(PAGES):] + PAGES[:k % len(PAGES)]
    async with websockets.connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                                  max_size=None, open_timeout=600, ping_timeout=None) as ws:
        for _ in range(rounds):
            for page in order:
                seconds, problems = await one_page(ws, f"http://127.0.0.1:{port}", page, run)
                times[page or "history"].append(seconds)
                exceptions[page or "history"].extend(problems)


async def load(users: int, runs: str, run: str, rounds: int, settle: float) -> dict:
    # six connections a user, as a browser opens to one host: the default pool (six threads in all) would make
    # the class queue behind each other's pictures on the client side
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(6 * users + 6))
    server, port = start_server(runs)
    times = {p or "history": [] for p in PAGES}
    exceptions = {p or "history": [] for p in PAGES}
    try:
        await one_user(port, run, 0, 1, {p or "history": [] for p in PAGES}, {p or "history": [] for p in PAGES})
        await asyncio.sleep(settle)  # the first user's visit starts the warm-up, as a teacher's would
        started, served = time.perf_counter(), cpu_seconds(server.pid)
        await asyncio.gather(*(one_user(port, run, k, rounds, times, exceptions) for k in range(users)))
        wall, served = time.perf_counter() - started, cpu_seconds(server.pid) - served
        rss = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"users": users, "clients": "websocket sessions, no browser", "run": run, "rounds": rounds, **cores(),
            "wall_seconds": round(wall, 1), "server_cpu_s": round(served, 1), "server_peak_rss_mib": rss,
            **figures(times, exceptions)}


if __name__ == "__main__":
    main(load, __doc__.split("\n")[0], browsers=False)
