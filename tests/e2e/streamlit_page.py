"""What the browser tests do on any Streamlit page: wait for a script run to end, take a camera picture."""
import time

from playwright.sync_api import TimeoutError as PlaywrightTimeout

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"  # the script finished its run
# a run seen starting since the last settle (counted by WATCH), or one going now
STARTED = ("() => window.__runsStarted > 0 || document.querySelector(\"[data-testid='stApp']\")?.getAttribute("
           "'data-test-script-state') !== 'notRunning'")
WATCH = """() => {
    if (window.__runsStarted === undefined) {
        new MutationObserver(records => records.forEach(r => {
            if (r.target.getAttribute('data-test-script-state') === 'running') window.__runsStarted += 1;
        })).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
    }
    window.__runsStarted = 0;
}"""


def settle(page, timeout=120_000):
    """Wait for the rerun a click started to end and its skeletons to go, as Streamlit's own e2e helper
    wait_for_app_run does; then check no exception is drawn. A rerun may be over before it is seen to
    start, so seeing it start is waited for briefly and not required; on a page settled before, a run that
    started and ended since is counted, and the wait ends at once (it took a second, 22 times a suite)."""
    try:
        page.wait_for_function(STARTED, timeout=1_000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: the run was quicker than the poll
        pass
    page.wait_for_selector(IDLE, timeout=timeout)
    page.wait_for_selector("[data-testid='stSkeleton']", state="detached", timeout=timeout)
    assert page.locator("[data-testid='stException']").count() == 0
    page.evaluate(WATCH)


def wait_until(check, timeout: float = 30, message: str = "condition"):
    """Poll check() until it is true (for what the DOM cannot say, e.g. pixels of a video frame)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{message}: not true after {timeout} s"


def take_camera_photo(page, source: str, result: str):
    """Pick `source` in the page's radio, press st.camera_input's Take Photo once Chromium's fake camera
    has delivered frames, and wait until `result` (a text) is drawn."""
    page.locator("[data-testid='stRadio']").get_by_text(source, exact=True).click()
    settle(page)
    camera = page.locator("[data-testid='stCameraInput']")
    camera.scroll_into_view_if_needed()
    button = camera.get_by_role("button", name="Take Photo")
    button.wait_for(timeout=30_000)
    # the fake camera's frames have reached the video element
    camera.locator("video").evaluate("v => new Promise(done => { const ok = () => v.readyState >= 2 && "
                                     "v.currentTime > 0.5; if (ok()) done(); else v.addEventListener('timeupdate', "
                                     "() => ok() && done()); })")
    button.click()
    # the shot is taken once the widget offers to clear it; a click the busy browser dropped is repeated
    cleared = camera.get_by_role("button", name="Clear photo")
    try:
        cleared.wait_for(timeout=15_000)
    except PlaywrightTimeout:
        button.click()
        cleared.wait_for(timeout=30_000)
    page.wait_for_selector(f"text={result}", timeout=120_000)
    settle(page)
