"""The math: the derivations a FER course asks for, each checked numerically on the spot."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages._shared import chart, md, url_value
from fer_models.core.constants import EMOTIONS
from fer_models.nets.models import list_models
from fer_models.nets.structure import structure_of
from fer_models.teaching.derivations import (
    BATCHNORM_STEPS,
    CONV_STEPS,
    DEGENERATE_STEPS,
    SOFTMAX_STEPS,
    check_batchnorm,
    check_conv,
    check_softmax_cross_entropy,
    cross_entropy,
    softmax,
)
from fer_models.teaching.glossary import GLOSSARY

TOLERANCE = 1e-8

st.title("The math")
st.caption("Convolution arithmetic, the batch-norm backward pass and the softmax gradient, derived step by step; "
           "every formula is checked against PyTorch and finite differences in float64 as you change the inputs.")


def steps(derivation):
    for text, latex in derivation:
        st.markdown(text)
        st.latex(latex)


def differences(check) -> None:
    """The check's table, and a verdict on the largest difference."""
    table = pd.DataFrame(check.rows)
    table["shape"] = table["shape"].map(lambda s: "×".join(map(str, s)))
    for column in (c for c in table.columns if c.startswith("vs ")):
        table[column] = table[column].map(lambda v: "–" if pd.isna(v) else f"{v:.1e}")
    st.dataframe(table, hide_index=True)
    if check.worst < TOLERANCE:
        st.success(f"Largest absolute difference {check.worst:.1e} < {TOLERANCE:g}: the derivation holds.")
    else:
        st.error(f"Largest absolute difference {check.worst:.1e} ≥ {TOLERANCE:g}.")


def convolution(run) -> None:
    steps(CONV_STEPS)
    # two rows, the input's shape and the layer's settings: nine in one row left each box too narrow for its
    # − and + buttons at a projector's 1280 px
    cols = [*st.columns(4), *st.columns(5)]
    names = ["B", "C", "H", "W", "out channels", "kernel k", "stride s", "padding p", "dilation d"]
    defaults = [1, 1, 48, 48, 64, 7, 2, 3, 1]
    lows = [1, 1, 1, 1, 1, 1, 1, 0, 1]
    values = [col.number_input(n, min_value=lo, max_value=4096, value=v, step=1, key=f"conv_{n}")
              for col, n, v, lo in zip(cols, names, defaults, lows)]
    try:
        result = check_conv(*values)
    except (ValueError, RuntimeError) as err:
        st.error(f"No output: {err}")
    else:
        a, b, c = st.columns(3)
        a.metric("Formula", " × ".join(map(str, result.formula_shape)))
        b.metric("nn.Conv2d returns", " × ".join(map(str, result.torch_shape)), delta_arrow="off",
                 delta="agrees" if result.agrees else "differs", delta_color="normal" if result.agrees else "inverse")
        naive = " × ".join(f"{v:g}" for v in result.naive_hw)
        c.metric("Naive (H + 2p − (k − 1)) / s", naive, delta_arrow="off",
                 delta="wrong" if result.naive_is_wrong else "right here",
                 delta_color="inverse" if result.naive_is_wrong else "off")
        if result.naive_is_wrong:
            st.caption("The naive formula is off here: " + ("it gives a fraction (the floor is missing)"
                       if any(v != int(v) for v in result.naive_hw) else "it ignores the dilation") + ".")
    if run is not None and run.arch in list_models():
        st.page_link("app_pages/convolution.py", icon=":material/calculate:",
                     label=f"One output cell of {md(run.name)}'s first conv, computed by hand on a real face",
                     query_params={"run": run.name})

    st.subheader("Walk a model")
    models = list_models()
    # the sidebar's run, as on every other page; the seed DenseNet when no run is picked
    wanted = run.arch if run is not None and run.arch in models else "densenet201_fer"
    default = models.index(wanted) if wanted in models else 0
    arch = st.selectbox("Model", models, index=default, key=f"learn_walk_model_{wanted}")
    with st.spinner("Walking the network…"):
        walk = structure_of(arch).walk.copy()
    walk["naive is wrong"] = walk["naive"] != walk["formula"]
    walk["formula = PyTorch"] = walk["formula"] == walk["output"].map(lambda s: s[-1])
    for col in ("input", "output"):
        walk[col] = walk[col].map(lambda s: "×".join(map(str, s)))
    # the one-letter columns narrow: at 1280 px the last header ran past the table's edge
    narrow = {c: st.column_config.NumberColumn(c, width=36, help=h) for c, h in
              {"k": "kernel size", "s": "stride", "p": "padding", "d": "dilation"}.items() if c in walk}
    # every row at once: a table that scrolls inside took the mouse wheel from the page over it (12 rows)
    st.dataframe(walk, hide_index=True, width="stretch", height="content",
                 column_config={**narrow, "naive": st.column_config.NumberColumn(format="%g"),
                                "naive is wrong": st.column_config.CheckboxColumn("naive wrong"),
                                "formula = PyTorch": st.column_config.CheckboxColumn("= PyTorch")})
    inside = " outside its dense blocks" if structure_of(arch).dense_blocks else ""
    st.caption(f"Every conv and pooling layer of {arch}{inside}, for one 48×48 face, from a forward pass with hooks; "
               "'formula' is the output width by the floor formula.")
    st.page_link("app_pages/architecture.py", icon=":material/account_tree:",
                 label="What these sizes leave unused: kernel taps that only see padding, pools that drop a row "
                       "(Architecture, for the run in the sidebar)",
                 query_params={"run": url_value("run", "")})


def batch_norm(run) -> None:
    steps(BATCHNORM_STEPS)
    st.subheader("Check it")
    a, b, c, d, e = st.columns(5)
    batch = a.number_input("values per channel m", 1, 256, 8)
    features = b.number_input("channels", 1, 16, 4)
    gamma = c.number_input("γ", -10.0, 10.0, 1.5, 0.1)
    beta = d.number_input("β", -10.0, 10.0, 0.2, 0.1)
    eps = e.select_slider("ε", [1e-8, 1e-6, 1e-5, 1e-3, 1e-1], value=1e-5, format_func=lambda v: f"{v:g}")
    a, b, c = st.columns(3, vertical_alignment="bottom")
    flat = a.toggle("All values equal", help="The degenerate batch: every value of a channel the same, so σ² = 0.")
    constant = b.number_input("the value c", -100.0, 100.0, 3.0, disabled=not flat)
    constant = constant if flat else None
    seed = c.number_input("random seed", 0, 10_000, 0, key="bn_seed")
    check = check_batchnorm(int(batch), int(features), gamma, beta, eps, int(seed), constant)
    st.caption("x is drawn from N(1, 2²) (or set to c), L = Σ w·y with random w, so ∂L/∂y = w. Each row: the largest "
               "absolute difference between the analytic gradient (the steps above, in numpy) and autograd on the "
               "same graph, PyTorch's F.batch_norm, and central finite differences.")
    differences(check)
    f = check.forward
    st.markdown(f"μ = {np.array2string(f['mu'], precision=4)}, σ² = {np.array2string(f['var'], precision=4)}")
    if "torch_refuses" in f:
        st.warning(f"PyTorch's batch norm refuses this batch in training mode: “{f['torch_refuses']}”. One value per "
                   "channel has σ² = 0, so every output is β.")
    if flat or batch == 1:
        steps(DEGENERATE_STEPS)
        st.markdown(f"Here: every y = {f['y'][0, 0]:g} (= β), ∂L/∂γ = {np.abs(f['analytic']['gamma']).max():g}, "
                    f"and the largest |∂L/∂x| is {np.abs(f['analytic']['x']).max():.1f}: 1/√ε = {1 / np.sqrt(eps):.0f} "
                    "times the upstream gradient's spread.")
    else:
        st.caption("Turn on 'All values equal' for the degenerate case.")


def softmax_and_cross_entropy(run) -> None:
    steps(SOFTMAX_STEPS)
    st.subheader("Check it")
    a, b, c = st.columns(3)
    batch = a.number_input("batch", 1, 64, 4, key="sm_batch")
    temperature = b.number_input("temperature T", 0.05, 20.0, 1.0, 0.05, key="sm_t",
                                 help=f"Every logit is divided by T before softmax. A logit: {GLOSSARY['logit']}")
    soft_targets = c.toggle("soft targets (like FER+ votes)")
    differences(check_softmax_cross_entropy(int(batch), len(EMOTIONS), temperature, soft=soft_targets))

    st.subheader("Temperature")
    logits = np.array([1.2, -0.8, 0.3, 2.5, 0.1, -0.4, 1.0])
    source = "a made-up example"
    true = 3
    if run is not None:
        from fer_models.runs.folder import RunProblem
        from fer_models.runs.registry import read_evaluation
        try:
            _, predictions, _ = read_evaluation(run.path, "PublicTest")
        except (FileNotFoundError, RunProblem):
            predictions = None
        if predictions is not None and len(predictions):
            # by default a face the model is unsure of (top probability nearest 60%): on a 98%-sure face the
            # slider barely moves the bars
            unsure = int((predictions[[f"p_{e}" for e in EMOTIONS]].max(axis=1) - 0.6).abs().to_numpy().argmin())
            ids = predictions["id"].astype(str)
            # the ids come from the run's predictions.csv, as untrusted as its name
            wanted = st.text_input(f"Face id ({md(run.name)}'s PublicTest predictions: {md(ids.iloc[0])}–"
                                   f"{md(ids.iloc[-1])})",
                                   ids.iloc[unsure], key=f"temperature_face_{run.name}")
            found = np.flatnonzero(ids.to_numpy() == wanted.strip())
            if not len(found):
                st.warning(f"No PublicTest face has id {md(repr(wanted))}; showing face {md(ids.iloc[unsure])}.")
            p = predictions.iloc[int(found[0]) if len(found) else unsure]
            probs = np.array([p[f"p_{e}"] for e in EMOTIONS], dtype=np.float64)
            # softmax ignores a constant shift, so log-probabilities are the logits up to one
            logits, true = np.log(np.clip(probs, 1e-12, None)), int(p["true"])
            source = f"{md(run.name)} on PublicTest face {md(p['id'])} (log of its stored probabilities)"
    t = st.slider("T", 0.1, 10.0, 1.0, 0.1, key="temperature_demo")
    p_t = softmax(logits, t)
    loss = cross_entropy(logits[None], np.eye(len(EMOTIONS))[[true]], t)
    entropy = float(-(p_t * np.log(p_t)).sum())
    fig = go.Figure([go.Bar(x=list(EMOTIONS), y=softmax(logits, 1.0), name="the model (T = 1)",
                            marker_color="#b0bec5"),
                     go.Bar(x=list(EMOTIONS), y=p_t, name=f"with the slider's T = {t:g}", marker_color="#1f77b4")])
    fig.update_layout(barmode="group", height=340, yaxis=dict(range=[0, 1], tickformat=".0%"),
                      margin=dict(t=40, b=10), font=dict(size=14),
                      legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    chart(fig, width="stretch", config={"displayModeBar": False})
    a, b, c = st.columns(3)
    a.metric(f"loss for the true class ({EMOTIONS[true]})", f"{loss:.3f}")
    b.metric("entropy", f"{entropy:.3f}", help=f"log 7 = {np.log(7):.3f} is the flat distribution")
    c.metric("largest probability", f"{p_t.max():.1%}")
    st.caption(f"Logits (raw class scores, before softmax) from {source}. T > 1 flattens the distribution towards "
               "uniform, T < 1 sharpens it towards the arg-max; the arg-max itself never changes.")


run = st.session_state.get("run")  # optional here: it only lends real logits to the temperature demo
TABS = {"Convolution arithmetic": convolution, "Batch normalisation": batch_norm,
        "Softmax and cross-entropy": softmax_and_cross_entropy}
# only the open tab is drawn: all three at once (15 equations, 4 tables, a chart) cost the browser 1.7 s
for tab, draw in zip(st.tabs(list(TABS), key="math_tab", on_change="rerun"), TABS.values()):
    if tab.open:
        with tab:
            draw(run)
