
import pytest
import torch
import torch.nn as nn

from fer_models.nets.models import FERModel, create_model, list_models


@pytest.fixture(scope="module", params=list_models())
def model(request):
    torch.manual_seed(0)
    return create_model(request.param)


def test_registry_has_the_seed_networks():
    assert {"cnn3", "densenet201_fer"} <= set(list_models())
    with pytest.raises(KeyError, match="unknown model 'vgg99'.*cnn3"):
        create_model("vgg99")


def test_forward_shape_and_finite_output(model):
    x = torch.randn(3, model.input_spec.channels, model.input_spec.size, model.input_spec.size)
    model.eval()
    y = model(x)
    assert y.shape == (3, 7) and torch.isfinite(y).all()


def test_every_parameter_receives_a_gradient(model):
    model.train()
    model.zero_grad()
    x = torch.randn(4, 1, 48, 48)
    model(x).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    assert not missing


def test_interface(model):
    assert isinstance(model, FERModel) and model.arch in list_models()
    convs = model.conv_layers()
    assert convs and all(isinstance(m, nn.Conv2d) for m in convs.values())
    maps = {}
    hook = model.gradcam_layer().register_forward_hook(lambda m, i, o: maps.setdefault("out", o))
    model.eval()(torch.randn(1, 1, 48, 48))
    hook.remove()
    assert maps["out"].ndim == 4 and maps["out"].shape[-1] > 1  # a spatial map to explain


def test_no_inplace_or_shared_relu_for_captum(model):
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(m.inplace for m in relus)
    assert len({id(m) for m in relus}) == len(relus)


def test_guided_backprop_runs(model):
    # Captum's guided methods hook nn.ReLU modules; an in-place or functional ReLU would break or bypass them
    from captum.attr import GuidedBackprop
    model.eval()
    x = torch.randn(1, 1, 48, 48, requires_grad=True)
    attribution = GuidedBackprop(model).attribute(x, target=3)
    assert attribution.shape == x.shape and torch.isfinite(attribution).all() and attribution.abs().sum() > 0


def test_densenet201_fer_layout():
    m = create_model("densenet201_fer")
    assert 20.6e6 < m.num_parameters() < 20.8e6
    assert m.num_parameters() == 20_715_527
    shapes = {}
    for name in ("conv0", "pool0", "denseblock1", "transition1", "denseblock2", "transition2",
                 "denseblock3", "transition3", "denseblock4"):
        m.features.get_submodule(name).register_forward_hook(
            lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:])))
    m.eval()(torch.randn(1, 1, 48, 48))
    assert shapes == {"conv0": (64, 24, 24), "pool0": (64, 12, 12), "denseblock1": (256, 12, 12),
                      "transition1": (128, 6, 6), "denseblock2": (512, 6, 6), "transition2": (256, 3, 3),
                      "denseblock3": (1792, 3, 3), "transition3": (896, 1, 1), "denseblock4": (1920, 1, 1)}
    assert [len(b) for b in (m.features.denseblock1, m.features.denseblock2, m.features.denseblock3,
                             m.features.denseblock4)] == [6, 12, 48, 32]
    # dense connections: layer k of block 1 sees 64 + 32 (k - 1) channels
    assert [layer.conv1.in_channels for layer in m.features.denseblock1.values()] == [64 + 32 * k for k in range(6)]
    widths = [layer.out_features for layer in m.head if isinstance(layer, nn.Linear)]
    assert widths == [1024, 512, 256, 7] and isinstance(m.head[0], nn.BatchNorm1d)


def test_cnn3_layout():
    m = create_model("cnn3")
    assert [c.out_channels for c in m.conv_layers().values()] == [64, 128, 512]


def test_block_diagram_follows_the_model():
    from fer_models.nets.architecture import (
        block_chain_html,
        block_diagram,
        compact_diagram,
        dense_block_dot,
        dense_blocks,
    )
    m = create_model("densenet201_fer")
    stages = {s["name"]: s for s in block_diagram(m)}
    assert stages["features.denseblock1"]["what"] == \
        "dense block: 6 layers, each adds 32 channels (64 + 6·32 = 256)"
    assert stages["features.denseblock3"]["shape"] == (1792, 3, 3)
    assert stages["head"]["shape"] == (7,)
    assert sum(s["parameters"] for s in stages.values()) == m.num_parameters()
    # the stem's four single layers are one box, and so are norm5 … flatten: 10 boxes, not 16
    compact = compact_diagram(m)
    assert len(compact) == 10 and compact[0]["name"] == "features.conv0 … pool0"
    assert compact[0]["what"] == "Conv2d → BatchNorm2d → ReLU → MaxPool2d" and compact[0]["shape"] == (64, 12, 12)
    assert sum(s["parameters"] for s in compact) == m.num_parameters()
    chain = block_chain_html(m)
    assert "256×12×12" in chain and "48 layers, each adds 32 channels" in chain and "font-size:15px" in chain
    blocks = dense_blocks(m)
    assert [len(b) for b in blocks.values()] == [6, 12, 48, 32]
    one = dense_block_dot(blocks["features.denseblock1"], head=6)
    assert one.count("-> x") == 6 * 7 // 2  # every layer fed by the input and all earlier layers
    assert "in 64 + 32·5 = 224" in one and "64 + 6·32 = 256 channels" in one
    three = dense_block_dot(blocks["features.denseblock3"])
    assert "layers 4 … 47: each reads all earlier outputs" in three and "layer 48: in 256 + 32·47 = 1760" in three
    assert three.count("label=") == 7 and "fontsize=14" in three  # input, 3 layers, the rest, layer 48, concat
    assert dense_blocks(create_model("cnn3")) == {}


def test_resnet10_fer_layout():
    from fer_models.nets.architecture import block_diagram
    m = create_model("resnet10_fer")
    assert m.num_parameters() == 1_227_623
    stages = {s["name"]: s for s in block_diagram(m)}
    assert [stages[f"stage{i}"]["shape"] for i in range(1, 5)] == [(32, 48, 48), (64, 24, 24), (128, 12, 12),
                                                                    (256, 6, 6)]
    assert stages["stage3"]["what"] == "BasicBlock ×1" and stages["head"]["shape"] == (7,)
    # the first stage keeps its width and size, so its shortcut is the identity; the others project
    assert len(m.stage1[0].shortcut) == 0 and all(len(getattr(m, f"stage{i}")[0].shortcut) == 2 for i in (2, 3, 4))
    hook_out = {}
    m.gradcam_layer().register_forward_hook(lambda mod, i, o: hook_out.setdefault("map", o))
    m.eval()(torch.randn(1, 1, 48, 48))
    assert hook_out["map"].shape == (1, 256, 6, 6)  # the map the pooled classifier reads: Grad-CAM = CAM


def test_filters_open_on_the_deepest_spatial_conv():
    # by module order resnet10_fer's last conv is stage4's 1x1 shortcut, not its deepest 3x3 conv
    assert list(create_model("resnet10_fer").conv_layers())[-1] == "stage4.0.shortcut.conv"
    assert create_model("resnet10_fer").deepest_filter_layer() == "stage4.0.conv2"
    assert create_model("cnn3").deepest_filter_layer() == "block3.conv"
    dense = create_model("densenet201_fer")
    # block 4 runs at 1x1: its maps would be flat squares, so the page opens on block 3's last 3x3 conv
    assert dense.deepest_filter_layer() == "features.denseblock3.denselayer48.conv2"
    assert dense.conv_output_sizes()["features.denseblock4.denselayer32.conv2"] == (1, 1)
    assert [n for n in dense.conv_layers() if dense.sees_the_image(n)] == ["features.conv0"]
    assert create_model("cnn3").sees_the_image("block1.conv") and not create_model("cnn3").sees_the_image("block2.conv")


def test_resnet10_fer_block_adds_its_input():
    # with the residual branch silenced, a block passes its (non-negative, post-ReLU) input through unchanged
    m = create_model("resnet10_fer").eval()
    block = m.stage1[0]
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
        x = torch.relu(torch.randn(2, 32, 48, 48))
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("arch", ["cnn3", "resnet10_fer"])
def test_sizes_and_layers_never_hook_or_switch_a_shared_model(arch, monkeypatch):
    """A model sessions share may be mid forward pass in another thread: a hook on it, or an eval()/train() switch,
    would reach that pass. Its sizes come from an instance of the architecture's own."""

    from fer_models.explain.attributions import gradcam_map_size

    shared = create_model(arch).train()

    def refuse(module, hook, *a, **k):
        if any(module is m for m in shared.modules()):
            raise AssertionError(f"a hook on the shared model's {type(module).__name__}")
        return real(module, hook, *a, **k)

    real = nn.Module.register_forward_hook
    monkeypatch.setattr(nn.Module, "register_forward_hook", refuse)
    assert gradcam_map_size(shared) and shared.deepest_filter_layer() in shared.conv_output_sizes()
    assert shared.training and not shared.__dict__.keys() & {"_gradcam_size", "_deepest_filter_layer"}
