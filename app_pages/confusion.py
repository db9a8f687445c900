"""Confusion matrix: which expressions the selected run confuses, and on which faces. Click a cell to see them."""

import streamlit as st

from app_pages._confusion_view import (
    evaluation_label,
    load_evaluation,
    matrix,
    show_faces,
    show_summary,
    summary_line,
)
from app_pages._shared import (
    evaluation_from_url,
    md,
    require_evaluation,
    selected_run,
    split_role_note,
    stop_page,
    to_url,
)
from fer_models.evaluation.confusion import per_class_table

st.title("Confusion matrix")

run = selected_run()
if run is not None:
    require_evaluation(run)
    pick, mode = st.columns(2, vertical_alignment="bottom")
    split = pick.selectbox("Evaluation", run.evaluations, format_func=evaluation_label,
                           index=evaluation_from_url(run),
                           help="The run's predictions on one split. With TTA (test-time augmentation) each face's "
                                "probabilities are averaged with its mirror image's.")
    to_url(split=split)
    loaded = load_evaluation(run, split)
    if loaded is None:
        stop_page()
    metrics, predictions, confusion = loaded
    if confusion is None:
        st.info(f"Split {md(split)} has no labels: there is no confusion matrix, only predictions "
                f"({len(predictions)} faces).")
        stop_page()
    split_role_note(run, split)
    counts = confusion.fillna(0).to_numpy().astype(int)
    normalise = mode.toggle("Row-normalised: where each class's faces went", value=True,
                            help="Off: the number of faces in each cell.")
    chart, side = st.columns([3, 2])
    with chart:
        cell = matrix(counts, normalise, f"confusion-{run.name}-{split}")
    with side:
        if cell is None:
            st.info("Click a cell of the matrix to see its faces here.", icon=":material/touch_app:")
            show_summary(metrics, counts)
        else:
            summary_line(metrics)
            show_faces(metrics, predictions, split, *cell)
    if cell is not None:
        show_summary(metrics, counts)
    st.dataframe(per_class_table(metrics, counts), hide_index=True, width="stretch")
