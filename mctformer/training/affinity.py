"""AffinityNet training on PSA's confident labels (bg/4 + fg/4 + neg/2 over pixel pairs)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..affinity import affinity_loss, neighbour_affinity, pair_labels
from ..data.datasets import SegmentationCropDataset
from ..data.voc import DatasetError, VOCLayout
from ..io import read_label_png, require_per_image_files
from ..models.affinitynet import AffinityNet
from .common import fingerprint, read_checkpoint, seed_everything
from .loop import backbone_and_head_groups, fit_poly


def grid_labels(labels: torch.Tensor, stride: int) -> torch.Tensor:
    """Pixel labels [B, S, S] -> the label at the centre of each stride x stride cell, [B, S/stride, S/stride]."""
    return labels[:, stride // 2 :: stride, stride // 2 :: stride]


def batch_pair_labels(labels: torch.Tensor, radius: int) -> dict[str, torch.Tensor]:
    per_image = [pair_labels(label.numpy(), radius) for label in labels]
    return {key: torch.from_numpy(np.stack([p[key] for p in per_image])) for key in ("bg", "fg", "neg")}


def load_affinity_net(path: str | os.PathLike, backbone: str | None = None, device: str | torch.device = "cpu") -> AffinityNet:
    payload = read_checkpoint(path, "AffinityNet")
    if "feature_dim" not in payload["architecture"]:
        raise ValueError(f"{path} is not an AffinityNet checkpoint of this pipeline")
    saved = payload["architecture"]["backbone"]
    if backbone is not None and saved != backbone:
        raise ValueError(f"affinity checkpoint {path} has backbone {saved!r}, the config asks for {backbone!r}")
    model = AffinityNet(saved, feature_dim=payload["architecture"]["feature_dim"])
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


def train_affinity(
    layout: VOCLayout,
    ids: Sequence[str],
    label_dir: str | os.PathLike,
    settings: Mapping[str, Any],
    checkpoint_path: str | os.PathLike,
    log_path: str | os.PathLike,
    resume_path: str | os.PathLike,
    device: torch.device,
    seed: int = 0,
    workers: int = 0,
) -> dict:
    if not ids:
        raise DatasetError("train_affinity: the training split list is empty")
    require_per_image_files(label_dir, ids, ".png", "PSA labels")
    run_fingerprint = fingerprint({"settings": settings, "seed": seed, "ids": len(ids)})
    seed_everything(seed)
    model = AffinityNet(settings["backbone"], settings.get("pretrained"), feature_dim=settings["feature_dim"]).to(device)
    stride, crop, radius = model.output_stride, settings["crop_size"], settings["radius"]
    if crop % stride:
        raise ValueError(f"affinity.crop_size ({crop}) must be a multiple of the backbone's output stride ({stride})")
    dataset = SegmentationCropDataset(
        layout, ids, lambda i: read_label_png(os.path.join(label_dir, f"{i}.png")),
        crop_size=crop, scale_range=settings["scale_range"], flip=settings["flip"],
    )
    groups = backbone_and_head_groups(model, settings["head_lr_mult"])
    if settings["optimizer"] == "sgd":
        optimizer = torch.optim.SGD(groups, lr=settings["lr"], momentum=settings["momentum"], weight_decay=settings["weight_decay"])
    else:
        optimizer = torch.optim.AdamW(groups, lr=settings["lr"], weight_decay=settings["weight_decay"])

    def loss_of_batch(batch):
        images, labels = batch
        pairs = {k: v.to(device) for k, v in batch_pair_labels(grid_labels(labels, stride), radius).items()}
        affinity = neighbour_affinity(model(images.to(device, non_blocking=True)).float(), radius)
        return affinity_loss(affinity, pairs)

    return fit_poly(
        model, optimizer, dataset, loss_of_batch, settings, checkpoint_path, log_path, resume_path,
        run_fingerprint, device, seed, workers, description="affinity",
    )
