"""GPU-hours of the paper recipe (workflow/configs/voc12.yaml), ESTIMATED from counted FLOPs.

No GPU was available where this was written, so nothing here is a measured
GPU throughput: the script counts the floating-point operations of one forward
pass of each network at the config's input size (torch's FlopCounterMode on
CPU), multiplies by images x epochs (x3 for training: forward + backward), and
divides by a sustained throughput you pass (default 40 TFLOP/s, a guess for an
A100 with AMP on convolutional/ViT training; data loading often caps it lower).
On a GPU machine, measure instead: time `snakemake --until train_classifier`.

    .venv/bin/python benchmarks/estimate_gpu_hours.py [--tflops 40] [--config workflow/configs/voc12.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mctformer.config import load_config  # noqa: E402
from mctformer.models.affinitynet import AffinityNet  # noqa: E402
from mctformer.models.mctformer import create_mctformer  # noqa: E402
from mctformer.training.deeplab import build_deeplab  # noqa: E402

# VOC 2012 + SBD sizes: train_aug, train, val; the mean image is about 500 x 375.
VOC = {"train_aug": 10582, "train": 1464, "val": 1449, "test": 1456, "height": 375, "width": 500}


def forward_flops(model: torch.nn.Module, height: int, width: int) -> float:
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, height, width))
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="workflow/configs/voc12.yaml")
    parser.add_argument("--tflops", type=float, default=40.0, help="assumed sustained TFLOP/s of one GPU")
    args = parser.parse_args()
    overlay = load_config([args.config], default_file=REPO / "config.yaml")[0]  # composed and compat-resolved, as the workflow sees it
    torch.set_num_threads(2)
    classifier, maps, affinity, deeplab = overlay["classifier"], overlay["maps"], overlay["affinity"], overlay["deeplab"]
    num_classes = len(overlay["data"]["classes"])
    size = classifier["input_size"]

    # FLOPs only: untrained networks, no pretrained weights to read
    mct = create_mctformer(
        classifier["arch"], num_classes=num_classes, version=classifier["version"], token_pooling=classifier["token_pooling"],
        drop_path_rate=classifier["drop_path"], pretrained=None, patchcam_init=classifier["patchcam_init"],
        locality_sigma=classifier["locality_sigma"], input_size=classifier["input_size"], gwrp_decay=classifier["gwrp_decay"],
    )
    flops_224 = forward_flops(mct, size, size)
    flops_full = forward_flops(mct, 368, 496)  # a typical VOC image rounded to whole 16 px patches
    affinity_net = AffinityNet(backbone=affinity["backbone"], pretrained=None, feature_dim=affinity["feature_dim"])
    crop = affinity["crop_size"]
    flops_affinity = forward_flops(affinity_net, crop, crop)
    flops_affinity_full = forward_flops(affinity_net, 376, 504)
    segmenter = build_deeplab({**deeplab, "pretrained": None}, num_classes + 1)
    flops_deeplab = forward_flops(segmenter, deeplab["crop_size"], deeplab["crop_size"])
    flops_deeplab_full = forward_flops(segmenter, VOC["height"], VOC["width"])

    extraction_images = VOC["train_aug"] + VOC["train"]
    views = len(maps["scales"]) * (2 if maps["flip"] else 1)
    scale_cost = sum(s * s for s in maps["scales"]) / len(maps["scales"])
    inference_views = sum(s * s for s in deeplab["scales"]) * (2 if deeplab["flip_inference"] else 1)
    stages = [
        ("train_classifier", 3 * flops_224 * VOC["train_aug"] * classifier["epochs"]),
        ("extract_maps", flops_full * scale_cost * views * extraction_images),
        ("train_affinity", 3 * flops_affinity * VOC["train_aug"] * affinity["epochs"]),
        ("random_walk (AffinityNet forward)", flops_affinity_full * VOC["train_aug"]),
        ("train_deeplab", 3 * flops_deeplab * VOC["train_aug"] * deeplab["epochs"]),
        ("infer_deeplab (val + test)", flops_deeplab_full * inference_views * (VOC["val"] + VOC["test"])),
    ]
    rate = args.tflops * 1e12
    print(f"forward GFLOPs: MCTformer {flops_224 / 1e9:.1f} at {size} px, {flops_full / 1e9:.1f} at 368x496; "
          f"AffinityNet {flops_affinity / 1e9:.1f} at {crop} px; DeepLab {flops_deeplab / 1e9:.1f} at {deeplab['crop_size']} px")
    print(f"ESTIMATE at an assumed {args.tflops:g} TFLOP/s sustained (not measured):")
    total = 0.0
    for name, flops in stages:
        hours = flops / rate / 3600
        total += hours
        print(f"  {name:36s} {flops / 1e15:9.1f} PFLOP  {hours:6.2f} GPU-h")
    print(f"  {'total':36s} {'':9s}        {total:6.2f} GPU-h")

    # The dense CRFs run on CPU cores whatever the GPU: measured here, per VOC-sized image.
    import time

    import numpy as np

    from mctformer.crf import CRFParams, dense_crf

    deeplab_crf, psa_crf = CRFParams.from_config(deeplab["crf"]), CRFParams.from_config(overlay["psa"]["crf"])

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (VOC["height"], VOC["width"], 3), dtype=np.uint8)
    probs = rng.dirichlet(np.ones(num_classes + 1), size=(VOC["height"], VOC["width"])).transpose(2, 0, 1).astype(np.float32)
    dense_crf(image, probs, deeplab_crf)
    started = time.perf_counter()
    for _ in range(3):
        dense_crf(image, probs, deeplab_crf)
    per_image = (time.perf_counter() - started) / 3
    # PSA labels: two CRFs (la, ha) per train_aug image, with the image's classes + background only (~3 labels)
    few = probs[:3] / probs[:3].sum(axis=0, keepdims=True)
    started = time.perf_counter()
    for _ in range(3):
        dense_crf(image, few, psa_crf)
    per_image_few = (time.perf_counter() - started) / 3
    print(f"MEASURED on this CPU (one core): dense CRF, {VOC['width']}x{VOC['height']}: {per_image:.2f} s with {num_classes + 1} labels "
          f"(deeplab.crf, {deeplab_crf.iterations} iterations), {per_image_few:.2f} s with 3 (psa.crf, {psa_crf.iterations} iterations)")
    print(f"  psa_labels (2 CRFs x {VOC['train_aug']} images)   {2 * per_image_few * VOC['train_aug'] / 3600:6.2f} CPU-core-h")
    print(f"  infer_deeplab CRF (val + test)          {per_image * (VOC['val'] + VOC['test']) / 3600:6.2f} CPU-core-h")


if __name__ == "__main__":
    main()
