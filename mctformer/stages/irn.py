"""The stages of workflow/rules/irn.smk: IRN's confident labels, its boundary network, its random walk to
pseudo masks, and the table that sets the refinements (CRF only, PSA, IRN) side by side."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..artifacts import make_palette, write_json
from ..crf import ScaledCRF
from ..data.layout import DatasetRef, first_ids, ids_of_splits
from ..settings import Placement, training_precision
from ..shards import WHOLE, Shard
from .psa import write_label_stats


def ir_labels_stage(
    *, dataset: DatasetRef, palette: Sequence | None, split: str, map_dir: str, max_images: int | None,
    conf_fg_thres: float, conf_bg_thres: float, crf: Mapping[str, Any], label_workers: int, out_dir: str, stats_path: str, threads: int,
    shard: Shard = WHOLE,
) -> dict:
    """IRN's confident labels of the first ``max_images`` of ``split`` (irn.* keys of the same names) and their shares;
    for one ``shard`` of several, its images' labels and its part of the stats (shards.py)."""
    from ..irn.drivers import ir_label_counts

    reader = dataset.open()
    ids = shard.select(reader, first_ids(reader, split, max_images), None, "ir_labels")
    started = time.time()
    totals = ir_label_counts(
        reader, ids, map_dir, out_dir, conf_fg_thres=conf_fg_thres, conf_bg_thres=conf_bg_thres, crf=ScaledCRF.from_config(crf),
        gt_prob=float(crf["gt_prob"]),
        palette=make_palette(palette), workers=max(1, min(threads, label_workers)),
    )
    print(f"IRN labels: fg > {conf_fg_thres}, bg <= {conf_bg_thres}")
    return write_label_stats(stats_path, totals, len(ids), time.time() - started, shard, "IRN")


def train_irn_stage(
    *, dataset: DatasetRef, split: str, max_images: int | None, label_dir: str,
    settings: Mapping[str, Any], seed: int, placement: Placement, checkpoint: str, log_csv: str, resume: str, threads: int,
    tensorboard: bool,
) -> None:
    """Train the boundary network (``settings`` = the irn training keys, all of which it reads; ``tensorboard``:
    logging.tensorboard)."""
    from ..training.common import TrainerFiles, torch_setup
    from ..training.irn import train_boundary_net

    torch_device = torch_setup(threads, placement, amp_dtype=training_precision(settings))
    reader = dataset.open()
    ids = first_ids(reader, split, max_images)
    summary = train_boundary_net(
        reader, ids, label_dir, settings, TrainerFiles.of_rule(checkpoint, log_csv, resume, tensorboard=tensorboard),
        device=torch_device, seed=seed, workers=settings["workers"],
    )
    print(f"IRN boundary network trained in {summary['seconds']:.1f} s: {summary['final']}")


def irn_walk_stage(
    *, dataset: DatasetRef, palette: Sequence | None, splits: Sequence[str], map_dir: str, checkpoint: str,
    backbone: str, walk_radius: int, beta: float, exp_times: int, sem_seg_bg_thres: float, walk_scale: float, walk_batch_size: int,
    walk_amp: str, placement: Placement, out_dir: str, threads: int, shard: Shard = WHOLE,
) -> None:
    """IRN pseudo masks of ``splits`` (irn.* keys of the same names; the checkpoint must have irn.backbone), or of one
    ``shard``'s share of their images."""
    from ..irn.drivers import irn_walk_masks
    from ..training.common import torch_setup
    from ..training.irn import load_boundary_net

    torch_device = torch_setup(threads, placement, amp_dtype=None)
    reader = dataset.open()
    ids = shard.select(reader, ids_of_splits(reader, splits), walk_batch_size, "irn_walk")
    model = load_boundary_net(checkpoint, backbone, device=torch_device)
    print(f"IRN walk on {len(ids)} images: radius {walk_radius}, beta {beta}, 2^{exp_times} steps, background {sem_seg_bg_thres}, "
          f"image scale {walk_scale}")
    started = time.time()
    irn_walk_masks(
        model, reader, ids, map_dir, out_dir, beta=beta, exp_times=exp_times, radius=walk_radius, bg_threshold=sem_seg_bg_thres,
        scale=walk_scale, batch_size=walk_batch_size, palette=make_palette(palette), device=torch_device, amp=walk_amp,
    )
    print(f"IRN masks in {time.time() - started:.1f} s")


def compare_refinements_stage(
    *, seed_bests: Mapping[str, str], crf_only_table: str | None, mask_summaries: Mapping[str, str],
    deeplab_summaries: Mapping[str, Mapping[str, str]], refinement_benchmarks: Mapping[str, Sequence[str]],
    deeplab_benchmarks: Mapping[str, Sequence[str]], mask_split: str, deeplab_split: str, json_path: str, markdown_path: str,
) -> dict:
    """The table seeds -> {CRF only, PSA, IRN} masks -> DeepLab with stage times, beside the papers' numbers
    (mctformer.refinements), as JSON and Markdown."""
    from ..artifacts import write_text
    from ..refinements import refinement_markdown, refinement_rows

    rows = refinement_rows(seed_bests=seed_bests, crf_only_table=crf_only_table, mask_summaries=mask_summaries,
                           deeplab_summaries=deeplab_summaries, refinement_benchmarks=refinement_benchmarks,
                           deeplab_benchmarks=deeplab_benchmarks)
    table = {"mask_split": mask_split, "deeplab_split": deeplab_split, "rows": rows}
    write_json(json_path, table)
    write_text(markdown_path, "\n".join(refinement_markdown(table)) + "\n")
    print("\n".join(refinement_markdown(table)))
    return table
