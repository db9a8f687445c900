"""From a photo to the 48×48 gray face a model reads: decode safely, find the faces, crop one.

    from fer_models.faces import read_image, find_faces
    search = find_faces(read_image(open("photo.jpg", "rb").read()))   # detector="haar" for the cascades
    face48 = search.crop(0)          # uint8 48 x 48, the largest face, eyes level

Two detectors, both shipped inside their wheels (nothing is downloaded):
- "mtcnn" (the default; fer_models.mtcnn): a neural detector that also places the eyes, nose and
  mouth corners. The crop is turned so the eyes are level and scaled and placed as FER2013's own
  crops are (fer_models.align). When it finds nothing, the Haar search below runs before giving up.
- "haar": OpenCV's Haar cascades. The frontal cascade misses faces tilted by more than ~15° and
  turned faces, so when it finds nothing the image is searched again rotated by ±20° and ±35°, then
  with the profile cascade (both directions).
Only when both find nothing does it fall back to a centre crop, and say so.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import FACE_MARGIN, IMAGE_SIZE, MAX_PIXELS

# Detection runs on a copy whose shorter side is this long, where the cascade's 24-pixel window is
# 12% of it: smaller faces are missed (a crowd photo), and a 1280×720 photo is searched ~2x faster.
DETECT_SHORT_SIDE = 200
# 16-bit and float photos are worked on at most this long a side (a face a tenth of it wide is still 400
# pixels, far more than the 48 the model sees), shrunk before a float copy is made; JPEGs decode at it.
WORKING_SIDE = 4000
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
RETRY_ANGLES = (20, -20, 35, -35)
DETECTORS = {"mtcnn": "MTCNN", "haar": "Haar cascades"}
# MTCNN searches photos shrunk to this long a side, for faces at least 20 pixels wide there: its pyramid
# costs time in proportion to the area (a 4000-pixel photo would take seconds), and a face a fiftieth
# of the photo wide is still found
MTCNN_PHOTO_SIDE = 1024
# In a live frame faces are large (a webcam at arm's length): the frame is searched at this short side,
# for faces at least LIVE_MIN_FACE of it, which cuts the pyramid to a few small levels
LIVE_SHORT_SIDE = 240
LIVE_MIN_FACE = 0.2


class ImageError(ValueError):
    """An input that is not a usable image; the message says why and what to do."""


def read_image(source, name: str | None = None) -> np.ndarray:
    """Decode bytes or a path into an RGB uint8 H x W x 3 array, upright (EXIF orientation applied).

    Any size up to MAX_PIXELS (checked from the header, before decoding), gray, 16-bit, palette,
    alpha (laid on white) or CMYK.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, (str, Path)):
        name = name or str(source)
        try:
            source = Path(source).read_bytes()
        except OSError as err:
            raise ImageError(f"{name}: cannot read the file ({err.strerror or err})") from None
    name = name or "the image"
    if not source:
        raise ImageError(f"{name} is an empty file: choose a photo (png, jpg, webp or bmp).")
    try:
        im = Image.open(io.BytesIO(source))
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image this app can read: use png, jpg, webp or bmp.") from None
    except Exception as err:  # noqa: BLE001 - PIL raises many types on malformed headers
        raise ImageError(f"{name} could not be opened as an image ({err}).") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is {w}×{h} = {w * h / 1e6:.0f} megapixels; the limit is "
                         f"{MAX_PIXELS / 1e6:.0f}. Scale it down and try again.")
    try:
        im.draft(im.mode, (WORKING_SIDE, WORKING_SIDE))  # JPEG only: decode no larger than needed
        im.load()
        im = ImageOps.exif_transpose(im)
        return _to_rgb(im)
    except Exception as err:  # noqa: BLE001 - and as many on truncated or corrupt pixel data
        raise ImageError(f"{name} is truncated or corrupt ({err}); save it again or use another photo.") from None


def _to_rgb(im) -> np.ndarray:
    from PIL import Image

    if im.mode in WIDE_MODES:
        import cv2

        a = np.asarray(im)
        if max(a.shape) > WORKING_SIDE:  # shrunk in its own 2-4 bytes a pixel, before a float copy is made
            f = WORKING_SIDE / max(a.shape)
            a = cv2.resize(a.astype(np.float32) if a.dtype == np.int32 else a, None, fx=f, fy=f,
                           interpolation=cv2.INTER_AREA)
        a = a.astype(np.float32)
        top = 1.0 if im.mode == "F" and a.max() <= 1.0 else (255.0 if a.max() <= 255 else 65535.0)
        gray = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2
    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


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
    from .align import aligned_face
    from .mtcnn import LIVE_THRESHOLDS, detect

    rgb = rgb if rgb.ndim == 3 else np.repeat(rgb[..., None], 3, axis=2)
    short, long = sorted(rgb.shape[:2])
    if live:
        scale = min(1.0, LIVE_SHORT_SIDE / short)
        found = detect(rgb, min_face=LIVE_MIN_FACE * short, scale=scale, thresholds=LIVE_THRESHOLDS)
    else:
        found = detect(rgb, min_face=20 * max(1.0, long / MTCNN_PHOTO_SIDE), scale=min(1.0, MTCNN_PHOTO_SIDE / long))
    return sorted((aligned_face(d.landmarks) for d in found), key=lambda f: -f.size)


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
    faces = [Face(cx / scale, cy / scale, side / scale, angle, how) for (cx, cy, side), angle, how in found]
    return sorted(faces, key=lambda f: -f.size)


def _drop_overlaps(found):
    kept = []
    for item in sorted(found, key=lambda f: -f[0][2]):
        (cx, cy, side) = item[0]
        if all(abs(cx - k[0][0]) > k[0][2] / 2 or abs(cy - k[0][1]) > k[0][2] / 2 for k in kept):
            kept.append(item)
    return kept


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
