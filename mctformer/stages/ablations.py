"""The stages of workflow/rules/ablations.smk: the paper's ablations (Sec. 4.3).

- :func:`layer_ablation_stage`, Fig. 6: class-to-patch maps summed over the last K = 1..depth blocks,
  all from one extraction pass of the run's classifier (each forward holds every block's attention).
- :func:`heads_table_stage`, Table 7: class scores from the class tokens by avg / max pooling or a
  linear layer (one classifier each; the rules train them).
- :func:`maps_table_stage`, Table 5: every map variant of the model version, Patch-CAM alone included.
- :func:`segmentation_table_stage`, Table 6: DeepLab trained on the pseudo masks of two map variants.

Each writes a CSV, a figure and a markdown section (``<name>.md``) beside the paper's numbers
(mctformer.ablation_tables); :func:`ablations_report_stage` joins the sections into ``ablations.md``, and
:func:`ablation_replicates_stage` joins one ablation's tables of every replicate.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..ablation_tables import (
    REPLICATED_ABLATIONS,
    aggregate_ablation_tables,
    layers_section,
    markdown_table,
    paper_cell,
    percent,
    relative_link,
    replicated_ablation_section,
    replicated_ablation_strips,
    seed_row,
    seed_split_cells,
    split_header,
)
from ..artifacts import read_json, save_figure, write_dataframe_csv, write_text
from ..data.labels import load_class_labels
from ..data.layout import DatasetRef
from ..metrics import best_threshold, sweep_image, sweep_table, threshold_grid
from ..paper import HEADS, LAYERS, SEEDS, SEGMENTATION
from ..plots import bars_beside_paper, layers_figure, strip_plot
from ..settings import MapGeometry, Placement  # the rule script builds it and DatasetRef from its config keys (their .take)


def layer_ablation_stage(
    *, dataset: DatasetRef, labels_path: str, checkpoint: str, version: str, splits: Sequence[str], last_k: int, scales: Sequence[float], flip: bool,
    batch_size: int, geometry: MapGeometry, storage_dtype: str, thresholds: Mapping[str, float], miou_convention: str, selection: str,
    placement: Placement, table_path: str, sweeps_path: str, plot_path: str, section_path: str, threads: int,
) -> pd.DataFrame:
    """Fig. 6: seeds from the class-to-patch attention over the last K blocks, for every K, on every split.

    One pass over the images: each batch's forwards give the maps of every K
    (localize.multiscale_layer_maps), which are normalised and rounded to
    ``storage_dtype`` as extract_maps stores them, then swept at once, so the
    row K = maps.last_k (``last_k``, marked) is the run's ``attention`` seed.
    """
    import torch

    from ..localize import image_batches, minmax_normalize, multiscale_layer_maps
    from ..logs import progress_bar
    from ..training.classifier import load_classifier
    from ..training.common import torch_setup

    classes = dataset.classes
    torch_device = torch_setup(threads, placement, amp_dtype="float16" if geometry.amp else None)
    reader = dataset.open()
    split_ids = {split: reader.read_ids(split) for split in splits}
    ids = list(dict.fromkeys(i for split in splits for i in split_ids[split]))
    id_sets = {split: set(split_ids[split]) for split in splits}
    membership = {image_id: [split for split in splits if image_id in id_sets[split]] for image_id in ids}
    labels = load_class_labels(labels_path, ids, len(classes))
    model = load_classifier(checkpoint, len(classes), device=torch_device, version=version, class_names=classes).eval()
    depths = list(range(1, len(model.blocks) + 1))
    grid = threshold_grid(thresholds["start"], thresholds["stop"], thresholds["step"])
    label_names = ["background", *classes]
    num_labels = len(label_names)
    confusions = {(split, depth): np.zeros((len(grid), num_labels, num_labels), dtype=np.int64) for split in splits for depth in depths}
    started = time.time()
    with progress_bar(total=len(ids), desc="maps of every K", unit="img", mininterval=2.0) as progress:
        for batch_ids, pictures, images, multi_hot, _ in image_batches(reader, ids, labels, batch_size, torch_device, 0):  # decoded here
            summed = multiscale_layer_maps(
                model, images, torch.from_numpy(multi_hot), depths, scales=scales, flip=flip, resize=geometry.resize,
                remainder=geometry.remainder, position_embedding=geometry.position_embedding, amp=geometry.amp, pictures=pictures,
            )
            for index, image_id in enumerate(batch_ids):
                present = np.flatnonzero(multi_hot[index]) + 1
                gt = reader.load_mask(image_id)
                for depth in depths:
                    # the round trip through the stored dtype, as the main sweep reads extract_maps' files
                    maps = minmax_normalize(summed[depth][index]).cpu().numpy().astype(storage_dtype).astype(np.float32)
                    confusion = sweep_image(present, maps, gt, grid, num_labels)
                    for split in membership[image_id]:
                        confusions[split, depth] += confusion
            progress.update(len(batch_ids))
    print(f"maps of K = 1..{depths[-1]} for {len(ids)} images in {time.time() - started:.1f} s")

    rows, sweeps = [], []
    for split in splits:
        for depth in depths:
            sweep = sweep_table(confusions[split, depth], grid, label_names)
            best = best_threshold(sweep, convention=miou_convention, selection=selection)
            rows.append({"split": split, "last_k": depth, "config_last_k": depth == last_k, **seed_row(best),
                         "paper_miou": LAYERS.get(depth, np.nan)})
            sweeps.append(sweep.assign(split=split, last_k=depth))
            print(f"{split} K = {depth}: mIoU {best['miou']:.4f} at t = {best['threshold']:.2f}, "
                  f"FP {best['fp_reference']:.4f}, FN {best['fn_reference']:.4f}")
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    write_dataframe_csv(sweeps_path, pd.concat(sweeps, ignore_index=True)[["split", "last_k", *sweeps[0].columns[:-2]]])
    save_figure(plot_path, layers_figure(table, splits, last_k))
    write_text(section_path, "\n".join(layers_section(table, splits, last_k, plot_path, section_path)) + "\n")
    return table


def heads_table_stage(
    *, version: str, poolings: Sequence[str], config_pooling: str, seed_bests: Mapping[str, Mapping[str, str]],
    table_path: str, plot_path: str, section_path: str,
) -> pd.DataFrame:
    """Table 7: the ``attention`` seeds of one classifier per class-token pooling; ``seed_bests``
    {pooling: {split: best.json}} (the config's pooling: the run's own classifier)."""
    splits = list(next(iter(seed_bests.values())))
    rows = []
    for pooling in poolings:
        label, paper = HEADS[pooling]
        for split in splits:
            rows.append({"pooling": pooling, "head": label, "split": split, "run_classifier": pooling == config_pooling,
                         **seed_row(read_json(seed_bests[pooling][split])), "paper_miou": paper})
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    first = table[table["split"] == splits[0]]
    bars_beside_paper(plot_path, [HEADS[p][0] for p in poolings], first["miou"].tolist(), [HEADS[p][1] for p in poolings],
                      ours_label=f"ours ({splits[0]})", paper_label="paper (V1, VOC train)", ylabel="attention seed mIoU (%)",
                      title=f"class scores from the class tokens (Table 7), MCTformer-{version.upper()}", width=5)
    section_rows = [[f"{HEADS[p][0]} ({p})" + (" (the run's classifier)" if p == config_pooling else ""),
                     *seed_split_cells(table, "pooling", p, splits), paper_cell(HEADS[p][1])] for p in poolings]
    lines = [
        "## Class-token pooling (Table 7)", "",
        f"MCTformer-{version.upper()} trained once per way of turning the class tokens into class scores "
        f"(classifier.token_pooling), everything else as the run; seeds from its class-to-patch attention at the best t, "
        f"FP and FN there, %. The config's pooling ({config_pooling}) is the run's own classifier, not retrained: same settings "
        "and seed, so a retraining would repeat it. Paper: MCTformer-V1 attention on VOC train.", "",
        *markdown_table(["class scores", *split_header(splits), "paper mIoU"], section_rows), "",
        f"![heads]({relative_link(plot_path, section_path)})", "",
    ]
    write_text(section_path, "\n".join(lines) + "\n")
    return table


def maps_table_stage(
    *, version: str, seed_bests: Mapping[str, Mapping[str, str]], table_path: str, plot_path: str, section_path: str,
) -> pd.DataFrame:
    """Table 5: every map variant of the run's classifier; ``seed_bests`` {variant: {split: best.json}}."""
    variants = list(seed_bests)
    splits = list(next(iter(seed_bests.values())))
    rows = []
    for variant in variants:
        label, paper = SEEDS.get((version, variant), ("-", None))
        for split in splits:
            rows.append({"variant": variant, "paper_row": label, "split": split, **seed_row(read_json(seed_bests[variant][split])),
                         "paper_miou": np.nan if paper is None else paper})
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    first = table[table["split"] == splits[0]]
    bars_beside_paper(plot_path, variants, first["miou"].tolist(), [SEEDS.get((version, v), ("", None))[1] for v in variants],
                      ours_label=f"ours ({splits[0]})", paper_label="paper (VOC train)", ylabel="seed mIoU (%)",
                      title=f"localization maps (Table 5), MCTformer-{version.upper()}", width=6)
    section_rows = [[variant, SEEDS.get((version, variant), ("-", None))[0], *seed_split_cells(table, "variant", variant, splits),
                     paper_cell(SEEDS.get((version, variant), ("", None))[1])] for variant in variants]
    lines = [
        "## Localization maps (Table 5)", "",
        f"Every map variant of the run's MCTformer-{version.upper()}: seed mIoU at the best t, FP and FN there, %. "
        "patchcam is V2's Patch-CAM alone (ReLU of the conv head's maps, no attention; the paper shows it in Fig. 5f but prints "
        "no number); `*_feature_refined` is our refinement by the final patch tokens' affinity, in place of the paper's "
        "patch affinity (`*_refined`). Paper: VOC train.", "",
        *markdown_table(["variant", "paper's row", *split_header(splits), "paper mIoU"], section_rows), "",
        f"![maps]({relative_link(plot_path, section_path)})", "",
    ]
    write_text(section_path, "\n".join(lines) + "\n")
    return table


def segmentation_table_stage(
    *, version: str, seed_variant: str, seed_split: str, deeplab_split: str, seed_bests: Mapping[str, str],
    mask_summaries: Mapping[str, Mapping[str, str]],
    deeplab_summaries: Mapping[str, Mapping[str, str]], table_path: str, plot_path: str, section_path: str,
) -> pd.DataFrame:
    """Table 6: per map variant, its seeds (``seed_bests`` {variant: best.json} on ``seed_split``), its
    pseudo masks (``mask_summaries`` {variant: {split: eval json}}) and DeepLab trained on them
    (``deeplab_summaries`` {variant: {pred | pred_crf: eval json}}); ``seed_variant`` is the run's own chain."""
    variants = list(deeplab_summaries)
    rows = []
    for variant in variants:
        label, paper = SEGMENTATION.get((version, variant), ("-", None))
        row = {"variant": variant, "paper_row": label, "run_chain": variant == seed_variant,
               "seed_miou": float(read_json(seed_bests[variant])["miou"])}
        for split, path in mask_summaries[variant].items():
            row[f"pseudo_miou_{split}"] = float(read_json(path)["miou"])
        for folder, suffix in (("pred", ""), ("pred_crf", "_crf")):
            scores = read_json(deeplab_summaries[variant][folder])
            row[f"deeplab_miou{suffix}"] = float(scores["miou"])
            row[f"deeplab_fp{suffix}"] = float(scores["fp_reference"])
            row[f"deeplab_fn{suffix}"] = float(scores["fn_reference"])
        row["paper_miou"] = np.nan if paper is None else paper
        rows.append(row)
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    bars_beside_paper(plot_path, variants, table["deeplab_miou_crf"].tolist(), [SEGMENTATION.get((version, v), ("", None))[1] for v in variants],
                      ours_label=f"ours (+ CRF, {deeplab_split})", paper_label="paper (VOC val)", ylabel="DeepLab mIoU (%)",
                      title=f"segmentation from two map variants (Table 6), MCTformer-{version.upper()}", width=5)
    mask_splits = list(next(iter(mask_summaries.values())))
    section_rows = []
    for _, row in table.iterrows():
        name = row["variant"] + (" (the run's chain)" if row["run_chain"] else "")
        section_rows.append([
            name, row["paper_row"], percent(row["seed_miou"]), *[percent(row[f"pseudo_miou_{split}"]) for split in mask_splits],
            percent(row["deeplab_miou"]), percent(row["deeplab_miou_crf"]), percent(row["deeplab_fp_crf"]),
            percent(row["deeplab_fn_crf"]), paper_cell(None if np.isnan(row["paper_miou"]) else row["paper_miou"]),
        ])
    lines = [
        "## Segmentation from two map variants (Table 6)", "",
        f"Each variant's maps through the whole PSA chain (confident labels, AffinityNet, random walk at its own best "
        f"threshold) and DeepLab, evaluated on {deeplab_split}; mIoU, FP and FN (with CRF), %. The psa.seed_variant "
        f"({seed_variant}) is the run's own chain. Paper: DeepLab on VOC val (with CRF).", "",
        *markdown_table(["variant", "paper's row", f"seeds {seed_split}", *[f"pseudo masks {s}" for s in mask_splits], "DeepLab", "+ CRF",
                          "FP (+ CRF)", "FN (+ CRF)", "paper mIoU"], section_rows), "",
        f"![segmentation]({relative_link(plot_path, section_path)})", "",
    ]
    write_text(section_path, "\n".join(lines) + "\n")
    return table


def ablations_report_stage(*, run_name: str, sections: Sequence[str], report_path: str) -> None:
    """ablations.md: the sections of the four ablations, in order, under one title."""
    parts = [f"# Ablations of run {run_name}", "", "The paper's ablations (Sec. 4.3), run on this config; numbers in %.", ""]
    for path in sections:
        with open(path) as handle:
            parts.append(handle.read())
    write_text(report_path, "\n".join(parts))


def ablation_replicates_stage(
    *, ablation: str, seeds: Sequence[int], tables: Sequence[str], table_path: str, plot_path: str, section_path: str,
) -> pd.DataFrame:
    """One ablation over the replicates: ``tables[i]`` is the CSV of the replicate with seed ``seeds[i]``; writes the
    aggregate CSV (:func:`aggregate_ablation_tables`, values ';'-joined), a strip plot of its mIoUs and its section."""
    from ..replicates import CONFIDENCE

    if ablation not in REPLICATED_ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; one of {', '.join(REPLICATED_ABLATIONS)}")
    if len(tables) != len(seeds):
        raise ValueError(f"expected one table per seed, got {len(tables)} tables for seeds {list(seeds)}")
    frames = []
    for path in tables:
        try:
            frames.append(pd.read_csv(path))
        except (OSError, pd.errors.ParserError) as error:
            raise ValueError(f"{path}: cannot read the ablation table: {error}") from error
    try:
        table = aggregate_ablation_tables(frames, keys=REPLICATED_ABLATIONS[ablation]["keys"], confidence=CONFIDENCE)
    except ValueError as error:  # "replicate i" is tables[i]: name the files
        raise ValueError(f"{error}; the replicates' tables, in order: {', '.join(tables)}") from error
    on_disk = table.copy()
    for column in [column for column in on_disk.columns if column.endswith("_values")]:
        on_disk[column] = [";".join(f"{value:.6g}" for value in values) for values in on_disk[column]]
    write_dataframe_csv(table_path, on_disk)
    strip_plot(plot_path, replicated_ablation_strips(ablation, table), seeds=seeds)
    section = replicated_ablation_section(ablation, table, seeds=seeds, confidence=CONFIDENCE, plot=relative_link(plot_path, section_path))
    write_text(section_path, "\n".join(section) + "\n")
    print(f"{ablation}: {len(table)} rows over {len(seeds)} replicates (seeds {list(seeds)})")
    return table
