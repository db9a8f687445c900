"""Nothing lost: a full disk, a late failure or a careless output path leave what was there, and what was done,
with one line that says what happened."""

import numpy as np
import pandas as pd
import pytest
from warm_cli import run as warm

from fer_models.media.video import VideoError, annotate_video
from fer_models.runs.checkpoints import load_model
from helpers import ROOT, make_evaluated_run, write_clip, write_fer_csv


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_evaluated_run(tmp_path_factory.mktemp("runs"), "small")


def cli(*args, timeout=300):
    return warm([*map(str, args)], cwd=ROOT, timeout=timeout)


def test_video_output_may_not_be_its_input_a_device_or_the_csv(run, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=6)
    before = clip.read_bytes()
    model, meta = load_model(run)
    for output, csv, words in ((clip, None, "that is the input video"), (tmp_path / "same", tmp_path / "same",
                                                                          "name the same file"),
                               (None, "/dev/null", "not a regular file"), (tmp_path, None, "not a regular file")):
        with pytest.raises(VideoError, match=words):
            annotate_video(model, meta, clip, output, csv)
    assert clip.read_bytes() == before
    done = cli("video", "--run", run, "--input", clip, "--output", clip)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and clip.read_bytes() == before


def test_a_failure_late_in_a_clip_keeps_the_frames_done(run, tmp_path, monkeypatch):
    from fer_models.media.live import LiveAnnotator

    clip = write_clip(tmp_path / "clip.mp4", frames=12)
    prepare = LiveAnnotator.prepare
    seen = []

    def breaks_at_seven(self, bgr):  # within the first batch: the six frames prepared before it are kept
        seen.append(1)
        if len(seen) == 7:
            raise RuntimeError("the detector fell over")
        return prepare(self, bgr)
    monkeypatch.setattr(LiveAnnotator, "prepare", breaks_at_seven)
    model, meta = load_model(run)
    result = annotate_video(model, meta, clip, tmp_path / "out.mp4", tmp_path / "out.csv")
    assert result.frames == 6 and "at frame 6: RuntimeError: the detector fell over" in result.truncated
    assert "ended early" in result.message
    assert (tmp_path / "out.mp4").stat().st_size > 0 and not list(tmp_path.glob(".*.part"))
    assert pd.read_csv(tmp_path / "out.csv")["frame"].max() <= 5


class _Frame:
    def __init__(self, i, shape):
        self.time, self.pts, self.shape = i / 10, i, shape

    def to_ndarray(self, format):
        return np.full((*self.shape, 3), 120, np.uint8)


def test_a_stream_that_changes_size_is_scaled_to_its_first_frames(run, tmp_path, monkeypatch):
    """A clip whose frames change size mid-stream (a phone's H.264 after rotation) crashed the writer."""
    import types
    from fractions import Fraction

    import fer_models.media.video as video

    stream = types.SimpleNamespace(thread_type=None, duration=None, time_base=Fraction(1, 10), average_rate=10,
                                   codec_context=types.SimpleNamespace(width=64, height=48))
    frames = [_Frame(i, (48, 64) if i < 4 else (96, 128)) for i in range(8)]
    container = types.SimpleNamespace(streams=types.SimpleNamespace(video=[stream]), duration=None,
                                      decode=lambda s: iter(frames), close=lambda: None)
    monkeypatch.setattr(video, "_open", lambda source: container)
    model, meta = load_model(run)
    result = annotate_video(model, meta, tmp_path / "phone.mp4", tmp_path / "out.mp4", tmp_path / "out.csv")
    assert result.frames == 8 and result.resized == 4 and "changed size" in result.message


def test_full_disks_get_one_line_and_keep_what_was_there(run, tmp_path, full_disk):
    data = write_fer_csv(tmp_path / "fer2013.csv")
    clip = write_clip(tmp_path / "clip.mp4", frames=30, shape=(480, 640))
    (full_disk / "filler").write_bytes(bytes(1_040_000))  # a few kB left
    for args, words in (
            (["train", "--model", "cnn3", "--epochs", "1", "--threads", "1", "--data", data, "--out",
              full_disk / "run"], "No space left on device"),
            (["report", "--run", run, "--out", full_disk / "report.html", "--faces-per-class", "0", "--filters", "0"],
             "No space left on device"),
            (["video", "--run", run, "--input", clip, "--output", full_disk / "a.mp4", "--csv", tmp_path / "a.csv"],
             "MB free there"),
            (["report", "--run", run, "--out", "/proc/report.html"], "cannot be written there")):
        done = cli(*args)
        assert done.returncode == 2, (args[0], done.stderr[-400:])
        assert "Traceback" not in done.stderr and words in done.stderr.strip().splitlines()[-1], done.stderr[-400:]
    assert not list(full_disk.glob(".*.part"))


def test_a_disk_that_fills_during_a_video_stops_it_cleanly_and_keeps_the_timeline(run, tmp_path, monkeypatch):
    """libav crashed the process (SIGSEGV) when a write failed on a full disk: the writer stops before that."""
    import fer_models.media.video as video

    clip = write_clip(tmp_path / "clip.mp4", frames=70, step=1)
    free = iter([1 << 30, 1 << 30, 1 << 30, 1 << 20] + [1 << 20] * 10)
    monkeypatch.setattr(video, "_free_bytes", lambda path: next(free))
    model, meta = load_model(run)
    result = annotate_video(model, meta, clip, tmp_path / "out.mp4", tmp_path / "out.csv")
    assert result.frames == 60 and "nearly full" in result.truncated  # checks at frames 0, 30 and 60
    assert (tmp_path / "out.mp4").stat().st_size > 0 and len(pd.read_csv(tmp_path / "out.csv"))


def test_an_evaluation_that_cannot_be_written_leaves_the_last_one_whole(run, tmp_path, monkeypatch):
    import fer_models.core.files as files

    metrics = run / "eval" / "PublicTest" / "metrics.json"
    before = {p.name: p.read_bytes() for p in metrics.parent.iterdir()}
    real = files.atomic_write_text
    calls = []

    def fails_on_the_second(path, text):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, text)
    monkeypatch.setattr("fer_models.evaluation.evaluate.atomic_write_text", fails_on_the_second)
    from fer_models.evaluation.evaluate import evaluate_run
    with pytest.raises(OSError):
        evaluate_run(run, run.parent / "small_faces.npz", "PublicTest")
    assert {p.name: p.read_bytes() for p in metrics.parent.iterdir()} == before
    assert not [p for p in metrics.parent.parent.iterdir() if p.name.startswith(".")]  # no half-built folder


def test_predict_keeps_every_row_when_a_file_breaks_the_detector(run, tmp_path, monkeypatch):
    from PIL import Image

    from fer_models.media.predict import predict_photos
    from helpers import face_photo

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(face_photo(2)).save(photos / name)
    import fer_models.faces.detect as detect
    real = detect.detect_faces

    def breaks_on_b(rgb, detector="mtcnn", live=False):
        if breaks_on_b.calls == 1:
            breaks_on_b.calls += 1
            raise MemoryError("asked for 29 GB")
        breaks_on_b.calls += 1
        return real(rgb, detector, live)
    breaks_on_b.calls = 0
    monkeypatch.setattr(detect, "detect_faces", breaks_on_b)
    model, meta = load_model(run)
    table, skipped = predict_photos(model, meta, [photos])
    assert list(table["file"].map(lambda f: f.rsplit("/", 1)[-1])) == ["a.png", "b.png", "c.png"]
    assert table.set_index("file")["error"].str.contains("MemoryError").sum() == 1 and len(skipped) == 1


def test_decoded_photos_are_kept_within_a_byte_budget(monkeypatch):
    """Sixteen 25-megapixel uploads held 1.2 GB in the count-bounded cache."""
    from collections import OrderedDict

    from app_pages import _face_picker as picker
    from fer_models.faces.detect import FaceSearch

    monkeypatch.setattr(picker, "PHOTO_CACHE_BYTES", 7 << 20)
    monkeypatch.setattr(picker, "_SEARCHES", OrderedDict())
    monkeypatch.setattr(picker, "read_image", lambda data, name: np.zeros((1024, 1024, 3), np.uint8))  # 3 MB
    monkeypatch.setattr(picker, "find_faces", lambda rgb, detector: FaceSearch(rgb))
    for digest in "abcde":
        picker.search_photo(digest, b"", "photo.png")
    picker.search_photo("d", b"", "photo.png")  # used again: now the newest
    assert [digest for digest, _ in picker._SEARCHES] == ["e", "d"]
    assert sum(s.rgb.nbytes for s in picker._SEARCHES.values()) <= 7 << 20
