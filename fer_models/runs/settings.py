"""Training settings: every option of a run with its default, bounds and help, in one place.

    from fer_models.runs.settings import TrainConfig
    cfg = TrainConfig(model="resnet10_fer", data="fer2013.csv.gz", optimizer="adamw").resolved()
    cfg.weight_decay   # 0.05: AdamW's own default, the same from the command line and the dashboard

The trainer's command line (`fer_models.training`), the dashboard's launcher (`fer_models.runs.jobs.TrainRequest`),
the Train page's form and its bounds, named recipes (`fer_models.runs.recipes`) and the README's reproduce
commands are all derived from TrainConfig's fields. Torch-free, so the dashboard reads it cheaply.

A new training setting is one field here (default, help, bounds), its use in train.py, and a test.
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

from fer_models.core.constants import LABEL_SOURCES

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
PRECISIONS = ("auto", "bf16", "fp32")
# sgd 0.05 left cnn3 predicting only "happy" on FER2013 (val 23% after 3 epochs on 6k faces; 0.01: 31%)
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3}
# AdamW's decay is decoupled (scaled by the learning rate only); SGD's and Adam's is an L2 term in the
# gradient, where 0.05 would shrink the weights ~100x harder than the usual 5e-4
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 5e-4, "adamw": 0.05}
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d{1,2})?")
SPLIT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a plain name: it becomes a folder eval/<split>/
DEMO_EPOCHS = 3  # the bundled-faces demo on the Train page: training seen in minutes


@dataclass(frozen=True)
class Bounds:
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value) -> bool:
        if not _finite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def __str__(self) -> str:
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


def setting(default, help: str, bounds: Bounds | None = None, choices: tuple = (), recipe: bool = True,
            on_resume: bool = False, flag: str | None = None, label: str | None = None):
    """A TrainConfig field. recipe: a training choice a recipe or "Start from" may carry (not where the data,
    the device or the run is); on_resume: may change when a run is resumed; flag: its command-line form
    when not --name (the booleans); label: its name in a sentence when not the field's name."""
    return field(default=default, metadata=dict(help=help, bounds=bounds, choices=choices, recipe=recipe,
                                                on_resume=on_resume, flag=flag, label=label))


@dataclass
class TrainConfig:
    model: str = setting("cnn3", "architecture (fer_models.nets.models.list_models())")
    # on --resume, where this machine keeps the same data (a run moves between machines; the split sizes
    # recorded in config.json must match)
    data: str | None = setting(None, "FER2013 CSV (.csv/.csv.gz), class-folder tree or FaceData .npz", recipe=False,
                               on_resume=True)
    ferplus: str | None = setting(None, "FER+ votes file (default: fer2013new.csv beside --data)", recipe=False,
                                  on_resume=True)
    label_source: str = setting("fer2013", "fer2013 labels, or FER+ majority / soft votes", choices=LABEL_SOURCES,
                                recipe=False)
    train_split: str = setting("Training", "the split to train on", recipe=False)
    val_split: str = setting("PublicTest", "the split to validate on every epoch", recipe=False)
    val_fraction: float = setting(0.0, "validate on this stratified fraction of --train-split instead (for data "
                                       "without a validation split, e.g. the course CSV); 0 = off",
                                  Bounds(0, 0.9), recipe=False, label="validation fraction")
    epochs: int = setting(30, "epochs; with --resume, a larger value extends the run", Bounds(1, 100_000),
                          on_resume=True)
    batch_size: int = setting(128, "global batch size", Bounds(1, 4096))
    lr: float | None = setting(None, "peak learning rate (default: "
                                     + ", ".join(f"{o} {v:g}" for o, v in DEFAULT_LR.items()) + ")",
                               Bounds(0, 10, lo_open=True), label="learning rate")
    optimizer: str = setting("sgd", "sgd (momentum 0.9, Nesterov), adam or adamw", choices=OPTIMIZERS)
    schedule: str = setting("onecycle", "learning-rate schedule", choices=SCHEDULES)
    weight_decay: float | None = setting(None, "on conv/linear weights only (default: the optimizer's own, "
                                               + ", ".join(f"{o} {v:g}" for o, v in DEFAULT_WEIGHT_DECAY.items())
                                               + ")", Bounds(0, 0.99))
    warmup_epochs: float = setting(0.0, "linear warm-up for cosine/step/constant", Bounds(0, 1000))
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy", Bounds(0, 0.9))
    mixup: float = setting(0.0, "mixup Beta(a, a) parameter; 0 = off", Bounds(0, 2))
    ema: float = setting(0.0, "weight EMA decay per step, e.g. 0.999; 0 = off", Bounds(0, 0.9999),
                         label="EMA decay")
    seed: int = setting(0, "seed of the initial weights and of every random draw", Bounds(0, 2**31 - 1))
    precision: str = setting("auto", "auto = bf16 autocast where the device computes bf16 natively",
                             choices=PRECISIONS, recipe=False, on_resume=True)
    device: str = setting("auto", "auto | cpu | cuda | cuda:N", recipe=False, on_resume=True)
    threads: int = setting(0, "CPU threads per process (0: cores / processes)", Bounds(0, 1024), recipe=False,
                           on_resume=True)
    crop_pad: int = setting(4, "random crop with this padding, pixels; 0 = off", Bounds(0, 16))
    resized_crop: float = setting(0.0, "random resized crop, smallest area kept (e.g. 0.6); replaces --crop-pad; "
                                       "0 = off", Bounds(0, 1, hi_open=True))
    flip: bool = setting(True, "horizontal flips", flag="--no-flip")
    rotate: float = setting(10.0, "max rotation in degrees", Bounds(0, 45))
    scale: float = setting(0.1, "max zoom change, e.g. 0.1 = ±10%", Bounds(0, 0.5))
    erase: float = setting(0.5, "random erasing probability", Bounds(0, 1), label="erasing probability")
    teacher: str | None = setting(None, "run folder of a trained model whose probabilities on each augmented "
                                        "batch are soft targets (knowledge distillation)")
    distill_weight: float = setting(0.5, "share of the loss from the teacher's targets", Bounds(0, 1))
    temperature: float = setting(4.0, "softmax temperature of distillation", Bounds(0, 100, lo_open=True))
    checkpoint_minutes: float = setting(10.0, "also save resumable state mid-epoch this often", Bounds(0, 1440),
                                        recipe=False, on_resume=True)
    half_weights: bool = setting(False, "store model.safetensors weights in fp16", recipe=False,
                                 flag="--half-weights")
    recipe: str | None = setting(None, "the named recipe these settings started from (fer_models.runs.recipes)",
                                 recipe=False)

    def resolved(self) -> "TrainConfig":
        """A copy with the optimizer's own learning rate and weight decay where none was given."""
        values = asdict(self)
        if values["lr"] is None:
            values["lr"] = DEFAULT_LR.get(self.optimizer, 0.01)
        if values["weight_decay"] is None:
            values["weight_decay"] = DEFAULT_WEIGHT_DECAY.get(self.optimizer, 5e-4)
        return type(self)(**values)

    def problems(self, called: Mapping[str, str] = MappingProxyType({})) -> list[str]:
        """Everything out of range or of the wrong kind, each naming the setting by its flag or by what a form
        `called` it; [] when all is well."""
        found = []
        for f in fields(TrainConfig):
            problem = check(f.name, getattr(self, f.name), called=called.get(f.name))
            if problem:
                found.append(problem)
        if not self.val_fraction and self.val_split == self.train_split:
            found.append("validating on the training split measures nothing: pick another split or a hold-out "
                         + (f"in {called['val_split']}" if "val_split" in called else "fraction (--val-fraction)"))
        if isinstance(self.model, str):
            from fer_models.nets.models import list_models
            if self.model not in list_models():
                found.append(f"model {self.model!r} is not registered; choose one of {', '.join(list_models())}")
        return found

    def as_args(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(TrainConfig)}


SETTINGS = {f.name: f for f in fields(TrainConfig)}
RECIPE_FIELDS = tuple(name for name, f in SETTINGS.items() if f.metadata["recipe"])
RESUMABLE_FIELDS = tuple(name for name, f in SETTINGS.items() if f.metadata["on_resume"])


def default(name: str):
    f = SETTINGS[name]
    return f.default if f.default is not MISSING else None


def bounds(name: str) -> Bounds | None:
    return SETTINGS[name].metadata["bounds"]


def flag(name: str) -> str:
    return SETTINGS[name].metadata["flag"] or "--" + name.replace("_", "-")


def form_range(name: str) -> tuple:
    """(min, max) of a setting for a number widget, as ints for whole-number settings."""
    b = bounds(name)
    integer = isinstance(SETTINGS[name].default, int) and not isinstance(SETTINGS[name].default, bool)
    return (int(b.lo), int(b.hi)) if integer else (float(b.lo), float(b.hi))


def label(name: str) -> str:
    return SETTINGS[name].metadata["label"] or name.replace("_", " ")


def _finite(value) -> bool:
    """Not inf or NaN (an int of any size is finite; Python compares it with the bounds exactly)."""
    return not isinstance(value, float) or math.isfinite(value)


def _shown(value) -> str:
    """A value as a message quotes it: at most 20 characters (a 5,000-digit number is not repeated)."""
    text = f"{value:g}" if isinstance(value, float) else repr(value) if not isinstance(value, int) else str(value) \
        if abs(value) < 10 ** 18 else "a huge number"
    return text if len(text) <= 20 else text[:17] + "..."


def check(name: str, value, ranges: bool = True, called: str | None = None) -> str | None:
    """Why `value` is not a valid `name`, in one line naming the setting and its flag (or what a form `called`
    it); None when it is. ranges=False checks the kind of value only (a number, one of the choices), not its
    bounds."""
    f, where = SETTINGS[name], called or flag(name)
    meta, kind = f.metadata, type(f.default) if f.default is not None else None
    if value is None:
        return None if f.default is None else f"{where} needs a value"
    if kind is bool or isinstance(f.default, bool):
        return None if isinstance(value, bool) else f"{where} must be true or false, not {value!r}"
    numeric = meta["bounds"] is not None
    if numeric:
        integer = isinstance(f.default, int) and not isinstance(f.default, bool)
        shown = _shown(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value) or \
                (integer and isinstance(value, float) and not value.is_integer()):
            return f"{where} must be {'a whole number' if integer else 'a finite number'}, not {shown}"
        b = meta["bounds"]
        if ranges and not b.contains(value):
            low = value < b.lo or (b.lo_open and value == b.lo)
            limit = (f"{'above' if b.lo_open else 'at least'} {b.lo:g}" if low
                     else f"{'below' if b.hi_open else 'at most'} {b.hi:g}")
            return f"{called} must be {limit}, not {shown}" if called else \
                f"{label(name)} must be {limit} ({where} {shown})"
        return None
    if not isinstance(value, str):
        return f"{where} must be text, not {value!r}"
    if meta["choices"] and value not in meta["choices"]:
        return f"{where} {value!r} is not one of {', '.join(meta['choices'])}"
    if name == "device" and not DEVICE_PATTERN.fullmatch(value):
        return f"{where} {value!r} is not auto, cpu, cuda or cuda:N"
    if name in ("train_split", "val_split") and not SPLIT_PATTERN.fullmatch(value):
        return f"{where} {value!r} is not a plain split name (letters, digits, '_', '-', '.')"
    return None


def clamped(values: dict) -> tuple[dict, list[str]]:
    """values with every number brought inside its setting's bounds, and a note for each that moved (a run
    made elsewhere may hold a value this version's form cannot show)."""
    out, notes = dict(values), []
    for name, value in values.items():
        b = bounds(name) if name in SETTINGS else None
        if b is None or not isinstance(value, (int, float)) or isinstance(value, bool) or b.contains(value):
            continue
        out[name] = min(max(value, b.lo), b.hi) if _finite(value) else default(name)
        notes.append(f"{label(name)} {_shown(value)} (allowed: {b})")
    return out, notes


def config_from(values: dict) -> TrainConfig:
    """A TrainConfig from a dict read elsewhere (a run's config.json): unknown keys dropped, missing ones
    defaulted, each value checked. Raises ValueError naming every bad value."""
    if not isinstance(values, dict):
        raise ValueError(f"the settings are {type(values).__name__}, not a mapping of names to values")
    known = {k: v for k, v in values.items() if k in SETTINGS}
    for name, value in list(known.items()):  # JSON has no int/float distinction: 30.0 epochs is 30
        if isinstance(SETTINGS[name].default, float) and isinstance(value, int) and not isinstance(value, bool):
            known[name] = float(value)
        elif isinstance(SETTINGS[name].default, int) and isinstance(value, float) and value.is_integer():
            known[name] = int(value)
    cfg = TrainConfig(**known)
    problems = [p for p in (check(name, getattr(cfg, name)) for name in SETTINGS) if p]
    if problems:
        raise ValueError("; ".join(problems))
    return cfg


def argv_of(cfg: TrainConfig, names=None) -> list[str]:
    """Command-line arguments that set `names` (default: every field) of cfg; booleans as their switches."""
    out = []
    for name in names or SETTINGS:
        value = getattr(cfg, name)
        if value is None:
            continue
        if isinstance(SETTINGS[name].default, bool):
            if value != SETTINGS[name].default:
                out.append(flag(name))
        else:
            out += [flag(name), f"{value:g}" if isinstance(value, float) else str(value)]
    return out


# ---------------------------------------------------------------- the command line


def _typed(name: str, kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") \
                from None
        problem = check(name, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser, model_choices=None) -> None:
    """One flag per setting, each defaulting to None so that the caller can tell what the command line set."""
    for name, f in SETTINGS.items():
        meta, text = f.metadata, f.metadata["help"]
        if isinstance(f.default, bool):
            parser.add_argument(flag(name), dest=name, action="store_const", const=not f.default, help=text)
            continue
        shown = f" (default {f.default})" if f.default is not None and name != "model" else ""
        kwargs = dict(dest=name, help=(text + shown + (f"; in {meta['bounds']}" if meta["bounds"] else ""))
                      .replace("%", "%%"))
        if meta["choices"] or (name == "model" and model_choices):
            kwargs["choices"] = meta["choices"] or model_choices
        elif meta["bounds"] is not None:
            kwargs["type"] = _typed(name, int if isinstance(f.default, int) else float)
        else:
            kwargs["type"] = _typed(name, str)
        parser.add_argument(flag(name), **kwargs)
