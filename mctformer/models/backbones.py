"""Dense-prediction backbones shared by AffinityNet and DeepLab.

Each returns a list of feature maps, all at the same output stride (the
deeper ones dilated instead of downsampled), shallow to deep.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyDilatedBackbone(nn.Module):
    """From scratch, for the embedded default: output stride 4, three levels (48, 64, 96 channels)."""

    output_stride = 4

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        # Downsample first: full-resolution convolutions would dominate the cost on a CPU.
        self.stem = nn.Sequential(conv_bn_relu(3, 2 * width, stride=2), conv_bn_relu(2 * width, 2 * width, stride=2))
        self.level1 = conv_bn_relu(2 * width, 3 * width)
        self.level2 = nn.Sequential(conv_bn_relu(3 * width, 4 * width, dilation=2), conv_bn_relu(4 * width, 4 * width, dilation=2))
        self.level3 = nn.Sequential(conv_bn_relu(4 * width, 6 * width, dilation=4), conv_bn_relu(6 * width, 6 * width, dilation=4))
        self.channels = [3 * width, 4 * width, 6 * width]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        first = self.level1(self.stem(images))
        second = self.level2(first)
        return [first, second, self.level3(second)]


class TimmBackbone(nn.Module):
    """A timm CNN via ``features_only`` at output stride 8 (dilated last stages), its last three levels."""

    output_stride = 8

    def __init__(self, name: str, pretrained: str | os.PathLike | None = None) -> None:
        super().__init__()
        import timm

        kwargs = {}
        if pretrained:
            if not os.path.isfile(pretrained):
                raise FileNotFoundError(f"backbone weights {pretrained} not found (a timm checkpoint for {name})")
            kwargs = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(pretrained)}}
        self.body = timm.create_model(name, features_only=True, output_stride=8, out_indices=(-3, -2, -1), **kwargs)
        self.channels = list(self.body.feature_info.channels())

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(images))


def create_backbone(name: str, pretrained: str | os.PathLike | None = None) -> nn.Module:
    """``tiny`` (from scratch) or any timm CNN name that supports ``output_stride=8`` (resnet50, resnet101, ...)."""
    if name == "tiny":
        if pretrained:
            raise ValueError("the tiny backbone is trained from scratch; it takes no pretrained weights")
        return TinyDilatedBackbone()
    return TimmBackbone(name, pretrained)
