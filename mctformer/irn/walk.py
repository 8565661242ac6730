"""IRN's random walk on boundary affinities, through PSA's sparse transition matrix (no dense N x N anywhere)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..affinity import pair_indices
from ..psa.walk import random_walk, transition_matrix_transposed
from .paths import boundary_affinity


def boundary_walk(boundary: torch.Tensor, seeds: Sequence[torch.Tensor], *, beta: float, exp_times: int, radius: int) -> torch.Tensor:
    """Boundary maps [B, h, w] and each image's seed scores [K_b, h, w] (classes only) -> walked scores [B, max K_b, h, w].

    Pairs within ``radius`` (every grid cell a source), affinity 1 - path-max boundary raised to ``beta``,
    2^``exp_times`` steps of one block-diagonal sparse propagation for the whole batch; the seeds are
    multiplied by (1 - boundary) first, as the authors do. Channels an image lacks come out at -1 (the
    walked scores are >= 0, so they never win).
    """
    batch, height, width = boundary.shape
    sources, targets = (torch.from_numpy(a).to(boundary.device) for a in pair_indices(height, width, radius, "all"))
    transition_t = transition_matrix_transposed(boundary_affinity(boundary, radius, "all"), sources, targets, height * width, beta)
    channels = max(1, max(scores.shape[0] for scores in seeds))
    stacked = torch.zeros(channels, batch, height * width, device=boundary.device, dtype=boundary.dtype)
    for index, scores in enumerate(seeds):
        damped = scores.to(boundary.device, boundary.dtype) * (1.0 - boundary[index])
        stacked[: scores.shape[0], index] = damped.reshape(scores.shape[0], -1)
    walked = random_walk(stacked.reshape(channels, -1), transition_t, 2**exp_times)
    walked = walked.reshape(channels, batch, height, width).transpose(0, 1).contiguous()
    for index, scores in enumerate(seeds):
        walked[index, scores.shape[0] :] = -1.0
    return walked


def walked_to_masks(walked: torch.Tensor, labels: Sequence[np.ndarray], geometry: tuple, image_size: tuple[int, int],
                    bg_threshold: float) -> list[np.ndarray]:
    """Walked scores [B, K, h, w] -> label-value masks [H, W] (uint8), one per image.

    As the authors: bilinear upsampling by the stride (to the padded input, then cropped to the scaled
    image and resized to ``image_size``), divided by the image's largest score, background = the constant
    ``bg_threshold`` (irn.sem_seg_bg_thres) in front, argmax. ``geometry`` = (scaled, padded, grid) of
    :func:`mctformer.psa.geometry.walk_geometry`; ``labels`` [K_b] the segmentation values of each image's channels.
    """
    scaled, padded, grid = geometry
    full = F.interpolate(walked.reshape(walked.shape[0], -1, *grid), size=padded, mode="bilinear", align_corners=False)
    full = full[:, :, : scaled[0], : scaled[1]]
    if tuple(scaled) != tuple(image_size):
        full = F.interpolate(full, size=tuple(image_size), mode="bilinear", align_corners=False)
    masks = []
    for scores, values in zip(full, labels):
        scores = scores[: len(values)]
        scores = scores / scores.max().clamp_min(1e-12) if len(values) else scores
        with_background = torch.cat([torch.full((1, *scores.shape[1:]), float(bg_threshold), dtype=scores.dtype, device=scores.device), scores])
        index = with_background.argmax(dim=0).cpu().numpy()
        masks.append(np.concatenate([[0], values]).astype(np.uint8)[index])
    return masks
