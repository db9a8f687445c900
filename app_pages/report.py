"""Report: the selected run as one self-contained HTML file, the same as fer-studio report writes."""
import time

import streamlit as st

from app_pages._shared import checkpoint_key, md, selected_model, time_left
from fer_models.teaching.report import build_report

st.title("Report")
st.caption("One HTML file that answers the six questions of a FER report for this run: architecture with layer "
           "shapes, training history, confusion matrix, saliency maps per class, the last conv layer's filters and "
           "the math. It opens offline in any browser; every figure in it downloads as PNG.")

run, _, _ = selected_model()  # the report loads its own copy; this checks there is one to load

a, b = st.columns(2)
per_class = a.slider("Faces per class in the saliency section", 1, 6, 2)
filters = b.slider("Filters in the filters section", 1, 16, 6)
st.code(f"fer-studio report --run {run.path} --out {run.name}_report.html "
        f"--faces-per-class {per_class} --filters {filters}", language="bash", wrap_lines=True)

key = (checkpoint_key(run), per_class, filters)
if st.button("Export report", type="primary"):
    bar, started = st.progress(0.0, text="Starting…"), time.monotonic()
    try:
        st.session_state["report"] = (key, build_report(
            run.path, faces_per_class=per_class, filters=filters,
            progress=lambda text, f: bar.progress(f, text=text + time_left(started, f))))
    except Exception as err:  # noqa: BLE001  (a report that fails says why; nothing else is lost)
        st.error(f"The report could not be made: {md(err)}")
    bar.empty()

made = st.session_state.get("report")
if made and made[0] == key:
    html = made[1]
    st.download_button(f"Download {md(run.name)}_report.html ({len(html.encode()) / 2**20:.1f} MiB)", html,
                       f"{run.name}_report.html", "text/html", type="primary")
