"""Image-level labels (``cls_labels.npy``) built from a root's ground-truth masks.

Format, as in the reference code: a pickled dict ``image id -> float32 [C]``
multi-hot over the foreground classes (index ``c`` is mask value ``c + 1``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from ..artifacts import atomic_path
from ..logs import progress_bar
from ..parallel import map_in_processes
from .voc import IGNORE, DatasetError, VOCLayout


def labels_from_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Multi-hot float32 [C] of the foreground classes present in ``mask``."""
    values = np.unique(mask)
    values = values[(values != 0) & (values != IGNORE)]
    multi_hot = np.zeros(num_classes, dtype=np.float32)
    multi_hot[values.astype(np.int64) - 1] = 1.0
    return multi_hot


def labels_from_names(names: Iterable[str], classes: Sequence[str]) -> np.ndarray:
    """Multi-hot float32 [C] of the class ``names`` (a labels file's row, its names checked) over ``classes``."""
    present = set(names)
    return np.array([name in present for name in classes], dtype=np.float32)


def _labels_of(args: tuple[VOCLayout, str]) -> tuple[str, np.ndarray]:
    layout, image_id = args
    height, width = layout.image_size(image_id)
    mask = layout.load_mask(image_id, expected_shape=(height, width))
    return image_id, labels_from_mask(mask, layout.num_classes)


def build_class_labels(layout: VOCLayout, ids: Iterable[str], *, workers: int) -> dict[str, np.ndarray]:
    """Labels of every id, read from its mask (validated against its image's size) in ``workers`` processes."""
    ids = list(dict.fromkeys(ids))
    jobs = [(layout, image_id) for image_id in ids]
    pairs = list(progress_bar(map_in_processes(_labels_of, jobs, workers, chunksize=64), total=len(jobs), desc="class labels"))
    return dict(pairs)


def save_class_labels(path: str | os.PathLike, labels: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, labels, allow_pickle=True)


def load_class_labels(path: str | os.PathLike, ids: Sequence[str] | None = None, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Read ``cls_labels.npy``; with ``ids``/``num_classes`` also check it covers them."""
    try:
        labels = np.load(path, allow_pickle=True).item()
    except FileNotFoundError:
        raise DatasetError(f"class-label file {path} does not exist") from None
    except Exception as error:
        raise DatasetError(f"class-label file {path} is unreadable: {error}") from error
    if not isinstance(labels, dict):
        raise DatasetError(f"class-label file {path} does not hold a dict of id -> multi-hot")
    if num_classes is not None:
        for image_id, value in labels.items():
            if np.asarray(value).shape != (num_classes,):
                raise DatasetError(f"class-label file {path}: {image_id} has {np.asarray(value).shape} labels, expected ({num_classes},)")
            break
    if ids is not None:
        missing = [image_id for image_id in ids if image_id not in labels]
        if missing:
            raise DatasetError(f"class-label file {path} has no labels for {len(missing)} ids, e.g. {missing[0]}")
    return {k: np.asarray(v, dtype=np.float32) for k, v in labels.items()}


def predicted_labels(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Multi-hot float32 [N, C] of the classes whose classifier score (a sigmoid, [N, C]) is at least ``threshold``
    (seeds.label_threshold); an image where no class reaches it gets its top-scoring class, since every image of a
    WSSS dataset holds at least one object and its seeds need a class to be made of."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError(f"classifier scores must be [images, classes], got {scores.shape}")
    chosen = scores >= threshold
    empty = ~chosen.any(axis=1)
    chosen[np.flatnonzero(empty), scores[empty].argmax(axis=1)] = True
    return chosen.astype(np.float32)
