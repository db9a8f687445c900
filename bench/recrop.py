"""Faces found and cropped again from larger pictures: does our crop frame a face as FER2013 does?

    python bench/recrop.py [--faces 1000] [--runs artifacts/runs/resnet10_fer ...]

Each of the first N bundled PublicTest faces is enlarged 4x and set on a gray border (a picture where the whole
head shows), then found and cropped by the photo pipeline (MTCNN with its levelled, template-placed crop, and
the Haar cascades), and the run reads the crop. Prints one JSON object: per detector, how many faces it found,
the crop's scale (its side in the original 48-pixel face's pixels: 48 is FER2013's own framing) overall and per
class, and each run's accuracy on the crops beside its accuracy on the same faces as FER2013 has them.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_models.core.constants import EMOTIONS, IMAGE_SIZE  # noqa: E402
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST  # noqa: E402

UPSCALE, PAD = 4, IMAGE_SIZE


def picture(face48: np.ndarray) -> np.ndarray:
    """The face enlarged and bordered, as RGB: where the detectors see a whole head."""
    import cv2

    big = cv2.resize(face48, (IMAGE_SIZE * UPSCALE,) * 2, interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=128)
    return np.repeat(big[..., None], 3, axis=2)


def recrop(faces48: np.ndarray, detector: str):
    """(crops N' x 48 x 48, the indices of the faces found, each crop's side in original-face pixels)."""
    from fer_models.faces.detect import detect_faces
    from fer_models.faces.face import crop_face

    crops, found, scales = [], [], []
    for i, face48 in enumerate(faces48):
        rgb = picture(face48)
        faces = detect_faces(rgb, detector)
        if not faces:
            continue
        face = faces[0]
        crops.append(crop_face(rgb[..., 0], face))
        found.append(i)
        scales.append(face.crop_side / UPSCALE)
    return np.array(crops), np.array(found, int), np.array(scales)


def accuracy(run: str, images: np.ndarray, labels: np.ndarray) -> float:
    from fer_models.evaluation.scoring import predict_proba
    from fer_models.runs.checkpoints import load_model

    model, meta = load_model(run)
    norm = meta["normalisation"]
    probs = predict_proba(model, images[:, None], norm["mean"], norm["std"], precision="fp32")
    return round(float((probs.argmax(1) == labels).mean()), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=1000)
    parser.add_argument("--runs", nargs="*", default=[str(Path(__file__).resolve().parents[1] / "artifacts" / "runs"
                                                          / "resnet10_fer")])
    args = parser.parse_args()
    with np.load(BUNDLED_PUBLICTEST) as z:
        faces48, labels = z["images"][:args.faces, 0], z["labels"][:args.faces].astype(int)
    report = {"faces": len(faces48)}
    for detector in ("mtcnn", "haar"):
        crops, found, scales = recrop(faces48, detector)
        entry = {"found": int(len(found)), "crop_scale_median": round(float(np.median(scales)), 2),
                 "crop_scale_by_class": {EMOTIONS[c]: round(float(np.median(scales[labels[found] == c])), 2)
                                         for c in range(len(EMOTIONS)) if (labels[found] == c).any()}}
        for run in args.runs:
            entry[Path(run).name] = {"recropped": accuracy(run, crops, labels[found]),
                                     "as_in_fer2013": accuracy(run, faces48[found], labels[found])}
        report[detector] = entry
    print(json.dumps(report))


if __name__ == "__main__":
    main()
