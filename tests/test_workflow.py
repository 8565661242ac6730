"""The workflow run through snakemake itself on a tiny config in a temporary folder."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers.workflow import REPO, miou_of_folder, snakemake, tiny_config


def test_prepare_data_and_labels_through_snakemake(tmp_path):
    result = snakemake(tmp_path, "results/tiny/labels/cls_labels.npy")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "results" / "tiny"
    assert (run / "data" / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().count("\n") == 48
    labels = np.load(run / "labels" / "cls_labels.npy", allow_pickle=True).item()
    assert len(labels) == 48 + 16
    assert (run / "logs" / "prepare_data.log").exists() and (run / "benchmarks" / "prepare_data.tsv").exists()
    # nothing left to do: the cached artifacts are reused
    again = snakemake(tmp_path, "results/tiny/labels/cls_labels.npy", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_whole_chain_so_far_on_a_tiny_config(tiny_run):
    run = tiny_run / "results" / "tiny"
    config = tiny_config()
    for split in config["data"]["splits"]["seed_eval"]:
        assert (run / "seeds" / split / "sweep.png").stat().st_size > 0
        for variant in config["maps"]["variants"]:
            best = json.loads((run / "seeds" / split / variant / "best.json").read_text())
            # config.yaml's seeds.*: the global maximum of the present-labels mIoU (sweep.csv's miou column, to 6 digits)
            assert best["selection"] == "global_max" and best["convention"] == "present_labels"
            rows = list(csv.DictReader((run / "seeds" / split / variant / "sweep.csv").open()))
            curve = {float(row["threshold"]): float(row["miou"]) for row in rows}
            assert len(curve) == 13 and best["miou"] == pytest.approx(max(curve.values()), abs=1e-6)  # 0.00, 0.05, ..., 0.60
            assert [miou for threshold, miou in curve.items() if abs(threshold - best["threshold"]) < 1e-9] == [pytest.approx(best["miou"], abs=1e-6)]
            header = (run / "seeds" / split / variant / "sweep.csv").read_text().splitlines()[0]
            assert header.startswith("threshold,miou,miou_all_labels,mean_precision,mean_recall,"
                                     "fp_reference,fn_reference,mean_fp_rate,mean_fn_rate,iou_background")
    for variant in config["maps"]["variants"]:
        files = list((run / "maps" / variant).glob("*.npz"))
        assert len(files) == 48 + 16  # train_aug plus the held-out val
    assert len(list((run / "maps" / "overlays").glob("*.png"))) == 2
    # PSA: labels for train_aug, pseudo masks for train_aug, their evaluation on train
    assert len(list((run / "psa" / "labels").glob("*.png"))) == 48
    assert json.loads((run / "psa" / "label_stats.json").read_text())["images"] == 48
    assert len(list((run / "masks" / "pseudo").glob("*.png"))) == 48
    masks = json.loads((run / "masks" / "eval_train.json").read_text())
    assert masks["images"] == 12 and masks["miou"] == pytest.approx(miou_of_folder(run, run / "masks" / "pseudo", "train"), abs=1e-12)
    assert (run / "psa" / "affinity_log.csv").read_text().startswith("epoch,loss,bg,fg,neg,lr,seconds")
    # DeepLab on pseudo masks and on ground truth, evaluated on val, and the report
    for model in ("deeplab", "deeplab_gt"):
        assert len(list((run / model / "pred_crf").glob("*.png"))) == 16
    summary = json.loads((run / "summary.json").read_text())
    for key in ("deeplab", "deeplab_gt"):  # each model's predictions, without and with the CRF, scored against the ground truth
        split = summary[key]["split"]
        assert split == config["deeplab"]["eval_split"]
        assert summary[key]["miou"] == pytest.approx(miou_of_folder(run, run / key / "pred", split), abs=1e-12)
        assert summary[key]["miou_crf"] == pytest.approx(miou_of_folder(run, run / key / "pred_crf", split), abs=1e-12)
    assert set(summary["seeds"]["val"]) == set(config["maps"]["variants"])
    assert summary["masks"]["miou"] == masks["miou"] and summary["total_seconds"] > 0
    provenance = summary["provenance"]  # mctformer/provenance.py
    assert len(provenance["config_sha256"]) == 64 and provenance["versions"]["torch"] and provenance["device"] == "cpu"
    assert {"commit", "dirty", "threads", "date"} <= set(provenance)
    assert set(summary["masks"]["ablation"]) == {
        "seeds", "seeds + CRF", "random walk, colour affinity", "random walk, learned affinity (PSA)",
    }
    report = (run / "report.md").read_text()
    assert "## Seeds" in report and "figures/seed_ablation.png" in report and "seeds/val/sweep.png" in report
    assert "provenance: commit" in report or "provenance: commit unknown" in report
    for figure in ("seed_ablation", "per_class_iou", "examples_masks", "examples_deeplab"):
        assert (run / "figures" / f"{figure}.png").stat().st_size > 1000
    assert not list(run.rglob(".*.tmp*")), "temporary files left behind"


def test_editing_a_late_stage_leaves_earlier_ones_alone(tiny_run):
    config = tiny_config()
    config["psa"]["logt"] = 2
    result = snakemake(tiny_run, "-n", config=config)
    out = result.stdout + result.stderr
    assert "random_walk" in out and "evaluate_masks" in out
    for upstream in ("train_classifier", "extract_maps", "psa_labels", "train_affinity"):
        assert f"rule {upstream}:" not in out and f"localrule {upstream}:" not in out


def test_editing_inference_settings_does_not_retrain(tiny_run):
    config = tiny_config()
    config["deeplab"]["scales"] = [1.0]
    result = snakemake(tiny_run, "-n", config=config)
    out = result.stdout + result.stderr
    assert "rule infer_deeplab:" in out and "rule evaluate_deeplab:" in out
    assert "rule train_deeplab:" not in out and "rule random_walk:" not in out


def test_editing_one_stage_reruns_only_it_and_its_dependents(tiny_run):
    config = tiny_config()
    config["maps"]["last_k"] = 2
    result = snakemake(tiny_run, "-n", config=config)
    out = result.stdout + result.stderr
    for downstream in ("extract_maps", "evaluate_seeds", "psa_labels", "train_affinity", "random_walk", "evaluate_masks"):
        assert f"rule {downstream}:" in out or f"localrule {downstream}:" in out, downstream
    for upstream in ("prepare_data", "class_labels", "train_classifier"):
        assert f"rule {upstream}:" not in out and f"localrule {upstream}:" not in out


def test_editing_resources_reruns_nothing(tiny_run):
    config = tiny_config()
    config["resources"]["rules"]["train_classifier"].update(mem_mb=64000, runtime=600)
    config["resources"]["partition"] = "gpu-long"
    result = snakemake(tiny_run, "-n", config=config)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_snakemake_report_holds_the_report_rule_figures(tiny_run):
    result = snakemake(tiny_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tiny_run / "report.html").read_text()
    for name in ("seed_ablation.png", "per_class_iou.png", "examples_masks.png", "examples_deeplab.png", "sweep.png"):
        assert name in html, name
    assert "From image-level labels only" in html, "the workflow description (workflow/report/workflow.rst)"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:  # the page as a reader sees it: the report's app renders the description without a script error
        shown = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                                "--virtual-time-budget=10000", "--dump-dom", (tiny_run / "report.html").as_uri()],
                               capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0 and "From image-level labels only" in shown.stdout
        assert '<table border="1" class="docutils">' in shown.stdout, "the description's table, rendered into the page"
        assert "Uncaught" not in shown.stderr, shown.stderr[-2000:]
    (tiny_run / "report.html").unlink()


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "Snakefile")], capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_reference_mode_runs_the_whole_chain(tmp_path):
    """The tiny config with every group in compat mode reference and no switch stated, so that the registry sets
    them all (mctformer/compat.py): the chain runs and writes what the switches ask for."""
    import torch

    from mctformer.compat import GROUPS, SWITCHES

    config = tiny_config("reference")
    for switch in SWITCHES:
        *parents, leaf = switch.key.split(".")
        section = config
        for part in parents:
            section = section[part]
        del section[leaf]
    config["compat"] = dict.fromkeys(GROUPS, "reference")
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "results" / "reference"
    best = json.loads((run / "seeds" / "train" / "fused" / "best.json").read_text())
    assert best["selection"] == "first_non_improving" and best["convention"] == "all_labels"
    assert best["threshold"] == best["first_non_improving"]["threshold"] and best["threshold"] <= 0.59
    with np.load(next((run / "maps" / "fused").glob("*.npz"))) as maps:
        assert maps["maps"].dtype == np.float32
    scores = sorted((run / "psa" / "labels").glob("*.npz"))
    assert len(scores) == 48  # the la/ha scores AffinityNet pools
    with np.load(scores[0]) as data:
        assert data["la"].shape == data["ha"].shape and data["la"].shape[0] == data["labels"].size + 1
    assert "background 0.39" in (run / "logs" / "random_walk.log").read_text()
    # the reference's DeepLab head reached the model: a second dilated 3x3 conv, no dropout module
    architecture = torch.load(run / "deeplab" / "checkpoint.pt", map_location="cpu", weights_only=False)["architecture"]
    assert architecture["classifier_kernel"] == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["deeplab"]["miou_crf"] == json.loads((run / "deeplab" / "eval_pred_crf.json").read_text())["miou"]
