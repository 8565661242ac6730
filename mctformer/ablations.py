"""The paper's ablations (Sec. 4.3) as stages: what the ``ablation_*`` rule scripts call.

- :func:`layer_ablation_stage`, Fig. 6: class-to-patch maps summed over the last K = 1..depth blocks,
  all from one extraction pass of the run's classifier (each forward holds every block's attention).
- :func:`heads_table_stage`, Table 7: class scores from the class tokens by avg / max pooling or a
  linear layer (one classifier each; the rules train them).
- :func:`maps_table_stage`, Table 5: every map variant of the model version, Patch-CAM alone included.
- :func:`segmentation_table_stage`, Table 6: DeepLab trained on the pseudo masks of two map variants.

Each writes a CSV, a figure and a markdown section (``<name>.md``) beside the paper's numbers;
:func:`ablations_report_stage` joins the sections into ``ablations.md``. Seed numbers are the sweep's
answer (metrics.best_threshold with seeds.miou_convention / seeds.selection, as evaluate_seeds); FP
and FN are the authors' (evaluation.py: over the label's union, every label in the mean; see
metrics), the ones the paper's Fig. 6 plots, with the per-ground-truth rates beside them in the CSVs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .artifacts import save_figure, write_dataframe_csv, write_text
from .data.labels import load_class_labels
from .data.layout import open_layout
from .metrics import ERROR_COLUMNS, best_threshold, sweep_image, sweep_table, threshold_grid

# PASCAL VOC 2012 numbers of the paper (mIoU, %), as printed; keyed by (model version, our map variant).
# Our *_feature_refined variants and V2's attention / Patch-CAM alone have no row (TS-CAM*'s 41.3 in
# Table 5 is a ReLU on the Patch-CAM of a one-class-token ViT, another model).
PAPER_MAPS = {  # Table 5: seeds on VOC train
    ("v1", "attention"): ("MCTformer-V1 (Attention)", 47.2),
    ("v1", "attention_refined"): ("MCTformer-V1 (Attention + PatchAffinity)", 55.2),
    ("v2", "fused"): ("MCTformer-V2 (Attention + PatchCAM)", 58.2),
    ("v2", "fused_refined"): ("MCTformer-V2 (Attention + PatchCAM + PatchAffinity)", 61.7),
}
PAPER_SEGMENTATION = {  # Table 6: DeepLab on VOC val
    ("v1", "attention"): ("MCTformer-V1 (Attention)", 55.6),
    ("v1", "attention_refined"): ("MCTformer-V1 (Attention + PatchAffinity)", 58.8),
    ("v2", "fused"): ("MCTformer-V2 (Attention + PatchCAM)", 61.1),
    ("v2", "fused_refined"): ("MCTformer-V2 (Attention + PatchCAM + PatchAffinity)", 62.6),
}
PAPER_HEADS = {"fc": ("Fully-connected", 41.5), "max": ("Max-pooling", 26.8), "avg": ("Average-pooling", 47.2)}  # Table 7: V1 attention, VOC train
# Fig. 6 (V1 attention, VOC train): the text prints K = 3 only ("mIoU of 47.2%"); the plotted points are not printed.
PAPER_LAYERS = {3: 47.2}

# The columns of a seed row: the sweep's answer at its threshold (see metrics.best_threshold).
SEED_COLUMNS = ("threshold", "miou", "miou_all_labels", "mean_precision", "mean_recall", *ERROR_COLUMNS)


def _read_json(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def seed_row(best: Mapping[str, Any]) -> dict[str, float]:
    """The seed columns of one best.json (or best_threshold answer)."""
    return {column: float(best[column]) for column in SEED_COLUMNS}


def _percent(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def _paper_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(row) + " |" for row in rows]]


def _seed_split_cells(table: pd.DataFrame, key_column: str, key: Any, splits: Sequence[str]) -> list[str]:
    """mIoU / FP / FN (%) and the threshold of one row key on each split."""
    cells = []
    for split in splits:
        row = table[(table[key_column] == key) & (table["split"] == split)].iloc[0]
        cells += [f"{_percent(row['miou'])} (t={row['threshold']:.2f})", _percent(row["fp_reference"]), _percent(row["fn_reference"])]
    return cells


def _split_header(splits: Sequence[str]) -> list[str]:
    return [f"{name} {split}" for split in splits for name in ("mIoU", "FP", "FN")]


def _figure(columns: int = 1, width: float = 4.5, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(width * columns, height), squeeze=False)
    return plt, figure, axes[0]


def _bars_beside_paper(plt, figure, axes, names: Sequence[str], ours: Sequence[float], paper: Sequence[float | None],
                       ours_label: str, paper_label: str, ylabel: str, title: str) -> None:
    positions = np.arange(len(names))
    axes.bar(positions - 0.2, [100 * value for value in ours], 0.4, label=ours_label)
    axes.bar(positions + 0.2, [np.nan if value is None else value for value in paper], 0.4, label=paper_label)
    axes.set_xticks(positions, names, rotation=20, fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()


# ------------------------------------------------------------ Fig. 6 --------

def layer_ablation_stage(
    *, root: str, layout: str, classes: Sequence[str], labels_path: str, checkpoint: str, splits: Sequence[str], last_k: int,
    scales: Sequence[float], flip: bool, batch_size: int, resize: str, remainder: str, position_embedding: str, amp: bool,
    storage_dtype: str, thresholds: Mapping[str, float], miou_convention: str, selection: str, device: str,
    table_path: str, sweeps_path: str, plot_path: str, section_path: str, threads: int,
) -> pd.DataFrame:
    """Fig. 6: seeds from the class-to-patch attention over the last K blocks, for every K, on every split.

    One pass over the images: each batch's forwards give the maps of every K
    (localize.multiscale_layer_maps), which are normalised and rounded to
    ``storage_dtype`` as extract_maps stores them, then swept at once, so the
    row K = maps.last_k (``last_k``, marked) is the run's ``attention`` seed.
    """
    import torch

    from .data.layout import batches_of_equal_size
    from .data.transforms import normalize_image
    from .localize import minmax_normalize, multiscale_layer_maps, resolve_device
    from .logs import progress_bar
    from .training.classifier import load_classifier
    from .training.common import set_threads

    set_threads(threads)
    torch_device = resolve_device(device)
    reader = open_layout(root, layout, len(classes))
    split_ids = {split: reader.read_ids(split) for split in splits}
    ids = list(dict.fromkeys(i for split in splits for i in split_ids[split]))
    id_sets = {split: set(split_ids[split]) for split in splits}
    membership = {image_id: [split for split in splits if image_id in id_sets[split]] for image_id in ids}
    labels = load_class_labels(labels_path, ids, len(classes))
    model = load_classifier(checkpoint, len(classes), device=torch_device).eval()
    depths = list(range(1, len(model.blocks) + 1))
    grid = threshold_grid(thresholds["start"], thresholds["stop"], thresholds["step"])
    label_names = ["background", *classes]
    num_labels = len(label_names)
    confusions = {(split, depth): np.zeros((len(grid), num_labels, num_labels), dtype=np.int64) for split in splits for depth in depths}
    started = time.time()
    with progress_bar(total=len(ids), desc="maps of every K", unit="img", mininterval=2.0) as progress:
        for batch_ids in batches_of_equal_size(reader, ids, batch_size):
            pictures = [reader.load_image(i) for i in batch_ids]
            images = torch.stack([normalize_image(p) for p in pictures]).to(torch_device)
            multi_hot = np.stack([np.asarray(labels[i]) > 0 for i in batch_ids])
            summed = multiscale_layer_maps(
                model, images, torch.from_numpy(multi_hot), depths, scales=scales, flip=flip, resize=resize, remainder=remainder,
                position_embedding=position_embedding, amp=amp, pictures=pictures,
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
                         "paper_miou": PAPER_LAYERS.get(depth, np.nan)})
            sweeps.append(sweep.assign(split=split, last_k=depth))
            print(f"{split} K = {depth}: mIoU {best['miou']:.4f} at t = {best['threshold']:.2f}, "
                  f"FP {best['fp_reference']:.4f}, FN {best['fn_reference']:.4f}")
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    write_dataframe_csv(sweeps_path, pd.concat(sweeps, ignore_index=True)[["split", "last_k", *sweeps[0].columns[:-2]]])
    save_figure(plot_path, layers_figure(table, splits, last_k))
    write_text(section_path, "\n".join(layers_section(table, splits, last_k, plot_path, section_path)) + "\n")
    return table


def layers_figure(table: pd.DataFrame, splits: Sequence[str], last_k: int):
    """Like the paper's Fig. 6: mIoU, FP and FN (%) against K, one panel per split; the paper's K = 3 mIoU as a star."""
    plt, figure, axes = _figure(len(splits))
    for panel, split in zip(axes, splits):
        rows = table[table["split"] == split]
        for column, label, style in (("miou", "mIoU", "o-"), ("fp_reference", "FP", "s--"), ("fn_reference", "FN", "^:")):
            panel.plot(rows["last_k"], 100 * rows[column], style, label=label)
        panel.plot(list(PAPER_LAYERS), list(PAPER_LAYERS.values()), "k*", markersize=9, label="paper mIoU (VOC train)")
        panel.axvline(last_k, color="grey", alpha=0.4, linewidth=0.8)
        panel.set_xticks(rows["last_k"])
        panel.set_xlabel("K (last blocks summed)")
        panel.set_ylabel("%")
        panel.set_title(f"class-to-patch attention, {split}", fontsize=9)
        panel.grid(alpha=0.3)
        panel.legend(fontsize=7)
    figure.tight_layout()
    plt.close(figure)
    return figure


def _relative(path: str, section_path: str) -> str:
    import os

    return os.path.relpath(path, os.path.dirname(section_path))


def layers_section(table: pd.DataFrame, splits: Sequence[str], last_k: int, plot_path: str, section_path: str) -> list[str]:
    rows = []
    for depth in sorted(table["last_k"].unique()):
        name = f"{depth}" + (" (maps.last_k)" if depth == last_k else "")
        rows.append([name, *_seed_split_cells(table, "last_k", depth, splits), _paper_cell(PAPER_LAYERS.get(int(depth)))])
    return [
        "## Layers fused (Fig. 6)", "",
        "Class-to-patch attention summed over the last K blocks, all K from one extraction pass of the run's classifier; "
        "seed mIoU at the best background threshold t, FP and FN there (the authors' evaluation.py; the paper's Fig. 6 follows "
        "the same definitions), %. Paper: MCTformer-V1 on VOC train; its text prints only K = 3 (47.2), the other points of the "
        "figure are not printed and are left out.", "",
        *_markdown_table(["K", *_split_header(splits), "paper mIoU"], rows), "",
        f"![layers]({_relative(plot_path, section_path)})", "",
    ]


# ------------------------------------------------------------ Table 7 -------

def heads_table_stage(
    *, version: str, poolings: Sequence[str], config_pooling: str, seed_bests: Mapping[str, Mapping[str, str]],
    table_path: str, plot_path: str, section_path: str,
) -> pd.DataFrame:
    """Table 7: the ``attention`` seeds of one classifier per class-token pooling; ``seed_bests``
    {pooling: {split: best.json}} (the config's pooling: the run's own classifier)."""
    splits = list(next(iter(seed_bests.values())))
    rows = []
    for pooling in poolings:
        label, paper = PAPER_HEADS[pooling]
        for split in splits:
            rows.append({"pooling": pooling, "head": label, "split": split, "run_classifier": pooling == config_pooling,
                         **seed_row(_read_json(seed_bests[pooling][split])), "paper_miou": paper})
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    first = table[table["split"] == splits[0]]
    plt, figure, (axes,) = _figure(width=5)
    _bars_beside_paper(plt, figure, axes, [PAPER_HEADS[p][0] for p in poolings], first["miou"].tolist(),
                       [PAPER_HEADS[p][1] for p in poolings], f"ours ({splits[0]})", "paper (V1, VOC train)",
                       "attention seed mIoU (%)", f"class scores from the class tokens (Table 7), MCTformer-{version.upper()}")
    save_figure(plot_path, figure)
    plt.close(figure)
    section_rows = [[f"{PAPER_HEADS[p][0]} ({p})" + (" (the run's classifier)" if p == config_pooling else ""),
                     *_seed_split_cells(table, "pooling", p, splits), _paper_cell(PAPER_HEADS[p][1])] for p in poolings]
    lines = [
        "## Class-token pooling (Table 7)", "",
        f"MCTformer-{version.upper()} trained once per way of turning the class tokens into class scores "
        f"(classifier.token_pooling), everything else as the run; seeds from its class-to-patch attention at the best t, "
        f"FP and FN there, %. The config's pooling ({config_pooling}) is the run's own classifier, not retrained: same settings "
        "and seed, so a retraining would repeat it. Paper: MCTformer-V1 attention on VOC train.", "",
        *_markdown_table(["class scores", *_split_header(splits), "paper mIoU"], section_rows), "",
        f"![heads]({_relative(plot_path, section_path)})", "",
    ]
    write_text(section_path, "\n".join(lines) + "\n")
    return table


# ------------------------------------------------------------ Table 5 -------

def maps_table_stage(
    *, version: str, seed_bests: Mapping[str, Mapping[str, str]], table_path: str, plot_path: str, section_path: str,
) -> pd.DataFrame:
    """Table 5: every map variant of the run's classifier; ``seed_bests`` {variant: {split: best.json}}."""
    variants = list(seed_bests)
    splits = list(next(iter(seed_bests.values())))
    rows = []
    for variant in variants:
        label, paper = PAPER_MAPS.get((version, variant), ("-", None))
        for split in splits:
            rows.append({"variant": variant, "paper_row": label, "split": split, **seed_row(_read_json(seed_bests[variant][split])),
                         "paper_miou": np.nan if paper is None else paper})
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    first = table[table["split"] == splits[0]]
    plt, figure, (axes,) = _figure(width=6)
    _bars_beside_paper(plt, figure, axes, variants, first["miou"].tolist(), [PAPER_MAPS.get((version, v), ("", None))[1] for v in variants],
                       f"ours ({splits[0]})", "paper (VOC train)", "seed mIoU (%)", f"localization maps (Table 5), MCTformer-{version.upper()}")
    save_figure(plot_path, figure)
    plt.close(figure)
    section_rows = [[variant, PAPER_MAPS.get((version, variant), ("-", None))[0], *_seed_split_cells(table, "variant", variant, splits),
                     _paper_cell(PAPER_MAPS.get((version, variant), ("", None))[1])] for variant in variants]
    lines = [
        "## Localization maps (Table 5)", "",
        f"Every map variant of the run's MCTformer-{version.upper()}: seed mIoU at the best t, FP and FN there, %. "
        "patchcam is V2's Patch-CAM alone (ReLU of the conv head's maps, no attention; the paper shows it in Fig. 5f but prints "
        "no number); `*_feature_refined` is our refinement by the final patch tokens' affinity, in place of the paper's "
        "patch affinity (`*_refined`). Paper: VOC train.", "",
        *_markdown_table(["variant", "paper's row", *_split_header(splits), "paper mIoU"], section_rows), "",
        f"![maps]({_relative(plot_path, section_path)})", "",
    ]
    write_text(section_path, "\n".join(lines) + "\n")
    return table


# ------------------------------------------------------------ Table 6 -------

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
        label, paper = PAPER_SEGMENTATION.get((version, variant), ("-", None))
        row = {"variant": variant, "paper_row": label, "run_chain": variant == seed_variant,
               "seed_miou": float(_read_json(seed_bests[variant])["miou"])}
        for split, path in mask_summaries[variant].items():
            row[f"pseudo_miou_{split}"] = float(_read_json(path)["miou"])
        for folder, suffix in (("pred", ""), ("pred_crf", "_crf")):
            scores = _read_json(deeplab_summaries[variant][folder])
            row[f"deeplab_miou{suffix}"] = float(scores["miou"])
            row[f"deeplab_fp{suffix}"] = float(scores["fp_reference"])
            row[f"deeplab_fn{suffix}"] = float(scores["fn_reference"])
        row["paper_miou"] = np.nan if paper is None else paper
        rows.append(row)
    table = pd.DataFrame(rows)
    write_dataframe_csv(table_path, table)
    plt, figure, (axes,) = _figure(width=5)
    _bars_beside_paper(plt, figure, axes, variants, table["deeplab_miou_crf"].tolist(),
                       [PAPER_SEGMENTATION.get((version, v), ("", None))[1] for v in variants], f"ours (+ CRF, {deeplab_split})",
                       "paper (VOC val)", "DeepLab mIoU (%)", f"segmentation from two map variants (Table 6), MCTformer-{version.upper()}")
    save_figure(plot_path, figure)
    plt.close(figure)
    mask_splits = list(next(iter(mask_summaries.values())))
    section_rows = []
    for _, row in table.iterrows():
        name = row["variant"] + (" (the run's chain)" if row["run_chain"] else "")
        section_rows.append([
            name, row["paper_row"], _percent(row["seed_miou"]), *[_percent(row[f"pseudo_miou_{split}"]) for split in mask_splits],
            _percent(row["deeplab_miou"]), _percent(row["deeplab_miou_crf"]), _percent(row["deeplab_fp_crf"]),
            _percent(row["deeplab_fn_crf"]), _paper_cell(None if np.isnan(row["paper_miou"]) else row["paper_miou"]),
        ])
    lines = [
        "## Segmentation from two map variants (Table 6)", "",
        f"Each variant's maps through the whole PSA chain (confident labels, AffinityNet, random walk at its own best "
        f"threshold) and DeepLab, evaluated on {deeplab_split}; mIoU, FP and FN (with CRF), %. The psa.seed_variant "
        f"({seed_variant}) is the run's own chain. Paper: DeepLab on VOC val (with CRF).", "",
        *_markdown_table(["variant", "paper's row", f"seeds {seed_split}", *[f"pseudo masks {s}" for s in mask_splits], "DeepLab", "+ CRF",
                          "FP (+ CRF)", "FN (+ CRF)", "paper mIoU"], section_rows), "",
        f"![segmentation]({_relative(plot_path, section_path)})", "",
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


# ------------------------------------------------------------ replicates ----
# With `replicates: N > 1` every replicate runs each ablation (its tables under its own ablations/); these functions
# join the N tables of one ablation into mean, sample std and the t-interval of every number (replicates.mean_interval).

# Each ablation's table: the columns that name a row (equal, in the same order, in every replicate's table), the
# column whose values are the section's rows (and how a row is named), the flag that marks the run's own row, the
# section's title and what the paper's column is.
REPLICATED_ABLATIONS = {
    "layers": {"keys": ("split", "last_k"), "row": "last_k", "row_header": "K", "row_name": "K = {}",
               "mark": ("config_last_k", " (maps.last_k)"), "title": "Layers fused (Fig. 6)",
               "paper": "MCTformer-V1 on VOC train; its text prints only K = 3 (47.2)"},
    "heads": {"keys": ("pooling", "split"), "row": "pooling", "row_header": "class scores", "row_name": "{}",
              "mark": ("run_classifier", " (the run's classifier)"), "title": "Class-token pooling (Table 7)",
              "paper": "MCTformer-V1 attention on VOC train"},
    "maps": {"keys": ("variant", "split"), "row": "variant", "row_header": "variant", "row_name": "{}", "mark": None,
             "title": "Localization maps (Table 5)", "paper": "VOC train"},
    "segmentation": {"keys": ("variant",), "row": "variant", "row_header": "variant", "row_name": "{}",
                     "mark": ("run_chain", " (the run's chain)"), "title": "Segmentation from two map variants (Table 6)",
                     "paper": "DeepLab on VOC val, with CRF"},
}


def _is_measured(column: str, values: pd.Series) -> bool:
    """A number the replicates measure (not a flag, a name or the paper's value)."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and not column.startswith("paper")


def aggregate_ablation_tables(tables: Sequence[pd.DataFrame], *, keys: Sequence[str], confidence: float) -> pd.DataFrame:
    """One row per row of the replicates' tables (``tables[i]``: replicate i's, every one with the same ``keys`` in the
    same order): the keys, ``n``, every measured column as ``<column>_mean``, ``_std``, ``_ci_low``, ``_ci_high`` and
    ``_values`` (a list in replicate order; see replicates.mean_interval), and the rest (flags, names, the paper's
    numbers), which must be the same in every replicate, as they are."""
    from .replicates import mean_interval

    if not tables:
        raise ValueError("no replicate tables to aggregate")
    tables = [table.reset_index(drop=True) for table in tables]
    first = tables[0]
    for index, table in enumerate(tables[1:], start=1):
        if list(table.columns) != list(first.columns) or not table[list(keys)].equals(first[list(keys)]):
            raise ValueError(f"replicate {index}'s table has other rows or columns than replicate 0's (keys {list(keys)})")
        for column in first.columns:
            if not _is_measured(column, first[column]) and not table[column].equals(first[column]):
                raise ValueError(f"replicate {index}'s table differs from replicate 0's in {column!r}, which is no measurement")
    rows = []
    for position in range(len(first)):
        row: dict[str, Any] = {}
        for column in first.columns:
            if column in keys or not _is_measured(column, first[column]):
                row[column] = first.at[position, column]
                continue
            values = [float(table.at[position, column]) for table in tables]
            mean = std = low = high = np.nan  # a NaN cell in any replicate (an undefined rate) leaves no mean
            if np.all(np.isfinite(values)):
                interval = mean_interval(values, confidence=confidence)
                mean = interval["mean"]
                if interval["std"] is not None:
                    std, (low, high) = interval["std"], interval["ci"]
            row.update({f"{column}_mean": mean, f"{column}_std": std, f"{column}_ci_low": low, f"{column}_ci_high": high,
                        f"{column}_values": values})
        row["n"] = len(tables)
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(row: Mapping[str, Any], column: str) -> str:
    mean, std = row[f"{column}_mean"], row[f"{column}_std"]
    return "-" if not np.isfinite(mean) else f"{100 * mean:.1f} ± {_percent(std)}"


def _replicated_columns(ablation: str, table: pd.DataFrame) -> list[tuple[str, str, str | None]]:
    """(header, measured column, split or None) of an ablation's section, in the order of its single-run section."""
    if ablation == "segmentation":
        pseudo = [column.removesuffix("_mean") for column in table.columns if column.startswith("pseudo_miou_") and column.endswith("_mean")]
        return [("seeds", "seed_miou", None), *[(f"pseudo masks {column.removeprefix('pseudo_miou_')}", column, None) for column in pseudo],
                ("DeepLab", "deeplab_miou", None), ("+ CRF", "deeplab_miou_crf", None), ("FP (+ CRF)", "deeplab_fp_crf", None),
                ("FN (+ CRF)", "deeplab_fn_crf", None)]
    splits = list(dict.fromkeys(table["split"]))
    return [(f"{name} {split}", column, split) for split in splits
            for name, column in (("mIoU", "miou"), ("FP", "fp_reference"), ("FN", "fn_reference"))]


def replicated_ablation_section(ablation: str, table: pd.DataFrame, *, seeds: Sequence[int], confidence: float, plot: str) -> list[str]:
    """The report section of an ablation over replicates: mean ± std (%) of each number of its single-run section."""
    spec = REPLICATED_ABLATIONS[ablation]
    columns = _replicated_columns(ablation, table)
    rows = []
    for name in dict.fromkeys(table[spec["row"]]):
        of_row = table[table[spec["row"]] == name]
        cells = []
        for _, column, split in columns:
            cells.append(_mean_std((of_row if split is None else of_row[of_row["split"] == split]).iloc[0], column))
        paper = of_row["paper_miou"].iloc[0]
        marked = spec["mark"] is not None and bool(of_row[spec["mark"][0]].iloc[0])
        rows.append([spec["row_name"].format(name) + (spec["mark"][1] if marked else ""), *cells,
                     _paper_cell(None if pd.isna(paper) else float(paper))])
    return [
        f"## {spec['title']}, {len(seeds)} replicates", "",
        f"Every replicate (seeds {', '.join(str(seed) for seed in seeds)}) runs the ablation on its own classifier and chain; "
        f"mean ± sample standard deviation over the replicates, %. `{ablation}.csv` beside this file has every number's mean, "
        f"std, {100 * confidence:.0f} % t-interval and the replicates' values; each replicate's own table and section are under its "
        f"ablations/ folder. Paper: {spec['paper']}.", "",
        *_markdown_table([spec["row_header"], *[header for header, _, _ in columns], "paper mIoU"], rows), "",
        f"![{ablation}]({plot})", "",
    ]


def replicated_ablation_strips(ablation: str, table: pd.DataFrame) -> pd.DataFrame:
    """replicates.strip_plot's table of an ablation's mIoU columns: a panel per split (or stage), a point per row, in %."""
    spec = REPLICATED_ABLATIONS[ablation]
    records = []
    for header, column, split in _replicated_columns(ablation, table):
        if column not in ("miou", "seed_miou", "deeplab_miou_crf") and not column.startswith("pseudo_miou_"):
            continue  # the figure shows the mIoUs (DeepLab's with CRF, as the paper's Table 6); the section has the rest
        rows = table if split is None else table[table["split"] == split]
        for _, row in rows.iterrows():
            # the paper's number is DeepLab's (Table 6) or the seeds' on VOC train (the first split's panel)
            paper_here = column == "deeplab_miou_crf" if ablation == "segmentation" else split == table["split"].iloc[0]
            records.append({
                "stage": "DeepLab + CRF" if column == "deeplab_miou_crf" else header, "metric": spec["row_name"].format(row[spec["row"]]),
                "values": [100 * value for value in row[f"{column}_values"]], "mean": 100 * row[f"{column}_mean"],
                "std": None if pd.isna(row[f"{column}_std"]) else 100 * row[f"{column}_std"],
                "paper": row["paper_miou"] if paper_here and not pd.isna(row["paper_miou"]) else None,
            })
    return pd.DataFrame(records, columns=["stage", "metric", "values", "mean", "std", "paper"])


def ablation_replicates_stage(
    *, ablation: str, seeds: Sequence[int], tables: Sequence[str], table_path: str, plot_path: str, section_path: str,
) -> pd.DataFrame:
    """One ablation over the replicates: ``tables[i]`` is the CSV of the replicate with seed ``seeds[i]``; writes the
    aggregate CSV (:func:`aggregate_ablation_tables`, values ';'-joined), a strip plot of its mIoUs and its section."""
    from .replicates import CONFIDENCE, strip_plot

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
    section = replicated_ablation_section(ablation, table, seeds=seeds, confidence=CONFIDENCE, plot=_relative(plot_path, section_path))
    write_text(section_path, "\n".join(section) + "\n")
    print(f"{ablation}: {len(table)} rows over {len(seeds)} replicates (seeds {list(seeds)})")
    return table
