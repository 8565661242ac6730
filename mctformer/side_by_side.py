"""Models side by side on the same data: each model's chain (seeds -> PSA and IRN masks -> DeepLab on the PSA masks)
once per replicate seed, as mean +/- std over the replicates beside the papers' numbers, and each other model's
difference to the run's own, paired seed by seed (the same seed trains every network of both chains).

Read from the files the rules write (seed best.json, mask and DeepLab eval JSONs, Snakemake's benchmark files), laid
out by :func:`mctformer.run_layout.side_by_side_files`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .artifacts import read_json
from .paper import SIDE_BY_SIDE
from .refinements import benchmark_seconds
from .replicates import CONFIDENCE, mean_interval

MODEL_NAMES = {"v1": "MCTformer-V1", "v2": "MCTformer-V2", "plus": "MCTformer+"}
# The chain's parts whose times the table gives (run_layout.SIDE_BY_SIDE_JOBS); "chain" is their sum.
TIME_PARTS = ("classifier", "psa", "irn", "deeplab")


def metric_columns(seed_splits: Sequence[str]) -> list[tuple[str, tuple[str, str]]]:
    """The table's mIoU columns as (key, (role, name) in a replicate's files): the seeds on each seed split, PSA's and
    IRN's masks, DeepLab without and with CRF."""
    return [
        *[(f"seeds_{split}", ("seeds", split)) for split in seed_splits],
        ("masks_psa", ("masks", "psa")), ("masks_irn", ("masks", "irn")),
        ("deeplab", ("deeplab", "pred")), ("deeplab_crf", ("deeplab", "pred_crf")),
    ]


def side_by_side_table(
    files: Mapping[str, Sequence[Mapping[str, Any]]], *, seeds: Sequence[int], versions: Mapping[str, str],
    seed_variant: str, mask_split: str, deeplab_split: str,
) -> dict:
    """The table as JSON-ready data: per model (``files``' order, the run's own first; ``versions`` gives each its
    classifier.version), each column's :func:`mean_interval` over the replicates (fractions) and the chain parts'
    times (s); per other model, its paired differences to the first (``differences``)."""
    if not files:
        raise ValueError("no models to set side by side")
    seed_splits = list(next(iter(files.values()))[0]["seeds"])
    columns = metric_columns(seed_splits)
    values: dict[str, dict[str, list[float]]] = {}
    rows = []
    for model, replicates in files.items():
        if len(replicates) != len(seeds):
            raise ValueError(f"model {model!r}: {len(replicates)} replicates' files for seeds {list(seeds)}")
        values[model] = {key: [float(read_json(replicate[role][name])["miou"]) for replicate in replicates] for key, (role, name) in columns}
        times = {part: [benchmark_seconds(replicate["benchmarks"][part]) for replicate in replicates] for part in TIME_PARTS}
        times["chain"] = [sum(parts) for parts in zip(*(times[part] for part in TIME_PARTS))]
        rows.append({
            "model": model, "version": versions[model], "name": MODEL_NAMES.get(versions[model], model),
            "metrics": {key: mean_interval(values[model][key], confidence=CONFIDENCE) for key, _ in columns},
            "seconds": {part: mean_interval(times[part], confidence=CONFIDENCE) for part in times},
            "paper": SIDE_BY_SIDE.get(versions[model]),
        })
    own = rows[0]["model"]
    differences = {
        row["model"]: {
            key: mean_interval([other - base for other, base in zip(values[row["model"]][key], values[own][key])], confidence=CONFIDENCE)
            for key, _ in columns
        }
        for row in rows[1:]
    }
    return {
        "seeds": [int(seed) for seed in seeds], "confidence": CONFIDENCE, "seed_variant": seed_variant, "seed_splits": seed_splits,
        "mask_split": mask_split, "deeplab_split": deeplab_split, "columns": [key for key, _ in columns], "rows": rows,
        "baseline": own, "differences": differences,
    }


def _percent(metric: Mapping[str, Any] | None, signed: bool = False) -> str:
    if metric is None:
        return "-"
    mean = f"{100 * metric['mean']:+.1f}" if signed else f"{100 * metric['mean']:.1f}"
    return mean if metric["std"] is None else f"{mean} ± {100 * metric['std']:.1f}"


def _interval(metric: Mapping[str, Any]) -> str:
    return "" if metric["ci"] is None else f" [{100 * metric['ci'][0]:+.1f}, {100 * metric['ci'][1]:+.1f}]"


def column_titles(table: Mapping[str, Any]) -> dict[str, str]:
    """Each mIoU column's title (the Markdown table's header, the figure's panels)."""
    titles = {f"seeds_{split}": f"seeds {split}" for split in table["seed_splits"]}
    return {**titles, "masks_psa": f"PSA masks {table['mask_split']}", "masks_irn": f"IRN masks {table['mask_split']}",
            "deeplab": f"DeepLab {table['deeplab_split']}", "deeplab_crf": "+ CRF"}


def side_by_side_markdown(table: Mapping[str, Any]) -> list[str]:
    """The table as Markdown lines: mIoU (%) mean ± std per model, the paired differences with their interval, the
    papers' VOC numbers, and the chain's times."""
    titles = column_titles(table)
    header = ["model", *[titles[column] for column in table["columns"]], "classifier + maps (s)", "chain (s)"]
    n = len(table["seeds"])
    over = (f"mean ± sample std over {n} replicates (seeds {', '.join(map(str, table['seeds']))})" if n > 1 else
            f"one replicate (seed {table['seeds'][0]}): no spread to estimate")
    lines = [
        f"mIoU (%), {over}; seeds: "
        f"`{table['seed_variant']}` at its best threshold; DeepLab trained on the PSA masks. Times: wall seconds of the jobs "
        "(benchmark files), mean ± std.", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]
    for row in table["rows"]:
        cells = [_percent(row["metrics"][key]) for key in table["columns"]]
        times = [f"{row['seconds'][part]['mean']:.0f}" + ("" if row["seconds"][part]["std"] is None else f" ± {row['seconds'][part]['std']:.0f}")
                 for part in ("classifier", "chain")]
        lines.append(f"| {row['name']} | " + " | ".join(cells + times) + " |")
    for model, difference in table["differences"].items():
        name = next(row["name"] for row in table["rows"] if row["model"] == model)
        base = next(row["name"] for row in table["rows"] if row["model"] == table["baseline"])
        cells = [_percent(difference[key], signed=True) + _interval(difference[key]) for key in table["columns"]]
        lines.append(f"| {name} - {base}, paired by seed [{100 * table['confidence']:.0f} % interval] | " + " | ".join(cells) + " | | |")
    for row in table["rows"]:
        paper = row["paper"]
        if paper is None:
            continue
        number = lambda value: "-" if value is None else f"{value:.1f}"  # noqa: E731
        cells = [number(paper["seeds"]) if split == "train" else "-" for split in table["seed_splits"]]
        cells += [number(paper["masks"]), "-", "-", number(paper["deeplab"])]
        lines.append(f"| paper (VOC): {paper['paper']} | " + " | ".join(cells) + " | | |")
    if n > 1:  # each replicate's own times: jobs that ran under different loads are compared replicate by replicate
        per_model = [f"{row['name']} " + " / ".join(", ".join(f"{value:.0f}" for value in row["seconds"][part]["values"])
                                                    for part in ("classifier", "chain")) for row in table["rows"]]
        lines += ["", f"Wall seconds per replicate (seeds {', '.join(map(str, table['seeds']))}), classifier + maps / chain: "
                  + "; ".join(per_model) + "."]
    return lines
