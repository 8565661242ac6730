"""Dense-prediction backbones shared by AffinityNet and DeepLab.

Each returns a list of feature maps, all at the same output stride (the
deeper ones dilated instead of downsampled), shallow to deep.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from .registry import backbone_output_stride
from .weights import announce, missing_weights, read_state_dict, resolve_weights


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyDilatedBackbone(nn.Module):
    """From scratch, for the embedded default: output stride 4, three levels (48, 64, 96 channels)."""

    output_stride = backbone_output_stride("tiny")

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

    output_stride = backbone_output_stride("timm")

    def __init__(self, name: str, pretrained: str | os.PathLike | None) -> None:
        super().__init__()
        import timm

        kwargs = {}
        if pretrained:
            if not os.path.isfile(pretrained):
                raise missing_weights(pretrained, name)
            check_timm_checkpoint(name, pretrained)
            kwargs = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(pretrained)}}
        self.body = timm.create_model(name, features_only=True, output_stride=8, out_indices=(-3, -2, -1), **kwargs)
        self.channels = list(self.body.feature_info.channels())
        if pretrained:
            announce(pretrained, f"backbone {name} (timm)")

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(images))


def check_timm_checkpoint(name: str, path: str | os.PathLike) -> None:
    """Refuse a file that lacks some of the network's tensors.

    timm loads a features-only model's weights non-strictly (it drops the
    classifier and then tolerates anything missing), so a checkpoint of another
    model or a truncated file would leave layers at random initialisation silently.
    """
    import timm

    reference = timm.create_model(name, pretrained=False)
    classifiers = reference.pretrained_cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    state = read_state_dict(path, name)
    expected = {k: v.shape for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in expected if k not in state and not k.startswith(tuple(c + "." for c in classifiers))]
    if missing:
        raise ValueError(f"{path} does not match timm's {name}: it lacks {len(missing)} tensors, e.g. {missing[0]}")
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k]) and not k.startswith(tuple(c + "." for c in classifiers))]
    if wrong:
        raise ValueError(f"{path} does not match timm's {name}: {wrong[0]} is {tuple(state[wrong[0]].shape)}, expected {tuple(expected[wrong[0]])}")


class PreActBlock(nn.Module):
    """ResNet-38's pre-activation residual unit: BN-ReLU, then two 3x3 convolutions (``bottleneck``: 1x1, 3x3, 1x1).

    Parameter names follow the converted ImageNet weights that PSA and
    MCTformer distribute (``bn_branch2a``, ``conv_branch2a``, ...), so that file loads as is.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int = 1,
                 dilation: int = 1, first_dilation: int | None = None, bottleneck: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.bottleneck = bottleneck
        self.projects = bottleneck or in_channels != out_channels or stride != 1
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        if bottleneck:
            self.conv_branch2a = nn.Conv2d(in_channels, out_channels // 4, 1, stride, bias=False)
            self.bn_branch2b1 = nn.BatchNorm2d(out_channels // 4)
            self.conv_branch2b1 = nn.Conv2d(out_channels // 4, out_channels // 2, 3, padding=dilation, dilation=dilation, bias=False)
            self.bn_branch2b2 = nn.BatchNorm2d(out_channels // 2)
            self.conv_branch2b2 = nn.Conv2d(out_channels // 2, out_channels, 1, bias=False)
            self.dropout = nn.Dropout2d(dropout)
        else:
            self.conv_branch2a = nn.Conv2d(in_channels, mid_channels, 3, stride, padding=first_dilation, dilation=first_dilation, bias=False)
            self.bn_branch2b1 = nn.BatchNorm2d(mid_channels)
            self.conv_branch2b1 = nn.Conv2d(mid_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        if self.projects:
            self.conv_branch1 = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, the block's BN-ReLU'd input): the latter is what AffinityNet taps."""
        activated = torch.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(activated) if self.projects else x
        branch = self.conv_branch2a(activated)
        branch = torch.relu(self.bn_branch2b1(branch))
        if self.bottleneck:
            branch = self.conv_branch2b1(self.dropout(branch))
            branch = self.dropout(torch.relu(self.bn_branch2b2(branch)))
            branch = self.conv_branch2b2(branch)
        else:
            branch = self.conv_branch2b1(branch)
        return shortcut + branch, activated


class ResNet38d(nn.Module):
    """The wide ResNet-38 of PSA and MCTformer's segmentation stages, dilated to output stride 8.

    Levels: the BN-ReLU'd inputs of b5 (512 ch) and b6 (1024 ch) and the final
    BN-ReLU'd output (4096 ch). As in the reference, batch norm stays frozen
    (ImageNet statistics; batches of 8 cannot estimate them) and so does the
    first convolution.
    """

    output_stride = backbone_output_stride("resnet38d")

    def __init__(self, pretrained: str | os.PathLike | None) -> None:
        super().__init__()
        self.conv1a = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.b2 = PreActBlock(64, 128, 128, stride=2)
        self.b2_1 = PreActBlock(128, 128, 128)
        self.b2_2 = PreActBlock(128, 128, 128)
        self.b3 = PreActBlock(128, 256, 256, stride=2)
        self.b3_1 = PreActBlock(256, 256, 256)
        self.b3_2 = PreActBlock(256, 256, 256)
        self.b4 = PreActBlock(256, 512, 512, stride=2)
        for index in range(1, 6):
            setattr(self, f"b4_{index}", PreActBlock(512, 512, 512))
        self.b5 = PreActBlock(512, 512, 1024, dilation=2, first_dilation=1)
        self.b5_1 = PreActBlock(1024, 512, 1024, dilation=2)
        self.b5_2 = PreActBlock(1024, 512, 1024, dilation=2)
        self.b6 = PreActBlock(1024, 0, 2048, dilation=4, bottleneck=True, dropout=0.3)
        self.b7 = PreActBlock(2048, 0, 4096, dilation=4, bottleneck=True, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(4096)
        self.channels = [512, 1024, 4096]
        self.conv1a.weight.requires_grad = False
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.requires_grad = False
                module.bias.requires_grad = False
        if pretrained:
            self.load_imagenet(pretrained)

    def load_imagenet(self, path: str | os.PathLike) -> None:
        state = read_state_dict(path, "resnet38d")
        state = {key: value for key, value in state.items() if not key.startswith(("fc", "linear"))}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [key for key in missing if not key.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"{path} does not match ResNet-38: missing {missing[:3]}, unexpected {unexpected[:3]}")
        announce(path, "backbone resnet38d (ImageNet, PSA's converted file)")

    def train(self, mode: bool = True) -> ResNet38d:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv1a(images)
        for name in ("b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2", "b4", "b4_1", "b4_2", "b4_3", "b4_4", "b4_5"):
            x, _ = getattr(self, name)(x)
        x, level4 = self.b5(x)
        x, _ = self.b5_1(x)
        x, _ = self.b5_2(x)
        x, level5 = self.b6(x)
        x, _ = self.b7(x)
        return [level4, level5, torch.relu(self.bn7(x))]


def create_backbone(name: str, pretrained: str | os.PathLike | None) -> nn.Module:
    """``tiny`` (from scratch), ``resnet38d`` (the reference's) or a timm CNN that supports ``output_stride=8``;
    ``pretrained``: a local weights file, a timm model name or Hugging Face id in the local cache
    (mctformer.models.weights.resolve_weights), or None (affinity.pretrained / deeplab.pretrained)."""
    if name == "tiny":
        if pretrained:
            raise ValueError("the tiny backbone is trained from scratch; it takes no pretrained weights")
        return TinyDilatedBackbone()
    # a timm model name or Hugging Face id becomes its file in the local Hugging Face cache
    pretrained = resolve_weights(pretrained, name) if pretrained else None
    if name == "resnet38d":
        return ResNet38d(pretrained)
    return TimmBackbone(name, pretrained)
