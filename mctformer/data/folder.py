"""A dataset of your own (``data.source: folder``): images in one folder under any file names, image-level labels
from a CSV or JSON file, optional class-index masks in a second folder, optional split lists.

The labels file, one entry per image (the image's file name, with or without its suffix):

* CSV, class names as columns: ``image,cat,dog,...`` then ``photo 1.jpg,1,0,...`` (0 or 1 per class); the
  columns give the class list, in order.
* CSV, a list: ``image,labels`` then ``photo1.jpg,cat;dog`` (class names joined by ``;``).
* JSON: ``{"photo1.jpg": ["cat", "dog"], ...}``, or ``{"classes": [...], "images": {"photo1.jpg": [...], ...}}``.

In the list forms the class list is the file's ``classes`` (JSON), else ``data.classes`` when set, else the class
names the file uses, sorted. Every image must hold at least one class (a WSSS classifier learns from the classes
present; leave out an image without any).

An image's id is its file name less the last suffix (``a.b.jpg`` -> ``a.b``). Ids name every artifact file and are
one a line in the split lists, so an id is letters, digits (any script) and ``. _ - + @ ( ) = , ~``, starting with a
letter or digit: no whitespace, no slash, no quotes. A row that breaks a rule (unknown class, missing or ambiguous
image, an id not allowed, an id given twice, a value other than 0/1) is refused with a :class:`DatasetError` naming
the file and the row (CSV: its line number; JSON: its key).

Masks (``<masks>/<id>.png``: 0 background, 1..C the classes in list order, 255 ignore) are what the seeds, pseudo
masks and DeepLab are scored against. Split lists (``<splits>/<split>.txt``, one id or file name a line) are
optional: without them the ids, ordered by the sha256 of the id, give the first ``val_fraction`` (at least one) to
``data.splits.val`` and the rest to ``data.splits.train``.

:func:`prepare_folder` checks all of it and writes the run's root (``results/<run_name>/data``) in the layout
:class:`FolderLayout` reads, so every later stage reads it as it reads a VOC root:

    images/<file name>                    a link to each image
    SegmentationClass/<id>.png            a link to each mask (when masks are given)
    ImageSets/Segmentation/<split>.txt
    cls_labels.npy                        id -> float32 multi-hot, from the labels file
    dataset.json                          the class list, id -> file name, where it all came from
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import atomic_directory, read_label_png, write_json
from ..logs import progress_bar
from .image_files import IMAGE_SUFFIXES  # the image files predict reads, the same suffixes
from .label_table import LabelTable, read_label_table
from .labels import labels_from_names, load_class_labels, save_class_labels
from .voc import IGNORE, DatasetError, VOCLayout

ID_PATTERN = re.compile(r"[^\W_][\w.+\-@()=,~]*")
ID_RULE = "letters, digits and . _ - + @ ( ) = , ~, starting with a letter or digit"
INDEX_FILE = "dataset.json"
LIST_DIR = Path("ImageSets") / "Segmentation"


def _image_file(images: Path, entry: str, suffixes: Mapping[str, list[str]]) -> str | None:
    """The file in ``images`` an entry names: the file itself, else the one image ``<entry>.<suffix>`` (None: none)."""
    if (images / entry).is_file() and Path(entry).suffix.lower() in IMAGE_SUFFIXES:
        return entry
    matches = suffixes.get(entry, [])
    if len(matches) > 1:
        raise ValueError(f"{entry!r} matches {len(matches)} images ({', '.join(sorted(matches))}); name the file with its suffix")
    return matches[0] if matches else None


def index_images(table: LabelTable, images: str | os.PathLike) -> dict[str, str]:
    """id -> image file name of every row, in file order; refuses a missing or ambiguous image, an id not allowed
    and an id given twice, naming the row."""
    images = Path(images)
    if not images.is_dir():
        raise DatasetError(f"image folder {images} does not exist or is not a directory")
    by_stem: dict[str, list[str]] = {}
    for file in sorted(os.listdir(images)):
        if Path(file).suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(Path(file).stem, []).append(file)
    index: dict[str, str] = {}
    first_row: dict[str, str] = {}
    for row in table.rows:
        where = f"labels file {table.path}, {row.where}"
        if not row.entry or "/" in row.entry or "\\" in row.entry:
            raise DatasetError(f"{where}: {row.entry!r} must be the name of a file directly in {images}")
        try:
            file = _image_file(images, row.entry, by_stem)
        except ValueError as error:
            raise DatasetError(f"{where}: {error}") from None
        if file is None:
            raise DatasetError(f"{where}: image {row.entry!r} is not in {images} (as it is or with one of {', '.join(IMAGE_SUFFIXES)})")
        image_id = Path(file).stem
        if not ID_PATTERN.fullmatch(image_id):
            raise DatasetError(f"{where}: the id {image_id!r} of {file!r} is not allowed: ids are {ID_RULE} (rename the file)")
        if image_id in index:
            raise DatasetError(f"{where}: id {image_id!r} ({file}) is given twice; {first_row[image_id]} gives it too")
        index[image_id] = file
        first_row[image_id] = row.where
    return index


def default_split(ids: Sequence[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """(train ids, val ids) without split lists: ids ordered by the sha256 of the id; the first ``val_fraction`` of
    them (at least one, never all) are val. Each list keeps the labels file's order. The same ids always split the
    same way, and adding images moves no other id."""
    if len(ids) < 2:
        raise DatasetError(f"a dataset of {len(ids)} image cannot be split into train and val; give at least 2 images")
    by_hash = sorted(ids, key=lambda image_id: hashlib.sha256(image_id.encode()).hexdigest())
    count = min(max(1, round(val_fraction * len(ids))), len(ids) - 1)
    val = set(by_hash[:count])
    return [i for i in ids if i not in val], [i for i in ids if i in val]


def read_split_list(path: Path, index: Mapping[str, str]) -> list[str]:
    """The ids of a split list (one id or image file name a line); refuses an unknown or repeated one, naming the line."""
    if not path.is_file():
        raise DatasetError(f"split list {path} does not exist")
    by_file = {file: image_id for image_id, file in index.items()}
    ids: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        image_id = entry if entry in index else by_file.get(entry)
        if image_id is None:
            raise DatasetError(f"split list {path}, line {number}: {entry!r} is not an image of the labels file")
        if image_id in seen:
            raise DatasetError(f"split list {path}, line {number}: {entry!r} is listed twice")
        seen.add(image_id)
        ids.append(image_id)
    if not ids:
        raise DatasetError(f"split list {path} is empty")
    return ids


def _check_mask(path: Path, image_path: Path, num_classes: int) -> None:
    try:
        mask = read_label_png(path)
    except (FileNotFoundError, ValueError) as error:
        raise DatasetError(str(error)) from None
    values = np.unique(mask)
    bad = values[(values > num_classes) & (values != IGNORE)]
    if bad.size:
        raise DatasetError(f"mask {path} holds class index {int(bad[0])}, outside 0..{num_classes} (and 255 = ignore)")
    from PIL import Image

    with Image.open(image_path) as image:
        width, height = image.size
    if mask.shape != (height, width):
        raise DatasetError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is {width}x{height}")


def prepare_folder(
    *,
    images: str | os.PathLike,
    labels: str | os.PathLike,
    masks: str | os.PathLike | None,
    split_lists: str | os.PathLike | None,
    splits: Sequence[str],
    train_split: str,
    val_split: str,
    val_fraction: float,
    classes: Sequence[str],
    out_root: str | os.PathLike,
) -> dict[str, int]:
    """Check the folder dataset and write its root at ``out_root`` (see the module docstring); returns the split sizes.

    ``splits``: every split the run reads; with ``split_lists`` each is ``<split_lists>/<split>.txt``, without them
    they must be ``train_split`` and ``val_split`` (:func:`default_split`). ``classes``: the run's class list, which
    must be the labels file's."""
    table = read_label_table(labels, classes)
    if table.classes != tuple(classes):
        raise DatasetError(f"labels file {labels}: its classes {list(table.classes)} are not the run's {list(classes)}")
    images = Path(images).resolve()
    index = index_images(table, images)
    if split_lists is None:
        unknown = [split for split in splits if split not in (train_split, val_split)]
        if unknown:
            raise DatasetError(f"no split lists given, so the splits are {train_split} and {val_split} only, not {unknown[0]!r}")
        train, val = default_split(list(index), val_fraction)
        split_ids = {train_split: train, val_split: val}
        print(f"no split lists: {len(val)} of {len(index)} images (by sha256 of the id) are {val_split}, the rest {train_split}")
    else:
        split_ids = {split: read_split_list(Path(split_lists) / f"{split}.txt", index) for split in splits}
    mask_files: dict[str, Path] = {}
    if masks is not None:
        masks = Path(masks).resolve()
        if not masks.is_dir():
            raise DatasetError(f"mask folder {masks} does not exist or is not a directory")
        for image_id in progress_bar(list(index), desc="check masks", unit="img", mininterval=2.0):
            path = masks / f"{image_id}.png"
            if not path.is_file():
                raise DatasetError(f"mask {path} of image {index[image_id]} does not exist (every image needs one for evaluation)")
            _check_mask(path, images / index[image_id], len(classes))
            mask_files[image_id] = path
    # index_images gives one id per row, in row order
    labels_of = {image_id: labels_from_names(row.classes, classes) for image_id, row in zip(index, table.rows, strict=True)}
    with atomic_directory(out_root) as tmp:
        (tmp / "images").mkdir()
        for file in index.values():
            os.symlink(images / file, tmp / "images" / file)
        if mask_files:
            (tmp / "SegmentationClass").mkdir()
            for image_id, path in mask_files.items():
                os.symlink(path, tmp / "SegmentationClass" / f"{image_id}.png")
        (tmp / LIST_DIR).mkdir(parents=True)
        for split, ids in split_ids.items():
            (tmp / LIST_DIR / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        save_class_labels(tmp / "cls_labels.npy", labels_of)
        counts = {split: len(ids) for split, ids in split_ids.items()}
        write_json(tmp / INDEX_FILE, {
            "dataset": "folder", "classes": list(classes), "images": index,
            "sources": {"images": str(images), "labels": str(Path(labels).resolve()),
                        "masks": None if masks is None else str(masks),
                        "split_lists": None if split_lists is None else str(Path(split_lists).resolve())},
            "counts": counts,
        })
    print(f"folder dataset at {out_root}: {len(index)} images, {len(classes)} classes; "
          + ", ".join(f"{split} {count}" for split, count in counts.items()))
    return counts


class FolderLayout(VOCLayout):
    """The root :func:`prepare_folder` writes: images under their own file names (``dataset.json`` maps id -> file),
    masks in ``SegmentationClass/`` when given, image-level labels from the labels file in ``cls_labels.npy``."""

    image_dir = "images"
    mask_dirs = ("SegmentationClass",)

    def __init__(self, root: str | os.PathLike, num_classes: int) -> None:
        super().__init__(root, num_classes)
        index_path = self.root / INDEX_FILE
        try:
            content: dict[str, Any] = json.loads(index_path.read_text())
        except (OSError, ValueError) as error:
            raise DatasetError(f"{index_path}: not a folder dataset root made by prepare_folder ({error})") from None
        if len(content["classes"]) != num_classes:
            raise DatasetError(f"{index_path}: {len(content['classes'])} classes, but the run has {num_classes}")
        self.files: dict[str, str] = content["images"]

    def image_path(self, image_id: str) -> Path:
        file = self.files.get(image_id)
        if file is None:
            raise DatasetError(f"{self.root / INDEX_FILE}: no image with id {image_id!r}")
        return self.root / self.image_dir / file

    def mask_path(self, image_id: str) -> Path:
        if self.mask_dir is None:
            raise DatasetError(f"{self.root}: the folder dataset was prepared without masks (data.folder.masks), "
                               "so nothing can be scored against them")
        return self.mask_dir / f"{image_id}.png"

    def image_labels(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The labels file's multi-hot of each id (cls_labels.npy of the root), not labels read from masks."""
        labels = load_class_labels(self.root / "cls_labels.npy", ids, self.num_classes)
        return {image_id: labels[image_id] for image_id in ids}
