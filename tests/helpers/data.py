"""Hand-made data on disk for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mctformer.artifacts import save_label_png, voc_palette


def write_voc_root(root: Path, masks: dict[str, np.ndarray], lists: dict[str, list[str]]) -> Path:
    """A hand-made VOC-layout root: a random JPEG per mask, palette PNG masks, split lists."""
    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassAug").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for image_id, mask in masks.items():
        Image.fromarray(rng.integers(0, 255, mask.shape + (3,), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        save_label_png(root / "SegmentationClassAug" / f"{image_id}.png", mask, voc_palette())
    for split, ids in lists.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root
