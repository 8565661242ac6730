"""One function per pipeline stage: what each Snakemake rule script calls.

Each takes plain paths and config sections, reads the previous stage's files
and writes its own (atomically). Nothing here knows about Snakemake. torch and
the networks are imported inside the stages that need them, so that the
evaluation jobs start in a fraction of the time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .artifacts import save_figure, write_dataframe_csv, write_json
from .data.labels import build_class_labels, load_class_labels, save_class_labels
from .data.layout import open_layout
from .data.synthetic import SyntheticSpec, generate_synthetic_voc

# the IRN stages live beside their numerics; the rule scripts import them from here like every other stage
from .irn.stages import compare_refinements_stage, ir_labels_stage, irn_walk_stage, train_irn_stage  # noqa: F401
from .metrics import ERROR_COLUMNS, best_threshold, sweep_split, sweep_table, threshold_grid


def _torch_setup(threads: int, device: str):
    """Thread count and device of a stage that runs a network."""
    from .localize import resolve_device
    from .training.common import set_threads

    set_threads(threads)
    return resolve_device(device)


def _relaunched_under_torchrun(stage, arguments: Mapping[str, Any]) -> bool:
    """Run ``stage`` in ``arguments['processes']`` torchrun ranks unless this already is one; True when it did."""
    from .training.distributed import is_distributed, run_under_torchrun

    processes = int(arguments["processes"])
    if processes <= 1 or is_distributed():
        return False
    # each rank gets its share of the job's CPU threads (and, being a rank, does not relaunch)
    ranked = dict(arguments, threads=max(1, int(arguments["threads"]) // processes))
    run_under_torchrun(stage, ranked, processes)
    return True


def _distributed_device(threads: int, device: str):
    from .training.distributed import setup

    return setup(_torch_setup(threads, device))


def prepare_synthetic_data(*, out_root: str, num_classes: int, palette: Sequence | None, seed: int, workers: int, **synthetic: Any) -> dict:
    """Generate the synthetic VOC-layout tree at ``out_root``; ``synthetic`` = the config's ``synthetic`` keys."""
    if "radius_range" in synthetic:
        synthetic["radius_range"] = tuple(synthetic["radius_range"])
    spec = SyntheticSpec(num_classes=num_classes, seed=seed, **synthetic)
    started = time.time()
    generate_synthetic_voc(out_root, spec, palette=palette, workers=workers)
    seconds = time.time() - started
    print(f"generated {spec.num_train_aug + spec.num_val} images in {seconds:.1f} s")
    return {"seconds": seconds}


def make_class_labels(*, root: str, layout: str, classes: Sequence[str], splits: Sequence[str], out_path: str, workers: int) -> None:
    """``cls_labels.npy`` for every id of ``splits``, from the ground-truth masks."""
    reader = open_layout(root, layout, len(classes))
    ids = [image_id for split in splits for image_id in reader.read_ids(split)]
    labels = build_class_labels(reader, ids, workers=workers)
    counts = np.stack(list(labels.values())).sum(axis=0)
    print("images per class:", dict(zip(classes, counts.astype(int).tolist())))
    save_class_labels(out_path, labels)


def train_classifier_stage(
    *, root: str, layout: str, classes: Sequence[str], labels_path: str, train_split: str, val_split: str,
    settings: Mapping[str, Any], seed: int, device: str, checkpoint: str, log_csv: str, resume: str, threads: int, processes: int,
) -> None:
    """Train MCTformer (``settings`` = the config's ``classifier`` section, all of which it reads);
    ``processes > 1``: data-parallel in that many torchrun processes (one per GPU)."""
    if _relaunched_under_torchrun(train_classifier_stage, locals()):
        return
    from .training.classifier import train_classifier

    torch_device = _distributed_device(threads, device)
    reader = open_layout(root, layout, len(classes))
    train_ids = reader.read_ids(train_split)
    val_ids = reader.read_ids(val_split)
    labels = load_class_labels(labels_path, train_ids + val_ids, len(classes))
    summary = train_classifier(
        reader, train_ids, val_ids, labels, settings, checkpoint, log_csv, resume,
        device=torch_device, seed=seed, workers=settings["workers"],
    )
    print(f"classifier trained in {summary['seconds']:.1f} s: {summary['final']}")


def extract_maps_stage(
    *, root: str, layout: str, classes: Sequence[str], labels_path: str, checkpoint: str, splits: Sequence[str],
    last_k: int, scales: Sequence[float], flip: bool, feature_temperature: float, batch_size: int, overlays: int,
    resize: str, remainder: str, position_embedding: str, amp: bool, storage_dtype: str,
    device: str, out_dirs: Mapping[str, str], overlay_dir: str | None, threads: int,
) -> None:
    """Maps of every image of ``splits`` for every variant in ``out_dirs``; the keys are the config's ``maps``."""
    from .localize import extract_maps
    from .training.classifier import load_classifier

    torch_device = _torch_setup(threads, device)
    reader = open_layout(root, layout, len(classes))
    ids = list(dict.fromkeys(i for split in splits for i in reader.read_ids(split)))
    labels = load_class_labels(labels_path, ids, len(classes))
    model = load_classifier(checkpoint, len(classes), device=torch_device)
    started = time.time()
    extract_maps(
        model, reader, ids, labels, out_dirs,
        scales=scales, flip=flip, last_k=last_k, feature_temperature=feature_temperature, batch_size=batch_size,
        device=torch_device, overlay_dir=overlay_dir, num_overlays=overlays,
        resize=resize, remainder=remainder, position_embedding=position_embedding, amp=amp, storage_dtype=storage_dtype,
    )
    print(f"extracted maps of {len(ids)} images in {time.time() - started:.1f} s")


def evaluate_seeds_stage(
    *, root: str, layout: str, classes: Sequence[str], labels_path: str, split: str, map_dirs: Mapping[str, str],
    thresholds: Mapping[str, float], miou_convention: str, selection: str, out_files: Mapping[str, Mapping[str, str]], plot_path: str,
) -> dict[str, dict]:
    """Threshold sweep of every variant on ``split``; writes sweep.csv/best.json per variant and one plot.

    best.json holds the chosen threshold (``miou_convention``, ``selection``;
    see metrics.best_threshold) and, beside it, the global maximum and the
    reference's early stop in both mIoU conventions.
    """
    reader = open_layout(root, layout, len(classes))
    ids = reader.read_ids(split)
    labels = load_class_labels(labels_path, ids, len(classes))
    grid = threshold_grid(thresholds["start"], thresholds["stop"], thresholds["step"])
    label_names = ["background", *classes]
    tables, bests = {}, {}
    confusions = sweep_split(map_dirs, ids, reader.load_mask, grid, len(label_names), labels)
    for variant in map_dirs:
        tables[variant] = sweep_table(confusions[variant], grid, label_names)
        best = bests[variant] = best_threshold(tables[variant], convention=miou_convention, selection=selection)
        write_dataframe_csv(out_files[variant]["sweep"], tables[variant])
        write_json(out_files[variant]["best"], best)
        early, top = best["first_non_improving"], best["global_max"]
        print(f"{split} {variant}: mIoU {best['miou']:.4f} at t = {best['threshold']:.2f} ({selection}, {miou_convention}); "
              f"global max {top['miou']:.4f} at t = {top['threshold']:.2f}, reference early stop {early['miou']:.4f} at "
              f"t = {early['threshold']:.2f}; all-labels mIoU {best['miou_all_labels']:.4f}, present-labels {best['miou_present_labels']:.4f}; "
              f"FP {best['fp_reference']:.4f}, FN {best['fn_reference']:.4f} (the reference's)")
    save_figure(plot_path, sweep_figure(tables, bests, title=f"seed mIoU vs background threshold ({split}, {len(ids)} images)"))
    return bests


def sweep_figure(tables: Mapping[str, Any], bests: Mapping[str, dict], title: str, *, errors: bool = True):
    """mIoU against the threshold per variant (the chosen one marked); ``errors``: a second panel below
    with the reference's FP (dashed) and FN (dotted) curves in the variants' colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .metrics import MIOU_COLUMNS

    errors = errors and all("fp_reference" in table for table in tables.values())
    if errors:
        figure, (axes, error_axes) = plt.subplots(2, 1, figsize=(6.5, 6), sharex=True, height_ratios=(3, 2))
    else:
        figure, axes = plt.subplots(figsize=(6.5, 4))
    for variant, table in tables.items():
        curve = table[MIOU_COLUMNS[bests[variant]["convention"]]]
        line, = axes.plot(table["threshold"], curve, label=f"{variant} (best {bests[variant]['miou']:.3f})")
        axes.scatter([bests[variant]["threshold"]], [bests[variant]["miou"]], color=line.get_color(), zorder=3)
        if errors:
            error_axes.plot(table["threshold"], table["fp_reference"], "--", color=line.get_color())
            error_axes.plot(table["threshold"], table["fn_reference"], ":", color=line.get_color())
            error_axes.axvline(bests[variant]["threshold"], color=line.get_color(), alpha=0.3, linewidth=0.8)
    axes.set_ylabel("mIoU")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    if errors:
        error_axes.set_ylabel("FP / FN (reference)")
        error_axes.grid(alpha=0.3)
        error_axes.legend([Line2D([], [], color="grey", linestyle="--"), Line2D([], [], color="grey", linestyle=":")],
                          ["FP", "FN"], fontsize=8)
        error_axes.set_xlabel("background threshold t")
    else:
        axes.set_xlabel("background threshold t")
    plt.close(figure)
    return figure


# ---------------------------------------------------------------- PSA -------

def psa_training_ids(reader, split: str, max_images: int | None) -> list[str]:
    """The images PSA labels are made for and AffinityNet trains on: the first ``max_images`` of the split."""
    ids = reader.read_ids(split)
    return ids[:max_images] if max_images else ids


def psa_labels_stage(
    *, root: str, layout: str, classes: Sequence[str], palette: Sequence | None, split: str, map_dir: str,
    alpha_low: float, alpha_high: float, max_images: int | None, crf: Mapping[str, Any], crf_image: str, workers: int,
    grid_labels: str, out_dir: str, stats_path: str, threads: int,
) -> dict:
    """Confident labels (and, for ``grid_labels`` pooled_scores, the la / ha CRF scores AffinityNet pools)."""
    from .artifacts import make_palette
    from .psa.drivers import make_psa_labels

    reader = open_layout(root, layout, len(classes))
    ids = psa_training_ids(reader, split, max_images)
    started = time.time()
    stats = make_psa_labels(
        reader, ids, map_dir, out_dir, alpha_low=alpha_low, alpha_high=alpha_high, params=crf_params_of(crf),
        scale_setting=crf["spatial_scale"], reference_size=crf["reference_size"], palette=make_palette(palette),
        workers=max(1, min(threads, workers)), image_source=crf_image, keep_scores=grid_labels == "pooled_scores",
    )
    stats["seconds"] = time.time() - started
    write_json(stats_path, stats)
    print(f"PSA labels of {len(ids)} images: {stats}")
    return stats


def train_affinity_stage(
    *, root: str, layout: str, classes: Sequence[str], split: str, max_images: int | None, label_dir: str,
    settings: Mapping[str, Any], seed: int, device: str, checkpoint: str, log_csv: str, resume: str, threads: int,
) -> None:
    """Train AffinityNet (``settings`` = the config's ``affinity`` section, all of which it reads)."""
    from .training.affinity import train_affinity

    torch_device = _torch_setup(threads, device)
    reader = open_layout(root, layout, len(classes))
    ids = psa_training_ids(reader, split, max_images)
    summary = train_affinity(
        reader, ids, label_dir, settings, checkpoint, log_csv, resume,
        device=torch_device, seed=seed, workers=settings["workers"],
    )
    print(f"AffinityNet trained in {summary['seconds']:.1f} s: {summary['final']}")


def read_background(background: float | None, best_json: str | None) -> float:
    """The random walk's background score: pinned in config (psa.background), else the best seed threshold."""
    import json

    if background is not None:
        return float(background)
    with open(best_json) as handle:
        return float(json.load(handle)["threshold"])


def random_walk_stage(
    *, root: str, layout: str, classes: Sequence[str], palette: Sequence | None, splits: Sequence[str], map_dir: str,
    checkpoint: str, best_json: str | None, background: float | None, beta: float, logt: int, walk_scale: float, batch_size: int,
    backbone: str, radius: int, pair_sources: str, device: str, out_dir: str, threads: int,
) -> None:
    """Pseudo masks of ``splits`` (psa.* and the affinity.* keys the walk shares with training)."""
    from .artifacts import make_palette
    from .psa.drivers import random_walk_masks
    from .training.affinity import load_affinity_net

    torch_device = _torch_setup(threads, device)
    reader = open_layout(root, layout, len(classes))
    ids = list(dict.fromkeys(i for split in splits for i in reader.read_ids(split)))
    model = load_affinity_net(checkpoint, backbone, device=torch_device)
    background = read_background(background, best_json)
    print(f"random walk on {len(ids)} images: background {background}, beta {beta}, logt {logt}, "
          f"radius {radius}, image scale {walk_scale}, pair sources {pair_sources}")
    started = time.time()
    random_walk_masks(
        model, reader, ids, map_dir, out_dir, background=background, beta=beta, logt=logt, radius=radius,
        palette=make_palette(palette), device=torch_device, batch_size=batch_size, scale=walk_scale, pair_sources=pair_sources,
    )
    print(f"pseudo masks in {time.time() - started:.1f} s")


def evaluate_masks_stage(
    *, root: str, layout: str, classes: Sequence[str], split: str, mask_dir: str, table_path: str, summary_path: str, plot_path: str,
    title: str,
) -> dict:
    """mIoU (and per-class IoU/precision/recall/FP/FN) of a folder of label PNGs against the ground truth.

    The table has per class the rates over its ground truth (fp_rate, fn_rate) and the reference's
    terms over its union (fp_of_union, fn_of_union); the summary the means and the reference's FP/FN
    (see metrics.scores_from_confusion)."""
    import pandas as pd

    from .artifacts import read_label_png
    from .logs import progress_bar
    from .metrics import dataset_confusion, scores_from_confusion

    reader = open_layout(root, layout, len(classes))
    ids = reader.read_ids(split)
    label_names = ["background", *classes]

    def pairs():
        for image_id in progress_bar(ids, desc=f"evaluate {title}", unit="img", mininterval=2.0):
            gt = reader.load_mask(image_id)
            prediction = read_label_png(os.path.join(mask_dir, f"{image_id}.png"))
            if prediction.shape != gt.shape:
                raise ValueError(f"{os.path.join(mask_dir, image_id + '.png')} is {prediction.shape}, its ground truth {gt.shape}")
            yield gt, prediction

    scores = scores_from_confusion(dataset_confusion(pairs(), len(label_names)))
    per_class = ("iou", "precision", "recall", "fp_rate", "fn_rate", "fp_of_union", "fn_of_union")
    table = pd.DataFrame({"class": label_names, **{name: scores[name] for name in per_class}})
    write_dataframe_csv(table_path, table)
    summary = {
        "miou": float(scores["miou"]), "miou_all_labels": float(scores["miou_all_labels"]),
        "mean_precision": float(np.nanmean(scores["precision"])), "mean_recall": float(np.nanmean(scores["recall"])),
        **{name: float(scores[name]) for name in ERROR_COLUMNS}, "images": len(ids), "split": split,
    }
    write_json(summary_path, summary)
    save_figure(plot_path, per_class_figure(table, f"{title} on {split}: mIoU {summary['miou']:.3f}"))
    print(f"{title} on {split}: mIoU {summary['miou']:.4f}, mean precision {summary['mean_precision']:.4f}, "
          f"mean recall {summary['mean_recall']:.4f}, FP {summary['fp_reference']:.4f}, FN {summary['fn_reference']:.4f} "
          f"(the reference's); FP / ground truth {summary['mean_fp_rate']:.4f}")
    return summary


def per_class_figure(table, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(4.0, 0.35 * len(table) + 2), 3.5))
    axes.bar(table["class"], table["iou"], color="tab:blue")
    axes.set_ylim(0, 1)
    axes.set_ylabel("IoU")
    axes.set_title(title)
    axes.tick_params(axis="x", rotation=60)
    axes.grid(axis="y", alpha=0.3)
    plt.close(figure)
    return figure


# ---------------------------------------------------------------- DeepLab ---

def crf_params_of(settings: Mapping[str, Any]):
    from .crf import CRFParams

    return CRFParams(
        settings["iterations"], settings["gaussian_sxy"], settings["gaussian_compat"],
        settings["bilateral_sxy"], settings["bilateral_srgb"], settings["bilateral_compat"],
    )


def train_deeplab_stage(
    *, root: str, layout: str, classes: Sequence[str], split: str, mask_dir: str | None, settings: Mapping[str, Any],
    seed: int, device: str, checkpoint: str, log_csv: str, resume: str, threads: int, processes: int,
) -> None:
    """Train on the pseudo masks in ``mask_dir``, or on the ground truth when ``mask_dir`` is None (``settings`` =
    the config's ``deeplab`` training keys); ``processes > 1``: data-parallel in that many torchrun processes."""
    if _relaunched_under_torchrun(train_deeplab_stage, locals()):
        return
    from .artifacts import read_label_png, require_per_image_files
    from .training.deeplab import train_deeplab

    torch_device = _distributed_device(threads, device)
    reader = open_layout(root, layout, len(classes))
    ids = reader.read_ids(split)
    if mask_dir is None:
        load_label = reader.load_mask
    else:
        require_per_image_files(mask_dir, ids, ".png", "pseudo masks")

        def load_label(image_id: str) -> np.ndarray:
            return read_label_png(os.path.join(mask_dir, f"{image_id}.png"))

    summary = train_deeplab(
        reader, ids, load_label, len(classes) + 1, settings, checkpoint, log_csv, resume,
        device=torch_device, seed=seed, workers=settings["workers"],
    )
    print(f"DeepLab ({'ground truth' if mask_dir is None else 'pseudo masks'}) trained in {summary['seconds']:.1f} s: {summary['final']}")


def infer_deeplab_stage(
    *, root: str, layout: str, classes: Sequence[str], palette: Sequence | None, split: str, checkpoint: str, head: str,
    scales: Sequence[float], flip_inference: bool, fuse: str, inference_resize: str, crf: Mapping[str, Any],
    device: str, pred_dir: str | None, crf_dir: str | None, threads: int,
) -> None:
    """DeepLab predictions of a split: plain argmax in ``pred_dir`` and/or CRF-refined in ``crf_dir``
    (``head``: deeplab.head, which the checkpoint must have)."""
    from .artifacts import make_palette
    from .segmentation import segment_images
    from .training.deeplab import load_deeplab

    torch_device = _torch_setup(threads, device)
    reader = open_layout(root, layout, len(classes))
    ids = reader.read_ids(split)
    model = load_deeplab(checkpoint, len(classes) + 1, head=head, device=torch_device)
    started = time.time()
    segment_images(
        model, reader, ids, pred_dir, crf_dir, scales=scales, flip=flip_inference, fuse=fuse, crf_params=crf_params_of(crf),
        scale_setting=crf["spatial_scale"], reference_size=crf["reference_size"], palette=make_palette(palette), device=torch_device,
        workers=max(1, threads), resize=inference_resize, normalise_crf_scores=crf["normalise_scores"],
    )
    print(f"segmented {len(ids)} images of {split} in {time.time() - started:.1f} s")


def psa_ablation_stage(
    *, root: str, layout: str, classes: Sequence[str], split: str, map_dir: str, best_json: str | None, background: float | None,
    beta: float, logt: int, walk_scale: float, crf: Mapping[str, Any], colour_sigma: float, backbone: str, radius: int, pair_sources: str,
    learned_summary: str, table_path: str, threads: int,
) -> dict:
    """The README's PSA ablation on ``split``: seeds, seeds + CRF, colour-affinity walk, learned-affinity walk."""
    import json

    import pandas as pd

    from .models.registry import backbone_output_stride
    from .psa.drivers import psa_ablation

    reader = open_layout(root, layout, len(classes))
    ids = reader.read_ids(split)
    results = psa_ablation(
        reader, ids, map_dir, background=read_background(background, best_json), beta=beta, logt=logt, walk_scale=walk_scale,
        params=crf_params_of(crf), scale_setting=crf["spatial_scale"], reference_size=crf["reference_size"],
        radius=radius, stride=backbone_output_stride(backbone), pair_sources=pair_sources, colour_sigma=colour_sigma,
        num_labels=len(classes) + 1, workers=max(1, threads),
    )
    with open(learned_summary) as handle:
        results["random walk, learned affinity (PSA)"] = float(json.load(handle)["miou"])
    table = pd.DataFrame({"method": list(results), "miou": list(results.values())})
    write_dataframe_csv(table_path, table)
    print(table.to_string(index=False))
    return results


def submission_stage(
    *, root: str, layout: str, classes: Sequence[str], palette: Sequence | None, split: str, checkpoint: str, head: str,
    scales: Sequence[float], flip_inference: bool, fuse: str, inference_resize: str, crf: Mapping[str, Any],
    device: str, out_dir: str, tarball: str, threads: int,
) -> None:
    """Test-set predictions (multi-scale + CRF) in the official VOC submission layout, and its tarball."""
    from .artifacts import atomic_directory
    from .segmentation import SUBMISSION_FOLDER, pack_submission

    with atomic_directory(out_dir) as tmp:
        infer_deeplab_stage(
            root=root, layout=layout, classes=classes, palette=palette, split=split, checkpoint=checkpoint, head=head, scales=scales,
            flip_inference=flip_inference, fuse=fuse, inference_resize=inference_resize, crf=crf, device=device,
            pred_dir=None, crf_dir=os.path.join(tmp, SUBMISSION_FOLDER), threads=threads,
        )
    pack_submission(out_dir, tarball)
    print(f"test predictions in {out_dir}, packed as {tarball}")
