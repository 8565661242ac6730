"""Between image pixels and the random walk's feature grid: sizes, seeds on the grid, masks from it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def walk_geometry(height: int, width: int, stride: int, scale: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(scaled size, padded size, feature grid) of an image walked at ``scale`` (psa.walk_scale; 1 = the reference).

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
