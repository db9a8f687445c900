"""The explain and video work of one page run, as the server runs it (in a thread of its own, not the main thread),
with the intra-op thread count the server sets (1) and torch's default (one a core): medians in ms.

    python bench/threads.py [--repeat 5] [--threads 0 1]   (0: torch's default)

Each setting runs in a fresh process: torch.set_num_threads there, then every workload in a new thread, which takes
the number on its first operation, as a page run does. The main thread's figures (the CLI's, bench/explain.py's)
are given beside them for the default. Prints one JSON object.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from explain import median_ms  # noqa: E402


def workloads() -> dict:
    import numpy as np

    from fer_models.explain.attributions import attribute, face_input
    from fer_models.explain.features import filter_responses, maximise_filters
    from fer_models.media.video import annotate_video
    from fer_models.runs.checkpoints import load_model
    from helpers import write_clip

    runs = ROOT / "artifacts" / "runs"
    dense, dense_meta = load_model(runs / "densenet201_fer")
    resnet, resnet_meta = load_model(runs / "resnet10_fer")
    cnn3, cnn3_meta = load_model(runs / "cnn3")
    face = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    faces = np.load(ROOT / "artifacts" / "data" / "fer2013_publictest.npz")["images"][:512]
    faces = faces[:, None] if faces.ndim == 3 else faces
    clip = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_threads_clip.mp4"
    write_clip(clip, frames=60, shape=(480, 640), fps=30)  # 2 s at 640×480, a moving face throughout
    layer = "features.denseblock4.denselayer16.conv2"
    return {
        "densenet201_fer gradcam": lambda: attribute(dense, face_input(face, dense_meta), "gradcam", 3),
        "densenet201_fer saliency": lambda: attribute(dense, face_input(face, dense_meta), "saliency", 3),
        "densenet201_fer integrated_gradients": lambda: attribute(dense, face_input(face, dense_meta),
                                                                  "integrated_gradients", 3),
        "densenet201_fer 8 ascent steps, 1 filter": lambda: maximise_filters(dense, layer, [20], dense_meta, steps=8),
        "densenet201_fer 8 ascent steps, 7 filters": lambda: maximise_filters(dense, layer, list(range(20, 27)),
                                                                              dense_meta, steps=8),
        "resnet10_fer integrated_gradients": lambda: attribute(resnet, face_input(face, resnet_meta),
                                                               "integrated_gradients", 3),
        "resnet10_fer occlusion": lambda: attribute(resnet, face_input(face, resnet_meta), "occlusion", 3),
        "resnet10_fer ranking 512 faces": lambda: filter_responses(resnet, "stage3.0.conv1", faces, 0.5, 0.25),
        "cnn3 video 2 s": lambda: annotate_video(cnn3, cnn3_meta, clip),
        "resnet10_fer video 2 s": lambda: annotate_video(resnet, resnet_meta, clip),
    }


def measure(threads: int, repeat: int) -> dict:
    """In this process: the workloads in a new thread (as a page run), and with the default also in the main one."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    work, out = workloads(), {}

    def run(where: str) -> None:
        out[where] = {name: median_ms(fn, repeat) for name, fn in work.items()}
    thread = threading.Thread(target=run, args=("page thread",))
    thread.start()
    thread.join()
    if not threads:
        run("main thread")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[0, 1])
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: measure this setting, print its JSON
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.repeat)))
        return
    result = {"cpus": os.cpu_count(), "repeat": args.repeat}
    for n in args.threads:
        child = subprocess.run([sys.executable, __file__, "--one", str(n), "--repeat", str(args.repeat)],
                               capture_output=True, text=True, check=True)
        result["default threads" if n == 0 else f"{n} thread(s)"] = json.loads(child.stdout.splitlines()[-1])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
