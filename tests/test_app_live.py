"""The webcam page rendered headless (AppTest). streamlit-webrtc needs a real server session, so the live video
is tested in Chromium (e2e/test_webcam.py); here the page opens in snapshot mode."""
import sys

from streamlit.testing.v1 import AppTest

from helpers import make_evaluated_run, open_app


def open_webcam(tmp_path, monkeypatch, with_run=True, mode="Snapshot") -> AppTest:
    if with_run:
        make_evaluated_run(tmp_path / "runs", "small")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "runs"))
    return open_app("app_pages/webcam.py", "small", state={"webcam_mode": mode})


def test_webcam_page_offers_live_video_and_snapshot(tmp_path, monkeypatch):
    at = open_webcam(tmp_path, monkeypatch)
    assert at.radio[0].options == ["Live video", "Snapshot"] and at.radio[0].value == "Snapshot"
    assert {s.label for s in at.slider} == {"Smoothing", "Detect faces every … frames"}
    assert len(at.get("camera_input")) == 1


def test_without_webrtc_the_snapshot_mode_remains(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "streamlit_webrtc", None)  # import fails as if not installed
    at = open_webcam(tmp_path, monkeypatch)
    assert at.radio[0].options == ["Snapshot"]


def test_webcam_page_with_no_runs(tmp_path, monkeypatch):
    at = open_webcam(tmp_path, monkeypatch, with_run=False)
    assert any("python -m fer_models.train" in i.value for i in at.info)
