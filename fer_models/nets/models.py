"""Model registry: one interface for every FER network.

    from fer_models.nets.models import create_model, list_models
    model = create_model("densenet201_fer")          # 1 x 48 x 48 gray in, 7 logits out
    model.gradcam_layer()                            # module whose output Grad-CAM explains
    model.conv_layers()                              # {name: nn.Conv2d} in forward order

Every model takes the gray face as ONE channel (N x 1 x 48 x 48, normalised with the dataset
mean/std stored in meta.json); nothing is replicated to three channels.

Captum's guided methods (Guided Backprop, Guided Grad-CAM) act through hooks on `nn.ReLU`
modules, and an in-place ReLU breaks the backward hooks they rely on. So every activation
here is its own `nn.ReLU()` module, never in-place and never `F.relu` in a forward: that is
why densenet201_fer has its own forward instead of torchvision's (which calls
`F.relu(..., inplace=True)`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from fer_models.core.constants import EMOTIONS, IMAGE_SIZE

_REGISTRY: dict[str, Callable[..., "FERModel"]] = {}


@dataclass(frozen=True)
class InputSpec:
    channels: int = 1
    size: int = IMAGE_SIZE


def register(name: str):
    def add(cls):
        cls.arch = name
        _REGISTRY[name] = cls
        return cls
    return add


def list_models() -> list[str]:
    return sorted(_REGISTRY)


_SIZES: dict[str, dict[str, tuple[int, int]]] = {}
_SIZES_LOCK = threading.Lock()


def layer_output_sizes(arch: str) -> dict[str, tuple[int, int]]:
    """Height and width of every module's output for one face, by name. Measured once per architecture on an
    untrained instance of its own (shapes depend on the architecture alone): never on a model sessions share,
    whose forward passes a hook, or a train/eval switch, would reach."""
    with _SIZES_LOCK:
        if arch not in _SIZES:
            probe, sizes = create_model(arch).eval(), {}
            def keep(name):
                return lambda module, args, out: sizes.__setitem__(name, tuple(getattr(out, "shape", ())[2:]))

            hooks = [m.register_forward_hook(keep(n)) for n, m in probe.named_modules() if n]
            spec = probe.input_spec
            with torch.no_grad():
                probe(torch.zeros(1, spec.channels, spec.size, spec.size))
            for h in hooks:
                h.remove()
            _SIZES[arch] = {n: size for n, size in sizes.items() if len(size) == 2}
        return _SIZES[arch]


def create_model(name: str, num_classes: int = len(EMOTIONS)) -> "FERModel":
    if name not in _REGISTRY:
        raise KeyError(f"unknown model '{name}'; registered: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes)


class FERModel(nn.Module):
    arch: str = ""
    input_spec = InputSpec()
    # set by each model: the last activation wider than 1 x 1 whose every cell reaches the class scores and
    # through which the whole input passes (reach.gradcam_layer_by_rule; a test holds every model to it)
    gradcam_layer_name: str = ""

    def gradcam_layer(self) -> nn.Module:
        return self.get_submodule(self.gradcam_layer_name)

    def conv_layers(self) -> "OrderedDict[str, nn.Conv2d]":
        return OrderedDict((n, m) for n, m in self.named_modules() if isinstance(m, nn.Conv2d))

    def conv_output_sizes(self) -> dict[str, tuple[int, int]]:
        """Each conv layer's output height and width for one face."""
        sizes = layer_output_sizes(self.arch)
        return {n: sizes[n] for n in self.conv_layers() if n in sizes}

    def deepest_filter_layer(self) -> str:
        """The conv layer whose filters to show first: the last one with a spatial kernel whose maps are at
        least 3x3. A 1x1 kernel mixes channels it was given (resnet10_fer's last conv by order is the
        shortcut that projects its last block's input), and a 1x1 map is a flat square with no where in it
        (densenet201_fer's block 4), so both say less about the features the network built."""
        layers, sizes = self.conv_layers(), self.conv_output_sizes()
        spatial = [n for n, m in layers.items() if max(m.kernel_size) > 1 and min(sizes.get(n, (0, 0))) >= 3]
        return (spatial or list(layers))[-1]

    def sees_the_image(self, layer: str) -> bool:
        """Whether a conv layer reads the input face itself: its kernels are then pictures of what it detects."""
        return self.conv_layers()[layer].in_channels == self.input_spec.channels and layer == next(
            iter(self.conv_layers()))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        bn=nn.BatchNorm2d(cout),
        relu=nn.ReLU(),
        pool=nn.MaxPool2d(2),
    ))


@register("cnn3")
class CNN3(FERModel):
    """The seed's simple CNN: three conv-BN-ReLU-maxpool blocks (64, 128, 512), then a classifier.

    48 -> 24 -> 12 -> 6; the classifier sees the whole 512 x 6 x 6 map (not a global average),
    because where a feature fires on the face (mouth vs brow) is what tells expressions apart.
    """
    gradcam_layer_name = "block3.relu"  # 12 x 12, the finest map that has seen the whole network

    def __init__(self, num_classes: int = 7, dropout: float = 0.5):
        super().__init__()
        self.block1 = _conv_bn_relu(1, 64)
        self.block2 = _conv_bn_relu(64, 128)
        self.block3 = _conv_bn_relu(128, 512)
        self.classifier = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            drop1=nn.Dropout(dropout),
            fc1=nn.Linear(512 * 6 * 6, 256),
            relu=nn.ReLU(),
            drop2=nn.Dropout(dropout),
            fc2=nn.Linear(256, num_classes),
        ))

    def forward(self, x):
        return self.classifier(self.block3(self.block2(self.block1(x))))


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    """Layer k sees the block input and the outputs of all k-1 layers before it (64 + 32k channels in block 1)."""

    def __init__(self, n_layers: int, cin: int, growth: int, bn_size: int):
        super().__init__({f"denselayer{i + 1}": _DenseLayer(cin + i * growth, growth, bn_size)
                          for i in range(n_layers)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(OrderedDict(
            norm=nn.BatchNorm2d(cin), relu=nn.ReLU(), conv=nn.Conv2d(cin, cout, 1, bias=False),
            pool=nn.AvgPool2d(2, stride=2),
        ))


@register("densenet201_fer")
class DenseNet201FER(FERModel):
    """The seed network: DenseNet-201 (growth 32, bn_size 4, blocks 6/12/48/32, compression 0.5)
    with a 1-channel 7x7/2 stem, then an MLP head BN(1920) -> 1024 -> 512 -> 256 -> 7.

    On 48 x 48: stem conv 24 x 24, max-pool 12 x 12, block outputs 12, 6, 3 and 1 pixels wide.
    About 20.7M parameters.
    """
    block_config = (6, 12, 48, 32)
    growth, bn_size, stem_channels = 32, 4, 64
    # Not transition 3 (3 x 3): its 2/2 pool reads only the top-left 2 x 2 cells, so 5 of 9 cells there never
    # reach the scores. Transition 2's 6 x 6 map is the last whose every cell does (tests/test_reach.py).
    gradcam_layer_name = "features.transition2.relu"

    def __init__(self, num_classes: int = 7, dropout: float = 0.3):
        super().__init__()
        layers = OrderedDict(
            conv0=nn.Conv2d(1, self.stem_channels, 7, stride=2, padding=3, bias=False),
            norm0=nn.BatchNorm2d(self.stem_channels),
            relu0=nn.ReLU(),
            pool0=nn.MaxPool2d(3, stride=2, padding=1),
        )
        channels = self.stem_channels
        for i, n_layers in enumerate(self.block_config):
            layers[f"denseblock{i + 1}"] = _DenseBlock(n_layers, channels, self.growth, self.bn_size)
            channels += n_layers * self.growth
            if i < len(self.block_config) - 1:
                layers[f"transition{i + 1}"] = _Transition(channels, channels // 2)
                channels //= 2
        layers["norm5"] = nn.BatchNorm2d(channels)
        layers["relu5"] = nn.ReLU()
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        head, width = OrderedDict(norm=nn.BatchNorm1d(channels)), channels
        for i, out in enumerate((1024, 512, 256)):
            head[f"fc{i + 1}"] = nn.Linear(width, out)
            head[f"relu{i + 1}"] = nn.ReLU()
            head[f"drop{i + 1}"] = nn.Dropout(dropout)
            width = out
        head["fc4"] = nn.Linear(width, num_classes)
        self.head = nn.Sequential(head)
        for m in self.modules():  # torchvision's DenseNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.head(self.flatten(self.pool(self.features(x))))


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with the input added back before the last ReLU (He et al. 2016);
    a strided 1x1 conv-BN reshapes the input where the block halves the map or widens it."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential() if stride == 1 and cin == cout else nn.Sequential(OrderedDict(
            conv=nn.Conv2d(cin, cout, 1, stride=stride, bias=False), bn=nn.BatchNorm2d(cout)))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        return self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))) + self.shortcut(x))


@register("resnet10_fer")
class ResNet10FER(FERModel):
    """The project's model for accuracy per unit of compute at 48 x 48: a 3x3 stem and four residual
    stages (32, 64, 128, 256 channels at 48, 24, 12, 6 pixels), global average pooling, one linear layer.

    Ten weight layers, 1.2M parameters, 142M multiply-adds per face: the cost of cnn3 (133M), which
    spends it on one 128 -> 512 conv and an 18k x 256 dense layer. Here the full-resolution stage keeps
    fine detail (eyelids, mouth corners) and the shortcuts let the gradient reach it. Kept this small
    so that it trains on a 2-core CPU in hours; wider stages cost c² in compute (48 wide: 2.25x).
    """
    widths = (32, 64, 128, 256)
    # The map the pooled classifier reads, so Grad-CAM here is exactly CAM (Zhou et al. 2016); 6 x 6.
    gradcam_layer_name = "stage4.0.relu2"

    def __init__(self, num_classes: int = 7, dropout: float = 0.3):
        super().__init__()
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(1, self.widths[0], 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(self.widths[0]),
            relu=nn.ReLU(),
        ))
        channels = self.widths[0]
        for i, width in enumerate(self.widths):
            setattr(self, f"stage{i + 1}", nn.Sequential(_BasicBlock(channels, width, 1 if i == 0 else 2)))
            channels = width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Sequential(OrderedDict(drop=nn.Dropout(dropout), fc=nn.Linear(channels, num_classes)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stem(x)))))
        return self.head(self.flatten(self.pool(x)))
