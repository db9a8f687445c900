"""A real `streamlit run app.py` on a free port, and Debian's Chromium driven by Playwright."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HIDDEN = ["--hide-scrollbars"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(runs_dir, address="127.0.0.1", env=None):
    """(process, base URL) of a fresh `streamlit run app.py` over that runs folder; address None: the one
    .streamlit/config.toml sets, as a plain start has it."""
    port = free_port()
    env = dict(os.environ, FER_STUDIO_RUNS=str(runs_dir), PYTHONPATH=str(ROOT), **(env or {}))
    where = ["--server.address", address] if address else []
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.headless", "true", "--server.port", str(port), *where], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not start within 60 s")


def stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def start_app():
    """start_app(runs_dir, address=..., env=...) -> base URL of a fresh server over that runs folder."""
    servers = []

    def start(runs_dir, address="127.0.0.1", env=None):
        proc, base = serve(runs_dir, address, env)
        servers.append(proc)
        return base

    yield start
    for proc in servers:
        stop(proc)


@pytest.fixture(scope="module")
def base(runs):
    """Base URL of one server per test module over the module's own `runs` folder (a module-scoped fixture its
    tests only read): a fresh server's start and first page cost each test 5 s."""
    proc, url = serve(runs)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def module_app(tmp_path_factory):
    """(base URL, runs folder) of one server per test module, over two evaluated runs, "small" and "evaluated",
    which the module's tests only read: a server's start and warm-up cost each test seconds."""
    from helpers import make_evaluated_run

    runs = tmp_path_factory.mktemp("runs")
    make_evaluated_run(runs, "small")
    make_evaluated_run(runs, "evaluated")
    proc, base = serve(runs)
    yield base, runs
    stop(proc)


@pytest.fixture(scope="session")
def playwright():
    # A missing browser fails here on purpose: CI installs Debian's chromium (.ci/run).
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} not found: apt-get install -y chromium"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright):
    # scrollbars drawn as on a desktop: Playwright's --hide-scrollbars hid whether a box that scrolls shows it does
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, ignore_default_args=HIDDEN)
    yield b
    b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def write_y4m(path, gray_frame, frames=30):
    """A y4m video (4:2:0) repeating one gray picture: what Chromium's fake camera plays."""
    import numpy as np
    h, w = gray_frame.shape
    chroma = np.full((h // 2) * (w // 2), 128, np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + gray_frame.astype(np.uint8).tobytes() + chroma + chroma)
    return path


@pytest.fixture
def camera_page(playwright, tmp_path):
    """camera_page(gray_frame) -> a page whose camera shows that picture (a browser of its own:
    the fake-camera flags are launch options)."""
    opened = []

    def make(gray_frame):
        video = write_y4m(tmp_path / "camera.y4m", gray_frame)
        b = playwright.chromium.launch(executable_path=CHROMIUM, ignore_default_args=HIDDEN, args=CHROMIUM_ARGS + [
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        opened.append(b)
        context = b.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
        return context.new_page()

    yield make
    for b in opened:
        b.close()


@pytest.fixture
def face_camera_app(camera_page, module_app):
    """face_camera_app(path) -> that page (say "webcam") of the module's server on its small run, settled, in a
    browser whose camera films a face."""
    from streamlit_page import settle

    from helpers import face_photo

    def open_page(path):
        page = camera_page(face_photo()[..., 0])
        page.goto(f"{module_app[0]}/{path}?run=small")
        settle(page)
        return page
    return open_page
