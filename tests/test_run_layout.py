"""The artifact layout (mctformer/run_layout.py): the paths the rules and the report share, on hand-written cases."""

from __future__ import annotations

from mctformer.run_layout import (
    RunLayout,
    at_replicate,
    comparison_files,
    deeplab_models,
    flat_paths,
    replicate_seed,
    replicate_suffix,
    timed_jobs,
)

RUN = "results/tiny"
REP = "results/tiny{replicate}"
CONFIG = {
    "data": {"splits": {"seed_eval": ["train", "val"]}},
    "psa": {"eval_splits": ["train"], "seed_variant": "fused_refined"},
    "irn": {"eval_splits": ["val"], "seed_variant": "fused"},
    "seeds": {"labels": ["ground_truth"]},
}


def test_paths_of_one_run_folder():
    files = RunLayout(RUN)
    assert files.seed_best("val", "fused") == "results/tiny/seeds/val/fused/best.json"
    assert files.seed_plot("train") == "results/tiny/seeds/train/sweep.png"
    assert files.pseudo_masks("psa") == "results/tiny/masks/pseudo" and files.pseudo_masks("irn") == "results/tiny/masks/irn/pseudo"
    assert files.mask_evaluation("irn", "val", "csv") == "results/tiny/masks/irn/eval_val.csv"
    assert files.deeplab_evaluation("deeplab_gt", "pred_crf") == "results/tiny/deeplab_gt/eval_pred_crf.json"
    assert (files.log("report"), files.benchmark("report")) == ("results/tiny/logs/report.log", "results/tiny/benchmarks/report.tsv")
    assert files.figure("repairs") == "results/tiny/figures/repairs.png" and files.ablations == "results/tiny/ablations"
    # seeds.labels: predicted beside the ground truth's
    assert files.seed_best("val", "fused", predicted=True) == "results/tiny/seeds_predicted/val/fused/best.json"
    assert files.predicted_maps("fused") == "results/tiny/maps_predicted/fused"
    assert files.predicted_labels() == "results/tiny/classifier/predicted/cls_labels.npy"


def test_replicates_are_a_suffix_of_the_run_folder():
    assert replicate_suffix(RUN, 0, 0) == "" and replicate_suffix(RUN, 2, 0) == "/replicates/seed_2"
    assert replicate_seed("", 7) == 7 and replicate_seed("/replicates/seed_9", 7) == 9
    patterns = {"maps": [RunLayout(REP).maps("fused")], "best": RunLayout(REP).seed_best("val", "fused")}
    assert at_replicate(patterns, "/replicates/seed_1") == {
        "maps": ["results/tiny/replicates/seed_1/maps/fused"], "best": "results/tiny/replicates/seed_1/seeds/val/fused/best.json",
    }
    assert at_replicate(patterns, "")["best"] == "results/tiny/seeds/val/fused/best.json"


def test_the_comparison_reads_each_method_at_its_own_split_and_variant():
    files = comparison_files(CONFIG, RunLayout(RUN), ["psa", "irn"], ["psa"])
    # IRN's seeds: its variant on its mask split (val is swept); PSA's on train
    assert files["seed_bests"] == {"psa": "results/tiny/seeds/train/fused_refined/best.json", "irn": "results/tiny/seeds/val/fused/best.json"}
    assert files["crf_only_table"] == "results/tiny/masks/ablation_train.csv"
    assert files["mask_summaries"] == {"psa": "results/tiny/masks/eval_train.json", "irn": "results/tiny/masks/irn/eval_val.json"}
    assert files["deeplab_summaries"] == {"psa": {"pred": "results/tiny/deeplab/eval_pred.json", "pred_crf": "results/tiny/deeplab/eval_pred_crf.json"}}
    assert files["refinement_benchmarks"]["irn"] == [f"results/tiny/benchmarks/{job}.tsv" for job in ("ir_labels", "train_irn", "irn_walk")]
    assert files["deeplab_benchmarks"] == {"psa": ["results/tiny/benchmarks/train_deeplab.tsv", "results/tiny/benchmarks/infer_deeplab.tsv"]}
    paths = flat_paths(files)
    assert len(paths) == len(set(paths)) == 2 + 1 + 2 + 2 + 6 + 2
    # a split that is not swept has no seeds row; no PSA, no CRF-only table
    unswept = comparison_files({**CONFIG, "data": {"splits": {"seed_eval": ["train"]}}}, RunLayout(RUN), ["irn"], [])
    assert unswept["seed_bests"] == {} and unswept["crf_only_table"] is None


def test_the_timed_jobs_follow_the_refinements_and_models():
    assert deeplab_models(["psa", "irn"], True) == ["deeplab", "deeplab_irn", "deeplab_gt"] and deeplab_models(["irn"], False) == ["deeplab_irn"]
    shared, jobs = timed_jobs(CONFIG, ["psa"], ["deeplab"], "prepare_data")
    assert shared == ["class_labels", "prepare_data"]
    assert jobs == ["train_classifier", "extract_maps", "psa_labels", "train_affinity", "random_walk", "evaluate_seeds_train",
                    "evaluate_seeds_val", "evaluate_masks_train", "psa_ablation_train", "train_deeplab", "infer_deeplab",
                    "evaluate_deeplab_pred", "evaluate_deeplab_pred_crf"]
    predicted = timed_jobs({**CONFIG, "seeds": {"labels": ["ground_truth", "predicted"]}}, ["psa"], ["deeplab"], None)[1]
    assert predicted == [*jobs[:7], "predict_labels", "extract_maps_predicted", "evaluate_seeds_predicted_train",
                         "evaluate_seeds_predicted_val", *jobs[7:]]
    assert "evaluate_irn_masks_val" in timed_jobs(CONFIG, ["psa", "irn"], [], None)[1] and timed_jobs(CONFIG, [], [], None)[0] == ["class_labels"]
