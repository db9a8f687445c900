"""One convolution, step by step, as the Convolution page and the lesson draw it: a feature map whose cells a click
picks, then for the picked cell the input window (padding shown as padding), the kernel, their products, the sum
and bias, the batch norm and the ReLU, down to the value the network's own forward pass gives."""
import numpy as np
import streamlit as st

from app_pages._shared import chart, checkpoint_key, md
from fer_models.evaluation.confusion import cell_from_selection
from fer_models.explain.attributions import face_input
from fer_models.explain.pictures import enlarge
from fer_models.teaching.convolution import ConvStep, LayerTrace, layer_trace
from fer_models.teaching.figures import clickable_map, value_grid


@st.cache_data(show_spinner="Running the face through the network…", max_entries=16)
def cached_trace(run_key: str, _model, _meta, face_bytes: bytes, layer: str) -> LayerTrace:
    """One hooked forward pass per (checkpoint, face, layer): every click after it is numpy on these numbers."""
    face = np.frombuffer(face_bytes, np.uint8).reshape(48, 48).copy()
    return layer_trace(_model, layer, face_input(face, _meta))


def trace_of(run, model, meta, pixels: np.ndarray, layer: str) -> LayerTrace:
    return cached_trace(checkpoint_key(run), model, meta, np.ascontiguousarray(pixels).tobytes(), layer)


def final_map(trace: LayerTrace, channel: int) -> np.ndarray:
    """The channel's map after the last stage shown (ReLU, else batch norm, else the conv)."""
    for stage in (trace.relu_outputs, trace.norm_outputs, trace.outputs):
        if stage is not None:
            return stage[channel]
    raise ValueError("no output")


def strongest_cell(plane: np.ndarray) -> tuple[int, int]:
    """(row, col) of the map's largest value; the centre where the map is flat (all zero after the ReLU)."""
    if float(plane.max()) == float(plane.min()):
        return plane.shape[0] // 2, plane.shape[1] // 2
    row, col = np.unravel_index(int(np.argmax(plane)), plane.shape)
    return int(row), int(col)


def cell_words(trace: LayerTrace, channel: int, row: int, col: int) -> str:
    """'now row R, column C', and whether that is where the filter responds most (where the page opens)."""
    strongest = (row, col) == strongest_cell(final_map(trace, channel))
    return f"now row {row}, column {col}" + (", where it responds most" if strongest else "")


def pick_cell(trace: LayerTrace, channel: int, key: str, side: int = 300) -> tuple[int, int]:
    """The feature map of `channel`, clickable; the cell picked (until a click, where the filter fires most on
    this face: the centre cell was often 0, "+0.00000 (exactly the same)" as the first thing a class saw)."""
    h, w = trace.outputs.shape[1:]
    shown = final_map(trace, channel)
    kept = f"{key}_cell"
    clicked = cell_from_selection(st.session_state.get(key))
    if clicked is not None and clicked != st.session_state.get(f"{kept}_last"):
        st.session_state[kept] = st.session_state[f"{kept}_last"] = clicked
    row, col = st.session_state.get(kept, strongest_cell(shown))
    row, col = min(int(row), h - 1), min(int(col), w - 1)
    chart(clickable_map(shown, (row, col), side), on_select="rerun",
          selection_mode="points", key=key, config={"displayModeBar": False})
    return row, col


def _where(trace: LayerTrace, step: ConvStep, channel: int) -> np.ndarray:
    """The input channel the window reads, padded with gray as the conv pads it, the window outlined."""
    import cv2

    plane = trace.inputs[channel]
    lo, hi = float(plane.min()), float(plane.max())
    gray = ((plane - lo) / max(hi - lo, 1e-9) * 255).astype(np.uint8)
    (p_h, p_w) = trace.padding
    canvas = np.pad(gray, ((p_h, p_h), (p_w, p_w)), constant_values=160)
    scale = max(1, 240 // max(canvas.shape))
    rgb = np.repeat(enlarge(canvas, canvas.shape[0] * scale)[..., None], 3, axis=2).copy()
    top, left = (step.rows_in[0] + p_h) * scale, (step.cols_in[0] + p_w) * scale
    bottom, right = (step.rows_in[-1] + p_h + 1) * scale - 1, (step.cols_in[-1] + p_w + 1) * scale - 1
    cv2.rectangle(rgb, (left, top), (right, bottom), (214, 39, 40), max(1, scale // 2))
    return rgb


def input_channel(trace: LayerTrace, step: ConvStep, key: str, place=st) -> int:
    """The input channel to show: past the first conv, the ones adding most to the sum offered first."""
    if trace.inputs.shape[0] == 1:
        return 0
    top, _ = step.ranked_channels(4)
    return place.radio("Input channel (the ones adding most to the sum first)", top, horizontal=True,
                       key=f"{key}_in", format_func=lambda c: f"#{c} ({step.per_channel[c]:+.2f})")


def window(trace: LayerTrace, step: ConvStep, channel: int, place=st, width: int = 240) -> None:
    source = "the face itself" if trace.first else f"channel #{channel} of the layer's input"
    place.image(_where(trace, step, channel), caption=f"{source}, padded by {trace.padding[0]}: the window",
                width=width)


def grids(step: ConvStep, channel: int, place=st, cell: int = 42, font: int | None = None) -> None:
    """Input window × kernel = products, side by side, padding cells marked; `cell` px a cell up to 5×5, its
    numbers `font` px (else a third of the cell)."""
    if max(step.weights.shape[1:]) > 5:
        cell, font = 20, None  # a 7×7 stem kernel still fits a third of a narrow column
    for column, values, title, pad in zip(place.columns(3), (step.patch[channel], step.weights[channel],
                                                             step.products[channel]),
                                          ("input window", "× kernel", "= products"),
                                          (step.padded, None, step.padded)):
        column.html(value_grid(values, title, pad, cell=cell, font=font))
    if cell == 20:
        place.caption("Point at a cell for its value: a kernel this wide leaves no room to write them.")


def signed(value: float) -> str:
    """A number as a term of a sum: a negative one in brackets, so that "− (−0.0052)" reads as it computes."""
    return f"{value:.5g}" if value >= 0 else f"({value:.5g})"


def arithmetic(trace: LayerTrace, step: ConvStep, channel: int) -> list[str]:
    """The cell's value, stage by stage, in sentences (Markdown)."""
    c_in = trace.inputs.shape[0]
    top, more = step.ranked_channels(4)
    if c_in > 1:
        lines = [f"The products of channel #{channel} add up to {step.per_channel[channel]:+.4f}; with all "
                 f"{c_in} input channels ({len(top)} offered above, {more} more) the sum is "
                 f"{step.conv_value - step.bias:+.4f}"]
    else:
        lines = [f"The products add up to {step.conv_value - step.bias:+.4f}"]
    lines[-1] += f", plus the bias {step.bias:+.4f}: the conv gives **{step.conv_value:+.4f}**."
    if trace.norm is not None:
        n, c = trace.norm, step.channel
        # the formula, then the same with its numbers: "− μ +0.0052" read as a sum, not as μ = 0.0052; five
        # significant digits: a variance of 0.0410 to four places moved the result in its fourth place
        mean, var, gamma, beta = (float(n[k][c]) for k in ("mean", "var", "gamma", "beta"))
        lines.append(f"Batch norm ({md(n['name'])}): (x − μ) / √(σ² + ε) × γ + β = "
                     f"({step.conv_value:.5g} − {signed(mean)}) / √({var:.5g} + {n['eps']:g}) × "
                     f"{signed(gamma)} + {signed(beta)} = **{step.stages[0][1]:+.4f}**.")
    if trace.relu is not None:
        lines.append(f"ReLU: max(0, {step.stages[0][1]:+.4f}) = **{step.value:.4f}**, the value in the feature map.")
    elif step.after:
        lines.append(f"Then {step.after}.")
    return lines


def agreement(step: ConvStep, place=st, compact: bool = False) -> None:
    gap = abs(step.value - step.forward_value)
    agree = gap < 1e-4
    how = ("exactly the same" if gap == 0 else f"the same within {gap:.1e}, float rounding" if agree else
           f"not the same: off by {gap:.1e}")
    said = f"The network's own forward pass gives {step.forward_value:+.5f} there ({how})."
    if compact:
        place.markdown(f":{'green' if agree else 'red'}[{'✓' if agree else '✗'} {said}]")
    else:
        (place.success if agree else place.error)(said)


def step_view(trace: LayerTrace, step: ConvStep, key: str, beside=None) -> None:
    """The picked cell's computation, left to right, then its stages down to the feature map's value; the window
    on its input drawn in `beside` (the column next to the feature map) when given."""
    beside = beside or st.container()
    channel = input_channel(trace, step, key, beside)
    window(trace, step, channel, beside)
    grids(step, channel)
    (s_h, _) = trace.stride
    st.caption(f"Output cell ({step.row}, {step.col}) reads input rows {step.rows_in[0]}…{step.rows_in[-1]} and "
               f"columns {step.cols_in[0]}…{step.cols_in[-1]}: stride {s_h}, so the next cell's window starts "
               f"{s_h} pixel{'s' if s_h > 1 else ''} further on. Gray cells are padding: zeros the kernel multiplies.")
    for line in arithmetic(trace, step, channel):
        st.markdown(line)
    agreement(step)
