"""The explain pages' pictures: honest enlargement, colour scales with 0 as 'nothing', overlays, grids."""
import numpy as np

from fer_models.explain.pictures import _scale_bar, colourise, enlarge, mosaic, overlay, scale_bar, to_uint8
from fer_models.teaching.figures import probability_figure


def test_enlarge_keeps_every_pixel_a_square():
    face = np.arange(48 * 48, dtype=np.uint8).reshape(48, 48)
    big = enlarge(face, 192)
    assert big.shape == (192, 192)
    assert (big[::4, ::4] == face).all() and (big[3::4, 3::4] == face).all()
    assert enlarge(np.zeros((48, 48, 3), np.uint8), 96).shape == (96, 96, 3)


def test_signed_maps_draw_zero_as_white_and_signs_as_red_and_blue():
    m = np.zeros((4, 4))
    m[0, 0], m[3, 3] = 1.0, -1.0
    rgb = colourise(m, signed=True)
    assert (rgb[1, 1] > 240).all()                 # no evidence: white
    assert rgb[0, 0, 0] > rgb[0, 0, 2] + 50         # for: red (dark red at the extreme)
    assert rgb[3, 3, 2] > rgb[3, 3, 0] + 50         # against: blue
    unsigned = colourise(np.abs(m), signed=False)
    assert unsigned[1, 1].max() < 10                # inferno's zero is black


def test_overlay_leaves_the_face_where_the_map_is_zero():
    face = np.full((8, 8), 100, np.uint8)
    m = np.zeros((8, 8))
    m[2, 2] = 5.0
    out = overlay(face, m, signed=False, opacity=1.0)
    assert (out[5, 5] == 100).all()
    assert not (out[2, 2] == 100).all()
    assert (overlay(face, m, signed=False, opacity=0.0) == 100).all()


def test_mosaic_places_tiles_with_gaps():
    tiles = np.stack([np.full((3, 3), v, np.uint8) for v in (10, 20, 30, 40, 50)])
    grid = mosaic(tiles, columns=3, gap=1)
    assert grid.shape == (7, 11)
    assert grid[0, 0] == 10 and grid[0, 4] == 20 and grid[4, 0] == 40 and grid[4, 8] == 255  # empty slot


def test_feature_maps_share_one_scale():
    maps = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 4.0)])
    out = to_uint8(maps)
    assert out[1].max() == 255 and out[0].max() == 64


def test_probability_chart_marks_prediction_and_truth():
    probs = np.array([0.1, 0.05, 0.05, 0.6, 0.1, 0.05, 0.05])
    bar = probability_figure(probs, true=4).data[0]
    assert list(bar.y)[3] == "happy" and list(bar.y)[4] == "sad (true)"
    assert bar.marker.color[3] != bar.marker.color[0]
    from fer_models.teaching.figures import RIGHT, TRUE, WRONG
    assert bar.marker.color[3] == WRONG and bar.marker.color[4] == TRUE  # a wrong reading is never green
    assert probability_figure(probs, true=3).data[0].marker.color[3] == RIGHT
    assert probability_figure(probs).data[0].marker.color[3] not in (RIGHT, WRONG)  # no label: no verdict


def test_one_scale_bar_picture_serves_every_map_whose_ends_read_the_same():
    """Drawn anew for every map, the bars held the server's interpreter on every Saliency page."""
    kept = scale_bar(True, 0.5312)
    assert scale_bar(True, 0.5349) is kept and not kept.flags.writeable  # both read "+0.53"; shared, not writable
    assert np.array_equal(kept, _scale_bar.__wrapped__(True, 0.5312, 240))  # the same picture as drawn exactly
    assert scale_bar(True, 0.56) is not kept and scale_bar(False, 0.5312) is not kept
