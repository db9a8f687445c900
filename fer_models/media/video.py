"""A video file through the webcam's pipeline: every frame detected (every N), tracked, classified, smoothed and
drawn, into an annotated video and a per-frame timeline CSV.

    fer-studio video --run artifacts/runs/resnet10_fer --input clip.mp4 \
        --output annotated.mp4 --csv timeline.csv [--every 3] [--smoothing 0.6] [--gradcam]

The annotated video keeps the input's size (an odd width or height gains one black pixel: H.264 needs even
sides), its frame times (a variable frame rate stays variable) and its frame count; it is H.264 in MP4, and
the audio is dropped. Both files are written beside their target and renamed into place once complete; Ctrl-C
finishes them at the last frame done, so they stay readable.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_models.core.arguments import OneLineParser
from fer_models.core.constants import EMOTIONS
from fer_models.core.files import partial_beside
from fer_models.core.guards import UntrustedFileError, regular_file
from fer_models.faces.detect import DETECTORS

COLUMNS = ["frame", "seconds", "track", "x", "y", "width", "height", *EMOTIONS, "label"]
# the annotated video stops (and says so) when its disk has less room than this: libav crashed the whole process
# (SIGSEGV) when a write failed for a full disk, so it is never allowed to get there
MIN_FREE_BYTES = 64 << 20
DISK_CHECK_EVERY = 30  # frames
MAX_SIDE = 4096  # frames larger than this are refused: 4K is the largest a phone records
BATCH = 8  # frames classified in one forward pass: a file need not answer each frame at once, as a webcam must


class VideoError(ValueError):
    """A clip that cannot be analysed; the message names the file and the problem."""


@dataclass
class VideoResult:
    frames: int = 0                 # frames read and annotated
    seconds: float = 0.0            # the clip's duration covered
    size: tuple[int, int] = (0, 0)  # width, height of the input
    fps: float = 0.0                # the stream's average frame rate
    timeline: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    stopped: bool = False           # Ctrl-C or a stop request: the files end at the last frame done
    truncated: str = ""             # why the analysis ended before the clip did (a decoder error, say)
    resized: int = 0                # frames of another size than the first (a stream that changes size)
    wall_seconds: float = 0.0

    @property
    def message(self) -> str:
        said = f"{self.frames} frames ({self.seconds:.1f} s of video) in {self.wall_seconds:.1f} s"
        if self.timeline.empty:
            said += "; no face was found in any frame, so the timeline is empty"
        else:
            said += f"; {self.timeline['track'].nunique()} face track(s) over {self.timeline['frame'].nunique()} frames"
        if self.truncated:
            said += f". It ended early ({self.truncated}): everything before that is kept"
        if self.resized:
            said += (f". The stream changed size: {self.resized} frames were scaled to the first frame's "
                     f"{self.size[0]}×{self.size[1]}")
        if self.stopped:
            said += ". Stopped before the end: the files end at the last frame done"
        return said


def _name(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "the video")


def _open(source):
    import av

    name = _name(source)
    try:
        container = av.open(str(source) if isinstance(source, Path) else source)
    except (av.error.FFmpegError, OSError, ValueError) as err:
        # FFmpeg's reason alone: the error's text carries an errno ("[Errno 1094995529]") and the path again
        why = getattr(err, "strerror", None) or type(err).__name__
        raise VideoError(f"{name}: not a video file this machine can read ({why}); choose an MP4, MOV, WebM, MKV "
                         "or AVI file") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{name}: the file has no video stream")
    return container


def check_outputs(source, output: Path | None, csv: Path | None) -> None:
    """VideoError unless each output may be written (fer_models.core.files.checked_output): not the input itself (it
    would be destroyed), not the other output, nothing but a regular file where it already exists (never a device
    or a pipe), in a folder that exists and takes files."""
    from fer_models.core.files import OutputError, checked_output

    given = [Path(p) for p in (output, csv) if p is not None]
    if len(given) == 2 and given[0].resolve() == given[1].resolve():
        raise VideoError(f"{given[0]}: --output and --csv name the same file; give each its own")
    keep = [(source, "the input video")] if isinstance(source, (str, Path)) else []
    for path in given:
        try:
            checked_output(path, keep=keep)
        except OutputError as err:
            raise VideoError(str(err)) from None


def annotate_video(model, meta: dict, source, output: Path | None = None, csv: Path | None = None,
                   every: int = 3, smoothing: float = 0.6, gradcam: bool = False, progress=None,
                   should_stop=lambda: False, detector: str = "mtcnn") -> VideoResult:
    """Run the clip through a LiveAnnotator. `progress(done_seconds, total_seconds)` hears each frame;
    `should_stop()` is asked before each frame (a page's cancel button)."""
    from fer_models.media.live import LiveAnnotator, LiveSettings

    began = time.perf_counter()
    check_outputs(source, output, csv)
    container = _open(source)
    try:
        stream, total = _checked_stream(container, _name(source), output)
    except VideoError:
        container.close()
        raise
    width, height = stream.codec_context.width, stream.codec_context.height
    result = VideoResult(size=(width, height), fps=float(stream.average_rate or 0) or 30.0)
    annotator = LiveAnnotator(model, meta, LiveSettings(smoothing=smoothing, gradcam=gradcam,
                                                        detect_every=every, show_fps=False, detector=detector))
    writer = _Writer(output, width, height, result.fps, stream.time_base) if output is not None else None
    rows = _annotate_frames(container, stream, annotator, writer, result, total, progress, should_stop,
                            _name(source))
    result.timeline = pd.DataFrame(rows, columns=COLUMNS)
    _finish(result, writer, output, csv)
    result.wall_seconds = time.perf_counter() - began
    return result


def _checked_stream(container, name: str, output: Path | None):
    """The clip's video stream and its duration in seconds (0 when unknown), or VideoError saying why not."""
    import av

    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise VideoError(f"{name}: the video stream has no frame size")
    if max(width, height) > MAX_SIDE:
        raise VideoError(f"{name}: {width}×{height} is larger than {MAX_SIDE} pixels a side; scale it down first")
    if output is not None and (free := _free_bytes(output)) < MIN_FREE_BYTES:
        raise VideoError(f"{output}: only {free / 2**20:.1f} MB free there, and an annotated video needs room; free "
                         "some space or write it elsewhere")
    total = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
        float(container.duration / av.time_base) if container.duration else 0.0
    return stream, total


def _probe(source, output: Path | None) -> None:
    """VideoError now, before the model loads and a progress bar starts, if the clip cannot be opened or used."""
    container = _open(source)
    try:
        _checked_stream(container, _name(source), output)
    finally:
        container.close()


def _annotate_frames(container, stream, annotator, writer, result: VideoResult, total: float, progress,
                     should_stop, name: str) -> list[tuple]:
    """Every frame through the annotator (and into the writer), BATCH frames to a forward pass: the timeline's
    rows. Whatever breaks after the first frame ends the clip there, said in result.truncated, the frames prepared
    before it finished and kept; before it, VideoError."""
    import av

    width, height = result.size
    rows, pending, first_time = [], [], None

    def flush():
        if not pending:
            return
        batch = pending[:]
        pending.clear()
        for (_, frame, t), (out, faces) in zip(batch, annotator.finish([p for p, _, _ in batch])):
            for track, (x, y, w, h), probs in faces:
                rows.append((result.frames, round(t - first_time, 4), track, x, y, w, h,
                             *np.round(probs, 5).tolist(), EMOTIONS[int(probs.argmax())]))
            if writer is not None:
                if result.frames % DISK_CHECK_EVERY == 0 and _free_bytes(writer.path) < MIN_FREE_BYTES:
                    raise OSError(28, f"the disk of {writer.path} is nearly full")
                writer.add(out, frame)
            result.frames += 1
            result.seconds = t - first_time + 1 / result.fps
            if progress is not None:
                progress(result.seconds, max(total, result.seconds))

    try:
        try:
            for frame in container.decode(stream):
                if should_stop():
                    result.stopped = True
                    break
                t = float(frame.time) if frame.time is not None else (result.frames + len(pending)) / result.fps
                first_time = t if first_time is None else first_time
                bgr = frame.to_ndarray(format="bgr24")
                if bgr.shape[:2] != (height, width):  # a stream may change size mid-way: the writer's stays
                    bgr = _resized(bgr, width, height)
                    result.resized += 1
                pending.append((annotator.prepare(bgr), frame, t))
                if len(pending) == BATCH:
                    flush()
        except KeyboardInterrupt:
            result.stopped = True
        finally:  # the frames prepared before a stop or a failure are finished too
            flush()
    except KeyboardInterrupt:
        result.stopped = True
    except Exception as err:  # noqa: BLE001 - whatever breaks late in a clip, the frames done are kept
        if result.frames == 0:
            if writer is not None:
                writer.discard()
            kind = "cannot decode the video" if isinstance(err, av.error.FFmpegError) else "the analysis failed"
            raise VideoError(f"{name}: {kind} ({type(err).__name__}: {str(err)[:160]})") from None
        result.truncated = f"at frame {result.frames}: {type(err).__name__}: {str(err)[:160]}"
    finally:
        container.close()
    if result.frames == 0:
        if writer is not None:
            writer.discard()
        raise VideoError(f"{name}: the clip has no frames")
    return rows


def _finish(result: VideoResult, writer, output: Path | None, csv: Path | None) -> None:
    """The timeline CSV first (it survives a video that cannot be finished), then the video, each renamed into
    place; VideoError naming what could not be written."""
    import av

    from fer_models.core.files import atomic_replace

    if csv is not None:
        try:
            atomic_replace(Path(csv), lambda tmp: result.timeline.to_csv(tmp, index=False))
        except OSError as err:
            if writer is not None:
                writer.discard()
            raise VideoError(f"{csv}: cannot be written ({err.strerror or err}); nothing was saved") from None
    if writer is not None:
        try:
            writer.close()
        except (OSError, av.error.FFmpegError) as err:
            writer.discard()
            kept = f"; the timeline is in {csv}" if csv is not None else ""
            raise VideoError(f"{output}: the annotated video cannot be written ({err}){kept}") from None


def _free_bytes(path: Path) -> int:
    import shutil
    return shutil.disk_usage(Path(path).parent).free


def _resized(bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)


class _Writer:
    """H.264 in MP4, written to a temporary file beside the target and renamed into place by close()."""

    def __init__(self, path, width: int, height: int, fps: float, time_base):
        import av

        self.path = Path(path)
        self.tmp = partial_beside(self.path)
        self.width, self.height = width + width % 2, height + height % 2
        self.container = av.open(str(self.tmp), "w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=round(fps) or 30)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "23"}
        if time_base is not None:  # the input's clock: each frame keeps its time, so a variable rate stays
            self.stream.codec_context.time_base = time_base
        self.last_pts = None

    def add(self, bgr: np.ndarray, source_frame) -> None:
        import av

        h, w = bgr.shape[:2]
        if (w, h) != (self.width, self.height):
            bgr = np.pad(bgr, ((0, self.height - h), (0, self.width - w), (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
        pts = source_frame.pts
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):  # a missing or repeated time
            pts = 0 if self.last_pts is None else self.last_pts + 1
        frame.pts = self.last_pts = pts
        frame.time_base = self.stream.codec_context.time_base
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()
        self.tmp.replace(self.path)

    def discard(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - a half-written file is removed whatever its container says
            pass
        finally:
            self.tmp.unlink(missing_ok=True)


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio video", description="Annotate a video file with a run's expression readings.")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--input", required=True, help="a video file (MP4, MOV, WebM, AVI, ...)")
    p.add_argument("--output", help="annotated video to write (.mp4)")
    p.add_argument("--csv", help="timeline CSV to write: one row per frame and face")
    p.add_argument("--every", type=int, default=3, help="detect faces every N frames (tracked between)")
    p.add_argument("--smoothing", type=float, default=0.6, help="weight of the past in each face's average")
    p.add_argument("--gradcam", action="store_true", help="overlay Grad-CAM on each face")
    p.add_argument("--detector", default="mtcnn", choices=list(DETECTORS), help="face detector")
    return p


def main(argv=None) -> int:
    from tqdm import tqdm

    from fer_models.runs.checkpoints import CheckpointError, load_model

    p = parser()
    args = p.parse_args(argv)
    if not args.output and not args.csv:
        p.error("nothing to write: give --output and/or --csv")
    if args.every < 1 or not 0 <= args.smoothing < 1:
        p.error("--every must be ≥ 1 and --smoothing in [0, 1)")
    try:  # a pipe would block the decoder, a device never end it
        regular_file(args.input, f"--input {args.input}")
    except UntrustedFileError as err:
        print(f"error: {err}; give a video file", file=sys.stderr)
        return 2
    try:
        check_outputs(Path(args.input), Path(args.output) if args.output else None,
                      Path(args.csv) if args.csv else None)
        _probe(Path(args.input), Path(args.output) if args.output else None)
        model, meta = load_model(args.run)
    except (VideoError, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bars = []  # the bar starts with the first frame done: a file that is no video is then one line, and no bar

    def progress(done, total):
        if not bars:
            bars.append(tqdm(unit="s", unit_scale=True, desc="video", dynamic_ncols=True))
        bars[0].total = round(total, 1)
        bars[0].n = round(done, 1)
        bars[0].refresh()

    try:
        result = annotate_video(model, meta, Path(args.input), Path(args.output) if args.output else None,
                                Path(args.csv) if args.csv else None, args.every, args.smoothing, args.gradcam,
                                progress, detector=args.detector)
    except VideoError as err:
        result, problem = None, err
    for bar in bars:
        bar.close()
    if result is None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(result.message + f" ({result.frames / max(result.wall_seconds, 1e-9):.1f} frames/s)")
    return 130 if result.stopped else 0


if __name__ == "__main__":
    sys.exit(main())
