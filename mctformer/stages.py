"""One function per pipeline stage: what each Snakemake rule script calls.

Each takes plain paths and config sections, reads the previous stage's files
and writes its own (atomically). Nothing here knows about Snakemake.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .data.labels import build_class_labels, load_class_labels, save_class_labels
from .data.layout import open_layout
from .data.synthetic import SyntheticSpec, generate_synthetic_voc
from .io import save_figure, write_dataframe_csv, write_json
from .localize import extract_maps, resolve_device
from .metrics import best_threshold, sweep_split, sweep_table, threshold_grid
from .training.classifier import load_classifier, train_classifier
from .training.common import set_threads


def prepare_synthetic_data(out_root: str, data: Mapping[str, Any], synthetic: Mapping[str, Any], seed: int, workers: int = 1) -> dict:
    """Generate the synthetic VOC-layout tree at ``out_root``."""
    spec = SyntheticSpec(
        num_classes=len(data["classes"]),
        num_train_aug=synthetic["num_train_aug"],
        num_train=synthetic["num_train"],
        num_val=synthetic["num_val"],
        image_size=synthetic["image_size"],
        min_objects=synthetic["min_objects"],
        max_objects=synthetic["max_objects"],
        radius_range=tuple(synthetic["radius_range"]),
        seed=seed,
    )
    started = time.time()
    generate_synthetic_voc(out_root, spec, palette=data.get("palette"), workers=workers)
    seconds = time.time() - started
    print(f"generated {spec.num_train_aug + spec.num_val} images in {seconds:.1f} s")
    return {"seconds": seconds}


def make_class_labels(root: str, layout: str, classes: Sequence[str], splits: Sequence[str], out_path: str, workers: int = 1) -> None:
    """``cls_labels.npy`` for every id of ``splits``, from the ground-truth masks."""
    reader = open_layout(root, layout, len(classes))
    ids = [image_id for split in splits for image_id in reader.read_ids(split)]
    labels = build_class_labels(reader, ids, workers=workers)
    counts = np.stack(list(labels.values())).sum(axis=0)
    print("images per class:", dict(zip(classes, counts.astype(int).tolist())))
    save_class_labels(out_path, labels)


def train_classifier_stage(
    root: str, layout: str, classes: Sequence[str], labels_path: str, splits: Mapping[str, Any],
    settings: Mapping[str, Any], seed: int, device: str, checkpoint: str, log_csv: str, resume: str, threads: int = 1,
) -> None:
    set_threads(threads)
    reader = open_layout(root, layout, len(classes))
    train_ids = reader.read_ids(splits["train"])
    val_ids = reader.read_ids(splits["val"])
    labels = load_class_labels(labels_path, train_ids + val_ids, len(classes))
    summary = train_classifier(
        reader, train_ids, val_ids, labels, settings, checkpoint, log_csv, resume,
        device=resolve_device(device), seed=seed, workers=settings["workers"],
    )
    print(f"classifier trained in {summary['seconds']:.1f} s: {summary['final']}")


def extract_maps_stage(
    root: str, layout: str, classes: Sequence[str], labels_path: str, checkpoint: str, splits: Sequence[str],
    settings: Mapping[str, Any], device: str, out_dirs: Mapping[str, str], overlay_dir: str | None, threads: int = 1,
) -> None:
    set_threads(threads)
    reader = open_layout(root, layout, len(classes))
    ids = list(dict.fromkeys(i for split in splits for i in reader.read_ids(split)))
    labels = load_class_labels(labels_path, ids, len(classes))
    torch_device = resolve_device(device)
    model = load_classifier(checkpoint, len(classes), torch_device)
    started = time.time()
    extract_maps(
        model, reader, ids, labels, out_dirs,
        scales=settings["scales"], flip=settings["flip"], last_k=settings["last_k"],
        feature_temperature=settings["feature_temperature"], batch_size=settings["batch_size"],
        device=torch_device, overlay_dir=overlay_dir, num_overlays=settings["overlays"],
    )
    print(f"extracted maps of {len(ids)} images in {time.time() - started:.1f} s")


def evaluate_seeds_stage(
    root: str, layout: str, classes: Sequence[str], labels_path: str, split: str, map_dirs: Mapping[str, str],
    thresholds: Mapping[str, float], out_files: Mapping[str, Mapping[str, str]], plot_path: str,
) -> dict[str, dict]:
    """Threshold sweep of every variant on ``split``; writes sweep.csv/best.json per variant and one plot."""
    reader = open_layout(root, layout, len(classes))
    ids = reader.read_ids(split)
    labels = load_class_labels(labels_path, ids, len(classes))
    grid = threshold_grid(thresholds["start"], thresholds["stop"], thresholds["step"])
    label_names = ["background", *classes]
    tables, bests = {}, {}
    confusions = sweep_split(map_dirs, ids, reader.load_mask, grid, len(label_names), labels)
    for variant in map_dirs:
        tables[variant] = sweep_table(confusions[variant], grid, label_names)
        bests[variant] = best_threshold(tables[variant])
        write_dataframe_csv(out_files[variant]["sweep"], tables[variant])
        write_json(out_files[variant]["best"], bests[variant])
        print(f"{split} {variant}: best mIoU {bests[variant]['miou']:.4f} at t = {bests[variant]['threshold']:.2f}")
    save_figure(plot_path, sweep_figure(tables, bests, title=f"seed mIoU vs background threshold ({split}, {len(ids)} images)"))
    return bests


def sweep_figure(tables: Mapping[str, Any], bests: Mapping[str, dict], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4))
    for variant, table in tables.items():
        line, = axes.plot(table["threshold"], table["miou"], label=f"{variant} (best {bests[variant]['miou']:.3f})")
        axes.scatter([bests[variant]["threshold"]], [bests[variant]["miou"]], color=line.get_color(), zorder=3)
    axes.set_xlabel("background threshold t")
    axes.set_ylabel("mIoU")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    plt.close(figure)
    return figure
