"""Class-specific localization maps from a trained MCTformer (paper Sec. 3.1-3.4).

Conventions (docs/design.md): attention is post-softmax and averaged over heads; the
class-to-patch map is the SUM over the last K blocks of attention rows [:C],
columns [C:]; V2 fuses it with ReLU(Patch-CAM) by multiplication (MCTformer+:
the MEAN over the K blocks, and the square root of the product); the patch
affinity is the SUM over all blocks of patch-to-patch attention and refines a
map as A @ map. Per scale and flip the patch-grid maps are upsampled
(bilinear, align_corners=False) to the image, flipped back and summed, then
reduced to the image's classes and min-max normalised per class.

Besides the reference refinement, ``*_feature_refined`` variants refine with an
affinity from the final patch tokens (centred cosine similarity, softmax with a
temperature, half-and-half with the unrefined map): on small from-scratch
models the attention has no locality and the reference refinement blurs maps.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .artifacts import atomic_directory, atomic_path, save_map_file
from .data.layout import batches_of_equal_size
from .data.prefetch import prefetched_batches
from .data.transforms import normalize_image
from .data.voc import DatasetError, VOCLayout
from .logs import progress_bar
from .models.registry import MAP_VARIANTS, check_last_k

if TYPE_CHECKING:  # timm (behind the model) costs seconds to import; stages that only batch images skip it
    from .models.mctformer import MCTformer, MCTformerOutput



def class_to_patch_attention(attentions: torch.Tensor, num_classes: int, grid: tuple[int, int], last_k: int) -> torch.Tensor:
    """[L, B, C+M, C+M] attention -> [B, C, h, w]: sum over the last K blocks of class-to-patch rows."""
    check_last_k(last_k, attentions.shape[0])
    summed = attentions[-last_k:].sum(dim=0)
    batch = summed.shape[0]
    return summed[:, :num_classes, num_classes:].reshape(batch, num_classes, *grid)


def patch_affinity(attentions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[L, B, C+M, C+M] attention -> [B, M, M]: patch-to-patch attention summed over all blocks."""
    return attentions[:, :, num_classes:, num_classes:].sum(dim=0)


def patchcam_maps(patchcam: torch.Tensor) -> torch.Tensor:
    """V2's Patch-CAM alone (Table 5 / Fig. 5f, no attention): ReLU of the conv head's class maps [B, C, h, w]."""
    return F.relu(patchcam)


def fuse_with_patchcam(attention_maps: torch.Tensor, patchcam: torch.Tensor) -> torch.Tensor:
    """V2 fusion: class-to-patch attention times ReLU(Patch-CAM), both [B, C, h, w]."""
    return attention_maps * patchcam_maps(patchcam)


def fuse_by_square_root(attention_maps: torch.Tensor, patchcam: torch.Tensor) -> torch.Tensor:
    """MCTformer+ fusion: sqrt(class-to-patch attention x ReLU(Patch-CAM)), both [B, C, h, w] (their geometric mean)."""
    return torch.sqrt(attention_maps * patchcam_maps(patchcam))


def refine_with_affinity(maps: torch.Tensor, affinity: torch.Tensor) -> torch.Tensor:
    """refined[c, i] = sum_j affinity[i, j] * maps[c, j]; maps [B, C, h, w], affinity [B, M, M]."""
    batch, channels, height, width = maps.shape
    flat = maps.reshape(batch, channels, height * width)
    return torch.einsum("bij,bcj->bci", affinity, flat).reshape(batch, channels, height, width)


def token_feature_affinity(patch_tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row-stochastic [B, M, M] affinity from final patch tokens [B, M, D] (centred cosine, softmax)."""
    centred = patch_tokens - patch_tokens.mean(dim=1, keepdim=True)
    unit = F.normalize(centred, dim=-1)
    return torch.softmax(unit @ unit.transpose(1, 2) / temperature, dim=-1)


def grid_maps(output: MCTformerOutput, variants: Sequence[str], num_classes: int, last_k: int, feature_temperature: float) -> dict[str, torch.Tensor]:
    """Every requested variant at patch-grid resolution, [B, C, h, w] each, from one forward's output."""
    if output.attentions is None:
        raise ValueError("grid_maps needs the attention: call forward_tokens(..., return_attention=True)")
    attention = class_to_patch_attention(output.attentions, num_classes, output.grid, last_k=last_k)
    if output.fusion == "sqrt":  # MCTformer+ averages the K blocks (V2 sums them: equal after min-max, not under the sqrt's input)
        attention = attention / last_k
    base = {"attention": attention}
    if output.patchcam is not None:
        base["patchcam"] = patchcam_maps(output.patchcam)
        fuse = fuse_by_square_root if output.fusion == "sqrt" else fuse_with_patchcam
        base["fused"] = fuse(attention, output.patchcam)
    affinity = feature_affinity = None
    maps = {}
    for variant in variants:
        if variant in base:
            maps[variant] = base[variant]
        elif variant.endswith("_feature_refined"):
            if feature_affinity is None:
                feature_affinity = token_feature_affinity(output.patch_tokens, feature_temperature)
            source = base[variant.removesuffix("_feature_refined")]
            maps[variant] = 0.5 * source + 0.5 * refine_with_affinity(source, feature_affinity)
        elif variant.endswith("_refined"):
            if affinity is None:
                affinity = patch_affinity(output.attentions, num_classes)
            maps[variant] = refine_with_affinity(base[variant.removesuffix("_refined")], affinity)
        else:
            raise ValueError(f"unknown map variant {variant!r}")
    return maps


def minmax_normalize(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-map min-max to [0, 1] over the two spatial dims; [..., H, W]."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - low) / (high - low + eps)


def scaled_size(height: int, width: int, scale: float, patch_size: int) -> tuple[int, int]:
    """Input size at ``scale``, rounded to whole patches (at least one)."""
    return (
        max(patch_size, int(round(height * scale / patch_size)) * patch_size),
        max(patch_size, int(round(width * scale / patch_size)) * patch_size),
    )


# How each scale's input is made (maps.resize, maps.remainder); the reference's choices second.
RESIZE_METHODS = ("torch_bilinear", "pil_bicubic")
REMAINDER_RULES = ("resize", "crop")


def input_size(height: int, width: int, scale: float, patch_size: int, remainder: str) -> tuple[int, int]:
    """The size an image is resized to at ``scale`` before any crop (see :func:`scaled_inputs`)."""
    if remainder not in REMAINDER_RULES:
        raise ValueError(f"maps.remainder must be one of {REMAINDER_RULES}, got {remainder!r}")
    if remainder == "resize":
        return scaled_size(height, width, scale, patch_size)
    return (max(1, round(height * scale)), max(1, round(width * scale)))  # Python's round, as the reference


def pil_resized_batch(pictures: Sequence[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """The uint8 ``pictures`` resized to ``size`` by PIL bicubic, then normalised [B, 3, *size] (maps.resize pil_bicubic)."""
    from PIL import Image

    resized = [np.asarray(Image.fromarray(p).resize((size[1], size[0]), Image.BICUBIC)) for p in pictures]
    return torch.stack([normalize_image(p) for p in resized])


def scaled_inputs(
    images: torch.Tensor, pictures: Sequence[np.ndarray] | None, scale: float, patch_size: int, resize: str, remainder: str,
    flip: bool, resized: Mapping[tuple[int, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The network input at ``scale`` for a normalised batch ``images`` [B, 3, H, W] of equal-size pictures,
    followed by their mirror images when ``flip`` ([2B, ...]).

    ``remainder``: ``resize`` scales straight to whole patches (every pixel
    seen); ``crop`` scales to round(H * s) x round(W * s) and keeps the top-left
    whole patches, which is what the reference's stride-16 patch convolution
    does with the remainder rows and columns (a 375x500 image is read as its
    368x496 corner; the maps are still stretched over the whole image).
    ``resize``: ``torch_bilinear`` on the normalised tensor (no antialias), or
    ``pil_bicubic`` on the uint8 ``pictures`` (PIL, as the reference's dataset)
    before normalising. Mirroring comes before the crop, as in the reference:
    the mirror image loses its own last columns, i.e. the original's first ones.
    ``resized``: PIL-resized batches already made by the loader (size -> [B, 3, *size] on the CPU), used in place
    of resizing here; the same numbers, made ahead in a loader process.
    """
    if resize not in RESIZE_METHODS:
        raise ValueError(f"maps.resize must be one of {RESIZE_METHODS}, got {resize!r}")
    height, width = images.shape[-2:]
    size = input_size(height, width, scale, patch_size, remainder)
    if size == (height, width):
        inputs = images
    elif resize == "torch_bilinear":
        inputs = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    elif resized is not None and size in resized:
        inputs = resized[size].to(images.device, non_blocking=True)
    else:
        if pictures is None:
            raise ValueError("maps.resize pil_bicubic needs the uint8 pictures")
        inputs = pil_resized_batch(pictures, size).to(images.device)
    if flip:
        inputs = torch.cat([inputs, inputs.flip(-1)], dim=0)
    if remainder == "crop":
        kept = (size[0] // patch_size * patch_size, size[1] // patch_size * patch_size)
        if min(kept) == 0:
            raise ValueError(f"an image of {height}x{width} at scale {scale} is smaller than one {patch_size}px patch")
        inputs = inputs[..., : kept[0], : kept[1]]
    return inputs


@torch.inference_mode()
def multiscale_maps(
    model: MCTformer,
    images: torch.Tensor,
    present: torch.Tensor,
    variants: Sequence[str],
    *,
    scales: Sequence[float],
    flip: bool,
    last_k: int,
    feature_temperature: float,
    resize: str,
    remainder: str,
    position_embedding: str,
    amp: bool,
    pictures: Sequence[np.ndarray] | None = None,
    resized: Mapping[tuple[int, int], torch.Tensor] | None = None,
) -> dict[str, list[torch.Tensor]]:
    """Sum over scales (and horizontal flips) of the upsampled maps of each image's classes, unnormalised.

    ``images`` is a normalised batch [B, 3, H, W] of equal-size images (their
    uint8 ``pictures`` too for ``resize='pil_bicubic'``) and ``present`` a
    [B, C] boolean of their classes. Returns variant -> one [K_b, H, W] tensor
    per image (its classes in index order). Each scale and its flip run as ONE
    forward of 2B images. Flipping back and summing happen on the patch grid,
    and only the image's classes are upsampled: both commute with bilinear
    upsampling to the whole image (align_corners=False samples symmetrically),
    so the result equals upsampling every map first, at a fraction of the cost.
    ``resize``/``remainder``: see :func:`scaled_inputs`; ``position_embedding``:
    see ``resample_position_embedding``; ``amp``: float16 autocast on CUDA (the
    reference extracts under autocast); ``resized``: see :func:`scaled_inputs`.
    """

    def grids_of(output: MCTformerOutput) -> dict[str, torch.Tensor]:
        return grid_maps(output, variants, model.num_classes, last_k=last_k, feature_temperature=feature_temperature)

    return _summed_over_scales(
        model, images, present, grids_of, scales=scales, flip=flip, resize=resize, remainder=remainder,
        position_embedding=position_embedding, amp=amp, pictures=pictures, resized=resized,
    )


def layer_grid_maps(attentions: torch.Tensor, num_classes: int, grid: tuple[int, int], depths: Sequence[int]) -> dict[int, torch.Tensor]:
    """The paper's Fig. 6 from one forward: K -> the class-to-patch map over the last K blocks, for each K in ``depths``."""
    return {depth: class_to_patch_attention(attentions, num_classes, grid, last_k=depth) for depth in depths}


@torch.inference_mode()
def multiscale_layer_maps(
    model: MCTformer,
    images: torch.Tensor,
    present: torch.Tensor,
    depths: Sequence[int],
    *,
    scales: Sequence[float],
    flip: bool,
    resize: str,
    remainder: str,
    position_embedding: str,
    amp: bool,
    pictures: Sequence[np.ndarray] | None = None,
) -> dict[int, list[torch.Tensor]]:
    """:func:`multiscale_maps` of the ``attention`` variant for every ``last_k`` in ``depths`` at the cost of one:
    each forward already holds every block's attention, so K -> what ``last_k=K`` would give."""

    def grids_of(output: MCTformerOutput) -> dict[int, torch.Tensor]:
        if output.attentions is None:
            raise ValueError("multiscale_layer_maps needs the attention of every block")
        return layer_grid_maps(output.attentions, model.num_classes, output.grid, depths)

    return _summed_over_scales(
        model, images, present, grids_of, scales=scales, flip=flip, resize=resize, remainder=remainder,
        position_embedding=position_embedding, amp=amp, pictures=pictures,
    )


def _summed_over_scales(
    model: MCTformer, images: torch.Tensor, present: torch.Tensor, grids_of, *, scales: Sequence[float], flip: bool,
    resize: str, remainder: str, position_embedding: str, amp: bool, pictures: Sequence[np.ndarray] | None,
    resized: Mapping[tuple[int, int], torch.Tensor] | None = None,
) -> dict:
    """The scale / flip loop of :func:`multiscale_maps`; ``grids_of(output)`` names the patch-grid maps of one forward."""
    from .training.common import autocast

    if not scales:
        raise ValueError("maps.scales must name at least one scale")
    batch, _, height, width = images.shape
    present = present.to(device=images.device, dtype=torch.bool)
    counts = present.sum(dim=1).tolist()
    totals: dict = {}
    for scale in scales:
        inputs = scaled_inputs(images, pictures, scale, model.patch_size, resize, remainder, flip, resized)
        with autocast(images.device, amp):
            output = model.forward_tokens(inputs, return_attention=True, position_resampling=position_embedding)
            grids = grids_of(output)
        del output, inputs  # every block's attention: freed before the next scale's forward allocates its own
        for variant, grid in grids.items():
            grid = grid.float()
            if flip:
                grid = grid[:batch] + grid[batch:].flip(-1)
            selected = grid[present].unsqueeze(1)  # [sum of K_b, 1, h, w]
            full = F.interpolate(selected, size=(height, width), mode="bilinear", align_corners=False).squeeze(1)
            totals[variant] = totals[variant] + full if variant in totals else full
    return {variant: list(torch.split(total, counts)) for variant, total in totals.items()}


def overlay_png(path: str | os.PathLike, image: np.ndarray, maps_by_variant: Mapping[str, np.ndarray], zoom: int = 3) -> None:
    """One row per variant: the image, then each class map as a heat overlay."""
    from PIL import Image

    from .plots import heat_overlay

    rows = []
    for maps in maps_by_variant.values():
        tiles = [image.astype(np.float32)]
        for class_map in maps:
            tiles.append(heat_overlay(image, class_map))
        rows.append(np.concatenate(tiles, axis=1))
    width = max(row.shape[1] for row in rows)
    canvas = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.NEAREST)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")


def pil_resized_batches(pictures: list[np.ndarray], *, scales: Sequence[float], patch_size: int, remainder: str) -> dict[tuple[int, int], torch.Tensor]:
    """Every size ``scales`` need other than the pictures' own -> :func:`pil_resized_batch` (done by the loader)."""
    height, width = pictures[0].shape[:2]
    sizes = {input_size(height, width, scale, patch_size, remainder) for scale in scales} - {(height, width)}
    return {size: pil_resized_batch(pictures, size) for size in sorted(sizes)}


def image_batches(
    layout: VOCLayout, ids: Sequence[str], class_labels: Mapping[str, np.ndarray], batch_size: int, device: torch.device, workers: int,
    prescale: Callable[[list[np.ndarray]], dict] | None = None,
) -> Iterator[tuple[list[str], list[np.ndarray], torch.Tensor, np.ndarray, dict | None]]:
    """The images of ``ids`` in batches of equal size (:func:`batches_of_equal_size`): their ids, the uint8 pictures, the
    normalised batch on ``device``, the multi-hot image-level labels [B, C] (what every extraction pass feeds the model)
    and ``prescale(pictures)`` (None without it). ``workers`` (maps.workers): decoding processes working ahead of the
    model (0: decoded here, batch by batch)."""
    batches = batches_of_equal_size(layout, ids, batch_size)
    for batch_ids, pictures, images, resized in prefetched_batches(layout, batches, workers, pin_memory=device.type == "cuda", extra=prescale):
        images = images.to(device, non_blocking=True)
        multi_hot = np.stack([np.asarray(class_labels[i]) > 0 for i in batch_ids])
        yield batch_ids, pictures, images, multi_hot, resized


def extract_maps(
    model: MCTformer,
    layout: VOCLayout,
    ids: Sequence[str],
    class_labels: Mapping[str, np.ndarray],
    out_dirs: Mapping[str, str | os.PathLike],
    *,
    scales: Sequence[float],
    flip: bool,
    last_k: int,
    feature_temperature: float,
    batch_size: int,
    device: torch.device | str,
    num_overlays: int,
    resize: str,
    remainder: str,
    position_embedding: str,
    amp: bool,
    storage_dtype: str,
    workers: int,
    overlay_dir: str | os.PathLike | None = None,
    overlay_ids: Sequence[str] | None = None,
) -> None:
    """Write ``<id>.npz`` maps of every id for every variant in ``out_dirs`` (variant -> folder).

    Every setting is a ``maps`` key of the config (``num_overlays`` = maps.overlays,
    written only when ``overlay_dir`` is given; of the images ``overlay_ids`` among ``ids``, by default the first
    ``num_overlays``: a shard of a stage passes its whole list's first ones). Each folder (and the overlay
    folder) appears only when all of it is written. ``resize``, ``remainder``, ``position_embedding``, ``amp``: see
    :func:`multiscale_maps`; ``storage_dtype``: float16 (half the disk, within
    2.5e-4 of float32 on [0, 1] maps) or float32 (the reference); ``workers``: see :func:`image_batches`.
    """
    if not ids:
        raise DatasetError("extract_maps: the split list is empty")
    allowed = MAP_VARIANTS[model.version]
    for variant in out_dirs:
        if variant not in allowed:
            raise ValueError(f"maps.variants: {variant!r} is not produced by an MCTformer-{model.version.upper()} (choose from {allowed})")
    missing = [i for i in ids if i not in class_labels]
    if missing:
        raise DatasetError(f"no image-level labels for {len(missing)} ids, e.g. {missing[0]}")
    device = torch.device(device)
    model = model.to(device).eval()
    variants = list(out_dirs)
    overlay_ids = set(ids[:num_overlays] if overlay_ids is None else overlay_ids) if overlay_dir else set()
    # with loader processes, PIL's resizing to every scale happens there too (torch resizing stays on the device)
    prescale = (functools.partial(pil_resized_batches, scales=list(scales), patch_size=model.patch_size, remainder=remainder)
                if workers > 0 and resize == "pil_bicubic" else None)
    with contextlib.ExitStack() as stack:
        tmp_dirs = {v: stack.enter_context(atomic_directory(out_dirs[v])) for v in variants}
        tmp_overlay = stack.enter_context(atomic_directory(overlay_dir)) if overlay_dir else None
        # Creating thousands of small files is slow on many file systems; writer
        # threads overlap it with the next batch's forward pass.
        writers = stack.enter_context(ThreadPoolExecutor(max_workers=4))
        pending: list = []
        with progress_bar(total=len(ids), desc="extract maps", unit="img", mininterval=2.0) as progress:
            for batch_ids, pictures, images, multi_hot, resized in image_batches(layout, ids, class_labels, batch_size, device, workers, prescale):
                summed = multiscale_maps(
                    model, images, torch.from_numpy(multi_hot), variants, scales=scales, flip=flip, last_k=last_k,
                    feature_temperature=feature_temperature, pictures=pictures, resize=resize, remainder=remainder,
                    position_embedding=position_embedding, amp=amp, resized=resized,
                )
                written = []
                for index, image_id in enumerate(batch_ids):
                    labels = np.flatnonzero(multi_hot[index]) + 1
                    per_variant = {}
                    for variant in variants:
                        maps = minmax_normalize(summed[variant][index]).cpu().numpy()
                        written.append(writers.submit(save_map_file, tmp_dirs[variant] / f"{image_id}.npz", labels, maps,
                                                     atomic=False, dtype=storage_dtype))
                        per_variant[variant] = maps
                    if image_id in overlay_ids:
                        overlay_png(tmp_overlay / f"{image_id}.png", pictures[index], per_variant)
                for future in pending:  # the previous batch: bounded memory, and its errors surface here
                    future.result()
                pending = written
                progress.update(len(batch_ids))
            for future in pending:
                future.result()

