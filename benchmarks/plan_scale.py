"""A measured plan for VOC and COCO on a cluster: the per-image cost of the per-image stages' CPU work on this
machine, and the wall time each stage would take with and without shards on ``--nodes`` x ``--cores``.

Measured here, one image at a time on one core (torch.set_num_threads(1); the CRF is single-threaded), on smooth
random images and maps of each dataset's size (VOC ~500x375, COCO ~640x480), with the shipped paper configs'
settings (workflow/configs/voc12.yaml and coco14.yaml):

- psa_labels: PSA's two label CRFs (bg^alpha_low and bg^alpha_high) over the image's classes + background;
- ir_labels: IRN's two label CRFs (conf_fg_thres, conf_bg_thres);
- random_walk: PSA's walk (walk_seeds: the affinities of --feature-dim features at stride 8, 2^logt steps);
- irn_walk: IRN's walk (boundary_walk: path affinities at stride 4, 2^exp_times steps);
- infer_deeplab CRF: DeepLab's inference CRF over all 21 (VOC) or 81 (COCO) labels (the VOC submission's too).

The networks' forward passes (MCTformer for extract_maps, AffinityNet, the boundary network, DeepLab) are GPU work
and are not measured here: their figures come from the device check (benchmarks/device_check.py) where one has run.

The prediction is arithmetic on the measured costs: a stage's images x its per-image core-seconds, spread over the
cores it gets: one job on one node (--cores of it) without shards, ``--nodes`` shards of --cores each with them.
It assumes the work parallelises over cores and shards without loss (true of the CRF stages, one process per core;
an upper bound for a walk's threads) and leaves out job start-up, image decoding and the file system.

    nice -n 5 .venv/bin/python benchmarks/plan_scale.py --images 3 --json docs/results/benchmarks/plan_scale.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
# The datasets: image size (height, width), labels (background included), classes an image holds on average (VOC:
# 1.5, COCO: 2.9, rounded up), the paper config, and each per-image stage's image count (VOC: train_aug 10,582,
# val 1,449, test 1,456; COCO 2014: train 82,081, val 40,137).
DATASETS = {
    "VOC": dict(size=(375, 500), labels=21, present=2, config="voc12", images={
        "psa_labels": 10582, "ir_labels": 10582, "random_walk": 10582, "irn_walk": 10582,
        "infer_deeplab CRF": 1449, "voc_submission CRF": 1456}),
    "COCO": dict(size=(480, 640), labels=81, present=3, config="coco14", images={
        "psa_labels": 82081, "ir_labels": 82081, "random_walk": 82081, "irn_walk": 82081, "infer_deeplab CRF": 40137}),
}


def smooth(rng: np.random.Generator, channels: int, size: tuple[int, int], cells: int = 6) -> np.ndarray:
    """[channels, H, W] in [0, 1]: random values on a coarse grid, bilinearly upsampled (blobs, as maps and images have)."""
    coarse = torch.from_numpy(rng.random((1, channels, cells, cells), dtype=np.float32))
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)[0].numpy()


def seconds_per_image(job, inputs) -> float:
    started = time.perf_counter()
    for item in inputs:
        job(*item)
    return (time.perf_counter() - started) / len(inputs)


def measure(name: str, dataset: dict, images: int, feature_dim: int) -> dict[str, float]:
    from mctformer.config import load_config
    from mctformer.crf import CRFParams, ScaledCRF, crf_argmax
    from mctformer.irn.labels import ir_labels
    from mctformer.irn.walk import boundary_walk
    from mctformer.psa.labels import crf_scores
    from mctformer.psa.walk import walk_seeds

    config, _ = load_config([REPO / "workflow" / "configs" / f"{dataset['config']}.yaml"], default_file=REPO / "config.yaml")
    psa, irn, affinity, deeplab = config["psa"], config["irn"], config["affinity"], config["deeplab"]
    rng = np.random.default_rng(0)
    height, width = dataset["size"]
    present = dataset["present"]
    pictures = [(smooth(rng, 3, (height, width)).transpose(1, 2, 0) * 255).astype(np.uint8) for _ in range(images)]
    maps = [smooth(rng, present, (height, width)) for _ in range(images)]
    classes = np.arange(1, present + 1)

    def scaled(crf: dict) -> CRFParams:
        return ScaledCRF.from_config(crf).for_image((height, width))

    def psa_job(picture, image_maps):
        params = scaled(psa["crf"])
        crf_scores(picture, image_maps, psa["alpha_low"], params)
        crf_scores(picture, image_maps, psa["alpha_high"], params)

    def irn_job(picture, image_maps):
        ir_labels(picture, classes, image_maps, conf_fg_thres=irn["conf_fg_thres"], conf_bg_thres=irn["conf_bg_thres"],
                  crf_params=scaled(irn["crf"]), gt_prob=float(irn["crf"]["gt_prob"]))

    def deeplab_crf_job(picture, scores):
        crf_argmax(picture, scores, ScaledCRF.from_config(deeplab["crf"]), normalise=deeplab["crf"]["normalise_scores"])

    # the walks' grids: PSA's at stride 8 of the image at psa.walk_scale, IRN's at stride 4 at irn.walk_scale
    psa_grid = tuple(int(np.ceil(side * psa["walk_scale"] / 8)) for side in (height, width))
    irn_grid = tuple(int(np.ceil(side * irn["walk_scale"] / 4)) for side in (height, width))

    def psa_walk_job(features, seeds):
        walk_seeds(features, [seeds], psa["beta"], psa["logt"], affinity["radius"], affinity["pair_sources"])

    def irn_walk_job(boundary, seeds):
        boundary_walk(boundary, [seeds], beta=irn["beta"], exp_times=irn["exp_times"], radius=irn["walk_radius"])

    torch.manual_seed(0)
    walk_inputs = [(torch.rand(1, feature_dim, *psa_grid), torch.rand(present + 1, *psa_grid)) for _ in range(images)]
    boundary_inputs = [(torch.rand(1, *irn_grid), torch.rand(present, *irn_grid)) for _ in range(images)]
    label_scores = [smooth(rng, dataset["labels"], (height, width)) for _ in range(images)]
    costs = {
        "psa_labels": seconds_per_image(psa_job, list(zip(pictures, maps))),
        "ir_labels": seconds_per_image(irn_job, list(zip(pictures, maps))),
        "random_walk": seconds_per_image(psa_walk_job, walk_inputs),
        "irn_walk": seconds_per_image(irn_walk_job, boundary_inputs),
    }
    costs["infer_deeplab CRF"] = seconds_per_image(deeplab_crf_job, list(zip(pictures, label_scores)))
    if "voc_submission CRF" in dataset["images"]:
        costs["voc_submission CRF"] = costs["infer_deeplab CRF"]  # the same CRF on the test images
    print(f"{name}: {height}x{width}, {present} classes an image, {dataset['labels']} labels; PSA walk grid {psa_grid}, IRN walk grid "
          f"{irn_grid}: " + ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in costs.items()))
    return costs


def plan_rows(costs: dict[str, dict[str, float]], nodes: list[int], cores: int) -> list[dict]:
    """Per dataset and stage: images, per-image core-seconds, and the predicted wall hours of one job on one node
    (no shards) and of ``n`` shards of one node each, for every n in ``nodes``."""
    rows = []
    for name, stages in costs.items():
        for stage, seconds in stages.items():
            images = DATASETS[name]["images"][stage]
            core_seconds = images * seconds
            rows.append({
                "dataset": name, "stage": stage, "images": images, "seconds_per_image": seconds,
                "unsharded_hours": core_seconds / cores / 3600,
                "sharded_hours": {str(count): core_seconds / (count * cores) / 3600 for count in nodes},
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3, help="images measured per stage and dataset")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 10], help="cluster sizes the plan is made for")
    parser.add_argument("--cores", type=int, default=32, help="cores of a node")
    parser.add_argument("--feature-dim", type=int, default=448, help="AffinityNet's feature width (PSA's ResNet-38: 448)")
    parser.add_argument("--json", help="also write the measurement and the plan (docs/results/benchmarks/plan_scale.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # per-image core-seconds
    costs = {name: measure(name, dataset, args.images, args.feature_dim) for name, dataset in DATASETS.items()}
    rows = plan_rows(costs, args.nodes, args.cores)
    print(f"\npredicted wall hours on nodes of {args.cores} cores (one job on one node; N shards on N nodes):")
    for row in rows:
        sharded = ", ".join(f"{count} shards {hours:.2f} h" for count, hours in row["sharded_hours"].items())
        print(f"{row['dataset']:5} {row['stage']:20} {row['images']:6} images x {row['seconds_per_image']:.3f} s: unsharded "
              f"{row['unsharded_hours']:.2f} h; {sharded}")
    if args.json:
        from mctformer.docs import write_benchmark_json

        measured = {f"{name} {stage} (s/image)": round(seconds, 4) for name, stages in costs.items() for stage, seconds in stages.items()}
        write_benchmark_json(
            args.json, benchmark="plan_scale", command=" ".join(["plan_scale.py", *sys.argv[1:]]), measured=measured, speedup=None,
            target=None, threads=1, device="cpu",
            plan={"nodes": args.nodes, "cores": args.cores, "images_measured": args.images, "rows": rows},
        )


if __name__ == "__main__":
    main()
