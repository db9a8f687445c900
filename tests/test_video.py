"""Video files and folders of photos through the live pipeline: the CLIs, their outputs and bad input."""

import av
import pandas as pd
import pytest
from PIL import Image
from warm_cli import run as warm

from fer_models.media.video import COLUMNS, VideoError, annotate_video
from fer_models.runs.checkpoints import load_model
from helpers import ROOT, face_photo, write_clip

RUN = ROOT / "artifacts" / "runs" / "cnn3"


@pytest.fixture(scope="module")
def model():
    return load_model(RUN)


def frames_of(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sum(1 for _ in c.decode(s)), (s.codec_context.width, s.codec_context.height)


def test_a_clip_gives_a_row_per_frame_a_steady_track_and_a_video_of_the_same_frames(tmp_path, model):
    clip = write_clip(tmp_path / "clip.mp4", frames=20)
    result = annotate_video(*model, clip, tmp_path / "out.mp4", tmp_path / "out.csv", every=3)
    timeline = pd.read_csv(tmp_path / "out.csv")
    assert list(timeline.columns) == COLUMNS and result.frames == 20
    assert timeline["frame"].tolist() == list(range(20))  # one face in every frame
    assert timeline["track"].nunique() == 1  # the moving face keeps its id between detections
    assert timeline["x"].iloc[-1] > timeline["x"].iloc[0] + 30  # ... and its box follows it (3 px a frame)
    assert (timeline[list(timeline.columns[7:14])].sum(axis=1) - 1).abs().max() < 1e-3
    assert frames_of(tmp_path / "out.mp4") == (20, (320, 240))
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_frames_classified_in_batches_read_as_one_at_a_time(tmp_path, model, monkeypatch):
    import fer_models.media.video as video

    clip = write_clip(tmp_path / "clip.mp4", frames=19)  # two full batches and three frames over
    batched = annotate_video(*model, clip, None, None, every=3).timeline
    monkeypatch.setattr(video, "BATCH", 1)
    single = annotate_video(*model, clip, None, None, every=3).timeline
    assert len(batched) == 19 and batched[COLUMNS[:7]].equals(single[COLUMNS[:7]])
    assert (batched[COLUMNS[7:14]] - single[COLUMNS[7:14]]).abs().max().max() < 1e-3  # smoothing in frame order
    assert batched["label"].tolist() == single["label"].tolist()


def test_odd_sizes_no_faces_and_the_message(tmp_path, model):
    clip = write_clip(tmp_path / "blank.webm", frames=6, shape=(121, 161), codec="libvpx", face=False)
    result = annotate_video(*model, clip, tmp_path / "out.mp4", tmp_path / "out.csv")
    assert result.timeline.empty and "no face was found" in result.message
    assert list(pd.read_csv(tmp_path / "out.csv").columns) == COLUMNS  # an empty timeline, with its header
    assert frames_of(tmp_path / "out.mp4") == (6, (162, 122))  # H.264 needs even sides: one pixel of padding


@pytest.mark.parametrize("content, words", [(b"", "not a video file"), (b"just some text\n" * 20, "not a video file")])
def test_files_that_are_not_video_are_refused_and_nothing_is_written(tmp_path, model, content, words):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(VideoError, match=words):
        annotate_video(*model, bad, tmp_path / "out.mp4", tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_a_truncated_clip_keeps_what_decodes_or_says_why(tmp_path, model):
    clip = write_clip(tmp_path / "clip.webm", frames=20, codec="libvpx")  # WebM: readable up to where it ends
    data = clip.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) * 2 // 3])
    try:
        result = annotate_video(*model, cut, tmp_path / "out.mp4", tmp_path / "out.csv")
    except VideoError as err:
        assert "cut.webm" in str(err)
        assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.csv").exists()
    else:
        assert 0 < result.frames < 20 and frames_of(tmp_path / "out.mp4")[0] == result.frames


def test_the_video_command_line(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=8)
    done = warm(["video", "--run", str(RUN), "--input", str(clip),
                 "--csv", str(tmp_path / "t.csv")], cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "8 frames" in done.stdout and len(pd.read_csv(tmp_path / "t.csv")) == 8
    bad = warm(["video", "--run", str(RUN), "--input",
                str(tmp_path / "t.csv"), "--csv", str(tmp_path / "x.csv")], cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "not a video file" in bad.stderr and "Traceback" not in bad.stderr


def test_predict_reads_every_face_of_a_folder_and_lists_what_it_skips(tmp_path):
    photos = tmp_path / "photos"
    (photos / "deeper").mkdir(parents=True)
    Image.fromarray(face_photo(2)).save(photos / "one.jpg")
    two = face_photo(2, size=120, at=(60, 150), extra=[(5, 150, (400, 160))])
    Image.fromarray(two).save(photos / "deeper" / "two.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    Image.new("RGB", (300, 200), (120, 130, 140)).save(photos / "wall.png")
    (photos / "notes.txt").write_text("not an image, not looked at")
    done = warm(["predict", "--run", str(RUN), str(photos),
                 str(tmp_path / "missing.jpg"), "--csv", str(tmp_path / "faces.csv")], cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "faces.csv")
    faces = table[table["face"] > 0]
    assert faces.groupby("file").size().to_dict() == {str(photos / "deeper" / "two.png"): 2,
                                                      str(photos / "one.jpg"): 1}
    assert faces["error"].isna().all()
    assert table.loc[table["file"].str.endswith("two.png"), "face"].tolist() == [1, 2]
    errors = table[table["face"] == 0].set_index("file")["error"]  # every file that gave no face has its row
    assert set(errors.index) == {str(photos / "broken.jpg"), str(photos / "wall.png"), str(tmp_path / "missing.jpg")}
    assert "no face found" in errors[str(photos / "wall.png")]
    for name, reason in (("broken.jpg", "is not an image this app can read"), ("wall.png", "no face found"),
                         ("missing.jpg", "no such file")):
        assert any(name in line and reason in line for line in done.stderr.splitlines()), (name, done.stderr)
    assert "notes.txt" not in done.stderr and "Traceback" not in done.stderr


def test_a_variable_frame_rate_keeps_each_frames_time(tmp_path, model):
    from fractions import Fraction

    from helpers import face_photo
    times_ms = [0, 40, 80, 200, 240, 400, 440, 480]  # pauses, as phones record
    clip = tmp_path / "vfr.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(face_photo(2, size=110, at=(40 + 3 * i, 60), shape=(240, 320)),
                                               format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    result = annotate_video(*model, clip, tmp_path / "out.mp4", None)
    assert result.timeline["seconds"].round(3).tolist() == [ms / 1000 for ms in times_ms]
    with av.open(str(tmp_path / "out.mp4")) as c:
        out_times = [round(float(f.time), 3) for f in c.decode(c.streams.video[0])]
    assert [round(t - out_times[0], 3) for t in out_times] == [ms / 1000 for ms in times_ms]


def test_the_pages_progress_says_real_seconds_pace_time_left_and_the_overlay():
    from app_pages._video import VideoJob
    from app_pages._video import progress_text as said
    from helpers import shown

    def progress_text(job, now):  # the page escapes the clip's name for Markdown
        return shown(said(job, now))

    job = VideoJob("clip.mp4", ROOT, gradcam=True)
    assert progress_text(job, 101.0) == ("clip.mp4: preparing, with the Grad-CAM overlay: opening the clip and "
                                         "loading the face detector…")
    job.first = (105.0, 0.1)  # the first frame done 5 s after the start (the detector loading): the pace counts
    job.done, job.total = 0.4, 9.0  # from there, and a moment after it there is none to say yet
    assert progress_text(job, 105.5) == ("clip.mp4: 0.4 of 9.0 s of video, with the Grad-CAM overlay · measuring "
                                         "the pace…")
    job.done = 3.1  # 3 s of video in 2 s of work: 1.5× real time, 5.9 s of video left = 4 s
    assert progress_text(job, 107.0) == ("clip.mp4: 3.1 of 9.0 s of video, with the Grad-CAM overlay · 1.5× real "
                                         "time · about 4 s left")
    job.done = 8.8  # the last 0.2 s of video at 4.0× real time: never "about 0 s left" while work remains
    assert progress_text(job, 107.2).endswith("· 4.0× real time · under a second left")
    job.done = 3.1
    job.gradcam, job.total = False, 3.1  # a stream that does not say its duration: as long as what is done
    assert progress_text(job, 107.0) == "clip.mp4: 3.1 s of video, without the Grad-CAM overlay · 1.5× real time"
