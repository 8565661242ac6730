"""Pick the reader for a dataset root by its config ``data.layout``."""

from __future__ import annotations

import os

from .coco import COCOLayout
from .voc import VOCLayout

LAYOUTS = {"voc": VOCLayout, "coco": COCOLayout}


def open_layout(root: str | os.PathLike, layout: str, num_classes: int) -> VOCLayout:
    try:
        reader = LAYOUTS[layout]
    except KeyError:
        raise ValueError(f"data.layout: unknown layout {layout!r}; expected one of {sorted(LAYOUTS)}") from None
    return reader(root, num_classes)
