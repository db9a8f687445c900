"""The webcam page rendered headless (AppTest). streamlit-webrtc needs a real server session, so the live video
is tested in Chromium (e2e/test_webcam.py); here the page opens in snapshot mode."""
import sys

from streamlit.testing.v1 import AppTest

from helpers import make_evaluated_run, open_app, shown, wait_for


def open_webcam(tmp_path, monkeypatch, with_run=True, mode="Snapshot") -> AppTest:
    if with_run:
        make_evaluated_run(tmp_path / "runs", "small")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "runs"))
    return open_app("app_pages/webcam.py", "small", state={"webcam_mode": mode})


def test_webcam_page_offers_live_video_and_snapshot(tmp_path, monkeypatch):
    at = open_webcam(tmp_path, monkeypatch)
    mode = at.radio(key="webcam_mode")
    assert mode.options == ["Live video", "Snapshot", "Video file"] and mode.value == "Snapshot"
    assert {s.label for s in at.slider} == {"Smoothing", "Detect faces every … frames"}
    assert len(at.get("camera_input")) == 1
    # the detector is a setting, shared with the photo pages, and reaches the annotator
    assert at.radio(key="face_detector").value == "mtcnn"
    at.radio(key="face_detector").set_value("haar").run()
    assert at.session_state["live"].settings.detector == "haar" and at.session_state["_face_detector"] == "haar"


def test_mtcnn_loads_behind_the_page_while_its_user_picks_a_clip(tmp_path, monkeypatch):
    """The first analysis of a 3-s clip paid 0.9 s of importing and reading MTCNN (1.85× real time, not 4.5×)."""
    from app_pages._face_picker import _mtcnn_in_background
    from fer_models.faces import mtcnn

    monkeypatch.setattr(mtcnn, "_NETS", [])
    _mtcnn_in_background.clear()
    at = open_webcam(tmp_path, monkeypatch, mode="Video file")
    assert not at.exception, at.exception
    wait_for(lambda: len(mtcnn._NETS) == 3, timeout=60, what="MTCNN's three networks, loaded behind the page")


def test_without_webrtc_the_snapshot_mode_remains(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "streamlit_webrtc", None)  # import fails as if not installed
    at = open_webcam(tmp_path, monkeypatch)
    assert at.radio(key="webcam_mode").options == ["Snapshot", "Video file"]


def test_webcam_page_with_no_runs(tmp_path, monkeypatch):
    at = open_webcam(tmp_path, monkeypatch, with_run=False)
    assert any("fer-studio train" in i.value for i in at.info)


def analyse(tmp_path, monkeypatch, name, data):
    from helpers import wait_for

    at = open_webcam(tmp_path, monkeypatch, mode="Video file")
    at.session_state["_video_upload"] = (name, data)
    at.run()
    next(b for b in at.button if shown(b.label).startswith(f"Analyse {name} with small")).click().run()
    job = at.session_state["video_job"]
    wait_for(lambda: not job.running, 120, "the clip's analysis to end")
    at.run()
    assert not at.exception, at.exception
    return at, job


def test_a_video_file_is_analysed_in_the_background_and_shown(tmp_path, monkeypatch):
    from helpers import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    at, job = analyse(tmp_path, monkeypatch, "interview.mp4", clip.read_bytes())
    assert job.error is None and job.result.frames == 12
    assert any("interview.mp4 with small: 12 frames" in shown(s.value) for s in at.success)
    # the uploader is empty after Live and back (here: never filled); the page says which file it kept
    kb = round(clip.stat().st_size / 1024)  # a small clip in KB: "0.0 MB" read as an empty file
    assert any(shown(c.value).startswith(f"Kept from before: interview.mp4 ({kb} KB)") for c in at.caption)
    assert len(at.get("video")) == 1 and len(at.get("download_button")) == 2
    table = next(d.value for d in at.dataframe if "face" in d.value.columns)
    assert len(table) == 1 and abs(table.iloc[0][list(table.columns[2:])].sum() - 100) < 1e-6  # whole percents
    assert len(at.get("plotly_chart")) == 1  # the one face's timeline
    assert any("the emotion that leads at each moment" in c.value for c in at.caption)  # the band under the lines
    job.run = "other"  # made with a run since switched away from: it says whose it is
    at.run()
    assert any("interview.mp4 with other" in shown(s.value) for s in at.success)
    assert any("analysed with other; the button above analyses it with small" in c.value for c in at.caption)


def test_a_file_that_is_not_a_video_gets_a_message(tmp_path, monkeypatch):
    at, job = analyse(tmp_path, monkeypatch, "notes.mp4", b"these are not frames\n" * 50)
    said = [shown(e.value) for e in at.error]
    assert any("notes.mp4: not a video file this machine can read (Invalid data found when processing input); "
               "choose an MP4, MOV, WebM, MKV or AVI file" in s for s in said), said
    assert not any("Errno" in s for s in said)
    assert not at.get("video")
    at.session_state["_video_upload"] = ("talk.mp4", b"other bytes")  # another file picked: its button, not
    at.run()  # the last file's message under it
    assert not at.error and any(shown(b.label).startswith("Analyse talk.mp4 with small") for b in at.button)
    at.session_state["_video_upload"] = ("notes.mp4", b"another clip of that name")  # the same name, too
    at.run()
    assert not at.error and any(shown(b.label).startswith("Analyse notes.mp4 with small") for b in at.button)



def test_a_brief_track_is_left_out_of_the_table_and_charts_but_counted():
    import pandas as pd

    from app_pages._video import lasting, summary_table

    def track(number, frames):
        return pd.DataFrame({"track": number, "seconds": [f / 30 for f in frames], "label": "happy"})

    clip = pd.concat([track(0, range(90)), track(1, range(40, 49))])  # face 1: 9 frames, 0.27 s
    kept, brief = lasting(clip)
    assert brief == 1 and list(kept["track"].unique()) == [0]
    assert list(summary_table(kept)["face"]) == [0]
    alone, none_left = lasting(track(1, range(9)))  # nothing lasts: nothing is hidden
    assert none_left == 0 and len(alone) == 9


def test_a_face_timeline_spans_the_whole_clip_and_breaks_where_the_face_left():
    import numpy as np
    import pandas as pd

    from app_pages._video import in_view, timeline_figure
    from fer_models.core.constants import EMOTIONS

    frames = [*range(0, 60), *range(90, 126)]  # at 30 fps: in view 0-2 s, out 2-3 s, in 3-4.2 s of an 8-s clip
    track = pd.DataFrame({"seconds": [f / 30 for f in frames], "label": ["happy"] * 60 + ["sad"] * 36,
                          **{e: 1 / 7 for e in EMOTIONS}})
    fig = timeline_figure(track, 8.0)
    assert tuple(fig.layout.xaxis.range) == (0, 8.0)
    line = np.asarray(fig.data[0].x, float)
    assert np.isnan(line).sum() == 1 and line[60] != line[60]  # one break, between 2.0 s and 3.0 s
    bands = [(round(b.x0, 2), round(b.x1, 2)) for b in fig.layout.shapes]
    assert bands == [(0.0, 2.0), (3.0, 4.2)]
    assert in_view(track, 8.0) == "In view 0.0–2.0 s, 3.0–4.2 s of the 8.0-s clip."


def test_a_clip_analysed_slower_than_real_time_offers_a_faster_run(tmp_path, monkeypatch):
    """densenet201_fer with Grad-CAM took an 8-s clip at 0.3× real time, and the page offered nothing."""
    import fer_models.media.speed as speed
    from helpers import write_clip

    make_evaluated_run(tmp_path / "runs", "quick")
    monkeypatch.setattr(speed, "faces_per_second", lambda model, meta: 500.0 if meta.get("_quick") else 5.0)
    import fer_models.runs.checkpoints as checkpoints
    real_load = checkpoints.load_model

    def load(path, *args, **kwargs):  # the "quick" run's network timed fast, the others slow
        model, meta = real_load(path, *args, **kwargs)
        return model, {**meta, "_quick": str(path).endswith("quick")}
    monkeypatch.setattr(checkpoints, "load_model", load)
    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    at, job = analyse(tmp_path, monkeypatch, "slow.mp4", clip.read_bytes())
    job.result.wall_seconds = job.result.seconds * 4  # 0.25× real time
    at.run()
    said = [shown(w.value) for w in at.warning if "real time" in w.value]
    assert said and said[0].startswith("small analysed this clip at 0.2× real time") and "quick's network" in said[0]
    next(b for b in at.button if b.label == "Switch to quick").click().run()
    assert at.session_state["run_name"] == "quick"
