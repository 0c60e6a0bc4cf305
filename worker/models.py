"""The seven networks a workload can name, each built for any input shape and class count.

The ResNets are torchvision's, adapted to small images the usual way (a 3x3 stride-1 stem and no
max-pool) and to the data's channel count; ``batch_norm: false`` swaps their norm layers for
identities. The small networks use adaptive pooling so 8x8 digits, 28x28 (Fashion-)MNIST and
32x32 CIFAR-10 all fit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock, Bottleneck


def _norm2d(enabled: bool) -> Callable[[int], nn.Module]:
    return nn.BatchNorm2d if enabled else (lambda _channels: nn.Identity())


def mlp(channels: int, size: int, classes: int, batch_norm: bool) -> nn.Module:
    norm = nn.BatchNorm1d if batch_norm else (lambda _features: nn.Identity())
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * size * size, 128),
        norm(128),
        nn.ReLU(),
        nn.Linear(128, 64),
        norm(64),
        nn.ReLU(),
        nn.Linear(64, classes),
    )


def lenet5(channels: int, size: int, classes: int, batch_norm: bool) -> nn.Module:
    norm = _norm2d(batch_norm)
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2),
        norm(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2),
        norm(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(5),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, classes),
    )


def fashion_cnn(channels: int, size: int, classes: int, batch_norm: bool) -> nn.Module:
    norm = _norm2d(batch_norm)
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1),
        norm(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        norm(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, classes),
    )


def _small_image_resnet(
    block: type[BasicBlock | Bottleneck],
    layers: list[int],
    channels: int,
    classes: int,
    batch_norm: bool,
) -> nn.Module:
    model = resnet.ResNet(block, layers, num_classes=classes, norm_layer=_norm2d(batch_norm))
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


BUILDERS: dict[str, Callable[[int, int, int, bool], nn.Module]] = {
    "MLP": mlp,
    "LeNet5": lenet5,
    "FashionMNISTCNN": fashion_cnn,
    "FashionMNISTResNet": lambda c, s, k, bn: _small_image_resnet(
        BasicBlock, [1, 1, 1, 1], c, k, bn
    ),
    "ResNet18": lambda c, s, k, bn: _small_image_resnet(BasicBlock, [2, 2, 2, 2], c, k, bn),
    "ResNet34": lambda c, s, k, bn: _small_image_resnet(BasicBlock, [3, 4, 6, 3], c, k, bn),
    "ResNet50": lambda c, s, k, bn: _small_image_resnet(Bottleneck, [3, 4, 6, 3], c, k, bn),
}


def build_model(
    name: str, channels: int, size: int, classes: int, batch_norm: bool = True
) -> nn.Module:
    """The named network for inputs of shape (channels, size, size)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(BUILDERS)}")
    return BUILDERS[name](channels, size, classes, batch_norm)


def output_shape(model: nn.Module, channels: int, size: int) -> torch.Size:
    model.eval()
    with torch.no_grad():
        return model(torch.zeros(2, channels, size, size)).shape
