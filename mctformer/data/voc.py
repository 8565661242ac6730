"""Reader of a PASCAL VOC 2012 (+ SBD "SegmentationClassAug") layout root.

    <root>/JPEGImages/<id>.jpg
    <root>/SegmentationClassAug/<id>.png   (or SegmentationClass/ when there is no SBD)
    <root>/ImageSets/Segmentation/<split>.txt

Every read validates what it reads and names the offending file in its error.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..artifacts import read_label_png
from .errors import DatasetError

IGNORE = 255  # the label of pixels no loss or metric counts (VOC's object boundaries, unconfident pixels): the one place it is set

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)


def read_rgb_image(path: str | os.PathLike) -> np.ndarray:
    """The image file at ``path`` as RGB uint8 [H, W, 3] (grey or RGBA converted); errors name the file."""
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"image {path} does not exist") from None
    except Exception as error:
        raise DatasetError(f"image {path} is unreadable or corrupt: {error}") from error


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of the image file at ``path`` without decoding its pixels; errors name the file."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise DatasetError(f"image {path} does not exist") from None
    except Exception as error:
        raise DatasetError(f"image {path} is unreadable or corrupt: {error}") from error
    return height, width


class VOCLayout:
    """Images, masks and split lists of one VOC-layout root with ``num_classes`` foreground classes."""

    image_dir = "JPEGImages"
    mask_dirs = ("SegmentationClassAug", "SegmentationClass")
    list_dir = Path("ImageSets") / "Segmentation"
    image_suffix = ".jpg"

    def __init__(self, root: str | os.PathLike, num_classes: int) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {self.root} does not exist or is not a directory")
        self.num_classes = num_classes
        self.mask_dir = next((self.root / d for d in self.mask_dirs if (self.root / d).is_dir()), None)

    # -- paths -------------------------------------------------------------
    def list_path(self, split: str) -> Path:
        return self.root / self.list_dir / f"{split}.txt"

    def image_path(self, image_id: str) -> Path:
        return self.root / self.image_dir / f"{image_id}{self.image_suffix}"

    def mask_path(self, image_id: str) -> Path:
        if self.mask_dir is None:
            raise DatasetError(f"{self.root}: no mask folder (looked for {', '.join(self.mask_dirs)})")
        return self.mask_dir / f"{image_id}.png"

    # -- reading -----------------------------------------------------------
    def read_ids(self, split: str, check_images: bool = True) -> list[str]:
        """Ids of a split list; refuses a missing or empty list, duplicates and missing images."""
        path = self.list_path(split)
        if not path.is_file():
            raise DatasetError(f"split list {path} does not exist")
        ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise DatasetError(f"split list {path} is empty")
        seen: set[str] = set()
        for image_id in ids:
            if image_id in seen:
                raise DatasetError(f"split list {path} names {image_id} twice")
            seen.add(image_id)
        if check_images:
            for image_id in ids:
                if not self.image_path(image_id).is_file():
                    raise DatasetError(f"split list {path} names {image_id}, but {self.image_path(image_id)} does not exist")
        return ids

    def load_image(self, image_id: str) -> np.ndarray:
        """RGB uint8 [H, W, 3]."""
        return read_rgb_image(self.image_path(image_id))

    def load_mask(self, image_id: str, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Class-index mask uint8 [H, W]; values must be 0..num_classes or 255."""
        path = self.mask_path(image_id)
        try:
            mask = read_label_png(path)
        except (FileNotFoundError, ValueError) as error:
            raise DatasetError(str(error)) from None
        values = np.unique(mask)
        bad = values[(values > self.num_classes) & (values != IGNORE)]
        if bad.size:
            raise DatasetError(
                f"mask {path} holds class index {int(bad[0])}, outside 0..{self.num_classes} (and 255 = ignore)"
            )
        if expected_shape is not None and mask.shape != tuple(expected_shape):
            raise DatasetError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is {expected_shape[1]}x{expected_shape[0]}")
        return mask

    def image_size(self, image_id: str) -> tuple[int, int]:
        """(height, width) without decoding the pixels."""
        return read_image_size(self.image_path(image_id))
