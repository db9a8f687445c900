"""The webcam page in Chromium with a fake camera playing a face: live WebRTC video and the snapshot mode."""
import io

import numpy as np
from PIL import Image

from streamlit_page import take_camera_photo, wait_until


def green_box_pixels(png: bytes) -> int:
    """Pixels of the annotation green (80, 200, 40) in a screenshot: the face box and label drawn by the server."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(rgb - [40, 200, 80]).sum(-1) < 60).sum())  # drawn in BGR (80, 200, 40)


def test_live_video_boxes_and_labels_the_face(face_camera_app, tmp_path):
    page = face_camera_app("webcam")
    page.frame_locator("iframe").first.get_by_role("button", name="START").click()
    # the page's status line reads the annotator the video frames go through
    page.wait_for_selector("text=/Now: .* 1 face/", timeout=90_000)
    status = page.get_by_text("Now:").inner_text()
    label = status.split("Now: ")[1].split(" ")[0]
    assert label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), status
    video = page.frame_locator("iframe").first.locator("video")
    wait_until(lambda: green_box_pixels(video.screenshot()) > 200, 30, "a green box drawn around the face")
    # record: the timeline of the face's probabilities and its CSV appear while the stream goes on
    page.get_by_text("Record the largest face's probabilities").click()
    page.wait_for_selector(".js-plotly-plot .scatterlayer .trace", timeout=30_000)
    # one line per class (the fragment redraws every second: count in one chart)
    assert page.locator(".js-plotly-plot").first.locator(".scatterlayer .trace").count() == 7
    page.get_by_role("button", name="Download the recording (CSV)").wait_for(timeout=30_000)  # drawn after the chart
    page.screenshot(path=str(tmp_path / "webcam-live.png"))


def test_snapshot_mode_returns_an_annotated_picture(face_camera_app, tmp_path):
    page = face_camera_app("webcam")
    take_camera_photo(page, "Snapshot", "Read:")
    image = page.locator("[data-testid='stImage'] img").last
    shot = np.asarray(Image.open(io.BytesIO(image.screenshot())).convert("L"))
    assert shot.std() > 10  # not blank
    assert green_box_pixels(image.screenshot()) > 200
