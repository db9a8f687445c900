"""Plotly figures of run data, shared by the pages and the report: training curves, the clickable
confusion matrix, class probabilities.

A Plotly heatmap sends no click events to Streamlit (streamlit issue #8760), so every confusion
cell is a square scatter marker whose customdata names its (true, predicted) classes.
"""
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fer_models.core.constants import EMOTIONS
from fer_models.evaluation.confusion import row_normalised

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
CLASS_COLOURS = dict(zip(EMOTIONS, COLOURS + ["#7f7f7f"]))  # one per class, wherever classes are drawn


INK = "#262730"  # the dashboard's text colour: 15:1 on white, where the theme's grey tick labels were 3.6:1
LEGIBLE_PX = 14   # the smallest text a class reads off a projector


def legible(fig: go.Figure, size: int = LEGIBLE_PX) -> go.Figure:
    """Every tick label, axis and colour-bar title and legend entry at least `size` px in INK (WCAG AA asks
    4.5:1), whatever the figure or the dashboard's theme set; larger sizes are kept. Returns the figure."""
    def grow(font) -> dict:
        return dict(size=max(font.size or 0, size), color=INK)

    def axis(ax):
        ax.update(tickfont=grow(ax.tickfont), title_font=grow(ax.title.font))
    fig.for_each_xaxis(axis)
    fig.for_each_yaxis(axis)
    fig.update_layout(font=grow(fig.layout.font), legend_font=grow(fig.layout.legend.font))
    for trace in fig.data:
        bar = getattr(getattr(trace, "marker", None), "colorbar", None)
        if bar is not None and trace.marker.showscale:
            bar.update(tickfont=grow(bar.tickfont), title_font=grow(bar.title.font))
    return fig


def history_figure(histories: list[tuple[str, pd.DataFrame]]) -> go.Figure:
    """Loss, accuracy (best epoch starred), learning rate and seconds per epoch of one or more runs' history.csv.

    The best epoch is said in the legend, beside its run, not in a label on the plot: boxed labels sat on the
    curves and, with several runs, on each other. Every panel shares one epoch axis, so that a vertical line
    through Loss meets the same epoch in Accuracy. The learning rate is on a log scale: AdamW's 0.002 beside
    SGD's 0.1 was a flat line on a linear one."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=("Loss", "Accuracy", "Learning rate (log scale)",
                                                        "Seconds per epoch"),
                        vertical_spacing=0.14, horizontal_spacing=0.08)
    for i, (label, h) in enumerate(histories):
        colour = COLOURS[i % len(COLOURS)]
        if h.empty:
            continue
        best = h.loc[h["val_acc"].idxmax()]
        said = f"best {best['val_acc']:.1%} at epoch {int(best['epoch'])}"
        for col, metric in ((1, "loss"), (2, "acc")):
            fig.add_trace(go.Scatter(x=h["epoch"], y=h[f"val_{metric}"], mode="lines+markers",
                                     name=f"{label} validation: {said}",
                                     line=dict(color=colour), legendgroup=label, showlegend=col == 1),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=h["epoch"], y=h[f"train_{metric}"], name=f"{label} training (dotted)",
                                     mode="lines", line=dict(color=colour, dash="dot"), legendgroup=label,
                                     showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=[best["epoch"]], y=[best["val_acc"]], mode="markers", name=f"{label} best",
                                 marker=dict(symbol="star", size=16, color=colour, line=dict(color="white", width=1)),
                                 showlegend=False, legendgroup=label, cliponaxis=False,
                                 hovertemplate=f"{label}: best %{{y:.1%}} at epoch %{{x}}<extra></extra>"),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=h["epoch"], y=h["lr"].where(h["lr"] > 0), mode="lines", line=dict(color=colour),
                                 name=f"{label} learning rate", showlegend=False, legendgroup=label), row=2, col=1)
        fig.add_trace(go.Bar(x=h["epoch"], y=h["seconds"], marker_color=colour, opacity=0.6,
                             name=f"{label} seconds", showlegend=False, legendgroup=label), row=2, col=2)
    epochs = max((int(h["epoch"].max()) for _, h in histories if not h.empty), default=1)
    fig.update_xaxes(range=[0.5, epochs + 0.5], dtick=max(1, epochs // 10), tickfont=dict(size=13))  # whole epochs
    fig.update_xaxes(title_text="epoch", row=2)
    fig.update_yaxes(tickfont=dict(size=13))
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    # 1, 2 and 5 in each decade, written out: Plotly's own log ticks put nine small digits per decade on top of
    # each other at 14 px
    rates = pd.concat([h["lr"] for _, h in histories] or [pd.Series(dtype=float)])
    fig.update_yaxes(type="log", tickvals=_one_two_five(rates), tickformat="~g", row=2, col=1)
    fig.update_annotations(font=dict(size=15))  # the subplot titles
    # the legend above the panels, two lines a run at most, clear of the subplot titles
    # room on the left for the tick labels: the report's figures were cut there (tests/e2e/test_projector.py)
    fig.update_layout(height=560 + 44 * len(histories), margin=dict(t=16 + 44 * len(histories), b=10, l=56, r=10),
                      barmode="group", font=dict(size=13),
                      legend=dict(orientation="h", x=0, y=1.06, yanchor="bottom", font=dict(size=13)))
    return fig


def _one_two_five(values: pd.Series) -> list[float]:
    """1, 2 and 5 times each power of ten from below the smallest positive value to above the largest; only
    the powers of ten when that spans more than three decades (a one-cycle schedule ends near 1e-7), and every
    other one beyond eight, so that the labels never crowd a panel."""
    positive = values[values > 0]
    if positive.empty:
        return []
    low, high = int(np.floor(np.log10(positive.min()))), int(np.ceil(np.log10(positive.max())))
    steps = (1, 2, 5) if high - low <= 3 else (1,)
    return [m * 10.0 ** k for k in range(high, low - 1, -1 if high - low <= 8 else -2) for m in steps]


CONFUSION_CELL = 56  # px: a cell of the fixed-size matrix (the report's); the app's grows with the window


def _text_on(fill: float) -> str:
    """Black or white text for a cell of the Blues scale at this position (0..1): white from the mid blues on."""
    return "white" if fill > 0.55 else "#111111"


def confusion_figure(counts: np.ndarray, normalise: bool, selected: tuple[int, int] | None = None,
                     cell: int | None = CONFUSION_CELL) -> go.Figure:
    """The matrix as a heatmap (its cells scale with the figure, kept square), the values as annotations, the
    selected cell outlined in red. Clicks land on an invisible marker at each cell's centre (a heatmap sends
    Streamlit no selection), and every point of the plot is nearer one centre than the others, so a click
    anywhere in a cell selects it. `cell`: px per cell of a fixed-size figure; None: the figure fills the
    height of its container, which the app sizes to the window."""
    shares = row_normalised(counts)
    values = shares if normalise else counts.astype(float)
    top = max(float(values.max()), 1e-9)
    n = len(EMOTIONS)
    true_idx, pred_idx = np.divmod(np.arange(n * n), n)
    fig = go.Figure(go.Heatmap(x=list(EMOTIONS), y=list(EMOTIONS), z=values, zmin=0, zmax=top,
                               colorscale="Blues", showscale=False, xgap=3, ygap=3, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=[EMOTIONS[p] for p in pred_idx], y=[EMOTIONS[t] for t in true_idx], mode="markers",
        marker=dict(symbol="square", size=(cell or CONFUSION_CELL) - 3, opacity=0),
        selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)),
        customdata=np.stack([true_idx, pred_idx, counts.ravel(), shares.ravel()], axis=1),
        hovertemplate="true %{y}, predicted %{x}<br>%{customdata[2]} faces (%{customdata[3]:.1%} of %{y})"
                      "<extra>click to see them</extra>",
    ))
    if selected is not None:
        t, p = selected
        fig.add_shape(type="rect", x0=p - 0.5, x1=p + 0.5, y0=n - 1 - t - 0.5, y1=n - 1 - t + 0.5,
                      line=dict(color="#d62728", width=4), layer="above")
    # one list, validated once: 49 add_annotation calls took 0.35 s, a third of a rerun of the page
    fig.update_layout(annotations=[dict(x=EMOTIONS[p], y=EMOTIONS[t], showarrow=False,
                                        text=f"{shares[t, p]:.0%}" if normalise else f"{counts[t, p]:,}",
                                        font=dict(size=14, color=_text_on(values[t, p] / top)))
                                   for t, p in zip(true_idx, pred_idx)])
    axis = dict(categoryorder="array", tickfont=dict(size=14, color="#111111"), showgrid=False, zeroline=False,
                fixedrange=True, constrain="domain", range=[-0.5, n - 0.5])  # no padding for the markers' size
    fig.update_xaxes(title=dict(text="predicted", font=dict(size=14)), categoryarray=list(EMOTIONS), side="top",
                     tickangle=0, constraintoward="left", **axis)
    fig.update_yaxes(title=dict(text="true", font=dict(size=14)), categoryarray=list(EMOTIONS)[::-1],
                     scaleanchor="x", scaleratio=1, constraintoward="top", **axis)
    margin = dict(l=84, r=6, t=56, b=6)
    # hoverdistance -1: the nearest centre answers wherever the pointer is, not only within 20 px of a marker
    fig.update_layout(margin=margin, plot_bgcolor="white", dragmode=False, clickmode="event+select",
                      hoverdistance=-1)
    if cell:
        side = cell * n
        fig.update_layout(width=side + margin["l"] + margin["r"], height=side + margin["t"] + margin["b"])
    return fig


RIGHT, WRONG, READ, TRUE, OTHER = "#2e7d32", "#c62828", "#1f5fa8", "#81c784", "#90a4ae"


def probability_figure(probs: np.ndarray, true: int | None = None) -> go.Figure:
    """The seven probabilities as bars: the model's class green when it is the label, red when it is not (the
    label's bar then light green), blue when there is no label to judge by."""
    pred = int(np.argmax(probs))
    right = READ if true is None else RIGHT if pred == true else WRONG
    colours = [right if i == pred else TRUE if i == true else OTHER for i in range(len(EMOTIONS))]
    names = [f"{e} (true)" if i == true else e for i, e in enumerate(EMOTIONS)]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", marker_color=colours,
                           text=[f"{p:.1%}" for p in probs], textposition="outside", cliponaxis=False))
    fig.update_layout(height=260, margin=dict(l=0, r=40, t=10, b=0), xaxis=dict(range=[0, 1], tickformat=".0%"),
                      yaxis=dict(autorange="reversed"))
    return fig


def _diverging(value: float, top: float) -> str:
    """RdBu-like: blue for negative, white for zero, red for positive, by |value| / top."""
    t = max(-1.0, min(1.0, value / top))
    end = (178, 24, 43) if t > 0 else (33, 102, 172)
    r, g, b = (round(255 + (e - 255) * abs(t)) for e in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def value_grid(values: np.ndarray, title: str, padded: np.ndarray | None = None, cell: int = 42,
               digits: int = 2, font: int | None = None) -> str:
    """A small matrix (a kernel, a patch, their products) as an HTML table with each number written in its cell,
    on a diverging colour scale; padding cells gray and marked "pad". Past 5×5 the numbers are on hover only:
    they would not fit a cell small enough for a 7×7 kernel to sit beside two others. Numbers only: nothing
    untrusted reaches the HTML. `font` px (else a third of the cell) writes numbers under 1 without their leading
    zero (".53", "−.53"): a presenter's 16 px fits a narrow column's 38-px cells that way, where 11 px did not
    read from the back of a room."""
    k_h, k_w = values.shape
    top = max(float(np.abs(values).max()), 1e-9)
    written = max(k_h, k_w) <= 5
    rows = []
    for i in range(k_h):
        cells = []
        for j in range(k_w):
            v = float(values[i, j])
            pad = padded is not None and bool(padded[i, j])
            fill = "#dddddd" if pad else _diverging(v, top)
            ink = "#555" if pad else _text_on(abs(v) / top)
            number = f"{round(v, digits) + 0.0:.{digits}f}"  # + 0.0: a small negative read "-0.00" (-0.0 + 0.0 is 0.0)
            if font is not None:
                number = re.sub(r"^(-?)0\.", r"\1.", number)
            text = ("pad" if pad else number) if written else ""
            cells.append(f"<td title='{v:.{digits + 2}f}' style='width:{cell}px;height:{cell}px;background:{fill};"
                         f"color:{ink};text-align:center;font-size:{font or max(11, cell // 3)}px;padding:0;"
                         f"border:1px solid #fff'>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div style='font-weight:600;font-size:{max(14, font or 0)}px;margin-bottom:2px'>{title}</div>"
            "<table style='border-collapse:collapse;table-layout:fixed;margin:0'>" + "".join(rows) + "</table>")


def clickable_map(values: np.ndarray, selected: tuple[int, int] | None, side: int = 300) -> go.Figure:
    """A feature map as square markers a click selects (Plotly heatmaps send no click events to Streamlit),
    customdata (row, col); the selected cell outlined in red."""
    h, w = values.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    size = max(side / max(h, w) - 1, 2)
    fig = go.Figure(go.Scatter(
        x=cols, y=rows, mode="markers", customdata=np.stack([rows, cols], axis=1),
        marker=dict(symbol="square", size=size, color=values.ravel(), colorscale="Viridis", line=dict(width=0)),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        hovertemplate="row %{customdata[0]}, column %{customdata[1]}: %{marker.color:.3f}<extra>click</extra>"))
    if selected is not None:
        r, c = selected
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5, line=dict(color="#d62728", width=3))
    fig.update_layout(width=side + 20, height=side + 20, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                      dragmode=False, clickmode="event+select",
                      xaxis=dict(visible=False, range=[-0.5, w - 0.5], fixedrange=True),
                      yaxis=dict(visible=False, range=[h - 0.5, -0.5], fixedrange=True, scaleanchor="x"))
    return fig
