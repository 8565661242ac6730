"""DeepLab multi-scale inference (segmentation.multiscale_softmax) on a device: float32 against deeplab.inference_amp's
lowered dtype, side by side on the same random-weight network and images, with their argmax agreement.

The scales, flip, fuse and resize are the config's deeplab keys (voc12.yaml: 5 scales, ResNet-38 LargeFOV); images are
--height x --width (VOC's typical 375 x 500 by default), --batch at a time (segment_images' chunk: 32).

    .venv/bin/python benchmarks/bench_deeplab_infer.py --height 48 --width 64 --batch 2        # embedded toy network, CPU
    .venv/bin/python benchmarks/bench_deeplab_infer.py --config workflow/configs/voc12.yaml --device cuda --amp bfloat16
"""

from __future__ import annotations

import argparse

import torch
from device_bench import add_device_arguments, best_seconds, config_of, device_of, peak_label, peak_mib, reset_peak, write_json

from mctformer.precision import INFERENCE_AMP
from mctformer.segmentation import multiscale_softmax
from mctformer.training.deeplab import build_deeplab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scales", type=float, nargs="+", help="override deeplab.scales")
    parser.add_argument("--amp", choices=[a for a in INFERENCE_AMP if a != "float32"], default="bfloat16",
                        help="the lowered dtype timed beside float32")
    add_device_arguments(parser, "bench_deeplab_infer")
    args = parser.parse_args()
    device, config = device_of(args), config_of(args)
    settings = {**config["deeplab"], "pretrained": None}
    scales = args.scales or settings["scales"]
    torch.manual_seed(0)
    model = build_deeplab(settings, len(config["data"]["classes"]) + 1).to(device).eval()
    images = torch.randn(args.batch, 3, args.height, args.width, device=device)
    kwargs = dict(scales=scales, flip=settings["flip_inference"], fuse=settings["fuse"], resize=settings["inference_resize"])
    measured: dict[str, float] = {}
    results = {}
    for amp in ("float32", args.amp):
        reset_peak(device)
        seconds = best_seconds(lambda amp=amp: results.__setitem__(amp, multiscale_softmax(model, images, amp=amp, **kwargs)), args.repeats, device)
        measured[f"{amp} images/s"] = round(args.batch / seconds, 3)
        measured[f"{amp} {peak_label(device)}"] = peak_mib(device)
        print(f"{amp}: {args.batch / seconds:.2f} images/s, {peak_label(device)} {measured[f'{amp} {peak_label(device)}']}")
    agreement = float((results["float32"].argmax(1) == results[args.amp].argmax(1)).float().mean())
    difference = float((results["float32"] - results[args.amp]).abs().max())
    speedup = measured[f"{args.amp} images/s"] / measured["float32 images/s"]
    measured.update({"argmax agreement": agreement, "largest softmax difference": difference})
    print(f"DeepLab {settings['backbone']} {settings['head']} on {device}: {args.batch} images {args.height}x{args.width}, scales {scales}, "
          f"flip {settings['flip_inference']}, fuse {settings['fuse']}, resize {settings['inference_resize']}")
    print(f"{args.amp} / float32 throughput: {speedup:.2f}x; argmax agreement {agreement:.4f}, largest softmax difference {difference:.2e}")
    write_json(args, "bench_deeplab_infer", measured, speedup, None, device)


if __name__ == "__main__":
    main()
