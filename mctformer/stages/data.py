"""The stages of workflow/rules/data.smk: the dataset root (synthetic, or VOC 2012 / COCO 2014 from their
releases) and its class labels."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.folder import FolderLayout, prepare_folder  # noqa: F401  (prepare_folder: the stage of rule prepare_folder)
from ..data.labels import build_class_labels, save_class_labels
from ..data.layout import DatasetRef
from ..data.prepare import prepare_coco14, prepare_voc12  # noqa: F401  (the stages of rules prepare_voc12 / prepare_coco14)
from ..data.synthetic import SyntheticSpec, generate_synthetic_voc


def prepare_synthetic_data(*, out_root: str, num_classes: int, palette: Sequence | None, seed: int, workers: int, **synthetic: Any) -> dict:
    """Generate the synthetic VOC-layout tree at ``out_root``; ``synthetic`` = the config's ``synthetic`` keys."""
    if "radius_range" in synthetic:
        synthetic["radius_range"] = tuple(synthetic["radius_range"])
    spec = SyntheticSpec(num_classes=num_classes, seed=seed, **synthetic)
    started = time.time()
    generate_synthetic_voc(out_root, spec, palette=palette, workers=workers)
    seconds = time.time() - started
    print(f"generated {spec.num_train_aug + spec.num_val} images in {seconds:.1f} s")
    return {"seconds": seconds}


def make_class_labels(*, dataset: DatasetRef, splits: Sequence[str], out_path: str, workers: int) -> None:
    """``cls_labels.npy`` for every id of ``splits``: from the ground-truth masks, or for a folder dataset
    (data.source: folder) from its labels file, which holds the image-level labels themselves."""
    reader = dataset.open()
    ids = [image_id for split in splits for image_id in reader.read_ids(split)]
    if isinstance(reader, FolderLayout):
        labels = reader.image_labels(ids)
    else:
        labels = build_class_labels(reader, ids, workers=workers)
    counts = np.stack(list(labels.values())).sum(axis=0)
    print("images per class:", dict(zip(dataset.classes, counts.astype(int).tolist())))
    save_class_labels(out_path, labels)
