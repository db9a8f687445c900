"""The lesson's six steps, each composed of the pages' own drawing functions: the figure in the left column, in
the right what to see on this run (fer_models.teaching.lesson writes it from the run's numbers) and one control
to try. Every step fits one 1280×720 screen."""
import numpy as np
import streamlit as st

from app_pages import _architecture_view as architecture
from app_pages._confusion_view import cached_votes, load_evaluation, matrix
from app_pages._convolution_view import agreement, arithmetic, cell_words, grids, pick_cell, trace_of
from app_pages._dataset import load_split
from app_pages._face_picker import PickedFace
from app_pages._filters_view import atlas_stamp, cached_atlas, ranked_faces
from app_pages._saliency_view import cached_maps, guess_next, probabilities_of, show_maps
from app_pages._shared import chart, checkpoint_key, history_of, md, model_of
from fer_models.core.constants import EMOTIONS
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.evaluation.mistakes import MAJORITY_MODEL, mistake_table, summary
from fer_models.explain.attributions import METHODS
from fer_models.explain.pictures import enlarge, mosaic
from fer_models.runs.folder import RunFolder, RunProblem
from fer_models.runs.registry import training_cost
from fer_models.teaching import lesson
from fer_models.teaching.convolution import convolution_step
from fer_models.teaching.figures import history_figure
from fer_models.teaching.glossary import GLOSSARY

SPLIT = "PublicTest"
# the diagram's box (Streamlit's wrapper and the block inside it that scrolls) as tall as the window leaves
CHAIN = "[data-testid='stLayoutWrapper']:has(> .st-key-lesson_chain), .st-key-lesson_chain"
CHAIN_CSS = (f"<style>{CHAIN} {{ flex: none !important; height: max(400px, calc(100vh - 210px)) !important; "
             "max-height: none !important; }"
             # a scrollbar always drawn: where the diagram is taller than the screen, it says there is more.
             # Streamlit makes a container's scrollbar transparent until hovered, and overlay scrollbars (macOS,
             # headless Chromium) hide it until the user scrolls; a styled ::-webkit-scrollbar is always drawn in
             # Chrome, Edge and Safari, but Chrome ignores it unless scrollbar-color and -width are auto, so the
             # colours go only where the pseudo-element is unknown (Firefox)
             ".st-key-lesson_chain { scrollbar-width: auto !important; scrollbar-color: auto !important; }"
             ".st-key-lesson_chain::-webkit-scrollbar { width: 12px; }"
             ".st-key-lesson_chain::-webkit-scrollbar-track { background: #f0f0f2; border-radius: 6px; }"
             ".st-key-lesson_chain::-webkit-scrollbar-thumb { background: #a0a0a8; border-radius: 6px; }"
             "@supports not selector(::-webkit-scrollbar) { .st-key-lesson_chain { scrollbar-width: auto !important; "
             "scrollbar-color: #a0a0a8 #f0f0f2 !important; } }"
             "</style>")
LESSON_METHODS = ("gradcam", "integrated_gradients", "saliency", "occlusion")


def say(place, sentences: list[str]) -> None:
    for sentence in sentences:
        place.markdown(sentence)


def presenter_figure(fig, presenter: bool):
    """Ticks and labels ≥ 16 px for the back of a classroom."""
    if presenter:
        fig.update_layout(font=dict(size=18), legend=dict(font=dict(size=16)))
        fig.update_xaxes(tickfont=dict(size=16))
        fig.update_yaxes(tickfont=dict(size=16))
        fig.update_annotations(font=dict(size=18))
    return fig


def layers(run, left, right, presenter: bool) -> None:
    from fer_models.nets.structure import structure_of

    structure = structure_of(run.arch)
    # scrolls inside the screen: densenet201_fer's chain is 1,100 px; as tall as the window leaves (CHAIN_CSS), so
    # that at 1920×1080 it shows whole where a fixed 540 px cut its head box in half
    st.html(CHAIN_CSS)
    with left.container(height=540, border=False, key="lesson_chain"):
        architecture.chain(structure)
    say(right, lesson.layers_story(structure.totals, structure.layers, structure.findings))
    convs = list(structure.layers.loc[structure.layers["type"] == "Conv2d", "layer"])
    layer = right.selectbox("Try it: a conv layer to step through", convs, key=f"lesson_layer_{run.arch}")
    # the layer's name is in the box above: densenet201_fer's ran the link past the column's edge
    right.page_link("app_pages/convolution.py", label="Compute one of its cells by hand",
                    icon=":material/calculate:", query_params={"run": run.name, "layer": layer})


def training_hours(run) -> float | None:
    """The run's one training time, as the History page and the README say it (meta.json's)."""
    try:
        folder = RunFolder(run.path)
        return training_cost(folder.meta(), folder.config())["hours"]
    except RunProblem:
        return None


def training(run, left, right, presenter: bool) -> None:
    history = history_of(run)
    if history.empty or history["val_acc"].isna().all():
        right.info(f"Run {md(run.name)} has no finished epoch to show.")
        return
    others = [r for r in st.session_state.get("runs", []) if r.name != run.name and r.epochs_done]
    compare = right.multiselect("Try it: compare with", [r.name for r in others], key="lesson_compare")
    shown = [(run.name, history)] + [(r.name, history_of(r)) for r in others if r.name in compare]
    figure = presenter_figure(history_figure(shown), presenter)
    # half a projector's width: a tick every epoch piled 14 numbers into 140 px, and the two lower panels' titles ran
    # into each other
    figure.update_xaxes(dtick=None, nticks=5)
    figure.for_each_annotation(lambda a: a.update(text=a.text.replace(" (log scale)", " (log)")))
    if len(shown) == 1:  # one run: its name in the legend only made the line too long for the column
        figure.for_each_trace(lambda t: t.update(name=t.name.removeprefix(f"{run.name} ")) if t.name else None)
    figure.update_layout(height=500 + 30 * len(shown))
    chart(figure, left, width="stretch", config={"displayModeBar": False})
    say(right, lesson.training_story(history, run.epochs, training_hours(run)))


def _evaluation(run, right):
    if SPLIT not in run.evaluations:
        right.info(f"Run {md(run.name)} has no {SPLIT} evaluation: evaluate it (fer-studio evaluate) for this step.")
        return None
    loaded = load_evaluation(run, SPLIT)
    return None if loaded is None or loaded[2] is None else loaded


def confusion(run, left, right, presenter: bool) -> None:
    loaded = _evaluation(run, right)
    if loaded is None:
        return
    metrics, predictions, table = loaded
    counts = table.fillna(0).to_numpy().astype(int)
    with left:
        cell = matrix(counts, True, f"lesson-confusion-{run.name}", font_size=16 if presenter else None)
    say(right, lesson.confusion_story(counts, SPLIT))
    votes, _ = cached_votes(metrics.get("data"), SPLIT)
    mistakes = mistake_table(predictions, votes)
    total = summary(mistakes, predictions).iloc[-1]
    line = lesson.annotators_story(int(total["mistakes"]), int(total["with votes"]), int(total[MAJORITY_MODEL]))
    if line:
        right.markdown(line)
        # short: in a presenter's large type, "Open the mistakes the annotators side with" was cut at "side w"
        right.page_link("app_pages/mistakes.py", label=f"Open those {int(total[MAJORITY_MODEL]):,} mistakes",
                        icon=":material/groups:", query_params={"run": run.name, "votes": "model", "majority": "1"})
    if cell is not None:
        query = {"run": run.name, "cell": f"{EMOTIONS[cell[0]]},{EMOTIONS[cell[1]]}"}
        right.page_link("app_pages/confusion.py", icon=":material/grid_on:", query_params=query,
                        label=f"See the {EMOTIONS[cell[0]]} faces read as {EMOTIONS[cell[1]]}")
    else:
        right.caption("Try it: click a cell of the matrix.")


def lesson_faces():
    """The face of the saliency and math steps: the face picked on the Saliency page if it is one of the
    bundled faces, else one per class to choose from (a happy one first)."""
    images, labels, ids, index = load_split(BUNDLED_PUBLICTEST, SPLIT)
    rng = np.random.default_rng(0)
    offered = {}
    for c in (3, *[c for c in range(len(EMOTIONS)) if c != 3]):
        rows = np.flatnonzero(labels == c)
        if len(rows):
            offered[str(ids[rng.choice(rows)])] = c
    picked = st.session_state.get("_face_id")
    if picked in index:
        offered = {picked: int(labels[index[picked]]), **offered}
    return images, labels, index, offered


def _pick(right) -> PickedFace:
    images, labels, index, offered = lesson_faces()
    face_id = right.selectbox("Try it: another face", list(offered), key="lesson_face",
                              format_func=lambda i: f"face {i} ({EMOTIONS[offered[i]]})")
    row = index[face_id]
    label = int(labels[row]) if labels[row] >= 0 else None
    return PickedFace(images[row, 0], label, f"{SPLIT} face {face_id}")


def saliency(run, left, right, presenter: bool) -> None:
    model, meta = model_of(run)
    face = _pick(right)
    method = right.radio("Method", LESSON_METHODS, horizontal=True, key="lesson_method",
                         format_func=lambda m: METHODS[m].title,
                         help=f"Grad-CAM: {GLOSSARY['Grad-CAM']} The others work on the face's own pixels; the "
                              "Saliency page says what each measures.")
    probs = probabilities_of(run, (model, meta), face)
    predicted = int(probs.argmax())
    with left:
        show_maps(run, (model, meta), face, method, [predicted], 0.7, probs)
    found = cached_maps(run, (model, meta), face, method, (predicted,))[0]
    say(right, lesson.saliency_story(METHODS[method].title, probs, face.label, found.map, found.signed))
    guess_next([(run, (model, meta))], face, method, predicted, None, LESSON_METHODS)


def filters(run, left, right, presenter: bool) -> None:
    model, meta = model_of(run)
    layer = model.deepest_filter_layer()
    conv = model.conv_layers()[layer]
    size = model.conv_output_sizes()[layer]
    atlas = cached_atlas(checkpoint_key(run), str(run.path), layer, atlas_stamp(run.path))
    ranking, faces, labels, _ = ranked_faces(checkpoint_key(run), model, meta, layer, atlas)
    ranked = ranking.most_active()
    start = right.slider("Try it: filters ranked from", 1, conv.out_channels - 1, 1, key=f"lesson_rank_{run.name}",
                         help="1 shows the two most active filters over PublicTest, 2 the second and third, …")
    chosen = ranked[start - 1:start + 1]
    tops = {c: ranking.top[c] for c in chosen}
    convs, sizes = model.conv_layers(), model.conv_output_sizes()
    last = list(convs)[-1]
    said = lesson.filters_story(layer, size, conv.out_channels, {c: labels[t].tolist() for c, t in tops.items()},
                                len(faces), None if last == layer else (last, convs[last].kernel_size[0],
                                                                        sizes[last]))
    say(right, said)
    with left:
        for channel in chosen:
            pattern = atlas.pattern(channel) if atlas is not None else None
            a, b = st.columns(2)
            if pattern is not None:
                a.image(enlarge(pattern.image, 240), width="stretch",
                        caption=f"#{channel}: the pattern that excites it most")
            else:
                a.caption(f"#{channel}: no precomputed pattern (fer-studio atlas makes them); see the Filters page.")
            b.image(mosaic(faces[tops[channel], 0], 3), width="stretch",
                    caption=f"#{channel}: the 9 faces where it peaks highest")


def math(run, left, right, presenter: bool) -> None:
    model, meta = model_of(run)
    pick, number = right.columns([3, 2])
    face = _pick(pick)
    first = next(iter(model.conv_layers()))
    trace = trace_of(run, model, meta, face.pixels, first)
    channel = number.number_input("Filter", 0, trace.outputs.shape[0] - 1, 0, key="lesson_filter")
    with left:
        shown, words = st.columns([1, 1])
        with shown:
            row, col = pick_cell(trace, int(channel), f"lesson_map_{run.name}_{channel}", side=230)
        step = convolution_step(trace, int(channel), row, col)
        words.caption(f"Filter {channel}'s map in {first}: click a cell ({cell_words(trace, int(channel), row, col)})."
                      " Below: the face's window under it, the kernel, their products.")
        # a presenter's narrower column: 38-px cells, their numbers still 16 px
        grids(step, 0, cell=38 if presenter else 42, font=16 if presenter else None)
    say(right, arithmetic(trace, step, 0))
    agreement(step, right, compact=True)
    right.markdown(lesson.math_story(probabilities_of(run, (model, meta), face), face.label))


DRAW = {"layers": layers, "training": training, "confusion": confusion, "saliency": saliency, "filters": filters,
        "math": math}

