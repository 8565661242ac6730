"""Our one-pass threshold sweep vs the reference's evaluation loop, on the same map files.

The reference evaluates one background threshold at a time, reloading every
map (and ground-truth) file for each threshold. Both are run here on the same
files; the confusion matrices must be identical at every threshold, and the
speed-up is printed.

    .venv/bin/python benchmarks/bench_sweep.py [--images 300] [--size 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from mctformer.artifacts import load_map_file, save_map_file
from mctformer.config import load_config
from mctformer.data.synthetic import SyntheticSpec, generate_synthetic_voc
from mctformer.data.voc import VOCLayout
from mctformer.metrics import confusion_matrix, scores_from_confusion, seed_prediction, sweep_split, threshold_grid

REPO = Path(__file__).resolve().parents[1]
CONFIG = load_config(default_file=REPO / "config.yaml")[0]  # what the options below leave: the embedded default's, compat-resolved


def write_maps(layout: VOCLayout, ids: list[str], out: Path, rng: np.random.Generator) -> None:
    """Seed-like maps: each present class's mask blurred, plus smooth noise, min-max normalised."""
    out.mkdir()
    for image_id in ids:
        mask = layout.load_mask(image_id)
        present = [v for v in np.unique(mask) if v not in (0, 255)]
        maps = []
        for value in present:
            blurred = ndimage.gaussian_filter((mask == value).astype(np.float32), 4) + 0.3 * ndimage.gaussian_filter(rng.random(mask.shape), 6)
            maps.append((blurred - blurred.min()) / (np.ptp(blurred) + 1e-8))
        save_map_file(out / f"{image_id}.npz", np.array(present), np.array(maps).reshape(len(present), *mask.shape),
                      dtype=CONFIG["maps"]["storage_dtype"])


def reference_loop(map_dir: Path, ids, layout, thresholds, num_labels) -> np.ndarray:
    confusions = []
    for threshold in thresholds:
        total = np.zeros((num_labels, num_labels), dtype=np.int64)
        for image_id in ids:
            labels, maps = load_map_file(map_dir / f"{image_id}.npz")
            gt = layout.load_mask(image_id)
            total += confusion_matrix(gt, seed_prediction(labels, maps, np.float32(threshold)), num_labels)
        confusions.append(total)
    return np.stack(confusions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--json", help="also write what was measured here, for the docs (docs/results/benchmarks/bench_sweep.json)")
    args = parser.parse_args()
    thresholds = threshold_grid(0.0, 0.6, 0.01)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        synthetic = {**CONFIG["synthetic"], "radius_range": tuple(CONFIG["synthetic"]["radius_range"])}
        synthetic.update(num_train_aug=args.images, num_train=args.images, num_val=1, image_size=args.size)
        synthetic["max_objects"] = min(synthetic["max_objects"], args.classes)
        spec = SyntheticSpec(num_classes=args.classes, seed=CONFIG["seed"], **synthetic)
        generate_synthetic_voc(root, spec, palette=None, workers=1)
        layout = VOCLayout(root, args.classes)
        ids = layout.read_ids("train")
        write_maps(layout, ids, Path(tmp) / "maps", np.random.default_rng(0))
        num_labels = args.classes + 1

        started = time.perf_counter()
        ours = sweep_split({"maps": Path(tmp) / "maps"}, ids, layout.load_mask, thresholds, num_labels, progress=False)["maps"]
        ours_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reference = reference_loop(Path(tmp) / "maps", ids, layout, thresholds, num_labels)
        reference_seconds = time.perf_counter() - started

    identical = bool(np.array_equal(ours, reference))
    miou = scores_from_confusion(ours)["miou"]
    print(f"images {len(ids)} of {args.size}x{args.size}, thresholds {len(thresholds)}")
    print(f"confusions identical at every threshold: {identical}; best mIoU {np.nanmax(miou):.4f} at t={thresholds[np.nanargmax(miou)]:.2f}")
    print(f"reference loop {reference_seconds:.2f} s, one-pass sweep {ours_seconds:.3f} s")
    print(f"speed-up: {reference_seconds / ours_seconds:.1f}x (target >= 20x)")
    if args.json:
        from mctformer.docs import write_benchmark_json

        write_benchmark_json(
            args.json, benchmark="bench_sweep", command=f"bench_sweep.py --images {args.images} --size {args.size} --classes {args.classes}",
            measured={"thresholds": len(thresholds), "identical confusions": identical, "reference loop (s)": reference_seconds,
                      "one-pass sweep (s)": ours_seconds},
            speedup=reference_seconds / ours_seconds, target=">= 20x", threads=torch.get_num_threads(), device="cpu",
        )
    if not identical:
        raise SystemExit("the sweep differs from the reference loop")


if __name__ == "__main__":
    main()
