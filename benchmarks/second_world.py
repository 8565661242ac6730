"""A VOC-layout root drawn by a second, independent generator, to check that the shipped recipe is not tuned to
its own world (the embedded-benchmark issue's hidden-dataset check, reproduced here as well as this machine can).

Nothing here comes from ``mctformer.data.synthetic`` (only the VOC palette and PNG writer are shared): other shapes, other textures, another colour law, another
background, written with numpy and scipy.ndimage alone. The same phenomena, drawn differently:
- **parts**: an object is a class-specific part (class k: its own glyph, two colours of its own) covering about a
  third of an elliptical body; the body takes one of six colours that every class and the background share;
- **context**: class k's context (stripes at k's own angle, background in the ground truth) lies beside 60 % of
  its objects and appears without them in 20 % of the images;
- **shared appearance**: the background is smooth colour noise over the same six colours, with distractor
  ellipses that are bodies without a part;
- 1-3 classes per image, 1-2 objects each, radii 8-18 px of 64, a 1 px ignore band on object boundaries (VOC's).

    .venv/bin/python benchmarks/second_world.py OUT_ROOT [--images 6000 --train 500 --val 300 --seed 7]
    snakemake --cores all --configfile OVERLAY.yaml    # data: {source: voc, root: OUT_ROOT}, run_name: second_world
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from mctformer.artifacts import save_label_png, voc_palette

SIZE = 64
NUM_CLASSES = 5
# six colours shared by bodies, distractors and the background field
SHARED = np.array([[150, 120, 90], [90, 130, 150], [120, 150, 100], [160, 150, 140], [110, 100, 130], [140, 110, 120]], float)
# each class's part: two colours of its own
PART_COLOURS = np.array([
    [[230, 40, 40], [250, 220, 60]], [[40, 200, 230], [20, 40, 160]], [[240, 120, 20], [90, 20, 90]],
    [[60, 220, 90], [230, 230, 230]], [[220, 60, 200], [30, 30, 30]],
], float)
CONTEXT_ANGLES = np.deg2rad([0, 36, 72, 108, 144])
CONTEXT_PROBABILITY, CONTEXT_ALONE_PROBABILITY = 0.6, 0.2


def glyph(klass: int, rows: np.ndarray, cols: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Class ``klass``'s part around (0, 0) on the offsets ``rows``, ``cols``: (its mask, its second-colour mask)."""
    distance = np.hypot(rows, cols)
    if klass == 0:  # a ring with a dot
        mask = (distance < radius) & ((distance > 0.6 * radius) | (distance < 0.25 * radius))
        second = distance < 0.25 * radius
    elif klass == 1:  # a plus
        mask = ((np.abs(rows) < 0.28 * radius) | (np.abs(cols) < 0.28 * radius)) & (np.maximum(np.abs(rows), np.abs(cols)) < radius)
        second = np.abs(rows) < 0.28 * radius
    elif klass == 2:  # a checkered square
        mask = np.maximum(np.abs(rows), np.abs(cols)) < 0.85 * radius
        second = ((np.floor(rows / 2) + np.floor(cols / 2)) % 2) == 0
    elif klass == 3:  # a triangle with stripes
        mask = (rows < 0.7 * radius) & (rows > -radius + 1.7 * np.abs(cols))
        second = (np.floor(rows / 2) % 2) == 0
    else:  # a diagonal bar pair
        mask = (np.abs(rows - cols) < 0.45 * radius) & (distance < radius) | (np.abs(rows + cols) < 0.3 * radius) & (distance < radius)
        second = np.abs(rows + cols) < 0.3 * radius
    return mask, mask & second


def ellipse(rows, cols, centre, radii, angle):
    dr, dc = rows - centre[0], cols - centre[1]
    u = dr * np.cos(angle) + dc * np.sin(angle)
    v = -dr * np.sin(angle) + dc * np.cos(angle)
    return (u / radii[0]) ** 2 + (v / radii[1]) ** 2 < 1


def draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    # background: smooth noise mixing the shared colours
    weights = ndimage.gaussian_filter(rng.random((len(SHARED), SIZE, SIZE)), sigma=(0, 6, 6))
    weights = np.exp(4 * (weights - weights.mean()) / weights.std())  # sharp enough that each region has one colour
    image = np.einsum("khw,kc->hwc", weights / weights.sum(0), SHARED)
    label = np.zeros((SIZE, SIZE), np.uint8)
    present = rng.choice(NUM_CLASSES, size=rng.integers(1, 4), replace=False)
    # distractors: bodies without a part
    for _ in range(rng.integers(1, 4)):
        mask = ellipse(rows, cols, rng.uniform(0, SIZE, 2), rng.uniform(4, 12, 2), rng.uniform(0, np.pi))
        image[mask] = SHARED[rng.integers(len(SHARED))] + rng.normal(0, 4, 3)
    contexts = [k for k in range(NUM_CLASSES) if k not in present and rng.random() < CONTEXT_ALONE_PROBABILITY]
    objects = []
    for klass in present:
        for _ in range(rng.integers(1, 3)):
            objects.append((klass, rng.uniform(8, SIZE - 8, 2), rng.uniform(8, 18), rng.uniform(0, np.pi)))
            if rng.random() < CONTEXT_PROBABILITY:
                contexts.append((klass, objects[-1]))
    for entry in contexts:  # contexts first: objects lie on them
        if isinstance(entry, tuple):
            klass, (_, centre, radius, _) = entry
            region = ellipse(rows, cols, centre + rng.normal(0, radius * 0.5, 2), (radius * 1.6, radius * 1.1), rng.uniform(0, np.pi))
        else:
            klass = entry
            region = ellipse(rows, cols, rng.uniform(0, SIZE, 2), rng.uniform(8, 16, 2), rng.uniform(0, np.pi))
        angle = CONTEXT_ANGLES[klass]
        stripes = np.sin((rows * np.cos(angle) + cols * np.sin(angle)) * 1.6) > 0
        dark, light = SHARED[rng.choice(len(SHARED), 2, replace=False)]
        image[region] = np.where(stripes[region][:, None], light, dark * 0.8)
    for klass, centre, radius, angle in objects:
        body = ellipse(rows, cols, centre, (radius, radius * rng.uniform(0.6, 1.0)), angle)
        image[body] = SHARED[rng.integers(len(SHARED))] + rng.normal(0, 4, 3)
        # the part: a glyph about a third of the body's area, placed inside it
        part_radius = radius * 0.62
        offset = rng.normal(0, radius * 0.2, 2)
        mask, second = glyph(klass, rows - centre[0] - offset[0], cols - centre[1] - offset[1], part_radius)
        mask &= body
        image[mask] = PART_COLOURS[klass, 0]
        image[mask & second] = PART_COLOURS[klass, 1]
        label[body] = klass + 1
    # VOC's ignore band: 1 px around each object's boundary
    edges = ndimage.morphological_gradient(label, size=3) > 0
    label[edges & (ndimage.grey_dilation(label, size=3) > 0)] = 255
    image = image + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_root(out: Path, images: int, train: int, val: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"):
        (tmp / folder).mkdir(parents=True)
    palette = voc_palette()
    ids = [f"w2_{index:06d}" for index in range(images + val)]
    for image_id in ids:
        image, label = draw(rng)
        Image.fromarray(image).save(tmp / "JPEGImages" / f"{image_id}.jpg", quality=92)
        save_label_png(tmp / "SegmentationClassAug" / f"{image_id}.png", label, palette, atomic=False)  # the tree is renamed whole
    lists = {"train_aug": ids[:images], "train": ids[:train], "val": ids[images:]}
    for split, split_ids in lists.items():
        (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(split_ids) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=6000, help="train_aug images")
    parser.add_argument("--train", type=int, default=500, help="the first N of train_aug: the train split")
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_root(args.out, args.images, args.train, args.val, args.seed)
    print(f"wrote {args.images + args.val} images to {args.out}")


if __name__ == "__main__":
    main()
