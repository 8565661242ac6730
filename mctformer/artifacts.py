"""Atomic artifact writing and the on-disk formats shared by the stages.

Every artifact is written under a temporary name in the same folder and then
renamed, so a killed job never leaves a file (or a ``directory()`` output) that
looks complete to Snakemake.

Map files (``<id>.npz``) hold two arrays:
  ``labels`` int16 [K]: segmentation values (1..C) of the classes present in the
      image; background (0) is never stored,
  ``maps``   float16 (or float32, maps.storage_dtype) [K, H, W]: one localization map per class, in [0, 1].
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def _temporary_sibling(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path; on success it is renamed to ``path``.

    The temporary keeps the final suffix so that libraries choosing a format by
    extension (PIL, numpy, matplotlib) write the right one.
    """
    path = Path(path)
    tmp = _temporary_sibling(path, suffix=path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Delete the temporary folders a killed job left while filling ``path`` (``.<name>.<8 chars>.tmp``).

    Safe because Snakemake lets one job at a time write an output; without it
    every kill would leave a partial copy of the output behind for good.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    if path.parent.is_dir():
        for entry in path.parent.iterdir():
            if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        # mkdtemp makes it private (0700); give the folder the permissions a plain mkdir would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The object a JSON file holds (a stage's best.json, eval summary, label stats)."""
    with open(path) as handle:
        return json.load(handle)


def write_dataframe_csv(path: str | os.PathLike, frame: Any) -> None:
    """Write a pandas DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def save_figure(path: str | os.PathLike, figure: Any, dpi: int = 120) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, bbox_inches="tight")


def voc_palette(num_entries: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: entry i's RGB bits come from i's bits, interleaved."""
    palette = np.zeros((num_entries, 3), dtype=np.uint8)
    for index in range(num_entries):
        value, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def make_palette(colours: Sequence[Sequence[int]] | None) -> np.ndarray:
    """A 256-entry palette: the VOC colour map, with ``colours`` (if given) over its first entries."""
    palette = voc_palette()
    if colours:
        palette[: len(colours)] = np.asarray(colours, dtype=np.uint8)
    return palette


def save_label_png(path: str | os.PathLike, label: np.ndarray, palette: np.ndarray, atomic: bool = True) -> None:
    """Save a class-index map (uint8, 255 = ignore) as a palette PNG."""
    if label.dtype != np.uint8:
        if label.min(initial=0) < 0 or label.max(initial=0) > 255:
            raise ValueError(f"{path}: label values must lie in 0..255")
        label = label.astype(np.uint8)
    image = Image.fromarray(label, mode="P")
    image.putpalette(palette.reshape(-1).tolist())
    if atomic:
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
    else:
        image.save(path, format="PNG")


def save_map_file(path: str | os.PathLike, labels: np.ndarray, maps: np.ndarray, *, dtype: str, atomic: bool = True) -> None:
    """Write one image's localization maps (format in the module docstring), as ``dtype`` float16 or float32 (maps.storage_dtype).

    ``atomic=False`` is for files inside a folder that is itself being written atomically.
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"maps.storage_dtype must be float16 or float32, got {dtype!r}")
    labels = np.asarray(labels, dtype=np.int16)
    maps = np.asarray(maps, dtype=dtype)
    if maps.ndim != 3 or maps.shape[0] != labels.shape[0]:
        raise ValueError(f"{path}: maps {maps.shape} do not match labels {labels.shape}")
    if not atomic:
        np.savez_compressed(path, labels=labels, maps=maps)
        return
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, labels=labels, maps=maps)


def load_map_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(labels int64 [K], maps float32 [K, H, W])`` written by :func:`save_map_file`."""
    try:
        with np.load(path) as data:
            labels = data["labels"].astype(np.int64)
            maps = data["maps"].astype(np.float32)
    except FileNotFoundError:
        raise FileNotFoundError(f"map file missing: {path}") from None
    except Exception as error:  # zipfile/pickle errors say nothing about which file
        raise ValueError(f"unreadable map file {path}: {error}") from error
    if maps.ndim != 3 or maps.shape[0] != labels.shape[0]:
        raise ValueError(f"map file {path}: maps {maps.shape} do not match labels {labels.shape}")
    return labels, maps


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """A class-index PNG (palette or grey) as uint8 [H, W]; errors name the file."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise ValueError(f"label {path} has mode {image.mode}; expected a palette or grey PNG of class indices")
            return np.asarray(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"label file {path} does not exist") from None
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"label file {path} is unreadable or corrupt: {error}") from error


def require_per_image_files(folder: str | os.PathLike, ids: Sequence[str], suffix: str, what: str) -> None:
    """Refuse, naming an example, when ``folder`` lacks ``<id><suffix>`` for some of ``ids``."""
    missing = [image_id for image_id in ids if not os.path.isfile(os.path.join(folder, f"{image_id}{suffix}"))]
    if missing:
        raise FileNotFoundError(f"{what} missing for {len(missing)} of {len(ids)} images, e.g. {os.path.join(folder, missing[0] + suffix)}")
