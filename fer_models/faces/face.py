"""A face in a photo (a turned square, with MTCNN's landmarks when it has them) and its crop: the
upright 48x48 gray square a model reads, widened by the face's margin per side (each detector's own, measured so
that the crop frames a face as FER2013's crops do).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_models.core.constants import FACE_MARGIN, IMAGE_SIZE


@dataclass
class Face:
    """A face as a square centred at (cx, cy) with side `size` in the photo's pixels, turned by
    `angle` degrees (counter-clockwise) from upright; `how` says which detector found it."""
    cx: float
    cy: float
    size: float
    angle: float = 0.0
    how: str = "Haar frontal"
    landmarks: np.ndarray | None = None  # 5 x 2 photo pixels (eyes, nose, mouth corners) where MTCNN found them
    margin: float = FACE_MARGIN  # how far the crop reaches past the box on each side, as a share of the box

    @property
    def crop_side(self) -> float:
        return self.size * (1 + 2 * self.margin)

    def corners(self) -> np.ndarray:
        """The box's 4 corners in photo coordinates (for drawing), clockwise from top-left."""
        half = self.size / 2
        t = np.deg2rad(self.angle)
        c, s = np.cos(t), np.sin(t)
        local = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        # image y points down, so a counter-clockwise turn on screen is (x, y) -> (c x + s y, -s x + c y)
        return np.stack([self.cx + c * local[:, 0] + s * local[:, 1],
                         self.cy - s * local[:, 0] + c * local[:, 1]], axis=1)


def margin_pixels(face: Face | None = None, size: int = IMAGE_SIZE) -> float:
    """How far the face box lies inside its crop, in the crop's pixels: the crop's side is the box's times
    (1 + 2 margin), so the box starts size * margin / (1 + 2 margin) pixels in."""
    margin = FACE_MARGIN if face is None else face.margin
    return size * margin / (1 + 2 * margin)


def crop_matrix(face: Face, size: int = IMAGE_SIZE) -> np.ndarray:
    """The 2 x 3 affine map from photo pixels to the upright size x size crop's pixels: the one place that says
    where a crop comes from (its inverse lays a map of the crop back on the tilted face)."""
    import cv2

    side = max(face.crop_side, 1e-6)
    m = cv2.getRotationMatrix2D((face.cx, face.cy), -face.angle, 1.0)
    m[:, 2] += side / 2 - np.array([face.cx, face.cy])
    return m * (size / side)


def crop_face(gray: np.ndarray, face: Face, margin: float | None = None, size: int = IMAGE_SIZE) -> np.ndarray:
    """The upright square around `face`, widened by `margin` per side (the face's own when not given), as
    uint8 size x size.

    One affine warp turns the face upright and crops it at full resolution (edge pixels repeat
    past the border); INTER_AREA then shrinks it without aliasing.
    """
    import cv2

    if margin is not None:
        face = Face(face.cx, face.cy, face.size, face.angle, face.how, face.landmarks, margin)
    side = max(int(round(face.crop_side)), 1)
    m = crop_matrix(face, side)
    upright = cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(upright, (size, size), interpolation=interp)
