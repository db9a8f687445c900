"""Training history: how loss and accuracy moved epoch by epoch, from the run's history.csv."""
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app_pages._shared import history_of, selected_run

st.title("Training history")

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def curves(runs) -> go.Figure:
    histories = [(run, history_of(run)) for run in runs]
    fig = make_subplots(rows=2, cols=2, subplot_titles=("Loss", "Accuracy", "Learning rate", "Seconds per epoch"),
                        vertical_spacing=0.12)
    for i, (run, h) in enumerate(histories):
        colour = COLOURS[i % len(COLOURS)]
        if h.empty:
            continue
        label = run.name
        for col, metric in ((1, "loss"), (2, "acc")):
            fig.add_trace(go.Scatter(x=h["epoch"], y=h[f"train_{metric}"], name=f"{label} train", mode="lines",
                                     line=dict(color=colour, dash="dot"), legendgroup=label, showlegend=col == 1),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=h["epoch"], y=h[f"val_{metric}"], name=f"{label} validation",
                                     mode="lines+markers", line=dict(color=colour), legendgroup=label,
                                     showlegend=col == 1), row=1, col=col)
        best = h.loc[h["val_acc"].idxmax()]
        fig.add_trace(go.Scatter(x=[best["epoch"]], y=[best["val_acc"]], mode="markers+text",
                                 marker=dict(symbol="star", size=14, color=colour),
                                 text=[f"best {best['val_acc']:.1%} (epoch {int(best['epoch'])})"],
                                 textposition="bottom center", showlegend=False, legendgroup=label),
                      row=1, col=2)
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


run = selected_run()
if run is not None:
    others = [r for r in st.session_state["runs"] if r.name != run.name and r.epochs_done]
    compare = st.multiselect("Compare with", [r.name for r in others])
    shown = [run] + [r for r in others if r.name in compare]

    @st.fragment(run_every=5 if run.state == "running" else None)
    def live():
        history = history_of(run)
        if history.empty:
            state = {"running": "is training; its first epoch has not finished yet",
                     "failed": f"failed before its first epoch: {run.error}",
                     "died": f"died before its first epoch: {run.error}"}.get(run.state, "has no finished epoch")
            st.info(f"Run {run.name} {state}.")
            return
        if run.state == "running":
            st.caption(f"Live: {len(history)} of {run.epochs} epochs done; refreshing every 5 s.")
        st.plotly_chart(curves(shown), width="stretch")
        st.download_button("Download history.csv", history.to_csv(index=False), f"{run.name}_history.csv",
                           "text/csv")

    live()
