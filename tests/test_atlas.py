"""The filter atlas: written and read back, ignored when it is not about these weights, faces or layer, or
when it is not a plain array file; the Filters page uses it and falls back to live computation without it."""
import numpy as np
import pytest
import torch

from fer_models.explain.atlas import build_atlas, checkpoint_hash, load_atlas, save_atlas
from fer_models.runs.checkpoints import load_model, save_model
from helpers import bundled_faces, bundled_ids, make_evaluated_run


@pytest.fixture
def run(tmp_path):
    return make_evaluated_run(tmp_path / "runs", "small")


def small_atlas(run, n=40, patterns=3):
    model, meta = load_model(run)
    atlas = build_atlas(model, meta, bundled_faces()[:n], patterns=patterns)
    save_atlas(run, atlas, bundled_ids()[:n])
    return atlas


def test_an_atlas_is_written_and_read_back(run):
    made = small_atlas(run)
    back = load_atlas(run, "block3.conv", bundled_ids()[:40])
    assert back is not None and back.layer == "block3.conv" and back.responses.shape == (40, 512)
    assert np.allclose(back.responses, made.responses, rtol=1e-3, atol=1e-3)  # stored as float16
    assert back.filters.tolist() == made.filters.tolist() and len(back.filters) == 3
    assert np.array_equal(back.patterns, made.patterns)
    # the highest mean responses got the patterns, and each is what the page would synthesise
    assert back.filters.tolist() == np.argsort(-made.responses.mean(0), kind="stable")[:3].tolist()
    first = back.pattern(int(back.filters[0]))
    assert first.activation > first.start_activation and back.pattern(-5) is None


def test_an_atlas_of_other_weights_faces_or_layer_is_ignored(run):
    small_atlas(run)
    ids = bundled_ids()[:40]
    assert load_atlas(run, "block2.conv", ids) is None
    assert load_atlas(run, "block3.conv", bundled_ids()[1:41]) is None
    model, meta = load_model(run)
    with torch.no_grad():
        model.block3.conv.weight.mul_(1.01)
    save_model(run, model, meta)  # retrained, say: the atlas no longer describes these weights
    assert load_atlas(run, "block3.conv", ids) is None
    assert load_atlas(run, "block3.conv", ids, checkpoint=checkpoint_hash(run)) is None


@pytest.mark.parametrize("damage", ["garbage", "pickle", "link", "wrong shape"])
def test_a_bad_atlas_is_treated_as_absent(run, tmp_path, damage):
    small_atlas(run)
    path = run / "atlas.npz"
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip at all")
    elif damage == "pickle":  # object arrays need pickle, which is never allowed: nothing is unpickled
        np.savez(path, layer=np.array("block3.conv"), checkpoint=np.array(checkpoint_hash(run)),
                 ids=np.array(["x"], dtype=object), responses=np.zeros((40, 512)), filters=np.zeros(0, int),
                 patterns=np.zeros((0, 48, 48), np.uint8), activation=np.zeros(0), start_activation=np.zeros(0))
    elif damage == "link":
        elsewhere = tmp_path / "elsewhere.npz"
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
    else:
        with np.load(path) as z:
            arrays = dict(z)
        arrays["patterns"] = arrays["patterns"][:, :10]
        np.savez(path, **arrays)
    assert load_atlas(run, "block3.conv", bundled_ids()[:40]) is None


def test_the_filters_page_uses_the_atlas_and_works_without_it(run, monkeypatch):
    from helpers import open_app

    # without an atlas the page computes live (tests/test_app_explain.py); with one it reads it
    monkeypatch.setenv("FER_STUDIO_RUNS", str(run.parent))
    model, meta = load_model(run)
    atlas = build_atlas(model, meta, bundled_faces(), patterns=16)
    save_atlas(run, atlas, bundled_ids())
    at = open_app("app_pages/filters.py", run="small", query={"face": "28711"})
    assert any("come from the run's atlas" in c.value for c in at.caption)
    lines = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert len(lines) == 8 and all("Its 9 top faces" in line for line in lines)
    for line in lines:  # a stored pattern is shown with its stored activations
        channel = int(line.split("**#")[1].split("**")[0])
        stored = atlas.pattern(channel)
        if stored is not None:
            assert f"mean activation {stored.activation:.2f} on this pattern" in line
