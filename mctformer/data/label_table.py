"""The labels file of a folder dataset (data.source: folder; mctformer.data.folder has the formats): read with the
standard library alone, since the config check reads its class list in the Snakemake process."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError

LIST_SEPARATOR = ";"


def label_cell(multi_hot: Sequence[float], classes: Sequence[str]) -> str:
    """The classes present in a multi-hot row as one cell of the list form (``cat;dog``): what the labels files the
    pipeline writes hold, so that one of them, corrected, is a labels file again."""
    return LIST_SEPARATOR.join(name for name, on in zip(classes, multi_hot) if on > 0)


@dataclass(frozen=True)
class LabelRow:
    """One image of the labels file: where it is in the file (for errors), its entry and its class names."""

    where: str
    entry: str
    classes: tuple[str, ...]


@dataclass(frozen=True)
class LabelTable:
    """The labels file read: the class list and one row per image, in file order."""

    path: str
    classes: tuple[str, ...]
    rows: tuple[LabelRow, ...]


def _class_list(path: Path, declared: Sequence[str] | None, rows: Sequence[LabelRow], where: str) -> tuple[str, ...]:
    if declared is None:
        return tuple(sorted({name for row in rows for name in row.classes}))
    declared = tuple(declared)
    if len(set(declared)) != len(declared) or not all(isinstance(name, str) and name for name in declared):
        raise DatasetError(f"labels file {path}: the class list {where} must be distinct, non-empty names")
    return declared


def _read_csv(path: Path, classes: Sequence[str] | None) -> LabelTable:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or header[0].strip() != "image":
            raise DatasetError(f"labels file {path}: line 1 must be a header starting with the column 'image'")
        header = [name.strip() for name in header]
        lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    rows: list[LabelRow] = []
    if header == ["image", "labels"]:
        for line, row in lines:
            if len(row) != 2:
                raise DatasetError(f"labels file {path}, line {line}: expected 2 cells (image, labels), got {len(row)}")
            names = tuple(name.strip() for name in row[1].split(LIST_SEPARATOR) if name.strip())
            rows.append(LabelRow(f"line {line}", row[0].strip(), names))
        return LabelTable(str(path), _class_list(path, classes, rows, "data.classes"), tuple(rows))
    columns = header[1:]
    if not columns:
        raise DatasetError(f"labels file {path}: the header names no class column (image,<class>,... or image,labels)")
    if len(set(columns)) != len(columns) or not all(columns):
        raise DatasetError(f"labels file {path}: the class columns of line 1 must be distinct, non-empty names")
    for line, row in lines:
        if len(row) != len(header):
            raise DatasetError(f"labels file {path}, line {line}: expected {len(header)} cells as in the header, got {len(row)}")
        present = []
        for name, cell in zip(columns, row[1:]):
            if cell.strip() not in ("0", "1"):
                raise DatasetError(f"labels file {path}, line {line}: column {name!r} holds {cell!r}; expected 0 or 1")
            if cell.strip() == "1":
                present.append(name)
        rows.append(LabelRow(f"line {line}", row[0].strip(), tuple(present)))
    return LabelTable(str(path), tuple(columns), tuple(rows))


def _read_json(path: Path, classes: Sequence[str] | None) -> LabelTable:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DatasetError(f"labels file {path} is unreadable or not JSON: {error}") from error
    declared = classes
    if isinstance(content, dict) and set(content) == {"classes", "images"}:
        declared, content = content["classes"], content["images"]
        if not isinstance(declared, list):
            raise DatasetError(f"labels file {path}: 'classes' must be a list of class names")
    if not isinstance(content, dict):
        raise DatasetError(f"labels file {path}: expected an object of image -> list of class names")
    rows = []
    for entry, names in content.items():
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise DatasetError(f"labels file {path}, image {entry!r}: expected a list of class names, got {names!r}")
        rows.append(LabelRow(f"image {entry!r}", str(entry).strip(), tuple(name.strip() for name in names)))
    where = "'classes'" if declared is not classes else "data.classes"
    return LabelTable(str(path), _class_list(path, declared, rows, where), tuple(rows))


def read_label_table(path: str | os.PathLike, classes: Sequence[str] | None) -> LabelTable:
    """The labels file (.csv or .json) with its class list; ``classes`` (data.classes) declares the list for the list
    forms that give none (None: the names the file uses). Rows are checked for their class names; images and ids by :func:`index_images`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"labels file {path} does not exist")
    if path.suffix.lower() == ".csv":
        table = _read_csv(path, classes)
    elif path.suffix.lower() == ".json":
        table = _read_json(path, classes)
    else:
        raise DatasetError(f"labels file {path}: expected a .csv or .json file")
    if not table.rows:
        raise DatasetError(f"labels file {path} lists no image")
    known = set(table.classes)
    for row in table.rows:
        unknown = [name for name in row.classes if name not in known]
        if unknown:
            raise DatasetError(f"labels file {path}, {row.where}: unknown class {unknown[0]!r} (the classes are {', '.join(table.classes)})")
        if not row.classes:
            raise DatasetError(f"labels file {path}, {row.where}: {row.entry!r} has no class; every image needs one (leave it out)")
        if len(set(row.classes)) != len(row.classes):
            raise DatasetError(f"labels file {path}, {row.where}: a class is named twice")
    return table
