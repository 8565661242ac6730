"""DeepLab on a dilated backbone (output stride 8, or 4 for the tiny one): the V1 LargeFOV head or the V2 ASPP head.

``largefov`` (DeepLab-V1, the MCTformer paper's): a dilated 3x3 convolution
(dilation 12 = the large field of view), ReLU, dropout, then a 1x1 convolution
to class scores. The reference's ResNet-38 segmentation net
(seg/network/resnet38_seg.py) has no dropout and a second dilated 3x3
convolution as its classifier, both xavier-uniform initialised:
``classifier_kernel=3, dropout=0, head_init='xavier_uniform'``.

``aspp`` (DeepLab-V2, what IRN and later papers pair with ResNet-101): four
parallel 3x3 convolutions straight to class scores, dilated 6, 12, 18, 24 for
~321-500 px crops (``aspp_dilations``), their outputs summed. It reads none of
LargeFOV's head_channels, dilation, dropout or classifier_kernel.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import create_backbone

HEAD_INITS = ("kaiming_normal", "xavier_uniform")
HEADS = ("largefov", "aspp")


class ASPPClassifier(nn.Module):
    """DeepLab-V2's ASPP-S classifier: one dilated 3x3 convolution to class scores per rate, summed."""

    def __init__(self, in_channels: int, num_labels: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_labels, 3, padding=rate, dilation=rate) for rate in dilations)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scores = self.branches[0](features)
        for branch in self.branches[1:]:
            scores = scores + branch(features)
        return scores


class DeepLab(nn.Module):
    def __init__(
        self,
        num_labels: int,
        *,
        backbone: str,
        pretrained: str | os.PathLike | None,
        head: str,
        aspp_dilations: list[int] | tuple[int, ...],
        head_channels: int,
        dilation: int,
        dropout: float,
        classifier_kernel: int,
        head_init: str,
    ) -> None:
        """``num_labels`` = background + classes; the rest are the config's ``deeplab`` keys of the same names."""
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"deeplab.head must be one of {HEADS}, got {head!r}")
        if head == "aspp" and (not aspp_dilations or any(int(rate) < 1 for rate in aspp_dilations)):
            raise ValueError(f"deeplab.aspp_dilations must be a non-empty list of positive rates, got {aspp_dilations!r}")
        if classifier_kernel not in (1, 3):
            raise ValueError(f"deeplab.classifier_kernel must be 1 or 3, got {classifier_kernel!r}")
        if head_init not in HEAD_INITS:
            raise ValueError(f"deeplab.head_init must be one of {HEAD_INITS}, got {head_init!r}")
        self.num_labels = num_labels
        self.backbone_name = backbone
        self.backbone = create_backbone(backbone, pretrained)
        self.output_stride = self.backbone.output_stride
        self.head_kind = head
        if head == "aspp":
            self.head = ASPPClassifier(self.backbone.channels[-1], num_labels, tuple(int(rate) for rate in aspp_dilations))
            self._init_head(head_init)
            return
        classifier_padding = dilation if classifier_kernel == 3 else 0
        self.head = nn.Sequential(
            nn.Conv2d(self.backbone.channels[-1], head_channels, 3, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
            # no module at all without dropout (the reference has none): nothing to draw random numbers
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(head_channels, num_labels, classifier_kernel, padding=classifier_padding,
                      dilation=dilation if classifier_kernel == 3 else 1),
        )
        self._init_head(head_init)

    def _init_head(self, head_init: str) -> None:
        for layer in self.head.modules():
            if isinstance(layer, nn.Conv2d):
                if head_init == "xavier_uniform":  # the reference: weights only, PyTorch's default bias
                    nn.init.xavier_uniform_(layer.weight)
                else:
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    nn.init.zeros_(layer.bias)

    def architecture(self) -> dict:
        """What rebuilds the network's shape: the checkpoint records it, load_deeplab compares it."""
        if self.head_kind == "aspp":
            dilations = [branch.dilation[0] for branch in self.head.branches]
            return {"num_labels": self.num_labels, "backbone": self.backbone_name, "head": "aspp", "aspp_dilations": dilations}
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


# The class's name before the ASPP head existed (the LargeFOV head is still the default).
DeepLabLargeFOV = DeepLab
