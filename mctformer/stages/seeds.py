"""The stages of workflow/rules/seeds.smk: the localization maps of the trained classifier and the
background-threshold sweep of their seeds."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ..artifacts import save_figure, write_dataframe_csv, write_json
from ..data.labels import load_class_labels
from ..data.layout import DatasetRef, ids_of_splits
from ..metrics import best_threshold, sweep_split, sweep_table, threshold_grid
from ..settings import MapGeometry, Placement  # the rule script builds it and DatasetRef from its config keys (their .take)
from ..shards import WHOLE, Shard


def extract_maps_stage(
    *, dataset: DatasetRef, labels_path: str, checkpoint: str, version: str, splits: Sequence[str],
    last_k: int, scales: Sequence[float], flip: bool, feature_temperature: float, batch_size: int, overlays: int,
    geometry: MapGeometry, storage_dtype: str, workers: int, placement: Placement, out_dirs: Mapping[str, str],
    overlay_dir: str | None, threads: int, shard: Shard = WHOLE,
) -> None:
    """Maps of every image of ``splits`` for every variant in ``out_dirs``; the keys are the config's ``maps``, and the
    checkpoint must be of classifier.version ``version``. One ``shard`` of several: its share of the images (and of
    the overlays, which stay those of the split's first ``overlays`` images)."""
    from ..localize import extract_maps
    from ..training.classifier import load_classifier
    from ..training.common import torch_setup

    # maps.amp: float16 autocast on CUDA (as the reference extracts)
    torch_device = torch_setup(threads, placement, amp_dtype="float16" if geometry.amp else None)
    reader = dataset.open()
    all_ids = ids_of_splits(reader, splits)
    ids = shard.select(reader, all_ids, batch_size, "extract_maps")
    labels = load_class_labels(labels_path, ids, len(dataset.classes))
    model = load_classifier(checkpoint, len(dataset.classes), device=torch_device, version=version, class_names=dataset.classes)
    started = time.time()
    extract_maps(
        model, reader, ids, labels, out_dirs,
        scales=scales, flip=flip, last_k=last_k, feature_temperature=feature_temperature, batch_size=batch_size,
        device=torch_device, overlay_dir=overlay_dir, num_overlays=overlays, overlay_ids=all_ids[:overlays],
        resize=geometry.resize, remainder=geometry.remainder, position_embedding=geometry.position_embedding, amp=geometry.amp,
        storage_dtype=storage_dtype, workers=workers,
    )
    print(f"extracted maps of {len(ids)} images in {time.time() - started:.1f} s")


def evaluate_seeds_stage(
    *, dataset: DatasetRef, labels_path: str, split: str, map_dirs: Mapping[str, str],
    thresholds: Mapping[str, float], miou_convention: str, selection: str, out_files: Mapping[str, Mapping[str, str]], plot_path: str,
) -> dict[str, dict]:
    """Threshold sweep of every variant on ``split``; writes sweep.csv/best.json per variant and one plot.

    best.json holds the chosen threshold (``miou_convention``, ``selection``;
    see metrics.best_threshold) and, beside it, the global maximum and the
    reference's early stop in both mIoU conventions.
    """
    from ..plots import sweep_figure

    reader = dataset.open()
    ids = reader.read_ids(split)
    labels = load_class_labels(labels_path, ids, len(dataset.classes))
    grid = threshold_grid(thresholds["start"], thresholds["stop"], thresholds["step"])
    label_names = ["background", *dataset.classes]
    tables, bests = {}, {}
    confusions = sweep_split(map_dirs, ids, reader.load_mask, grid, len(label_names), labels)
    for variant in map_dirs:
        tables[variant] = sweep_table(confusions[variant], grid, label_names)
        best = bests[variant] = best_threshold(tables[variant], convention=miou_convention, selection=selection)
        write_dataframe_csv(out_files[variant]["sweep"], tables[variant])
        write_json(out_files[variant]["best"], best)
        early, top = best["first_non_improving"], best["global_max"]
        print(f"{split} {variant}: mIoU {best['miou']:.4f} at t = {best['threshold']:.2f} ({selection}, {miou_convention}); "
              f"global max {top['miou']:.4f} at t = {top['threshold']:.2f}, reference early stop {early['miou']:.4f} at "
              f"t = {early['threshold']:.2f}; all-labels mIoU {best['miou_all_labels']:.4f}, present-labels {best['miou_present_labels']:.4f}; "
              f"FP {best['fp_reference']:.4f}, FN {best['fn_reference']:.4f} (the reference's)")
    save_figure(plot_path, sweep_figure(tables, bests, title=f"seed mIoU vs background threshold ({split}, {len(ids)} images)"))
    return bests
