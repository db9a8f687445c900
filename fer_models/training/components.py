"""What a training step is made of besides the data: the model (seeded), the optimizer (decay on
conv/linear weights only), the weight EMA and a distillation teacher.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from fer_models.nets.models import create_model
from fer_models.runs.checkpoints import CheckpointError, load_model
from fer_models.runs.folder import RunProblem
from fer_models.runs.settings import TrainConfig


def build_model(cfg: TrainConfig, device) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)  # the initial weights; every rank starts from the same ones
    return create_model(cfg.model).to(device).to(memory_format=torch.channels_last)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Weight decay on conv and linear weights only: decaying BatchNorm scales and biases only hurts."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    return (torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW)(groups, lr=cfg.lr)


class WeightEMA:
    """An exponential moving average of the weights (and a copy of the BatchNorm buffers), after timm's
    ModelEmaV3: validated and saved instead of the raw weights, which jitter at the end of each step."""

    def __init__(self, model: torch.nn.Module, arch: str, decay: float):
        self.decay = decay
        self.module = create_model(arch).to(next(model.parameters()).device).to(memory_format=torch.channels_last)
        self.module.load_state_dict(model.state_dict())
        self.module.requires_grad_(False)
        self._params, self._model_params = list(self.module.parameters()), list(model.parameters())
        self._buffers, self._model_buffers = list(self.module.buffers()), list(model.buffers())

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # short memory early on, while the weights move fast
        # one fused call per list: densenet201_fer has ~1,000 tensors, a launch each on a GPU
        torch._foreach_lerp_(self._params, self._model_params, 1 - d)
        torch._foreach_copy_(self._buffers, self._model_buffers)


class Teacher:
    """A trained run whose softened probabilities on the student's own augmented batch are a second target
    (Hinton et al. 2015): the KL term is scaled by T² so its gradients keep their size as T changes."""

    def __init__(self, run_dir: str, device, student_mean: float, student_std: float, temperature: float):
        try:
            self.model, meta = load_model(run_dir, device)
        except (CheckpointError, RunProblem) as err:  # said as the option the user gave, not a bare path
            raise type(err)(f"--teacher {err}") from err
        self.model.requires_grad_(False)
        self.model.to(memory_format=torch.channels_last)
        norm = meta["normalisation"]
        # the batch arrives normalised with the student's statistics; the teacher wants its own
        self.scale = student_std / norm["std"]
        self.shift = (student_mean - norm["mean"]) / norm["std"]
        self.temperature = temperature
        self.info = {"run": Path(run_dir).name, "arch": meta["arch"],
                     "val_acc": meta.get("metrics", {}).get("val_acc")}

    def loss(self, x: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        with torch.no_grad():
            soft = (self.model(x * self.scale + self.shift).float() / t).softmax(1)
        return F.kl_div((student_logits.float() / t).log_softmax(1), soft, reduction="batchmean") * t * t
