"""IRN's class-boundary network (Ahn, Cho & Kwak, CVPR 2019): a backbone's levels fused into one boundary map at stride 4.

Each level goes through a 1x1 convolution to ``edge_channels`` (32 in the authors' ResNet-50 net),
GroupNorm (4 groups) and ReLU, is upsampled to the finest level's size (stride 4), and the
concatenation goes through a 1x1 convolution (with bias) to one boundary logit per cell.

Backbones: ``tiny`` (mctformer.models.backbones, from scratch, three levels all at stride 4) for
the embedded default; a timm CNN (``resnet50``: the authors') as a pyramid of its last four stages
at strides 4, 8, 16, 16 (output stride 16, the last stage dilated, as their strides [2, 2, 2, 1]),
local weights checked as for the other backbones. The authors also tap the stem (stride 4, after
the max pool), which timm's features_only does not expose; their backbone is frozen
(``freeze_backbone``), which a from-scratch one cannot be. The displacement branch (instance
segmentation) is not built.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import TimmBackbone, check_timm_checkpoint, create_backbone
from .weights import announce, missing_weights, resolve_weights

BOUNDARY_STRIDE = 4


class TimmPyramid(TimmBackbone):
    """A timm CNN's stages 1-4 (strides 4, 8, 16, 16 at output stride 16), shallow to deep."""

    output_stride = BOUNDARY_STRIDE  # of the finest level, where the boundary map is

    def __init__(self, name: str, pretrained: str | os.PathLike | None) -> None:
        nn.Module.__init__(self)
        import timm

        kwargs = {}
        if pretrained:
            if not os.path.isfile(pretrained):
                raise missing_weights(pretrained, name, "irn.pretrained")
            check_timm_checkpoint(name, pretrained)
            kwargs = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(pretrained)}}
        self.body = timm.create_model(name, features_only=True, output_stride=16, out_indices=(1, 2, 3, 4), **kwargs)
        self.channels = list(self.body.feature_info.channels())
        if self.body.feature_info.reduction()[0] != BOUNDARY_STRIDE:
            raise ValueError(f"timm's {name} has its first tapped stage at stride {self.body.feature_info.reduction()[0]}, IRN needs 4")
        if pretrained:
            announce(pretrained, f"IRN backbone {name} (timm)")


def create_boundary_backbone(name: str, pretrained: str | os.PathLike | None) -> nn.Module:
    """``tiny`` (from scratch, stride 4) or a timm CNN as :class:`TimmPyramid` (irn.backbone, irn.pretrained)."""
    if name == "tiny":
        return create_backbone("tiny", pretrained)
    if name == "resnet38d":
        raise ValueError("irn.backbone: resnet38d has no stride-4 level for the boundary map; use tiny or a timm CNN (resnet50)")
    # a timm model name or Hugging Face id becomes its file in the local Hugging Face cache
    return TimmPyramid(name, resolve_weights(pretrained, name, "irn.pretrained") if pretrained else None)


class BoundaryNet(nn.Module):
    def __init__(self, *, backbone: str, pretrained: str | os.PathLike | None, edge_channels: int, freeze_backbone: bool) -> None:
        """The config's irn.backbone, irn.pretrained (None: no weights), irn.edge_channels and irn.freeze_backbone."""
        super().__init__()
        if edge_channels % 4:
            raise ValueError(f"irn.edge_channels must be a multiple of 4 (GroupNorm's 4 groups), got {edge_channels}")
        self.backbone_name = backbone
        self.backbone = create_boundary_backbone(backbone, pretrained)
        self.output_stride = self.backbone.output_stride
        if self.output_stride != BOUNDARY_STRIDE:
            raise ValueError(f"irn.backbone {backbone!r} has output stride {self.output_stride}; the boundary map needs {BOUNDARY_STRIDE}")
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for parameter in self.backbone.parameters():
                parameter.requires_grad = False
        self.level_heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, edge_channels, 1, bias=False), nn.GroupNorm(4, edge_channels), nn.ReLU(inplace=True))
            for channels in self.backbone.channels
        )
        self.classifier = nn.Conv2d(edge_channels * len(self.backbone.channels), 1, 1, bias=True)

    def architecture(self) -> dict:
        return {"backbone": self.backbone_name, "edge_channels": self.classifier.in_channels // len(self.level_heads),
                "output_stride": self.output_stride}

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.level_heads.parameters(), *self.classifier.parameters()]

    def train(self, mode: bool = True) -> BoundaryNet:
        super().train(mode)
        if self.freeze_backbone:  # frozen batch norm too: the authors keep the backbone in eval mode
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Boundary logits [B, 1, H / 4, W / 4]."""
        if self.freeze_backbone:
            with torch.no_grad():
                levels = self.backbone(images)
        else:
            levels = self.backbone(images)
        size = levels[0].shape[-2:]
        fused = [
            head(level) if level.shape[-2:] == size else F.interpolate(head(level), size=size, mode="bilinear", align_corners=False)
            for head, level in zip(self.level_heads, levels)
        ]
        return self.classifier(torch.cat(fused, dim=1))


def boundary_probability(model: BoundaryNet, images: torch.Tensor) -> torch.Tensor:
    """Boundary map [B, h, w] in [0, 1] for inference: the sigmoid of the logits of the images and their
    mirror images averaged (the authors' EdgeDisplacement)."""
    logits = model(torch.cat([images, images.flip(-1)]))[:, 0]
    batch = images.shape[0]
    return torch.sigmoid(logits[:batch] / 2 + logits[batch:].flip(-1) / 2)
