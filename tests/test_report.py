import json

import numpy as np
import pandas as pd
import pytest

from mctformer.report import activation_repairs, add_replicates, collect_summary, per_class_figure, seed_ablation_figure


def test_activation_repairs_count_what_the_mask_fixes_of_the_seed():
    ground_truth = np.array([[0, 0, 1], [0, 1, 1], [255, 1, 0]])
    seed = np.array([[0, 2, 0], [0, 1, 0], [0, 0, 1]])
    mask = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1]])
    # under: object pixels the seed leaves to the background, (0,2) (1,2) (2,1); the mask gets (0,2) and (1,2) right
    # over: background the seed activates, (0,1) and (2,2); the mask clears (0,1) only; the 255 pixel never counts
    assert activation_repairs(ground_truth, seed, mask) == (2, 1)
    assert activation_repairs(ground_truth, seed, seed) == (0, 0)
    assert activation_repairs(ground_truth, seed, np.where(ground_truth == 255, 0, ground_truth)) == (3, 2)


def _write(path, payload):
    path.write_text(json.dumps(payload))
    return str(path)


def _stage_files(tmp_path):
    best = {"miou": 0.4, "threshold": 0.2}
    seed_bests = {split: {variant: _write(tmp_path / f"{split}_{variant}.json", {**best, "miou": (0.40, 0.41)[i]})
                          for i, variant in enumerate(("attention", "fused"))} for split in ("train", "val")}
    mask = _write(tmp_path / "masks.json", {"miou": 0.45, "split": "train"})
    ablation = tmp_path / "ablation.csv"
    pd.DataFrame({"method": ["seeds", "seeds + CRF"], "miou": [0.40, 0.41]}).to_csv(ablation, index=False)
    stats = _write(tmp_path / "stats.json", {"foreground_fraction": 0.2})
    deeplab = {model: {folder: _write(tmp_path / f"{model}_{folder}.json", {"miou": 0.5 + 0.01 * k})
                       for k, folder in enumerate(("pred", "pred_crf"))} for model in ("deeplab", "deeplab_gt")}
    benchmarks = []
    for stage, seconds in (("train_classifier", 10.0), ("report", 1.5)):
        path = tmp_path / f"{stage}.tsv"
        path.write_text(f"s\tmax_rss\n{seconds}\t100\n")
        benchmarks.append(str(path))
    return dict(seed_bests=seed_bests, mask_summaries={"train": mask}, ablation_table=str(ablation), label_stats=stats,
                refinement="psa", refinement_files=None, deeplab_summaries=deeplab, deeplab_split="val", benchmarks=benchmarks)


def test_collect_summary_gathers_every_stage_file_into_summary_json_s_tree(tmp_path):
    summary, times = collect_summary(**_stage_files(tmp_path))
    assert summary["seeds"]["val"]["fused"]["miou"] == 0.41 and summary["seeds"]["fused"] == summary["seeds"]["train"]["fused"]
    assert summary["masks"]["miou"] == 0.45 and summary["masks"]["method"] == "psa"
    assert summary["masks"]["ablation"] == {"seeds": 0.40, "seeds + CRF": 0.41}
    assert summary["psa_labels"] == {"foreground_fraction": 0.2} and "refinements" not in summary
    assert summary["deeplab"]["miou"] == 0.5 and summary["deeplab_gt"]["miou_crf"] == 0.51 and summary["deeplab"]["split"] == "val"
    assert summary["stage_seconds"] == {"report": 1.5, "train_classifier": 10.0} and summary["total_seconds"] == 11.5
    assert list(times["stage"]) == ["report", "train_classifier"]
    assert list(summary) == ["seeds", "masks", "stage_seconds", "psa_labels", "deeplab", "deeplab_gt", "total_seconds"]


def test_one_replicate_adds_nothing_and_a_missing_summary_is_refused(tmp_path):
    summary, _ = collect_summary(**_stage_files(tmp_path))
    before = json.dumps(summary)
    common = dict(replicates_plot=None, report_path=str(tmp_path / "report.md"), deeplab_split="val")
    assert add_replicates(summary, replicate_seeds=[0], replicate_summaries=[], **common) == []
    assert json.dumps(summary) == before
    with pytest.raises(ValueError, match="need 1 other summaries, got 0"):
        add_replicates(summary, replicate_seeds=[0, 1], replicate_summaries=[], **common)


def test_two_replicates_aggregate_every_metric_and_draw_the_strip_plot(tmp_path):
    summary, _ = collect_summary(**_stage_files(tmp_path))
    other = json.loads(json.dumps(summary))
    other["masks"]["miou"] = 0.55
    plot = tmp_path / "figures" / "replicates.png"
    lines = add_replicates(summary, replicate_seeds=[0, 1], replicate_summaries=[_write(tmp_path / "other.json", other)],
                           replicates_plot=str(plot), report_path=str(tmp_path / "report.md"), deeplab_split="val")
    assert summary["replicates"]["metrics"]["masks"]["miou"]["values"] == [0.45, 0.55]
    assert lines and plot.stat().st_size > 1000


def test_the_seed_ablation_and_per_class_figures_are_written(tmp_path):
    summary, _ = collect_summary(**_stage_files(tmp_path))
    seed_ablation_figure(str(tmp_path / "seed_ablation.png"), summary, "train", ["attention", "fused"])
    table = tmp_path / "per_class.csv"
    pd.DataFrame({"class": ["background", "disc"], "iou": [0.9, 0.4]}).to_csv(table, index=False)
    per_class_figure(str(tmp_path / "per_class.png"), str(table), {"deeplab": str(table)})
    assert (tmp_path / "seed_ablation.png").stat().st_size > 1000 and (tmp_path / "per_class.png").stat().st_size > 1000
