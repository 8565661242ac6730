"""Peak memory of map extraction, the seed sweep and the random walk at N and 4N images.

Each stage streams over the images (a batch in memory at a time), so its peak
resident set size must not grow with the number of images. Every measurement
runs the stage function the workflow's rule calls, in a fresh Python process,
and reads that process's peak RSS (``VmHWM`` in /proc/self/status) after the stage;
the stage's own growth is that peak minus the peak before it started (the
imports: torch, numpy, matplotlib). Networks are untrained (random weights):
the cost per image is the same.

    .venv/bin/python benchmarks/bench_memory.py [--images 128] [--size 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mctformer.config import load_config

REPO = Path(__file__).resolve().parents[1]
STAGES = ("extract_maps", "evaluate_seeds", "random_walk")


def peak_kib() -> int:
    """This process's peak RSS in KiB: VmHWM (ru_maxrss would carry over the parent's peak across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def config() -> dict:
    return load_config(default_file=REPO / "config.yaml")[0]


def prepare(workdir: Path, images: int, size: int) -> None:
    """A synthetic root with train (N ids) inside train_aug (4N ids), labels and untrained checkpoints."""
    from mctformer.data.layout import DatasetRef
    from mctformer.data.synthetic import SyntheticSpec, generate_synthetic_voc
    from mctformer.models.affinitynet import AffinityNet
    from mctformer.stages.data import make_class_labels
    from mctformer.training.classifier import build_classifier
    from mctformer.training.common import TrainerFiles, save_trained

    settings = config()
    classes = settings["data"]["classes"]
    synthetic = {**settings["synthetic"], "radius_range": tuple(settings["synthetic"]["radius_range"])}
    synthetic.update(num_train_aug=4 * images, num_train=images, num_val=1, image_size=size)
    spec = SyntheticSpec(num_classes=len(classes), seed=settings["seed"], **synthetic)
    generate_synthetic_voc(workdir / "data", spec, palette=settings["data"]["palette"], workers=os.cpu_count() or 1)
    make_class_labels(dataset=DatasetRef(str(workdir / "data"), "voc", tuple(classes)), splits=["train_aug"], out_path=str(workdir / "cls_labels.npy"),
                      workers=1)
    classifier = build_classifier(settings["classifier"], len(classes))
    save_trained(TrainerFiles(workdir / "classifier.pt", workdir / "classifier.csv", workdir / "classifier.resume.pt", tensorboard=None), classifier,
                 settings["classifier"], [], class_count=len(classes))
    affinity = AffinityNet(backbone=settings["affinity"]["backbone"], pretrained=None, feature_dim=settings["affinity"]["feature_dim"])
    save_trained(TrainerFiles(workdir / "affinity.pt", workdir / "affinity.csv", workdir / "affinity.resume.pt", tensorboard=None), affinity,
                 settings["affinity"], [])


def child(stage: str, workdir: Path, split: str, threads: int) -> None:
    """One measurement: run ``stage`` on ``split``, print peak RSS before and after as JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (imported up front: not the stage's own memory)

    if stage != "evaluate_seeds":  # the sweep runs without torch, as its rule does
        import torch  # noqa: F401

    from mctformer.data.layout import DatasetRef
    from mctformer.settings import MapGeometry, Placement, WalkSettings
    from mctformer.stages.psa import random_walk_stage
    from mctformer.stages.seeds import evaluate_seeds_stage, extract_maps_stage

    settings = config()
    classes = settings["data"]["classes"]
    root, labels = str(workdir / "data"), str(workdir / "cls_labels.npy")
    variants = settings["maps"]["variants"]
    # the 4N extraction writes the maps the sweep and the walk read (for N they read the first N of them)
    maps = {v: str(workdir / "maps" / v) for v in variants}
    out = workdir / f"out_{stage}_{split}"
    before, started = peak_kib(), time.perf_counter()
    if stage == "extract_maps":
        target = maps if split == "train_aug" else {v: str(out / v) for v in variants}
        geometry, keys = MapGeometry.take({key: value for key, value in settings["maps"].items() if key != "variants"})
        extract_maps_stage(dataset=DatasetRef(root, "voc", tuple(classes)), labels_path=labels, checkpoint=str(workdir / "classifier.pt"),
                                  version=settings["classifier"]["version"], splits=[split], placement=Placement("cpu", False, 0), out_dirs=target,
                                  overlay_dir=None,
                                  threads=threads, geometry=geometry, **keys)
    elif stage == "evaluate_seeds":
        files = {v: {"sweep": str(out / v / "sweep.csv"), "best": str(out / v / "best.json")} for v in variants}
        evaluate_seeds_stage(dataset=DatasetRef(root, "voc", tuple(classes)), labels_path=labels, split=split, map_dirs=maps,
                                    out_files=files, plot_path=str(out / "sweep.png"), **settings["seeds"])
    else:
        psa, affinity = settings["psa"], settings["affinity"]
        random_walk_stage(
            dataset=DatasetRef(root, "voc", tuple(classes)), palette=None, splits=[split], map_dir=maps[psa["seed_variant"]],
            checkpoint=str(workdir / "affinity.pt"), best_json=None, background=0.3,
            walk=WalkSettings(beta=psa["beta"], logt=psa["logt"], radius=affinity["radius"], pair_sources=affinity["pair_sources"]),
            walk_scale=psa["walk_scale"], batch_size=psa["batch_size"], backbone=affinity["backbone"], walk_amp=psa["walk_amp"],
            placement=Placement("cpu", False, 0),
            out_dir=str(out / "pseudo"),
            threads=threads,
        )
    print(json.dumps({"before_kib": before, "peak_kib": peak_kib(), "seconds": time.perf_counter() - started}))


def measure(stage: str, workdir: Path, split: str, threads: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", stage, "--workdir", str(workdir), "--split", split, "--threads", str(threads)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{stage} on {split} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128, help="N (a few batches of 64, past the allocator's warm-up); the larger run has 4N")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--split", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.workdir), args.split, args.threads)
        return

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prepare(workdir, args.images, args.size)
        print(f"synthetic images of {args.size}x{args.size}: N = {args.images} (train), 4N = {4 * args.images} (train_aug); "
              f"{len(config()['maps']['variants'])} map variants; each measurement a fresh process")
        print(f"{'stage':<16}{'peak RSS at N':>16}{'at 4N':>12}{'ratio':>8}{'stage growth at N':>20}{'at 4N':>10}{'seconds N / 4N':>17}")
        worst = 0.0
        for stage in STAGES:
            # the 4N extraction first: its maps are what the sweep and the walk read
            order = ("train_aug", "train") if stage == "extract_maps" else ("train", "train_aug")
            runs = {split: measure(stage, workdir, split, args.threads) for split in order}
            small, large = runs["train"], runs["train_aug"]
            ratio = large["peak_kib"] / small["peak_kib"]
            worst = max(worst, ratio)
            growth = [(r["peak_kib"] - r["before_kib"]) / 1024 for r in (small, large)]
            print(f"{stage:<16}{small['peak_kib'] / 1024:>12.1f} MiB{large['peak_kib'] / 1024:>8.1f} MiB{ratio:>7.2f}x"
                  f"{growth[0]:>16.1f} MiB{growth[1]:>6.1f} MiB{small['seconds']:>9.1f} / {large['seconds']:.1f}")
        print(f"largest peak ratio 4N / N: {worst:.2f}x (target: ~1, i.e. memory does not grow with the number of images)")


if __name__ == "__main__":
    main()
