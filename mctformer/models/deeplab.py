"""DeepLab-V1 LargeFOV on a dilated backbone (output stride 8, or 4 for the tiny one).

Head, as in the reference's ResNet-38 segmentation net: a dilated 3x3
convolution (dilation 12 = the large field of view), ReLU, dropout, then a
1x1 convolution to class scores.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import create_backbone


class DeepLabLargeFOV(nn.Module):
    def __init__(
        self,
        num_labels: int,
        backbone: str = "tiny",
        pretrained: str | os.PathLike | None = None,
        head_channels: int = 512,
        dilation: int = 12,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.backbone_name = backbone
        self.backbone = create_backbone(backbone, pretrained)
        self.output_stride = self.backbone.output_stride
        self.head = nn.Sequential(
            nn.Conv2d(self.backbone.channels[-1], head_channels, 3, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_channels, num_labels, 1),
        )
        for layer in self.head:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def architecture(self) -> dict:
        return {
            "num_labels": self.num_labels, "backbone": self.backbone_name,
            "head_channels": self.head[0].out_channels, "dilation": self.head[0].dilation[0],
        }

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores [B, L, H, W] at the input resolution (bilinear from the output stride)."""
        logits = self.head(self.backbone(images)[-1])
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
