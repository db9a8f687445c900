"""Faces as model input, and on-device batch augmentation. torch is imported inside these functions: the
readers (and the dashboard's run list) then load without paying for torch's import.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def normalisation_stats(images: np.ndarray) -> tuple[float, float]:
    """Mean and std of the pixels scaled to [0, 1]; stored with the checkpoint."""
    x = images.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def to_input(images_uint8: "torch.Tensor", mean: float, std: float) -> "torch.Tensor":
    """uint8 N x 1 x 48 x 48 (any device) to the float input the models expect."""
    return (images_uint8.float() / 255.0 - mean) / std


@dataclass
class AugmentConfig:
    crop_pad: int = 4                 # random crop with padding: a shift of up to this many pixels
    resized_crop: float = 0.0         # >0: random resized crop, smallest kept area fraction (replaces crop_pad)
    flip: bool = True
    rotate: float = 10.0              # degrees, uniform in [-rotate, rotate]
    scale: float = 0.1                # zoom factor uniform in [1 - scale, 1 + scale]
    erase: float = 0.5                # probability of random erasing per image
    erase_area: tuple = (0.02, 0.25)  # erased fraction of the image

    @property
    def geometric(self) -> bool:
        return bool(self.crop_pad or self.resized_crop or self.flip or self.rotate or self.scale)


def augment_batch(x: "torch.Tensor", cfg: AugmentConfig, generator: "torch.Generator") -> "torch.Tensor":
    """Augment a normalised float batch N x C x H x W where it lives (CPU or GPU), in two vectorised passes.

    All geometric changes (crop/shift, resized crop, flip, rotation, scale) compose into one affine
    matrix per image, so the batch is resampled once by grid_sample; pixels that come from outside
    the image are 0, which is the dataset mean after normalisation (the usual zero padding).
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype

    def uniform(lo, hi, size=(n,)):
        return torch.rand(size, generator=generator, device=dev) * (hi - lo) + lo

    if cfg.geometric:
        angle = uniform(-cfg.rotate, cfg.rotate) * math.pi / 180
        zoom = uniform(1 - cfg.scale, 1 + cfg.scale)
        sx = sy = 1 / zoom
        if cfg.resized_crop > 0:
            area = uniform(cfg.resized_crop, 1.0)
            log_ratio = uniform(math.log(3 / 4), math.log(4 / 3))
            sx = sx * torch.sqrt(area * log_ratio.exp()).clamp(max=1)
            sy = sy * torch.sqrt(area / log_ratio.exp()).clamp(max=1)
            tx = uniform(-1, 1) * (1 - sx).clamp(min=0)
            ty = uniform(-1, 1) * (1 - sy).clamp(min=0)
        else:
            # integer pixel shifts, as a crop from a padded image; 2/w is one pixel in grid units
            def shift(size):
                return torch.randint(-cfg.crop_pad, cfg.crop_pad + 1, (n,), generator=generator,
                                                           device=dev).float() * 2 / size
            tx, ty = shift(w), shift(h)
        flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n, device=dev)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([
            torch.stack([cos * sx * flip, -sin * sy, tx], dim=1),
            torch.stack([sin * sx * flip, cos * sy, ty], dim=1),
        ], dim=1).to(dt)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.erase > 0:
        area = uniform(*cfg.erase_area) * h * w
        log_ratio = uniform(math.log(0.3), math.log(1 / 0.3))
        eh = torch.sqrt(area * log_ratio.exp()).clamp(1, h)
        ew = torch.sqrt(area / log_ratio.exp()).clamp(1, w)
        top = uniform(0, 1) * (h - eh)
        left = uniform(0, 1) * (w - ew)
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        box = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1)) &
               (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
        box &= (uniform(0, 1) < cfg.erase).view(n, 1, 1)
        x = x.masked_fill(box.unsqueeze(1), 0.0)
    return x
