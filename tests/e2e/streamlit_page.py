"""What the browser tests do on any Streamlit page: wait for a script run to end, take a camera picture."""

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"  # the script finished its run


def settle(page, timeout=120_000):
    """Wait for the rerun a click started (give it 300 ms to begin), and check no exception is drawn."""
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=timeout)
    assert page.locator("[data-testid='stException']").count() == 0


def take_camera_photo(page, source: str, result: str):
    """Pick `source` in the page's radio, press st.camera_input's Take Photo once Chromium's fake camera
    has delivered frames, and wait until `result` (a text) is drawn."""
    page.locator("[data-testid='stRadio']").get_by_text(source, exact=True).click()
    settle(page)
    camera = page.locator("[data-testid='stCameraInput']")
    camera.scroll_into_view_if_needed()
    button = camera.get_by_role("button", name="Take Photo")
    button.wait_for(timeout=30_000)
    page.wait_for_timeout(2000)  # frames reach the video element
    button.click()
    page.wait_for_selector(f"text={result}", timeout=60_000)
    settle(page)
