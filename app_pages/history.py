"""Training history: how loss and accuracy moved epoch by epoch, from the run's history.csv."""
from dataclasses import asdict

import streamlit as st

from app_pages._shared import history_of, history_version, md, selected_run, stop_page
from fer_models.runs.folder import RunFolder, RunProblem
from fer_models.runs.registry import reproduce_command, training_cost
from fer_models.teaching.curves import curve_notes, epoch_times_note
from fer_models.teaching.figures import history_figure, legible

st.title("Training history")


def cost_in_words(run, config: dict) -> None:
    """What the training took, as the README's table says it: sittings, hours, core-hours, images per second."""
    try:
        meta = RunFolder(run.path).meta()
    except RunProblem:
        return
    cost = training_cost(meta, config)
    if not cost["hours"]:
        return
    said = (f"Training took {cost['hours']:.1f} h in {cost['sittings']} sitting{'s' if cost['sittings'] > 1 else ''}"
            + (f", {cost['core_hours']:.1f} core-hours" if cost["core_hours"] else "")
            + (f", {cost['images_per_second']:.0f} training images a second" if cost["images_per_second"] else "")
            + " (training steps only; validation not counted).")
    st.caption(said)
    note = epoch_times_note(history_of(run), cost["hours"] * 3600)
    if note:
        st.caption(note)


@st.cache_resource(show_spinner=False, max_entries=16)
def curves(versions: tuple, _histories: list):
    """The curves of `_histories`, which `versions` names (each run's name, folder and history.csv's time),
    made legible once and shared by every session: built and restyled through plotly's validation they took
    55 ms a visit. Never changed after this: st.plotly_chart serialises a copy."""
    return legible(history_figure(_histories))


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
                     "interrupted": f"was interrupted before its first epoch: {run.error}"}.get(
                run.state, "has no finished epoch")
            st.info(f"Run {md(run.name)} {md(state)}.")
            return
        if run.state == "running":
            st.caption(f"Live: {len(history)} of {run.epochs} epochs done; refreshing every 5 s.")
        # read before the histories: a file newer than the key only rebuilds the figure at the next refresh
        versions = tuple((r.name, str(r.path), history_version(r)) for r in shown)
        st.plotly_chart(curves(versions, [(r.name, history_of(r)) for r in shown]), width="stretch")
        st.download_button("Download history.csv", history.to_csv(index=False), f"{run.name}_history.csv",
                           "text/csv")

    live()
    folder = RunFolder(run.path)
    try:
        config = folder.config()
        # the settings as validated (config.json is the run folder's, untrusted): numbers are numbers
        settings = asdict(folder.settings(config)) if config else {}
    except RunProblem as err:
        st.caption(f"No reproduce command: {md(err)}")
    else:
        for note in curve_notes(history_of(run), settings):
            st.caption(note)
        cost_in_words(run, config)
        if not config:
            st.caption(f"No reproduce command: {md(run.name)} has no config.json.")
            stop_page()
        st.markdown(f"**Reproduce {md(run.name)}** (the data path is yours; from the project's folder, the new run "
                    "joins the run picker):")
        st.code(reproduce_command(config, run.name), language="bash", wrap_lines=True)
