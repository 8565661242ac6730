"""Image transforms, built with timm's ``create_transform`` (no hand-written augmentation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def classification_transform(input_size: int, training: bool, augment: Mapping[str, Any]) -> Any:
    """The reference's recipe on real data: random resized crop, flip, RandAugment, random erasing.

    ``augment`` keys: scale, ratio, hflip, color_jitter, rand_augment (a timm
    auto-augment string such as 'rand-m9-mstd0.5-inc1', or None), random_erasing
    (probability), random_erasing_mode ('const': zeros, timm's default; 'pixel':
    per-pixel normal noise, the reference's), eval_crop_pct.
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
            re_mode=augment["random_erasing_mode"],
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


PAD_IMAGE_MODES = ("mean", "black")
# Where an image smaller than the crop lands in it: top-left (the reference's DeepLab, ours) or at a
# random offset (the reference's AffinityNet RandomCrop, which places it in a zero container).
CROP_PLACEMENTS = ("top_left", "random")


def place_in_container(
    array: torch.Tensor, size: int, container_top: int, container_left: int, image_top: int, image_left: int, fill: torch.Tensor | float,
) -> torch.Tensor:
    """A [..., size, size] crop of ``array`` [..., H, W]: the image rows from ``image_top`` (columns from
    ``image_left``) land at ``container_top`` (``container_left``), ``fill`` elsewhere (broadcast over [..., 1, 1])."""
    height, width = array.shape[-2:]
    rows, cols = min(size - container_top, height - image_top), min(size - container_left, width - image_left)
    container = torch.as_tensor(fill, dtype=array.dtype).expand(*array.shape[:-2], size, size).clone()
    container[..., container_top : container_top + rows, container_left : container_left + cols] = \
        array[..., image_top : image_top + rows, image_left : image_left + cols]
    return container


def random_scale_flip_crop(
    image: np.ndarray, label: np.ndarray, crop_size: int, *, scale_range: tuple[float, float], flip: bool, ignore: float,
    color_jitter: tuple[float, float, float, float] | None, pad_image: str, placement: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired augmentation of an image and its label (torch's RNG, so DataLoader seeding applies).

    ``label`` is a label map [H, W] (returned long [S, S]) or a stack of score
    maps [C, H, W] (returned float [C, S, S]; resized by nearest neighbour too).
    ``color_jitter`` (brightness, contrast, saturation, hue): torchvision's
    ColorJitter on the uint8 picture first (PSA's AffinityNet training; None = off).
    ``pad_image``: what fills the image where the crop overhangs it, 'mean' (0
    after normalising = the mean colour) or 'black' (raw 0, i.e. -mean/std after
    normalising, as the reference pads before it normalises). Labels are padded
    with ``ignore`` (deeplab.pad_label; 0 for pooled scores). ``placement``: see CROP_PLACEMENTS; a side longer than the
    crop is cropped at a random offset either way.
    """
    import torch.nn.functional as F

    if pad_image not in PAD_IMAGE_MODES:
        raise ValueError(f"pad_image must be one of {PAD_IMAGE_MODES}, got {pad_image!r}")
    if placement not in CROP_PLACEMENTS:
        raise ValueError(f"crop placement must be one of {CROP_PLACEMENTS}, got {placement!r}")
    if color_jitter is not None:
        from PIL import Image
        from torchvision.transforms import ColorJitter

        # on the PIL picture, as the reference (its ColorJitter runs on the PIL image it reads)
        image = np.asarray(ColorJitter(*color_jitter)(Image.fromarray(np.asarray(image, dtype=np.uint8))))
    tensor = normalize_image(image)[None]
    label = np.asarray(label, dtype=np.float32)
    target = torch.from_numpy(label)[None] if label.ndim == 3 else torch.from_numpy(label)[None, None]
    low, high = scale_range
    scale = low + (high - low) * torch.rand(()).item()
    if abs(scale - 1.0) > 1e-6:
        size = (max(1, round(tensor.shape[-2] * scale)), max(1, round(tensor.shape[-1] * scale)))
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
        target = F.interpolate(target, size=size, mode="nearest")
    if flip and torch.rand(()).item() < 0.5:
        tensor, target = tensor.flip(-1), target.flip(-1)
    offsets = []  # (container offset, image offset) of rows, then of columns
    for length in tensor.shape[-2:]:
        # one draw per side whatever the placement, so the top-left streams stay what they were
        spread = abs(length - crop_size) if placement == "random" or length > crop_size else 0
        draw = int(torch.randint(0, spread + 1, ()).item())
        if length > crop_size:
            offsets.append((0, draw))
        else:
            offsets.append((draw if placement == "random" else 0, 0))
    (container_top, image_top), (container_left, image_left) = offsets
    black = normalize_image(np.zeros((1, 1, 3), np.uint8))[None]  # [1, 3, 1, 1]: black, normalised
    tensor = place_in_container(tensor, crop_size, container_top, container_left, image_top, image_left,
                                black if pad_image == "black" else 0.0)
    target = place_in_container(target, crop_size, container_top, container_left, image_top, image_left, float(ignore))
    if label.ndim == 3:
        return tensor[0].contiguous(), target[0].contiguous()
    return tensor[0].contiguous(), target[0, 0].long()
