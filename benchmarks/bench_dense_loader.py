"""Dense training (DeepLab) with images decoded once and held in memory vs read from disk per sample.

Generates the embedded default's world (``synthetic.*`` of config.yaml, fewer
images), then trains the embedded default's DeepLab for the same batches
twice, side by side: the previous default (PNG / JPEG decoded per sample in
one loader process beside the compute threads) and the current one
(``deeplab.in_memory: true``, ``deeplab.workers: 0``: decoded once, augmented
in the training process). Prints images/s of each (the one-off decode
included in the in-memory time) and their ratio.

    .venv/bin/python benchmarks/bench_dense_loader.py [--images 1500 --epochs 2 --threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mctformer.config import load_config
from mctformer.data.datasets import SegmentationCropDataset
from mctformer.data.voc import IGNORE, VOCLayout
from mctformer.stages.data import prepare_synthetic_data
from mctformer.training.deeplab import build_deeplab
from mctformer.training.distributed import shuffled_loader

REPO = Path(__file__).resolve().parents[1]


def images_per_second(layout: VOCLayout, ids: list[str], settings: dict, num_labels: int, *, in_memory: bool,
                      workers: int, epochs: int) -> float:
    """DeepLab training throughput with this loader, from building the dataset to the last step."""
    torch.manual_seed(0)
    model = build_deeplab(settings, num_labels)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"])
    started = time.perf_counter()
    dataset = SegmentationCropDataset(
        layout, ids, layout.load_mask, settings["crop_size"], scale_range=settings["scale_range"], flip=settings["flip"],
        pad_label=settings["pad_label"], color_jitter=None, pad_image="mean", placement="top_left", in_memory=in_memory,
    )
    samples = 0
    for epoch in range(epochs):
        for images, labels in shuffled_loader(dataset, settings["batch_size"], torch.Generator().manual_seed(epoch),
                                              num_workers=workers):
            loss = F.cross_entropy(model(images).float(), labels, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            samples += len(images)
    return samples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1500, help="train_aug images generated")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the rule's on this machine kind)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(default_file=REPO / "config.yaml")[0]
    settings = config["deeplab"]
    synthetic = dict(config["synthetic"], num_train_aug=args.images, num_train=min(100, args.images), num_val=10)
    with tempfile.TemporaryDirectory() as root:
        prepare_synthetic_data(out_root=root, num_classes=len(config["data"]["classes"]), palette=None,
                               seed=config["seed"], workers=1, **synthetic)
        layout = VOCLayout(root, len(config["data"]["classes"]))
        ids = layout.read_ids("train_aug")
        num_labels = len(config["data"]["classes"]) + 1
        common = dict(layout=layout, ids=ids, settings=settings, num_labels=num_labels, epochs=args.epochs)
        disk = images_per_second(**common, in_memory=False, workers=1)
        memory = images_per_second(**common, in_memory=True, workers=0)
    print(f"DeepLab ({settings['backbone']}, {settings['crop_size']} px crops, batch {settings['batch_size']}, "
          f"{args.threads} threads), {len(ids)} images x {args.epochs} epochs:")
    print(f"  read per sample, 1 loader process: {disk:7.1f} images/s")
    print(f"  decoded once, in memory, 0:        {memory:7.1f} images/s (the decode included)")
    print(f"  ratio: {memory / disk:.2f}x")


if __name__ == "__main__":
    main()
