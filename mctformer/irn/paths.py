"""Pixel pairs on the boundary map's grid, the cells on the path between them, path-max affinity, IRN's pair losses."""

from __future__ import annotations

from functools import lru_cache

import torch

from ..affinity import half_disc_offsets, pair_cross_entropies, source_window


@lru_cache(maxsize=16)
def path_offsets(radius: int) -> tuple[tuple[tuple[int, int], tuple[tuple[int, int], ...]], ...]:
    """((dy, dx), cells) for every pair offset of :func:`mctformer.affinity.half_disc_offsets`, in its order.

    ``cells``: the offsets (y, x) from the source that lie within distance 1 of the straight line to
    (dy, dx), inside their bounding box: the source and the target themselves included (the authors'
    PathIndex: squared distance to the line (dy x - dx y)^2 / (dy^2 + dx^2) < 1).
    """
    table = []
    for dy, dx in half_disc_offsets(radius):
        length_sq = dy * dy + dx * dx
        cells = tuple(
            (y, x)
            for y in range(min(0, dy), max(0, dy) + 1)
            for x in range(min(0, dx), max(0, dx) + 1)
            if (dy * x - dx * y) ** 2 < length_sq
        )
        table.append(((dy, dx), cells))
    return tuple(table)


def boundary_affinity(boundary: torch.Tensor, radius: int, sources: str) -> torch.Tensor:
    """1 - the largest boundary value on each pair's path: boundary [B, h, w] in [0, 1] -> affinity [B, P].

    The pairs (and their order) are :func:`mctformer.affinity.pair_indices` (``sources`` = all | reference):
    offset-major, sources row-major. Each path cell is one shifted slice of the map, so nothing of size
    pairs x path length is gathered; gradients flow to the cell that holds each maximum.
    """
    height, width = boundary.shape[-2:]
    row_window, col_window = source_window(height, width, radius, sources)
    top, bottom, left, right = row_window.start, row_window.stop, col_window.start, col_window.stop
    parts = []
    for (dy, dx), cells in path_offsets(radius):
        # sources in the window whose target (row + dy, col + dx) is inside the grid; the path stays in their box
        row_stop = min(bottom, height - dy)
        col_start, col_stop = max(left, -dx), min(right, width - dx)
        largest = None
        for y, x in cells:
            cell = boundary[:, top + y : row_stop + y, col_start + x : col_stop + x]
            largest = cell if largest is None else torch.maximum(largest, cell)
        parts.append((1.0 - largest).flatten(1))
    return torch.cat(parts, dim=1)


def irn_affinity_loss(affinity: torch.Tensor, labels: dict[str, torch.Tensor], eps: float = 1e-5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """IRN's class-boundary loss: (positive + negative) / 2, positive = background pairs / 2 + foreground pairs / 2.

    Each term is the mean cross-entropy of its pairs over the whole batch: -log(a) for pairs of the same
    label (``bg``: both background, ``fg``: the same class), -log(1 - a) for pairs of different labels (``neg``).
    """
    bg, fg, neg = pair_cross_entropies(affinity, labels, eps)
    total = (bg / 2 + fg / 2 + neg) / 2
    # tensors, not floats: the epoch loop reads them once per logging interval instead of syncing the device each step
    return total, {"bg": bg.detach(), "fg": fg.detach(), "neg": neg.detach()}
