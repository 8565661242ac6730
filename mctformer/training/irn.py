"""IRN boundary-network training on IRN's confident labels (the class-boundary loss over pixel pairs within a radius).

Crops as the authors' VOC12AffinityDataset: random rescale and flip, the image at a random place in
its crop (zero-padded after normalising, i.e. the mean colour), labels padded with 255; the grid
label of each stride-4 cell is its centre pixel (the authors take the top-left one by nearest
resizing). Poly schedule; SGD (the authors') or AdamW for the from-scratch tiny backbone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..artifacts import require_per_image_files
from ..data.voc import DatasetError, VOCLayout
from ..irn.paths import boundary_affinity, irn_affinity_loss
from ..models.irn import BoundaryNet
from .affinity import AffinityCropDataset, batch_pair_labels
from .common import TrainerFiles, fingerprint, read_checkpoint, seed_everything
from .loop import backbone_and_head_groups, fit_poly, sgd_or_adamw


def build_boundary_net(settings: Mapping[str, Any]) -> BoundaryNet:
    """A fresh boundary network from the config's ``irn`` keys (every key it reads is required)."""
    return BoundaryNet(backbone=settings["backbone"], pretrained=settings["pretrained"], edge_channels=settings["edge_channels"],
                       freeze_backbone=settings["freeze_backbone"])


def load_boundary_net(path: str | os.PathLike, backbone: str | None = None, *, device: str | torch.device) -> BoundaryNet:
    """Rebuild a trained boundary network from its checkpoint on ``device``; refuses another backbone (None: any)."""
    payload = read_checkpoint(path, "IRN boundary network")
    if "edge_channels" not in payload["architecture"]:
        raise ValueError(f"{path} is not an IRN boundary-network checkpoint of this pipeline")
    saved = payload["architecture"]["backbone"]
    if backbone is not None and saved != backbone:
        raise ValueError(f"IRN boundary checkpoint {path} has backbone {saved!r}, the config asks for irn.backbone {backbone!r}")
    # the checkpoint's own weights follow: nothing pretrained to read, nothing to freeze at inference
    model = BoundaryNet(backbone=saved, pretrained=None, edge_channels=payload["architecture"]["edge_channels"], freeze_backbone=False)
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


def train_boundary_net(
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
    """Train the boundary network (``settings`` = the config's irn training keys; ``seed``, ``workers``: the
    config's seed and irn.workers); resumable, one log line per epoch, the checkpoint written atomically."""
    if not ids:
        raise DatasetError("train_irn: the training split list is empty")
    require_per_image_files(label_dir, ids, ".png", "IRN labels")
    run_fingerprint = fingerprint({"settings": settings, "seed": seed, "ids": len(ids)})
    seed_everything(seed)
    model = build_boundary_net(settings).to(device)
    stride, crop, radius, sources = model.output_stride, settings["crop_size"], settings["train_radius"], settings["pair_sources"]
    if crop % stride:
        raise ValueError(f"irn.crop_size ({crop}) must be a multiple of the boundary map's stride ({stride})")
    dataset = AffinityCropDataset(
        layout, ids, label_dir, "centre_pixel", stride, crop_size=crop, scale_range=settings["scale_range"], flip=settings["flip"],
        # no irn keys for these: the authors' crop (no colour jitter, normalised zeros around a randomly placed image)
        color_jitter=None, pad_image="mean", placement="random", in_memory=settings["in_memory"],
    )
    groups = backbone_and_head_groups(model, settings["head_lr_mult"])
    groups = [dict(group, params=[p for p in group["params"] if p.requires_grad]) for group in groups]
    groups = [group for group in groups if group["params"]]
    optimizer = sgd_or_adamw(groups, settings, "irn")

    def loss_of_batch(batch):
        images, labels = batch
        pairs = batch_pair_labels(labels.to(device, non_blocking=True), radius, sources)  # built on the training device
        boundary = torch.sigmoid(model(images.to(device, non_blocking=True)).float()[:, 0])
        return irn_affinity_loss(boundary_affinity(boundary, radius, sources), pairs)

    return fit_poly(
        model, optimizer, dataset, loss_of_batch, settings, files, run_fingerprint, device, seed, workers, description="irn",
    )
