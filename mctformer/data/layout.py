"""Pick the reader for a dataset root by its config ``data.layout``."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .coco import COCOLayout
from .folder import FolderLayout
from .voc import VOCLayout

LAYOUTS = {"voc": VOCLayout, "coco": COCOLayout, "folder": FolderLayout}


def open_layout(root: str | os.PathLike, layout: str, num_classes: int) -> VOCLayout:
    try:
        reader = LAYOUTS[layout]
    except KeyError:
        raise ValueError(f"data.layout: unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}") from None
    return reader(root, num_classes)


def batches_of_equal_size(layout: VOCLayout, ids: Sequence[str], batch_size: int) -> list[list[str]]:
    """Ids grouped by image size (read from headers), in batches of at most ``batch_size``."""
    by_size: dict[tuple[int, int], list[str]] = defaultdict(list)
    for image_id in ids:
        by_size[layout.image_size(image_id)].append(image_id)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def first_ids(layout: VOCLayout, split: str, max_images: int | None) -> list[str]:
    """The first ``max_images`` ids of ``split`` (all of them when None or 0): the images PSA and IRN make
    confident labels for and train their networks on (psa.max_images, irn.max_images)."""
    ids = layout.read_ids(split)
    return ids[:max_images] if max_images else ids


def ids_of_splits(layout: VOCLayout, splits: Sequence[str]) -> list[str]:
    """The ids of every split in ``splits``, in order, each once (an id in two splits keeps its first place)."""
    return list(dict.fromkeys(image_id for split in splits for image_id in layout.read_ids(split)))


@dataclass(frozen=True)
class DatasetRef:
    """Which dataset a stage reads: its root folder (data.root, as the rule resolves it), data.layout and data.classes."""

    root: str
    layout: str
    classes: tuple[str, ...]

    @classmethod
    def take(cls, root: str, keys: Mapping[str, Any]) -> tuple[DatasetRef, dict[str, Any]]:
        """The reference a rule's ``root`` and config keys (their ``layout`` and ``classes``) give, and the other keys."""
        rest = dict(keys)
        return cls(str(root), rest.pop("layout"), tuple(rest.pop("classes"))), rest

    def open(self) -> VOCLayout:
        """The reader of the root (:func:`open_layout`)."""
        return open_layout(self.root, self.layout, len(self.classes))
