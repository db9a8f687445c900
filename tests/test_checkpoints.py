import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from fer_models.nets.models import create_model
from fer_models.runs.checkpoints import (
    CheckpointError,
    load_model,
    load_training_state,
    read_weights,
    save_model,
    save_training_state,
)

META = {"classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
        "normalisation": {"mean": 0.5, "std": 0.25}}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("cnn3").eval()
    with torch.no_grad():  # non-trivial BN statistics, so the round trip checks buffers too
        model.block1.bn.running_mean.uniform_(-1, 1)
        model.block1.bn.running_var.uniform_(0.5, 2)
    save_model(tmp_path, model, META)
    return tmp_path, model


def test_round_trip_is_exact(saved):
    run, model = saved
    loaded, meta = load_model(run)
    assert meta["arch"] == "cnn3" and meta["params"] == model.num_parameters()
    assert meta["normalisation"] == META["normalisation"] and meta["input"] == {"channels": 1, "size": 48}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 1, 48, 48)
    assert torch.equal(model(x), loaded(x)) and not loaded.training


def test_half_storage_loads_as_fp32_and_is_close(tmp_path):
    torch.manual_seed(0)
    model = create_model("cnn3").eval()
    save_model(tmp_path, model, META, half=True)
    full = tmp_path / "full"
    save_model(full, model, META)
    assert (tmp_path / "model.safetensors").stat().st_size < 0.6 * (full / "model.safetensors").stat().st_size
    loaded, meta = load_model(tmp_path)
    assert meta["weights_dtype"] == "float16"
    assert all(v.dtype in (torch.float32, torch.int64) for v in loaded.state_dict().values())
    x = torch.randn(4, 1, 48, 48)
    assert torch.allclose(model(x).softmax(1), loaded(x).softmax(1), atol=2e-3)


def test_truncated_file(saved):
    run, _ = saved
    path = run / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="model.safetensors: corrupt or truncated"):
        load_model(run)


def test_garbage_file(saved):
    run, _ = saved
    (run / "model.safetensors").write_bytes(b"hello, this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(run)


@pytest.mark.parametrize("maker", ["torch.save", "pickle"])
def test_pickle_is_refused_and_never_unpickled(tmp_path, maker):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.pt"
    if maker == "torch.save":
        torch.save({"weights": torch.zeros(2), "evil": Evil()}, path)
    else:
        path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="pickled PyTorch file.*loads only .safetensors"):
        load_model(path, arch="cnn3")
    assert not marker.exists()


@pytest.mark.parametrize("length", [128, 0x4B50])  # first byte 0x80, first two bytes "PK": a pickle's marks
def test_a_safetensors_header_whose_length_looks_like_a_pickle_is_read(tmp_path, length):
    """Seen in CI: a run's last.safetensors whose header happened to be 128 bytes long (its length's first
    byte 0x80) was refused as a pickle, and the run could not be resumed."""
    import struct

    from fer_models.runs.checkpoints import checked_header
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "last.safetensors"
    path.write_bytes(struct.pack("<Q", length) + header.ljust(length) + b"\0" * 4)
    assert path.read_bytes()[:1] == b"\x80" or path.read_bytes()[:2] == b"PK"
    assert list(checked_header(path)) == ["w"]


def test_architecture_mismatch_names_the_matching_arch(saved):
    run, _ = saved
    meta = json.loads((run / "meta.json").read_text())
    meta["arch"] = "densenet201_fer"
    (run / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit architecture densenet201_fer.*match cnn3"):
        load_model(run)


def test_missing_keys(saved):
    run, model = saved
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.fc2")}
    save_file(state, run / "model.safetensors")
    with pytest.raises(CheckpointError, match="2 missing keys \\(e.g. classifier.fc2"):
        load_model(run)


def test_wrong_shape(saved):
    run, model = saved
    state = dict(model.state_dict())
    state["classifier.fc2.weight"] = torch.zeros(5, 256)
    save_file(state, run / "model.safetensors")
    with pytest.raises(CheckpointError, match="classifier.fc2.weight has shape \\(5, 256\\)"):
        load_model(run)


def test_meta_problems(saved):
    run, _ = saved
    (run / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="meta.json: not valid JSON"):
        load_model(run)
    (run / "meta.json").write_text(json.dumps({"arch": "resnet999"}))
    with pytest.raises(CheckpointError, match="'resnet999' is not registered"):
        load_model(run)
    (run / "meta.json").unlink()
    with pytest.raises(CheckpointError, match="meta.json: missing"):
        load_model(run)
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(run / "nothing")


def test_bare_weights_with_arch(saved):
    run, model = saved
    loaded, meta = load_model(run / "model.safetensors", arch="cnn3")
    assert meta == {"arch": "cnn3"}
    assert torch.equal(loaded.state_dict()["block1.conv.weight"], model.state_dict()["block1.conv.weight"])
    assert read_weights(run / "model.safetensors").keys() == model.state_dict().keys()


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_training_state_round_trip(tmp_path, opt_name):
    torch.manual_seed(0)
    model, ema = create_model("cnn3"), create_model("cnn3")
    opt_cls = torch.optim.SGD if opt_name == "sgd" else torch.optim.AdamW
    kwargs = {"momentum": 0.9, "nesterov": True} if opt_name == "sgd" else {}
    optimizer = opt_cls(model.parameters(), lr=0.01, **kwargs)
    model(torch.randn(4, 1, 48, 48)).sum().backward()
    optimizer.step()
    info = {"epoch": 3, "step": 7, "history": [{"epoch": 1, "val_acc": 0.5}]}
    save_training_state(tmp_path / "last.safetensors", model, optimizer, info, ema)
    model2, ema2 = create_model("cnn3"), create_model("cnn3")
    optimizer2 = opt_cls(model2.parameters(), lr=0.5, **kwargs)
    assert load_training_state(tmp_path / "last.safetensors", model2, optimizer2, ema2) == info
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = optimizer.state_dict(), optimizer2.state_dict()
    assert s1["param_groups"][0]["lr"] == s2["param_groups"][0]["lr"] == 0.01
    for k in s1["state"]:
        for name, v in s1["state"][k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][k][name])), name
    (tmp_path / "last.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="unreadable training state"):
        load_training_state(tmp_path / "last.safetensors", model2, optimizer2)
