"""The filter atlas: written and read back, ignored when it is not about these weights, faces or layer, or
when it is not a plain array file; the Filters page uses it and falls back to live computation without it."""
import numpy as np
import pytest
import torch

from fer_models.explain.atlas import (
    LAYER_PATTERNS,
    build_atlas,
    checkpoint_hash,
    load_atlas,
    make_for_run,
    save_atlas,
)
from fer_models.explain.features import Ranking, filter_responses, maximise_filters
from fer_models.runs.checkpoints import load_model, save_model
from helpers import bundled_faces, bundled_ids, make_evaluated_run


@pytest.fixture
def run(tmp_path):
    return make_evaluated_run(tmp_path / "runs", "small")


def small_atlas(run, n=40, patterns=3):
    model, meta = load_model(run)
    atlases = build_atlas(model, meta, bundled_faces()[:n], patterns=patterns)
    save_atlas(run, atlases, bundled_ids()[:n])
    return atlases


def test_an_atlas_is_written_and_read_back(run):
    made = small_atlas(run)
    model, meta = load_model(run)
    assert list(made) == ["block3.conv", "block1.conv", "block2.conv"]  # the page's first layer first
    back = load_atlas(run, "block3.conv", bundled_ids()[:40])
    assert back is not None and back.layer == "block3.conv" and back.ranking.top.shape == (512, 9)
    live = Ranking.of(filter_responses(model, "block3.conv", bundled_faces()[:40], **meta["normalisation"]))
    assert np.allclose(back.ranking.mean, live.mean, rtol=1e-3, atol=1e-3)
    assert (back.ranking.top[:, 0] == live.top[:, 0]).mean() > 0.95  # the peaks are kept as float16: ties may swap
    assert np.allclose(back.ranking.peak, live.peak, rtol=2e-3, atol=2e-3)
    assert back.filters.tolist() == made["block3.conv"].filters.tolist() and len(back.filters) == 3
    assert np.array_equal(back.patterns, made["block3.conv"].patterns)
    # the highest mean responses got the patterns, and each is what the page would synthesise
    assert back.filters.tolist() == live.most_active()[:3]
    first = back.pattern(int(back.filters[0]))
    assert first.activation > first.start_activation and back.pattern(-5) is None


def test_every_other_layer_has_its_ranking_and_the_patterns_the_page_shows_first(run):
    small_atlas(run)
    model, meta = load_model(run)
    middle = load_atlas(run, "block2.conv", bundled_ids()[:40])
    live = Ranking.of(filter_responses(model, "block2.conv", bundled_faces()[:40], **meta["normalisation"]))
    assert middle.filters.tolist() == live.most_active()[:LAYER_PATTERNS] and LAYER_PATTERNS == 8
    synthesised = maximise_filters(model, "block2.conv", middle.filters.tolist(), meta)
    for made in synthesised:  # the page's own pattern, up to the batch's float rounding
        assert np.abs(middle.pattern(made.channel).image.astype(int) - made.image).mean() < 3
    first = load_atlas(run, "block1.conv", bundled_ids()[:40])  # reads the face: ranked, its kernels its patterns
    assert first.ranking.top.shape == (64, 9) and len(first.filters) == 0


def test_a_rebuilt_atlas_keeps_the_patterns_it_has(run, monkeypatch, quick_patterns, small_bundle):
    import fer_models.explain.features as features

    make_for_run(run, patterns=3)
    made = []
    real = features.maximise_filters
    monkeypatch.setattr(features, "maximise_filters", lambda *a, **k: made.append(a[2]) or real(*a, **k))
    make_for_run(run, patterns=4)
    assert len(made) == 1 and len(made[0]) == 1  # only block3's fourth pattern was new
    with np.load(small_bundle) as z:
        assert len(load_atlas(run, "block3.conv", z["ids"]).filters) == 4


def test_an_atlas_of_the_first_format_is_read_for_its_layer(run):
    model, meta = load_model(run)
    responses = filter_responses(model, "block3.conv", bundled_faces()[:40], **meta["normalisation"])
    np.savez(run / "atlas.npz", layer=np.array("block3.conv"), checkpoint=np.array(checkpoint_hash(run)),
             ids=np.array(__import__("fer_models.explain.atlas", fromlist=["x"]).ids_hash(bundled_ids()[:40])),
             responses=responses.astype(np.float16), filters=np.array([7]), patterns=np.zeros((1, 48, 48), np.uint8),
             activation=np.ones(1, np.float32), start_activation=np.zeros(1, np.float32))
    old = load_atlas(run, "block3.conv", bundled_ids()[:40])
    assert old is not None and old.pattern(7) is not None and old.ranking.top.shape == (512, 9)
    assert load_atlas(run, "block2.conv", bundled_ids()[:40]) is None


def test_an_atlas_of_other_weights_faces_or_layer_is_ignored(run):
    small_atlas(run)
    ids = bundled_ids()[:40]
    assert load_atlas(run, "block9.conv", ids) is None
    assert load_atlas(run, "block3.conv", bundled_ids()[1:41]) is None
    model, meta = load_model(run)
    with torch.no_grad():
        model.block3.conv.weight.mul_(1.01)
    save_model(run, model, meta)  # retrained, say: the atlas no longer describes these weights
    assert load_atlas(run, "block3.conv", ids) is None
    assert load_atlas(run, "block3.conv", ids, checkpoint=checkpoint_hash(run)) is None


@pytest.mark.parametrize("damage", ["garbage", "pickle", "link", "wrong shape", "face out of range"])
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
        if damage == "wrong shape":
            arrays["patterns"] = arrays["patterns"][:, :10]
        else:  # a top face past the end of the faces would index past them on the page
            arrays["top"][5, 0] = 40
        np.savez(path, **arrays)
    assert load_atlas(run, "block3.conv", bundled_ids()[:40]) is None


def test_the_filters_page_uses_the_atlas_and_works_without_it(run, monkeypatch, quick_patterns, small_bundle):
    from helpers import open_app

    # without an atlas the page computes live (tests/test_app_explain.py); with one it reads it
    monkeypatch.setenv("FER_STUDIO_RUNS", str(run.parent))
    model, meta = load_model(run)
    with np.load(small_bundle) as z:
        atlases = build_atlas(model, meta, z["images"], patterns=16)
        save_atlas(run, atlases, z["ids"])
    atlas = atlases["block3.conv"]
    at = open_app("app_pages/filters.py", run="small", query={"face": "28711"})
    assert any("come from the run's atlas" in c.value for c in at.caption)
    lines = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert len(lines) == 8 and all("Its 9 top faces" in line for line in lines)
    for line in lines:  # a stored pattern is shown with its stored activations
        channel = int(line.split("**#")[1].split("**")[0])
        stored = atlas.pattern(channel)
        if stored is not None:
            assert f"mean activation {stored.activation:.2f} on this pattern" in line
    # another layer: its ranking and its eight patterns from the atlas, nothing ranked live, none synthesised
    # (with two stored, a deep densenet201_fer layer took 33 s for the other six)
    import app_pages._filters_view as view
    import fer_models.explain.features as features

    monkeypatch.setattr(view, "filter_responses", lambda *a, **k: pytest.fail("ranked live despite the atlas"))
    made, real = [], features.maximise_filters
    monkeypatch.setattr(features, "maximise_filters", lambda *a, **k: made.extend(a[2]) or real(*a, **k))
    at.selectbox(key="filters_layer_cnn3").set_value("block2.conv").run()
    assert not at.exception, at.exception
    stored = atlases["block2.conv"].filters.tolist()
    lines = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert [int(line.split("**#")[1].split("**")[0]) for line in lines] == stored and len(stored) == 8
    assert made == []
