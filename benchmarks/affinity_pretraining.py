"""Diagnostic: does AffinityNet learn bodies when its backbone first learns the image labels?

On real data PSA's AffinityNet starts from ImageNet weights, whose features can group an object's
body with its part before any confident label is seen; here it starts from scratch. The nearest
test this machine allows (no pretrained weights) is to train the tiny backbone first as a
multi-label classifier on the run's image-level labels (global average pooling of its last
level, a linear layer, random flips; nothing the pipeline does not already know), then train
AffinityNet from it exactly as ``train_affinity`` does (same settings, seed, labels, images).

It REPLACES ``results/<run>/psa/affinity.pt`` of a finished run (with ``--epochs 0`` the one the
pipeline trains, bit for bit); rerun the walk and its evaluation afterwards:

    .venv/bin/python benchmarks/affinity_pretraining.py --run results/synthetic --epochs 3
    snakemake --cores 2 results/synthetic/masks/eval_train.json --rerun-triggers mtime
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mctformer.config import load_config
from mctformer.data.labels import load_class_labels
from mctformer.data.layout import first_ids, open_layout
from mctformer.data.transforms import normalize_image
from mctformer.models.affinitynet import AffinityNet
from mctformer.training import affinity as affinity_training
from mctformer.training.common import TrainerFiles, seed_everything

REPO = Path(__file__).resolve().parents[1]


def pretrain_backbone(model: AffinityNet, images: torch.Tensor, targets: torch.Tensor, epochs: int, batch_size: int = 64) -> None:
    """``epochs`` of multi-label classification of ``targets`` [N, C] from ``images`` [N, 3, H, W] through the
    backbone's last level (the classifier layer is dropped afterwards)."""
    classifier = nn.Linear(model.backbone.channels[-1], targets.shape[1])
    optimizer = torch.optim.AdamW([*model.backbone.parameters(), *classifier.parameters()], lr=2e-3, weight_decay=1e-4)
    started = time.time()
    for epoch in range(epochs):
        order, losses = torch.randperm(len(images)), []
        for start in range(0, len(images) - batch_size + 1, batch_size):
            batch = order[start : start + batch_size]
            flip = (torch.rand(len(batch)) < 0.5)[:, None, None, None]
            pictures = torch.where(flip, images[batch].flip(-1), images[batch])
            logits = classifier(model.backbone(pictures)[-1].mean((2, 3)))
            loss = F.multilabel_soft_margin_loss(logits, targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print(f"backbone on image labels, epoch {epoch + 1}: loss {np.mean(losses):.4f} ({time.time() - started:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO / "results" / "synthetic", help="a finished run of config.yaml")
    parser.add_argument("--epochs", type=int, default=3, help="classification epochs before AffinityNet training (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(default_file=REPO / "config.yaml")[0]
    settings, classes = config["affinity"], config["data"]["classes"]
    if settings["backbone"] != "tiny" or config["data"]["source"] != "synthetic":
        raise SystemExit("this diagnostic is written for the embedded default (synthetic data, the tiny backbone)")
    layout = open_layout(str(args.run / "data"), "voc", len(classes))
    train_ids = layout.read_ids(config["data"]["splits"]["train"])
    labels = load_class_labels(args.run / "labels" / "cls_labels.npy", train_ids, len(classes))
    images = torch.stack([normalize_image(layout.load_image(image_id)) for image_id in train_ids])
    targets = torch.from_numpy(np.stack([labels[image_id] for image_id in train_ids])).float()

    # the network train_affinity would build (seeded as it seeds it), trained on the image labels first
    seed_everything(config["seed"])
    model = AffinityNet(backbone=settings["backbone"], pretrained=settings["pretrained"], feature_dim=settings["feature_dim"])
    pretrain_backbone(model, images, targets, args.epochs)
    psa = args.run / "psa"
    with mock.patch.object(affinity_training, "AffinityNet", return_value=model):
        summary = affinity_training.train_affinity(
            layout, first_ids(layout, config["data"]["splits"]["train"], config["psa"]["max_images"]), psa / "labels",
            settings, TrainerFiles(psa / "affinity.pt", psa / "affinity_log.csv", psa / "resume" / "last.pt", tensorboard=None),
            device=torch.device("cpu"), seed=config["seed"], workers=settings["workers"],
        )
    print(f"AffinityNet trained from the pretrained backbone: {summary['final']}")


if __name__ == "__main__":
    main()
