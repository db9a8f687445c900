"""Confusion matrix: which expressions the selected run confuses, and on which faces. Click a cell to see them."""

import streamlit as st

from app_pages._dataset import load_split
from app_pages._shared import selected_run
from fer_models.confusion import cell_faces, cell_from_selection, most_confused, per_class_table
from fer_models.data import EMOTIONS, DataError
from fer_models.figures import confusion_figure
from fer_models.runfolder import METRICS_FILE, RunFolder, RunProblem
from fer_models.runs import faces_source, read_evaluation

FACES_PER_PAGE = 30

st.title("Confusion matrix")


@st.cache_data(show_spinner=False)
def cached_evaluation(run_path: str, split: str, mtime: float):
    return read_evaluation(run_path, split)


def show_faces(metrics, predictions, split, true, pred):
    cell = cell_faces(predictions, true, pred)
    what = "correctly recognised" if true == pred else f"taken for {EMOTIONS[pred]}"
    st.subheader(f"{EMOTIONS[true]} faces {what}: {len(cell)}")
    if cell.empty:
        st.info("No face in this cell.")
        return
    source = faces_source(metrics, split)
    if source is None:
        st.warning(f"The faces of split {split} come from {metrics.get('data') or 'a dataset'}, which is not on this "
                   "machine. Evaluate the run again on your copy (python -m fer_models.evaluate --run RUN "
                   f"--data YOUR_FER2013.csv --split {split}) to browse them here.")
        return
    try:
        images, _, _, index = load_split(source, split)
    except DataError as err:
        st.error(f"Could not read the faces: {err}")
        return
    pages = (len(cell) - 1) // FACES_PER_PAGE + 1
    page = st.number_input(f"Page (of {pages}), most confident first", 1, pages, 1) if pages > 1 else 1
    shown = cell.iloc[(page - 1) * FACES_PER_PAGE: page * FACES_PER_PAGE]
    columns = st.columns(6)
    missing = 0
    for i, row in enumerate(shown.itertuples()):
        if row.id not in index:
            missing += 1
            continue
        with columns[i % 6]:
            st.image(images[index[row.id]][0], width=110,
                     caption=f"{EMOTIONS[true]} → {EMOTIONS[pred]} · {row.confidence:.0%} · id {row.id}")
            st.page_link("app_pages/saliency.py", label="Explain", icon=":material/visibility:",
                         query_params={"run": st.query_params.get("run", ""), "split": split, "face": row.id})
    if missing:
        st.warning(f"{missing} faces of this page are not in {source}: it is not the data this evaluation scored.")


run = selected_run()
if run is not None:
    if not run.evaluations:
        st.info(f"Run {run.name} has no evaluation yet. Score it with\n\n"
                f"`python -m fer_models.evaluate --run {run.path} --data path/to/fer2013.csv.gz --split PublicTest`")
        st.stop()
    split = st.selectbox("Evaluation", run.evaluations,
                         index=run.evaluations.index("PublicTest") if "PublicTest" in run.evaluations else 0)
    folder = RunFolder(run.path).eval_dir(split)
    try:
        metrics, predictions, confusion = cached_evaluation(str(run.path), split,
                                                            (folder / METRICS_FILE).stat().st_mtime)
    except (RunProblem, OSError) as err:
        st.error(f"This evaluation cannot be read: {err}. Evaluate the run again to rewrite it.")
        st.stop()
    if confusion is None:
        st.info(f"Split {split} has no labels: there is no confusion matrix, only predictions "
                f"({len(predictions)} faces).")
        st.stop()
    counts = confusion.fillna(0).to_numpy().astype(int)
    normalise = st.toggle("Row-normalised: each row shows where that class's faces went", value=True)
    chart, facts = st.columns([3, 2])
    with chart:
        event = st.plotly_chart(confusion_figure(counts, normalise), on_select="rerun", selection_mode="points",
                                key=f"confusion-{run.name}-{split}", width="content")
    with facts:
        a, b = st.columns(2)
        a.metric("Accuracy", f"{metrics['accuracy']:.1%}")
        b.metric("Macro F1", f"{metrics['macro_f1']:.3f}")
        a.metric("Top-2 accuracy", f"{metrics['top2_accuracy']:.1%}")
        b.metric("Calibration error (ECE)", f"{metrics['ece']:.3f}")
        st.markdown("**Most confused**\n\n" + "\n".join(f"- {line}" for line in most_confused(counts)))
    st.dataframe(per_class_table(metrics, counts), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("accuracy (recall)", "precision", "F1")})
    cell = cell_from_selection(event)
    if cell is None:
        st.caption("Click a cell of the matrix to see its faces.")
    else:
        show_faces(metrics, predictions, split, *cell)
