"""Every figure of the pipeline: the one module that imports matplotlib (headless, the Agg backend).

The functions draw from tables and numbers the stages computed; they return the figure
(artifacts.save_figure writes it) or, where they say so, write the PNG themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")  # no display on the cluster nodes; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .artifacts import save_figure, voc_palette  # noqa: E402
from .data.voc import IGNORE  # noqa: E402
from .metrics import MIOU_COLUMNS  # noqa: E402
from .paper import LAYERS  # noqa: E402


def sweep_figure(tables: Mapping[str, Any], bests: Mapping[str, dict], title: str, *, errors: bool = True):
    """mIoU against the threshold per variant (the chosen one marked); ``errors``: a second panel below
    with the reference's FP (dashed) and FN (dotted) curves in the variants' colours."""
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


def per_class_figure(table, title: str):
    """IoU per class (a bar per row of ``table``: its ``class`` and ``iou`` columns)."""
    figure, axes = plt.subplots(figsize=(max(4.0, 0.35 * len(table) + 2), 3.5))
    axes.bar(table["class"], table["iou"], color="tab:blue")
    axes.set_ylim(0, 1)
    axes.set_ylabel("IoU")
    axes.set_title(title)
    axes.tick_params(axis="x", rotation=60)
    axes.grid(axis="y", alpha=0.3)
    plt.close(figure)
    return figure


def bars_beside_paper(
    path: str, names: Sequence[str], ours: Sequence[float], paper: Sequence[float | None], *,
    ours_label: str, paper_label: str, ylabel: str, title: str, width: float,
) -> None:
    """Our numbers (fractions, drawn in %) and the paper's (%, None: no bar) side by side per name, written to ``path``."""
    figure, axes = plt.subplots(1, 1, figsize=(width, 3.4), squeeze=False)
    axes = axes[0][0]
    positions = np.arange(len(names))
    axes.bar(positions - 0.2, [100 * value for value in ours], 0.4, label=ours_label)
    axes.bar(positions + 0.2, [np.nan if value is None else value for value in paper], 0.4, label=paper_label)
    axes.set_xticks(positions, names, rotation=20, fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=9)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)


def layers_figure(table: pd.DataFrame, splits: Sequence[str], last_k: int):
    """Like the paper's Fig. 6: mIoU, FP and FN (%) against K, one panel per split; the paper's K = 3 mIoU as a star."""
    figure, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits), 3.4), squeeze=False)
    for panel, split in zip(axes[0], splits):
        rows = table[table["split"] == split]
        for column, label, style in (("miou", "mIoU", "o-"), ("fp_reference", "FP", "s--"), ("fn_reference", "FN", "^:")):
            panel.plot(rows["last_k"], 100 * rows[column], style, label=label)
        panel.plot(list(LAYERS), list(LAYERS.values()), "k*", markersize=9, label="paper mIoU (VOC train)")
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


def colourise(label: np.ndarray) -> np.ndarray:
    """A label map in the VOC palette, the ignored pixels (IGNORE) in its light boundary colour."""
    palette = voc_palette()
    coloured = palette[np.where(label == IGNORE, 0, label)]
    coloured[label == IGNORE] = (224, 224, 192)
    return coloured


def qualitative_grid(path: str, rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], zoom: int = 3) -> None:
    """A grid of tiles (an RGB image, or a label map drawn by :func:`colourise`), one column per title, written to ``path``."""
    figure, axes = plt.subplots(len(rows), len(titles), figsize=(1.6 * len(titles), 1.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            axes[r][c].imshow(tile if tile.ndim == 3 else colourise(tile), interpolation="nearest")
            axes[r][c].axis("off")
            if r == 0:
                axes[r][c].set_title(titles[c], fontsize=8)
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)


def heat_overlay(image: np.ndarray, class_map: np.ndarray) -> np.ndarray:
    """An RGB image [H, W, 3] half-and-half with a map in [0, 1] [H, W] drawn in the jet colour map (float, 0..255)."""
    heat = matplotlib.colormaps["jet"](np.clip(class_map, 0, 1))[..., :3] * 255
    return 0.5 * image.astype(np.float32) + 0.5 * heat


def contact_sheet(path: str, rows: Sequence[Sequence[tuple[str, np.ndarray]]], row_titles: Sequence[str], palette: np.ndarray) -> None:
    """One row per image of (title, tile) pairs, rows of any length: an RGB tile (uint8 or float 0..255) drawn as
    it is, a label map [H, W] in ``palette`` (the data's: data.palette over the VOC colour map), its ignored pixels
    (IGNORE) in VOC's light boundary colour; ``row_titles`` (the image names) down the left."""
    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.5 * columns, 1.6 * len(rows)), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for r, (row, name) in enumerate(zip(rows, row_titles)):
        for c, (title, tile) in enumerate(row):
            if tile.ndim == 2:
                coloured = palette[np.where(tile == IGNORE, 0, tile)].copy()
                coloured[tile == IGNORE] = (224, 224, 192)
                tile = coloured
            axes[r][c].imshow(np.clip(tile, 0, 255).astype(np.uint8), interpolation="nearest")
            axes[r][c].set_title(title, fontsize=7)
        axes[r][0].text(-0.08, 0.5, name, transform=axes[r][0].transAxes, rotation=90, ha="right", va="center", fontsize=7)
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)


def strip_plot(path: str, table: pd.DataFrame, *, seeds: Sequence[int]) -> None:
    """One panel per stage: every replicate's value of each metric (a dot, in seed order from left to right), the
    mean with +/- one std, and the paper's number (a cross) where it has one."""
    stages = list(dict.fromkeys(table["stage"]))
    widths = [max(1.5, 0.9 * int((table["stage"] == stage).sum())) for stage in stages]
    figure, axes = plt.subplots(1, len(stages), figsize=(sum(widths) + 1.0, 3.4), squeeze=False, gridspec_kw={"width_ratios": widths})
    offsets = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    for axis, stage in zip(axes[0], stages):
        rows = table[table["stage"] == stage].reset_index(drop=True)
        for index, row in rows.iterrows():
            axis.scatter(index + offsets[: len(row["values"])], row["values"], s=14, color="tab:blue", zorder=3,
                         label="replicates" if index == 0 else None)
            axis.errorbar(index + 0.3, row["mean"], yerr=row["std"] if row["std"] is not None else None, fmt="_", color="black",
                          capsize=3, markersize=10, label="mean +/- std" if index == 0 else None)
            if row["paper"] is not None and not pd.isna(row["paper"]):
                axis.scatter([index], [row["paper"]], marker="x", s=30, color="tab:red", zorder=4, label="paper (VOC)")
        axis.set_xticks(np.arange(len(rows)), rows["metric"], rotation=30, ha="right", fontsize=7)
        axis.set_xlim(-0.6, len(rows) - 0.4)
        axis.set_ylim(bottom=0)
        axis.set_title(stage, fontsize=9)
        axis.set_ylabel("mIoU (%)", fontsize=8)
    handles = {label: handle for axis in axes[0] for handle, label in zip(*axis.get_legend_handles_labels())}
    # right of the panels, not over the last one's title (savefig's tight bounding box keeps it)
    figure.legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.9))
    figure.suptitle(f"{len(seeds)} replicates (seeds {', '.join(str(seed) for seed in seeds)})", fontsize=9)
    figure.tight_layout()
    save_figure(path, figure)
    plt.close(figure)


def paired_models_figure(table: Mapping[str, Any], column_titles: Mapping[str, str]):
    """mctformer.side_by_side's table as one panel per mIoU column: each model's value on every replicate seed, a
    seed's values joined by a line (the pairing its differences use), and each model's mean (a black bar)."""
    columns, rows, seeds = table["columns"], table["rows"], table["seeds"]
    figure, axes = plt.subplots(1, len(columns), figsize=(1.35 * len(columns) + 1.5, 3.2), squeeze=False, sharey=True)
    colours = plt.colormaps["tab10"]
    positions = np.arange(len(rows))
    for axis, column in zip(axes[0], columns):
        values = np.array([[100 * value for value in row["metrics"][column]["values"]] for row in rows])  # [model, seed]
        for index, seed in enumerate(seeds):
            axis.plot(positions, values[:, index], "-o", color=colours(index % 10), markersize=4, linewidth=1, label=f"seed {seed}")
        axis.scatter(positions, values.mean(axis=1), marker="_", s=400, color="black", zorder=4, label="mean")
        axis.set_xticks(positions, [row["name"].replace("MCTformer-", "") for row in rows], fontsize=8)
        axis.set_xlim(-0.5, len(rows) - 0.5)
        axis.set_title(column_titles[column], fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("mIoU (%)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.9))
    figure.tight_layout()
    plt.close(figure)
    return figure


def seed_ablation_bars(variants: Sequence[str], ours: Sequence[float], paper: Sequence[float], split: str):
    """Table 5 as bars: each variant's seed mIoU (%) on ``split`` beside the paper's (NaN: no row)."""
    figure, axes = plt.subplots(figsize=(6, 3.2))
    axes.bar(np.arange(len(variants)) - 0.2, ours, 0.4, label=f"ours ({split})")
    axes.bar(np.arange(len(variants)) + 0.2, paper, 0.4, label="paper (VOC train)")
    axes.set_xticks(np.arange(len(variants)), variants, rotation=20, fontsize=8)
    axes.set_ylabel("seed mIoU (%)")
    axes.legend(fontsize=8)
    axes.set_title("seed ablation (Table 5)")
    plt.close(figure)
    return figure


def per_class_bars(tables: Mapping[str, pd.DataFrame]):
    """Per-class IoU bars, one group of bars per class and one colour per table (its ``class`` and ``iou`` columns)."""
    figure, axes = plt.subplots(figsize=(max(5.0, 0.5 * len(next(iter(tables.values())))), 3.2))
    width = 0.8 / len(tables)
    for index, (name, table) in enumerate(tables.items()):
        axes.bar(np.arange(len(table)) + index * width - 0.4 + width / 2, table["iou"], width, label=name)
    axes.set_xticks(np.arange(len(table)), table["class"], rotation=45, fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel("IoU")
    axes.legend(fontsize=7)
    plt.close(figure)
    return figure


def training_curves_figure(curves: Mapping[str, Sequence[Mapping[str, Any]]]):
    """One panel per trainer (``curves``: trainer -> its curve lines, mctformer.training.curves): the loss of each
    logging interval against the optimizer step (a line), each epoch's mean loss (dots at the epoch's last step),
    and the learning rate on a second axis (dashed)."""
    figure, panels = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.2), squeeze=False)
    for axes, (trainer, lines) in zip(panels[0], curves.items()):
        intervals = [line for line in lines if line["kind"] == "interval" and line.get("loss") is not None]
        epochs = [line for line in lines if line["kind"] == "epoch" and line.get("loss") is not None]
        if intervals:
            axes.plot([line["step"] for line in intervals], [line["loss"] for line in intervals], color="tab:blue", lw=1,
                      label="per 50 steps")
        axes.plot([line["step"] for line in epochs], [line["loss"] for line in epochs], "o", color="tab:blue", ms=4,
                  label="epoch mean")
        rates = [line for line in lines if line.get("lr") is not None]
        if rates:
            lr_axes = axes.twinx()
            lr_axes.plot([line["step"] for line in rates], [line["lr"] for line in rates], "--", color="tab:grey", lw=1)
            lr_axes.set_ylabel("lr", color="tab:grey")
            lr_axes.tick_params(axis="y", labelcolor="tab:grey", labelsize=7)
        axes.set_title(trainer)
        axes.set_xlabel("optimizer step")
        axes.grid(alpha=0.3)
    panels[0][0].set_ylabel("training loss")
    panels[0][0].legend(fontsize=7)
    figure.tight_layout()
    plt.close(figure)
    return figure
