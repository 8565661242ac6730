"""Map extraction vs a plain classification forward at the same scales and flips.

Extraction captures the attention of every block in the same forward pass
that classifies (no second pass), then builds every map variant and
upsamples it. This prints the time of both on the same batches and their ratio.

    .venv/bin/python benchmarks/bench_extract.py [--arch tiny --size 64 --batch 64 --batches 10]
    .venv/bin/python benchmarks/bench_extract.py --arch deit_small --size 224 --batch 16   # the paper's model
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mctformer.config import load_config
from mctformer.localize import multiscale_maps, scaled_size
from mctformer.models.mctformer import create_mctformer
from mctformer.training.common import resolve_device

REPO = Path(__file__).resolve().parents[1]


def timed(function, repeats: int, device: torch.device) -> float:
    """Best of ``repeats`` runs (the least disturbed by other work on the machine)."""
    function()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="tiny")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    config = load_config(default_file=REPO / "config.yaml")[0]  # every setting but the ones above: the embedded default's
    classifier, maps = config["classifier"], config["maps"]
    torch.manual_seed(0)
    model = create_mctformer(
        args.arch, args.classes, version="v2", token_pooling=classifier["token_pooling"], drop_path_rate=classifier["drop_path"],
        pretrained=None, patchcam_init=classifier["patchcam_init"], locality_sigma=classifier["locality_sigma"],
        input_size=classifier["input_size"], gwrp_decay=classifier["gwrp_decay"],
    ).to(device).eval()
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    # two classes per image, about what VOC images hold (1.5 on average)
    present = torch.zeros(args.batch, args.classes, dtype=torch.bool)
    present[torch.arange(args.batch), torch.arange(args.batch) % args.classes] = True
    present[torch.arange(args.batch), (torch.arange(args.batch) + 1) % args.classes] = True
    variants = ["attention", "fused", "fused_refined"]

    @torch.inference_mode()
    def plain_forward():
        for scale in args.scales:
            size = scaled_size(args.size, args.size, scale, model.patch_size)
            inputs = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
            model(torch.cat([inputs, inputs.flip(-1)]))

    def extraction():
        multiscale_maps(
            model, images, present, variants, scales=args.scales, flip=True, last_k=maps["last_k"],
            feature_temperature=maps["feature_temperature"], resize=maps["resize"], remainder=maps["remainder"],
            position_embedding=maps["position_embedding"], amp=maps["amp"],
        )

    plain = extract = float("inf")
    for _ in range(3):  # interleaved rounds, so drifting machine load hits both alike
        plain = min(plain, timed(plain_forward, args.batches, device))
        extract = min(extract, timed(extraction, args.batches, device))
    per_image = args.batch / extract
    print(f"{args.arch} on {device}: {args.batch} images of {args.size}px, scales {args.scales} + flip, variants {variants}")
    print(f"plain forward {plain * 1000:.1f} ms/batch (best of rounds), extraction {extract * 1000:.1f} ms/batch ({per_image:.0f} images/s)")
    print(f"extraction / plain forward: {extract / plain:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
