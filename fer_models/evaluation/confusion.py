"""Reading a confusion matrix: row shares, the most confused pairs in words, per-class scores, the faces
of one cell, and which cell a click on fer_models.teaching.figures.confusion_figure selected."""
import numpy as np
import pandas as pd

from fer_models.core.constants import EMOTIONS


def row_normalised(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)


def cell_from_selection(event) -> tuple[int, int] | None:
    """(true, predicted) class indices of the clicked cell in st.plotly_chart's selection event, or None."""
    if not event:
        return None
    selection = event.get("selection", event) if isinstance(event, dict) else getattr(event, "selection", {})
    points = selection.get("points", []) if isinstance(selection, dict) else getattr(selection, "points", [])
    for point in points or []:
        data = point.get("customdata")
        if isinstance(data, dict):  # what the browser sends back: {"0": true, "1": pred, ...}
            data = [data.get("0"), data.get("1")]
        if data is not None and len(data) >= 2 and None not in data[:2]:
            return int(data[0]), int(data[1])
    return None


def most_confused(counts: np.ndarray, top: int = 3) -> list[str]:
    """The largest off-diagonal shares of each true class, in words."""
    shares = row_normalised(counts)
    off = [(shares[t, p], t, p) for t in range(len(EMOTIONS)) for p in range(len(EMOTIONS))
           if t != p and counts[t, p] > 0]
    return [f"**{EMOTIONS[t]}** is taken for **{EMOTIONS[p]}** in {share:.0%} of {EMOTIONS[t]} faces "
            f"({counts[t, p]} of {counts[t].sum()})" for share, t, p in sorted(off, reverse=True)[:top]]


def _score(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def per_class_table(metrics: dict, counts: np.ndarray) -> pd.DataFrame:
    """Scores as text: a precision of a class the model never predicts is undefined ("—"), not 0."""
    rows = []
    for c, name in enumerate(EMOTIONS):
        m = metrics.get("per_class", {}).get(name, {})
        predicted = int(counts[:, c].sum())
        rows.append({"class": name, "accuracy (recall)": _score(m.get("recall")),
                     "precision": _score(m.get("precision") if predicted else None),
                     "F1": _score(m.get("f1")), "faces": int(counts[c].sum()), "predicted as it": predicted})
    return pd.DataFrame(rows)


def cell_faces(predictions: pd.DataFrame, true: int, pred: int) -> pd.DataFrame:
    """The predictions of one cell, most confident first, with that confidence as a column."""
    cell = predictions[(predictions["true"] == true) & (predictions["pred"] == pred)].copy()
    cell["confidence"] = cell[f"p_{EMOTIONS[pred]}"]
    return cell.sort_values("confidence", ascending=False, kind="stable")
