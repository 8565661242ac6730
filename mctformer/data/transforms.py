"""Image transforms, built with timm's ``create_transform`` (no hand-written augmentation)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def classification_transform(input_size: int, training: bool, augment: Mapping[str, Any]) -> Any:
    """The reference's recipe on real data: random resized crop, flip, RandAugment, random erasing.

    ``augment`` keys: scale, ratio, hflip, color_jitter, rand_augment (a timm
    auto-augment string such as 'rand-m9-mstd0.5-inc1', or None), random_erasing
    (probability), eval_crop_pct.
    """
    # imported here: timm pulls in torchvision's model zoo (~3 s), which the
    # stages that only normalise images (walk, AffinityNet, DeepLab) never need
    from timm.data import create_transform

    if training:
        return create_transform(
            input_size=input_size,
            is_training=True,
            scale=tuple(augment["scale"]),
            ratio=tuple(augment["ratio"]),
            hflip=augment["hflip"],
            color_jitter=augment["color_jitter"],
            auto_augment=augment["rand_augment"],
            re_prob=augment["random_erasing"],
            interpolation="bicubic",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
    return create_transform(
        input_size=input_size,
        is_training=False,
        crop_pct=augment["eval_crop_pct"],
        interpolation="bicubic",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def normalize_image(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> float [3, H, W] normalised with ImageNet statistics (as the training transform)."""
    tensor = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1) / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std


def random_scale_flip_crop(
    image: np.ndarray, label: np.ndarray, crop_size: int, scale_range: tuple[float, float], flip: bool, ignore: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired augmentation of an image and its label map (torch's RNG, so DataLoader seeding applies)."""
    import torch.nn.functional as F

    tensor = normalize_image(image)[None]
    target = torch.from_numpy(np.asarray(label, dtype=np.float32))[None, None]
    low, high = scale_range
    scale = low + (high - low) * torch.rand(()).item()
    if abs(scale - 1.0) > 1e-6:
        size = (max(1, round(tensor.shape[-2] * scale)), max(1, round(tensor.shape[-1] * scale)))
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
        target = F.interpolate(target, size=size, mode="nearest")
    if flip and torch.rand(()).item() < 0.5:
        tensor, target = tensor.flip(-1), target.flip(-1)
    pad_h = max(0, crop_size - tensor.shape[-2])
    pad_w = max(0, crop_size - tensor.shape[-1])
    if pad_h or pad_w:
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), value=0.0)
        target = F.pad(target, (0, pad_w, 0, pad_h), value=float(ignore))
    top = int(torch.randint(0, tensor.shape[-2] - crop_size + 1, ()).item())
    left = int(torch.randint(0, tensor.shape[-1] - crop_size + 1, ()).item())
    tensor = tensor[0, :, top : top + crop_size, left : left + crop_size]
    target = target[0, 0, top : top + crop_size, left : left + crop_size]
    return tensor.contiguous(), target.long()
