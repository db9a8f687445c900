import numpy as np
import pandas as pd

from fer_models.core.constants import EMOTIONS
from fer_models.evaluation.confusion import cell_faces, cell_from_selection, most_confused, row_normalised
from fer_models.teaching.figures import confusion_figure
from helpers import ROOT  # noqa: F401  (puts the project on the path)


def counts():
    c = np.diag([10, 2, 8, 20, 9, 7, 12])
    c[2, 4] = 6   # fear taken for sad
    c[4, 6] = 3
    return c


def test_every_cell_is_a_marker_carrying_its_classes():
    fig = confusion_figure(counts(), normalise=False)
    heat, trace = fig.data
    assert heat.type == "heatmap" and heat.hoverinfo == "skip" and heat.z[2][4] == 6  # colour only
    assert trace.marker.opacity == 0 and fig.layout.hoverdistance == -1  # the clicks: any point of a cell
    assert len(trace.x) == 49
    cells = {(EMOTIONS.index(y), EMOTIONS.index(x)): tuple(cd[:3])
             for x, y, cd in zip(trace.x, trace.y, trace.customdata)}
    assert cells[(2, 4)] == (2, 4, 6) and cells[(3, 3)] == (3, 3, 20)


def test_selection_maps_to_the_cell():
    # as Streamlit 1.67 returned it from Chromium after a click on the fear/sad cell
    event = {"selection": {"points": [{"curve_number": 0, "point_number": 18, "point_index": 18, "x": "sad",
                                       "y": "fear", "customdata": {"0": 2, "1": 4, "2": 89, "3": 0.179},
                                       "text": "18%"}], "point_indices": [18], "box": [], "lasso": []}}
    assert cell_from_selection(event) == (2, 4)
    assert cell_from_selection({"selection": {"points": [{"customdata": [2, 4, 6, 0.43]}]}}) == (2, 4)
    assert cell_from_selection({"selection": {"points": []}}) is None
    assert cell_from_selection(None) is None
    assert cell_from_selection({"selection": {"points": [{"x": "sad"}]}}) is None


def test_selection_maps_back_for_every_cell():
    trace = confusion_figure(counts(), normalise=True).data[1]
    for i, cd in enumerate(trace.customdata):
        event = {"selection": {"points": [{"point_index": i, "customdata": {str(k): v for k, v in enumerate(cd)}}]}}
        assert cell_from_selection(event) == divmod(i, 7)


def test_row_normalised_and_words():
    shares = row_normalised(counts())
    assert np.allclose(shares.sum(1), 1) and shares[2, 4] == 6 / 14
    words = most_confused(counts())
    assert words[0] == "**fear** is taken for **sad** in 43% of fear faces (6 of 14)"
    empty = np.zeros((7, 7), int)
    assert not row_normalised(empty).any() and most_confused(empty) == []


def test_cell_faces_sorted_by_confidence():
    predictions = pd.DataFrame({"id": ["a", "b", "c", "d"], "true": [2, 2, 2, 3], "pred": [4, 4, 2, 4]})
    for name in EMOTIONS:
        predictions[f"p_{name}"] = 0.0
    predictions["p_sad"] = [0.5, 0.9, 0.1, 0.7]
    cell = cell_faces(predictions, 2, 4)
    assert cell["id"].tolist() == ["b", "a"] and cell["confidence"].tolist() == [0.9, 0.5]


def test_text_follows_the_fill_in_both_modes_and_a_click_outlines_without_fading():
    for normalise in (False, True):
        fig = confusion_figure(counts(), normalise=normalise, selected=(2, 4))
        text = {(a.y, a.x): (a.text, a.font.color) for a in fig.layout.annotations}
        assert len(text) == 49
        # happy/happy (the darkest cell) in white; fear -> sad, a light cell in counts mode, in black
        assert text[("happy", "happy")][1] == "white" and text[("sad", "neutral")][1] != "white"
        assert text[("fear", "sad")] == ("43%" if normalise else "6", "#111111")
        trace = fig.data[1]
        assert trace.unselected.marker.opacity == trace.selected.marker.opacity == 0  # nothing fades
        (outline,) = fig.layout.shapes  # around fear (row 2 from the top, y = 4) -> sad (x = 4)
        assert (outline.x0, outline.x1, outline.y0, outline.y1) == (3.5, 4.5, 3.5, 4.5)
        assert fig.layout.width - sum((fig.layout.margin.l, fig.layout.margin.r)) == \
            fig.layout.height - sum((fig.layout.margin.t, fig.layout.margin.b))  # square plot area


def test_the_apps_matrix_fills_its_box_with_square_cells():
    fig = confusion_figure(counts(), normalise=True, cell=None)
    assert fig.layout.width is None and fig.layout.height is None  # the container's size
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert list(fig.layout.xaxis.range) == list(fig.layout.yaxis.range) == [-0.5, 6.5]  # no padding around
