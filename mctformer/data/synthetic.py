"""A synthetic dataset in PASCAL VOC layout, small enough to learn on 2 CPU cores.

Each foreground class has its own shape family, texture and two-colour scheme
(with per-object jitter); images hold 1-3 distinct classes that co-occur in
pairs more often than by chance, may occlude each other, and lie on a cluttered
background (a smooth colour field, noise and random strokes and dots). Object
boundaries are colour edges, so dense CRF and random walk have something to
recover from patch-resolution attention maps.

Ground truth follows VOC: palette PNG, class index per pixel, 255 on a two-pixel
band around every label edge. Generation is deterministic: image ``i`` depends
only on ``(seed, i)``, whatever the number of worker processes.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..artifacts import atomic_directory, make_palette, save_label_png
from ..logs import progress_bar
from ..parallel import map_in_processes

IGNORE = 255
MIN_VISIBLE_PIXELS = 8
MAX_OVERLAP = 0.4
PLACEMENT_TRIES = 20
NUM_TEXTURES = 5


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. ``train`` is a subset of ``train_aug`` (as in VOC); ``val`` is disjoint.

    Every field but ``jpeg_quality`` is a config key (the ``synthetic`` section, ``seed``), none with a default.
    """

    num_classes: int
    num_train_aug: int
    num_train: int
    num_val: int
    image_size: int
    min_objects: int
    max_objects: int
    radius_range: tuple[float, float]
    seed: int
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError("synthetic data needs at least one class")
        if not 0 < self.num_train <= self.num_train_aug:
            raise ValueError("synthetic: need 0 < num_train <= num_train_aug")
        if self.num_val < 1:
            raise ValueError("synthetic: num_val must be >= 1")
        if self.image_size < 16:
            raise ValueError("synthetic: image_size must be >= 16")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError("synthetic: need 1 <= min_objects <= max_objects")
        if self.max_objects > self.num_classes:
            raise ValueError("synthetic: max_objects cannot exceed the number of classes (one object per class)")


def image_id(index: int) -> str:
    return f"syn_{index:06d}"


# ---------------------------------------------------------------- shapes ---
# Each shape is a predicate on object-frame coordinates (u, v), the object's
# radius being 1; rotating (u, v) rotates the object and its texture together.

def _shape_mask(family: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rho = np.hypot(u, v)
    phi = np.arctan2(v, u)
    family %= 12
    if family == 0:  # disc
        return rho <= 1.0
    if family == 1:  # square
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if family == 2:  # triangle
        return (v <= 0.5) & (v >= -1.0 + 1.732 * np.abs(u))
    if family == 3:  # diamond
        return np.abs(u) + np.abs(v) <= 1.0
    if family == 4:  # cross
        return ((np.abs(u) <= 0.32) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.32) & (np.abs(u) <= 1.0))
    if family == 5:  # ring
        return (rho <= 1.0) & (rho >= 0.55)
    if family == 6:  # five-pointed star
        return rho <= 0.55 + 0.45 * np.cos(5 * phi)
    if family == 7:  # ellipse
        return u**2 + (v / 0.55) ** 2 <= 1.0
    if family == 8:  # half disc
        return (rho <= 1.0) & (v >= -0.15)
    if family == 9:  # L
        return ((u >= -0.9) & (u <= -0.3) & (np.abs(v) <= 0.9)) | ((np.abs(u) <= 0.9) & (v >= 0.3) & (v <= 0.9))
    if family == 10:  # hexagon
        return np.maximum(np.abs(u) * 0.866 + np.abs(v) * 0.5, np.abs(v)) <= 0.9
    # crescent
    return (rho <= 1.0) & ((u - 0.45) ** 2 + v**2 > 0.36)


def _texture(kind: int, u: np.ndarray, v: np.ndarray, frequency: float) -> np.ndarray:
    """Mixing weight in [0, 1] between a class's two colours."""
    if kind == 0:  # solid
        return np.zeros_like(u)
    if kind == 1:  # stripes
        return (np.sin(u * frequency) > 0).astype(np.float64)
    if kind == 2:  # checker
        cell = frequency / np.pi
        return ((np.floor(u * cell) + np.floor(v * cell)) % 2).astype(np.float64)
    if kind == 3:  # dots
        cell = frequency / np.pi
        return ((((u * cell) % 1 - 0.5) ** 2 + ((v * cell) % 1 - 0.5) ** 2) < 0.09).astype(np.float64)
    # wave grid
    return ((np.sin(u * frequency) + np.sin(v * frequency)) > 0.6).astype(np.float64)


def class_appearance(class_index: int, num_classes: int) -> dict:
    """Shape family, texture and two colours of foreground class ``class_index`` (0-based)."""
    hue = (class_index * 0.618034) % 1.0  # golden-ratio spacing keeps neighbours apart
    bright = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.9)) * 255
    dark = np.array(colorsys.hsv_to_rgb((hue + 0.1) % 1.0, 0.55, 0.45)) * 255
    return {
        "shape": class_index % 12,
        "texture": class_index % NUM_TEXTURES,
        "colours": (bright, dark),
        "frequency": 7.0 + 2.0 * (class_index % 3),
    }


def _co_occurring(first: int, num_classes: int) -> int:
    return (first + 1) % num_classes


def _pick_classes(rng: np.random.Generator, spec: SyntheticSpec) -> list[int]:
    count = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    chosen = [int(rng.integers(spec.num_classes))]
    while len(chosen) < count:
        partner = _co_occurring(chosen[-1], spec.num_classes)
        if partner not in chosen and rng.random() < 0.5:
            chosen.append(partner)
            continue
        remaining = [c for c in range(spec.num_classes) if c not in chosen]
        chosen.append(int(rng.choice(remaining)))
    return chosen


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = rng.uniform(40, 215, size=(3, 3, 3))
    # Muted colours: pull each coarse colour towards its grey level.
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = grey + 0.5 * (coarse - grey)
    field = np.stack([ndimage.zoom(coarse[..., c], size / 3, order=1, mode="nearest") for c in range(3)], axis=-1)
    field = field[:size, :size]
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(int(rng.integers(5, 11))):  # clutter: strokes and dots of random colour
        colour = rng.uniform(0, 255, size=3)
        if rng.random() < 0.5:
            x0, y0, x1, y1 = rng.uniform(0, size, size=4)
            width = rng.uniform(0.5, 1.5)
            dx, dy = x1 - x0, y1 - y0
            t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
            mask = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)) <= width
        else:
            cx, cy = rng.uniform(0, size, size=2)
            mask = np.hypot(xx - cx, yy - cy) <= rng.uniform(1.0, 3.0)
        field[mask] = colour
    return field


def _ignore_band(label: np.ndarray) -> np.ndarray:
    """VOC-style ground truth: 255 on both sides of every label edge (a 2 px band)."""
    edge = ndimage.maximum_filter(label, size=3) != ndimage.minimum_filter(label, size=3)
    banded = label.copy()
    banded[edge] = IGNORE
    return banded


def render_image(spec: SyntheticSpec, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` as (RGB uint8 [S, S, 3], label uint8 [S, S] with 255 bands)."""
    rng = np.random.default_rng([spec.seed, index])
    size = spec.image_size
    image = _background(rng, size)
    label = np.zeros((size, size), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5

    for class_index in _pick_classes(rng, spec):
        look = class_appearance(class_index, spec.num_classes)
        for _ in range(PLACEMENT_TRIES):
            radius = rng.uniform(*spec.radius_range) * size
            cx, cy = rng.uniform(0.6 * radius, size - 0.6 * radius, size=2)
            theta = rng.uniform(0, 2 * np.pi)
            u = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / radius
            v = (-(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)) / radius
            mask = _shape_mask(look["shape"], u, v)
            area = int(mask.sum())
            if area < 2 * MIN_VISIBLE_PIXELS:
                continue
            if (mask & (label > 0)).sum() > MAX_OVERLAP * area:
                continue
            trial = label.copy()
            trial[mask] = class_index + 1
            banded = _ignore_band(trial)
            present = np.unique(trial[trial > 0])
            if any((banded == value).sum() < MIN_VISIBLE_PIXELS for value in present):
                continue
            label = trial
            weight = _texture(look["texture"], u, v, look["frequency"] * rng.uniform(0.85, 1.15))[..., None]
            bright, dark = look["colours"]
            colour = bright * (1 - weight) + dark * weight
            colour = colour * rng.uniform(0.85, 1.15)
            image[mask] = colour[mask]
            break

    image = image + rng.normal(0, 6.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), _ignore_band(label)


def _write_range(args: tuple[SyntheticSpec, str, int, int, list]) -> None:
    spec, root, start, stop, palette = args
    root_path = Path(root)
    palette_array = np.asarray(palette, dtype=np.uint8)
    for index in range(start, stop):
        image, label = render_image(spec, index)
        Image.fromarray(image).save(root_path / "JPEGImages" / f"{image_id(index)}.jpg", quality=spec.jpeg_quality)
        save_label_png(root_path / "SegmentationClassAug" / f"{image_id(index)}.png", label, palette_array, atomic=False)


def generate_synthetic_voc(
    out_root: str | os.PathLike,
    spec: SyntheticSpec,
    *,
    palette: Sequence[Sequence[int]] | None,
    workers: int,
    chunk: int = 250,
) -> None:
    """Write a complete VOC-layout tree at ``out_root`` (atomically: all or nothing); ``palette``: data.palette
    (None = the VOC colour map), ``workers``: processes."""
    total = spec.num_train_aug + spec.num_val
    palette_list = make_palette(palette).tolist()
    with atomic_directory(out_root) as tmp:
        (tmp / "JPEGImages").mkdir()
        (tmp / "SegmentationClassAug").mkdir()
        lists = tmp / "ImageSets" / "Segmentation"
        lists.mkdir(parents=True)
        jobs = [(spec, str(tmp), s, min(s + chunk, total), palette_list) for s in range(0, total, chunk)]
        progress = progress_bar(total=total, desc="synthetic images", unit="img")
        for job, _ in zip(jobs, map_in_processes(_write_range, jobs, workers)):
            progress.update(job[3] - job[2])
        progress.close()
        ids = [image_id(i) for i in range(total)]
        splits = {
            "train_aug": ids[: spec.num_train_aug],
            "train": ids[: spec.num_train],
            "val": ids[spec.num_train_aug :],
        }
        for name, split_ids in splits.items():
            (lists / f"{name}.txt").write_text("\n".join(split_ids) + "\n")
