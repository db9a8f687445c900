"""Measure where MTCNN finds the eyes and mouth in FER2013's own 48x48 faces (the template that
fer_models.faces.align places every photo's crop by), and how wide the Haar cascade's box is on them
(fer_models.faces.haar.HAAR_MARGIN).

    python scripts/face_template.py [--faces 1000]      # the first N bundled PublicTest faces; prints JSON
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST  # noqa: E402
from fer_models.faces.align import measure_haar, measure_template  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--faces", type=int, default=1000, help="how many bundled PublicTest faces, from the first")
    args = p.parse_args(argv)
    images = np.load(BUNDLED_PUBLICTEST)["images"][:args.faces, 0]
    print(json.dumps({**measure_template(images), "haar": measure_haar(images)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
