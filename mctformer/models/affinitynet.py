"""AffinityNet (Ahn & Kwak, CVPR 2018): a backbone plus a multi-level feature head.

Each of the backbone's last three levels goes through a 1x1 convolution and
ELU (64, 128, 256 channels for the reference's 448-dim features; 1:2:4 of any
other feature dim), the concatenation through a final 1x1 convolution and ELU;
pair affinities are exp(-mean |f_i - f_j|) of these features. A smaller
feature dim keeps the pairwise differences affordable on a CPU.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import create_backbone

# Shares of the feature dim per level: 64 / 128 / 256 of 448 in the reference.
LEVEL_SHARES = (1, 2, 4)


class AffinityNet(nn.Module):
    def __init__(self, *, backbone: str, pretrained: str | os.PathLike | None, feature_dim: int) -> None:
        """The config's affinity.backbone, affinity.pretrained (None: no weights) and affinity.feature_dim."""
        super().__init__()
        self.backbone_name = backbone
        self.backbone = create_backbone(backbone, pretrained)
        self.output_stride = self.backbone.output_stride
        widths = [max(1, feature_dim * share // sum(LEVEL_SHARES)) for share in LEVEL_SHARES]
        self.level_heads = nn.ModuleList(
            nn.Conv2d(channels, width, 1, bias=False) for channels, width in zip(self.backbone.channels, widths)
        )
        self.fuse = nn.Conv2d(sum(widths), feature_dim, 1, bias=False)
        for layer in [*self.level_heads, self.fuse]:
            nn.init.kaiming_normal_(layer.weight)

    def architecture(self) -> dict:
        return {"backbone": self.backbone_name, "feature_dim": self.fuse.out_channels, "output_stride": self.output_stride}

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.level_heads.parameters(), *self.fuse.parameters()]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features [B, D, H / stride, W / stride]."""
        levels = self.backbone(images)
        size = levels[0].shape[-2:]
        projected = [
            F.elu(head(F.interpolate(level, size=size, mode="bilinear", align_corners=False) if level.shape[-2:] != size else level))
            for head, level in zip(self.level_heads, levels)
        ]
        return F.elu(self.fuse(torch.cat(projected, dim=1)))
