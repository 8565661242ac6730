"""The side-by-side target (workflow/rules/side_by_side.smk): the model dimension of the run layout, the models'
configs, the table on hand-computed numbers, the DAG it plans, and the MCTformer+ chain's classifier trained for real."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from test_replicates import T_975_2, planned_jobs

from helpers.workflow import REPO, shipped_config, snakemake, tiny_config
from mctformer.config import ConfigError, side_by_side_config, side_by_side_models
from mctformer.plots import paired_models_figure
from mctformer.run_layout import chain_model, chain_suffix, replicate_pattern, replicate_seed, side_by_side_files
from mctformer.side_by_side import column_titles, side_by_side_markdown, side_by_side_table


def test_a_chain_suffix_names_its_model_and_seed():
    assert chain_suffix(None, 0, 0) == "" and chain_suffix(None, 2, 0) == "/replicates/seed_2"
    assert chain_suffix("plus", 0, 0) == "/side_by_side/plus" and chain_suffix("plus", 2, 0) == "/side_by_side/plus/replicates/seed_2"
    for model in (None, "plus"):
        for seed in (0, 1, 7):
            suffix = chain_suffix(model, seed, 0)
            assert chain_model(suffix) == model and replicate_seed(suffix, 0) == seed  # the same seed whatever the model
    pattern = re.compile(replicate_pattern(["plus"]))
    for suffix in ("", "/replicates/seed_3", "/side_by_side/plus", "/side_by_side/plus/replicates/seed_3"):
        assert pattern.fullmatch(suffix)
    for suffix in ("/side_by_side/other", "/replicates/seed_3/side_by_side/plus", "/side_by_side"):
        assert not pattern.fullmatch(suffix)
    # no side-by-side model: the constraint the layout always had
    assert replicate_pattern([]) == "(/replicates/seed_[0-9]+)?"


def test_the_shipped_plus_model_is_the_run_with_the_overlays_classifier():
    config = shipped_config()
    assert side_by_side_models(config) == {"plus": "workflow/configs/synthetic_plus.yaml"}
    plus = side_by_side_config(config, "plus")
    assert plus["classifier"] == {**config["classifier"], "version": "plus", "gwrp_decay": 0.9514, "cct_blocks": 4}
    # the GWRP decay sized for 8x8 = 64 patches: the reference's last-rank weight over 28x28 = 784 patches
    assert plus["classifier"]["gwrp_decay"] ** 63 == pytest.approx(0.996 ** 783, rel=2e-3)
    # maps and every other key the run's
    assert {key: value for key, value in plus.items() if key != "classifier"} == {key: value for key, value in config.items() if key != "classifier"}


def test_a_models_overlay_must_exist_and_null_is_no_model():
    config = shipped_config()
    config["side_by_side"]["models"] = {"plus": None, "other": "workflow/configs/missing.yaml"}
    assert side_by_side_models(config) == {"other": "workflow/configs/missing.yaml"}
    with pytest.raises(ConfigError, match="side_by_side.models.other: config file .*missing.yaml does not exist"):
        side_by_side_config(config, "other")


def _write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value) if path.suffix == ".json" else value)
    return str(path)


def test_the_table_on_hand_computed_numbers(tmp_path):
    config = shipped_config()
    files = side_by_side_files(config, str(tmp_path / "run"), ["plus"], [0, 1, 2])
    assert list(files) == ["v2", "plus"] and [len(replicates) for replicates in files.values()] == [3, 3]
    assert files["plus"][1]["masks"]["psa"] == str(tmp_path / "run/side_by_side/plus/replicates/seed_1/masks/eval_train.json")
    # every metric of model m, replicate r: 0.1 * (m + 1) + 0.01 * r, but V2's PSA masks 0.40, 0.44, 0.42; each job 10 s,
    # but train_classifier 30 + r s
    for index, replicates in enumerate(files.values()):
        for replicate, paths in enumerate(replicates):
            for role in ("seeds", "masks", "deeplab"):
                for path in paths[role].values():
                    _write(tmp_path / path, {"miou": 0.1 * (index + 1) + 0.01 * replicate})
            for jobs in paths["benchmarks"].values():
                for path in jobs:
                    seconds = 30 + replicate if path.endswith("train_classifier.tsv") else 10
                    _write(tmp_path / path, f"s\th:m:s\n999\t0\n{seconds}\t0\n")  # the last row: the latest run
    for replicate, miou in enumerate((0.40, 0.44, 0.42)):
        _write(tmp_path / files["v2"][replicate]["masks"]["psa"], {"miou": miou})
    table = side_by_side_table(files, seeds=[0, 1, 2], versions={"v2": "v2", "plus": "plus"}, seed_variant="fused_feature_refined",
                               mask_split="train", deeplab_split="val")
    assert [row["name"] for row in table["rows"]] == ["MCTformer-V2", "MCTformer+"]
    v2, plus = table["rows"]
    assert plus["metrics"]["deeplab_crf"]["values"] == pytest.approx([0.20, 0.21, 0.22])
    assert plus["metrics"]["deeplab_crf"]["mean"] == pytest.approx(0.21) and plus["metrics"]["deeplab_crf"]["std"] == pytest.approx(0.01)
    assert v2["metrics"]["masks_psa"]["mean"] == pytest.approx(0.42) and v2["metrics"]["masks_psa"]["std"] == pytest.approx(0.02)
    # times: classifier = train_classifier + extract_maps = 40, 41, 42; the chain adds 3 + 3 + 2 jobs of 10 s
    assert v2["seconds"]["classifier"]["values"] == [40.0, 41.0, 42.0] and v2["seconds"]["chain"]["values"] == [120.0, 121.0, 122.0]
    # paired by seed: plus - V2 on the PSA masks = 0.20 - 0.40, 0.21 - 0.44, 0.22 - 0.42 = -0.20, -0.23, -0.20
    difference = table["differences"]["plus"]["masks_psa"]
    assert difference["values"] == pytest.approx([-0.20, -0.23, -0.20])
    std = math.sqrt(((0.01) ** 2 + (0.02) ** 2 + (0.01) ** 2) / 2)  # around the mean -0.21
    assert difference["mean"] == pytest.approx(-0.21) and difference["std"] == pytest.approx(std)
    assert difference["ci"] == pytest.approx([-0.21 - T_975_2 * std / math.sqrt(3), -0.21 + T_975_2 * std / math.sqrt(3)], rel=1e-5)
    assert table["differences"]["plus"]["seeds_train"]["values"] == pytest.approx([0.1, 0.1, 0.1])
    lines = side_by_side_markdown(table)
    assert "| MCTformer-V2 | 11.0 ± 1.0 | 11.0 ± 1.0 | 42.0 ± 2.0 | 11.0 ± 1.0 | 11.0 ± 1.0 | 11.0 ± 1.0 | 41 ± 1 | 121 ± 1 |" in lines
    assert any(line.startswith("| MCTformer+ - MCTformer-V2, paired by seed [95 % interval] | +10.0 ± 0.0 [+10.0, +10.0] |") for line in lines)
    # the papers' numbers: V2's seeds, masks and DeepLab (+ CRF); MCTformer+'s DeepLab val as cited
    assert "| paper (VOC): MCTformer-V2 (CVPR 2022); seeds: Attention + PatchCAM + PatchAffinity | 61.7 | - | 69.1 | - | - | 71.9 | | |" in lines
    assert any(line.startswith("| paper (VOC): MCTformer+") and line.endswith("| - | - | - | - | - | 74.0 | | |") for line in lines)
    assert lines[-1] == ("Wall seconds per replicate (seeds 0, 1, 2), classifier + maps / chain: MCTformer-V2 40, 41, 42 / 120, 121, 122; "
                         "MCTformer+ 40, 41, 42 / 120, 121, 122.")
    # the figure: a panel per column, a line per seed through the models' values (%), in the table's order
    figure = paired_models_figure(table, column_titles(table))
    assert [axis.get_title() for axis in figure.axes] == ["seeds train", "seeds val", "PSA masks train", "IRN masks train", "DeepLab val", "+ CRF"]
    psa_panel = figure.axes[2]
    assert [line.get_label() for line in psa_panel.get_lines()] == ["seed 0", "seed 1", "seed 2"]
    assert [list(line.get_ydata()) for line in psa_panel.get_lines()] == [pytest.approx([40, 20]), pytest.approx([44, 21]), pytest.approx([42, 22])]
    # one replicate: the means, no spread and no interval
    single = side_by_side_table({model: replicates[:1] for model, replicates in files.items()}, seeds=[0],
                                versions={"v2": "v2", "plus": "plus"}, seed_variant="fused_feature_refined", mask_split="train",
                                deeplab_split="val")
    lines = side_by_side_markdown(single)
    assert lines[0].startswith("mIoU (%), one replicate (seed 0): no spread to estimate;")
    assert "| MCTformer-V2 | 10.0 | 10.0 | 40.0 | 10.0 | 10.0 | 10.0 | 40 | 120 |" in lines
    assert any(line.startswith("| MCTformer+ - MCTformer-V2, paired by seed [95 % interval] | +10.0 | +10.0 | -20.0 |") for line in lines)
    # one replicate too few: refused, naming the model
    with pytest.raises(ValueError, match="model 'plus': 2 replicates' files for seeds"):
        side_by_side_table({**files, "plus": files["plus"][:2]}, seeds=[0, 1, 2], versions={"v2": "v2", "plus": "plus"},
                           seed_variant="fused_feature_refined", mask_split="train", deeplab_split="val")


def test_side_by_side_plans_both_models_from_one_prepared_dataset(tmp_path):
    config = tiny_config()
    config["replicates"] = 2
    result = snakemake(tmp_path, "side_by_side", "-n", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    rules = [rule for rule, _ in jobs]
    assert rules.count("prepare_data") == 1 and rules.count("class_labels") == 1 and rules.count("side_by_side") == 1
    chains = ["", "/replicates/seed_1", "/side_by_side/plus", "/side_by_side/plus/replicates/seed_1"]
    for rule in ("train_classifier", "extract_maps", "psa_labels", "train_affinity", "random_walk", "ir_labels", "train_irn", "irn_walk"):
        assert sorted(wildcards["replicate"] for name, wildcards in jobs if name == rule) == sorted(chains), rule
    # DeepLab on the PSA masks only (neither IRN's nor the ground truth's), once per chain
    assert sorted((wildcards["replicate"], wildcards["model"]) for name, wildcards in jobs if name == "train_deeplab") == sorted(
        (chain, "deeplab") for chain in chains)
    # without side-by-side models the target still plans the run's own replicates
    config["side_by_side"]["models"] = {"plus": None}
    result = snakemake(tmp_path, "side_by_side", "-n", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {wildcards["replicate"] for name, wildcards in planned_jobs(result.stdout + result.stderr) if name == "train_classifier"} == set(chains[:2])


def test_a_model_overlay_with_other_map_variants_is_refused_before_any_job(tmp_path):
    overlay = tmp_path / "other.yaml"
    overlay.write_text(yaml.safe_dump({"classifier": {"version": "plus"}, "maps": {"variants": ["fused_feature_refined"]}}))
    config = tiny_config()
    config["side_by_side"]["models"] = {"plus": str(overlay)}
    result = snakemake(tmp_path, "side_by_side", "-n", config=config)
    assert result.returncode != 0
    assert "side_by_side.models.plus: maps.variants ['fused_feature_refined'] must be the run's" in result.stdout + result.stderr
    overlay.write_text(yaml.safe_dump({"classifier": {"cct_blocks": 0}}))
    result = snakemake(tmp_path, "side_by_side", "-n", config=config)
    assert result.returncode != 0 and f"invalid config of side_by_side.models.plus ({overlay})" in result.stdout + result.stderr


def test_a_config_the_side_by_side_does_not_fit_still_plans_its_own_run(tmp_path):
    """synthetic_v1.yaml (V1's map variants, which MCTformer+ does not make): its own DAG plans as before; only the
    side_by_side target is refused, naming the model and the key."""
    config = tiny_config()
    v1 = yaml.safe_load((REPO / "workflow" / "configs" / "synthetic_v1.yaml").read_text())
    config["classifier"]["version"] = v1["classifier"]["version"]
    config["maps"]["variants"], config["psa"]["seed_variant"] = v1["maps"]["variants"], v1["psa"]["seed_variant"]
    result = snakemake(tmp_path, "-n", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    result = snakemake(tmp_path, "side_by_side", "-n", config=config)
    assert result.returncode != 0
    assert "invalid config of side_by_side.models.plus (workflow/configs/synthetic_plus.yaml): maps.variants" in result.stdout + result.stderr


def test_the_plus_chain_trains_mctformer_plus_on_the_runs_data(tiny_run, tmp_path):
    """The MCTformer+ chain's classifier and seeds, beside a copy of the session's tiny run: the run's data, not made
    again, and the overlay's classifier (its checkpoint's version, its loss columns), with the replicate's seed."""
    import torch

    for name in ("results", ".snakemake"):
        shutil.copytree(tiny_run / name, tmp_path / name, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    target = "results/tiny/side_by_side/plus/seeds/val/fused_feature_refined/best.json"
    result = snakemake(tmp_path, target)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    assert sorted(rule for rule, _ in jobs) == ["evaluate_seeds", "extract_maps", "train_classifier"], jobs
    chain = tmp_path / "results" / "tiny" / "side_by_side" / "plus"
    assert not (chain / "data").exists()
    checkpoint = torch.load(chain / "classifier" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert checkpoint["architecture"]["version"] == "plus"
    assert (chain / "classifier" / "log.csv").read_text().startswith("epoch,loss,token_loss,cct_loss,patchcam_loss,")
    own = torch.load(tiny_run / "results" / "tiny" / "classifier" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert own["architecture"]["version"] == "v2"
    assert 0 <= json.loads((tmp_path / target).read_text())["miou"] <= 1


def test_the_mctformer_plus_voc_config_plans_the_whole_chain_and_side_by_side(tmp_path):
    """`snakemake -n` with voc12_plus.yaml (a data root holding the split lists) plans every stage; voc12.yaml's
    side_by_side plans V2 and MCTformer+ from the one dataset."""
    root = tmp_path / "voc"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split in ("train_aug", "train", "val", "test"):
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("a\n")
    overlay = tmp_path / "root.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"root": str(root)}}))
    for name, target in (("voc12_plus", []), ("voc12", ["side_by_side"])):
        command = ["snakemake", *target, "-n", "--cores", "2", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                   "--configfile", str(REPO / "workflow" / "configs" / f"{name}.yaml"), str(overlay)]
        result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        jobs = planned_jobs(result.stdout + result.stderr)
        rules = {rule for rule, _ in jobs}
        assert {"train_classifier", "extract_maps", "evaluate_seeds", "psa_labels", "train_affinity", "random_walk",
                "train_deeplab", "infer_deeplab", "evaluate_deeplab"} <= rules, (name, rules)
        if target:
            assert {wildcards["replicate"] for rule, wildcards in jobs if rule == "train_classifier"} == {
                "", "/side_by_side/plus"}
