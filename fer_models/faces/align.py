"""From MTCNN's 5 landmarks to the crop a model trained on FER2013 expects: eyes level, the face
placed and scaled as FER2013's own crops place it.

    python scripts/face_template.py [--faces 1000]     # measure the template on the bundled PublicTest faces

FER2013's crops are not centred on a box: the template is where MTCNN finds the eyes and the mouth
in the dataset's 48×48 faces (medians, in the crop's pixels). The distance between the eyes sets the
scale: it does not move with the expression (17.5 to 18.5 pixels in every class of the bundled faces), where
the eye-to-mouth distance does (17.7 for happy faces, 20.7 for surprised ones: scaled by it, a happy face was
cropped at 43.7 pixels and a surprised one at 51.2, against FER2013's 48). Only when the head turns sideways,
which shortens the eyes' distance but not the mouth's, does the eye-to-mouth distance bound it.
"""
from __future__ import annotations

import numpy as np

from fer_models.core.constants import FACE_MARGIN, IMAGE_SIZE
from fer_models.faces.face import Face

# measured by `python scripts/face_template.py --faces 1500` (MTCNN found 1,359 of the first 1,500 bundled faces):
# the eyes' midpoint lies this far down a 48-pixel crop (centred left to right: 24.3 of 48), the eyes this far
# apart, and the mouth's midpoint this far below the eyes
EYE_LINE_Y = 18.7
EYE_DISTANCE = 17.9
EYE_TO_MOUTH = 19.4
# the eye-to-mouth scale over the eyes' spans 0.92 to 1.34 of its median over 90% of those faces (expressions):
# the eyes' scale is kept within this factor of the mouth's, which a turned head's shortened eye distance passes
SCALE_BOUND = 1.25


def tilt_degrees(landmarks: np.ndarray) -> float:
    """How far the eye line is turned counter-clockwise on screen (image y points down)."""
    dx, dy = landmarks[1] - landmarks[0]
    return float(np.degrees(np.arctan2(-dy, dx)))


def aligned_face(landmarks: np.ndarray, how: str = "MTCNN") -> Face:
    """The Face whose upright crop (faces.crop_face) puts the eyes level and where the template has them."""
    angle = tilt_degrees(landmarks)
    eyes = (landmarks[0] + landmarks[1]) / 2
    mouth = (landmarks[3] + landmarks[4]) / 2
    by_mouth = max(float(np.hypot(*(mouth - eyes))), 1e-3) / EYE_TO_MOUTH  # photo pixels per crop pixel
    by_eyes = float(np.hypot(*(landmarks[1] - landmarks[0]))) / EYE_DISTANCE
    per_pixel = min(max(by_eyes, by_mouth / SCALE_BOUND), by_mouth * SCALE_BOUND)
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
            "eye_distance": round(float(np.median(np.hypot(*(marks[:, 1] - marks[:, 0]).T))), 2),
            "landmarks_median": np.median(marks, axis=0).round(2).tolist() if len(marks) else []}


def measure_haar(faces48: np.ndarray, upscale: int = 4) -> dict:
    """The frontal Haar cascade's median box on `faces48`, enlarged as measure_template does: its side and centre
    in 48-pixel units, from which faces.haar.HAAR_MARGIN is set."""
    import cv2

    from fer_models.faces.haar import haar_faces

    pad, boxes = IMAGE_SIZE, []
    for face in faces48:
        big = cv2.resize(face, (IMAGE_SIZE * upscale,) * 2, interpolation=cv2.INTER_CUBIC)
        found = haar_faces(cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=128), retries=False)
        if found:
            boxes.append(((found[0].cx - pad) / upscale, (found[0].cy - pad) / upscale, found[0].size / upscale))
    cx, cy, side = np.median(np.array(boxes).reshape(-1, 3), axis=0) if boxes else (np.nan,) * 3
    return {"found": len(boxes), "box_side": round(float(side), 2), "centre": [round(float(cx), 2),
            round(float(cy), 2)], "margin": round(float((IMAGE_SIZE / side - 1) / 2), 3)}
