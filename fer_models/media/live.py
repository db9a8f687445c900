"""Live expression recognition on video frames: detect, track, classify, smooth, draw.

    annotator = LiveAnnotator(model, meta)
    out = annotator.process(frame_bgr)         # or process_frame(annotator, av_frame) for streamlit-webrtc

Detection (MTCNN on a shrunk frame, or OpenCV's frontal Haar cascade: the `detector` setting) runs
every `detect_every` frames; between detections every face keeps its track, box and tilt, so each
frame costs one batched forward pass for all faces (a video file's frames, prepare() then finish(), share one
pass between several frames). MTCNN's landmarks level the eyes of each crop,
so a tilted head is read as the model was trained, upright. Each track
smooths its probabilities with an exponential moving average, so labels do not flicker. The
webcam page calls `process` from streamlit-webrtc's frame thread: everything it shares with the
page (settings, the recording, the frame rate) goes through one lock.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from fer_models.core.constants import EMOTIONS
from fer_models.faces.detect import detect_faces
from fer_models.faces.face import Face, crop_face, crop_matrix, margin_pixels

# A track survives this many detections in a row that miss it: a detector misses a face now and then
# (a blink, motion blur), and dropping the track would restart its smoothing. A missed track is neither drawn
# nor classified until it is found again: a face that left the frame kept its box over the background for
# 0.2 s, its blank crops classified into its probabilities and a video's timeline
MAX_MISSES = 2
RECORD_LIMIT = 36_000  # 20 minutes at 30 fps
ROW = 19  # px per class bar drawn under a face: room for its name at a legible size
LABEL_SCALE = 0.7  # the class over a face: letters 16 px tall in a 640-px frame (0.6 drew 14)
NAMES_WIDTH = 84  # px before the bars: "surprise" at the names' 0.55 scale is 69 px wide
BARS_WIDTH = 210  # the least width of the bars under a face, names included


@dataclass
class LiveSettings:
    smoothing: float = 0.6     # weight of the past in p ← s·p + (1 − s)·p_frame; 0 = no smoothing
    gradcam: bool = False      # overlay each face with Grad-CAM for its predicted class
    detect_every: int = 3      # frames between face detections; tracks carry the boxes between
    detector: str = "mtcnn"    # faces.DETECTORS
    recording: bool = False    # keep the largest face's probabilities per frame
    show_fps: bool = True


@dataclass
class Track:
    id: int
    face: Face
    probs: np.ndarray | None = None
    misses: int = 0


@dataclass
class _Pending:
    """A frame between prepare() and finish()."""
    bgr: np.ndarray
    now: float
    index: int                              # frames prepared so far, this one included
    faces: list                             # (Track, its Face in this frame), largest first
    crops: np.ndarray                       # one 48 x 48 crop per face


@dataclass
class LiveState:
    """What the page shows beside the video (a copy, taken under the lock)."""
    frames: int = 0
    fps: float = 0.0
    faces: list = field(default_factory=list)   # (label, probability) per face, largest first


class LiveAnnotator:
    def __init__(self, model, meta: dict, settings: LiveSettings | None = None, clock=time.perf_counter):
        self.model, self.meta = model, meta
        self.settings = settings or LiveSettings()
        self.clock = clock
        self._lock = threading.Lock()
        self._tracks: list[Track] = []
        self._next_id = 0
        self._frame = 0
        self._last_time: float | None = None
        self._fps = 0.0
        self._record: list[tuple] = []
        self._record_start: float | None = None
        self._state = LiveState()
        self._faces: list = []

    # ---------------------------------------------------------------- the page's side

    def configure(self, **changes) -> None:
        with self._lock:
            was_recording = self.settings.recording
            self.settings = replace(self.settings, **changes)
            if self.settings.recording and not was_recording:
                self._record, self._record_start = [], None

    def state(self) -> LiveState:
        with self._lock:
            return replace(self._state, faces=list(self._state.faces))

    def recording(self) -> pd.DataFrame:
        """One row per recorded frame: seconds since the recording began, the largest face's 7
        smoothed probabilities and its label; empty when nothing was recorded."""
        with self._lock:
            rows = list(self._record)
        return pd.DataFrame(rows, columns=["seconds", *EMOTIONS, "label"])

    def faces_now(self) -> list[tuple[int, tuple[int, int, int, int], np.ndarray]]:
        """After process(): each face of the last frame done, as finish() gives them. For the frame thread."""
        return list(self._faces)

    # ---------------------------------------------------------------- the frame thread's side

    def process(self, bgr: np.ndarray) -> np.ndarray:
        """One video frame (H x W x 3 uint8, BGR) in, the same frame annotated out."""
        return self.finish([self.prepare(bgr)])[0][0]

    def prepare(self, bgr: np.ndarray) -> _Pending:
        """A frame's detection, tracking and face crops: everything before the model. finish() then classifies
        many prepared frames in one batch (a video file's frames; one at a time, cnn3 spends 2.4 ms a face, in
        batches of 8 0.6 ms), in the order they were prepared."""
        with self._lock:
            settings = self.settings
        now = self.clock()
        import cv2

        # cvtColor, not a reversed-stride copy: 0.2 ms against 2 ms for a 640×480 frame
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if self._frame % max(1, settings.detect_every) == 0 or all(t.misses for t in self._tracks):
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self._update_tracks(detect_faces(rgb, settings.detector, live=True))
        self._frame += 1
        # each found track's face as it is in this frame: a later frame's detection moves the track on
        faces = [(t, t.face) for t in self._tracks if not t.misses]
        crops = np.stack([crop_face(gray, f) for _, f in faces]) if faces else np.zeros((0, 48, 48), np.uint8)
        return _Pending(bgr, now, self._frame, faces, crops)

    def finish(self, frames: list[_Pending]) -> list[tuple[np.ndarray, list]]:
        """Prepared frames, in order, annotated: each one's drawn frame and its faces (track id, upright box
        (x, y, width, height), smoothed probabilities; largest first)."""
        with self._lock:
            settings = self.settings
        crops = np.concatenate([f.crops for f in frames])
        probs = self._classify(crops) if len(crops) else np.zeros((0, len(EMOTIONS)), np.float32)
        done, at = [], 0
        for frame in frames:
            out, faces = frame.bgr.copy(), []
            for (track, face), crop, p in zip(frame.faces, frame.crops, probs[at:at + len(frame.faces)]):
                s = settings.smoothing
                track.probs = p if track.probs is None else s * track.probs + (1 - s) * p
                faces.append((track.id, _upright_box(face), track.probs.copy()))
                if settings.gradcam:
                    self._draw_gradcam(out, face, crop, int(track.probs.argmax()))
            at += len(frame.faces)
            for (_, face), (_, _, p) in zip(frame.faces, faces):
                self._draw_track(out, face, p)
            self._tick(frame, faces, out, settings)
            done.append((out, faces))
        self._faces = done[-1][1] if done else []
        return done

    def _tick(self, frame: _Pending, faces: list, out: np.ndarray, settings: LiveSettings) -> None:
        """The frame rate, the fps label and what the page reads (state, recording) after a frame is drawn."""
        if self._last_time is not None:
            dt = max(frame.now - self._last_time, 1e-6)
            self._fps = 1 / dt if self._fps == 0 else 0.9 * self._fps + 0.1 / dt
        self._last_time = frame.now
        if settings.show_fps:
            self._draw_fps(out)
        with self._lock:
            self._state = LiveState(frame.index, self._fps,
                                    [(EMOTIONS[int(p.argmax())], float(p.max())) for _, _, p in faces])
            if self.settings.recording and faces:
                self._record_start = frame.now if self._record_start is None else self._record_start
                if len(self._record) < RECORD_LIMIT:
                    p = faces[0][2]
                    self._record.append((frame.now - self._record_start, *p.tolist(), EMOTIONS[int(p.argmax())]))

    def _update_tracks(self, found: list[Face]) -> None:
        """Match each detection to the nearest track whose centre lies within half a box of it;
        unmatched detections start tracks, tracks missed too often end. Largest first."""
        free = list(self._tracks)
        kept = []
        for face in found:
            near = [(np.hypot(t.face.cx - face.cx, t.face.cy - face.cy), t) for t in free]
            near = [(d, t) for d, t in near if d < max(t.face.size, face.size) / 2]
            if near:
                _, track = min(near, key=lambda dt: dt[0])
                free.remove(track)
                track.face, track.misses = face, 0
            else:
                track = Track(self._next_id, face)
                self._next_id += 1
            kept.append(track)
        for track in free:
            track.misses += 1
            # a face that moved over half a box between detections starts a new track; its old one, kept for
            # a miss, drew a second label and set of bars over the same face
            if track.misses <= MAX_MISSES and all(_overlap(track.face, t.face) < 0.2 for t in kept):
                kept.append(track)
        self._tracks = sorted(kept, key=lambda t: -t.face.size)

    def _classify(self, crops: np.ndarray) -> np.ndarray:
        import torch

        from fer_models.datasets.augment import to_input
        from fer_models.explain.attributions import probabilities

        norm = self.meta["normalisation"]
        x = to_input(torch.as_tensor(crops[:, None]), norm["mean"], norm["std"])
        return probabilities(self.model, x.contiguous(memory_format=torch.channels_last))

    # ---------------------------------------------------------------- drawing

    def _draw_gradcam(self, out: np.ndarray, face: Face, crop: np.ndarray, label: int) -> None:
        from fer_models.explain.attributions import attribute, face_input

        cam = attribute(self.model, face_input(crop, self.meta), "gradcam", label)
        draw_map(out, face, cam.map)

    def _draw_track(self, out: np.ndarray, face: Face, p: np.ndarray) -> None:
        import cv2

        label = int(p.argmax())
        pts = face.corners().round().astype(np.int32)
        cv2.polylines(out, [pts], True, (80, 200, 40), 2, cv2.LINE_AA)
        x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
        text = f"{EMOTIONS[label]} {p[label]:.0%}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, 2)
        top, frame_width = max(y - th - 10, 0), out.shape[1]
        # kept inside the frame: a face at its left edge read "ad 37%" for "sad 37%"
        lx = min(max(x, 0), max(frame_width - tw - 8, 0))
        cv2.rectangle(out, (lx, top), (lx + tw + 8, top + th + 10), (80, 200, 40), -1)
        cv2.putText(out, text, (lx + 4, top + th + 4), cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, (255, 255, 255), 2,
                    cv2.LINE_AA)
        # one bar per class under the box, else above its label, else beside the box, else at the frame's foot:
        # a face as tall as the frame had its bars clamped to the top, over its own label. Rows of ROW px, each
        # class named in full (three letters, "ang", "sur", had to be guessed) at about the label's size
        frame_height, height = out.shape[0], 7 * ROW
        right, bottom = int(pts[:, 0].max()), int(pts[:, 1].max())
        width = min(max(right - x, BARS_WIDTH), frame_width)
        left = min(max(x, 0), frame_width - width)
        if bottom + 4 + height <= frame_height:
            top = bottom + 4
        elif top - 4 - height >= 0:
            top = top - 4 - height
        else:
            width = min(BARS_WIDTH, frame_width)
            beside = [at for at in (right + 4, x - 4 - width) if 0 <= at and at + width <= frame_width]
            left = beside[0] if beside else left
            top = min(max(y, 0), frame_height - height) if beside else max(frame_height - height, 0)
        for c, share in enumerate(p):
            by = top + c * ROW
            cv2.rectangle(out, (left, by), (left + width, by + ROW - 1), (40, 40, 40), -1)
            cv2.rectangle(out, (left + NAMES_WIDTH, by + 5),
                          (left + NAMES_WIDTH + int((width - NAMES_WIDTH - 4) * share), by + ROW - 6),
                          (80, 200, 40) if c == label else (200, 200, 200), -1)
            cv2.putText(out, EMOTIONS[c], (left + 4, by + ROW - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                        (255, 255, 255), 1, cv2.LINE_AA)

    def _draw_fps(self, out: np.ndarray) -> None:
        """Bottom left, on a box of its own, drawn last: at the top left it wrote over a face's class bars."""
        import cv2

        text = f"{self._fps:4.1f} fps"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
        bottom = out.shape[0] - 4
        cv2.rectangle(out, (4, bottom - th - 12), (tw + 16, bottom), (40, 40, 40), -1)
        cv2.putText(out, text, (10, bottom - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)


def _overlap(a: Face, b: Face) -> float:
    """Intersection over union of two faces' upright boxes."""
    (ax, ay, aw, ah), (bx, by, bw, bh) = _upright_box(a), _upright_box(b)
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union > 0 else 0.0


def _upright_box(face: Face) -> tuple[int, int, int, int]:
    pts = face.corners()
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))


def draw_map(out: np.ndarray, face: Face, map48: np.ndarray, opacity: float = 0.6) -> None:
    """A signed map of the face's crop (48 x 48, as Grad-CAM gives it) laid over the BGR frame where that crop came
    from: through the inverse of the crop's own transform, so a tilted face's map turns with it (drawn upright,
    it sat 18 px off at 26°). Only the face box shows it, not the crop's margin."""
    import cv2

    from fer_models.explain.pictures import colourise, to_unit

    size = map48.shape[0]
    edge = int(round(margin_pixels(face, size)))
    weight = np.abs(to_unit(map48, True)).astype(np.float32) * opacity
    weight[:edge], weight[size - edge:], weight[:, :edge], weight[:, size - edge:] = 0, 0, 0, 0
    colour = colourise(map48, True)[..., ::-1]
    corners = face.corners()
    h, w = out.shape[:2]
    x0, y0 = max(int(np.floor(corners[:, 0].min())), 0), max(int(np.floor(corners[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(corners[:, 0].max())) + 1, w), min(int(np.ceil(corners[:, 1].max())) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    m = crop_matrix(face, size)
    m[:, 2] += m[:, :2] @ np.array([x0, y0], float)  # the region's own pixels, not the frame's
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    tinted = cv2.warpAffine(colour, m, (x1 - x0, y1 - y0), flags=flags, borderValue=0).astype(np.float32)
    alpha = cv2.warpAffine(weight, m, (x1 - x0, y1 - y0), flags=flags, borderValue=0)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (region * (1 - alpha) + tinted * alpha + 0.5).astype(np.uint8)


def process_frame(annotator: LiveAnnotator, frame):
    """streamlit-webrtc's video_frame_callback: an av.VideoFrame in, the annotated one out."""
    import av

    out = av.VideoFrame.from_ndarray(annotator.process(frame.to_ndarray(format="bgr24")), format="bgr24")
    out.pts = frame.pts  # the sender's timing travels on, or the browser shows frames out of step
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


def annotate_photo(model, meta: dict, rgb: np.ndarray, gradcam: bool = False, detector: str = "mtcnn"
                   ) -> tuple[np.ndarray, LiveState]:
    """The snapshot mode: one photo annotated as a video frame would be (no smoothing)."""
    annotator = LiveAnnotator(model, meta, LiveSettings(smoothing=0.0, gradcam=gradcam, show_fps=False,
                                                        detector=detector))
    out = annotator.process(np.ascontiguousarray(rgb[..., ::-1]))[..., ::-1]
    return np.ascontiguousarray(out), annotator.state()
