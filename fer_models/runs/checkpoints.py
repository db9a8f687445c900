"""Checkpoints: `model.safetensors` (weights) + `meta.json` (what the weights mean). Loading never unpickles.

    from fer_models.runs.checkpoints import load_model
    model, meta = load_model("artifacts/runs/cnn3")     # a run folder, or a .safetensors file
    meta["normalisation"]  # {"mean": .., "std": ..} to apply to pixels / 255

Pickled PyTorch files (`torch.save`, `.pt`, `.pth`) are refused: unpickling runs whatever code
the file carries. Training state for `--resume` (`last.safetensors`) is safetensors too, with
the optimizer's non-tensor state as JSON in the header.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fer_models.core.files import atomic_replace, atomic_write_json
from fer_models.core.guards import UntrustedFileError, file_kind, regular_file, safetensors_header
from fer_models.nets.models import FERModel, create_model, list_models
from fer_models.runs.folder import LAST_FILE, META_FILE, MODEL_FILE, RunFolder, RunProblem

__all__ = ["LAST_FILE", "META_FILE", "MODEL_FILE", "CheckpointError", "load_model", "read_meta", "save_model"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and what to do."""


def save_model(run_dir, model: FERModel, meta: dict, half: bool = False) -> None:
    """Write model.safetensors and meta.json in run_dir, each atomically.

    half=True stores conv and linear weights as fp16 (half the size); biases and BatchNorm
    statistics stay fp32, where fp16 would lose small running variances.
    """
    run_dir = Path(run_dir)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() and v.ndim > 1 else v for k, v in state.items()}
    meta = {**meta, "arch": model.arch, "params": model.num_parameters(),
            "input": {"channels": model.input_spec.channels, "size": model.input_spec.size},
            "weights_dtype": "float16" if half else "float32"}
    _write(run_dir / MODEL_FILE, state, {"arch": model.arch})
    atomic_write_json(run_dir / META_FILE, meta)


def _write(path: Path, tensors: dict, metadata: dict) -> None:
    """safetensors' save_file, atomically; its I/O errors (a full disk) raised as the OSError they are."""
    try:
        atomic_replace(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    except SafetensorError as err:
        raise OSError(f"{path.name} cannot be written ({str(err).rsplit(': ', 1)[-1]})") from err


def read_meta(run_dir, for_model: bool = False) -> dict:
    """meta.json, validated once here (fer_models.runs.folder says what a usable one holds); for_model: also
    the normalisation that loading the model needs."""
    folder = RunFolder(run_dir)
    try:
        meta = folder.meta(required=True)
        if for_model:
            folder.normalisation(meta)
        return meta
    except RunProblem as err:
        raise CheckpointError(f"{Path(run_dir) / META_FILE}: {str(err).split(META_FILE + ': ', 1)[-1]}") from err


def _refuse_pickle(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(9)
    # a safetensors file opens with its header's length (8 bytes, little-endian), then the header's "{": that
    # length's first byte may be 0x80 or "P" too (a header of 128 bytes), so the pickle's marks count only without
    # the "{" (never at that place in a zip's or a pickle's opening bytes)
    if head[8:9] == b"{":
        return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(
            f"{path}: is a pickled PyTorch file (torch.save). FER Studio loads only .safetensors, because "
            "unpickling runs code stored in the file. If you trust it, export its weights where you made it: "
            "safetensors.torch.save_file(model.state_dict(), 'model.safetensors'), with a meta.json naming the arch.")


def checked_header(path) -> dict[str, dict]:
    """The tensors a .safetensors file declares, checked against the file before any is read (a FIFO, a folder,
    a pickle, a header promising more bytes than the file holds are refused); CheckpointError otherwise."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"{path}: no such file")
    try:
        regular_file(path)
    except UntrustedFileError as err:
        raise CheckpointError(f"{err}; a run folder's {MODEL_FILE} is a file of weights") from None
    _refuse_pickle(path)
    try:
        return safetensors_header(path)
    except UntrustedFileError as err:
        why = str(err).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({why}); re-copy it or retrain the "
                              "run") from None


def read_weights(path, expected: dict[str, tuple] | None = None, arch: str = "") -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file, floating ones as fp32. With `expected` ({name: shape}), the file's
    header must name exactly those tensors with those shapes, checked before any tensor is read."""
    path = Path(path)
    header = checked_header(path)
    if expected is not None:
        _check_fits({k: tuple(v["shape"]) for k, v in header.items()}, expected, path, arch)
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({str(err)[:120]}); "
                              "re-copy it or retrain the run") from err
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _matching_arches(keys: set) -> list[str]:
    return [name for name in list_models() if set(create_model(name).state_dict()) == keys]


def _check_fits(shapes: dict[str, tuple], expected: dict[str, tuple], path, arch: str) -> None:
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    if missing or unexpected:
        guess = _matching_arches(set(shapes))
        hint = f" These weights match {', '.join(guess)}." if guess else ""
        raise CheckpointError(
            f"{path}: weights do not fit architecture {arch}: {len(missing)} missing keys"
            f"{' (e.g. ' + missing[0] + ')' if missing else ''}, {len(unexpected)} unexpected"
            f"{' (e.g. ' + unexpected[0][:80] + ')' if unexpected else ''}.{hint}")
    for k, shape in expected.items():
        if tuple(shapes[k]) != tuple(shape):
            raise CheckpointError(f"{path}: {k} has shape {tuple(shapes[k])} in the file but "
                                  f"{tuple(shape)} in {arch} (another number of classes or widths?)")


def _shapes(model: FERModel) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_weights_into(model: FERModel, state: dict, path) -> None:
    _check_fits({k: tuple(v.shape) for k, v in state.items()}, _shapes(model), path, model.arch)
    model.load_state_dict(state)


def load_model(path, device="cpu", arch: str | None = None) -> tuple[FERModel, dict]:
    """Load a model in eval mode from a run folder, or a .safetensors file with meta.json beside it.

    `arch` names the architecture when there is no meta.json (a bare weights file).
    """
    path = Path(path)
    weights = path / MODEL_FILE if path.is_dir() else path
    if path.exists() and not path.is_dir() and not path.is_file():  # /dev/null once read as /dev/meta.json's
        raise CheckpointError(f"{path}: is {file_kind(path.stat().st_mode)}, not a run folder or a .safetensors "
                              "file; give a run's folder")
    if not weights.exists() and not weights.is_symlink():
        raise CheckpointError(f"{weights}: no such file; a run folder holds {MODEL_FILE} and {META_FILE}")
    from_meta = arch is None
    if from_meta:
        meta = read_meta(weights.parent)
        arch = meta["arch"]
    else:
        meta = {"arch": arch}
    if arch not in list_models():
        raise CheckpointError(f"{weights}: architecture '{str(arch)[:60]}' is not registered; known: "
                              f"{', '.join(list_models())}")
    if from_meta:  # after the registry check, which says more about a foreign file
        read_meta(weights.parent, for_model=True)
    model = create_model(arch, num_classes=len(meta.get("classes", [])) or 7)
    load_weights_into(model, read_weights(weights, _shapes(model), arch), weights)
    return model.to(device).eval(), meta


# ---------------------------------------------------------------- training state for --resume

def save_training_state(path, model: FERModel, optimizer: torch.optim.Optimizer, info: dict,
                        ema: FERModel | None = None) -> None:
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema/{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    opt = optimizer.state_dict()
    for idx, param_state in opt["state"].items():
        for name, value in param_state.items():
            tensors[f"optim/{idx}/{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    header = {"info": info, "param_groups": opt["param_groups"]}
    _write(Path(path), tensors, {"resume": json.dumps(header)})


def load_training_state(path, model: FERModel, optimizer: torch.optim.Optimizer,
                        ema: FERModel | None = None) -> dict:
    from safetensors import safe_open

    path = Path(path)
    way_out = "start the run anew with --restart (same --out, with --data and the settings)"
    try:
        checked_header(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}: unreadable training state; {way_out}") from None
    try:
        with safe_open(path, framework="pt") as f:
            header = json.loads((f.metadata() or {})["resume"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if not isinstance(header, dict) or not isinstance(header.get("info"), dict) \
                or not isinstance(header.get("param_groups"), list):
            raise ValueError("its header lacks the resume info and the optimizer's parameter groups")
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RecursionError) as err:
        raise CheckpointError(f"{path}: unreadable training state ({str(err)[:200]}); {way_out}") from err
    device = next(model.parameters()).device

    def part(prefix):
        return {k[len(prefix):]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}

    load_weights_into(model, part("model/"), path)
    if ema is not None:
        load_weights_into(ema, part("ema/"), path)
    state: dict = {}
    try:
        for k, v in part("optim/").items():
            idx, name = k.split("/", 1)
            # Adam's step counter is kept on the CPU by torch; everything else lives with the parameters
            state.setdefault(int(idx), {})[name] = v.cpu() if name == "step" else v
        optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"{path}: its optimizer state does not fit this run ({err}); {way_out}") from err
    return header["info"]
