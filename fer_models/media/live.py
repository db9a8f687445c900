"""Live expression recognition on video frames: detect, track, classify, smooth, draw.

    annotator = LiveAnnotator(model, meta)
    out = annotator.process(frame_bgr)         # or process_frame(annotator, av_frame) for streamlit-webrtc

Detection (MTCNN on a shrunk frame, or OpenCV's frontal Haar cascade: the `detector` setting) runs
every `detect_every` frames; between detections every face keeps its track, box and tilt, so each
frame costs one batched forward pass for all faces. MTCNN's landmarks level the eyes of each crop,
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
# (a blink, motion blur), and dropping the track would restart its smoothing
MAX_MISSES = 2
RECORD_LIMIT = 36_000  # 20 minutes at 30 fps


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
        """After process(): each tracked face's id, its upright box (x, y, width, height) clipped to nothing,
        and its smoothed probabilities; largest first. For the frame thread (a video file's loop)."""
        out = []
        for t in self._tracks:
            pts = t.face.corners()
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            out.append((t.id, (int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))),
                        t.probs.copy()))
        return out

    # ---------------------------------------------------------------- the frame thread's side

    def process(self, bgr: np.ndarray) -> np.ndarray:
        """One video frame (H x W x 3 uint8, BGR) in, the same frame annotated out."""
        with self._lock:
            settings = self.settings
        now = self.clock()
        import cv2

        # cvtColor, not a reversed-stride copy: 0.2 ms against 2 ms for a 640×480 frame
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if self._frame % max(1, settings.detect_every) == 0 or not self._tracks:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self._update_tracks(detect_faces(rgb, settings.detector, live=True))
        self._frame += 1
        out = bgr.copy()
        if self._tracks:
            crops = np.stack([crop_face(gray, t.face) for t in self._tracks])
            probs = self._classify(crops)
            for track, p in zip(self._tracks, probs):
                s = settings.smoothing
                track.probs = p if track.probs is None else s * track.probs + (1 - s) * p
            if settings.gradcam:
                for track, crop in zip(self._tracks, crops):
                    self._draw_gradcam(out, track, crop)
            for track in self._tracks:
                self._draw_track(out, track)
        if self._last_time is not None:
            dt = max(now - self._last_time, 1e-6)
            self._fps = 1 / dt if self._fps == 0 else 0.9 * self._fps + 0.1 / dt
        self._last_time = now
        if settings.show_fps:
            self._draw_fps(out)
        with self._lock:
            faces = [(EMOTIONS[int(t.probs.argmax())], float(t.probs.max())) for t in self._tracks]
            self._state = LiveState(self._frame, self._fps, faces)
            if self.settings.recording and self._tracks:
                self._record_start = now if self._record_start is None else self._record_start
                if len(self._record) < RECORD_LIMIT:
                    p = self._tracks[0].probs
                    self._record.append((now - self._record_start, *p.tolist(), EMOTIONS[int(p.argmax())]))
        return out

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
            if track.misses <= MAX_MISSES:
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

    def _draw_gradcam(self, out: np.ndarray, track: Track, crop: np.ndarray) -> None:
        from fer_models.explain.attributions import attribute, face_input

        cam = attribute(self.model, face_input(crop, self.meta), "gradcam", int(track.probs.argmax()))
        draw_map(out, track.face, cam.map)

    def _draw_track(self, out: np.ndarray, track: Track) -> None:
        import cv2

        p = track.probs
        label = int(p.argmax())
        pts = track.face.corners().round().astype(np.int32)
        cv2.polylines(out, [pts], True, (80, 200, 40), 2, cv2.LINE_AA)
        x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
        text = f"{EMOTIONS[label]} {p[label]:.0%}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        top = max(y - th - 10, 0)
        cv2.rectangle(out, (x, top), (x + tw + 8, top + th + 10), (80, 200, 40), -1)
        cv2.putText(out, text, (x + 4, top + th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        # one small bar per class under the box (above it when the frame ends below)
        left, width = max(x, 0), max(int(pts[:, 0].max()) - x, 112)
        below = int(pts[:, 1].max()) + 4
        top = below if below + 7 * 13 <= out.shape[0] else max(y - th - 14 - 7 * 13, 0)
        for c, share in enumerate(p):
            by = top + c * 13
            cv2.rectangle(out, (left, by), (left + width, by + 12), (40, 40, 40), -1)
            cv2.rectangle(out, (left + 30, by + 3), (left + 30 + int((width - 34) * share), by + 9),
                          (80, 200, 40) if c == label else (200, 200, 200), -1)
            cv2.putText(out, EMOTIONS[c][:3], (left + 3, by + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                        (255, 255, 255), 1, cv2.LINE_AA)

    def _draw_fps(self, out: np.ndarray) -> None:
        import cv2

        cv2.putText(out, f"{self._fps:4.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, f"{self._fps:4.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                    cv2.LINE_AA)


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
