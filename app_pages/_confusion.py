"""The confusion matrix as a clickable figure, and the pure functions behind the page (no Streamlit here).

A Plotly heatmap sends no click events to Streamlit (streamlit issue #8760), so every cell is a
square scatter marker whose customdata names its (true, predicted) classes.
"""
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fer_models.data import EMOTIONS


def row_normalised(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)


def confusion_figure(counts: np.ndarray, normalise: bool, selected: tuple[int, int] | None = None) -> go.Figure:
    shares = row_normalised(counts)
    values = shares if normalise else counts
    n = len(EMOTIONS)
    true_idx, pred_idx = np.divmod(np.arange(n * n), n)
    text = [f"{shares[t, p]:.0%}" if normalise else str(counts[t, p]) for t, p in zip(true_idx, pred_idx)]
    fig = go.Figure(go.Scatter(
        x=[EMOTIONS[p] for p in pred_idx], y=[EMOTIONS[t] for t in true_idx], mode="markers+text",
        marker=dict(symbol="square", size=52, color=values.ravel(), colorscale="Blues", showscale=True,
                    line=dict(width=[4 if selected == (t, p) else 0 for t, p in zip(true_idx, pred_idx)],
                              color="#d62728")),
        text=text, textfont=dict(color=["white" if shares[t, p] > 0.5 else "black"
                                        for t, p in zip(true_idx, pred_idx)]),
        customdata=np.stack([true_idx, pred_idx, counts.ravel(), shares.ravel()], axis=1),
        hovertemplate="true %{y}, predicted %{x}<br>%{customdata[2]} faces (%{customdata[3]:.1%} of %{y})"
                      "<extra>click to see them</extra>",
    ))
    fig.update_xaxes(title="predicted", categoryorder="array", categoryarray=list(EMOTIONS), side="top")
    fig.update_yaxes(title="true", categoryorder="array", categoryarray=list(EMOTIONS)[::-1])
    fig.update_layout(height=600, width=640, margin=dict(l=10, r=10, t=60, b=10), plot_bgcolor="white",
                      dragmode=False)
    return fig


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


def per_class_table(metrics: dict, counts: np.ndarray) -> pd.DataFrame:
    rows = []
    for c, name in enumerate(EMOTIONS):
        m = metrics.get("per_class", {}).get(name, {})
        rows.append({"class": name, "accuracy (recall)": m.get("recall"), "precision": m.get("precision"),
                     "F1": m.get("f1"), "faces": int(counts[c].sum()), "predicted as it": int(counts[:, c].sum())})
    return pd.DataFrame(rows)


def cell_faces(predictions: pd.DataFrame, true: int, pred: int) -> pd.DataFrame:
    """The predictions of one cell, most confident first, with that confidence as a column."""
    cell = predictions[(predictions["true"] == true) & (predictions["pred"] == pred)].copy()
    cell["confidence"] = cell[f"p_{EMOTIONS[pred]}"]
    return cell.sort_values("confidence", ascending=False, kind="stable")
