"""Example PyTorch models: the CIFAR-10 ResNets of Idelbayev's checkpoints as ``nn.Module`` s.

:func:`cifar_resnet` builds ``resnet20/32/44/56`` ("option A": zero-padding subsample
shortcuts), the same network :func:`xbarsolve.cnn.load_torch_resnet` reads into the NumPy
engine, with the same layer names, so that the two engines can be compared layer by
layer.  :func:`load_cifar_resnet` loads a checkpoint (keys prefixed ``module.``).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "CifarResNet", "cifar_resnet", "load_cifar_resnet"]


class _ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad ``pad`` channels on each side."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3 - BN - ReLU - conv3x3 - BN, plus the shortcut, ReLU."""

    def __init__(self, planes_in: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(planes_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _ShortcutA(planes // 4) if stride != 1 or planes_in != planes else nn.Identity()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR-10 ResNet with ``n`` basic blocks per stage (depth ``6 n + 2``); NCHW inputs
    normalized per channel."""

    def __init__(self, n: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes_in = 16
        for s, planes in enumerate((16, 32, 64), start=1):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(planes_in, planes, 2 if (s > 1 and b == 0) else 1))
                planes_in = planes
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def cifar_resnet(depth: int = 20) -> CifarResNet:
    """An untrained CIFAR ResNet of ``depth`` (20, 32, 44, 56, ...: ``6 n + 2``)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6 n + 2 with n >= 1 (20, 32, 44, 56); got {depth!r}")
    return CifarResNet((depth - 2) // 6)


def load_cifar_resnet(path: str | os.PathLike, depth: int = 20) -> CifarResNet:
    """A CIFAR ResNet with the weights of an Idelbayev checkpoint (``state_dict`` keys
    prefixed ``module.``), in eval mode.  Loads with ``weights_only=True``."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    sd = ckpt.get("state_dict", ckpt)
    model = cifar_resnet(depth)
    model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    return model.eval()
