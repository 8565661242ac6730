"""Every figure of the pipeline: the one module that imports matplotlib (headless, the Agg backend).

The functions draw from tables and numbers the stages computed; they return the figure
(artifacts.save_figure writes it) or, where they say so, write the PNG themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on the cluster nodes; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from .metrics import MIOU_COLUMNS  # noqa: E402


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
