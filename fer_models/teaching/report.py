"""One self-contained HTML report of a run: the six questions of a FER report, answered from its run folder.

    fer-studio report --run artifacts/runs/cnn3 --out cnn3_report.html

Architecture with layer shapes; training history; confusion matrix with per-class scores and the
most confused pairs; saliency maps for a sample of faces per class; the deepest 3x3 conv layer's filters
with their top-activating faces; the math, checked numerically. Plotly and its figures are inlined,
pictures are inline PNGs and equations are MathML (drawn by the browser itself), so the file opens
anywhere with no network. Each figure downloads as PNG (Plotly's camera button, or the link under
a picture).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from fer_models.core.arguments import OneLineParser
from fer_models.core.constants import EMOTIONS
from fer_models.datasets.facedata import DataError
from fer_models.datasets.loading import load_faces
from fer_models.nets.reach import GRADCAM_RULE
from fer_models.runs import folder as run_files
from fer_models.teaching.report_pieces import (
    PLOT_LATER,
    PLOTLY_LOADER,
    escaped,
    first_uses,
    markdown_bold,
    picture,
    plotly_div,
    plotly_packed,
    steps_html,
    table_html,
)

SPLIT = "PublicTest"
# what --out may never be: the run's own files (its weights, records and evaluations), which the report reads
RUN_OWN = (run_files.MODEL_FILE, run_files.LAST_FILE, run_files.META_FILE, run_files.CONFIG_FILE,
           run_files.STATUS_FILE, run_files.HISTORY_FILE, run_files.JOB_FILE, run_files.LOG_FILE, run_files.ATLAS_FILE,
           f"{run_files.EVAL_DIR}/")


# ---------------------------------------------------------------- the sections

def unused_paragraphs(model) -> str:
    from fer_models.nets.structure import structure_of

    findings = structure_of(model.arch).findings
    if not findings:
        return ""
    items = "".join(f"<li>{markdown_bold(s)}</li>" for s in findings)
    return (f"<h3>What a {model.input_spec.size}×{model.input_spec.size} input leaves unused</h3>"
            "<p>Found from the model's arithmetic and a gradient probe, not typed in:</p>"
            f"<ul>{items}</ul>")


def architecture_section(model, meta) -> str:
    from fer_models.nets.structure import structure_of

    structure = structure_of(model.arch)
    table, totals = structure.layers, structure.totals
    long = len(table) > 40
    rows = table_html(table, counts=("parameters", "mult-adds"))
    return (f"<h2>1. Architecture: {escaped(meta['arch'])}</h2>"
            f"<p>{totals['parameters']:,} parameters, {totals['mult_adds'] / 1e6:,.1f} M mult-adds per face, "
            f"{totals['layers']} layers, {totals['activations_mib']} MiB of activations for one face "
            "(torchinfo on the model object).</p>"
            + structure.chain_html
            + (f"<details><summary>All {len(table)} layers with their output shapes</summary>{rows}</details>"
               if long else rows)
            + unused_paragraphs(model))


def training_time(meta: dict) -> str:
    """The run's one training time, meta.json's (the trainer's clock over its steps), said as the History page and
    the README's table say it (1.0 h, where the report once said 1.04): history.csv's seconds also count each
    validation and start again at a resume."""
    seconds = meta.get("training", {}).get("seconds")
    return "training time not recorded" if seconds is None else f"{seconds / 3600:.1f} h of training"


def history_section(run_dir: Path, meta: dict) -> str:
    from fer_models.runs.registry import read_history
    from fer_models.teaching.figures import history_figure

    history = read_history(run_dir)
    if history.empty:
        return "<h2>2. Training history</h2><p>The run has no finished epoch (history.csv is empty).</p>"
    best = history.loc[history["val_acc"].idxmax()]
    return ("<h2>2. Training history</h2>"
            f"<p>{len(history)} epochs, {training_time(meta)}; best validation accuracy {best['val_acc']:.2%} at "
            f"epoch {int(best['epoch'])}, from training's own validation pass (history.csv). That epoch's weights "
            "are the checkpoint this report explains; the accuracy in the header is fer-studio evaluate scoring "
            "them again.</p>"
            + plotly_div(history_figure([(run_dir.name, history)]), "training_history"))


def confusion_section(run_dir: Path, split: str):
    """(html, metrics, predictions) of the run's evaluation on split; html says what to do if there is none."""
    from fer_models.evaluation.confusion import most_confused, per_class_table
    from fer_models.runs.registry import read_evaluation
    from fer_models.teaching.figures import confusion_figure

    try:
        metrics, predictions, confusion = read_evaluation(run_dir, split)
    except FileNotFoundError as err:
        return f"<h2>3. Confusion matrix</h2><p>{escaped(err)}</p>", None, None
    if confusion is None:
        return f"<h2>3. Confusion matrix</h2><p>Split {escaped(split)} has no labels.</p>", metrics, predictions
    counts = confusion.to_numpy()
    fig = confusion_figure(counts, normalise=True)
    fig.update_traces(hovertemplate="true %{y}, predicted %{x}<br>%{customdata[2]} faces "
                                    "(%{customdata[3]:.1%} of %{y})<extra></extra>")
    pairs = "".join(f"<li>{markdown_bold(p)}</li>" for p in most_confused(counts, top=5))
    summary = (f"accuracy {metrics['accuracy']:.2%}, macro F1 {metrics.get('macro_f1', float('nan')):.3f}, "
               f"top-2 accuracy {metrics.get('top2_accuracy', float('nan')):.2%} on {int(counts.sum()):,} faces")
    return (f"<h2>3. Confusion matrix on {escaped(split)}</h2><p>{summary}; rows are the true class, shares of that "
            f"row.</p>{plotly_div(fig, 'confusion_matrix')}<h3>Per class</h3>"
            f"{table_html(per_class_table(metrics, counts))}"
            f"<h3>Most confused</h3><ul>{pairs}</ul>"), metrics, predictions


def sample_faces(predictions, per_class: int, seed: int = 0) -> list[int]:
    """Row numbers of predictions.csv: per true class, `per_class` faces drawn at random (seeded)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(len(EMOTIONS)):
        of_class = np.flatnonzero(predictions["true"].to_numpy() == c)
        rows += sorted(rng.choice(of_class, min(per_class, len(of_class)), replace=False).tolist())
    return rows


def mistakes_section(run_dir: Path, split: str, metrics: dict | None, predictions, faces, per_class: int = 2
                     ) -> str:
    """Per class: the mistakes and what the FER+ annotators' most common answer is, then the model's most
    confident mistakes of each class with their votes."""
    import pandas as pd

    from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
    from fer_models.evaluation.mistakes import (
        NONE,
        VERDICTS,
        covering,
        in_words,
        mistake_table,
        select,
        summary,
        votes_of_evaluation,
    )
    from fer_models.explain.pictures import enlarge

    head = "<h2>4. Mistakes</h2>"
    if metrics is None or predictions is None or "true" not in predictions:
        return head + "<p>No labelled evaluation: nothing can be called a mistake.</p>"
    votes, source = covering(*votes_of_evaluation(metrics, split, BUNDLED_PUBLICTEST), predictions["id"])
    mistakes = mistake_table(predictions, votes)
    table = summary(mistakes, predictions)
    shown = table.assign(**{share: table[share].map(lambda v: "–" if pd.isna(v) else f"{v:.0%}")
                            for share in ("share with the model", "share with a majority")})
    tiles = []
    if faces is not None:
        images, index = faces
        for c in range(len(EMOTIONS)):
            for row in select(mistakes, true=c).head(per_class).itertuples():
                if row.id not in index:
                    continue
                # the most common answer may be 4 votes of 10: "majority" is kept for at least 6
                said = "" if row.verdict == NONE else \
                    f"; FER+ most common answer: {VERDICTS[row.verdict].removeprefix('is ')}"
                tiles.append(picture(enlarge(images[index[row.id], 0], 96), f"mistake_{row.id}",
                                     f"#{escaped(row.id)}: {EMOTIONS[row.true]} → {EMOTIONS[row.pred]} "
                                     f"{row.confidence:.0%}{escaped(said)}"))
    return (head + f"<p>{markdown_bold(in_words(run_dir.name, split, table))}</p>"
            + table_html(shown) + f"<p><small>Votes: {escaped(source)}.</small></p>"
            + (f"<h3>The most confident mistakes of each class</h3><div class='grid'>{''.join(tiles)}</div>"
               if tiles else ""))


def saliency_section(model, meta, predictions, faces, per_class: int, on_face=lambda done, total: None) -> str:
    """`on_face(done, total)` hears each face explained."""
    from fer_models.explain.attributions import attribute, face_input
    from fer_models.explain.pictures import enlarge, overlay

    head = "<h2>5. Saliency</h2>"
    if faces is None or predictions is None:
        return head + "<p>No faces to explain: the evaluation's data is not on this machine (pass --data).</p>"
    images, index = faces
    tiles = []
    rows = [row for row in sample_faces(predictions, per_class) if predictions.iloc[row]["id"] in index]
    for done, row in enumerate(rows):
        on_face(done, len(rows))
        p = predictions.iloc[row]
        pixels = images[index[p["id"]], 0]
        x = face_input(pixels, meta)
        pred, true = int(p["pred"]), int(p["true"])
        cam = attribute(model, x, "gradcam", pred)
        ig = attribute(model, x, "integrated_gradients", pred)
        gap = np.full((96, 4, 3), 255, np.uint8)
        strip = np.concatenate([np.repeat(enlarge(pixels, 96)[..., None], 3, 2), gap,
                                enlarge(overlay(pixels, cam.map, True, 0.7), 96), gap,
                                enlarge(overlay(pixels, ig.map, True, 0.7), 96)], axis=1)
        mark = "✓" if pred == true else "✗"
        tiles.append(picture(strip, f"saliency_{p['id']}",
                             f"#{escaped(p['id'])}: {EMOTIONS[true]} → {EMOTIONS[pred]} "
                             f"{p[f'p_{EMOTIONS[pred]}']:.0%} {mark}"))
    return (head + f"<p>{per_class} faces of each true class, drawn at random (seed 0). Each strip: the face, "
            f"Grad-CAM on <code>{escaped(model.gradcam_layer_name)}</code> ({GRADCAM_RULE}) and Integrated Gradients "
            "(50 steps, mean-gray baseline), both for the predicted class; red is evidence for it, blue against.</p>"
            f'<div class="grid">{"".join(tiles)}</div>')


def filters_section(model, meta, faces_all, labels, count: int, atlas=None,
                    on_step=lambda step, steps: None) -> str:
    """`atlas` (fer_models.explain.atlas, checked by the caller against these faces and weights) saves the ranking
    and the patterns it holds; `on_step(step, steps)` hears the synthesis of the patterns it lacks."""
    from fer_models.explain.features import Ranking, filter_responses, maximise_filters
    from fer_models.explain.pictures import enlarge, mosaic

    layer = model.deepest_filter_layer()
    head = f"<h2>6. Filters of {escaped(layer)}</h2>"
    if faces_all is None:
        return head + "<p>No faces to rank the filters on (pass --data).</p>"
    norm = meta["normalisation"]
    ranking = atlas.ranking if atlas is not None else \
        Ranking.of(filter_responses(model, layer, faces_all, norm["mean"], norm["std"]))
    chosen = ranking.most_active()[:count]
    stored = {c: atlas.pattern(c) for c in chosen} if atlas is not None else {}
    missing = [c for c in chosen if stored.get(c) is None]
    stored.update(zip(missing, maximise_filters(model, layer, missing, meta, on_step=on_step)))
    rows = []
    for channel, pattern in ((c, stored[c]) for c in chosen):
        top = ranking.top[channel]
        kinds = ", ".join(f"{n} {e}" for e, n in Counter(EMOTIONS[labels[t]] for t in top).most_common())
        pattern_picture = picture(enlarge(pattern.image, 144), f"filter_{channel}_pattern", f"#{channel}: pattern")
        rows.append(f'<div class="filter">{pattern_picture}'
                    f'{picture(enlarge(mosaic(faces_all[top, 0], 3), 144), f"filter_{channel}_faces", "top 9 faces")}'
                    f"<p>activation {pattern.activation:.2f} on the pattern (noise: {pattern.start_activation:.2f}); "
                    f"its 9 top faces: {kinds}</p></div>")
    return (head + f"<p>The {count} filters with the highest mean peak response over {len(faces_all):,} faces. "
            "Beside each: the input that excites it most (gradient ascent from noise in a 1/f Fourier "
            "parametrisation, with jitter, small rotations and scales) and the 9 faces where it peaks highest.</p>"
            + "".join(rows))


def math_section(model) -> str:
    import pandas as pd

    from fer_models.nets.architecture import dense_blocks
    from fer_models.nets.shapes import shape_walk
    from fer_models.teaching.derivations import (
        BATCHNORM_STEPS,
        CONV_STEPS,
        DEGENERATE_STEPS,
        SOFTMAX_STEPS,
        check_batchnorm,
        check_softmax_cross_entropy,
    )

    walk = pd.DataFrame([{**r, "input": "×".join(map(str, r["input"])), "output": "×".join(map(str, r["output"])),
                          "naive": f"{r['naive']:g}"} for r in shape_walk(model)])

    def check_table(check):
        return table_html(pd.DataFrame([{k: (f"{v:.1e}" if k.startswith("vs ") else v) for k, v in r.items()}
                                    for r in check.rows]))

    bn, flat = check_batchnorm(batch=8, features=4), check_batchnorm(batch=8, features=4, constant=3.0)
    sm, soft = check_softmax_cross_entropy(batch=4), check_softmax_cross_entropy(batch=4, temperature=2.0, soft=True)
    return ("<h2>7. The math</h2><h3>Convolution arithmetic</h3>" + steps_html(CONV_STEPS)
            + f"<p>Every conv and pooling layer{' outside the dense blocks' if dense_blocks(model) else ''} of this "
              f"model, for one 48×48 face: the "
              f"formula's size next to the real output of a forward pass.</p>{table_html(walk)}"
            + "<h3>Batch normalisation</h3>" + steps_html(BATCHNORM_STEPS)
            + "<p>Check (float64, 8 values × 4 channels, γ = 1.5, β = 0.2, ε = 1e-5, L = Σ w·y with random w): "
              "largest absolute difference of the analytic gradient to each other way of computing it.</p>"
            + check_table(bn) + "<h3>A batch whose values are all equal</h3>" + steps_html(DEGENERATE_STEPS)
            + f"<p>Check with every value 3.0: μ = {flat.forward['mu'][0]:g}, σ² = {flat.forward['var'][0]:g}, "
              f"y = {flat.forward['y'][0, 0]:g} everywhere, "
              f"∂L/∂γ = {np.abs(flat.forward['analytic']['gamma']).max():g}, "
              f"largest |∂L/∂x| = {np.abs(flat.forward['analytic']['x']).max():.1f}.</p>" + check_table(flat)
            + "<h3>Softmax with cross-entropy</h3>" + steps_html(SOFTMAX_STEPS)
            + "<p>Check at T = 1 with one-hot targets, then T = 2 with soft targets (sum over a batch of 4):</p>"
            + check_table(sm) + check_table(soft))


# ---------------------------------------------------------------- the page

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h2 { border-bottom: 2px solid #dde; padding-bottom: .2em; margin-top: 2em; }
table.table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
table.table td, table.table th { padding: .2em .6em; border-bottom: 1px solid #eee; text-align: right; }
figure { display: inline-block; margin: .3em; text-align: center; font-size: .8em; }
img { image-rendering: pixelated; }
.grid { display: flex; flex-wrap: wrap; }
.filter { display: flex; align-items: center; gap: 1em; }
math[display=block] { margin: .5em 0 1em; font-size: 1.1em; }
"""


def build_report(run_dir, data=None, split: str = SPLIT, faces_per_class: int = 2, filters: int = 6,
                 progress=lambda text, fraction: None) -> str:
    """The report as one HTML string. `data` overrides where the faces come from (else the data the
    evaluation scored, or the bundled PublicTest); `progress(text, fraction)` hears each step."""
    from fer_models.runs.checkpoints import load_model
    from fer_models.runs.folder import RunFolder
    from fer_models.runs.registry import faces_source, reproduce_command

    run_dir = Path(run_dir)
    began = time.perf_counter()
    progress("Loading the model", 0.0)
    model, meta = load_model(run_dir)
    config = RunFolder(run_dir).config()
    sections = []
    progress("Architecture", 0.03)
    sections.append(architecture_section(model, meta))
    progress("Training history", 0.08)
    sections.append(history_section(run_dir, meta))
    progress("Confusion matrix", 0.1)
    section, metrics, predictions = confusion_section(run_dir, split)
    sections.append(section)

    faces = all_images = labels = None
    source = Path(data) if data else (faces_source(metrics, split) if metrics is not None else None)
    if source is not None:
        try:
            loaded = load_faces(source, splits=[split.removesuffix("-tta")])
            all_images, labels = loaded.images, loaded.labels
            faces = (loaded.images, {face_id: i for i, face_id in enumerate(loaded.ids)})
        except (DataError, OSError) as err:
            sections.append(f"<p class='warning'>Could not read the faces from {escaped(source)}: {escaped(err)}</p>")
    progress("Mistakes", 0.12)
    sections.append(mistakes_section(run_dir, split, metrics, predictions, faces, faces_per_class))
    # each step's share of the bar is its share of the time (densenet201_fer, 10 s idle: the saliency maps 80%),
    # so that the page's time left, taken from the pace so far, holds
    progress("Saliency maps", 0.15)
    sections.append(saliency_section(model, meta, predictions, faces, faces_per_class, on_face=lambda i, n:
                                     progress(f"Saliency maps: face {i + 1} of {n}", 0.15 + 0.65 * i / n)))
    progress("Filters", 0.8)
    atlas = None
    if faces is not None:
        from fer_models.explain.atlas import load_atlas
        atlas = load_atlas(run_dir, model.deepest_filter_layer(), loaded.ids)
    sections.append(filters_section(model, meta, all_images, labels, filters, atlas, on_step=lambda step, steps:
                                    progress(f"Filters: patterns, step {step} of {steps}", 0.8 + 0.16 * step / steps)))
    progress("The math", 0.97)
    sections.append(math_section(model))
    terms = used_terms("".join(sections), metrics)
    sections.append(terms_section(terms))

    training = meta.get("training", {})
    accuracy = "not evaluated"
    if metrics and "accuracy" in metrics:  # not history.csv's validation figure: say which scoring this is
        precision = metrics.get("precision")
        scored = f"in {escaped(precision)} " if isinstance(precision, str) else ""
        accuracy = f"{metrics['accuracy']:.2%} on {escaped(split)} (scored {scored}by fer-studio evaluate)"
    header = (f"<h1>FER Studio report: {escaped(run_dir.name)}</h1>"
              f"<p><b>{escaped(meta['arch'])}</b> · {meta.get('params', 0):,} parameters · accuracy {accuracy} · "
              f"trained on {escaped(training.get('device_name', training.get('device', '?')))} · "
              f"{training_time(meta)}</p>"
              "<p>A term underlined with dots says what it means when pointed at; all of them are explained "
              "<a href='#terms'>at the end</a>.</p>"
              f"<p>Reproduce: <code>{escaped(reproduce_command(config, run_dir.name)) if config else '?'}</code></p>"
              f"<p><small>Made {time.strftime('%Y-%m-%d %H:%M')} by fer-studio report in "
              f"{time.perf_counter() - began:.0f} s. Every figure is computed from the run folder.</small></p>")
    progress("Done", 1.0)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>FER Studio report: "
            f"{escaped(run_dir.name)}</title><style>{STYLE}</style>"
            f"</head><body>{first_uses(header + ''.join(sections), terms)}"
            f"<script type='application/gzip+base64' id='plotly-gz'>{plotly_packed()}</script>"
            f"{PLOTLY_LOADER % {'later': PLOT_LATER}}</body></html>")


BF16 = ("bfloat16: 16-bit floats with float32's range and fewer digits; a CPU that computes them natively scores "
        "faces faster in them, and the tests hold their accuracy to float32's.")


def used_terms(body: str, metrics: dict | None) -> dict[str, str]:
    """The glossary's sentence for each term the report uses."""
    from fer_models.teaching.glossary import GLOSSARY

    terms = {term: words for term, words in GLOSSARY.items() if term in body}
    if metrics and metrics.get("precision") == "bf16":
        terms["bf16"] = BF16
    return terms


def terms_section(terms: dict[str, str]) -> str:
    """Every term's sentence at the end, where a printed report, which shows no tooltips, can find them."""
    return ("<h2 id='terms'>Terms</h2><dl>"
            + "".join(f"<dt>{escaped(term)}</dt><dd>{escaped(words)}</dd>" for term, words in terms.items()) + "</dl>")


def parser() -> OneLineParser:
    parser = OneLineParser(prog="fer-studio report", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder (with model.safetensors and meta.json)")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.add_argument("--data", help="FER2013 CSV, class folders or .npz holding the split's faces "
                                       "(default: the data the evaluation scored, else the bundled PublicTest)")
    parser.add_argument("--split", default=SPLIT, type=run_files.split_argument,
                        help="the evaluation to report (eval/<split>/)")
    parser.add_argument("--faces-per-class", type=int, default=2, choices=range(0, 21), metavar="0..20")
    parser.add_argument("--filters", type=int, default=6, choices=range(0, 65), metavar="0..64")
    return parser


def said_to_stderr():
    """A progress callback for a terminal: a line per step and per tenth of the way, not one per face or step."""
    last = [None]

    def progress(text: str, fraction: float) -> None:
        now = (text.split(":")[0], int(fraction * 10))
        if now != last[0]:
            last[0] = now
            print(f"{fraction:4.0%} {text}", file=sys.stderr)
    return progress


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from fer_models.core.files import OutputError, atomic_write_text, checked_output
    from fer_models.runs.checkpoints import CheckpointError
    from fer_models.runs.folder import RunProblem

    run = Path(args.run)
    try:  # said now, not after minutes of building the report
        out = checked_output(args.out, "--out", keep=[(run / name, f"run {run.name}'s {name}") for name in RUN_OWN])
    except OutputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        report = build_report(run, args.data, args.split, args.faces_per_class, args.filters, progress=said_to_stderr())
        atomic_write_text(out, report)
    except (CheckpointError, FileNotFoundError, DataError, RunProblem) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: --out {out}: cannot be written ({err.strerror or err}); nothing was saved", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(report.encode()) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
