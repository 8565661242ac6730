"""``python -m mctformer <command>``: run a stage's core function without Snakemake.

For one-off use outside the workflow (a quick look at a dataset, re-scoring a
folder of masks); the workflow itself calls the same functions from its rules.

    python -m mctformer synthetic OUT [--config config.yaml]     generate the synthetic VOC-layout tree
    python -m mctformer labels ROOT OUT --split train_aug ...     build cls_labels.npy from a root's masks
    python -m mctformer evaluate ROOT MASK_DIR --split train      mIoU of a folder of label PNGs
    python -m mctformer prepare-voc12 VOC OUT [--sbd SBD] [--test TEST]   VOC 2012 (+ SBD) root from the official archives
    python -m mctformer prepare-coco14 IMAGES ANNOTATIONS OUT           COCO 2014 root from the images and instances JSONs
    python -m mctformer config show [--configfile FILE ...]         the merged, compat-resolved config Snakemake will see
    python -m mctformer predict IMAGES ... --out OUT [--configfile FILE ...] [--run results/<run_name>]
                                     a trained run on images of one's own: labels, maps, seeds, masks (docs/predict.md)
    python -m mctformer docs render [--run results/synthetic] | check | headline   the generated regions of README and docs/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import yaml


def _config(path: str) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["docs"]:  # its own parser (mctformer.docs); needs neither torch nor the stages
        from .docs import main as docs_main

        return docs_main(argv[1:])
    from .data.layout import DatasetRef
    from .stages.data import make_class_labels, prepare_synthetic_data
    from .stages.psa import evaluate_masks_stage

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

    voc = commands.add_parser("prepare-voc12", help="VOC 2012 + SBD root (SegmentationClassAug, train_aug, cls_labels.npy)")
    voc.add_argument("voc", help="VOCtrainval_11-May-2012.tar or the extracted VOCdevkit/VOC2012")
    voc.add_argument("out", help="the root to write (replaced when complete)")
    voc.add_argument("--sbd", help="SBD benchmark.tgz or the extracted benchmark_RELEASE (without it train_aug = VOC train)")
    voc.add_argument("--test", help="VOC2012test.tar or its folder: adds the test list and images")

    coco = commands.add_parser("prepare-coco14", help="COCO 2014 root (class-index masks, lists, cls_labels.npy)")
    coco.add_argument("images", help="folder holding train2014/ and val2014/")
    coco.add_argument("annotations", help="folder holding instances_train2014.json and instances_val2014.json")
    coco.add_argument("out", help="the root to write (replaced when complete)")
    coco.add_argument("--workers", type=int, default=os.cpu_count() or 1)

    config_command = commands.add_parser("config", help="the merged, compat-resolved config as Snakemake will see it")
    config_command.add_argument("action", choices=["show"])
    config_command.add_argument("--configfile", nargs="+", default=[], help="overlays, as snakemake --configfile takes them")
    config_command.add_argument("--default-file", default="config.yaml", help="the file the Snakefile loads first (default: config.yaml)")

    add_predict_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "config":
        return show_config(args.configfile, args.default_file)
    if args.command == "predict":
        return predict(args)
    if args.command == "prepare-voc12":  # no config: the releases fix the classes
        from .data.prepare import prepare_voc12

        prepare_voc12(voc=args.voc, sbd=args.sbd, out_root=args.out, test=args.test)
        return 0
    if args.command == "prepare-coco14":
        from .data.prepare import prepare_coco14

        prepare_coco14(images_root=args.images, annotations_dir=args.annotations, out_root=args.out, workers=args.workers)
        return 0
    config = _config(args.config)
    classes = config["data"]["classes"]
    if args.command == "synthetic":
        prepare_synthetic_data(
            out_root=args.out, num_classes=len(classes), palette=config["data"]["palette"], seed=config["seed"], workers=args.workers,
            **config["synthetic"],
        )
    elif args.command == "labels":
        make_class_labels(dataset=DatasetRef(args.root, args.layout, tuple(classes)), splits=args.split, out_path=args.out, workers=1)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            evaluate_masks_stage(
                dataset=DatasetRef(args.root, args.layout, tuple(classes)), split=args.split, mask_dir=args.masks,
                table_path=os.path.join(tmp, "eval.csv"), summary_path=os.path.join(tmp, "eval.json"),
                plot_path=os.path.join(tmp, "eval.png"), title=args.masks,
            )
    return 0


def add_predict_parser(commands) -> None:
    from .config import PROJECT_DIR

    predict = commands.add_parser(
        "predict", help="a trained run on your own images: labels, maps, seeds, pseudo masks, DeepLab (docs/predict.md)",
        description="Apply a trained run to images (folders or files, any names): the predicted image-level labels and "
        "their scores, each class's localization map as a heat overlay, the seed, the PSA pseudo mask and DeepLab's "
        "segmentation (+ CRF) where the run has them, and one contact sheet. Every setting is the run's config's.",
    )
    predict.add_argument("images", nargs="+", help="image files and/or folders of them (not recursive)")
    predict.add_argument("--out", required=True, help="the output folder (replaced when complete)")
    predict.add_argument("--configfile", nargs="+", default=[], help="the run's overlays, as snakemake --configfile took them")
    predict.add_argument("--default-file", default=str(PROJECT_DIR / "config.yaml"), help="the file the Snakefile loads first")
    predict.add_argument("--run", help="the run folder (default: results/<run_name> of the config)")
    predict.add_argument("--classifier", help="a classifier checkpoint.pt instead of the run's")
    predict.add_argument("--affinity", help="an AffinityNet checkpoint (affinity.pt) instead of the run's")
    predict.add_argument("--deeplab", help="a DeepLab checkpoint.pt instead of the run's")
    predict.add_argument("--labels", help="ground-truth labels instead of the predicted ones: cls_labels.npy, or a "
                         "labels file (.csv or .json) in a folder dataset's forms, e.g. predict's own labels.csv (docs/predict.md)")
    predict.add_argument("--label-threshold", type=float, help="a class is predicted where its score reaches this "
                         "(default: the config's seeds.label_threshold)")
    predict.add_argument("--seed-threshold", type=float, help="the seeds' background score when the run has no best "
                         "threshold file and psa.background is null")
    predict.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the config's device")
    predict.add_argument("--batch-size", type=int, help="images per forward (default: the config's maps.batch_size)")
    predict.add_argument("--sheet-images", type=int, default=8, help="images on the contact sheet (default 8)")
    predict.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads and CRF processes")


def predict(args: argparse.Namespace) -> int:
    """``predict``: the config resolved as the workflow resolves it, the run's checkpoints (or those given), then
    stages.predict.predict_stage."""
    from .config import ConfigError, deeplab_sources, load_config
    from .data.errors import DatasetError
    from .run_layout import DEEPLAB_OF_SOURCE
    from .settings import Placement
    from .stages.predict import RunCheckpoints, predict_stage

    try:
        config, _ = load_config(args.configfile, default_file=args.default_file if os.path.exists(args.default_file) else None)
    except ConfigError as error:
        print(f"invalid config: {error}", file=sys.stderr)
        return 1
    try:
        if args.classifier:
            checkpoints = RunCheckpoints(args.classifier, args.affinity, args.deeplab, None)
        else:
            run = args.run or os.path.join("results", config["run_name"])
            checkpoints = RunCheckpoints.of_run(config, run, DEEPLAB_OF_SOURCE[deeplab_sources(config)[0]])
            note_another_config(config, os.path.join(run, "summary.json"))
            overrides = {key: value for key, value in (("affinity", args.affinity), ("deeplab", args.deeplab)) if value}
            checkpoints = RunCheckpoints(**{**vars(checkpoints), **overrides})
        threshold = config["seeds"]["label_threshold"] if args.label_threshold is None else args.label_threshold
        written = predict_stage(
            config=config, images=args.images, out_dir=args.out, checkpoints=checkpoints, labels_path=args.labels,
            label_threshold=threshold, seed_threshold=args.seed_threshold,
            placement=Placement(args.device or config["device"], config["deterministic"], 0),
            batch_size=args.batch_size or config["maps"]["batch_size"], sheet_images=args.sheet_images, threads=args.threads,
        )
    except (DatasetError, FileNotFoundError) as error:  # bad input (an image, the labels file, a checkpoint): its message names it
        print(f"mctformer predict: {error}", file=sys.stderr)
        return 1
    skipped = [step for step in ("masks", "deeplab") if step not in written]
    print(f"predicted {written['images']} images ({written['label_source']} labels) into {args.out}"
          + (f"; no {' or '.join(skipped)} (the run has no such checkpoint)" if skipped else ""))
    return 0


def note_another_config(config: dict, summary_path: str) -> None:
    """A note on stderr when the run's summary.json records another resolved config than ``config`` (its sha256,
    mctformer.provenance): the overlays the run was made with were likely not given (``--configfile``)."""
    from .provenance import config_hash

    if not os.path.isfile(summary_path):
        return
    with open(summary_path) as handle:
        recorded = (json.load(handle).get("provenance") or {}).get("config_sha256")
    if recorded and recorded != config_hash(config):
        print(f"note: {summary_path} records another config (sha256 {recorded[:12]}) than the one resolved here "
              f"({config_hash(config)[:12]}): every setting is taken from this one; give the run's overlays with --configfile "
              f"(a run made before a config key was added differs by that key alone)", file=sys.stderr)


def show_config(configfiles: list[str], default_file: str) -> int:
    """Print the resolved config as YAML, then which keys the compat modes set. A config the schema refuses is
    not printed (exit status 1); one the cross-key and path checks would stop (a paper config before its data
    is filled in, say) is printed with the reason on stderr."""
    from .config import ConfigError, check_config, load_config

    try:
        config, set_by_compat = load_config(configfiles, default_file=default_file if os.path.exists(default_file) else None)
    except ConfigError as error:
        print(f"invalid config: {error}", file=sys.stderr)
        return 1
    print(yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=120), end="")
    modes = config.get("compat") or {}
    print(f"# compat: {', '.join(f'{group} {mode}' for group, mode in modes.items())}; the switches it set:")
    for key, value, mode in set_by_compat:
        print(f"#   {key}: {json.dumps(value)}  ({mode})")
    try:
        check_config(config)
    except ConfigError as error:
        print(f"note: the run would stop before any job: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
