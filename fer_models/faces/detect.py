"""Every face in a photo or a video frame, largest first.

    from fer_models.faces.decode import read_image
    from fer_models.faces.detect import find_faces
    search = find_faces(read_image(open("photo.jpg", "rb").read()))   # detector="haar" for the cascades
    face48 = search.crop(0)          # uint8 48 x 48, the largest face, eyes level

"mtcnn" (the default, fer_models.faces.mtcnn) also places the eyes, nose and mouth corners, so the
crop is levelled and placed as FER2013's own crops are (fer_models.faces.align); when it finds
nothing, the Haar search (fer_models.faces.haar) runs before giving up. Only when both find nothing
does a photo fall back to a centre crop, and say so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_models.faces.decode import to_gray
from fer_models.faces.face import Face, crop_face
from fer_models.faces.haar import haar_faces

DETECTORS = {"mtcnn": "MTCNN", "haar": "Haar cascades"}


# MTCNN searches photos shrunk to this long a side, for faces at least 20 pixels wide there: its pyramid
# costs time in proportion to the area (a 4000-pixel photo would take seconds), and a face a fiftieth
# of the photo wide is still found
MTCNN_PHOTO_SIDE = 1024


# In a live frame faces are large (a webcam at arm's length): the frame is searched at this short side,
# for faces at least LIVE_MIN_FACE of it, which cuts the pyramid to a few small levels
LIVE_SHORT_SIDE = 240


LIVE_MIN_FACE = 0.2


@dataclass
class FaceSearch:
    """Everything found in one photo; faces are sorted largest first. `fallback` is True when no
    detector found a face and faces[0] is a centre crop."""
    rgb: np.ndarray
    faces: list[Face] = field(default_factory=list)
    fallback: bool = False
    detector: str = "mtcnn"

    @property
    def message(self) -> str:
        if self.fallback:
            return (f"No face was found ({searched(self.detector)}), so the model reads a "
                    "centre crop of the photo. Its prediction means little unless the face fills the picture: "
                    "crop the photo around the face and upload it again.")
        n = len(self.faces)
        hows = sorted({f.how for f in self.faces})
        return f"{n} face{'s' if n > 1 else ''} found ({', '.join(hows)}); the largest is used unless you pick another."

    def crop(self, index: int = 0) -> np.ndarray:
        return crop_face(to_gray(self.rgb), self.faces[index])


def searched(detector: str) -> str:
    """What a photo search with `detector` tried before giving up, in words."""
    return ("MTCNN, then " if detector == "mtcnn" else "") + "Haar frontal, tilted ±35° and profile"


def detect_faces(rgb: np.ndarray, detector: str = "mtcnn", live: bool = False) -> list[Face]:
    """Every face found in an RGB (or gray) image, largest first; [] when none. `live` is the video
    path: the next frame is coming, so no retries and no second detector, and MTCNN looks for large
    faces only (LIVE_SHORT_SIDE, LIVE_MIN_FACE)."""
    if detector not in DETECTORS:
        raise ValueError(f"detector {detector!r}: use one of {', '.join(DETECTORS)}")
    if detector == "mtcnn":
        found = mtcnn_faces(rgb, live)
        if found or live:
            return found
    return haar_faces(to_gray(rgb), retries=not live)


def mtcnn_faces(rgb: np.ndarray, live: bool = False) -> list[Face]:
    from fer_models.faces.align import aligned_face
    from fer_models.faces.mtcnn import LIVE_THRESHOLDS, detect

    rgb = rgb if rgb.ndim == 3 else np.repeat(rgb[..., None], 3, axis=2)
    short, long = sorted(rgb.shape[:2])
    if live:
        scale = min(1.0, LIVE_SHORT_SIDE / short)
        found = detect(rgb, min_face=LIVE_MIN_FACE * short, scale=scale, thresholds=LIVE_THRESHOLDS)
    else:
        found = detect(rgb, min_face=20 * max(1.0, long / MTCNN_PHOTO_SIDE), scale=min(1.0, MTCNN_PHOTO_SIDE / long))
    return sorted((aligned_face(d.landmarks) for d in found), key=lambda f: -f.size)


def find_faces(rgb: np.ndarray, detector: str = "mtcnn") -> FaceSearch:
    faces = detect_faces(rgb, detector)
    if faces:
        return FaceSearch(rgb, faces, detector=detector)
    h, w = rgb.shape[:2]
    return FaceSearch(rgb, [Face(w / 2, h / 2, float(min(h, w)), 0.0, "centre crop")], fallback=True,
                      detector=detector)


def draw_faces(rgb: np.ndarray, faces: list[Face], chosen: int = 0) -> np.ndarray:
    """A copy of the photo with every face boxed (turned as its crop is) and numbered from 1, the chosen one
    in green; MTCNN's landmarks as dots."""
    import cv2

    out = rgb.copy()
    thick = max(2, round(max(rgb.shape[:2]) / 300))
    for i, face in enumerate(faces):
        colour = (40, 200, 80) if i == chosen else (250, 190, 40)
        pts = face.corners().round().astype(np.int32)
        cv2.polylines(out, [pts], isClosed=True, color=colour, thickness=thick)
        x, y = pts[0]
        cv2.putText(out, str(i + 1), (int(x) + thick, int(y) - 2 * thick), cv2.FONT_HERSHEY_SIMPLEX,
                    thick / 2.5, colour, thick, cv2.LINE_AA)
        for px, py in face.landmarks if face.landmarks is not None else ():
            cv2.circle(out, (int(round(px)), int(round(py))), max(thick + 1, round(face.size / 30)), colour, -1,
                       cv2.LINE_AA)
    return out
