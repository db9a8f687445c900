"""The webcam page in Chromium with a fake camera playing a face: live WebRTC video and the snapshot mode."""
import io
import re

import numpy as np
from PIL import Image
from streamlit_page import take_camera_photo, wait_until


def green_box_pixels(png: bytes) -> int:
    """Pixels of the annotation green (80, 200, 40) in a screenshot: the face box and label drawn by the server."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int((np.abs(rgb - [40, 200, 80]).sum(-1) < 60).sum())  # drawn in BGR (80, 200, 40)


def test_live_video_boxes_and_labels_the_face(face_camera_app, tmp_path):
    page = face_camera_app("webcam")
    # the run's network timed on this machine, said before the stream starts
    assert page.get_by_text(re.compile(r"network reads \d+ faces a second on this machine")).is_visible()
    page.frame_locator("iframe").first.get_by_role("button", name="START").click()
    # the page's status line reads the annotator the video frames go through
    page.wait_for_selector("text=/Now: .* 1 face/", timeout=90_000)
    status = page.get_by_text("Now:").inner_text()
    label = status.split("Now: ")[1].split(" ")[0]
    assert label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), status
    assert "fps" not in status  # the frame rate is on the video alone: two readings a second apart differed
    video = page.frame_locator("iframe").first.locator("video")
    wait_until(lambda: green_box_pixels(video.screenshot()) > 200, 90, "a green box drawn around the face")
    # the camera's 640×480 at least (it was drawn at 320×240), the reading beside it
    box = video.bounding_box()
    assert box["width"] >= 640 and box["height"] >= 480, box
    assert page.get_by_text("Now:").bounding_box()["x"] >= box["x"] + box["width"]
    # on a 1920×1080 screen it grows (it stopped at 800 px wide), still whole with its STOP on the first screen
    page.set_viewport_size({"width": 1920, "height": 1080})
    wait_until(lambda: video.bounding_box()["width"] >= 900, 10, f"a larger video at 1920, not {video.bounding_box()}")
    stop = page.frame_locator("iframe").first.get_by_role("button", name="STOP").bounding_box()
    assert stop["y"] + stop["height"] <= 1080, stop
    # on a projector the whole picture on the first screen (three rows of settings once pushed it half below)
    page.set_viewport_size({"width": 1280, "height": 720})
    wait_until(lambda: video.bounding_box()["y"] + video.bounding_box()["height"] <= 720, 10,
               f"the whole video on a 1280×720 screen, not {video.bounding_box()}")
    stop = page.frame_locator("iframe").first.get_by_role("button", name="STOP").bounding_box()
    assert stop["y"] + stop["height"] <= 720, stop  # and its STOP, without scrolling
    # record: the timeline of the face's probabilities and its CSV appear while the stream goes on
    page.get_by_text("Record", exact=True).click()
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


def test_a_video_file_is_analysed_and_its_annotated_video_plays(page, module_app, tmp_path):
    from streamlit_page import settle

    from helpers import write_clip

    clip = write_clip(tmp_path / "lecture.mp4", frames=24)
    base = module_app[0]
    page.goto(f"{base}/webcam?run=small")
    settle(page)
    page.locator("[data-testid='stRadio']").get_by_text("Video file", exact=True).click()
    settle(page)
    page.locator("[data-testid='stFileUploader'] input[type=file]").set_input_files(str(clip))
    page.get_by_role("button", name="Analyse lecture.mp4 with small").click()
    page.wait_for_selector("text=lecture.mp4 with small: 24 frames", timeout=120_000)
    settle(page)  # the page redraws once with the result
    video = page.locator("[data-testid='stVideo']")
    video.wait_for(timeout=30_000)
    # the browser decodes it: H.264 in MP4 plays in Chromium
    played = video.evaluate("v => new Promise(done => { v.muted = true; v.play().then(() => setTimeout(() => "
                            "done([v.readyState, v.currentTime, v.videoWidth, v.videoHeight]), 600), "
                            "err => done(['error', String(err)])); })")
    assert played[0] != "error" and played[0] >= 2 and played[1] > 0, played
    assert played[2:] == [320, 240]
    assert page.locator(".js-plotly-plot").count() == 1  # the face's timeline
    page.set_viewport_size({"width": 1280, "height": 720})  # a projector's: every emotion's column in view
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    wide = page.evaluate("""() => [...document.querySelectorAll("[data-testid='stDataFrame'] .dvn-scroller")]
        .filter(s => s.offsetParent !== null && s.scrollWidth > s.clientWidth + 1).length""")
    assert wide == 0, "the share table runs past its right edge at 1280 px"
    # an empty file next: said at once, with no button and no result of the clip before under it
    (tmp_path / "empty.mp4").write_bytes(b"")
    page.locator("[data-testid='stFileUploader'] input[type=file]").set_input_files(str(tmp_path / "empty.mp4"))
    page.get_by_text("empty.mp4 is an empty file: choose a video file.").wait_for(timeout=30_000)
    settle(page)
    assert page.get_by_role("button", name=re.compile("^Analyse")).count() == 0
    assert page.locator("[data-testid='stVideo']").count() == 0
