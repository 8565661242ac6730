"""AffinityNet training on PSA's confident labels (bg/4 + fg/4 + neg/2 over pixel pairs)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..affinity import affinity_loss, batch_pair_labels_torch, neighbour_affinity, pooled_grid_labels
from ..artifacts import read_label_png, require_per_image_files
from ..data.datasets import SegmentationCropDataset
from ..data.voc import IGNORE, DatasetError, VOCLayout
from ..models.affinitynet import AffinityNet
from ..psa.labels import load_confident_scores
from .common import TrainerFiles, fingerprint, read_checkpoint, seed_everything
from .loop import backbone_and_head_groups, fit_poly, sgd_or_adamw

GRID_LABELS = ("centre_pixel", "pooled_scores")


def grid_labels(labels: torch.Tensor, stride: int) -> torch.Tensor:
    """Pixel labels [..., S, S] -> the label at the centre of each stride x stride cell, [..., S/stride, S/stride]."""
    return labels[..., stride // 2 :: stride, stride // 2 :: stride]


class AffinityCropDataset(SegmentationCropDataset):
    """(image crop [3, S, S], grid label [S/stride, S/stride]) for AffinityNet.

    ``grid_labels``: ``centre_pixel`` reads the confident-label PNGs and keeps
    the centre pixel of each cell; ``pooled_scores`` (the reference) reads the la
    / ha CRF scores, crops them with the image (zero scores outside it, which
    become 255) and pools them per cell (mctformer.affinity.pooled_grid_labels).
    """

    def __init__(self, layout: VOCLayout, ids: Sequence[str], label_dir: str | os.PathLike, grid_labels: str, stride: int, **crop) -> None:
        if grid_labels not in GRID_LABELS:
            raise ValueError(f"affinity.grid_labels must be one of {GRID_LABELS}, got {grid_labels!r}")
        self.label_dir, self.grid_labels, self.stride = str(label_dir), grid_labels, stride
        # the labels' crop padding follows from their kind (no config key): 255 (ignored) in label PNGs; zero
        # scores for pooled_scores, a cell with no score at all, which pooled_grid_labels ignores
        crop["pad_label"] = 0 if grid_labels == "pooled_scores" else IGNORE
        # a sample's label is what its kind reads (so in_memory holds that, not the other kind's files)
        super().__init__(layout, ids, self._label_png if grid_labels == "centre_pixel" else self._label_scores, **crop)

    def _label_png(self, image_id: str) -> np.ndarray:
        return read_label_png(os.path.join(self.label_dir, f"{image_id}.png"))

    def _label_scores(self, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return load_confident_scores(os.path.join(self.label_dir, f"{image_id}.npz"))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.grid_labels == "centre_pixel":
            image, label = super().__getitem__(index)
            return image, grid_labels(label, self.stride)
        image_id = self.ids[index]
        labels, la, ha = self.load_label(image_id)
        image, scores = self.crop(image_id, np.concatenate([la, ha]))
        keys = np.concatenate([[0], labels])
        return image, torch.from_numpy(pooled_grid_labels(scores[: la.shape[0]].numpy(), scores[la.shape[0] :].numpy(), self.stride, keys)).long()


def batch_pair_labels(labels: torch.Tensor, radius: int, sources: str) -> dict[str, torch.Tensor]:
    """The pair masks of a batch of grid labels, built on the labels' device (hand them over on the training device:
    no host work and no host-to-device copy of the masks per step); equal to the per-image numpy pair_labels."""
    return batch_pair_labels_torch(labels, radius, sources)


def load_affinity_net(path: str | os.PathLike, backbone: str | None = None, *, device: str | torch.device) -> AffinityNet:
    """Rebuild a trained AffinityNet from its checkpoint on ``device``; refuses another backbone (None: any)."""
    payload = read_checkpoint(path, "AffinityNet")
    if "feature_dim" not in payload["architecture"]:
        raise ValueError(f"{path} is not an AffinityNet checkpoint of this pipeline")
    saved = payload["architecture"]["backbone"]
    if backbone is not None and saved != backbone:
        raise ValueError(f"affinity checkpoint {path} has backbone {saved!r}, the config asks for {backbone!r}")
    # the checkpoint's own weights follow: nothing pretrained to read
    model = AffinityNet(backbone=saved, pretrained=None, feature_dim=payload["architecture"]["feature_dim"])
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


def train_affinity(
    layout: VOCLayout,
    ids: Sequence[str],
    label_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    files: TrainerFiles,
    *,
    device: torch.device,
    seed: int,
    workers: int,
) -> dict:
    """Train AffinityNet (``settings`` = the config's ``affinity`` section; ``seed``, ``workers``: the config's
    seed and affinity.workers)."""
    if not ids:
        raise DatasetError("train_affinity: the training split list is empty")
    require_per_image_files(label_dir, ids, ".npz" if settings["grid_labels"] == "pooled_scores" else ".png", "PSA labels")
    run_fingerprint = fingerprint({"settings": settings, "seed": seed, "ids": len(ids)})
    seed_everything(seed)
    model = AffinityNet(backbone=settings["backbone"], pretrained=settings["pretrained"], feature_dim=settings["feature_dim"]).to(device)
    stride, crop, radius = model.output_stride, settings["crop_size"], settings["radius"]
    if crop % stride:
        raise ValueError(f"affinity.crop_size ({crop}) must be a multiple of the backbone's output stride ({stride})")
    dataset = AffinityCropDataset(
        layout, ids, label_dir, settings["grid_labels"], stride,
        crop_size=crop, scale_range=settings["scale_range"], flip=settings["flip"],
        color_jitter=settings["color_jitter"], pad_image=settings["pad_image"], placement=settings["crop_placement"],
        in_memory=settings["in_memory"],
    )
    sources = settings["pair_sources"]
    groups = backbone_and_head_groups(model, settings["head_lr_mult"])
    optimizer = sgd_or_adamw(groups, settings, "affinity")

    def loss_of_batch(batch):
        images, labels = batch
        pairs = batch_pair_labels(labels.to(device, non_blocking=True), radius, sources)
        affinity = neighbour_affinity(model(images.to(device, non_blocking=True)).float(), radius, sources)
        return affinity_loss(affinity, pairs)

    return fit_poly(
        model, optimizer, dataset, loss_of_batch, settings, files, run_fingerprint, device, seed, workers, description="affinity",
    )
