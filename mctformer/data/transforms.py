"""Image transforms, built with timm's ``create_transform`` (no hand-written augmentation)."""

from __future__ import annotations

from typing import Any, Mapping

from timm.data import create_transform

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
