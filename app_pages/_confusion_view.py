"""The confusion matrix as the Confusion page and the lesson draw it: the clickable matrix, a cell's faces with
their FER+ votes, and the scores beside it."""
import numpy as np
import streamlit as st

from app_pages._dataset import cached_votes, load_split
from app_pages._face_card import card_cells, face_card, votes_legend
from app_pages._shared import md, to_url, url_value
from fer_models.core.constants import EMOTIONS
from fer_models.datasets.facedata import DataError
from fer_models.evaluation.confusion import cell_faces, cell_from_selection, most_confused
from fer_models.runs.folder import METRICS_FILE, RunFolder, RunProblem
from fer_models.runs.registry import faces_source, read_evaluation
from fer_models.teaching.figures import confusion_figure, legible
from fer_models.teaching.glossary import GLOSSARY

FACES_PER_PAGE = 12
METRIC_HELP = {
    "Accuracy": "Share of faces whose most probable class is the dataset's label.",
    "Macro F1": GLOSSARY["macro F1"],
    "Top-2 accuracy": GLOSSARY["top-2 accuracy"],
    "Calibration (ECE)": GLOSSARY["ECE"],
}

def evaluation_label(split: str) -> str:
    return f"{split[:-4]}, with mirror-image TTA" if split.endswith("-tta") else split


@st.cache_data(show_spinner=False)
def cached_evaluation(run_path: str, split: str, mtime: float):
    return read_evaluation(run_path, split)


def cell_in_url() -> tuple[int, int] | None:
    """The selected cell, kept in the URL (?cell=fear,sad) so that Back, a refresh and the toggle keep it."""
    true, _, pred = url_value("cell", "").partition(",")
    return (EMOTIONS.index(true), EMOTIONS.index(pred)) if true in EMOTIONS and pred in EMOTIONS else None


def follow_clicks(key: str) -> tuple[int, int] | None:
    """A new click on the chart (its selection, read before the chart is drawn so that the outline follows at
    once) moves the URL's cell; an empty or unchanged selection leaves it."""
    clicked = cell_from_selection(st.session_state.get(key))
    if clicked != st.session_state.get("confusion_last_click"):
        st.session_state["confusion_last_click"] = clicked
        if clicked is not None:
            to_url(cell=f"{EMOTIONS[clicked[0]]},{EMOTIONS[clicked[1]]}")
    return cell_in_url()


def clear_cell():
    to_url(cell=None)
    st.session_state["confusion_last_click"] = None


def show_faces(metrics, predictions, split, true, pred):
    cell = cell_faces(predictions, true, pred)
    what = "recognised" if true == pred else f"taken for {EMOTIONS[pred]}"
    head, close = st.columns([5, 1], vertical_alignment="center")
    head.markdown(f"**{len(cell)} {EMOTIONS[true]} {'face' if len(cell) == 1 else 'faces'} {what}**")
    close.button("✕", key="clear_cell", help="Close the faces of this cell", on_click=clear_cell)
    if cell.empty:
        st.info("No face in this cell.")
        return
    source = faces_source(metrics, split)
    if source is None:
        st.warning(f"The faces of split {md(split)} come from {md(metrics.get('data') or 'a dataset')}, which is not "
                   "on this machine. Evaluate the run again on your copy (fer-studio evaluate --run RUN "
                   f"--data YOUR_FER2013.csv --split {md(split)}) to browse them here.")
        return
    try:
        images, _, _, index = load_split(source, split)
    except DataError as err:
        st.error(f"Could not read the faces: {md(err)}")
        return
    votes, _ = cached_votes(metrics.get("data"), split)
    pages = (len(cell) - 1) // FACES_PER_PAGE + 1
    page = st.number_input(f"Page (of {pages}), the model's most confident first", 1, pages, 1,
                           key=f"faces_page_{true}_{pred}") if pages > 1 else 1
    shown = cell.iloc[(page - 1) * FACES_PER_PAGE: page * FACES_PER_PAGE]
    if votes is not None and shown["id"].astype(str).isin(votes.index).any():
        st.html(votes_legend())
    cells, missing = card_cells(3), 0
    for row in shown.itertuples():
        if row.id not in index:
            missing += 1
            continue
        with next(cells):
            face_card(images[index[row.id]][0], [f"id {md(row.id)}", f"model {row.confidence:.0%} {EMOTIONS[pred]}"],
                      {"run": url_value("run", ""), "split": split, "face": row.id},
                      votes.loc[str(row.id), list(EMOTIONS)].to_numpy(float)
                      if votes is not None and str(row.id) in votes.index else None,
                      annotators=votes.loc[str(row.id), "annotators"]
                      if votes is not None and str(row.id) in votes.index and "annotators" in votes else None)
    if missing:
        st.warning(f"{missing} faces of this page are not in {md(source)}: it is not the data this evaluation scored.")


# the four figures: the tile's label, the short name in one line, metrics.json's key, the format
SUMMARY = [("Accuracy", "Accuracy", "accuracy", "{:.1%}"), ("Macro F1", "macro F1", "macro_f1", "{:.3f}"),
           ("Top-2 accuracy", "top-2", "top2_accuracy", "{:.1%}"), ("Calibration (ECE)", "ECE", "ece", "{:.3f}")]


def summary_line(metrics) -> None:
    """The four figures in one line over a clicked cell's faces: their big tiles then sit below the fold."""
    st.caption(" · ".join(f"{short} **{form.format(metrics[key])}**" for _, short, key, form in SUMMARY
                          if metrics.get(key) is not None), help="Each is explained under the matrix, beside its tile.")


def show_summary(metrics, counts):
    a, b = st.columns(2)
    shown = [(label, key, form, column) for (label, _, key, form), column in zip(SUMMARY, (a, b, a, b))]
    missing = [label for label, key, _, _ in shown if metrics.get(key) is None]
    for label, key, form, column in shown:
        column.metric(label, "—" if metrics.get(key) is None else form.format(metrics[key]), help=METRIC_HELP[label])
    if missing:  # an evaluation written by hand or by an older version: the matrix still comes from its counts
        st.warning(f"This evaluation's metrics.json lacks {', '.join(missing)}: evaluate the run again to have them.")
    # in sight, not only on hover: a class looking at a projector sees no tooltip
    st.caption("  \n".join(f"**{label}**: {METRIC_HELP[label]}"
                           for label in ("Macro F1", "Top-2 accuracy", "Calibration (ECE)")))
    st.markdown("**Most confused**\n\n" + "\n".join(f"- {line}" for line in most_confused(counts)))


def load_evaluation(run, split: str):
    """(metrics, predictions, confusion) of the run's evaluation, or None after saying why it cannot be read."""
    try:
        # inside the try: a link at eval/<split> is refused with a RunProblem, to be said like any other
        folder = RunFolder(run.path).eval_dir(split)
        return cached_evaluation(str(run.path), split, (folder / METRICS_FILE).stat().st_mtime)
    except (RunProblem, OSError) as err:
        st.error(f"This evaluation cannot be read: {md(err)}. Evaluate the run again to rewrite it.")
        return None


# The matrix's box is as tall as the window allows (the page's head above it takes about 280 px), never capped
# below the 480 px that fit a projector's 720 rows (flex: none, or the column's flex basis overrides the height),
# and no taller than wide: its cells stay square, and in a narrow column (the lesson's) a window-tall box left
# 120 px of empty figure under the matrix.
MATRIX_CSS = ("<style>div.st-key-confusion_box { flex: none !important; height: auto !important; aspect-ratio: 1; "
              "max-height: max(480px, calc(100vh - 280px)) !important; }</style>")


@st.cache_resource(show_spinner=False, max_entries=64)
def matrix_figure(counts: tuple, normalise: bool, selected: tuple[int, int] | None, font_size: int | None):
    """One legible figure per matrix, selection and type size, shared by every session that shows it (built and
    restyled through plotly's validation on every visit it held the server's interpreter 25 ms); never
    changed after this: st.plotly_chart serialises a copy."""
    figure = confusion_figure(np.array(counts), normalise, selected, cell=None)
    if font_size:  # the class names slanted: level, at a presenter's size they ran into each other ("angrydisgust")
        figure.update_layout(font=dict(size=font_size))
        figure.update_xaxes(tickangle=-45)
        figure.update_annotations(font_size=font_size)  # the cells' figures, set at 14 px each
        return legible(figure, font_size)  # the ticks and titles too: the layout's font leaves their own 14 px
    return legible(figure)


def matrix(counts, normalise: bool, key: str, font_size: int | None = None) -> tuple[int, int] | None:
    """The clickable matrix, as large as the window allows; the cell selected (kept in the URL), or None."""
    selected = follow_clicks(key)
    figure = matrix_figure(tuple(map(tuple, np.asarray(counts).tolist())), normalise, selected, font_size)
    st.html(MATRIX_CSS)
    with st.container(key="confusion_box"):
        st.plotly_chart(figure, on_select="rerun", selection_mode="points", key=key, width="stretch",
                        height="stretch", config={"displayModeBar": False})
    st.caption("Rows: the true class; columns: what the model said. "
               + ("Each row's cells share its faces (they add up to 100%); darker is more."
                  if normalise else "Each cell counts faces; darker is more."))
    return selected
