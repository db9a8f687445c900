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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_app():
    """start_app(runs_dir) -> base URL of a fresh server over that runs folder."""
    servers = []

    def start(runs_dir):
        port = free_port()
        env = dict(os.environ, FER_STUDIO_RUNS=str(runs_dir), PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                                 "--server.headless", "true", "--server.port", str(port),
                                 "--server.address", "127.0.0.1"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        servers.append(proc)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                return f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("streamlit did not start within 60 s")

    yield start
    for proc in servers:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser():
    # A missing browser fails here on purpose: CI installs Debian's chromium (.ci/run).
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} not found: apt-get install -y chromium"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()
