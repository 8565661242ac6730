"""The PSA stages' loops over a split: confident labels, random-walk masks, the ablation (files in, files out)."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from ..artifacts import atomic_directory, load_map_file, require_per_image_files, save_label_png
from ..crf import ScaledCRF, crf_argmax
from ..data.layout import batches_of_equal_size
from ..data.transforms import normalize_image
from ..data.voc import IGNORE
from ..logs import progress_bar
from ..metrics import confusion_matrix, dataset_confusion, scores_from_confusion, seed_prediction
from ..parallel import map_in_processes
from ..precision import inference_autocast
from .geometry import seed_scores_on_grid, walk_geometry, walk_to_mask
from .labels import confident_labels, crf_image, crf_scores, save_confident_scores
from .walk import walk_seeds


def label_one_image(
    image_id: str, *, layout, map_dir: str, out_dir: str, alpha_low: float, alpha_high: float, crf: ScaledCRF,
    palette: np.ndarray, image_source: str, keep_scores: bool,
) -> dict[str, int]:
    """One image's confident label (and la / ha scores): the job :func:`make_psa_labels` spreads over processes."""
    map_path, out_path = os.path.join(map_dir, f"{image_id}.npz"), os.path.join(out_dir, f"{image_id}.png")
    picture = layout.load_image(image_id)
    labels, maps = load_map_file(map_path)
    if maps.shape[1:] != picture.shape[:2]:
        raise ValueError(f"map file {map_path} is {maps.shape[1:]} but image {image_id} is {picture.shape[:2]}")
    image = crf_image(picture, image_source)
    scaled = crf.for_image(image.shape)
    la_scores = crf_scores(image, maps, alpha=alpha_low, params=scaled)
    ha_scores = crf_scores(image, maps, alpha=alpha_high, params=scaled)
    values = np.concatenate([[0], labels]).astype(np.uint8)
    label = confident_labels(values[la_scores.argmax(axis=0)], values[ha_scores.argmax(axis=0)])
    save_label_png(out_path, label, palette, atomic=False)
    if keep_scores:
        save_confident_scores(out_path.removesuffix(".png") + ".npz", labels, la_scores, ha_scores)
    return confident_label_counts(layout, image_id, label)


def confident_label_counts(layout, image_id: str, label: np.ndarray) -> dict[str, int]:
    """One image's counts for confident_label_stats: pixels, foreground, background and, where the layout has
    its ground truth, the labelled pixels the ground truth knows and how many of them are right, the same for the
    confident foreground and background alone, and the object pixels (ground-truth classes) labelled background."""
    foreground, background = (label != 0) & (label != IGNORE), label == 0
    counts = {"pixels": int(label.size), "foreground": int(foreground.sum()), "background": int(background.sum())}
    if layout.mask_dir is not None and layout.mask_path(image_id).is_file():
        gt = layout.load_mask(image_id)
        known = gt != IGNORE
        right = known & (label == gt)
        objects = known & (gt != 0)
        counts.update(
            labelled_with_gt=int((known & (label != IGNORE)).sum()), correct=int(right.sum()),
            foreground_with_gt=int((known & foreground).sum()), foreground_correct=int((right & foreground).sum()),
            background_with_gt=int((known & background).sum()), background_correct=int((right & background).sum()),
            object_pixels=int(objects.sum()), objects_labelled_background=int((objects & background).sum()),
        )
    return counts


def make_psa_labels(layout, ids, map_dir: str, out_dir: str, **settings) -> dict[str, float]:
    """label_stats.json of :func:`psa_label_counts` (its settings): the confident labels' shares."""
    return confident_label_stats(psa_label_counts(layout, ids, map_dir, out_dir, **settings), len(ids))


def psa_label_counts(
    layout,
    ids,
    map_dir: str,
    out_dir: str,
    *,
    alpha_low: float,
    alpha_high: float,
    crf: ScaledCRF,
    palette: np.ndarray,
    workers: int,
    image_source: str,
    keep_scores: bool,
) -> dict[str, int]:
    """Confident PSA labels of every id as palette PNGs in ``out_dir`` (written atomically as a folder); their pixel
    counts summed over the ids (:func:`confident_label_counts`), which :func:`confident_label_stats` turns into shares.

    ``image_source``: see :func:`.labels.crf_image`. ``keep_scores``: also write
    each image's la / ha CRF scores (``<id>.npz``), which AffinityNet's
    ``pooled_scores`` grid labels read.
    """
    require_per_image_files(map_dir, ids, ".npz", "maps")
    totals: dict[str, int] = {}
    with atomic_directory(out_dir) as tmp:
        job = partial(
            label_one_image, layout=layout, map_dir=map_dir, out_dir=str(tmp), alpha_low=alpha_low, alpha_high=alpha_high, crf=crf,
            palette=palette, image_source=image_source, keep_scores=keep_scores,
        )
        for counts in progress_bar(map_in_processes(job, ids, workers, chunksize=32), total=len(ids), desc="PSA labels (CRF)", unit="img", mininterval=2.0):
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
    return totals


def confident_label_stats(totals: dict[str, int], images: int) -> dict[str, float]:
    """label_stats.json of a confident-label stage (PSA's or IRN's) from the per-image counts summed over the
    split (pixels, foreground, background and, where ground truth exists, labelled_with_gt and correct)."""
    stats = {
        "images": images,
        "foreground_fraction": totals["foreground"] / totals["pixels"],
        "background_fraction": totals["background"] / totals["pixels"],
        "ignored_fraction": 1 - (totals["foreground"] + totals["background"]) / totals["pixels"],
    }
    if totals.get("labelled_with_gt"):
        stats["precision_vs_gt"] = totals["correct"] / totals["labelled_with_gt"]
    # what AffinityNet is taught wrong: a confident class that is not the pixel's, and objects taught as background
    # (the under-activation no walk can undo); absent where no pixel of the kind exists
    for key, correct, labelled in (("foreground_precision", "foreground_correct", "foreground_with_gt"),
                                   ("background_precision", "background_correct", "background_with_gt"),
                                   ("objects_labelled_background", "objects_labelled_background", "object_pixels")):
        if totals.get(labelled):
            stats[key] = totals[correct] / totals[labelled]
    return stats


def walk_masks(features: torch.Tensor, seeds: list[tuple[np.ndarray, torch.Tensor]], geometry: tuple, image_size: tuple[int, int],
               beta: float, logt: int, radius: int, pair_sources: str) -> list[np.ndarray]:
    """Pseudo masks (label values) of a batch walked on ``features`` [B, D, h, w]: ``seeds`` holds each image's
    (labels [K], seed scores [K+1, h, w]); ``geometry`` = (scaled, padded, grid) of :func:`.geometry.walk_geometry`."""
    scaled, padded, grid = geometry
    if tuple(features.shape[-2:]) != tuple(grid):
        raise RuntimeError(f"the affinity features are a {tuple(features.shape[-2:])} grid for {padded} inputs; expected {grid}")
    walked = walk_seeds(features, [scores for _, scores in seeds], beta, logt, radius, pair_sources)
    indices = walk_to_mask(walked, grid, padded, image_size, scaled)
    return [np.concatenate([[0], labels]).astype(np.uint8)[index] for (labels, _), index in zip(seeds, indices)]


def load_seeds(map_dir: str, image_id: str, image_size: tuple[int, int], background: float, stride: int,
               scaled: tuple[int, int]) -> tuple[np.ndarray, torch.Tensor]:
    """(labels, seed scores on the walk's grid) of one image's map file; refuses maps of another size."""
    map_path = os.path.join(map_dir, f"{image_id}.npz")
    labels, maps = load_map_file(map_path)
    if maps.shape[1:] != tuple(image_size):
        raise ValueError(f"map file {map_path} is {maps.shape[1:]} but its image is {tuple(image_size)}")
    return labels, seed_scores_on_grid(labels, maps, background, stride, scaled)[0]


def walk_input_batch(layout, batch_ids, stride: int, scale: float, device: torch.device):
    """What a walk's network sees of images of one size: (their size, walk_geometry's (scaled, padded, grid), the
    normalised images resized by ``scale`` and zero-padded to whole strides [B, 3, *padded] on ``device``)."""
    size = layout.image_size(batch_ids[0])
    scaled, padded, grid = walk_geometry(size[0], size[1], stride, scale)
    images = torch.stack([normalize_image(layout.load_image(i)) for i in batch_ids])
    if scaled != size:
        images = F.interpolate(images, size=scaled, mode="bilinear", align_corners=False)
    images = F.pad(images, (0, padded[1] - scaled[1], 0, padded[0] - scaled[0])).to(device)
    return size, (scaled, padded, grid), images


@torch.inference_mode()
def random_walk_masks(
    model,
    layout,
    ids,
    map_dir: str,
    out_dir: str,
    *,
    background: float,
    beta: float,
    logt: int,
    radius: int,
    palette: np.ndarray,
    device: torch.device,
    batch_size: int,
    scale: float,
    pair_sources: str,
    amp: str,
) -> None:
    """Pseudo masks of every id by random walk with the AffinityNet's affinities (``out_dir`` written atomically).

    ``batch_size``: psa.batch_size (images walked at once); ``scale`` (psa.walk_scale) resizes the images the
    AffinityNet sees (see :func:`.geometry.walk_geometry`); 1 is the reference.
    ``pair_sources``: which grid pixels have pairs (mctformer.affinity; ``reference`` = the reference's walk).
    ``amp`` (psa.walk_amp): the AffinityNet forward under autocast to that dtype (``float32``: none); the walk itself
    runs on its float32 features.
    """
    if not ids:
        raise ValueError("random_walk: the split list is empty")
    stride = model.output_stride
    model = model.to(device).eval()
    with atomic_directory(out_dir) as tmp, progress_bar(total=len(ids), desc="random walk", unit="img", mininterval=2.0) as progress:
        for batch_ids in batches_of_equal_size(layout, ids, batch_size):
            size, (scaled, padded, grid), images = walk_input_batch(layout, batch_ids, stride, scale, device)
            seeds = [load_seeds(map_dir, image_id, size, background, stride, scaled) for image_id in batch_ids]
            with inference_autocast(device, amp, "psa.walk_amp"):
                features = model(images)
            masks = walk_masks(features.float(), seeds, (scaled, padded, grid), size, beta, logt, radius, pair_sources)
            for image_id, mask in zip(batch_ids, masks):
                save_label_png(os.path.join(tmp, f"{image_id}.png"), mask, palette, atomic=False)
            progress.update(len(batch_ids))


# ---------------------------------------------------------------- ablation --

def _crf_only_job(job: tuple) -> np.ndarray:
    layout, image_id, map_path, background, crf, num_labels = job
    image = layout.load_image(image_id)
    labels, maps = load_map_file(map_path)
    scores = np.concatenate([np.full((1,) + maps.shape[1:], background, np.float32), maps])
    # scores of a constant background beside [0, 1] maps do not sum to one: always normalised (psa.crf has no normalise_scores)
    label_index = crf_argmax(image, scores, crf, normalise=True)
    prediction = np.concatenate([[0], labels])[label_index]
    return confusion_matrix(layout.load_mask(image_id), prediction, num_labels)


def colour_features(image: np.ndarray, geometry: tuple, stride: int, sigma: float) -> torch.Tensor:
    """The ablation's affinity source: the mean RGB (in [0, 1], divided by ``sigma``) of each stride cell, [1, 3, h, w]."""
    scaled, padded, _ = geometry
    colour = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    if scaled != image.shape[:2]:
        colour = F.interpolate(colour, size=scaled, mode="bilinear", align_corners=False)
    colour = F.pad(colour, (0, padded[1] - scaled[1], 0, padded[0] - scaled[0]))
    return F.avg_pool2d(colour, stride, stride) / sigma


@torch.inference_mode()
def colour_walk_predictions(layout, ids, map_dir: str, *, background: float, beta: float, logt: int, radius: int, stride: int, sigma: float,
                            scale: float, pair_sources: str):
    """(ground truth, prediction) per image of the same random walk as :func:`random_walk_masks`, with an
    affinity from colour alone (:func:`colour_features`) instead of AffinityNet's."""
    for image_id in ids:
        image = layout.load_image(image_id)
        geometry = walk_geometry(image.shape[0], image.shape[1], stride, scale)
        seeds = [load_seeds(map_dir, image_id, image.shape[:2], background, stride, geometry[0])]
        mask = walk_masks(colour_features(image, geometry, stride, sigma), seeds, geometry, image.shape[:2], beta, logt, radius, pair_sources)[0]
        yield layout.load_mask(image_id), mask


def psa_ablation(
    layout, ids, map_dir: str, *, background: float, beta: float, logt: int, walk_scale: float, crf: ScaledCRF,
    radius: int, stride: int, pair_sources: str, colour_sigma: float, num_labels: int, workers: int,
) -> dict[str, float]:
    """mIoU of the seeds, of a CRF on the seeds alone, and of the random walk with a colour affinity
    (``colour_sigma``): what PSA's learned affinity is measured against."""

    def seed_pairs():
        for image_id in ids:
            labels, maps = load_map_file(os.path.join(map_dir, f"{image_id}.npz"))
            yield layout.load_mask(image_id), seed_prediction(labels, maps, np.float32(background))

    seeds = dataset_confusion(seed_pairs(), num_labels)
    jobs = [(layout, i, os.path.join(map_dir, f"{i}.npz"), background, crf, num_labels) for i in ids]
    crf_only = sum(map_in_processes(_crf_only_job, jobs, workers, chunksize=32))
    colour = dataset_confusion(
        colour_walk_predictions(
            layout, ids, map_dir, background=background, beta=beta, logt=logt, radius=radius, stride=stride, sigma=colour_sigma,
            scale=walk_scale, pair_sources=pair_sources,
        ),
        num_labels,
    )
    results = {"seeds": seeds, "seeds + CRF": crf_only, "random walk, colour affinity": colour}
    return {name: float(scores_from_confusion(confusion)["miou"]) for name, confusion in results.items()}
