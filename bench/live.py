"""Webcam frame rate: a 640x480 video with one face, written here, decoded and fed frame by frame
through the webcam page's own frame function (fer_models.live.process_frame), as streamlit-webrtc
would: detection every 3 frames, smoothing on, with and without the Grad-CAM overlay.

    python bench/live.py [--runs artifacts/runs/cnn3 artifacts/runs/densenet201_fer] [--frames 150]

Without --runs it uses freshly initialised cnn3 and densenet201_fer (the same speed). Targets:
cnn3 >= 25 fps with one face, >= 10 fps with Grad-CAM. Prints one JSON object.
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

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fer_models.checkpoints import load_model  # noqa: E402
from fer_models.live import LiveAnnotator, LiveSettings, process_frame  # noqa: E402
from fer_models.models import create_model  # noqa: E402


def write_video(path: Path, frames: int) -> None:
    """A bundled PublicTest face (one the frontal cascade finds) enlarged to 180 px on a smooth
    background, drifting a few pixels per frame like a person in front of a webcam."""
    face = np.load(ROOT / "artifacts" / "data" / "fer2013_publictest.npz")["images"][2, 0]
    big = cv2.resize(face, (180, 180), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:480, 0:640]
    background = (110 + 30 * np.sin(xx / 90) * np.cos(yy / 70)).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(frames):
            gray = background.copy()
            x, y = 230 + int(20 * np.sin(i / 15)), 120 + int(10 * np.cos(i / 20))
            gray[y:y + 180, x:x + 180] = big
            frame = av.VideoFrame.from_ndarray(np.repeat(gray[..., None], 3, 2), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def measure(model, meta, video: Path, gradcam: bool) -> dict:
    annotator = LiveAnnotator(model, meta, LiveSettings(gradcam=gradcam))
    with av.open(str(video)) as container:
        frames = list(container.decode(video=0))
    for frame in frames[:10]:  # warm-up: first calls allocate
        process_frame(annotator, frame)
    annotator = LiveAnnotator(model, meta, LiveSettings(gradcam=gradcam))
    began = time.perf_counter()
    with_face = 0
    for frame in frames:
        process_frame(annotator, frame)
        with_face += bool(annotator.state().faces)
    seconds = time.perf_counter() - began
    return {"fps": round(len(frames) / seconds, 1), "ms_per_frame": round(1000 * seconds / len(frames), 1),
            "frames": len(frames), "frames_with_a_face": with_face}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[])
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.runs:
        models = {Path(r).name: load_model(r) for r in args.runs}
    else:
        meta = {"normalisation": {"mean": 0.5, "std": 0.25}}
        models = {name: (create_model(name).eval(), meta) for name in ("cnn3", "densenet201_fer")}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "face.mp4"
        write_video(video, args.frames)
        result = {"video": "640x480, 1 face, mpeg4", "threads": torch.get_num_threads(),
                  "weights": "checkpoints" if args.runs else "untrained (same speed)"}
        for name, (model, meta) in models.items():
            result[name] = {"plain": measure(model, meta, video, False),
                            "gradcam": measure(model, meta, video, True)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
