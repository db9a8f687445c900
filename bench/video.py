"""Video files and folders of photos: how fast fer_models.media.video and fer_models.media.predict go on this CPU.

    python bench/video.py [--runs artifacts/runs/cnn3 artifacts/runs/resnet10_fer] [--seconds 10] [--photos 12]

A 640x480, 30 fps clip of a face moving over a background (written here with PyAV) goes through
annotate_video with its defaults (detection every 3 frames, smoothing, an H.264 output and the CSV); the
figure is seconds of work per minute of video and the speed against real time (target: >= 3x, cnn3 and
resnet10_fer).
A folder of 1280x720 photos, one face each, goes through predict_photos: photos per second. One JSON object.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image  # noqa: E402

from fer_models.media.predict import predict_photos  # noqa: E402
from fer_models.media.video import annotate_video  # noqa: E402
from fer_models.runs.checkpoints import load_model  # noqa: E402
from helpers import face_photo, write_clip  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", nargs="+",
                   default=[str(ROOT / "artifacts" / "runs" / n) for n in ("cnn3", "resnet10_fer")])
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--photos", type=int, default=12)
    args = p.parse_args()
    out = {"clip": f"640x480, 30 fps, {args.seconds} s, one face", "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = write_clip(tmp / "clip.mp4", frames=30 * args.seconds, shape=(480, 640), fps=30, step=1)
        photos = tmp / "photos"
        photos.mkdir()
        for i in range(args.photos):
            Image.fromarray(face_photo(2 if i % 2 else 5, size=220, at=(300 + 20 * i, 200), shape=(720, 1280))
                            ).save(photos / f"p{i}.jpg", quality=90)
        for run in args.runs:
            model, meta = load_model(run)
            annotate_video(model, meta, write_clip(tmp / "warm.mp4", frames=6), None, None)  # warm up
            began = time.perf_counter()
            result = annotate_video(model, meta, clip, tmp / "out.mp4", tmp / "out.csv")
            wall = time.perf_counter() - began
            began = time.perf_counter()
            table, skipped = predict_photos(model, meta, [photos])
            photo_wall = time.perf_counter() - began
            out["runs"][Path(run).name] = {
                "video_frames": result.frames, "faces_found_in_frames": int(result.timeline["frame"].nunique()),
                "seconds_per_video_minute": round(wall / args.seconds * 60, 1),
                "times_real_time": round(args.seconds / wall, 2),
                "photos_per_second": round(args.photos / photo_wall, 2), "photo_faces": len(table),
                "photos_skipped": len(skipped)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
