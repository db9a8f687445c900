"""From a photo to the 48×48 face: safe decoding of every kind of file, detection, cropping."""
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from fer_models.core.constants import MAX_PIXELS
from fer_models.faces.decode import ImageError, read_image
from fer_models.faces.detect import detect_faces, draw_faces, find_faces
from fer_models.faces.face import Face, crop_face
from helpers import bundled_faces
from helpers import face_photo as photo

BUNDLED = bundled_faces()
DETECTABLE = (2, 5)  # PublicTest faces the frontal cascade finds when enlarged


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- decoding

@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_reads_common_formats_as_rgb(fmt):
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[:, :20] = (200, 40, 40)
    out = read_image(encode(Image.fromarray(rgb), fmt), "x")
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert abs(int(out[15, 5, 0]) - 200) < 12 and abs(int(out[15, 30, 0])) < 12


def test_gray_16bit_cmyk_palette_and_alpha():
    gray = read_image(encode(Image.fromarray(np.full((16, 16), 90, np.uint8)), "PNG"))
    assert (gray == 90).all()
    sixteen = Image.fromarray(np.full((16, 16), 65535 // 2, np.uint16))
    assert abs(int(read_image(encode(sixteen, "PNG"))[0, 0, 0]) - 127) <= 1  # scaled, not clipped to 255
    cmyk = Image.new("CMYK", (16, 16), (0, 0, 0, 0))  # no ink: white
    assert read_image(encode(cmyk, "JPEG")).min() > 240
    palette = Image.fromarray(np.full((16, 16), 30, np.uint8)).convert("P")
    assert read_image(encode(palette, "PNG")).shape == (16, 16, 3)
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent black: laid on white
    assert (read_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")) == 255).all()


@pytest.mark.parametrize("size", [(3000, 1), (2, 3000), (12, 12)])
def test_strips_and_specks_are_refused_from_the_header(size):
    """A 3000x1 image crashed predict and Saliency, asking OpenCV for 12-29 GB to scale its short side up."""
    with pytest.raises(ImageError, match=f"{size[0]}×{size[1]} pixels: too small or too thin to hold a face"):
        read_image(encode(Image.fromarray(np.zeros(size[::-1], np.uint8)), "PNG"), "strip.png")


def test_exif_orientation_is_applied():
    im = Image.fromarray(np.zeros((20, 60, 3), np.uint8))  # wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = read_image(encode(im, "JPEG", exif=exif))
    assert out.shape[:2] == (60, 20)


@pytest.mark.parametrize("data, words", [
    (b"", "empty file"),
    (b"name,age\nann,3\n", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "not an image"),
])
def test_refuses_what_is_not_an_image(data, words):
    with pytest.raises(ImageError, match=words):
        read_image(data, "upload.png")


def test_truncated_image_says_so():
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        read_image(data[:len(data) // 2], "half.jpg")


def png_header_only(width, height) -> bytes:
    """A PNG whose header claims width x height, with no pixel data: only a size check before
    decoding can refuse it without allocating width x height pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_huge_image_refused_from_its_header():
    with pytest.raises(ImageError, match="megapixels; the limit is 25"):
        read_image(png_header_only(6000, 5000), "big.png")
    assert 6000 * 5000 > MAX_PIXELS


def test_missing_path():
    with pytest.raises(ImageError, match="no such file"):
        read_image("/no/such/photo.jpg")


# ---------------------------------------------------------------- detection and cropping

def test_finds_a_face_pasted_on_a_larger_photo():
    search = find_faces(photo(), "haar")
    assert not search.fallback and len(search.faces) == 1
    face = search.faces[0]
    assert abs(face.cx - 460) < 20 and abs(face.cy - 230) < 20 and 120 < face.size < 200
    crop = search.crop(0)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8


@pytest.mark.parametrize("index", DETECTABLE)
def test_finds_a_face_turned_by_20_degrees_and_crops_it_upright(index):
    search = find_faces(photo(index, angle=20), "haar")
    assert not search.fallback
    face = search.faces[0]
    assert abs(face.cx - 460) < 20 and abs(face.cy - 230) < 20
    assert face.angle == 20 and "turned +20°" in face.how
    # the crop is upright: it matches the unturned face better than the turned one
    upright = cv2.resize(BUNDLED[index, 0], (48, 48)).astype(float)
    turned = cv2.warpAffine(BUNDLED[index, 0], cv2.getRotationMatrix2D((24, 24), 20, 1.0), (48, 48),
                            borderMode=cv2.BORDER_REPLICATE).astype(float)
    crop = search.crop(0).astype(float)
    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert corr(crop, upright) > corr(crop, turned)


def test_several_faces_all_boxed_largest_first():
    search = find_faces(photo(2, size=120, at=(60, 120), extra=[(5, 180, (380, 150))]), "haar")
    assert len(search.faces) == 2
    assert search.faces[0].size > search.faces[1].size
    assert abs(search.faces[0].cx - 470) < 25 and abs(search.faces[1].cx - 120) < 25
    assert "2 faces found" in search.message
    drawn = draw_faces(search.rgb, search.faces, chosen=1)
    assert drawn.shape == search.rgb.shape and (drawn != search.rgb).any()


def test_no_face_falls_back_to_an_announced_centre_crop():
    blank = np.full((300, 500, 3), 128, np.uint8)
    search = find_faces(blank, "haar")
    assert search.fallback and "No face was found" in search.message
    assert search.faces[0].cx == 250 and search.faces[0].size == 300
    assert detect_faces(blank[..., 0], "haar") == detect_faces(blank) == []


def test_small_face_crop_is_detected_after_upscaling():
    # a 48x48 dataset face uploaded as is: the detector works on an enlarged copy
    search = find_faces(np.repeat(BUNDLED[2, 0][..., None], 3, axis=2), "haar")
    assert search.crop(0).shape == (48, 48)


def test_crop_of_a_turned_face_undoes_the_turn():
    face = np.zeros((100, 100), np.uint8)
    face[30:40, 20:80] = 255  # a horizontal bar
    turned = cv2.warpAffine(face, cv2.getRotationMatrix2D((50, 50), 30, 1.0), (100, 100))
    crop = crop_face(turned, Face(50, 50, 80, angle=30), margin=0.0, size=80)
    rows = crop.mean(1)
    # the bar (rows 30-40 of the upright picture, 20-30 of the crop) is horizontal again: a few
    # bright rows, dark elsewhere; still turned, it would spread thinly over ~40 rows
    assert rows[21:29].min() > 150 and rows[:17].max() < 20 and rows[34:].max() < 20


def test_the_crop_scale_does_not_move_with_the_expression():
    """Scaled by the eye-to-mouth line, an open mouth (surprise) made the crop wider and a smile narrower."""
    from fer_models.faces.align import aligned_face

    neutral = np.array([[15.2, 18.8], [33.4, 18.6], [24.3, 29.0], [16.8, 37.9], [32.0, 37.7]]) * 4
    surprised = neutral.copy()
    surprised[3:, 1] += 4 * 3  # the mouth 3 crop-pixels lower, the eyes where they were
    smiling = neutral.copy()
    smiling[3:, 1] -= 4 * 2
    sides = [aligned_face(m).crop_side for m in (neutral, surprised, smiling)]
    assert max(sides) / min(sides) < 1.001
    turned = neutral.copy()
    turned[1, 0] -= 4 * 8  # the head turned sideways: the eyes 10 crop-pixels apart, the mouth as it was
    assert aligned_face(turned).crop_side > 0.75 * sides[0]  # the eye-to-mouth line bounds the shrinking


def test_haar_crops_frame_a_face_as_fer2013_does():
    from fer_models.faces.haar import HAAR_MARGIN
    box = Face(100, 100, 46.1, margin=HAAR_MARGIN)  # the cascade's median box on FER2013's faces, in 48-pixel units
    assert abs(box.crop_side - 48) < 0.3
