"""torch Datasets over a layout root."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

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


class SegmentationCropDataset(Dataset):
    """(normalised image [3, S, S], label long [S, S]) crops for dense training (AffinityNet, DeepLab).

    Random scale (image bilinear, label nearest), horizontal flip, then a
    random S x S crop; images smaller than S are padded with the mean (0 after
    normalisation) and labels with 255, so padding is never learned as a class.
    """

    def __init__(
        self,
        layout: VOCLayout,
        ids: Sequence[str],
        load_label: Callable[[str], np.ndarray],
        crop_size: int,
        scale_range: Sequence[float] = (1.0, 1.0),
        flip: bool = True,
    ) -> None:
        self.layout = layout
        self.ids = list(ids)
        self.load_label = load_label
        self.crop_size = crop_size
        self.scale_range = tuple(scale_range)
        self.flip = flip

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from .transforms import random_scale_flip_crop

        image_id = self.ids[index]
        image = self.layout.load_image(image_id)
        label = self.load_label(image_id)
        if label.shape != image.shape[:2]:
            raise ValueError(f"label of {image_id} is {label.shape}, its image {image.shape[:2]}")
        return random_scale_flip_crop(image, label, self.crop_size, self.scale_range, self.flip)
