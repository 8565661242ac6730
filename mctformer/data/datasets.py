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
