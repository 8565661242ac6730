"""The stages of workflow/rules/psa.smk: PSA's confident labels, AffinityNet, the random walk to pseudo
masks, their evaluation and the README's PSA ablation."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..artifacts import make_palette, write_dataframe_csv, write_json
from ..crf import ScaledCRF
from ..data.layout import DatasetRef, first_ids, ids_of_splits
from ..settings import Placement, WalkSettings, training_precision
from ..shards import WHOLE, Shard  # the rule scripts build it and DatasetRef from their config keys (their .take)


def psa_labels_stage(
    *, dataset: DatasetRef, palette: Sequence | None, split: str, map_dir: str,
    alpha_low: float, alpha_high: float, max_images: int | None, crf: Mapping[str, Any], crf_image: str, workers: int,
    grid_labels: str, out_dir: str, stats_path: str, threads: int, shard: Shard = WHOLE,
) -> dict:
    """Confident labels (and, for ``grid_labels`` pooled_scores, the la / ha CRF scores AffinityNet pools) and their
    label_stats.json; for one ``shard`` of several, its images' labels and its part of the stats (shards.py)."""
    from ..psa.drivers import psa_label_counts

    reader = dataset.open()
    ids = shard.select(reader, first_ids(reader, split, max_images), None, "psa_labels")
    started = time.time()
    totals = psa_label_counts(
        reader, ids, map_dir, out_dir, alpha_low=alpha_low, alpha_high=alpha_high, crf=ScaledCRF.from_config(crf), palette=make_palette(palette),
        workers=max(1, min(threads, workers)), image_source=crf_image, keep_scores=grid_labels == "pooled_scores",
    )
    return write_label_stats(stats_path, totals, len(ids), time.time() - started, shard, "PSA")


def write_label_stats(path: str, totals: Mapping[str, int], images: int, seconds: float, shard: Shard, method: str) -> dict:
    """A confident-label stage's label_stats.json (its shares and seconds), or a shard's part of it (its counts)."""
    from ..psa.drivers import confident_label_stats
    from ..shards import write_label_counts

    if not shard.whole:
        write_label_counts(path, totals, images, seconds)
        print(f"{method} labels of shard {shard.name}: {images} images in {seconds:.1f} s")
        return dict(totals)
    stats = {**confident_label_stats(dict(totals), images), "seconds": seconds}
    write_json(path, stats)
    print(f"{method} labels of {images} images: {stats}")
    return stats


def train_affinity_stage(
    *, dataset: DatasetRef, split: str, max_images: int | None, label_dir: str,
    settings: Mapping[str, Any], seed: int, placement: Placement, checkpoint: str, log_csv: str, resume: str,
    threads: int, tensorboard: bool,
) -> None:
    """Train AffinityNet (``settings`` = the config's ``affinity`` section, all of which it reads)."""
    from ..training.affinity import train_affinity
    from ..training.common import TrainerFiles, torch_setup

    torch_device = torch_setup(threads, placement, amp_dtype=training_precision(settings))
    reader = dataset.open()
    ids = first_ids(reader, split, max_images)
    summary = train_affinity(
        reader, ids, label_dir, settings, TrainerFiles.of_rule(checkpoint, log_csv, resume, tensorboard=tensorboard),
        device=torch_device, seed=seed, workers=settings["workers"],
    )
    print(f"AffinityNet trained in {summary['seconds']:.1f} s: {summary['final']}")


def read_background(background: float | None, best_json: str | None) -> float:
    """The random walk's background score: pinned in config (psa.background), else the best seed threshold."""
    import json

    if background is not None:
        return float(background)
    with open(best_json) as handle:
        return float(json.load(handle)["threshold"])


def random_walk_stage(
    *, dataset: DatasetRef, palette: Sequence | None, splits: Sequence[str], map_dir: str,
    checkpoint: str, best_json: str | None, background: float | None, walk: WalkSettings, walk_scale: float, batch_size: int,
    backbone: str, walk_amp: str, placement: Placement, out_dir: str, threads: int, shard: Shard = WHOLE,
) -> None:
    """Pseudo masks of ``splits`` (psa.* and the affinity.* keys the walk shares with training), or of one ``shard``'s
    share of their images."""
    from ..psa.drivers import random_walk_masks
    from ..training.affinity import load_affinity_net
    from ..training.common import torch_setup

    torch_device = torch_setup(threads, placement, amp_dtype=None)
    reader = dataset.open()
    ids = shard.select(reader, ids_of_splits(reader, splits), batch_size, "random_walk")
    model = load_affinity_net(checkpoint, backbone, device=torch_device)
    background = read_background(background, best_json)
    print(f"random walk on {len(ids)} images: background {background}, beta {walk.beta}, logt {walk.logt}, "
          f"radius {walk.radius}, image scale {walk_scale}, pair sources {walk.pair_sources}")
    started = time.time()
    random_walk_masks(
        model, reader, ids, map_dir, out_dir, background=background, beta=walk.beta, logt=walk.logt, radius=walk.radius,
        palette=make_palette(palette), device=torch_device, batch_size=batch_size, scale=walk_scale, pair_sources=walk.pair_sources,
        amp=walk_amp,
    )
    print(f"pseudo masks in {time.time() - started:.1f} s")


def evaluate_masks_stage(*, dataset: DatasetRef, split: str, mask_dir: str, table_path: str, summary_path: str, plot_path: str, title: str) -> dict:
    """mIoU (and per-class IoU/precision/recall/FP/FN) of the label PNGs in ``mask_dir``, pseudo masks or DeepLab's
    predictions (evaluation.evaluate_mask_folder)."""
    from ..evaluation import evaluate_mask_folder

    return evaluate_mask_folder(
        dataset, split, mask_dir, title=title, table_path=table_path, summary_path=summary_path, plot_path=plot_path,
    )


def psa_ablation_stage(
    *, dataset: DatasetRef, split: str, map_dir: str, best_json: str | None, background: float | None, walk: WalkSettings,
    walk_scale: float, crf: Mapping[str, Any], colour_sigma: float, backbone: str, learned_summary: str, table_path: str, threads: int,
) -> dict:
    """The README's PSA ablation on ``split``: seeds, seeds + CRF, colour-affinity walk, learned-affinity walk."""
    import json

    import pandas as pd

    from ..models.registry import backbone_output_stride
    from ..psa.drivers import psa_ablation

    reader = dataset.open()
    ids = reader.read_ids(split)
    results = psa_ablation(
        reader, ids, map_dir, background=read_background(background, best_json), beta=walk.beta, logt=walk.logt, walk_scale=walk_scale,
        crf=ScaledCRF.from_config(crf), radius=walk.radius, stride=backbone_output_stride(backbone), pair_sources=walk.pair_sources, colour_sigma=colour_sigma,
        num_labels=len(dataset.classes) + 1, workers=max(1, threads),
    )
    with open(learned_summary) as handle:
        results["random walk, learned affinity (PSA)"] = float(json.load(handle)["miou"])
    table = pd.DataFrame({"method": list(results), "miou": list(results.values())})
    write_dataframe_csv(table_path, table)
    print(table.to_string(index=False))
    return results
