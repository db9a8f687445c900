"""Webcam frame rate: a 640x480 video of a real face (scikit-image's astronaut, public domain) whose
head tilts back and forth by up to 25°, written here, decoded and fed frame by frame through the
webcam page's own frame function (fer_models.media.live.process_frame), as streamlit-webrtc would:
detection every 3 frames, smoothing on, with and without the Grad-CAM overlay, per detector.

    python bench/live.py [--runs artifacts/runs/cnn3 artifacts/runs/resnet10_fer] [--frames 150]
                         [--detectors mtcnn haar]

Without --runs it uses freshly initialised cnn3 and resnet10_fer (the same speed). Targets (issue
19): >= 50 fps with MTCNN, >= 30 fps with Grad-CAM. `label_changes` counts how often the face's
label switched: the tilt must not make it flicker. Prints one JSON object.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's real-face video frames

import av  # noqa: E402
import torch  # noqa: E402

from fer_models.media.live import LiveAnnotator, LiveSettings, process_frame  # noqa: E402
from fer_models.nets.models import create_model  # noqa: E402
from fer_models.runs.checkpoints import load_model  # noqa: E402
from helpers import tilting_head  # noqa: E402


def write_video(path: Path, frames: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.bit_rate = 4_000_000
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(tilting_head(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def measure(model, meta, video: Path, gradcam: bool, detector: str) -> dict:
    settings = LiveSettings(gradcam=gradcam, detector=detector)
    annotator = LiveAnnotator(model, meta, settings)
    with av.open(str(video)) as container:
        frames = list(container.decode(video=0))
    for frame in frames[:10]:  # warm-up: first calls allocate
        process_frame(annotator, frame)
    annotator = LiveAnnotator(model, meta, settings)
    began = time.perf_counter()
    labels = []
    for frame in frames:
        process_frame(annotator, frame)
        faces = annotator.state().faces
        labels.append(faces[0][0] if faces else None)
    seconds = time.perf_counter() - began
    shown = [label for label in labels if label is not None]
    return {"fps": round(len(frames) / seconds, 1), "ms_per_frame": round(1000 * seconds / len(frames), 1),
            "frames": len(frames), "frames_with_a_face": len(shown),
            "label_changes": sum(a != b for a, b in zip(shown, shown[1:])),
            "labels": {label: shown.count(label) for label in sorted(set(shown))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--detectors", nargs="+", default=["mtcnn", "haar"], choices=["mtcnn", "haar"])
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.runs:
        models = {Path(r).name: load_model(r) for r in args.runs}
    else:
        meta = {"normalisation": {"mean": 0.5, "std": 0.25}}
        models = {name: (create_model(name).eval(), meta) for name in ("cnn3", "resnet10_fer")}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "face.mp4"
        write_video(video, args.frames)
        result = {"video": "640x480, 1 real face tilting ±25°, mpeg4", "threads": torch.get_num_threads(),
                  "weights": "checkpoints" if args.runs else "untrained (same speed)", "detect_every": 3}
        for name, (model, meta) in models.items():
            result[name] = {detector: {"plain": measure(model, meta, video, False, detector),
                                       "gradcam": measure(model, meta, video, True, detector)}
                            for detector in args.detectors}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
