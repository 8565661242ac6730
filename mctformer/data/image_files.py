"""Reader of loose image files (``mctformer predict``): a folder, or a list of paths, with any file names.

The stages read images through a layout's ``load_image`` / ``image_size`` by id; here an image's id is its file
name without the extension (``IMG 0042.jpg`` -> ``IMG 0042``), so the outputs keep the names the user gave. There
is no ground truth (``mask_dir`` is None) and no split list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .voc import DatasetError, read_image_size, read_rgb_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_paths(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """Every image a list of folders and files names: a folder gives its image files (by suffix, sorted by name,
    not recursing), a file itself. Refuses a path that does not exist and an empty result."""
    paths: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            paths += sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif source.is_file():
            paths.append(source)
        else:
            raise DatasetError(f"image {source} does not exist")
    if not paths:
        raise DatasetError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, sources))}")
    return paths


class ImageFiles:
    """Images read by id from explicit paths; the id is the file's stem, which must be unique."""

    mask_dir = None

    def __init__(self, paths: Sequence[str | os.PathLike], num_classes: int) -> None:
        self.num_classes = num_classes
        self.paths: dict[str, Path] = {}
        for path in map(Path, paths):
            if path.stem in self.paths:
                raise DatasetError(f"images {self.paths[path.stem]} and {path} have the same name {path.stem!r} (their outputs would collide)")
            self.paths[path.stem] = path

    @property
    def ids(self) -> list[str]:
        return list(self.paths)

    def image_path(self, image_id: str) -> Path:
        try:
            return self.paths[image_id]
        except KeyError:
            raise DatasetError(f"no image named {image_id!r} was given") from None

    def load_image(self, image_id: str) -> np.ndarray:
        """RGB uint8 [H, W, 3] (a grey or RGBA file converted)."""
        return read_rgb_image(self.image_path(image_id))

    def image_size(self, image_id: str) -> tuple[int, int]:
        """(height, width) without decoding the pixels."""
        return read_image_size(self.image_path(image_id))
