"""The loader and the overlapped CRF pool against the old serial loops, side by side on the same generated JPEGs.

Extraction: extract_maps with maps.workers 0 (the images decoded in this process, batch by batch: the old path)
against --workers loader processes. DeepLab inference with the CRF: the old loop (decode, network, then wait for the
CRF pool on every batch), reproduced here as the baseline, against segment_images with deeplab.inference_workers 0
and --workers (on CUDA the CRF of one batch also overlaps the next batch's network; on a CPU it waits as before).
Every variant's files are compared byte for byte with the baseline's. Rounds are interleaved and each variant's best
round counts (the machine's load drifts). Prints seconds and each ratio (baseline / variant: > 1 is faster).

    .venv/bin/python benchmarks/bench_inference_loader.py [--images 24 --height 188 --width 250 --workers 2 --crf-workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from device_bench import add_device_arguments, config_of, device_of, write_json
from PIL import Image

from mctformer.artifacts import save_label_png, voc_palette
from mctformer.crf import ScaledCRF
from mctformer.data.layout import batches_of_equal_size
from mctformer.data.transforms import normalize_image
from mctformer.data.voc import VOCLayout
from mctformer.localize import extract_maps
from mctformer.parallel import map_in_processes, worker_pool
from mctformer.segmentation import _crf_job, multiscale_softmax, segment_images
from mctformer.training.classifier import build_classifier
from mctformer.training.deeplab import build_deeplab


def write_root(root: Path, images: int, height: int, width: int, classes: int) -> list[str]:
    """Smooth random JPEGs (VOC-like file sizes) and one-box masks."""
    rng = np.random.default_rng(0)
    for folder in ("JPEGImages", "SegmentationClassAug"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ids = [f"b{i:04d}" for i in range(images)]
    for n, image_id in enumerate(ids):
        small = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
        noisy = np.clip(np.asarray(small, np.int16) + rng.integers(-12, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        mask = np.zeros((height, width), np.uint8)
        mask[height // 6: height * 4 // 5, width // 6: width * 4 // 5] = 1 + n % classes
        save_label_png(root / "SegmentationClassAug" / f"{image_id}.png", mask, voc_palette())
    return ids


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def old_segment_loop(model, layout, ids, crf_dir: str, settings: dict, crf_workers: int, device: torch.device, chunk: int) -> None:
    """The loop segment_images had before the loader: decode here, the network, then wait for every CRF of the batch."""
    crf = settings["crf"]
    os.makedirs(crf_dir, exist_ok=True)
    with worker_pool(crf_workers) as pool:
        for batch_ids in batches_of_equal_size(layout, ids, chunk):
            images = [layout.load_image(image_id) for image_id in batch_ids]
            batch = torch.stack([normalize_image(image) for image in images]).to(device)
            probs = multiscale_softmax(model, batch, scales=settings["scales"], flip=settings["flip_inference"], fuse=settings["fuse"],
                                       resize=settings["inference_resize"], amp="float32").cpu().numpy()
            jobs = [(i, image, p, ScaledCRF.from_config(crf), crf["normalise_scores"])
                    for i, image, p in zip(batch_ids, images, probs)]
            for image_id, label in map_in_processes(_crf_job, jobs, pool=pool):
                save_label_png(os.path.join(crf_dir, f"{image_id}.png"), label, voc_palette(), atomic=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--height", type=int, default=188)
    parser.add_argument("--width", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2, help="loader processes of the variant runs")
    parser.add_argument("--crf-workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    add_device_arguments(parser, "bench_inference_loader")
    args = parser.parse_args()
    device, config = device_of(args), config_of(args)
    classes = len(config["data"]["classes"])
    maps, deeplab = config["maps"], config["deeplab"]
    measured: dict[str, float | bool] = {}
    with tempfile.TemporaryDirectory() as work_name:
        work = Path(work_name)
        ids = write_root(work / "voc", args.images, args.height, args.width, classes)
        layout = VOCLayout(work / "voc", classes)
        labels = {i: np.isin(np.arange(classes), [n % classes]).astype(np.float32) for n, i in enumerate(ids)}
        torch.manual_seed(0)
        classifier = build_classifier({**config["classifier"], "pretrained": None}, classes).eval()
        torch.manual_seed(0)
        model = build_deeplab({**deeplab, "pretrained": None}, classes + 1).to(device).eval()
        extraction: dict[int, float] = {0: float("inf"), args.workers: float("inf")}
        inference: dict[str, float] = {"old": float("inf"), 0: float("inf"), args.workers: float("inf")}
        identical = True
        for round_index in range(args.rounds):
            for workers in (0, args.workers):
                started = time.perf_counter()
                extract_maps(classifier, layout, ids, labels, {"fused": work / f"maps{workers}_{round_index}"}, scales=maps["scales"], flip=maps["flip"],
                             last_k=maps["last_k"], feature_temperature=maps["feature_temperature"], batch_size=args.batch, device=device,
                             num_overlays=0, resize=maps["resize"], remainder=maps["remainder"], position_embedding=maps["position_embedding"],
                             amp=maps["amp"], storage_dtype=maps["storage_dtype"], workers=workers)
                extraction[workers] = min(extraction[workers], time.perf_counter() - started)
            identical &= folder_bytes(work / f"maps0_{round_index}") == folder_bytes(work / f"maps{args.workers}_{round_index}")
            started = time.perf_counter()
            old_segment_loop(model, layout, ids, str(work / f"old{round_index}" / "crf"), deeplab, args.crf_workers, device, args.batch)
            inference["old"] = min(inference["old"], time.perf_counter() - started)
            for workers in (0, args.workers):
                started = time.perf_counter()
                segment_images(model, layout, ids, None, str(work / f"new{workers}_{round_index}" / "crf"), scales=deeplab["scales"],
                               flip=deeplab["flip_inference"], fuse=deeplab["fuse"], crf=ScaledCRF.from_config(deeplab["crf"]), palette=voc_palette(),
                               device=device, workers=args.crf_workers, resize=deeplab["inference_resize"],
                               normalise_crf_scores=deeplab["crf"]["normalise_scores"], amp="float32", loader_workers=workers, chunk=args.batch)
                inference[workers] = min(inference[workers], time.perf_counter() - started)
                identical &= folder_bytes(work / f"old{round_index}") == folder_bytes(work / f"new{workers}_{round_index}")
        measured["extraction, workers 0 (s)"] = extraction[0]
        measured[f"extraction, workers {args.workers} (s)"] = extraction[args.workers]
        measured["inference + CRF, old serial loop (s)"] = baseline = inference["old"]
        for workers in (0, args.workers):
            measured[f"inference + CRF, segment_images, loader workers {workers} (s)"] = inference[workers]
        measured["maps and CRF labels identical"] = identical
    extraction_ratio = extraction[0] / extraction[args.workers]
    overlap_ratio = baseline / inference[0]
    loader_ratio = baseline / inference[args.workers]
    for key, value in measured.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"extraction, workers 0 / workers {args.workers}: {extraction_ratio:.2f}x")
    print(f"inference + CRF, old loop / segment_images (loader 0): {overlap_ratio:.2f}x; old loop / segment_images (loader {args.workers}): "
          f"{loader_ratio:.2f}x")
    measured.update({"extraction ratio": extraction_ratio, "inference ratio (loader 0)": overlap_ratio,
                     f"inference ratio (loader {args.workers})": loader_ratio})
    write_json(args, "bench_inference_loader", measured, overlap_ratio, ">= 1 (never slower on a CPU)", device)
    if not identical:
        raise SystemExit("the loader or the overlapped CRF pool changed an output")


if __name__ == "__main__":
    main()
