"""The comparison of refinements on one run's seeds: seeds -> {CRF only, PSA, IRN} masks -> DeepLab, with stage times.

Read from the files the rules write (seed best.json, mask and DeepLab eval JSONs, the PSA ablation's
CSV for the CRF-only masks, Snakemake's benchmark files); the papers' VOC numbers stand beside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from .artifacts import read_json
from .paper import REFINEMENTS

METHOD_NAMES = {"crf": "seeds + dense CRF only", "psa": "PSA (AffinityNet + random walk)", "irn": "IRN (boundaries + walk)"}
CRF_ONLY_ROW = "seeds + CRF"  # the PSA ablation table's name for it


def benchmark_seconds(paths: Sequence[str]) -> float:
    """Summed wall time of the jobs' benchmark files (the last row of each: the latest run)."""
    return float(sum(pd.read_csv(path, sep="\t")["s"].iloc[-1] for path in paths))


def refinement_rows(
    *, seed_bests: Mapping[str, str], crf_only_table: str | None, mask_summaries: Mapping[str, str],
    deeplab_summaries: Mapping[str, Mapping[str, str]], refinement_benchmarks: Mapping[str, Sequence[str]],
    deeplab_benchmarks: Mapping[str, Sequence[str]],
) -> list[dict]:
    """One row per refinement (mIoU as fractions, times in s); None where a value was not made.

    ``seed_bests`` {method: the best.json of its seed variant on the mask split}; ``crf_only_table``: the
    PSA ablation CSV (its "seeds + CRF" row) or None; ``mask_summaries`` {method: eval JSON};
    ``deeplab_summaries`` {method: {pred | pred_crf: eval JSON}}; the benchmark files per method and per
    method's DeepLab (training and inference).
    """
    rows = []
    if crf_only_table is not None and "psa" in seed_bests:
        table = pd.read_csv(crf_only_table)
        crf_only = table.loc[table["method"] == CRF_ONLY_ROW, "miou"]
        if len(crf_only):
            rows.append({"method": "crf", "name": METHOD_NAMES["crf"], "seeds": read_json(seed_bests["psa"])["miou"],
                         "masks": float(crf_only.iloc[0]), "masks_seconds": None, "deeplab": None, "deeplab_crf": None,
                         "deeplab_seconds": None, "paper": None})
    for method, summary_path in mask_summaries.items():
        deeplab = deeplab_summaries.get(method)
        rows.append({
            "method": method, "name": METHOD_NAMES[method],
            "seeds": read_json(seed_bests[method])["miou"] if method in seed_bests else None,
            "masks": read_json(summary_path)["miou"],
            "masks_seconds": benchmark_seconds(refinement_benchmarks[method]) if method in refinement_benchmarks else None,
            "deeplab": read_json(deeplab["pred"])["miou"] if deeplab else None,
            "deeplab_crf": read_json(deeplab["pred_crf"])["miou"] if deeplab else None,
            "deeplab_seconds": benchmark_seconds(deeplab_benchmarks[method]) if method in deeplab_benchmarks else None,
            "paper": REFINEMENTS[method],
        })
    return rows


def refinement_markdown(table: Mapping) -> list[str]:
    """The comparison as Markdown lines (mIoU in %)."""
    def percent(value) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    def seconds(value) -> str:
        return "-" if value is None else f"{value:.0f}"

    lines = [
        f"Seeds and pseudo masks on {table['mask_split']}, DeepLab on {table['deeplab_split']} (mIoU %); times: the refinement's "
        "labels + training + walk, DeepLab's training + inference (s, from the benchmark files).", "",
        "| refinement | seeds | masks | time (s) | DeepLab / + CRF | DeepLab time (s) | paper (VOC): seeds -> masks (-> DeepLab val) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table["rows"]:
        paper = row["paper"]
        cited = "-" if paper is None else (
            f"{paper['paper']}: {paper['seeds']} -> {paper['masks']}" + (f" -> {paper['deeplab']}" if paper["deeplab"] else "")
        )
        deeplab = "-" if row["deeplab"] is None else f"{percent(row['deeplab'])} / {percent(row['deeplab_crf'])}"
        lines.append(f"| {row['name']} | {percent(row['seeds'])} | {percent(row['masks'])} | {seconds(row['masks_seconds'])} | {deeplab} "
                     f"| {seconds(row['deeplab_seconds'])} | {cited} |")
    return lines
