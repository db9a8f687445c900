"""Face detection on this machine: MTCNN against the Haar cascades on the same real photos, at 640×480
and 1280×720, upright and with the head tilted by 30°: the photo path's time (fer_models.faces.detect.detect_faces,
retries included) and the live path's (one search of a video frame), and the faces each finds.

    python bench/detect.py [--repeat 10]

The photo is scikit-image's astronaut (public domain), scaled to the frame's height and centred on
the frame with its edges repeated. Prints one JSON object (medians in ms).
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.explain import median_ms  # noqa: E402
from fer_models.faces.detect import DETECTORS, detect_faces  # noqa: E402
from helpers import astronaut  # noqa: E402


def frame(width: int, height: int, tilt: float) -> np.ndarray:
    photo = cv2.resize(astronaut(), (height, height), interpolation=cv2.INTER_AREA)
    side = (width - height) // 2
    out = cv2.copyMakeBorder(photo, 0, 0, side, width - height - side, cv2.BORDER_REPLICATE)
    m = cv2.getRotationMatrix2D((width / 2, height / 2), tilt, 1.0)
    return cv2.warpAffine(out, m, (width, height), borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args()
    result = {"photo": "skimage astronaut", "detectors": {}}
    for detector in DETECTORS:
        rows = result["detectors"][detector] = {}
        for width, height in ((640, 480), (1280, 720)):
            for tilt in (0, 30):
                image = frame(width, height, tilt)
                row = rows[f"{width}x{height}" + (f" tilted {tilt}°" if tilt else "")] = {}
                for path, live in (("photo", False), ("live", True)):
                    row[f"{path}_ms"] = median_ms(
                        lambda image=image, detector=detector, live=live: detect_faces(image, detector, live),
                        args.repeat)
                    row[f"{path}_faces"] = len(detect_faces(image, detector, live))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
