"""Map extraction vs a plain classification forward at the same scales and flips.

Extraction captures the attention of every block in the same forward pass
that classifies (no second pass), then builds every map variant and
upsamples it. This prints the time of both on the same batches and their ratio.

    .venv/bin/python benchmarks/bench_extract.py [--arch tiny --size 64 --batch 64 --batches 10]
    .venv/bin/python benchmarks/bench_extract.py --arch deit_small --size 224 --batch 16   # the paper's model
    .venv/bin/python benchmarks/bench_extract.py --config workflow/configs/voc12.yaml --height 375 --width 500 \
        --batch 16 --scales 1.0 0.5 1.5 --device cuda                                       # VOC-size images, the paper's settings

--config takes every maps.* setting (resize, remainder, position embedding, amp) and the classifier from that config;
--arch, --scales and --amp override it. The peak memory (GPU, or the process's RSS on a CPU) is printed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from device_bench import add_device_arguments, config_of, device_of, peak_label, peak_mib, reset_peak, write_json

from mctformer.data.transforms import normalize_image
from mctformer.localize import multiscale_maps, scaled_size
from mctformer.training.classifier import build_classifier


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
    parser.add_argument("--arch", help="classifier.arch (default: the config's)")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="square images of this side, unless --height / --width")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--scales", type=float, nargs="+", help="default: maps.scales")
    parser.add_argument("--amp", choices=("true", "false"), help="maps.amp (float16 autocast on CUDA; default: the config's)")
    add_device_arguments(parser, "bench_extract")
    args = parser.parse_args()
    device, config = device_of(args), config_of(args)  # every setting but the ones above: the config's
    classifier, maps = config["classifier"], config["maps"]
    scales = args.scales or maps["scales"]
    amp = maps["amp"] if args.amp is None else args.amp == "true"
    height, width = args.height or args.size, args.width or args.size
    torch.manual_seed(0)
    model = build_classifier({**classifier, "arch": args.arch or classifier["arch"], "pretrained": None}, args.classes).to(device).eval()
    resize = maps["resize"]
    # random uint8 pictures, as decoded JPEGs: resize 'pil_bicubic' (voc12.yaml) resizes those with PIL
    pictures = [np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8) for i in range(args.batch)]
    images = torch.stack([normalize_image(picture) for picture in pictures]).to(device)
    # two classes per image, about what VOC images hold (1.5 on average)
    present = torch.zeros(args.batch, args.classes, dtype=torch.bool)
    present[torch.arange(args.batch), torch.arange(args.batch) % args.classes] = True
    present[torch.arange(args.batch), (torch.arange(args.batch) + 1) % args.classes] = True
    variants = ["attention", "fused", "fused_refined"]

    @torch.inference_mode()
    def plain_forward():
        for scale in scales:
            size = scaled_size(height, width, scale, model.patch_size)
            inputs = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
            model(torch.cat([inputs, inputs.flip(-1)]))

    def extraction():
        multiscale_maps(
            model, images, present, variants, scales=scales, flip=True, last_k=maps["last_k"],
            feature_temperature=maps["feature_temperature"], resize=resize, remainder=maps["remainder"],
            position_embedding=maps["position_embedding"], amp=amp, pictures=pictures,
        )

    plain = extract = float("inf")
    reset_peak(device)
    for _ in range(3):  # interleaved rounds, so drifting machine load hits both alike
        plain = min(plain, timed(plain_forward, args.batches, device))
        extract = min(extract, timed(extraction, args.batches, device))
    per_image = args.batch / extract
    peak = peak_mib(device)
    print(f"{args.arch or classifier['arch']} on {device}: {args.batch} images of {height}x{width}, scales {scales} + flip, variants {variants}, "
          f"resize {resize}, amp {amp}")
    print(f"plain forward {plain * 1000:.1f} ms/batch (best of rounds), extraction {extract * 1000:.1f} ms/batch ({per_image:.0f} images/s), "
          f"{peak_label(device)} {peak}")
    print(f"extraction / plain forward: {extract / plain:.2f}x (target <= 1.3x)")
    write_json(args, "bench_extract", {"plain forward (ms/batch)": plain * 1000, "extraction (ms/batch)": extract * 1000,
                                       "extraction images/s": per_image, peak_label(device): peak}, extract / plain, "<= 1.3x", device)


if __name__ == "__main__":
    main()
