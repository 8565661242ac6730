"""DeepLab-V1 LargeFOV on a dilated backbone (output stride 8, or 4 for the tiny one).

Head: a dilated 3x3 convolution (dilation 12 = the large field of view), ReLU,
dropout, then a 1x1 convolution to class scores. The reference's ResNet-38
segmentation net (seg/network/resnet38_seg.py) has no dropout and a second
dilated 3x3 convolution as its classifier, both xavier-uniform initialised:
``classifier_kernel=3, dropout=0, head_init='xavier_uniform'``.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import create_backbone

HEAD_INITS = ("kaiming_normal", "xavier_uniform")


class DeepLabLargeFOV(nn.Module):
    def __init__(
        self,
        num_labels: int,
        *,
        backbone: str,
        pretrained: str | os.PathLike | None,
        head_channels: int,
        dilation: int,
        dropout: float,
        classifier_kernel: int,
        head_init: str,
    ) -> None:
        """``num_labels`` = background + classes; the rest are the config's ``deeplab`` keys of the same names."""
        super().__init__()
        if classifier_kernel not in (1, 3):
            raise ValueError(f"deeplab.classifier_kernel must be 1 or 3, got {classifier_kernel!r}")
        if head_init not in HEAD_INITS:
            raise ValueError(f"deeplab.head_init must be one of {HEAD_INITS}, got {head_init!r}")
        self.num_labels = num_labels
        self.backbone_name = backbone
        self.backbone = create_backbone(backbone, pretrained)
        self.output_stride = self.backbone.output_stride
        classifier_padding = dilation if classifier_kernel == 3 else 0
        self.head = nn.Sequential(
            nn.Conv2d(self.backbone.channels[-1], head_channels, 3, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
            # no module at all without dropout (the reference has none): nothing to draw random numbers
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(head_channels, num_labels, classifier_kernel, padding=classifier_padding,
                      dilation=dilation if classifier_kernel == 3 else 1),
        )
        for layer in self.head:
            if isinstance(layer, nn.Conv2d):
                if head_init == "xavier_uniform":  # the reference: weights only, PyTorch's default bias
                    nn.init.xavier_uniform_(layer.weight)
                else:
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    nn.init.zeros_(layer.bias)

    def architecture(self) -> dict:
        return {
            "num_labels": self.num_labels, "backbone": self.backbone_name,
            "head_channels": self.head[0].out_channels, "dilation": self.head[0].dilation[0],
            "classifier_kernel": self.head[3].kernel_size[0],
        }

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores [B, L, h, w] at the output stride (what the reference's net returns)."""
        return self.head(self.backbone(images)[-1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores [B, L, H, W] at the input resolution (bilinear from the output stride)."""
        return F.interpolate(self.logits(images), size=images.shape[-2:], mode="bilinear", align_corners=False)
