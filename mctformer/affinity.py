"""Pixel-pair affinities of AffinityNet (Ahn & Kwak, CVPR 2018): pairs, labels, loss.

Pairs join each feature-grid pixel to its neighbours at distance < radius;
each unordered pair appears once (offsets in a half disc, ordered as the
reference orders them), offset-major. Which pixels are sources:

- ``all``: every pixel, with the pairs that stay inside the grid.
- ``reference``: as the reference's ``get_indices_of_pairs`` /
  ``ExtractAffinityLabelInRadius``: only the pixels of rows 0..h-radius and
  columns radius-1..w-radius (``grid[:-(r-1), r-1:-(r-1)]``), so the bottom
  rows and the left and right columns are sources of no pair (they can still be
  targets, some pixels of neither). On small feature grids (16x16 for 64 px
  images) that leaves a third of the pixels without an outgoing pair, which is
  why ``all`` is the embedded default.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .data.voc import IGNORE

PAIR_SOURCES = ("all", "reference")


def half_disc_offsets(radius: int) -> list[tuple[int, int]]:
    """(dy, dx) with 0 < dy^2 + dx^2 < radius^2, one of each +-pair: (0, dx > 0) and (dy > 0, any dx)."""
    if radius < 2:
        raise ValueError("the affinity radius must be at least 2 (a pixel and its 4-neighbours)")
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dx * dx + dy * dy < radius * radius]
    return offsets


def source_window(height: int, width: int, radius: int, sources: str) -> tuple[slice, slice]:
    """Rows and columns of the grid whose pixels are pair sources (see the module docstring)."""
    if sources == "all":
        return slice(0, height), slice(0, width)
    if sources != "reference":
        raise ValueError(f"affinity.pair_sources must be one of {PAIR_SOURCES}, got {sources!r}")
    margin = radius - 1
    if height - margin <= 0 or width - 2 * margin <= 0:
        raise ValueError(f"a {height}x{width} feature grid has no pair sources at radius {radius} with affinity.pair_sources 'reference'")
    return slice(0, height - margin), slice(margin, width - margin)


@lru_cache(maxsize=64)
def pair_indices(height: int, width: int, radius: int, sources: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (from, to) of the pairs on an height x width grid, offset-major, sources row-major;
    ``sources``: affinity.pair_sources (see the module docstring)."""
    rows, cols = np.mgrid[0:height, 0:width]
    row_window, col_window = source_window(height, width, radius, sources)
    rows, cols = rows[row_window, col_window], cols[row_window, col_window]
    from_list, to_list = [], []
    for dy, dx in half_disc_offsets(radius):
        to_rows, to_cols = rows + dy, cols + dx
        inside = (to_rows < height) & (to_cols >= 0) & (to_cols < width)
        from_list.append((rows * width + cols)[inside])
        to_list.append((to_rows * width + to_cols)[inside])
    return np.concatenate(from_list), np.concatenate(to_list)


def pair_labels(label: np.ndarray, radius: int, sources: str) -> dict[str, np.ndarray]:
    """Boolean masks over the pairs of ``label``'s grid: both background, same foreground class, different classes.

    Pairs touching an ignored (255) pixel are in none of the three.
    """
    sources, targets = pair_indices(label.shape[0], label.shape[1], radius, sources)
    flat = label.reshape(-1)
    a, b = flat[sources], flat[targets]
    valid = (a != IGNORE) & (b != IGNORE)
    return {
        "bg": valid & (a == 0) & (b == 0),
        "fg": valid & (a == b) & (a != 0),
        "neg": valid & (a != b),
    }


def batch_pair_labels_torch(labels: torch.Tensor, radius: int, sources: str) -> dict[str, torch.Tensor]:
    """:func:`pair_labels` of a batch of grid labels [B, h, w] at once, on their own device: {kind: bool [B, P]}, equal
    to stacking the numpy masks of each image. The trainers build these every step (IRN's 2 x 64 px crops at radius 5:
    ~190 MB of numpy masks per step at the authors' sizes), so on CUDA they should never leave the GPU."""
    sources_index, targets_index = (torch.from_numpy(index).to(labels.device) for index in pair_indices(labels.shape[-2], labels.shape[-1], radius, sources))
    flat = labels.flatten(1)
    a, b = flat[:, sources_index], flat[:, targets_index]
    valid = (a != IGNORE) & (b != IGNORE)
    return {"bg": valid & (a == 0) & (b == 0), "fg": valid & (a == b) & (a != 0), "neg": valid & (a != b)}


def pair_affinity(features: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """exp(-mean_d |f_i - f_j|) for features [B, D, h, w] and any list of pairs -> [B, P]."""
    flat = features.flatten(2)
    return torch.exp(-(flat[:, :, sources] - flat[:, :, targets]).abs().mean(dim=1))


def neighbour_affinity(features: torch.Tensor, radius: int, sources: str) -> torch.Tensor:
    """:func:`pair_affinity` over exactly the pairs of :func:`pair_indices`, in the same order.

    Built from one shifted slice per offset instead of gathering every pair:
    the same numbers, several times faster forward and backward.
    """
    height, width = features.shape[-2:]
    row_window, col_window = source_window(height, width, radius, sources)
    top, bottom, left, right = row_window.start, row_window.stop, col_window.start, col_window.stop
    parts = []
    for dy, dx in half_disc_offsets(radius):
        # sources in the window whose target (row + dy, col + dx) is inside the grid
        row_stop = min(bottom, height - dy)
        col_start, col_stop = max(left, -dx), min(right, width - dx)
        source = features[:, :, top:row_stop, col_start:col_stop]
        target = features[:, :, top + dy : row_stop + dy, col_start + dx : col_stop + dx]
        parts.append(torch.exp(-(source - target).abs().mean(dim=1)).flatten(1))
    return torch.cat(parts, dim=1)


def pooled_grid_labels(la_scores: np.ndarray, ha_scores: np.ndarray, stride: int, keys: np.ndarray) -> np.ndarray:
    """The reference's AffinityNet labels: the la and ha CRF scores [1+K, H, W] averaged over stride x stride cells, then merged.

    As the reference's label transform (skimage ``block_reduce(..., np.mean)``):
    the last cells are zero-padded and the padding counts in the mean; a cell
    with no score at all (max < 1e-5: outside the image in a crop's zero
    container) is ignored. Then la's argmax is the label where it is
    foreground, 255 where la says background, and 0 wherever ha's argmax is
    background. ``keys`` maps channel positions to label values (0 first).
    Returns [ceil(H / stride), ceil(W / stride)] uint8.
    """
    stacked = np.concatenate([la_scores, ha_scores]).astype(np.float32)
    channels, height, width = stacked.shape
    padded = np.zeros((channels, -(-height // stride) * stride, -(-width // stride) * stride), np.float32)
    padded[:, :height, :width] = stacked
    pooled = padded.reshape(channels, padded.shape[1] // stride, stride, padded.shape[2] // stride, stride).mean(axis=(2, 4))
    no_score = pooled.max(axis=0) < 1e-5
    half = la_scores.shape[0]
    la, ha = pooled[:half].argmax(axis=0), pooled[half:].argmax(axis=0)
    label = np.asarray(keys, dtype=np.uint8)[la]
    label[la == 0] = IGNORE
    label[ha == 0] = 0
    label[no_score] = IGNORE
    return label


def pair_cross_entropies(affinity: torch.Tensor, labels: dict[str, torch.Tensor], eps: float) -> tuple[torch.Tensor, ...]:
    """(bg, fg, neg): the mean cross-entropy of each pair kind over the whole batch, -log(a) for pairs of the same
    label (both background; the same class), -log(1 - a) for pairs of different labels (AffinityNet's and IRN's)."""
    def mean_over(mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        mask = mask.float()
        return (mask * values).sum() / (mask.sum() + eps)

    bg = mean_over(labels["bg"], -torch.log(affinity + eps))
    fg = mean_over(labels["fg"], -torch.log(affinity + eps))
    neg = mean_over(labels["neg"], -torch.log(1.0 + eps - affinity))
    return bg, fg, neg


def affinity_loss(affinity: torch.Tensor, labels: dict[str, torch.Tensor], eps: float = 1e-5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """bg/4 + fg/4 + neg/2: the mean cross-entropy of each pair kind, as in AffinityNet."""
    bg, fg, neg = pair_cross_entropies(affinity, labels, eps)
    total = bg / 4 + fg / 4 + neg / 2
    # tensors, not floats: the epoch loop reads them once per logging interval instead of syncing the device each step
    return total, {"bg": bg.detach(), "fg": fg.detach(), "neg": neg.detach()}
