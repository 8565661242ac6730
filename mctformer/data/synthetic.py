"""A synthetic dataset in PASCAL VOC layout, small enough to learn on 2 CPU cores.

Each foreground class has its own shape family, texture and two-colour scheme
(with per-object jitter); images hold 1-3 distinct classes that co-occur in
pairs more often than by chance, may occlude each other, and lie on a cluttered
background (a smooth colour field, noise and random strokes and dots). Object
boundaries are colour edges, so dense CRF and random walk have something to
recover from patch-resolution attention maps.

That is the *classic* world, and colour alone gives the class there. The knobs
below turn on what real images do to weakly supervised segmentation (the parts
world; all knobs off = the classic world, drawn by the same code as before):

- ``part_fraction`` < 1: an object is a class-specific *part* (the class's shape,
  texture and colours) on a larger *body* whose shape, texture and colours come
  from a pool of ``body_pool`` appearances shared by all classes, so image-level
  labels teach the part and the body must be recovered (under-activation);
  ``bodies_per_class`` < ``body_pool`` lets each class draw its bodies from its own
  consecutive entries of the pool (2: each body shared by two classes), so the body
  says something of the class, as a person's clothes do;
- ``context_probability``: each class has a background *context* (a region with a
  class-specific texture) that lies under and around an object of the class with
  this probability; ``context_alone_probability``: an image shows the context of
  a class it does not hold (over-activation: boat/water, train/rails);
- ``body_texture``: ``pool`` (each body-pool entry has its own texture, from the
  contexts' families) or ``solid`` (one colour per body: texture then tells a body
  from a context, colour still does not);
- ``part_on_body_colour``: the part's pattern is drawn in its class's bright colour
  on its body's colour (instead of the class's dark one), so a part and its body
  share a colour, as a face and a neck do, and a colour CRF can cross between them;
- ``shared_colours``: body and context colours are drawn from the background's
  colour law, so no colour identifies a class or tells object from background;
- ``instances_max``: up to this many objects of each present class;
- ``thin_probability``: an object gets 1-3 thin limbs (3-4 px wide).

Ground truth follows VOC: palette PNG, class index per pixel, 255 on a two-pixel
band around every label edge; the whole object (part, body, limbs) is its class,
a context region is background (0). Generation is deterministic: image ``i``
depends only on ``(seed, i)``, whatever the number of worker processes.
"""

from __future__ import annotations

import colorsys
import functools
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
from .voc import IGNORE

MIN_VISIBLE_PIXELS = 8
MAX_OVERLAP = 0.4
PLACEMENT_TRIES = 20
NUM_TEXTURES = 5
# synthetic.body_texture: "pool" = each body-pool entry has its own texture (stripes, checker, dots, waves: the
# contexts' families, so texture does not tell a body from a context either); "solid" = one colour per body
# (with the per-object brightness jitter), so texture tells a body from a context but colour still does not.
BODY_TEXTURES = ("pool", "solid")


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
    part_fraction: float
    body_pool: int
    bodies_per_class: int
    body_texture: str
    part_on_body_colour: bool
    shared_colours: bool
    context_probability: float
    context_alone_probability: float
    instances_max: int
    thin_probability: float
    seed: int
    jpeg_quality: int = 90

    @property
    def classic(self) -> bool:
        """Today's world: no body, no context, one object per class, no limbs (``shared_colours`` then has nothing to
        colour); drawn by the original code, byte for byte."""
        return (
            self.part_fraction == 1.0
            and self.context_probability == 0.0
            and self.context_alone_probability == 0.0
            and self.instances_max == 1
            and self.thin_probability == 0.0
        )

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
        if not 0.0 < self.part_fraction <= 1.0:
            raise ValueError("synthetic: part_fraction must be in (0, 1]")
        if self.body_pool < 1:
            raise ValueError("synthetic: body_pool must be >= 1")
        if not 1 <= self.bodies_per_class <= self.body_pool:
            raise ValueError("synthetic: need 1 <= bodies_per_class <= body_pool")
        if self.body_texture not in BODY_TEXTURES:
            raise ValueError(f"synthetic: body_texture must be one of {BODY_TEXTURES}, got {self.body_texture!r}")
        for name in ("context_probability", "context_alone_probability", "thin_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"synthetic: {name} must be in [0, 1]")
        if self.instances_max < 1:
            raise ValueError("synthetic: instances_max must be >= 1")


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


def _placed(label: np.ndarray, mask: np.ndarray, class_index: int, area: int) -> np.ndarray | None:
    """``label`` with the object ``mask`` painted in as ``class_index``, or None when the object would hide more
    than MAX_OVERLAP of itself behind what is there, or leave a class with fewer than MIN_VISIBLE_PIXELS
    once the ignore band is drawn (pure checks: no random draw, so both worlds keep their streams)."""
    if (mask & (label > 0)).sum() > MAX_OVERLAP * area:
        return None
    trial = label.copy()
    trial[mask] = class_index + 1
    banded = _ignore_band(trial)
    present = np.unique(trial[trial > 0])
    if any((banded == value).sum() < MIN_VISIBLE_PIXELS for value in present):
        return None
    return trial


def _render_classic(spec: SyntheticSpec, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Today's world (``spec.classic``), unchanged: the same draws in the same order, byte for byte."""
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
            trial = _placed(label, mask, class_index, area)
            if trial is None:
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


def render_image(spec: SyntheticSpec, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` as (RGB uint8 [S, S, 3], label uint8 [S, S] with 255 bands)."""
    if spec.classic:
        return _render_classic(spec, index)
    layers = render_layers(spec, index)
    return layers.image, layers.label


# ----------------------------------------------------------- parts world ---
# Roles of the pixels of a parts-world image (render_layers): what painted each pixel last.
ROLE_BACKGROUND, ROLE_CONTEXT, ROLE_BODY, ROLE_PART, ROLE_THIN = 0, 1, 2, 3, 4
BODY_SHAPES = (0, 1, 7, 10, 3)  # disc, square, ellipse, hexagon, diamond: the body pool's (solid) shape families
PART_OFFSET = 0.6  # the part's centre lies this many body radii from the body's centre (a head on the rim)
MAX_PART_SCALE = 2.4  # the largest part, in body radii (part_fraction near 1 covers the body)
MAX_PART_COVERED = 0.5  # a later object may hide at most this share of an earlier object's visible part
CONTEXT_UNIT = 0.1  # context textures are drawn in units of this share of the image size


@dataclass(frozen=True)
class Layers:
    """A parts-world image with what made it: ``role`` [S, S] (ROLE_*), ``instance`` [S, S] (0 = none, else the
    1-based index into ``objects``), ``objects`` (one dict per placed object: class, body, context, limbs) and
    ``stray_context`` (the class whose context appears without it, or None)."""

    image: np.ndarray
    label: np.ndarray
    role: np.ndarray
    instance: np.ndarray
    objects: tuple
    stray_context: int | None


def body_appearance(entry: int) -> dict:
    """Shape family, texture, two colours and frequency of body-pool entry ``entry`` (shared by every class)."""
    hue = (0.31 + entry * 0.618034) % 1.0
    light = np.array(colorsys.hsv_to_rgb(hue, 0.35, 0.75)) * 255
    dark = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.3, 0.4)) * 255
    return {
        "shape": BODY_SHAPES[entry % len(BODY_SHAPES)],
        "texture": (entry + 1) % NUM_TEXTURES,
        "colours": (light, dark),
        "frequency": 5.0 + 1.5 * (entry % 3),
    }


def context_appearance(class_index: int) -> dict:
    """Texture (never solid), orientation, frequency and two colours of foreground class ``class_index``'s context."""
    hue = (class_index * 0.618034 + 0.5) % 1.0
    return {
        "texture": 1 + class_index % (NUM_TEXTURES - 1),
        "angle": (class_index * 2.399963) % np.pi,
        "frequency": 4.0 + class_index % 3,
        "colours": (
            np.array(colorsys.hsv_to_rgb(hue, 0.4, 0.65)) * 255,
            np.array(colorsys.hsv_to_rgb((hue + 0.05) % 1.0, 0.45, 0.35)) * 255,
        ),
    }


def _shared_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour of the background's law (the coarse field of _background): muted, pulled halfway to its grey."""
    colour = rng.uniform(40, 215, size=3)
    grey = colour.mean()
    return grey + 0.5 * (colour - grey)


@functools.cache
def _part_scale(body_shape: int, part_shape: int, fraction: float) -> float:
    """The part's radius, in body radii, at which part / (body | part) = ``fraction`` (bisection on a fine grid)."""
    extent = PART_OFFSET + MAX_PART_SCALE * 1.05
    grid = np.linspace(-extent, extent, 201)
    u, v = np.meshgrid(grid, grid)
    body = _shape_mask(body_shape, u, v)
    low, high = 0.0, MAX_PART_SCALE
    for _ in range(20):
        scale = 0.5 * (low + high)
        part = _shape_mask(part_shape, u / scale, (v + PART_OFFSET) / scale)
        if part.sum() < fraction * (body | part).sum():
            low = scale
        else:
            high = scale
    return high


def _object_masks(spec: SyntheticSpec, class_index: int, body: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(part, body) masks in object-frame coordinates; with part_fraction 1 the part is the whole (classic) shape."""
    part_shape = class_appearance(class_index, spec.num_classes)["shape"]
    if spec.part_fraction >= 1.0:
        return _shape_mask(part_shape, u, v), np.zeros(u.shape, dtype=bool)
    body_shape = body_appearance(body)["shape"]
    scale = _part_scale(body_shape, part_shape, spec.part_fraction)
    part = _shape_mask(part_shape, u / scale, (v + PART_OFFSET) / scale)
    return part, _shape_mask(body_shape, u, v) & ~part


def _body_entry(spec: SyntheticSpec, class_index: int, draw: int) -> int:
    """The body-pool entry of an object of ``class_index``: the ``draw``-th of its class's ``bodies_per_class``
    consecutive entries (from entry ``class_index``), or of the whole pool when that is every entry."""
    if spec.bodies_per_class == spec.body_pool:
        return draw
    return (class_index + draw) % spec.body_pool


def _limbs(rng: np.random.Generator, cx: float, cy: float, radius: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """1-3 thin straight limbs (3-4 px wide: a labelled core survives the ignore band) from inside the object outwards."""
    mask = np.zeros(xx.shape, dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        phi = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(1.3, 1.9) * radius
        half_width = rng.uniform(1.6, 2.2)
        dx, dy = np.cos(phi), np.sin(phi)
        x0, y0 = cx + 0.3 * radius * dx, cy + 0.3 * radius * dy
        t = np.clip((xx - x0) * dx + (yy - y0) * dy, 0, length)
        mask |= np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)) <= half_width
    return mask


def _context_region(rng: np.random.Generator, cx: float, cy: float, radius: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """An ellipse under and around an object at (cx, cy): wider than the object, its top at about the object's middle."""
    ex = cx + rng.uniform(-0.3, 0.3) * radius
    ey = cy + 0.6 * radius
    a, b = rng.uniform(1.6, 2.2) * radius, rng.uniform(0.9, 1.3) * radius
    return ((xx - ex) / a) ** 2 + ((yy - ey) / b) ** 2 <= 1.0


def _paint_texture(
    rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, kind: int, u: np.ndarray, v: np.ndarray,
    frequency: float, colours: tuple[np.ndarray, np.ndarray],
) -> None:
    weight = _texture(kind, u, v, frequency * rng.uniform(0.85, 1.15))[..., None]
    first, second = colours
    colour = (first * (1 - weight) + second * weight) * rng.uniform(0.85, 1.15)
    image[mask] = colour[mask]


def render_layers(spec: SyntheticSpec, index: int) -> Layers:
    """Parts-world image ``index`` (any spec that is not ``classic``) with its pixels' roles and objects."""
    if spec.classic:
        raise ValueError("render_layers draws the parts world; this spec is the classic one (see SyntheticSpec.classic)")
    rng = np.random.default_rng([spec.seed, index])
    size = spec.image_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    label = np.zeros((size, size), dtype=np.uint8)
    part_owner = np.zeros((size, size), dtype=np.int16)  # which object's part is visible where (0: none)
    objects: list[dict] = []

    # Geometry: place the objects one after the other (later ones occlude earlier ones), as in the classic world.
    for class_index in _pick_classes(rng, spec):
        for _ in range(int(rng.integers(1, spec.instances_max + 1))):
            for _ in range(PLACEMENT_TRIES):
                radius = rng.uniform(*spec.radius_range) * size
                cx, cy = rng.uniform(0.6 * radius, size - 0.6 * radius, size=2)
                theta = rng.uniform(0, 2 * np.pi)
                body = _body_entry(spec, class_index, int(rng.integers(spec.bodies_per_class)))
                u = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / radius
                v = (-(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)) / radius
                part, body_mask = _object_masks(spec, class_index, body, u, v)
                limbs = _limbs(rng, cx, cy, radius, xx, yy) if rng.random() < spec.thin_probability else None
                mask = part | body_mask if limbs is None else part | body_mask | limbs
                area = int(mask.sum())
                if area < 2 * MIN_VISIBLE_PIXELS or part.sum() < MIN_VISIBLE_PIXELS:
                    continue
                visible_parts = np.bincount(part_owner.ravel(), minlength=len(objects) + 1)[1:]
                hidden_parts = np.bincount(part_owner[mask], minlength=len(objects) + 1)[1:]
                if (hidden_parts > MAX_PART_COVERED * visible_parts).any():
                    continue
                trial = _placed(label, mask, class_index, area)
                if trial is None:
                    continue
                label = trial
                part_owner[mask] = 0
                part_owner[part] = len(objects) + 1
                context = _context_region(rng, cx, cy, radius, xx, yy) if rng.random() < spec.context_probability else None
                objects.append(dict(
                    class_index=class_index, body=body if body_mask.any() else None, u=u, v=v, part=part,
                    body_mask=body_mask, limbs=limbs, context=context,
                ))
                break

    # A context without its class: the context of a class the image does not hold, somewhere in the image.
    stray_context, stray_region = None, None
    absent = sorted(set(range(spec.num_classes)) - {o["class_index"] for o in objects})
    if absent and rng.random() < spec.context_alone_probability:
        stray_context = int(rng.choice(absent))
        radius = rng.uniform(*spec.radius_range) * size
        cx, cy = rng.uniform(0, size, size=2)
        stray_region = _context_region(rng, cx, cy, radius, xx, yy)

    # Appearance: background, then the contexts, then the objects in placement order.
    image = _background(rng, size)
    role = np.zeros((size, size), dtype=np.uint8)
    instance = np.zeros((size, size), dtype=np.int16)
    contexts = [(o["class_index"], o["context"]) for o in objects if o["context"] is not None]
    if stray_region is not None:
        contexts.append((stray_context, stray_region))
    for class_index, region in contexts:
        look = context_appearance(class_index)
        colours = (_shared_colour(rng), _shared_colour(rng)) if spec.shared_colours else look["colours"]
        cu = (xx * np.cos(look["angle"]) + yy * np.sin(look["angle"])) / (CONTEXT_UNIT * size)
        cv = (-xx * np.sin(look["angle"]) + yy * np.cos(look["angle"])) / (CONTEXT_UNIT * size)
        _paint_texture(rng, image, region, look["texture"], cu, cv, look["frequency"], colours)
        role[region] = ROLE_CONTEXT
    for number, obj in enumerate(objects, start=1):
        look = class_appearance(obj["class_index"], spec.num_classes)
        part_colours = look["colours"]
        if obj["body"] is not None:
            body_look = body_appearance(obj["body"])
            colours = (_shared_colour(rng), _shared_colour(rng)) if spec.shared_colours else body_look["colours"]
            texture = body_look["texture"] if spec.body_texture == "pool" else 0  # 0: solid
            _paint_texture(rng, image, obj["body_mask"], texture, obj["u"], obj["v"], body_look["frequency"], colours)
            if spec.part_on_body_colour:
                part_colours = (look["colours"][0], colours[0])
            role[obj["body_mask"]] = ROLE_BODY
        else:
            colours = look["colours"][1:]  # no body: the limbs take the part's dark colour
        if obj["limbs"] is not None:
            limbs = obj["limbs"] & ~obj["part"] & ~obj["body_mask"]
            image[limbs] = colours[0] * rng.uniform(0.85, 1.15)
            role[limbs] = ROLE_THIN
        _paint_texture(rng, image, obj["part"], look["texture"], obj["u"], obj["v"], look["frequency"], part_colours)
        role[obj["part"]] = ROLE_PART
        instance[obj["part"] | obj["body_mask"] | (obj["limbs"] if obj["limbs"] is not None else False)] = number

    image = image + rng.normal(0, 6.0, size=image.shape)
    summary = tuple(
        {"class_index": o["class_index"], "body": o["body"], "context": o["context"] is not None, "limbs": o["limbs"] is not None}
        for o in objects
    )
    return Layers(np.clip(image, 0, 255).astype(np.uint8), _ignore_band(label), role, instance, summary, stray_context)


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
