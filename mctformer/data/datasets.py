"""torch Datasets over a layout root."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..logs import progress_bar
from .voc import VOCLayout


class ClassificationDataset(Dataset):
    """(transformed image, multi-hot float32 [C]) pairs of ``ids``."""

    def __init__(self, layout: VOCLayout, ids: Sequence[str], class_labels: Mapping[str, np.ndarray], transform: Callable) -> None:
        self.layout = layout
        self.ids = list(ids)
        self.targets = np.stack([np.asarray(class_labels[i], dtype=np.float32) for i in self.ids])
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = Image.fromarray(self.layout.load_image(self.ids[index]))
        return self.transform(image), torch.from_numpy(self.targets[index])


def decoded_in_memory(load: Callable[[str], np.ndarray], ids: Sequence[str], what: str) -> Callable[[str], np.ndarray]:
    """``load`` run once per id of ``ids``, now: a lookup into the decoded arrays (KeyError for any other id).

    For small images: at 64 px a PNG / JPEG decode costs about twice the whole
    augmentation of a sample, and an epoch decodes every image again; held as
    uint8 the 6,000 images of the embedded default take 74 MB, VOC's train_aug
    at full size ~6 GB (benchmarks/bench_dense_loader.py measures both ways).
    """
    arrays = {}
    for image_id in progress_bar(ids, desc=f"decoding {what}", unit="img", mininterval=2.0):
        arrays[image_id] = load(image_id)
    return arrays.__getitem__


class SegmentationCropDataset(Dataset):
    """(normalised image [3, S, S], label long [S, S]) crops for dense training (AffinityNet, DeepLab).

    Optional colour jitter of the picture, random scale (image bilinear, label
    nearest), horizontal flip, then a random S x S crop; images smaller than S
    are padded with the mean (0 after normalisation; ``pad_image='black'``: raw
    0, as the reference) and labels with ``pad_label`` (255, so padding is never
    learned as a class; the reference's DeepLab pads them with 0 = background).
    ``placement``: where an image smaller than the crop lands (transforms.CROP_PLACEMENTS).
    A label may also be a stack of score maps [C, H, W] (see random_scale_flip_crop).
    ``in_memory``: decode every image and label once, here, and crop the held
    arrays (see :func:`decoded_in_memory`); False reads both per sample.
    """

    def __init__(
        self,
        layout: VOCLayout,
        ids: Sequence[str],
        load_label: Callable[[str], np.ndarray],
        crop_size: int,
        *,
        scale_range: Sequence[float],
        flip: bool,
        color_jitter: Sequence[float] | None,
        pad_image: str,
        pad_label: int,
        placement: str,
        in_memory: bool,
    ) -> None:
        from .transforms import PAD_IMAGE_MODES

        if pad_image not in PAD_IMAGE_MODES:
            raise ValueError(f"pad_image must be one of {PAD_IMAGE_MODES}, got {pad_image!r}")
        if color_jitter is not None and len(color_jitter) != 4:
            raise ValueError(f"color_jitter must be [brightness, contrast, saturation, hue] or None, got {color_jitter!r}")
        self.layout = layout
        self.ids = list(ids)
        self.load_image = layout.load_image
        self.load_label = load_label
        if in_memory:
            self.load_image = decoded_in_memory(layout.load_image, self.ids, "images")
            self.load_label = decoded_in_memory(load_label, self.ids, "labels")
        self.crop_size = crop_size
        self.scale_range = tuple(scale_range)
        self.flip = flip
        self.color_jitter = None if color_jitter is None else tuple(float(v) for v in color_jitter)
        self.pad_image = pad_image
        self.pad_label = int(pad_label)
        self.placement = placement

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_id = self.ids[index]
        return self.crop(image_id, self.load_label(image_id))

    def crop(self, image_id: str, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented crop of ``image_id``'s picture and ``label`` (a label map or a stack of score maps)."""
        from .transforms import random_scale_flip_crop

        image = self.load_image(image_id)
        if label.shape[-2:] != image.shape[:2]:
            raise ValueError(f"label of {image_id} is {label.shape[-2:]}, its image {image.shape[:2]}")
        return random_scale_flip_crop(
            image, label, self.crop_size, scale_range=self.scale_range, flip=self.flip, ignore=self.pad_label,
            color_jitter=self.color_jitter, pad_image=self.pad_image, placement=self.placement,
        )
