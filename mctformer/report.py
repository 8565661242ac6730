"""The run's summary: every metric in ``summary.json`` and a ``report.md`` with plots, beside the paper's numbers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .artifacts import load_map_file, read_json, read_label_png, save_figure, write_json, write_text
from .data.voc import IGNORE
from .metrics import seed_prediction
from .paper import DEEPLAB_VAL, PSEUDO_MASKS, seed_miou
from .plots import per_class_bars, qualitative_grid, seed_ablation_bars, strip_plot, training_curves_figure
from .provenance import provenance_line
from .refinements import refinement_markdown, refinement_rows
from .replicates import CONFIDENCE, aggregate_summaries, replicate_markdown, replicate_table
from .training.curves import read_curves


def stage_times(benchmark_files: Sequence[str]) -> pd.DataFrame:
    """Wall time and peak memory of every job, from Snakemake's benchmark files (one per job)."""
    rows = []
    for path in sorted(benchmark_files):
        table = pd.read_csv(path, sep="\t")
        rows.append({"stage": os.path.basename(path)[:-4], "seconds": float(table["s"].iloc[-1]), "max_rss_mb": float(table["max_rss"].iloc[-1])})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ReportFiles:
    """Every file the report reads, by role, as workflow/rules/report.smk declares them."""

    seed_bests: Mapping[str, Mapping[str, str]]  # {split: {variant: best.json}}
    seed_plots: Mapping[str, str]  # {split: the threshold sweep's figure}
    predicted_seed_bests: Mapping[str, Mapping[str, str]]  # as seed_bests, of the classifier's labels; {} without
    label_evaluation: str | None  # the classifier's per-class precision / recall; None without predicted labels
    mask_summaries: Mapping[str, str]  # {split: eval json}
    mask_tables: Mapping[str, str]  # {split: per-class csv}
    ablation_table: str | None  # PSA's ablation csv; None without PSA
    label_stats: str
    refinement_files: Mapping[str, Any] | None  # the refinements table's inputs by role and method, or None
    deeplab_summaries: Mapping[str, Mapping[str, str]]  # {model: {pred | pred_crf: eval json}}
    deeplab_tables: Mapping[str, str]  # {model: per-class csv with CRF}
    benchmarks: Sequence[str]  # every job's benchmark file
    example_maps: str  # the folders the examples come from: the PSA seed variant's maps,
    example_masks: str  # the pseudo masks,
    example_predictions: Mapping[str, str]  # DeepLab's {pred | pred_crf} predictions
    replicate_summaries: Sequence[str]  # the other replicates' summary.json, in replicate_seeds' order
    training_curves: Mapping[str, str]  # {trainer: its curve lines (mctformer.training.curves)}: training_curves.png


@dataclass(frozen=True)
class ReportOutputs:
    """What the report writes: summary.json, report.md, the figures' folder and, with replicates, their figure."""

    summary: str
    report: str
    figure_dir: str
    replicates_plot: str | None


def build_report(
    *,
    layout,
    files: ReportFiles,
    outputs: ReportOutputs,
    refinement: str,
    psa_variant: str,
    deeplab_split: str,
    label_threshold: float,
    examples: int,
    replicate_seeds: Sequence[int],
    provenance: Mapping[str, Any],
) -> dict:
    """summary.json and report.md (``outputs``) from the files the rule declares (``files``).

    ``refinement``: the method (psa | irn) whose masks, labels and examples these are (PSA's when the run
    has it); ``files.refinement_files`` feed the seeds -> {CRF only, PSA, IRN} -> DeepLab table (mctformer.refinements).

    ``replicate_seeds``: this run's seed first, then those of its other replicates, whose summary.json files
    ``files.replicate_summaries`` are. With more than one, summary.json gains ``replicates``
    (mctformer.replicates.aggregate_summaries of all), report.md its section and ``outputs.replicates_plot``.

    ``provenance``: the run's block (mctformer.provenance.collect), written to summary.json as ``provenance`` after the
    metrics (the replicates' aggregate leaves it out) and shown at the head of report.md.

    ``files.predicted_seed_bests`` and ``files.label_evaluation`` (the classifier's labels at ``label_threshold``),
    when seeds.labels has ``predicted``: summary.json's ``seeds_predicted`` and ``classifier_labels``, and a report
    section beside the ground-truth seeds.

    ``files.training_curves`` are drawn as one figure of every trainer's loss (training_curves.png); nothing of
    summary.json comes from them."""
    seed_splits, mask_splits, deeplab_models = list(files.seed_bests), list(files.mask_summaries), list(files.deeplab_summaries)
    variants = list(next(iter(files.seed_bests.values())))
    os.makedirs(outputs.figure_dir, exist_ok=True)
    summary, times = collect_summary(
        seed_bests=files.seed_bests, mask_summaries=files.mask_summaries, ablation_table=files.ablation_table, label_stats=files.label_stats,
        refinement=refinement, refinement_files=files.refinement_files, deeplab_summaries=files.deeplab_summaries,
        deeplab_split=deeplab_split, benchmarks=files.benchmarks,
    )
    add_predicted_labels(summary, files.predicted_seed_bests, files.label_evaluation, label_threshold)
    replicate_lines = add_replicates(summary, replicate_seeds=replicate_seeds, replicate_summaries=files.replicate_summaries,
                                     replicates_plot=outputs.replicates_plot, report_path=outputs.report, deeplab_split=deeplab_split)
    summary["provenance"] = dict(provenance)
    write_json(outputs.summary, summary)

    seed_ablation_figure(os.path.join(outputs.figure_dir, "seed_ablation.png"), summary, seed_splits[0], variants)
    per_class_figure(os.path.join(outputs.figure_dir, "per_class_iou.png"), files.mask_tables[mask_splits[0]], files.deeplab_tables)
    example_figures(
        outputs.figure_dir, layout, summary, seed_split=seed_splits[0], variants=variants, mask_split=mask_splits[0],
        deeplab_split=deeplab_split, example_maps=files.example_maps, example_masks=files.example_masks,
        example_predictions=files.example_predictions, psa_variant=psa_variant, examples=examples,
    )
    save_figure(os.path.join(outputs.figure_dir, "training_curves.png"),
                training_curves_figure({trainer: read_curves(path) for trainer, path in files.training_curves.items()}))
    write_text(outputs.report, _markdown(summary, seed_splits, variants, mask_splits, deeplab_models, deeplab_split, times,
                                         outputs.figure_dir, outputs.report, files.seed_plots, replicate_lines))
    return summary


def collect_summary(
    *,
    seed_bests: Mapping[str, Mapping[str, str]],
    mask_summaries: Mapping[str, str],
    ablation_table: str | None,
    label_stats: str,
    refinement: str,
    refinement_files: Mapping[str, Any] | None,
    deeplab_summaries: Mapping[str, Mapping[str, str]],
    deeplab_split: str,
    benchmarks: Sequence[str],
) -> tuple[dict, pd.DataFrame]:
    """summary.json's metrics from the stages' files (the arguments as :func:`build_report` takes them), and the
    stage times table. The first seed split's and first mask split's numbers are also kept at the top level."""
    seed_splits, mask_splits = list(seed_bests), list(mask_summaries)
    variants = list(next(iter(seed_bests.values())))
    summary: dict = {"seeds": {}, "masks": {}, "stage_seconds": {}}
    for split, bests in seed_bests.items():
        summary["seeds"][split] = {variant: read_json(path) for variant, path in bests.items()}
    # the first seed split is the paper's protocol (VOC train); keep its numbers at the top level too
    summary["seeds"].update({v: summary["seeds"][seed_splits[0]][v] for v in variants})
    for split, path in mask_summaries.items():
        summary["masks"][split] = read_json(path)
    summary["masks"]["miou"] = summary["masks"][mask_splits[0]]["miou"]
    summary["masks"]["method"] = refinement
    if ablation_table is not None:
        ablation = pd.read_csv(ablation_table)
        summary["masks"]["ablation"] = dict(zip(ablation["method"], ablation["miou"]))
    summary["psa_labels" if refinement == "psa" else "irn_labels"] = read_json(label_stats)
    if refinement_files is not None:
        summary["refinements"] = {"mask_split": mask_splits[0], "deeplab_split": deeplab_split, "rows": refinement_rows(**refinement_files)}
    for model, files in deeplab_summaries.items():
        evaluations = {folder: read_json(files[folder]) for folder in ("pred", "pred_crf")}
        summary[model] = {"miou": evaluations["pred"]["miou"], "miou_crf": evaluations["pred_crf"]["miou"], "split": deeplab_split, **evaluations}
    times = stage_times(benchmarks)
    summary["stage_seconds"] = dict(zip(times["stage"], times["seconds"]))
    summary["total_seconds"] = float(times["seconds"].sum())
    return summary, times


def add_replicates(
    summary: dict, *, replicate_seeds: Sequence[int], replicate_summaries: Sequence[str], replicates_plot: str | None,
    report_path: str, deeplab_split: str,
) -> list[str]:
    """With more than one replicate: ``summary["replicates"]`` (the aggregate of this summary and the others'),
    the strip plot at ``replicates_plot``, and the report's section (returned; empty for one replicate)."""
    if len(replicate_summaries) != len(replicate_seeds) - 1:
        raise ValueError(f"replicate seeds {list(replicate_seeds)} need {len(replicate_seeds) - 1} other summaries, got {len(replicate_summaries)}")
    if len(replicate_seeds) <= 1:
        return []
    seed_splits = [key for key, value in summary["seeds"].items() if isinstance(value, Mapping) and "miou" not in value]
    variants = list(summary["seeds"][seed_splits[0]])
    mask_splits = [key for key, value in summary["masks"].items() if isinstance(value, Mapping) and "miou" in value]
    deeplab_models = [key for key, value in summary.items() if isinstance(value, Mapping) and "miou_crf" in value]
    others = [read_json(path) for path in replicate_summaries]
    summary["replicates"] = aggregate_summaries([summary, *others], seeds=replicate_seeds, confidence=CONFIDENCE)
    table = replicate_table(summary["replicates"], replicate_rows(summary, seed_splits, variants, mask_splits, deeplab_models, deeplab_split))
    strip_plot(replicates_plot, table, seeds=replicate_seeds)
    return replicate_markdown(table, seeds=replicate_seeds, confidence=CONFIDENCE,
                              figure=os.path.relpath(replicates_plot, os.path.dirname(report_path)))


def add_predicted_labels(summary: dict, predicted_seed_bests: Mapping[str, Mapping[str, str]], label_evaluation: str | None,
                         label_threshold: float) -> None:
    """summary.json's ``seeds_predicted`` {split: {variant: best}} and ``classifier_labels`` {threshold, split: {class:
    {precision, recall, positives, predicted}, mean: {..., exact_match}}}, where seeds.labels has predicted."""
    if predicted_seed_bests:
        summary["seeds_predicted"] = {split: {variant: read_json(path) for variant, path in bests.items()}
                                      for split, bests in predicted_seed_bests.items()}
    if label_evaluation is not None:
        table = pd.read_csv(label_evaluation, keep_default_na=False, na_values=[""])
        columns = ["positives", "predicted", "precision", "recall", "exact_match"]
        labels: dict = {"threshold": label_threshold}
        for split, rows in table.groupby("split", sort=False):
            labels[split] = {row["class"]: {key: _number(row[key]) for key in columns if key != "exact_match" or row["class"] == "mean"}
                             for _, row in rows.iterrows()}
        summary["classifier_labels"] = labels


def _number(value: Any) -> float | None:
    """A table cell for JSON: None where it is undefined (NaN)."""
    return None if pd.isna(value) else float(value)


def _predicted_label_lines(summary: Mapping[str, Any], seed_splits: Sequence[str], variants: Sequence[str]) -> list[str]:
    """The report's section on the seeds of the classifier's labels beside the ground-truth ones, and those labels'
    precision / recall per class (only where seeds.labels has predicted)."""
    if "seeds_predicted" not in summary:
        return []
    labels = summary["classifier_labels"]
    lines = ["", f"### Seeds from the classifier's labels (score >= {labels['threshold']:g}; no class above it: the top one)", "",
             "Seed mIoU with the image-level labels the classifier predicts, beside those with the ground-truth labels "
             "(seeds.labels; what a run gives on images without labels).", "",
             "| variant | " + " | ".join(f"{split}: ground truth | {split}: predicted" for split in seed_splits) + " |",
             "|---|" + "---|---|" * len(seed_splits)]
    for variant in variants:
        cells = []
        for split in seed_splits:
            for source in ("seeds", "seeds_predicted"):
                best = summary[source][split][variant]
                cells.append(f"{100 * best['miou']:.1f} (t={best['threshold']:.2f})")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    classes = [name for name in labels[seed_splits[0]] if name != "mean"]
    lines += ["", "The classifier's labels against the ground truth (precision / recall per class, %):", "",
              "| split | " + " | ".join(classes) + " | mean | exact label sets |", "|---|" + "---|" * (len(classes) + 2)]

    def cell(row: Mapping[str, Any]) -> str:
        return " / ".join("-" if row[key] is None else f"{100 * row[key]:.1f}" for key in ("precision", "recall"))

    for split in seed_splits:
        rows = labels[split]
        lines.append(f"| {split} | " + " | ".join(cell(rows[name]) for name in classes) + f" | {cell(rows['mean'])} | "
                     f"{100 * rows['mean']['exact_match']:.1f} |")
    return lines


def seed_ablation_figure(path: str, summary: Mapping[str, Any], split: str, variants: Sequence[str]) -> None:
    """Table 5 as bars: each variant's seed mIoU on ``split`` beside the paper's row (NaN where it has none)."""
    ours = [100 * summary["seeds"][split][v]["miou"] for v in variants]
    save_figure(path, seed_ablation_bars(variants, ours, [seed_miou(v, np.nan) for v in variants], split))


def per_class_figure(path: str, mask_table: str, deeplab_tables: Mapping[str, str]) -> None:
    """Per-class IoU bars of the pseudo masks (``mask_table``) and of each DeepLab model with CRF."""
    tables = {"pseudo masks": pd.read_csv(mask_table)}
    for model, table_path in deeplab_tables.items():
        tables[f"{model} + CRF"] = pd.read_csv(table_path)
    save_figure(path, per_class_bars(tables))


def example_figures(
    figure_dir: str, layout, summary: Mapping[str, Any], *, seed_split: str, variants: Sequence[str], mask_split: str,
    deeplab_split: str, example_maps: str, example_masks: str, example_predictions: Mapping[str, str], psa_variant: str,
    examples: int,
) -> None:
    """The qualitative figures: seeds and pseudo masks on the mask split, the repairs, DeepLab on its split."""
    threshold = summary["seeds"][seed_split][psa_variant]["threshold"] if psa_variant in variants else 0.3
    rows = []
    for image_id in layout.read_ids(mask_split)[:examples]:
        labels, maps = load_map_file(os.path.join(example_maps, f"{image_id}.npz"))
        rows.append([
            layout.load_image(image_id), layout.load_mask(image_id), seed_prediction(labels, maps, np.float32(threshold)),
            read_label_png(os.path.join(example_masks, f"{image_id}.png")),
        ])
    qualitative_grid(os.path.join(figure_dir, "examples_masks.png"), rows, ["image", "ground truth", f"seed ({psa_variant})", "pseudo mask"])
    repairs_figure(
        os.path.join(figure_dir, "repairs.png"), layout, layout.read_ids(mask_split)[:REPAIR_CANDIDATES], example_maps,
        example_masks, threshold, examples=max(1, examples // 2), seed_title=f"seed ({psa_variant})",
    )
    rows = []
    for image_id in layout.read_ids(deeplab_split)[:examples]:
        rows.append([
            layout.load_image(image_id), layout.load_mask(image_id),
            read_label_png(os.path.join(example_predictions["pred"], f"{image_id}.png")),
            read_label_png(os.path.join(example_predictions["pred_crf"], f"{image_id}.png")),
        ])
    qualitative_grid(os.path.join(figure_dir, "examples_deeplab.png"), rows, ["image", "ground truth", "DeepLab", "DeepLab + CRF"])


REPAIR_CANDIDATES = 300  # images of the mask split searched for repair examples


def replicate_rows(summary, seed_splits, variants, mask_splits, deeplab_models, deeplab_split) -> list[tuple]:
    """The headline metrics of the replicates' table and strip plot: (stage, name, path in summary.json, paper's %)."""
    method = summary["masks"].get("method", "psa")
    rows = [(f"seeds ({split})", variant, ("seeds", split, variant, "miou"), seed_miou(variant))
            for split in seed_splits for variant in variants]
    rows += [("pseudo masks", f"{method} ({split})", ("masks", split, "miou"), PSEUDO_MASKS) for split in mask_splits]
    rows += [("pseudo masks", name, ("masks", "ablation", name), None) for name in summary["masks"].get("ablation", {})]
    for model in deeplab_models:
        rows += [(f"DeepLab ({deeplab_split})", model, (model, "miou"), None),
                 (f"DeepLab ({deeplab_split})", f"{model} + CRF", (model, "miou_crf"), DEEPLAB_VAL if model == "deeplab" else None)]
    return rows


def activation_repairs(ground_truth: np.ndarray, seed: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(under, over) of one image: how many pixels the mask repairs of the seed's under-activation (object
    pixels the seed calls background, the mask their class) and over-activation (background pixels the seed
    gives a class, the mask background); IGNORE in the ground truth is left out."""
    objects = (ground_truth > 0) & (ground_truth != IGNORE)
    background = ground_truth == 0
    under = int((objects & (seed == 0) & (mask == ground_truth)).sum())
    over = int((background & (seed > 0) & (mask == 0)).sum())
    return under, over


def repairs_figure(
    path: str, layout, ids: Sequence[str], map_dir: str, mask_dir: str, threshold: float, *, examples: int, seed_title: str,
) -> dict[str, list[str]]:
    """The images whose under-activation (top rows) and over-activation (bottom rows) the refinement repairs most:
    image, ground truth, seed, pseudo mask. Returns the ids of each kind."""
    scores = []
    for image_id in ids:
        labels, maps = load_map_file(os.path.join(map_dir, f"{image_id}.npz"))
        seed = seed_prediction(labels, maps, np.float32(threshold))
        mask = read_label_png(os.path.join(mask_dir, f"{image_id}.png"))
        scores.append((image_id, *activation_repairs(layout.load_mask(image_id), seed, mask)))
    chosen = {
        "under-activation": [s[0] for s in sorted(scores, key=lambda s: -s[1])[:examples]],
        "over-activation": [s[0] for s in sorted(scores, key=lambda s: -s[2])[:examples]],
    }
    rows = []
    for image_id in chosen["under-activation"] + chosen["over-activation"]:
        labels, maps = load_map_file(os.path.join(map_dir, f"{image_id}.npz"))
        rows.append([
            layout.load_image(image_id), layout.load_mask(image_id), seed_prediction(labels, maps, np.float32(threshold)),
            read_label_png(os.path.join(mask_dir, f"{image_id}.png")),
        ])
    qualitative_grid(path, rows, ["image", "ground truth", seed_title, "pseudo mask"])
    return chosen


def _seed_convention_lines(summary, seed_splits, variants) -> list[str]:
    """Where the reference's mIoU convention or its early-stopping "best" answer differently from ours, a table says so."""
    rows = []
    for split in seed_splits:
        for variant in variants:
            best = summary["seeds"][split][variant]
            top, early = best.get("global_max"), best.get("first_non_improving")
            if top is None or early is None:  # a best.json from before both were recorded
                continue
            differs = top["threshold"] != early["threshold"] or abs(top["miou_all_labels"] - top["miou_present_labels"]) > 1e-12
            if differs:
                rows.append(
                    f"| {split} | {variant} | {100 * top['miou_present_labels']:.1f} / {100 * top['miou_all_labels']:.1f} (t={top['threshold']:.2f}) "
                    f"| {100 * early['miou_present_labels']:.1f} / {100 * early['miou_all_labels']:.1f} (t={early['threshold']:.2f}) |"
                )
    if not rows:
        return []
    return ["", "The two mIoU conventions (present labels / all labels, the reference's) and the reference's early-stopping threshold, "
            "where they differ:", "", "| split | variant | global maximum | reference early stop |", "|---|---|---|---|", *rows]


def _diagnostics_lines(summary, seed_splits, variants, mask_splits, deeplab_models, deeplab_split) -> list[str]:
    """mIoU, mean precision / recall and FP / FN (%) of the seeds (at their threshold), the pseudo masks and DeepLab."""

    def cells(scores: dict) -> str:
        keys = ("miou", "mean_precision", "mean_recall", "fp_reference", "fn_reference", "mean_fp_rate")
        return " | ".join(f"{100 * scores[key]:.1f}" if key in scores else "-" for key in keys)

    rows = [(f"seeds {variant} ({split}, t={summary['seeds'][split][variant]['threshold']:.2f})", summary["seeds"][split][variant])
            for split in seed_splits for variant in variants]
    rows += [(f"pseudo masks ({split})", summary["masks"][split]) for split in mask_splits]
    for model in deeplab_models:
        rows += [(f"{model} ({deeplab_split})", summary[model]["pred"]), (f"{model} + CRF ({deeplab_split})", summary[model]["pred_crf"])]
    return [
        "## False positives and negatives", "",
        "FP and FN as the authors' evaluation.py computes them: per label, wrongly predicted (FP) or missed (FN) "
        "pixels over the label's union of prediction and ground truth, averaged over all labels, background included (an absent label "
        "adds 0; with mIoU, all labels, they sum to the share of labels present). FP / GT: wrongly predicted pixels over the label's "
        "ground truth, averaged over the labels with ground truth (it can exceed 100; its FN counterpart is 100 - mean recall). "
        "Per-class values: the sweep CSVs and eval CSVs.", "",
        "| | mIoU | mean precision | mean recall | FP | FN | FP / GT |", "|---|---|---|---|---|---|---|",
        *[f"| {name} | {cells(scores)} |" for name, scores in rows], "",
    ]


def _markdown(summary, seed_splits, variants, mask_splits, deeplab_models, deeplab_split, times, figure_dir, report_path, seed_plots,
              replicate_lines) -> str:
    figures = os.path.relpath(figure_dir, os.path.dirname(report_path))
    lines = ["# Run report", "", "Numbers of this run (mIoU, %) beside the paper's (PASCAL VOC 2012).", "",
             provenance_line(summary.get("provenance")), "", *replicate_lines]
    lines += ["## Seeds (best background threshold)", "", "| variant | " + " | ".join(seed_splits) + " | paper |", "|---|" + "---|" * (len(seed_splits) + 1)]
    for variant in variants:
        cells = [f"{100 * summary['seeds'][s][variant]['miou']:.1f} (t={summary['seeds'][s][variant]['threshold']:.2f})" for s in seed_splits]
        paper = seed_miou(variant)
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {paper if paper is not None else '-'} |")
    lines += _seed_convention_lines(summary, seed_splits, variants)
    lines += _predicted_label_lines(summary, seed_splits, variants)
    lines += ["", f"![seed ablation]({figures}/seed_ablation.png)", ""]
    lines += [f"![threshold sweep, {split}]({os.path.relpath(seed_plots[split], os.path.dirname(report_path))})" for split in seed_splits]
    method = summary["masks"].get("method", "psa")
    lines += ["", f"## Pseudo masks ({'PSA random walk' if method == 'psa' else 'IRN boundary walk'})", ""]
    for split in mask_splits:
        lines.append(f"- {split}: {100 * summary['masks'][split]['miou']:.1f} (paper: {PSEUDO_MASKS} on VOC train)")
    stats = summary["psa_labels" if method == "psa" else "irn_labels"]
    precision = f", precision vs ground truth {100 * stats['precision_vs_gt']:.1f} %" if "precision_vs_gt" in stats else ""
    if all(key in stats for key in ("foreground_precision", "background_precision", "objects_labelled_background")):
        precision += (f" (foreground {100 * stats['foreground_precision']:.1f} %, background {100 * stats['background_precision']:.1f} %; "
                      f"{100 * stats['objects_labelled_background']:.1f} % of the object pixels labelled background)")
    lines.append(f"- confident labels: {100 * stats['foreground_fraction']:.1f} % foreground, {100 * stats['background_fraction']:.1f} % background, "
                 f"{100 * stats['ignored_fraction']:.1f} % unsure{precision}")
    if "ablation" in summary["masks"]:
        lines += ["", f"PSA ablation on {mask_splits[0]}:", "", "| method | mIoU |", "|---|---|"]
        lines += [f"| {name} | {100 * miou:.1f} |" for name, miou in summary["masks"]["ablation"].items()]
    lines += ["", f"![examples]({figures}/examples_masks.png)", ""]
    lines += [
        "Repairs: the images whose under-activation (top half: object pixels the seed leaves to the background) and",
        "over-activation (bottom half: background the seed gives a class) the pseudo masks repair most.", "",
        f"![repairs]({figures}/repairs.png)", "",
    ]
    if "refinements" in summary:
        lines += ["## Refinements: seeds -> masks -> DeepLab", "", *refinement_markdown(summary["refinements"]), ""]
    lines += [f"## Segmentation ({deeplab_split})", ""]
    lines += ["| model | no CRF | + CRF | paper |", "|---|---|---|---|"]
    for model in deeplab_models:
        paper = DEEPLAB_VAL if model == "deeplab" else "-"
        lines.append(f"| {model} | {100 * summary[model]['miou']:.1f} | {100 * summary[model]['miou_crf']:.1f} | {paper} |")
    lines += ["", f"![per-class IoU]({figures}/per_class_iou.png)", "", f"![examples]({figures}/examples_deeplab.png)", ""]
    lines += _diagnostics_lines(summary, seed_splits, variants, mask_splits, deeplab_models, deeplab_split)
    lines += ["## Training", "", "The loss of every trainer per 50 steps and per epoch, with its learning rate (dashed); the numbers are in "
              "each trainer's log.jsonl beside its log.csv.", "", f"![training curves]({figures}/training_curves.png)", ""]
    lines += ["## Stage times", "", "| stage | seconds | peak RSS (MB) |", "|---|---|---|"]
    for _, row in times.iterrows():
        lines.append(f"| {row['stage']} | {row['seconds']:.1f} | {row['max_rss_mb']:.0f} |")
    lines.append(f"| total | {times['seconds'].sum():.1f} | |")
    return "\n".join(lines) + "\n"
