"""The tables and markdown sections of the paper's ablations (Sec. 4.3; the stages are mctformer.stages.ablations),
and their statistics over replicates.

Seed numbers are the sweep's answer (metrics.best_threshold with seeds.miou_convention / seeds.selection,
as evaluate_seeds); FP and FN are the authors' (evaluation.py: over the label's union, every label in the
mean; see metrics), the ones the paper's Fig. 6 plots, with the per-ground-truth rates beside them in the CSVs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .metrics import ERROR_COLUMNS
from .paper import LAYERS

# The columns of a seed row: the sweep's answer at its threshold (see metrics.best_threshold).
SEED_COLUMNS = ("threshold", "miou", "miou_all_labels", "mean_precision", "mean_recall", *ERROR_COLUMNS)


def seed_row(best: Mapping[str, Any]) -> dict[str, float]:
    """The seed columns of one best.json (or best_threshold answer)."""
    return {column: float(best[column]) for column in SEED_COLUMNS}


def percent(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def paper_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *["| " + " | ".join(row) + " |" for row in rows]]


def seed_split_cells(table: pd.DataFrame, key_column: str, key: Any, splits: Sequence[str]) -> list[str]:
    """mIoU / FP / FN (%) and the threshold of one row key on each split."""
    cells = []
    for split in splits:
        row = table[(table[key_column] == key) & (table["split"] == split)].iloc[0]
        cells += [f"{percent(row['miou'])} (t={row['threshold']:.2f})", percent(row["fp_reference"]), percent(row["fn_reference"])]
    return cells


def split_header(splits: Sequence[str]) -> list[str]:
    return [f"{name} {split}" for split in splits for name in ("mIoU", "FP", "FN")]


def relative_link(path: str, section_path: str) -> str:
    import os

    return os.path.relpath(path, os.path.dirname(section_path))


def layers_section(table: pd.DataFrame, splits: Sequence[str], last_k: int, plot_path: str, section_path: str) -> list[str]:
    rows = []
    for depth in sorted(table["last_k"].unique()):
        name = f"{depth}" + (" (maps.last_k)" if depth == last_k else "")
        rows.append([name, *seed_split_cells(table, "last_k", depth, splits), paper_cell(LAYERS.get(int(depth)))])
    return [
        "## Layers fused (Fig. 6)", "",
        "Class-to-patch attention summed over the last K blocks, all K from one extraction pass of the run's classifier; "
        "seed mIoU at the best background threshold t, FP and FN there (the authors' evaluation.py; the paper's Fig. 6 follows "
        "the same definitions), %. Paper: MCTformer-V1 on VOC train; its text prints only K = 3 (47.2), the other points of the "
        "figure are not printed and are left out.", "",
        *markdown_table(["K", *split_header(splits), "paper mIoU"], rows), "",
        f"![layers]({relative_link(plot_path, section_path)})", "",
    ]


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
    return "-" if not np.isfinite(mean) else f"{100 * mean:.1f} ± {percent(std)}"


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
                     paper_cell(None if pd.isna(paper) else float(paper))])
    return [
        f"## {spec['title']}, {len(seeds)} replicates", "",
        f"Every replicate (seeds {', '.join(str(seed) for seed in seeds)}) runs the ablation on its own classifier and chain; "
        f"mean ± sample standard deviation over the replicates, %. `{ablation}.csv` beside this file has every number's mean, "
        f"std, {100 * confidence:.0f} % t-interval and the replicates' values; each replicate's own table and section are under its "
        f"ablations/ folder. Paper: {spec['paper']}.", "",
        *markdown_table([spec["row_header"], *[header for header, _, _ in columns], "paper mIoU"], rows), "",
        f"![{ablation}]({plot})", "",
    ]


def replicated_ablation_strips(ablation: str, table: pd.DataFrame) -> pd.DataFrame:
    """plots.strip_plot's table of an ablation's mIoU columns: a panel per split (or stage), a point per row, in %."""
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


