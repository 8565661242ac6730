"""Pick the reader for a dataset root by its config ``data.layout``."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

from .coco import COCOLayout
from .voc import VOCLayout

LAYOUTS = {"voc": VOCLayout, "coco": COCOLayout}


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
