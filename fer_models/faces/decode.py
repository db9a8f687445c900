"""Uploads and photo files decoded safely: files of up to MAX_PHOTO_MB (checked before reading), any size up to
MAX_PIXELS (checked from the header, before decoding), gray, 16-bit, palette, alpha or CMYK, to an upright RGB
array; a clear ImageError otherwise.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from fer_models.core.constants import MAX_PHOTO_MB, MAX_PIXELS
from fer_models.core.guards import UntrustedFileError, capped_bytes

# 16-bit and float photos are worked on at most this long a side (a face a tenth of it wide is still 400
# pixels, far more than the 48 the model sees), shrunk before a float copy is made; JPEGs decode at it.
WORKING_SIDE = 4000


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
MIN_SIDE = 16    # pixels: a face smaller than this is no face to any detector (FER2013's are 48)
MAX_ASPECT = 10  # longest side over shortest: a panorama of 10:1 still holds faces, a strip does not


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
        try:  # a photo's size is checked before it is read: a sparse 3 GB file took 4 GB of memory and 15 s
            source = capped_bytes(source, MAX_PHOTO_MB << 20, name)
        except UntrustedFileError as err:
            raise ImageError(f"{err}; use another photo (png, jpg, webp or bmp, at most {MAX_PHOTO_MB} MB).") from None
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
    # a 3000×1 strip holds no face, and scaling its short side up for the detectors asked OpenCV for 12-29 GB
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{name} is {w}×{h} pixels: too small or too thin to hold a face (at least {MIN_SIDE} "
                         f"pixels a side, and at most {MAX_ASPECT}:1). Use a photo of the face.")
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
