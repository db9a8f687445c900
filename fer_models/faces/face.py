"""A face in a photo (a turned square, with MTCNN's landmarks when it has them) and its crop: the
upright 48x48 gray square a model reads, widened by FACE_MARGIN per side.
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

    def corners(self) -> np.ndarray:
        """The box's 4 corners in photo coordinates (for drawing), clockwise from top-left."""
        half = self.size / 2
        t = np.deg2rad(self.angle)
        c, s = np.cos(t), np.sin(t)
        local = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        # image y points down, so a counter-clockwise turn on screen is (x, y) -> (c x + s y, -s x + c y)
        return np.stack([self.cx + c * local[:, 0] + s * local[:, 1],
                         self.cy - s * local[:, 0] + c * local[:, 1]], axis=1)


def margin_pixels(size: int = IMAGE_SIZE, margin: float = FACE_MARGIN) -> float:
    """How far the face box lies inside the crop, in the crop's pixels: the crop's side is the box's times
    (1 + 2 margin), so the box starts size * margin / (1 + 2 margin) pixels in."""
    return size * margin / (1 + 2 * margin)


def crop_face(gray: np.ndarray, face: Face, margin: float = FACE_MARGIN, size: int = IMAGE_SIZE) -> np.ndarray:
    """The upright square around `face`, widened by `margin` per side, as uint8 size x size.

    One affine warp turns the face upright and crops it at full resolution (edge pixels repeat
    past the border); INTER_AREA then shrinks it without aliasing.
    """
    import cv2

    side = max(int(round(face.size * (1 + 2 * margin))), 1)
    m = cv2.getRotationMatrix2D((face.cx, face.cy), -face.angle, 1.0)
    m[:, 2] += side / 2 - np.array([face.cx, face.cy])
    upright = cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(upright, (size, size), interpolation=interp)
