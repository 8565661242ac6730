"""PSA (Ahn & Kwak, CVPR 2018) as MCTformer uses it: confident labels via CRF, then the random walk.

Confident labels: a dense CRF on [bg, maps] with bg = (1 - max)^alpha, once
with a low alpha (strong background: only confident foreground survives,
"la") and once with a high alpha (weak background: only confident background
survives, "ha"). The label is la's class where la is foreground, 255 where la
is background, then 0 wherever ha is background (ha's background wins, as in
the reference).

Random walk: the affinity of pixel pairs within a radius on the feature grid
(plus self-affinity 1) raised to beta, column-normalised into a transition
matrix T; seed scores (background = a constant) average-pooled to the grid are
propagated by T^(2^logt), upsampled, and the argmax is the pseudo mask. T is
sparse, so the scores are multiplied by T 2^logt times instead of squaring a
dense T logt times as the reference does; both give the same scores.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .crf import CRFParams, dense_crf

IGNORE = 255


def background_power_scores(maps: np.ndarray, alpha: float) -> np.ndarray:
    """[K, H, W] maps in [0, 1] -> [K+1, H, W] with background (1 - max)^alpha in front."""
    if maps.shape[0] == 0:
        return np.ones((1,) + maps.shape[1:], dtype=np.float32)
    background = np.power(1.0 - maps.max(axis=0), alpha)
    return np.concatenate([background[None], maps], axis=0).astype(np.float32)


def crf_scores(image: np.ndarray, maps: np.ndarray, alpha: float, params: CRFParams) -> np.ndarray:
    """The CRF's probabilities [K+1, H, W] on [bg^alpha, maps] (the reference's la / ha dicts, background first)."""
    return dense_crf(image, background_power_scores(maps, alpha), params)


def crf_labels(image: np.ndarray, labels: np.ndarray, maps: np.ndarray, alpha: float, params: CRFParams) -> np.ndarray:
    """Argmax of the CRF on [bg^alpha, maps], as segmentation values (0 or one of ``labels``)."""
    return np.concatenate([[0], labels]).astype(np.uint8)[crf_scores(image, maps, alpha, params).argmax(axis=0)]


CRF_IMAGES = ("decoded", "normalised_roundtrip")


def crf_image(picture: np.ndarray, source: str) -> np.ndarray:
    """The RGB image the label CRF sees: the decoded picture, or the reference's round trip.

    The reference maps its normalised network input back, (x * std + mean) *
    255, and truncates to uint8, which lowers up to ~10 % of the channel
    values by one (psa.crf_image).
    """
    if source == "decoded":
        return picture
    if source != "normalised_roundtrip":
        raise ValueError(f"psa.crf_image must be one of {CRF_IMAGES}, got {source!r}")
    from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize_image

    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((normalize_image(picture) * std + mean) * 255).permute(1, 2, 0).numpy().astype(np.uint8)


def confident_labels(la: np.ndarray, ha: np.ndarray) -> np.ndarray:
    """Foreground where la is foreground, background where ha is background, 255 elsewhere."""
    label = la.copy()
    label[la == 0] = IGNORE
    label[ha == 0] = 0
    return label


def transition_matrix_transposed(affinity: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor, size: int, beta: float) -> torch.Tensor:
    """Sparse CSR T^T = D^-1 A^beta: A symmetric from the pair affinities with unit diagonal.

    With T = A^beta / column sums (the reference), T^T is A^beta normalised by
    rows, because A is symmetric; propagating scores v by v @ T is T^T @ v^T.
    ``affinity`` is [P] for one image or [B, P] for a batch of images on the
    same grid, which gives the block-diagonal matrix of all of them (one
    sparse product then walks the whole batch).
    """
    affinity = affinity.reshape(-1, affinity.shape[-1])
    batch, device = affinity.shape[0], affinity.device
    diagonal = torch.arange(size, device=device)
    rows = torch.cat([sources, targets, diagonal])
    cols = torch.cat([targets, sources, diagonal])
    ones = torch.ones(batch, size, device=device, dtype=affinity.dtype)
    values = torch.cat([affinity, affinity, ones], dim=1).pow(beta)  # [B, nnz] in (rows, cols) order
    row_sums = torch.zeros(batch, size, device=device, dtype=values.dtype).index_add_(1, rows, values)
    values = values / row_sums[:, rows]
    # CSR of one image by sorting its pattern once; the batch repeats it block by block.
    order = torch.argsort(rows * size + cols)
    counts = torch.bincount(rows, minlength=size)
    nnz = rows.numel()
    block_offsets = torch.arange(batch, device=device)
    crow = torch.cat([
        (torch.cumsum(counts, 0)[None] + (block_offsets * nnz)[:, None]).reshape(-1),
    ])
    crow = torch.cat([torch.zeros(1, dtype=crow.dtype, device=device), crow])
    col = (cols[order][None] + (block_offsets * size)[:, None]).reshape(-1)
    total = batch * size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values[:, order].reshape(-1), (total, total), check_invariants=False)


def random_walk(scores: torch.Tensor, transition_t: torch.Tensor, steps: int) -> torch.Tensor:
    """scores [C, N] @ T^steps, as ``steps`` sparse products."""
    propagated = scores.t().contiguous()
    for _ in range(steps):
        propagated = transition_t @ propagated
    return propagated.t()


def dense_random_walk(scores: torch.Tensor, affinity: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor, size: int, beta: float, logt: int) -> torch.Tensor:
    """The reference's way, for tests and benchmarks: dense T, squared logt times."""
    dense = torch.eye(size, dtype=affinity.dtype, device=affinity.device)
    dense[sources, targets] = affinity
    dense[targets, sources] = affinity
    dense = dense.pow(beta)
    transition = dense / dense.sum(dim=0, keepdim=True)
    for _ in range(logt):
        transition = transition @ transition
    return scores @ transition


def walk_geometry(height: int, width: int, stride: int, scale: float = 1.0) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(scaled size, padded size, feature grid) of an image walked at ``scale``.

    The AffinityNet sees the image resized by ``scale`` and padded to whole
    strides; its feature grid is then ``scale`` times finer in the original
    pixels, which is what a 64 px image at output stride 4 needs (a 16x16
    grid caps the pseudo masks at ~94 % mIoU even with perfect seeds).
    """
    scaled = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
    padded = padded_to_stride(scaled, stride)
    return scaled, padded, (padded[0] // stride, padded[1] // stride)


def padded_to_stride(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``size`` rounded up to whole strides (the reference pads the walk's input and maps with zeros)."""
    return (int(np.ceil(size[0] / stride)) * stride, int(np.ceil(size[1] / stride)) * stride)


def seed_scores_on_grid(labels: np.ndarray, maps: np.ndarray, background: float, stride: int,
                        scaled: tuple[int, int] | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """[bg, maps] (resized to ``scaled`` when given) padded to whole strides (zeros, as the reference pads)
    and average-pooled: ([K+1, h, w], padded size)."""
    scores = torch.from_numpy(np.concatenate([np.full((1, *maps.shape[1:]), background, np.float32), maps.astype(np.float32)]))
    if scaled is not None and tuple(scaled) != tuple(maps.shape[1:]):
        scores = F.interpolate(scores[None], size=scaled, mode="bilinear", align_corners=False)[0]
    height, width = scores.shape[1:]
    padded = padded_to_stride((height, width), stride)
    scores = F.pad(scores, (0, padded[1] - width, 0, padded[0] - height))
    return F.avg_pool2d(scores[None], stride, stride)[0], padded


def walk_to_mask(walked: torch.Tensor, grid: tuple[int, int], padded: tuple[int, int], image_size: tuple[int, int],
                 scaled: tuple[int, int] | None = None) -> np.ndarray:
    """Propagated scores [B, K+1, h, w] -> argmax of their bilinear upsampling, cropped to the (scaled) image
    and resized back to ``image_size``: [B, H, W] channel indices."""
    scaled = tuple(image_size) if scaled is None else tuple(scaled)
    full = F.interpolate(walked.reshape(walked.shape[0], -1, *grid), size=padded, mode="bilinear", align_corners=False)
    full = full[:, :, : scaled[0], : scaled[1]]
    if scaled != tuple(image_size):
        full = F.interpolate(full, size=tuple(image_size), mode="bilinear", align_corners=False)
    return full.argmax(dim=1).cpu().numpy()


# ---------------------------------------------------------------- stages ---

def save_confident_scores(path: str, labels: np.ndarray, la: np.ndarray, ha: np.ndarray) -> None:
    """The la / ha CRF scores of one image (float16, background first) for AffinityNet's pooled grid labels."""
    np.savez_compressed(path, labels=np.asarray(labels, np.int16), la=la.astype(np.float16), ha=ha.astype(np.float16))


def load_confident_scores(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels [K], la [K+1, H, W], ha [K+1, H, W]) as :func:`save_confident_scores` wrote them; errors name the file."""
    try:
        with np.load(path) as data:
            return data["labels"].astype(np.int64), data["la"].astype(np.float32), data["ha"].astype(np.float32)
    except FileNotFoundError:
        raise FileNotFoundError(f"PSA score file missing: {path} (psa_labels writes it when affinity.grid_labels is pooled_scores)") from None
    except Exception as error:
        raise ValueError(f"unreadable PSA score file {path}: {error}") from error


def _psa_label_job(job: tuple) -> dict[str, int]:
    from .io import load_map_file, save_label_png
    from .crf import spatial_scale

    layout, image_id, map_path, out_path, alpha_low, alpha_high, params, scale_setting, reference_size, palette, image_source, keep_scores = job
    picture = layout.load_image(image_id)
    labels, maps = load_map_file(map_path)
    if maps.shape[1:] != picture.shape[:2]:
        raise ValueError(f"map file {map_path} is {maps.shape[1:]} but image {image_id} is {picture.shape[:2]}")
    image = crf_image(picture, image_source)
    scaled = params.scaled(spatial_scale(image.shape[:2], scale_setting, reference_size))
    la_scores = crf_scores(image, maps, alpha_low, scaled)
    ha_scores = crf_scores(image, maps, alpha_high, scaled)
    values = np.concatenate([[0], labels]).astype(np.uint8)
    label = confident_labels(values[la_scores.argmax(axis=0)], values[ha_scores.argmax(axis=0)])
    save_label_png(out_path, label, palette, atomic=False)
    if keep_scores:
        save_confident_scores(out_path.removesuffix(".png") + ".npz", labels, la_scores, ha_scores)
    counts = {"pixels": int(label.size), "foreground": int(((label != 0) & (label != IGNORE)).sum()), "background": int((label == 0).sum())}
    if layout.mask_dir is not None and layout.mask_path(image_id).is_file():
        gt = layout.load_mask(image_id)
        known = (label != IGNORE) & (gt != IGNORE)
        counts["labelled_with_gt"] = int(known.sum())
        counts["correct"] = int((label[known] == gt[known]).sum())
    return counts


def make_psa_labels(
    layout,
    ids,
    map_dir: str,
    out_dir: str,
    alpha_low: float,
    alpha_high: float,
    params: CRFParams,
    scale_setting: float | str,
    reference_size: float,
    palette: np.ndarray,
    workers: int = 1,
    image_source: str = "decoded",
    keep_scores: bool = False,
) -> dict[str, float]:
    """Confident PSA labels of every id as palette PNGs in ``out_dir`` (written atomically as a folder).

    ``image_source``: see :func:`crf_image`. ``keep_scores``: also write each
    image's la / ha CRF scores (``<id>.npz``), which AffinityNet's
    ``pooled_scores`` grid labels read.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from .io import atomic_directory, require_per_image_files

    require_per_image_files(map_dir, ids, ".npz", "maps")
    totals: dict[str, int] = {}
    with atomic_directory(out_dir) as tmp:
        jobs = [
            (layout, i, os.path.join(map_dir, f"{i}.npz"), os.path.join(tmp, f"{i}.png"), alpha_low, alpha_high, params, scale_setting,
             reference_size, palette, image_source, keep_scores)
            for i in ids
        ]
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(_psa_label_job, jobs, chunksize=32)
                for counts in tqdm(results, total=len(jobs), desc="PSA labels (CRF)", unit="img", mininterval=2.0):
                    for key, value in counts.items():
                        totals[key] = totals.get(key, 0) + value
        else:
            for job in tqdm(jobs, desc="PSA labels (CRF)", unit="img", mininterval=2.0):
                for key, value in _psa_label_job(job).items():
                    totals[key] = totals.get(key, 0) + value
    stats = {
        "images": len(ids),
        "foreground_fraction": totals["foreground"] / totals["pixels"],
        "background_fraction": totals["background"] / totals["pixels"],
        "ignored_fraction": 1 - (totals["foreground"] + totals["background"]) / totals["pixels"],
    }
    if totals.get("labelled_with_gt"):
        stats["precision_vs_gt"] = totals["correct"] / totals["labelled_with_gt"]
    return stats


@torch.inference_mode()
def random_walk_masks(
    model,
    layout,
    ids,
    map_dir: str,
    out_dir: str,
    background: float,
    beta: float,
    logt: int,
    radius: int,
    palette: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
    scale: float = 1.0,
    pair_sources: str = "all",
) -> None:
    """Pseudo masks of every id by random walk with the AffinityNet's affinities (``out_dir`` written atomically).

    ``scale`` resizes the images the AffinityNet sees (see :func:`walk_geometry`); 1 is the reference.
    ``pair_sources``: which grid pixels have pairs (mctformer.affinity; ``reference`` = the reference's walk).
    """
    import os

    from tqdm import tqdm

    from .affinity import neighbour_affinity, pair_indices
    from .data.layout import batches_of_equal_size
    from .data.transforms import normalize_image
    from .io import atomic_directory, load_map_file, save_label_png

    if not ids:
        raise ValueError("random_walk: the split list is empty")
    stride = model.output_stride
    model = model.to(device).eval()

    def load_seeds(image_id: str, height: int, width: int, scaled: tuple[int, int]) -> tuple[np.ndarray, torch.Tensor]:
        map_path = os.path.join(map_dir, f"{image_id}.npz")
        labels, maps = load_map_file(map_path)
        if maps.shape[1:] != (height, width):
            raise ValueError(f"map file {map_path} is {maps.shape[1:]} but its image is {(height, width)}")
        return labels, seed_scores_on_grid(labels, maps, background, stride, scaled)[0]

    with atomic_directory(out_dir) as tmp, tqdm(total=len(ids), desc="random walk", unit="img", mininterval=2.0) as progress:
        for batch_ids in batches_of_equal_size(layout, ids, batch_size):
            height, width = layout.image_size(batch_ids[0])
            scaled, padded, grid = walk_geometry(height, width, stride, scale)
            sources, targets = (torch.from_numpy(a).to(device) for a in pair_indices(grid[0], grid[1], radius, pair_sources))
            images = torch.stack([normalize_image(layout.load_image(i)) for i in batch_ids])
            if scaled != (height, width):
                images = F.interpolate(images, size=scaled, mode="bilinear", align_corners=False)
            images = F.pad(images, (0, padded[1] - scaled[1], 0, padded[0] - scaled[0])).to(device)
            features = model(images).float()
            if tuple(features.shape[-2:]) != grid:
                raise RuntimeError(f"AffinityNet gave a {tuple(features.shape[-2:])} grid for {padded} inputs; expected {grid}")
            affinity = neighbour_affinity(features, radius, pair_sources)
            transition_t = transition_matrix_transposed(affinity, sources, targets, grid[0] * grid[1], beta)
            seeds = [load_seeds(image_id, height, width, scaled) for image_id in batch_ids]
            # one walk for the batch: images side by side, classes padded to the batch's largest count
            channels = max(scores.shape[0] for _, scores in seeds)
            stacked = torch.zeros(channels, len(seeds), grid[0] * grid[1])
            for index, (_, scores) in enumerate(seeds):
                stacked[: scores.shape[0], index] = scores.reshape(scores.shape[0], -1)
            walked = random_walk(stacked.reshape(channels, -1).to(device), transition_t, 2**logt)
            walked = walked.reshape(channels, len(seeds), *grid).transpose(0, 1)
            for index, (labels, scores) in enumerate(seeds):
                walked[index, scores.shape[0] :] = -1e9  # padding channels never win (-inf would give NaN when upsampled)
            masks = walk_to_mask(walked, grid, padded, (height, width), scaled)
            for index, (image_id, (labels, _)) in enumerate(zip(batch_ids, seeds)):
                values = np.concatenate([[0], labels]).astype(np.uint8)[masks[index]]
                save_label_png(os.path.join(tmp, f"{image_id}.png"), values, palette, atomic=False)
            progress.update(len(batch_ids))


# ---------------------------------------------------------------- ablation --

def _crf_only_job(job: tuple) -> np.ndarray:
    from .crf import crf_argmax
    from .io import load_map_file
    from .metrics import confusion_matrix

    layout, image_id, map_path, background, params, scale_setting, reference_size, num_labels = job
    image = layout.load_image(image_id)
    labels, maps = load_map_file(map_path)
    scores = np.concatenate([np.full((1,) + maps.shape[1:], background, np.float32), maps])
    prediction = np.concatenate([[0], labels])[crf_argmax(image, scores, params, scale_setting, reference_size)]
    return confusion_matrix(layout.load_mask(image_id), prediction, num_labels)


@torch.inference_mode()
def colour_walk_predictions(layout, ids, map_dir: str, background: float, beta: float, logt: int, radius: int, stride: int, sigma: float,
                            scale: float = 1.0, pair_sources: str = "all"):
    """(ground truth, prediction) per image of a random walk with an affinity from colour alone (mean RGB of each stride cell)."""
    import os

    from .affinity import neighbour_affinity, pair_indices
    from .io import load_map_file

    for image_id in ids:
        image = layout.load_image(image_id)
        labels, maps = load_map_file(os.path.join(map_dir, f"{image_id}.npz"))
        scaled, padded, grid = walk_geometry(image.shape[0], image.shape[1], stride, scale)
        scores, _ = seed_scores_on_grid(labels, maps, background, stride, scaled)
        colour = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        if scaled != image.shape[:2]:
            colour = F.interpolate(colour, size=scaled, mode="bilinear", align_corners=False)
        colour = F.pad(colour, (0, padded[1] - scaled[1], 0, padded[0] - scaled[0]))
        features = F.avg_pool2d(colour, stride, stride) / sigma
        sources, targets = (torch.from_numpy(a) for a in pair_indices(grid[0], grid[1], radius, pair_sources))
        affinity = neighbour_affinity(features, radius, pair_sources)[0]
        transition_t = transition_matrix_transposed(affinity, sources, targets, grid[0] * grid[1], beta)
        walked = random_walk(scores.reshape(scores.shape[0], -1), transition_t, 2**logt)
        index = walk_to_mask(walked.reshape(1, -1, *grid), grid, padded, image.shape[:2], scaled)[0]
        yield layout.load_mask(image_id), np.concatenate([[0], labels])[index]


def psa_ablation(
    layout, ids, map_dir: str, background: float, psa: Mapping, affinity: Mapping, params: CRFParams,
    num_labels: int, workers: int = 1, colour_sigma: float = 0.1,
) -> dict[str, float]:
    """mIoU of the seeds, of CRF on the seeds alone, and of a random walk with colour affinity: what PSA's learned affinity is measured against."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from .io import load_map_file
    from .metrics import dataset_confusion, scores_from_confusion, seed_prediction
    from .models.registry import backbone_output_stride

    def seed_pairs():
        for image_id in ids:
            labels, maps = load_map_file(os.path.join(map_dir, f"{image_id}.npz"))
            yield layout.load_mask(image_id), seed_prediction(labels, maps, np.float32(background))

    seeds = dataset_confusion(seed_pairs(), num_labels)
    crf = psa["crf"]
    jobs = [(layout, i, os.path.join(map_dir, f"{i}.npz"), background, params, crf["spatial_scale"], crf["reference_size"], num_labels) for i in ids]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            crf_only = sum(pool.map(_crf_only_job, jobs, chunksize=32))
    else:
        crf_only = sum(map(_crf_only_job, jobs))
    stride = backbone_output_stride(affinity["backbone"])
    colour = dataset_confusion(
        colour_walk_predictions(layout, ids, map_dir, background, psa["beta"], psa["logt"], affinity["radius"], stride, colour_sigma,
                                psa["walk_scale"], affinity["pair_sources"]),
        num_labels,
    )
    return {name: float(scores_from_confusion(c)["miou"]) for name, c in (("seeds", seeds), ("seeds + CRF", crf_only), ("random walk, colour affinity", colour))}
