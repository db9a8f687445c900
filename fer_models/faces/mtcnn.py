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

    small = rgb
    if scale != 1.0:
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else
                           cv2.INTER_LINEAR)
    smallest = max(12.0, min_face * scale)  # P-Net's window is 12 pixels: smaller faces cannot be found
    if min(small.shape[:2]) < smallest:
        return []
    with torch.inference_mode():
        boxes, points = _cascade(np.ascontiguousarray(small), smallest, thresholds)
    found = [Detection(b[:4].astype(np.float64) / scale, float(b[4]), p.astype(np.float64) / scale)
             for b, p in zip(boxes, points) if float(b[4]) >= MIN_SCORE]
    return sorted(found, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))


def _crops(rgb: np.ndarray, boxes, size: int):
    """Each box's part of the image, clipped to it as the reference implementation clips, shrunk to
    size x size by OpenCV's area filter: the reference resizes each box with torch, a third of a
    webcam search's time; this is a twentieth of a millisecond a box."""
    import cv2
    import torch

    h, w = rgb.shape[:2]
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes[:, :4].trunc().int().tolist()):
        top, left = max(y0, 1) - 1, max(x0, 1) - 1
        crop = rgb[top:max(min(y1, h), top), left:max(min(x1, w), left)]  # a box wholly outside: empty, not wrapped
        out[i] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA) if crop.size else 0
    return (torch.from_numpy(out).permute(0, 3, 1, 2).float() - 127.5) * 0.0078125


def _cascade(rgb: np.ndarray, smallest: float, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """The three stages on one image: (K x 5 boxes with scores, K x 5 x 2 landmarks), in its pixels."""
    # the networks first: nets() imports facenet-pytorch (and torchvision) under its lock, and a page loads them in
    # a thread of its own; importing the package here at the same moment failed with KeyError: 'facenet_pytorch'
    pnet, rnet, onet = nets()
    import torch
    from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg, generateBoundingBox, rerec
    from torch.nn.functional import interpolate
    from torchvision.ops import nms

    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    h, w = image.shape[2:]
    none = (np.zeros((0, 5)), np.zeros((0, 5, 2)))
    scale, side, found = 12.0 / smallest, min(h, w) * 12.0 / smallest, []
    while side >= 12:
        reg, probs = pnet((interpolate(image, size=(int(h * scale + 1), int(w * scale + 1)), mode="area") - 127.5)
                          * 0.0078125)
        boxes, _ = generateBoundingBox(reg, probs[:, 1], scale, thresholds[0])
        found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        scale, side = scale * PYRAMID_FACTOR, side * PYRAMID_FACTOR
    boxes = torch.cat(found) if found else torch.zeros(0, 9)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    if not len(boxes):
        return none
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = rerec(torch.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                               boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh, boxes[:, 4]], dim=1))

    reg, probs = rnet(_crops(rgb, boxes, 24))
    keep = probs[:, 1] > thresholds[1]
    boxes, reg = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1), reg[keep]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    boxes = rerec(bbreg(boxes[pick], reg[pick]))
    if not len(boxes):
        return none

    reg, marks, probs = onet(_crops(rgb, boxes, 48))
    keep = probs[:, 1] > thresholds[2]
    boxes, reg, marks = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1), reg[keep], marks[keep]
    bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    points = torch.stack([bw[:, None] * marks[:, :5] + boxes[:, :1] - 1,
                          bh[:, None] * marks[:, 5:] + boxes[:, 1:2] - 1], dim=2)
    boxes = bbreg(boxes, reg)
    pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes)), 0.7, "Min")
    return boxes[pick].numpy(), points[pick].numpy()
