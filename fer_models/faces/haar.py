"""OpenCV's Haar cascades (shipped in opencv-python-headless): the fast detector, and MTCNN's fallback.
The frontal cascade misses faces tilted by more than ~15° and turned faces, so when it finds nothing
the image is searched again turned by ±20° and ±35°, then with the profile cascade both ways.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_models.faces.face import Face

# Detection runs on a copy whose shorter side is this long, where the cascade's 24-pixel window is
# 12% of it: smaller faces are missed (a crowd photo), and a 1280×720 photo is searched ~2x faster.
DETECT_SHORT_SIDE = 200


RETRY_ANGLES = (20, -20, 35, -35)
# measured by `python scripts/face_template.py --faces 1500` (the frontal cascade found 931 of the first 1,500
# bundled faces, enlarged 4x on a gray border): its box is 46.1 of FER2013's 48 pixels wide, centred (24.2, 24.0).
# A crop of the box widened by this share per side frames a face as FER2013 does; FACE_MARGIN's 0.1 made Haar
# crops 15% wider than the faces the models learned from
HAAR_MARGIN = 0.02


_CASCADES: dict = {}


def _cascade(name: str):
    import cv2

    if name not in _CASCADES:
        path = Path(cv2.data.haarcascades) / name
        cascade = cv2.CascadeClassifier(str(path))
        if cascade.empty():
            raise RuntimeError(f"OpenCV's {name} is missing from {path.parent}: "
                               "install opencv-python-headless < 5 (5.x no longer ships Haar cascades)")
        _CASCADES[name] = cascade
    return _CASCADES[name]


def _detect(cascade_name: str, gray: np.ndarray, strict: bool = False) -> list[tuple[float, float, float]]:
    """(cx, cy, side) of each detection, in gray's pixels. `strict` asks for more overlapping hits:
    the retries (turned copies, profiles) search a photo where no upright face was found, so a
    false alarm there would be taken as the face."""
    boxes = _cascade(cascade_name).detectMultiScale(gray, scaleFactor=1.15, minNeighbors=9 if strict else 5,
                                                    minSize=(24, 24))
    return [(x + w / 2, y + h / 2, float(max(w, h))) for x, y, w, h in boxes]


def _detect_rotated(gray: np.ndarray, angle: float) -> list[tuple[float, float, float]]:
    """Frontal detections on the image turned by -angle (so a face tilted by `angle` stands
    upright), mapped back to gray's pixels."""
    import cv2

    h, w = gray.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    # grow the canvas so no corner of the photo is cut off
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[:, 2] += (nw - w) / 2, (nh - h) / 2
    turned = cv2.warpAffine(gray, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    back = cv2.invertAffineTransform(m)
    found = _detect("haarcascade_frontalface_default.xml", turned, strict=True)
    return [(*(back @ np.array([cx, cy, 1.0])), side) for cx, cy, side in found]


def haar_faces(gray: np.ndarray, retries: bool = True) -> list[Face]:
    """Every face the Haar cascades find, largest first; [] when none (see the module docstring for the
    search order). `retries=False` stops after the upright frontal search."""
    import cv2

    scale = DETECT_SHORT_SIDE / min(gray.shape)
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    small = cv2.equalizeHist(small)

    found = [(d, 0.0, "Haar frontal") for d in _detect("haarcascade_frontalface_default.xml", small)]
    for angle in RETRY_ANGLES if retries else ():
        if found:
            break
        found = [(d, float(angle), f"Haar, with the photo turned {angle:+d}°") for d in _detect_rotated(small, angle)]
    if not found and retries:
        found = [(d, 0.0, "Haar profile") for d in _detect("haarcascade_profileface.xml", small, strict=True)]
        width = small.shape[1]
        # the profile cascade only knows faces turned one way: look again in the mirror image
        found += [((width - cx, cy, side), 0.0, "Haar profile") for cx, cy, side in
                  _detect("haarcascade_profileface.xml", np.ascontiguousarray(small[:, ::-1]), strict=True)]
        found = _drop_overlaps(found)
    faces = [Face(cx / scale, cy / scale, side / scale, angle, how, margin=HAAR_MARGIN)
             for (cx, cy, side), angle, how in found]
    return sorted(faces, key=lambda f: -f.size)


def _drop_overlaps(found):
    kept = []
    for item in sorted(found, key=lambda f: -f[0][2]):
        (cx, cy, side) = item[0]
        if all(abs(cx - k[0][0]) > k[0][2] / 2 or abs(cy - k[0][1]) > k[0][2] / 2 for k in kept):
            kept.append(item)
    return kept
