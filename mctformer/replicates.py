"""Replicates: the seed-dependent chain of one run repeated with seeds seed, seed + 1, ... (config ``replicates``).

Every number of the replicates' summaries (summary.json of each) becomes its values in seed order, their mean,
sample standard deviation and a two-sided Student-t interval of the mean (:func:`aggregate_summaries`, the
``replicates`` section of the run's summary.json); :func:`replicate_table` and :func:`mctformer.plots.strip_plot` make the
report's table and figure of the headline metrics beside the paper's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

CONFIDENCE = 0.95  # the report's interval of the mean: two-sided, t with n - 1 degrees of freedom
_DROP = object()  # a leaf that is not aggregated (not a number in every replicate, and not the same in all)


def mean_interval(values: Sequence[float], *, confidence: float) -> dict:
    """``values`` (as floats), ``n``, ``mean``, ``std`` (sample, n - 1) and ``ci``: [low, high], the two-sided
    ``confidence`` interval of the mean, mean -/+ t_{(1 + confidence) / 2, n - 1} * std / sqrt(n).
    With one value std and ci are None (no spread to estimate)."""
    from scipy import stats

    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"expected a non-empty list of numbers, got {values!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    n, mean = int(array.size), float(array.mean())
    if n < 2:
        return {"values": array.tolist(), "n": n, "mean": mean, "std": None, "ci": None}
    std = float(array.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"values": array.tolist(), "n": n, "mean": mean, "std": std, "ci": [mean - half, mean + half]}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _aggregate(nodes: list, confidence: float) -> Any:
    if all(_is_number(node) for node in nodes):
        return mean_interval([float(node) for node in nodes], confidence=confidence)
    if all(isinstance(node, Mapping) for node in nodes):
        merged = {}
        for key in nodes[0]:
            if all(key in node for node in nodes):
                value = _aggregate([node[key] for node in nodes], confidence)
                if value is not _DROP:
                    merged[key] = value
        return merged
    if all(isinstance(node, list) for node in nodes) and len({len(node) for node in nodes}) == 1:
        items = [_aggregate([node[index] for node in nodes], confidence) for index in range(len(nodes[0]))]
        return [None if item is _DROP else item for item in items]
    if all(node == nodes[0] for node in nodes):  # a name, a split, a null: the same in every replicate
        return nodes[0]
    return _DROP


def aggregate_summaries(summaries: Sequence[Mapping[str, Any]], *, seeds: Sequence[int], confidence: float) -> dict:
    """The ``replicates`` section of summary.json from the replicates' summaries (``seeds[i]``'s is ``summaries[i]``).

    ``metrics`` mirrors the summaries' tree: a number that every replicate has becomes :func:`mean_interval` of its
    values in seed order; a string or null the same in all is kept (row names, splits); what differs otherwise or
    some replicate lacks is left out. Lists are aggregated item by item when the lengths agree."""
    if len(summaries) != len(seeds) or not summaries:
        raise ValueError(f"expected one summary per seed, got {len(summaries)} summaries for seeds {list(seeds)}")
    return {
        "seeds": [int(seed) for seed in seeds],
        "n": len(seeds),
        "confidence": confidence,
        "metrics": _aggregate([dict(summary) for summary in summaries], confidence),
    }


def metric_at(metrics: Mapping[str, Any], path: Sequence[str]) -> dict | None:
    """The aggregated metric at ``path`` (keys from the root of ``metrics``), None where the summaries lack it."""
    node: Any = metrics
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) and "mean" in node and "values" in node else None


def replicate_table(aggregate: Mapping[str, Any], rows: Sequence[tuple[str, str, Sequence[str], float | None]]) -> pd.DataFrame:
    """One row per headline metric: ``rows`` are (stage, name, path in the summary, the paper's value in % or None);
    values, mean, std and interval in % (x 100), a metric the summaries lack left out."""
    records = []
    for stage, name, path, paper in rows:
        metric = metric_at(aggregate["metrics"], path)
        if metric is None:
            continue
        scale = lambda value: None if value is None else 100 * value  # noqa: E731
        low, high = metric["ci"] if metric["ci"] is not None else (None, None)
        records.append({
            "stage": stage, "metric": name, "values": [100 * value for value in metric["values"]], "mean": scale(metric["mean"]),
            "std": scale(metric["std"]), "ci_low": scale(low), "ci_high": scale(high), "paper": paper,
        })
    return pd.DataFrame(records, columns=["stage", "metric", "values", "mean", "std", "ci_low", "ci_high", "paper"])


def replicate_markdown(table: pd.DataFrame, *, seeds: Sequence[int], confidence: float, figure: str) -> list[str]:
    """The report's section: mean +/- std, the interval and each replicate's value per headline metric, the paper's beside."""

    def number(value) -> str:
        return "-" if value is None or pd.isna(value) else f"{value:.1f}"

    lines = [
        f"## Replicates ({len(seeds)}: seeds {', '.join(str(seed) for seed in seeds)})", "",
        f"The seed-dependent chain (the classifier onwards) once per seed, on the same data. mIoU (%): mean +/- sample standard "
        f"deviation, the {100 * confidence:.0f} % t-interval of the mean, and every replicate's value in seed order. Every number of "
        "summary.json is aggregated likewise under its `replicates` key; the sections below are the first replicate's.", "",
        f"| stage | metric | mean ± std | {100 * confidence:.0f} % interval | replicates | paper |", "|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        interval = "-" if row["ci_low"] is None or pd.isna(row["ci_low"]) else f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
        values = ", ".join(f"{value:.1f}" for value in row["values"])
        lines.append(f"| {row['stage']} | {row['metric']} | {number(row['mean'])} ± {number(row['std'])} | {interval} | {values} | "
                     f"{number(row['paper'])} |")
    return lines + ["", f"![replicates]({figure})", ""]
