"""The random walk on a sparse transition matrix (one walk function for every affinity source)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from ..affinity import neighbour_affinity, pair_indices


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


def dense_random_walk(
    scores: torch.Tensor, affinity: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor, size: int, beta: float, logt: int,
) -> torch.Tensor:
    """The reference's way, for tests and benchmarks: dense T, squared logt times."""
    dense = torch.eye(size, dtype=affinity.dtype, device=affinity.device)
    dense[sources, targets] = affinity
    dense[targets, sources] = affinity
    dense = dense.pow(beta)
    transition = dense / dense.sum(dim=0, keepdim=True)
    for _ in range(logt):
        transition = transition @ transition
    return scores @ transition


def walk_seeds(features: torch.Tensor, seeds: Sequence[torch.Tensor], beta: float, logt: int, radius: int, pair_sources: str) -> torch.Tensor:
    """Features [B, D, h, w] (where the pair affinities come from) and each image's seed scores [K_b + 1, h, w]
    -> propagated scores [B, max K_b + 1, h, w].

    One sparse walk for the batch: the images side by side in one block-diagonal
    transition matrix, classes padded to the batch's largest count; padding
    channels end at -1e9 so they never win an argmax (-inf would give NaN when upsampled).
    """
    batch, _, height, width = features.shape
    sources, targets = (torch.from_numpy(a).to(features.device) for a in pair_indices(height, width, radius, pair_sources))
    affinity = neighbour_affinity(features, radius, pair_sources)
    transition_t = transition_matrix_transposed(affinity, sources, targets, height * width, beta)
    channels = max(scores.shape[0] for scores in seeds)
    stacked = torch.zeros(channels, batch, height * width, device=features.device)
    for index, scores in enumerate(seeds):
        stacked[: scores.shape[0], index] = scores.reshape(scores.shape[0], -1).to(features.device)
    walked = random_walk(stacked.reshape(channels, -1), transition_t, 2**logt)
    walked = walked.reshape(channels, batch, height, width).transpose(0, 1)
    for index, scores in enumerate(seeds):
        walked[index, scores.shape[0] :] = -1e9
    return walked
