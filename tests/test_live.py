"""The webcam's frame function on synthetic av.VideoFrames made from bundled faces: boxes, labels, tracking,
smoothing, recording."""
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torch.nn as nn

import fer_models.media.live as live
from fer_models.core.constants import EMOTIONS
from fer_models.media.live import (
    BARS_WIDTH,
    LABEL_SCALE,
    ROW,
    LiveAnnotator,
    LiveSettings,
    annotate_photo,
    process_frame,
)
from fer_models.nets.models import create_model
from helpers import face_photo

META = {"normalisation": {"mean": 0.5, "std": 0.25}}
GREEN = np.array([80, 200, 40])  # BGR, as drawn


class Scripted(nn.Module):
    """A stand-in model whose logits the test sets, so smoothing can be checked exactly."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1))
        self.logits = torch.zeros(7)

    def forward(self, x):
        return self.logits.expand(x.shape[0], 7) + 0 * self.scale


def frame_of(rgb, pts=0):
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., ::-1]), format="bgr24")
    frame.pts, frame.time_base = pts, Fraction(1, 90_000)  # what WebRTC video carries
    return frame


def green(bgr):
    return np.abs(bgr.astype(int) - GREEN).sum(-1) < 30


class Clock:
    def __init__(self, step=0.04):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


@pytest.fixture(scope="module")
def cnn3():
    torch.manual_seed(0)
    return create_model("cnn3").eval()


def test_a_face_is_boxed_and_labelled_through_av_frames(cnn3):
    annotator = LiveAnnotator(cnn3, META, clock=Clock())
    rgb = face_photo()
    out = process_frame(annotator, frame_of(rgb, pts=7))
    assert isinstance(out, av.VideoFrame) and (out.width, out.height) == (640, 480)
    assert out.pts == 7 and out.time_base == Fraction(1, 90_000)
    bgr = out.to_ndarray(format="bgr24")
    state = annotator.state()
    assert len(state.faces) == 1 and state.faces[0][0] in EMOTIONS
    # the box, its label above and its class bars below frame the pasted face (x 380–540, y 150–310), give or take
    # the detector's margin
    ys, xs = np.nonzero(green(bgr))
    assert len(xs) > 500
    assert xs.min() >= 345 and xs.max() <= 575 and ys.min() >= 100 and ys.max() <= 330 + 7 * ROW
    assert not green(bgr[400:, :250]).any()


@pytest.mark.parametrize("cx", [30, 610])
def test_a_face_at_the_frames_edge_keeps_its_whole_label_and_bars_inside(cnn3, cx):
    import cv2

    from fer_models.faces.face import Face

    out = np.full((480, 640, 3), 120, np.uint8)
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.6, 0.1, 0.1])  # "sad 60%"
    LiveAnnotator(cnn3, META)._draw_track(out, Face(cx, 200, 120), p)
    (tw, th), _ = cv2.getTextSize("sad 60%", cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, 2)
    assert th >= 16
    label_row = green(out)[140 - th - 9]  # the filled label's top row, above its text
    assert label_row.sum() >= tw + 8, label_row.sum()  # not cut by the frame's edge
    bars = (np.abs(out.astype(int) - 40).sum(-1) < 5)[262:262 + 7 * ROW]  # the bars' dark rows under the box
    assert bars.any(axis=0).sum() >= BARS_WIDTH
    # every class named in full in the dark band before its bar ("ang", "sur" were cut to three letters)
    names = (out[262:262 + 7 * ROW].min(-1) > 200)  # white text
    for c, name in enumerate(EMOTIONS):
        (nw, _), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
        columns = np.nonzero(names[c * ROW:(c + 1) * ROW].any(axis=0))[0]
        assert columns.max() - columns.min() >= 0.85 * nw, name  # "ang" was 0.55 of "angry"


def test_two_faces_largest_first(cnn3):
    annotator = LiveAnnotator(cnn3, META)
    annotator.process(face_photo(extra=((5, 120, (150, 200)),))[..., ::-1].copy())
    tracks = annotator._tracks
    assert len(tracks) == 2 and tracks[0].face.size > tracks[1].face.size
    assert len(annotator.state().faces) == 2


def test_no_face_draws_only_the_frame_rate(cnn3):
    annotator = LiveAnnotator(cnn3, META, clock=Clock(0.04))
    blank = np.full((480, 640, 3), 120, np.uint8)
    for _ in range(5):
        out = annotator.process(blank)
    state = annotator.state()
    assert state.faces == [] and state.frames == 5 and state.fps == pytest.approx(25, rel=0.01)
    assert not green(out).any() and (out[-30:, :120] != 120).any()  # the fps, bottom left, clear of faces' bars
    assert (out[:-30] == 120).all()


def test_detection_runs_every_n_frames_and_tracks_carry_between(cnn3, monkeypatch):
    calls = []
    real = live.detect_faces
    monkeypatch.setattr(live, "detect_faces",
                        lambda rgb, detector, live: calls.append(live) or real(rgb, detector, live))
    annotator = LiveAnnotator(cnn3, META, LiveSettings(detect_every=3))
    bgr = face_photo()[..., ::-1].copy()
    for _ in range(7):
        annotator.process(bgr)
    assert calls == [True, True, True]  # frames 0, 3 and 6, each a live search (no retries)
    assert len(annotator._tracks) == 1 and annotator._tracks[0].id == 0  # one track throughout


def test_a_lost_face_survives_brief_misses_undrawn_then_goes(cnn3):
    annotator = LiveAnnotator(cnn3, META, LiveSettings(detect_every=3, show_fps=False))
    bgr = face_photo()[..., ::-1].copy()
    annotator.process(bgr)
    blank = np.full((480, 640, 3), 120, np.uint8)
    seen = []
    for _ in range(5):
        out = annotator.process(blank)
        seen.append((len(annotator._tracks), bool(green(out).any()), len(annotator.state().faces)))
    # frames 1-2 carry the box (no search); frame 3's search misses it: not drawn, and searched again every
    # frame (not every third) until it is found or MAX_MISSES have passed
    assert live.MAX_MISSES == 2 and seen == [(1, True, 1), (1, True, 1), (1, False, 0), (1, False, 0), (0, False, 0)]
    assert annotator.faces_now() == []
    annotator = LiveAnnotator(cnn3, META, LiveSettings(detect_every=1))
    annotator.process(bgr)
    probs = annotator._tracks[0].probs.copy()
    annotator.process(blank)
    assert np.array_equal(annotator._tracks[0].probs, probs)  # no blank crop classified into its smoothing
    annotator.process(bgr)  # found again: the same track, its smoothing carried on
    assert [t.id for t in annotator._tracks] == [0] and len(annotator.state().faces) == 1


def test_a_face_that_jumps_keeps_one_box_and_a_face_beside_it_keeps_its_own(cnn3):
    from fer_models.faces.face import Face

    annotator = LiveAnnotator(cnn3, META)
    annotator._update_tracks([Face(200, 200, 100)])
    annotator._update_tracks([Face(260, 200, 100)])  # over half a box away: a new track, the old one not kept
    assert [(t.id, t.face.cx) for t in annotator._tracks] == [(1, 260)]
    annotator._update_tracks([Face(260, 200, 100), Face(450, 200, 100)])
    annotator._update_tracks([Face(260, 200, 100)])  # the other face missed once: kept, it overlaps no box
    assert sorted(t.face.cx for t in annotator._tracks) == [260, 450]


def test_smoothing_is_an_exponential_moving_average():
    model = Scripted()
    annotator = LiveAnnotator(model, META, LiveSettings(smoothing=0.75))
    bgr = face_photo()[..., ::-1].copy()
    model.logits = torch.tensor([0, 0, 0, 6.0, 0, 0, 0])
    annotator.process(bgr)
    first = annotator._tracks[0].probs.copy()
    assert first.argmax() == 3  # the first frame is taken as it is
    model.logits = torch.tensor([0, 0, 0, 0, 6.0, 0, 0])
    annotator.process(bgr)
    now = torch.softmax(model.logits, 0).numpy()
    assert np.allclose(annotator._tracks[0].probs, 0.75 * first + 0.25 * now, atol=1e-6)
    assert annotator.state().faces[0][0] == "happy"  # one frame of "sad" does not flip the label
    for _ in range(10):
        annotator.process(bgr)
    assert annotator.state().faces[0][0] == "sad"
    annotator.configure(smoothing=0.0)
    model.logits = torch.tensor([6.0, 0, 0, 0, 0, 0, 0])
    annotator.process(bgr)
    assert annotator.state().faces[0][0] == "angry"


def test_recording_keeps_the_largest_face_per_frame():
    model = Scripted()
    annotator = LiveAnnotator(model, META, LiveSettings(smoothing=0.0), clock=Clock(0.5))
    bgr = face_photo(extra=((5, 120, (150, 200)),))[..., ::-1].copy()
    annotator.process(bgr)
    assert annotator.recording().empty
    annotator.configure(recording=True)
    for c in (3, 4, 6):
        model.logits = torch.eye(7)[c] * 5
        annotator.process(bgr)
    rec = annotator.recording()
    assert list(rec.columns) == ["seconds", *EMOTIONS, "label"]
    assert rec["label"].tolist() == ["happy", "sad", "neutral"]
    assert rec["seconds"].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert np.allclose(rec[list(EMOTIONS)].sum(axis=1), 1)
    annotator.configure(recording=False)
    annotator.process(bgr)
    assert len(annotator.recording()) == 3
    annotator.configure(recording=True)  # a new recording starts empty
    assert annotator.recording().empty


def test_gradcam_overlay_colours_the_face_only(cnn3):
    bgr = face_photo()[..., ::-1].copy()
    plain = LiveAnnotator(cnn3, META, LiveSettings(show_fps=False)).process(bgr)
    cam = LiveAnnotator(cnn3, META, LiveSettings(gradcam=True, show_fps=False)).process(bgr)
    changed = np.abs(plain.astype(int) - cam.astype(int)).sum(-1) > 0
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 1000
    assert xs.min() >= 370 and xs.max() <= 550 and ys.min() >= 140 and ys.max() <= 320  # inside the face box


def test_snapshot_annotates_an_rgb_photo_without_a_frame_rate(cnn3):
    rgb = face_photo()
    picture, state = annotate_photo(cnn3, META, rgb)
    assert picture.shape == rgb.shape and len(state.faces) == 1
    assert (picture[:30, :120] == rgb[:30, :120]).all()  # no fps text on a photo
    assert green(picture[..., ::-1]).sum() > 500


def test_a_gradcam_map_turns_with_a_tilted_face():
    """Drawn upright over a face tilted by 26°, the live overlay sat ~18 px from where its evidence was."""
    import cv2

    from fer_models.faces.face import Face, crop_matrix
    from fer_models.media.live import draw_map

    face = Face(320.0, 240.0, 120.0, angle=26.0)
    evidence = np.zeros((48, 48), np.float32)
    evidence[12:16, 30:34] = 1.0  # up and right of the crop's centre, inside the face box
    out = np.zeros((480, 640, 3), np.uint8)
    draw_map(out, face, evidence, opacity=1.0)
    weight = out.astype(float).sum(axis=2)
    ys, xs = np.indices(weight.shape)
    drawn = np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
    back = cv2.invertAffineTransform(crop_matrix(face, 48))
    expected = back @ np.array([31.5, 13.5, 1.0])  # the spot's centre in the crop, carried back to the frame
    upright = np.array([face.cx, face.cy]) + (np.array([31.5, 13.5]) - 24) * face.crop_side / 48
    assert np.hypot(*(drawn - expected)) < 2.0
    assert np.hypot(*(upright - expected)) > 15  # where the old drawing put it: this test tells them apart


@pytest.mark.parametrize("cx", [200, 320, 440])
def test_a_face_as_tall_as_the_frame_keeps_its_label_clear_of_its_bars(cnn3, cx):
    """Its bars fit neither under the box nor over the label: they went to the frame's top, over the label."""
    import cv2

    from fer_models.faces.face import Face

    out = np.full((480, 640, 3), 120, np.uint8)
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.6, 0.1, 0.1])  # "sad 60%"
    face = Face(cx, 260, 400)
    LiveAnnotator(cnn3, META)._draw_track(out, face, p)
    (tw, th), _ = cv2.getTextSize("sad 60%", cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, 2)
    x, y = face.corners().round().astype(int).min(axis=0)
    lx, top = min(max(x, 0), 640 - tw - 8), max(y - th - 10, 0)
    label = out[top:top + th + 10, lx:lx + tw + 8]
    assert (np.abs(label.astype(int) - 40).sum(-1) < 5).sum() == 0  # no dark bar row over the label
    dark = np.abs(out.astype(int) - 40).sum(-1) < 5
    assert dark.sum() > 7 * 150  # the bars are drawn, somewhere
