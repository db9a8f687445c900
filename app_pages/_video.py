"""The Live page's video-file mode: a clip analysed in a background thread (the page polls it, so other users
and this page stay responsive), then played annotated, with every face's timeline, a summary and downloads."""
import atexit
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages._shared import chart, left_in_words, md
from fer_models.core.constants import EMOTIONS, MAX_VIDEO_MB
from fer_models.media.video import VideoError, VideoResult, annotate_video
from fer_models.teaching.figures import CLASS_COLOURS

TYPES = ["mp4", "mov", "m4v", "webm", "mkv", "avi"]
PACE_AFTER = 1.0  # seconds of frames before the page says a pace and the time left
GAP_STEPS = 6  # frames between two rows of a face beyond which it was out of view (detection runs every
#               third frame, and a track survives a few missed detections)
BRIEF_SECONDS = 0.5  # a track seen for less is left out of the table and charts (the CSV keeps it)


@dataclass
class VideoJob:
    name: str
    folder: Path
    run: str = ""
    done: float = 0.0
    total: float = 0.0
    result: VideoResult | None = None
    error: str | None = None
    cancel: bool = False
    announced: bool = False  # the page has been redrawn once with the result
    gradcam: bool = False    # the overlay this analysis draws: said beside it, never assumed from the toggle now
    first: tuple[float, float] | None = None  # (time.monotonic(), seconds done) at the first frame done: the pace
    #                                           counts from there (from the start, the detector's loading and the
    #                                           clip's opening made it read 0.0× and the time left climb 141 → 267 s)
    thread: threading.Thread | None = field(default=None, repr=False)
    size: int = -1           # the clip's bytes: with its name, which upload this is (another clip.mp4 is another)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def video(self) -> Path:
        return self.folder / "annotated.mp4"

    @property
    def csv(self) -> Path:
        return self.folder / "timeline.csv"


# every job's folder (the upload, the annotated video, the timeline) until it is cleaned up: a session's previous
# one when it starts another, the oldest past MAX_JOB_FOLDERS on the server, all of them when the server stops
MAX_JOB_FOLDERS = 16
_FOLDERS: list[Path] = []
_FOLDERS_LOCK = threading.Lock()


def _remove(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _forget(folder: Path) -> None:
    with _FOLDERS_LOCK:
        if folder not in _FOLDERS:
            return
        _FOLDERS.remove(folder)
    _remove([folder])


def _keep_newest(count: int) -> None:
    with _FOLDERS_LOCK:
        old = _FOLDERS[:max(len(_FOLDERS) - count, 0)]
        del _FOLDERS[:len(old)]
    _remove(old)


atexit.register(_keep_newest, 0)


def start(name: str, data: bytes, run: str, model, meta: dict, every: int, smoothing: float, gradcam: bool,
          detector: str = "mtcnn", previous: VideoJob | None = None) -> VideoJob:
    if previous is not None and not previous.running:
        _forget(previous.folder)
    folder = Path(tempfile.mkdtemp(prefix="fer_video_"))
    with _FOLDERS_LOCK:
        _FOLDERS.append(folder)
    _keep_newest(MAX_JOB_FOLDERS)
    # the user's file name is only shown: on disk the clip is "input" with a plain suffix
    suffix = Path(name).suffix.lower()
    source = folder / ("input" + (suffix if suffix.lstrip(".") in TYPES else ".video"))
    source.write_bytes(data)
    job = VideoJob(name, folder, run, gradcam=gradcam, size=len(data))

    def work():
        def progress(done, total):
            if job.first is None and done > 0:
                job.first = (time.monotonic(), done)
            job.done, job.total = done, total
        try:
            job.result = annotate_video(model, meta, source, job.video, job.csv, every, smoothing, gradcam,
                                        progress, should_stop=lambda: job.cancel, detector=detector)
        except VideoError as err:
            job.error = str(err).replace(str(source), name)
        except Exception as err:  # noqa: BLE001 - a clip must never take the page down; the message says what
            job.error = f"{name}: the analysis failed ({type(err).__name__}: {err})"
        finally:
            source.unlink(missing_ok=True)

    job.thread = threading.Thread(target=work, name=f"video {name}", daemon=True)
    job.thread.start()
    return job


def frame_step(times: np.ndarray) -> tuple[float, np.ndarray]:
    """A track's seconds between frames, and the rows that follow a time out of view."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.04
    return step, np.flatnonzero(np.diff(times) > GAP_STEPS * step) + 1


def timeline_figure(track: pd.DataFrame, duration: float) -> go.Figure:
    """One line per class over the whole clip (0 to `duration` s), and under them a band coloured by the leading
    class; where the face is out of view the lines and the band break. Drawn over the face's own span, a face
    that left at 4.2 s of an 8-s clip read as an 8-s face."""
    times, labels = track["seconds"].to_numpy(float), track["label"].to_numpy()
    step, gap = frame_step(times)
    def broken(values):  # a NaN between the two sides of a gap, where plotly breaks a line
        return np.insert(np.asarray(values, float), gap, np.nan)
    fig = go.Figure([go.Scatter(x=broken(times), y=broken(track[e]), name=e, mode="lines",
                                line=dict(color=CLASS_COLOURS[e])) for e in EMOTIONS])
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]] | np.isin(np.arange(len(labels)), gap))
    ends = np.r_[starts[1:], len(labels)]
    for a, b in zip(starts, ends):
        fig.add_shape(type="rect", x0=times[a], x1=times[b - 1] + step, y0=-0.12, y1=-0.04, line=dict(width=0),
                      fillcolor=CLASS_COLOURS[labels[a]])
    fig.update_layout(height=280, margin=dict(t=10, b=10, l=10, r=10), xaxis_title="seconds of the clip",
                      xaxis=dict(range=[0, max(duration, times[-1] + step)]),
                      yaxis=dict(range=[-0.14, 1], tickformat=".0%", tickvals=[0, 0.25, 0.5, 0.75, 1]),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), font=dict(size=14))
    return fig


def in_view(track: pd.DataFrame, duration: float) -> str:
    """When the face was in view, for the line over its chart: '0.0–4.2 s of the 8.0-s clip'."""
    times = track["seconds"].to_numpy(float)
    step, gap = frame_step(times)
    spans = zip(np.r_[times[0], times[gap]], np.r_[times[gap - 1], times[-1]])
    said = ", ".join(f"{a:.1f}–{b + step:.1f} s" for a, b in spans)
    return f"In view {said} of the {max(duration, times[-1] + step):.1f}-s clip."


def lasting(timeline: pd.DataFrame, brief: float = BRIEF_SECONDS) -> tuple[pd.DataFrame, int]:
    """The rows of the tracks seen for at least `brief` seconds, and how many shorter tracks were left out; all of
    them when none lasts that long. A detector's false hit or a face crossing the frame makes a track of a few
    frames, and it took a row of the table and a chart of its own beside the faces the clip is about."""
    span = timeline.groupby("track")["seconds"].agg(lambda s: s.max() - s.min())
    long = span.index[span >= brief]
    if len(long) == 0 or len(long) == len(span):
        return timeline, 0
    return timeline[timeline["track"].isin(long)], len(span) - len(long)


def summary_table(timeline: pd.DataFrame) -> pd.DataFrame:
    """Per face track: the share of its frames on which each emotion leads, and how long it was seen."""
    shares = pd.crosstab(timeline["track"], timeline["label"], normalize="index").reindex(columns=list(EMOTIONS),
                                                                                         fill_value=0.0)
    seen = timeline.groupby("track")["seconds"].agg(lambda s: s.max() - s.min())
    table = shares.assign(seconds=seen.round(1)).reset_index().rename(columns={"track": "face"})
    return table[["face", "seconds", *EMOTIONS]]


def overlay_words(gradcam: bool) -> str:
    return "with the Grad-CAM overlay" if gradcam else "without the Grad-CAM overlay"


def progress_text(job: VideoJob, now: float) -> str:
    """Seconds of the clip done of its real duration, the pace against real time and the time left; before the
    first frame, what it is doing (opening the clip, loading the detector), never "0.0 of ? s"."""
    mode = overlay_words(job.gradcam)
    if not job.done:
        return f"{md(job.name)}: preparing, {mode}: opening the clip and loading the face detector…"
    known = job.total > job.done  # a stream that does not say its duration is as long as what is done so far
    said = f"{md(job.name)}: {job.done:.1f}{f' of {job.total:.1f}' if known else ''} s of video, {mode}"
    if job.first is None or now - job.first[0] < PACE_AFTER:
        return said + " · measuring the pace…"
    pace = (job.done - job.first[1]) / (now - job.first[0])  # seconds of video per second of work
    said += f" · {pace:.1f}× real time"
    return said + f" · {left_in_words((job.total - job.done) / pace)}" if known and pace > 0 else said


def show_result(job: VideoJob, run_name: str, gradcam_now: bool, slow=None) -> None:
    """`slow(pace)`: called when this run analysed the clip slower than real time (the page offers a faster run)."""
    result = job.result
    st.success(f"{md(job.name)} with {md(job.run)}: {md(result.message)}, {overlay_words(job.gradcam)}.")
    if slow is not None and job.run == run_name and result.wall_seconds > 0:
        slow(result.seconds / result.wall_seconds)
    if job.run != run_name:  # the result of another run stays until this one is asked for, and says whose it is
        st.caption(f"This video was analysed with {md(job.run)}; the button above analyses it with {md(run_name)}.")
    if gradcam_now != job.gradcam:
        st.caption(f"The Grad-CAM toggle is {'on' if gradcam_now else 'off'} now; this video was made "
                   f"{overlay_words(job.gradcam)}. The button above analyses it again {overlay_words(gradcam_now)}.")
    st.video(str(job.video))
    stem = Path(job.name).stem
    a, b = st.columns(2)
    a.download_button("Download the annotated video (MP4)", job.video.read_bytes(), f"{stem}_{job.run}.mp4",
                      "video/mp4")
    b.download_button("Download the timeline (CSV)", job.csv.read_bytes(), f"{stem}_{job.run}.csv", "text/csv")
    if result.timeline.empty:
        st.info("No face was found in any frame: nothing to draw. Faces should be upright and at least about "
                "60 pixels wide.")
        return
    timeline, brief = lasting(result.timeline)
    st.subheader("Share of time per emotion, per face")
    # numbers, not progress bars: nine bar columns ran past a 1280-px window, hiding surprise and neutral
    # whole percents: the "percent" format wrote 20% beside 26.67%
    shares = summary_table(timeline)
    st.dataframe(shares.assign(**{e: shares[e] * 100 for e in EMOTIONS}), hide_index=True, width="stretch",
                 column_config={e: st.column_config.NumberColumn(e, format="%.0f%%", width="small")
                                for e in EMOTIONS})
    if brief:
        st.caption(f"{brief} brief detection{'s' if brief > 1 else ''} (a face seen for less than {BRIEF_SECONDS} s: "
                   "a false hit, or a face crossing the frame) left out here; the CSV keeps every track.")
    tracks = sorted(timeline["track"].unique())
    st.subheader("Timeline" + (" of each face" if len(tracks) > 1 else ""))
    for t in tracks[:8]:
        rows = timeline[timeline["track"] == t]
        st.markdown((f"**Face {t}.** " if len(tracks) > 1 else "") + in_view(rows, result.seconds))
        chart(timeline_figure(rows, result.seconds), width="stretch",
              config={"displayModeBar": False}, key=f"video_timeline_{t}")
    st.caption("The band under the lines: the emotion that leads at each moment, in its colour.")
    if len(tracks) > 8:
        st.caption(f"{len(tracks) - 8} more face tracks are in the CSV.")


def video_ui(run, model, meta, smoothing: float, every: int, gradcam: bool, detector: str = "mtcnn",
             slow=None) -> None:
    st.caption(f"A recording (MP4, MOV, WebM, MKV or AVI, up to {MAX_VIDEO_MB} MB): every frame goes through the same "
               "detection, tracking and smoothing as the live video. The audio is dropped.")
    upload = st.file_uploader("Video file", type=TYPES, max_upload_size=MAX_VIDEO_MB, key="video_upload")
    refused = None
    if upload is not None and upload.size > MAX_VIDEO_MB * 2**20:
        refused = (f"{md(upload.name)} is {upload.size / 2**20:.0f} MB, over the {MAX_VIDEO_MB} MB limit: trim or "
                   "compress it and upload it again.")
    elif upload is not None and upload.size == 0:
        refused = f"{md(upload.name)} is an empty file: choose a video file."
    elif upload is not None:
        st.session_state["_video_upload"] = (upload.name, upload.getvalue())
    if refused:
        st.error(refused)
    job: VideoJob | None = st.session_state.get("video_job")
    # a refused file is what the uploader shows: nothing kept from before is offered or shown under it
    chosen = None if refused else st.session_state.get("_video_upload")
    if upload is None and chosen is not None:  # the uploader forgets its file when the page shows another mode
        size = len(chosen[1])
        st.caption(f"Kept from before: {md(chosen[0])} ("
                   + (f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{max(1, round(size / 2**10))} KB")
                   + "), with its result below; upload another file to replace it.")
    same_file = job is not None and chosen is not None and (job.name, job.size) == (chosen[0], len(chosen[1]))
    if chosen is not None and (not same_file or job.run != run.name or job.gradcam != gradcam):
        if st.button(f"Analyse {md(chosen[0])} with {md(run.name)}, {overlay_words(gradcam)}", type="primary"):
            job = start(*chosen, run.name, model, meta, every, smoothing, gradcam, detector, previous=job)
            st.session_state["video_job"] = job
    if job is None or refused or (chosen is not None and not same_file and not job.running):  # another file's
        return

    @st.fragment(run_every=0.5 if job.running else None)
    def watch():
        if job.running:
            share = job.done / job.total if job.total else 0.0
            st.progress(min(share, 1.0), text=progress_text(job, time.monotonic()))
            if st.button("Stop", key="video_stop"):
                job.cancel = True
            return
        if job.error:
            st.error(md(job.error))
        elif job.result is not None:
            show_result(job, run.name, gradcam, slow)
        if not job.announced:
            job.announced = True
            st.rerun()  # the whole page once, so the result is drawn outside the polling fragment's rhythm

    watch()
