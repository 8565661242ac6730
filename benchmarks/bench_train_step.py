"""Training-step throughput of the four trained networks on a device: the classifier, AffinityNet, IRN's boundary
network and DeepLab, with random weights at the config's crop sizes and batch sizes.

One step is what each trainer does per batch (its loss, backward, optimiser step), under the sections' ``amp`` as the
trainers use it (float16 autocast and a GradScaler on CUDA, nothing on a CPU); the inputs are already on the device, so
this is the GPU-bound ceiling the data loaders have to feed. Prints images/s, ms/step and the peak memory of each.

    .venv/bin/python benchmarks/bench_train_step.py --nets classifier --steps 2 --batch 2          # embedded toy sizes, CPU
    .venv/bin/python benchmarks/bench_train_step.py --config workflow/configs/voc12.yaml --device cuda   # the paper's sizes
    .venv/bin/python benchmarks/bench_train_step.py --config workflow/configs/voc12_irn.yaml --nets deeplab --device cuda

--batch / --crop override every network's batch size / crop (the device check's dry run uses them for toy sizes).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from device_bench import add_device_arguments, best_seconds, config_of, device_of, peak_label, peak_mib, reset_peak, write_json

from mctformer.affinity import affinity_loss, neighbour_affinity
from mctformer.irn.paths import boundary_affinity, irn_affinity_loss
from mctformer.models.affinitynet import AffinityNet
from mctformer.models.mctformer import classification_loss, plus_loss_terms
from mctformer.training.affinity import batch_pair_labels
from mctformer.training.classifier import build_classifier
from mctformer.training.common import autocast
from mctformer.training.deeplab import build_deeplab
from mctformer.training.irn import build_boundary_net

NETS = ("classifier", "affinity", "irn", "deeplab")


def random_grid_labels(batch: int, size: int, labels: int, device: torch.device) -> torch.Tensor:
    """Grid labels with a few ignored cells, as the confident labels have (about what a real batch pairs up)."""
    grid = torch.randint(0, labels, (batch, size, size), device=device)
    grid[torch.rand(batch, size, size, device=device) < 0.2] = 255
    return grid


def network_step(net: str, config: dict, batch: int | None, crop: int | None, device: torch.device):
    """(model, loss of one batch, images per step, the section's amp, a description) of ``net``, random weights."""
    classes = len(config["data"]["classes"])
    if net == "classifier":
        settings = {**config["classifier"], "pretrained": None}
        size, batch = crop or settings["input_size"], batch or settings["batch_size"]
        model = build_classifier(settings, classes).to(device)
        images, targets = torch.randn(batch, 3, size, size, device=device), (torch.rand(batch, classes, device=device) < 0.1).float()

        def loss() -> torch.Tensor:
            if settings["version"] != "plus":
                return classification_loss(model(images), targets)
            # MCTformer+ trains on its own loss (the CCT term over the last cct_blocks blocks), as the trainer does
            return plus_loss_terms(model(images), targets, cct_weight=settings["cct_weight"], cct_blocks=settings["cct_blocks"])["total"]
        return model, loss, batch, settings["amp"], f"{settings['arch']} {settings['version']} {size}px"
    if net == "affinity":
        settings = {**config["affinity"], "pretrained": None}
        size, batch = crop or settings["crop_size"], batch or settings["batch_size"]
        model = AffinityNet(backbone=settings["backbone"], pretrained=None, feature_dim=settings["feature_dim"]).to(device)
        images = torch.randn(batch, 3, size, size, device=device)
        grid = random_grid_labels(batch, -(-size // model.output_stride), classes + 1, device)
        radius, sources = settings["radius"], settings["pair_sources"]

        def loss() -> torch.Tensor:
            pairs = batch_pair_labels(grid, radius, sources)  # as the trainer: built on the device each step
            return affinity_loss(neighbour_affinity(model(images).float(), radius, sources), pairs)[0]
        return model, loss, batch, settings["amp"], f"AffinityNet {settings['backbone']} {size}px"
    if net == "irn":
        settings = {**config["irn"], "pretrained": None}
        size, batch = crop or settings["crop_size"], batch or settings["batch_size"]
        model = build_boundary_net(settings).to(device)
        images = torch.randn(batch, 3, size, size, device=device)
        grid = random_grid_labels(batch, -(-size // model.output_stride), classes + 1, device)
        radius, sources = settings["train_radius"], settings["pair_sources"]

        def loss() -> torch.Tensor:
            boundary = torch.sigmoid(model(images).float()[:, 0])
            return irn_affinity_loss(boundary_affinity(boundary, radius, sources), batch_pair_labels(grid, radius, sources))[0]
        return model, loss, batch, settings["amp"], f"IRN {settings['backbone']} {size}px"
    settings = {**config["deeplab"], "pretrained": None}
    size, batch = crop or settings["crop_size"], batch or settings["batch_size"]
    model = build_deeplab(settings, classes + 1).to(device)
    images = torch.randn(batch, 3, size, size, device=device)
    masks = torch.randint(0, classes + 1, (batch, size, size), device=device)

    def loss() -> torch.Tensor:
        return F.cross_entropy(model(images).float(), masks, ignore_index=255)
    return model, loss, batch, settings["amp"], f"DeepLab {settings['backbone']} {settings['head']} {size}px"


def timed_steps(model: torch.nn.Module, loss_of: Callable[[], torch.Tensor], amp: bool, device: torch.device, steps: int) -> float:
    """Seconds per optimiser step: ``steps`` steps (after one untimed), as training/loop.py takes them."""
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")

    def run() -> None:
        for _ in range(steps):
            with autocast(device, amp):
                loss = loss_of()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    return best_seconds(run, 1, device) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", choices=NETS, default=list(NETS))
    parser.add_argument("--steps", type=int, default=10, help="timed steps per network (after one untimed)")
    parser.add_argument("--batch", type=int, help="every network's batch size (default: its section's batch_size)")
    parser.add_argument("--crop", type=int, help="every network's crop / input size (default: its section's)")
    add_device_arguments(parser, "bench_train_step")
    args = parser.parse_args()
    device, config = device_of(args), config_of(args)
    measured: dict[str, float] = {}
    for net in args.nets:
        torch.manual_seed(0)
        reset_peak(device)
        model, loss_of, batch, amp, what = network_step(net, config, args.batch, args.crop, device)
        seconds = timed_steps(model, loss_of, amp, device, args.steps)
        peak = peak_mib(device)
        print(f"{net}: {what}, batch {batch}, amp {amp and device.type == 'cuda'} on {device}: {batch / seconds:.1f} images/s, "
              f"{1000 * seconds:.1f} ms/step, {peak_label(device)} {peak}")
        measured.update({f"{net} images/s": round(batch / seconds, 2), f"{net} ms/step": round(1000 * seconds, 2), f"{net} {peak_label(device)}": peak})
        del model, loss_of
    write_json(args, "bench_train_step", measured, None, None, device)


if __name__ == "__main__":
    main()
