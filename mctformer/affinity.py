"""Pixel-pair affinities of AffinityNet (Ahn & Kwak, CVPR 2018): pairs, labels, loss.

Pairs join each feature-grid pixel to its neighbours at distance < radius;
each unordered pair appears once (offsets in a half disc). Unlike the
reference, pixels near the top, left and right borders keep their pairs too:
on small feature grids (16x16 for 64 px images) the reference's cropping would
leave a third of the pixels without any outgoing pair.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

IGNORE = 255


def half_disc_offsets(radius: int) -> list[tuple[int, int]]:
    """(dy, dx) with 0 < dy^2 + dx^2 < radius^2, one of each +-pair: (0, dx > 0) and (dy > 0, any dx)."""
    if radius < 2:
        raise ValueError("the affinity radius must be at least 2 (a pixel and its 4-neighbours)")
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dx * dx + dy * dy < radius * radius]
    return offsets


@lru_cache(maxsize=64)
def pair_indices(height: int, width: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (from, to) of every in-bounds pair on an height x width grid."""
    rows, cols = np.mgrid[0:height, 0:width]
    sources, targets = [], []
    for dy, dx in half_disc_offsets(radius):
        to_rows, to_cols = rows + dy, cols + dx
        inside = (to_rows < height) & (to_cols >= 0) & (to_cols < width)
        sources.append((rows * width + cols)[inside])
        targets.append((to_rows * width + to_cols)[inside])
    return np.concatenate(sources), np.concatenate(targets)


def pair_labels(label: np.ndarray, radius: int) -> dict[str, np.ndarray]:
    """Boolean masks over the pairs of ``label``'s grid: both background, same foreground class, different classes.

    Pairs touching an ignored (255) pixel are in none of the three.
    """
    sources, targets = pair_indices(label.shape[0], label.shape[1], radius)
    flat = label.reshape(-1)
    a, b = flat[sources], flat[targets]
    valid = (a != IGNORE) & (b != IGNORE)
    return {
        "bg": valid & (a == 0) & (b == 0),
        "fg": valid & (a == b) & (a != 0),
        "neg": valid & (a != b),
    }


def pair_affinity(features: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """exp(-mean_d |f_i - f_j|) for features [B, D, h, w] and any list of pairs -> [B, P]."""
    flat = features.flatten(2)
    return torch.exp(-(flat[:, :, sources] - flat[:, :, targets]).abs().mean(dim=1))


def neighbour_affinity(features: torch.Tensor, radius: int) -> torch.Tensor:
    """:func:`pair_affinity` over exactly the pairs of :func:`pair_indices`, in the same order.

    Built from one shifted slice per offset instead of gathering every pair:
    the same numbers, several times faster forward and backward.
    """
    height, width = features.shape[-2:]
    parts = []
    for dy, dx in half_disc_offsets(radius):
        source = features[:, :, : height - dy, max(0, -dx) : width - max(0, dx)]
        target = features[:, :, dy:, max(0, dx) : width - max(0, -dx)]
        parts.append(torch.exp(-(source - target).abs().mean(dim=1)).flatten(1))
    return torch.cat(parts, dim=1)


def affinity_loss(affinity: torch.Tensor, labels: dict[str, torch.Tensor], eps: float = 1e-5) -> tuple[torch.Tensor, dict[str, float]]:
    """bg/4 + fg/4 + neg/2: the mean cross-entropy of each pair kind, as in AffinityNet."""
    def mean_over(mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        mask = mask.float()
        return (mask * values).sum() / (mask.sum() + eps)

    bg = mean_over(labels["bg"], -torch.log(affinity + eps))
    fg = mean_over(labels["fg"], -torch.log(affinity + eps))
    neg = mean_over(labels["neg"], -torch.log(1.0 + eps - affinity))
    total = bg / 4 + fg / 4 + neg / 2
    return total, {"bg": bg.item(), "fg": fg.item(), "neg": neg.item()}
