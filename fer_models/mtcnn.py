"""MTCNN (Zhang et al. 2016): a three-stage neural face detector that also places 5 landmarks
(the eyes, the nose tip, the mouth corners), so a tilted face can be turned upright before it is cropped.

The networks and their weights come from facenet-pytorch 2.5.3, where they ship inside the wheel
(nothing is downloaded). The weight files are plain state dicts, read with
torch.load(weights_only=True): no pickled code runs. Later facenet-pytorch releases pin an old
torch, so the version is pinned too.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# P-Net, R-Net and O-Net's score thresholds and the pyramid's step: the reference implementation's
THRESHOLDS = (0.6, 0.7, 0.7)
# for video frames, stricter first two stages: a third fewer candidate boxes reach O-Net, the costliest
# stage, and the large, sharp faces of a webcam pass them anyway (bench/live.py counts the frames found)
LIVE_THRESHOLDS = (0.7, 0.8, 0.7)
PYRAMID_FACTOR = 0.709
# a final O-Net score below this is not reported: on faceless pictures (textures, foliage) the
# false detections score lower, real faces of any tilt above 0.95
MIN_SCORE = 0.9

_NETS: list = []
_LOAD = threading.Lock()


@dataclass
class Detection:
    box: np.ndarray        # x0, y0, x1, y1 in the image's pixels
    score: float
    landmarks: np.ndarray  # 5 x 2 (x, y): the eye on the image's left, the other eye, the nose, the mouth's left
    #                        and right corners


def weight_files() -> list[Path]:
    try:
        import facenet_pytorch
    except ImportError:
        raise RuntimeError("the MTCNN face detector needs facenet-pytorch: pip install facenet-pytorch==2.5.3 "
                           "(or pick the Haar detector)") from None
    data = Path(facenet_pytorch.__file__).parent / "data"
    return [data / f"{name}.pt" for name in ("pnet", "rnet", "onet")]


def nets():
    """P-Net, R-Net and O-Net, loaded once per process, in eval mode."""
    with _LOAD:
        if not _NETS:
            import torch
            from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

            for cls, path in zip((PNet, RNet, ONet), weight_files()):
                net = cls(pretrained=False)
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                _NETS.append(net.eval())
        return list(_NETS)


def detect(rgb: np.ndarray, min_face: float = 20.0, scale: float = 1.0, thresholds=THRESHOLDS) -> list[Detection]:
    """Every face at least `min_face` pixels wide in `rgb` (H x W x 3 uint8), largest first.

    `scale` < 1 searches a shrunk copy (boxes and landmarks come back in rgb's pixels): the pyramid
    of a large image costs time in proportion to its area.
    """
    import cv2
    import torch
    from facenet_pytorch.models.utils.detect_face import detect_face

    small = rgb
    if scale != 1.0:
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else
                           cv2.INTER_LINEAR)
    smallest = max(12.0, min_face * scale)  # P-Net's window is 12 pixels: smaller faces cannot be found
    if min(small.shape[:2]) < smallest:
        return []
    with torch.inference_mode():
        boxes, points = detect_face(np.ascontiguousarray(small), smallest, *nets(), thresholds, PYRAMID_FACTOR,
                                    "cpu")
    found = [Detection(np.asarray(b[:4], np.float64) / scale, float(b[4]), np.asarray(p, np.float64) / scale)
             for b, p in zip(boxes[0], points[0]) if float(b[4]) >= MIN_SCORE]
    return sorted(found, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
