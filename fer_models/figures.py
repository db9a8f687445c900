"""Plotly figures of run data, shared by the pages and the report: training curves, the clickable
confusion matrix, class probabilities.

A Plotly heatmap sends no click events to Streamlit (streamlit issue #8760), so every confusion
cell is a square scatter marker whose customdata names its (true, predicted) classes.
"""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .confusion import row_normalised
from .constants import EMOTIONS

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def history_figure(histories: list[tuple[str, pd.DataFrame]]) -> go.Figure:
    """Loss, accuracy (best epoch starred), learning rate and seconds per epoch of one or more runs' history.csv."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=("Loss", "Accuracy", "Learning rate", "Seconds per epoch"),
                        vertical_spacing=0.12)
    for i, (label, h) in enumerate(histories):
        colour = COLOURS[i % len(COLOURS)]
        if h.empty:
            continue
        for col, metric in ((1, "loss"), (2, "acc")):
            fig.add_trace(go.Scatter(x=h["epoch"], y=h[f"train_{metric}"], name=f"{label} train", mode="lines",
                                     line=dict(color=colour, dash="dot"), legendgroup=label, showlegend=col == 1),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=h["epoch"], y=h[f"val_{metric}"], name=f"{label} validation",
                                     mode="lines+markers", line=dict(color=colour), legendgroup=label,
                                     showlegend=col == 1), row=1, col=col)
        best = h.loc[h["val_acc"].idxmax()]
        fig.add_trace(go.Scatter(x=[best["epoch"]], y=[best["val_acc"]], mode="markers", name=f"{label} best",
                                 marker=dict(symbol="star", size=14, color=colour), showlegend=False,
                                 legendgroup=label), row=1, col=2)
        late = bool(best["epoch"] > h["epoch"].max() / 2)
        # a boxed label on an arrow, below the star: plain text there sat on the training curve,
        # which runs close under the validation curve; it points inwards from the nearer edge
        # (a best last epoch is common) and each run's label one step lower than the last
        fig.add_annotation(x=best["epoch"], y=best["val_acc"], row=1, col=2,
                           text=f"best {best['val_acc']:.1%} (epoch {int(best['epoch'])})",
                           showarrow=True, arrowcolor=colour, arrowhead=0, ax=-40 if late else 40, ay=36 + 26 * i,
                           xanchor="right" if late else "left", font=dict(color=colour),
                           bgcolor="rgba(255,255,255,0.9)", bordercolor=colour, borderpad=3)
        fig.add_trace(go.Scatter(x=h["epoch"], y=h["lr"], mode="lines", line=dict(color=colour),
                                 showlegend=False, legendgroup=label), row=2, col=1)
        fig.add_trace(go.Bar(x=h["epoch"], y=h["seconds"], marker_color=colour, opacity=0.6,
                             showlegend=False, legendgroup=label), row=2, col=2)
    epochs = max((h["epoch"].max() for _, h in histories if not h.empty), default=1)
    fig.update_xaxes(dtick=max(1, int(epochs) // 10))  # whole epochs only
    fig.update_xaxes(title_text="epoch", row=2)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_layout(height=640, margin=dict(t=40, b=10), legend=dict(orientation="h", y=-0.12), barmode="group")
    return fig


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


def probability_figure(probs: np.ndarray, true: int | None = None) -> go.Figure:
    colours = ["#2e7d32" if i == int(np.argmax(probs)) else "#90a4ae" for i in range(len(EMOTIONS))]
    names = [f"{e} (true)" if i == true else e for i, e in enumerate(EMOTIONS)]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", marker_color=colours,
                           text=[f"{p:.1%}" for p in probs], textposition="outside", cliponaxis=False))
    fig.update_layout(height=260, margin=dict(l=0, r=40, t=10, b=0), xaxis=dict(range=[0, 1], tickformat=".0%"),
                      yaxis=dict(autorange="reversed"))
    return fig
