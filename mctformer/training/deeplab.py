"""DeepLab training on pseudo masks (or ground truth, for the fully supervised upper bound).

SGD with momentum and weight decay as two separate settings (the reference
passes weight decay where momentum goes), poly schedule (power 0.9), 10x lr on
the head, cross-entropy ignoring 255; random scale, flip and crop with labels
padded by ``pad_label``: 255 (the reference pads them with 0, i.e. background).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.datasets import SegmentationCropDataset
from ..data.voc import IGNORE, DatasetError, VOCLayout
from ..models.deeplab import DeepLab
from .common import TrainerFiles, fingerprint, read_checkpoint, seed_everything
from .distributed import wrap
from .loop import backbone_and_head_groups, fit_poly


def build_deeplab(settings: Mapping[str, Any], num_labels: int) -> DeepLab:
    """A fresh DeepLab (LargeFOV or ASPP head) from the config's ``deeplab`` section (every key it reads is required)."""
    return DeepLab(
        num_labels, backbone=settings["backbone"], pretrained=settings["pretrained"],
        head=settings["head"], aspp_dilations=settings["aspp_dilations"],
        head_channels=settings["head_channels"], dilation=settings["dilation"], dropout=settings["dropout"],
        classifier_kernel=settings["classifier_kernel"], head_init=settings["head_init"],
    )


# Keys a checkpoint's saved ``settings`` / ``architecture`` may lack because it was written before the key
# existed, with the value every such checkpoint was trained with: the 1x1 classifier, its init, the LargeFOV head
# (whose networks never read aspp_dilations; DeepLab-V2's rates stand in).
LEGACY_DEEPLAB_SETTINGS = {"classifier_kernel": 1, "head_init": "kaiming_normal", "head": "largefov", "aspp_dilations": [6, 12, 18, 24]}
# What each head's architecture() records besides num_labels.
HEAD_SHAPE_KEYS = {"largefov": ("backbone", "head_channels", "dilation", "classifier_kernel"), "aspp": ("backbone", "aspp_dilations")}


def load_deeplab(path: str | os.PathLike, num_labels: int | None = None, *, head: str | None = None,
                 device: str | torch.device) -> DeepLab:
    """Rebuild a trained DeepLab from its checkpoint on ``device``; refuses another label count or, given
    ``head`` (deeplab.head), a checkpoint of the other head (None: any)."""
    payload = read_checkpoint(path, "DeepLab", ("model", "architecture", "settings"))
    if "num_labels" not in payload["architecture"]:
        raise ValueError(f"{path} is not a DeepLab checkpoint of this pipeline")
    saved = payload["architecture"]["num_labels"]
    if num_labels is not None and saved != num_labels:
        raise ValueError(f"DeepLab checkpoint {path} predicts {saved} labels, the config has {num_labels} (background + classes)")
    saved_head = payload["architecture"].get("head", "largefov")  # a LargeFOV checkpoint records no head
    if head is not None and saved_head != head:
        raise ValueError(f"DeepLab checkpoint {path} has the {saved_head!r} head, the config asks for deeplab.head {head!r}")
    # the head's shape as recorded (checkpoints from before classifier_kernel existed have the 1x1 one)
    recorded = dict(payload["architecture"])
    if saved_head == "largefov":
        recorded = {"classifier_kernel": LEGACY_DEEPLAB_SETTINGS["classifier_kernel"], **recorded}
    shape = {key: recorded[key] for key in HEAD_SHAPE_KEYS[saved_head]}
    shape["head"] = saved_head
    # the checkpoint's own weights follow: nothing pretrained to read (head_init only shapes a fresh model)
    model = build_deeplab({**LEGACY_DEEPLAB_SETTINGS, **payload["settings"], **shape, "pretrained": None}, saved)
    if model.architecture() != recorded:
        raise ValueError(f"DeepLab checkpoint {path} holds {recorded}, its settings build {model.architecture()}")
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


def train_deeplab(
    layout: VOCLayout,
    ids: Sequence[str],
    load_label: Callable[[str], np.ndarray],
    num_labels: int,
    settings: Mapping[str, Any],
    files: TrainerFiles,
    *,
    device: torch.device,
    seed: int,
    workers: int,
) -> dict:
    """Train DeepLab (``settings`` = the config's ``deeplab`` training keys; ``seed``, ``workers``: the config's
    seed and deeplab.workers)."""
    if not ids:
        raise DatasetError("train_deeplab: the training split list is empty")
    run_fingerprint = fingerprint({"settings": settings, "seed": seed, "ids": len(ids), "labels": num_labels})
    seed_everything(seed)
    model = build_deeplab(settings, num_labels).to(device)
    dataset = SegmentationCropDataset(
        layout, ids, load_label, settings["crop_size"], scale_range=settings["scale_range"], flip=settings["flip"],
        pad_label=settings["pad_label"], in_memory=settings["in_memory"],
        # no deeplab keys for these: what DeepLab training has always used (no colour jitter, padding with the
        # mean colour, i.e. 0 after normalising, and the image at the crop's top left)
        color_jitter=None, pad_image="mean", placement="top_left",
    )
    optimizer = torch.optim.SGD(
        backbone_and_head_groups(model, settings["head_lr_mult"]),
        lr=settings["lr"], momentum=settings["momentum"], weight_decay=settings["weight_decay"],
    )

    # DDP under torchrun, else the model itself; the ResNet's batch norms synchronised over the ranks if asked
    trained = wrap(model, device, sync_batchnorm=settings["sync_batchnorm"])

    def loss_of_batch(batch):
        images, labels = batch
        logits = trained(images.to(device, non_blocking=True))
        return F.cross_entropy(logits.float(), labels.to(device), ignore_index=IGNORE), {}

    return fit_poly(
        model, optimizer, dataset, loss_of_batch, settings, files, run_fingerprint, device, seed, workers, description="deeplab",
    )
