"""The IRN stages' loops over a split: confident labels and walk masks (files in, files out)."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import torch

from ..artifacts import atomic_directory, load_map_file, require_per_image_files, save_label_png
from ..crf import ScaledCRF
from ..data.layout import batches_of_equal_size
from ..logs import progress_bar
from ..models.irn import boundary_probability
from ..parallel import map_in_processes
from ..precision import inference_autocast
from ..psa.drivers import confident_label_counts, confident_label_stats, walk_input_batch
from ..psa.geometry import seed_scores_on_grid
from .labels import check_thresholds, ir_labels
from .walk import boundary_walk, walked_to_masks


def label_one_image(
    image_id: str, *, layout, map_dir: str, out_dir: str, conf_fg_thres: float, conf_bg_thres: float, crf: ScaledCRF,
    gt_prob: float, palette: np.ndarray,
) -> dict[str, int]:
    """One image's IRN label: the job :func:`make_ir_labels` spreads over processes."""
    map_path = os.path.join(map_dir, f"{image_id}.npz")
    picture = layout.load_image(image_id)
    labels, maps = load_map_file(map_path)
    if maps.shape[1:] != picture.shape[:2]:
        raise ValueError(f"map file {map_path} is {maps.shape[1:]} but image {image_id} is {picture.shape[:2]}")
    label = ir_labels(picture, labels, maps, conf_fg_thres=conf_fg_thres, conf_bg_thres=conf_bg_thres, crf_params=crf.for_image(picture.shape),
                      gt_prob=gt_prob)
    save_label_png(os.path.join(out_dir, f"{image_id}.png"), label, palette, atomic=False)
    return confident_label_counts(layout, image_id, label)


def make_ir_labels(layout, ids, map_dir: str, out_dir: str, **settings) -> dict[str, float]:
    """IRN's confident labels of every id as palette PNGs in ``out_dir`` (:func:`ir_label_counts`); their shares."""
    return confident_label_stats(ir_label_counts(layout, ids, map_dir, out_dir, **settings), len(ids))


def ir_label_counts(
    layout, ids, map_dir: str, out_dir: str, *, conf_fg_thres: float, conf_bg_thres: float, crf: ScaledCRF,
    gt_prob: float, palette: np.ndarray, workers: int,
) -> dict[str, int]:
    """IRN's confident labels of every id as palette PNGs in ``out_dir`` (written atomically as a folder); their pixel
    counts summed over the ids (psa.drivers.confident_label_counts)."""
    check_thresholds(conf_fg_thres, conf_bg_thres)
    require_per_image_files(map_dir, ids, ".npz", "maps")
    totals: dict[str, int] = {}
    with atomic_directory(out_dir) as tmp:
        job = partial(
            label_one_image, layout=layout, map_dir=map_dir, out_dir=str(tmp), conf_fg_thres=conf_fg_thres, conf_bg_thres=conf_bg_thres,
            crf=crf, gt_prob=gt_prob, palette=palette,
        )
        for counts in progress_bar(map_in_processes(job, ids, workers, chunksize=32), total=len(ids), desc="IRN labels (CRF)", unit="img",
                                   mininterval=2.0):
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
    return totals


def class_seeds_on_grid(map_dir: str, image_id: str, image_size: tuple[int, int], stride: int,
                        scaled: tuple[int, int]) -> tuple[np.ndarray, torch.Tensor]:
    """(labels [K], the maps average-pooled to the walk's grid [K, h, w]) of one image; refuses maps of another size."""
    map_path = os.path.join(map_dir, f"{image_id}.npz")
    labels, maps = load_map_file(map_path)
    if maps.shape[1:] != tuple(image_size):
        raise ValueError(f"map file {map_path} is {maps.shape[1:]} but its image is {tuple(image_size)}")
    return labels, seed_scores_on_grid(labels, maps, 0.0, stride, scaled)[0][1:]  # no background channel: IRN adds it after the walk


@torch.inference_mode()
def irn_walk_masks(
    model, layout, ids, map_dir: str, out_dir: str, *, beta: float, exp_times: int, radius: int, bg_threshold: float,
    scale: float, batch_size: int, palette: np.ndarray, device: torch.device, amp: str,
) -> None:
    """Pseudo masks of every id by IRN's walk on the boundary network's map (``out_dir`` written atomically).

    Images of one size go ``batch_size`` at a time (irn.batch_size) through the network and one
    block-diagonal sparse walk; ``scale`` (irn.walk_scale) resizes what the network sees, as psa.walk_scale;
    ``amp`` (irn.walk_amp): the boundary network's forward under autocast to that dtype (``float32``: none).
    """
    if not ids:
        raise ValueError("irn_walk: the split list is empty")
    require_per_image_files(map_dir, ids, ".npz", "maps")
    stride = model.output_stride
    model = model.to(device).eval()
    with atomic_directory(out_dir) as tmp, progress_bar(total=len(ids), desc="IRN walk", unit="img", mininterval=2.0) as progress:
        for batch_ids in batches_of_equal_size(layout, ids, batch_size):
            size, (scaled, padded, grid), images = walk_input_batch(layout, batch_ids, stride, scale, device)
            with inference_autocast(device, amp, "irn.walk_amp"):
                boundary = boundary_probability(model, images)
            boundary = boundary.float()
            if tuple(boundary.shape[-2:]) != tuple(grid):
                raise RuntimeError(f"the boundary map is a {tuple(boundary.shape[-2:])} grid for {padded} inputs; expected {grid}")
            seeds = [class_seeds_on_grid(map_dir, image_id, size, stride, scaled) for image_id in batch_ids]
            walked = boundary_walk(boundary, [scores for _, scores in seeds], beta=beta, exp_times=exp_times, radius=radius)
            masks = walked_to_masks(walked, [labels for labels, _ in seeds], (scaled, padded, grid), size, bg_threshold)
            for image_id, mask in zip(batch_ids, masks):
                save_label_png(os.path.join(tmp, f"{image_id}.png"), mask, palette, atomic=False)
            progress.update(len(batch_ids))
