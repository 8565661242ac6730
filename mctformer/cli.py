"""``python -m mctformer <command>``: run a stage's core function without Snakemake.

For one-off use outside the workflow (a quick look at a dataset, re-scoring a
folder of masks); the workflow itself calls the same functions from its rules.

    python -m mctformer synthetic OUT [--config config.yaml]     generate the synthetic VOC-layout tree
    python -m mctformer labels ROOT OUT --split train_aug ...     build cls_labels.npy from a root's masks
    python -m mctformer evaluate ROOT MASK_DIR --split train      mIoU of a folder of label PNGs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import yaml


def _config(path: str) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def main(argv: list[str] | None = None) -> int:
    from . import stages

    parser = argparse.ArgumentParser(prog="python -m mctformer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    synthetic = commands.add_parser("synthetic", help="generate the synthetic VOC-layout dataset")
    synthetic.add_argument("out")
    synthetic.add_argument("--config", default="config.yaml")
    synthetic.add_argument("--workers", type=int, default=os.cpu_count() or 1)

    labels = commands.add_parser("labels", help="build cls_labels.npy from ground-truth masks")
    labels.add_argument("root")
    labels.add_argument("out")
    labels.add_argument("--split", action="append", required=True)
    labels.add_argument("--config", default="config.yaml", help="for the class list")
    labels.add_argument("--layout", choices=["voc", "coco"], default="voc")

    evaluate = commands.add_parser("evaluate", help="mIoU of a folder of label PNGs against a root's masks")
    evaluate.add_argument("root")
    evaluate.add_argument("masks")
    evaluate.add_argument("--split", required=True)
    evaluate.add_argument("--config", default="config.yaml", help="for the class list")
    evaluate.add_argument("--layout", choices=["voc", "coco"], default="voc")

    args = parser.parse_args(argv)
    config = _config(args.config)
    classes = config["data"]["classes"]
    if args.command == "synthetic":
        stages.prepare_synthetic_data(args.out, config["data"], config["synthetic"], config.get("seed", 0), workers=args.workers)
    elif args.command == "labels":
        stages.make_class_labels(args.root, args.layout, classes, args.split, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            stages.evaluate_masks_stage(
                args.root, args.layout, classes, args.split, args.masks,
                os.path.join(tmp, "eval.csv"), os.path.join(tmp, "eval.json"), os.path.join(tmp, "eval.png"), title=args.masks,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
