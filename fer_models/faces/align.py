"""From MTCNN's 5 landmarks to the crop a model trained on FER2013 expects: eyes level, the face
placed and scaled as FER2013's own crops place it.

    python scripts/face_template.py [--faces 1000]     # measure the template on the bundled PublicTest faces

FER2013's crops are not centred on a box: the template is where MTCNN finds the eyes and the mouth
in the dataset's 48×48 faces (medians, in the crop's pixels). The eye-to-mouth distance sets the
scale because it barely changes when the head turns sideways, unlike the distance between the eyes.
"""
from __future__ import annotations

import numpy as np

from fer_models.core.constants import FACE_MARGIN, IMAGE_SIZE
from fer_models.faces.face import Face

# measured by `python scripts/face_template.py --faces 1000` (MTCNN found 910 of the first 1,000 bundled faces): the
# eyes' midpoint lies this far down a 48-pixel crop, the mouth's midpoint this far below the eyes, and the
# eyes' midpoint is centred left to right (24.4 of 48)
EYE_LINE_Y = 18.7
EYE_TO_MOUTH = 19.4


def tilt_degrees(landmarks: np.ndarray) -> float:
    """How far the eye line is turned counter-clockwise on screen (image y points down)."""
    dx, dy = landmarks[1] - landmarks[0]
    return float(np.degrees(np.arctan2(-dy, dx)))


def aligned_face(landmarks: np.ndarray, how: str = "MTCNN") -> Face:
    """The Face whose upright crop (faces.crop_face) puts the eyes level and where the template has them."""
    angle = tilt_degrees(landmarks)
    eyes = (landmarks[0] + landmarks[1]) / 2
    mouth = (landmarks[3] + landmarks[4]) / 2
    per_pixel = max(float(np.hypot(*(mouth - eyes))), 1e-3) / EYE_TO_MOUTH  # photo pixels per crop pixel
    side = IMAGE_SIZE * per_pixel
    t = np.deg2rad(angle)
    down = np.array([np.sin(t), np.cos(t)])  # the face's "down" on screen, turned with it
    centre = eyes + down * (IMAGE_SIZE / 2 - EYE_LINE_Y) * per_pixel
    return Face(float(centre[0]), float(centre[1]), side / (1 + 2 * FACE_MARGIN), angle, how, landmarks)


def measure_template(faces48: np.ndarray, upscale: int = 4) -> dict:
    """Median landmark positions (in 48-pixel crop units) of the faces MTCNN finds among `faces48`
    (N x 48 x 48 uint8), each enlarged and set on a gray border so the detector sees a whole head."""
    import cv2

    from fer_models.faces.mtcnn import detect

    pad = IMAGE_SIZE
    marks = []
    for face in faces48:
        big = cv2.resize(face, (IMAGE_SIZE * upscale,) * 2, interpolation=cv2.INTER_CUBIC)
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128)
        found = detect(np.repeat(big[..., None], 3, axis=2), min_face=IMAGE_SIZE * upscale / 3)
        if found:
            marks.append((found[0].landmarks - pad) / upscale)
    marks = np.array(marks).reshape(-1, 5, 2)
    eyes, mouth = (marks[:, 0] + marks[:, 1]) / 2, (marks[:, 3] + marks[:, 4]) / 2
    return {"faces": int(len(faces48)), "found": int(len(marks)),
            "eye_line_y": round(float(np.median(eyes[:, 1])), 2),
            "eyes_mid_x": round(float(np.median(eyes[:, 0])), 2),
            "eye_to_mouth": round(float(np.median(np.hypot(*(mouth - eyes).T))), 2),
            "landmarks_median": np.median(marks, axis=0).round(2).tolist() if len(marks) else []}
