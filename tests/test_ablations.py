"""The paper's ablations: Patch-CAM alone, the maps of every K from one pass, the tables, and the four targets
through Snakemake on the tiny run (issue 17)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.arguments import tiny_mctformer
from helpers.workflow import snakemake, tiny_config
from mctformer.localize import (
    class_to_patch_attention,
    grid_maps,
    layer_grid_maps,
    multiscale_layer_maps,
    multiscale_maps,
    patchcam_maps,
)
from mctformer.models.mctformer import MCTformerOutput

OURS = dict(resize="torch_bilinear", remainder="resize", position_embedding="size", amp=False)


def test_patchcam_alone_is_the_relu_of_the_conv_maps():
    patchcam = torch.tensor([[[[-1.0, 0.5], [2.0, -3.0]], [[0.0, -0.25], [1.5, 4.0]]]])
    assert patchcam_maps(patchcam).tolist() == [[[[0.0, 0.5], [2.0, 0.0]], [[0.0, 0.0], [1.5, 4.0]]]]
    attention = torch.full((3, 1, 6, 6), 1.0)  # 3 blocks, 2 classes + 4 patches: every class-to-patch sum is 1 per block
    output = MCTformerOutput(torch.zeros(1, 2), torch.zeros(1, 2), patchcam, attention, torch.zeros(1, 4, 8), (2, 2))
    maps = grid_maps(output, ["patchcam", "fused"], 2, 2, 0.1)
    assert maps["patchcam"].tolist() == [[[[0.0, 0.5], [2.0, 0.0]], [[0.0, 0.0], [1.5, 4.0]]]]  # no attention in it
    assert maps["fused"].tolist() == [[[[0.0, 1.0], [4.0, 0.0]], [[0.0, 0.0], [3.0, 8.0]]]]  # the attention (2 blocks) times it
    v1 = MCTformerOutput(torch.zeros(1, 2), None, None, attention, torch.zeros(1, 4, 8), (2, 2))
    with pytest.raises(ValueError, match="patchcam"):
        grid_maps(v1, ["patchcam"], 2, 2, 0.1)


def test_layer_maps_are_the_class_to_patch_sums_of_the_last_k_blocks():
    attention = torch.stack([torch.full((1, 6, 6), float(10**level)) for level in range(3)])  # block l holds 10^l
    attention[2, 0, 1, 2:] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # class 1 -> patches, last block
    maps = layer_grid_maps(attention, 2, (2, 2), [1, 2, 3])
    assert maps[1][0, 0].tolist() == [[100, 100], [100, 100]]
    assert maps[1][0, 1].tolist() == [[1, 2], [3, 4]]
    assert maps[2][0, 0].tolist() == [[110, 110], [110, 110]]
    assert maps[3][0, 1].tolist() == [[12, 13], [14, 15]]
    for depth in (1, 2, 3):
        assert torch.equal(maps[depth], class_to_patch_attention(attention, 2, (2, 2), last_k=depth))


def test_one_pass_gives_what_each_last_k_extraction_gives():
    """multiscale_layer_maps' K equals multiscale_maps' attention with last_k = K, bit for bit (scales, flips)."""
    torch.manual_seed(0)
    model = tiny_mctformer(3, version="v2").eval()
    images = torch.randn(2, 3, 32, 40)
    present = torch.tensor([[True, False, True], [False, True, False]])
    depths = list(range(1, len(model.blocks) + 1))
    every_k = multiscale_layer_maps(model, images, present, depths, scales=[1.0, 0.75], flip=True, **OURS)
    assert sorted(every_k) == depths
    for depth in depths:
        one = multiscale_maps(model, images, present, ["attention"], scales=[1.0, 0.75], flip=True, last_k=depth,
                              feature_temperature=0.1, **OURS)["attention"]
        for ours, expected in zip(every_k[depth], one):
            assert ours.shape == expected.shape and torch.equal(ours, expected), depth
    assert not torch.equal(every_k[1][0], every_k[depths[-1]][0])


def _best(path, miou, threshold=0.3):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threshold": threshold, "miou": miou, "miou_all_labels": miou, "mean_precision": 0.5,
                                "mean_recall": 0.6, "fp_reference": 0.2, "fn_reference": 0.1, "mean_fp_rate": 0.3, "mean_fn_rate": 0.4}))
    return str(path)


def test_tables_put_the_papers_numbers_beside_ours(tmp_path):
    from mctformer.stages.ablations import heads_table_stage, maps_table_stage, segmentation_table_stage

    bests = {variant: {split: _best(tmp_path / split / variant / "best.json", miou) for split in ("train", "val")}
             for variant, miou in (("patchcam", 0.4), ("fused", 0.5), ("fused_refined", 0.25))}
    table = maps_table_stage(version="v2", seed_bests=bests, table_path=str(tmp_path / "maps.csv"),
                             plot_path=str(tmp_path / "maps.png"), section_path=str(tmp_path / "maps.md"))
    on_disk = pd.read_csv(tmp_path / "maps.csv")
    assert on_disk["variant"].tolist() == ["patchcam", "patchcam", "fused", "fused", "fused_refined", "fused_refined"]
    assert on_disk["paper_miou"].tolist()[2:] == [58.2, 58.2, 61.7, 61.7] and np.isnan(on_disk["paper_miou"][0])
    assert table["miou"].tolist() == [0.4, 0.4, 0.5, 0.5, 0.25, 0.25]
    section = (tmp_path / "maps.md").read_text()
    assert "| fused | MCTformer-V2 (Attention + PatchCAM) | 50.0 (t=0.30) | 20.0 | 10.0 | 50.0 (t=0.30) | 20.0 | 10.0 | 58.2 |" in section
    assert "| patchcam | - | 40.0 (t=0.30) |" in section and "![maps](maps.png)" in section
    # V1 has other rows: its attention is the paper's 47.2, and it has no Patch-CAM
    v1 = maps_table_stage(version="v1", seed_bests={"attention": bests["fused"]}, table_path=str(tmp_path / "v1.csv"),
                          plot_path=str(tmp_path / "v1.png"), section_path=str(tmp_path / "v1.md"))
    assert v1["paper_miou"].tolist() == [47.2, 47.2]

    heads = {pooling: {"train": _best(tmp_path / pooling / "best.json", miou)} for pooling, miou in (("avg", 0.5), ("fc", 0.3))}
    table = heads_table_stage(version="v2", poolings=["avg", "fc"], config_pooling="avg", seed_bests=heads,
                              table_path=str(tmp_path / "heads.csv"), plot_path=str(tmp_path / "heads.png"),
                              section_path=str(tmp_path / "heads.md"))
    assert table["paper_miou"].tolist() == [47.2, 41.5] and table["run_classifier"].tolist() == [True, False]
    assert "| Fully-connected (fc) | 30.0 (t=0.30) | 20.0 | 10.0 | 41.5 |" in (tmp_path / "heads.md").read_text()

    def evaluation(name, miou):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"miou": miou, "fp_reference": 0.05, "fn_reference": 0.15}))
        return str(path)

    table = segmentation_table_stage(
        version="v2", seed_variant="fused_refined", seed_split="train", deeplab_split="val",
        seed_bests={"fused": bests["fused"]["train"], "fused_refined": bests["fused_refined"]["train"]},
        mask_summaries={"fused": {"train": evaluation("m1", 0.6)}, "fused_refined": {"train": evaluation("m2", 0.7)}},
        deeplab_summaries={v: {"pred": evaluation(f"{v}_p", p), "pred_crf": evaluation(f"{v}_c", c)}
                           for v, p, c in (("fused", 0.55, 0.58), ("fused_refined", 0.62, 0.64))},
        table_path=str(tmp_path / "seg.csv"), plot_path=str(tmp_path / "seg.png"), section_path=str(tmp_path / "seg.md"),
    )
    assert table["deeplab_miou_crf"].tolist() == [0.58, 0.64] and table["paper_miou"].tolist() == [61.1, 62.6]
    assert table["run_chain"].tolist() == [False, True] and table["pseudo_miou_train"].tolist() == [0.6, 0.7]
    assert ("| fused_refined (the run's chain) | MCTformer-V2 (Attention + PatchCAM + PatchAffinity) | 25.0 | 70.0 | 62.0 | 64.0 "
            "| 5.0 | 15.0 | 62.6 |") in (tmp_path / "seg.md").read_text()

    from mctformer.stages.ablations import ablations_report_stage

    ablations_report_stage(run_name="tiny", sections=[str(tmp_path / "maps.md"), str(tmp_path / "seg.md")],
                           report_path=str(tmp_path / "ablations.md"))
    joint = (tmp_path / "ablations.md").read_text()
    assert joint.startswith("# Ablations of run tiny") and joint.index("(Table 5)") < joint.index("(Table 6)")


def test_replicated_ablation_tables_by_hand(tmp_path):
    """Two replicates' layer tables: every measured cell becomes mean, sample std and the t-interval; flags, names and
    the paper's numbers stay; tables with other rows are refused."""
    from mctformer.ablation_tables import aggregate_ablation_tables
    from mctformer.stages.ablations import ablation_replicates_stage

    def layers(mious, fps):
        return pd.DataFrame({"split": ["train", "train"], "last_k": [1, 2], "config_last_k": [False, True], "threshold": [0.3, 0.35],
                             "miou": mious, "fp_reference": fps, "fn_reference": [0.5, 0.25], "paper_miou": [np.nan, 47.2]})

    first, second = layers([0.2, 0.4], [0.1, 0.3]), layers([0.3, 0.6], [0.1, 0.2])
    table = aggregate_ablation_tables([first, second], keys=("split", "last_k"), confidence=0.95)
    assert table["last_k"].tolist() == [1, 2] and table["config_last_k"].tolist() == [False, True] and table["n"].tolist() == [2, 2]
    assert np.isnan(table["paper_miou"][0]) and table["paper_miou"][1] == 47.2 and "paper_miou_mean" not in table
    # K = 2: mIoU 0.4 and 0.6, mean 0.5, sample std sqrt(2 * 0.1^2 / 1) = 0.14142, half width t_{0.975, 1} * 0.14142 / sqrt(2)
    row = table.iloc[1]
    assert row["miou_values"] == [0.4, 0.6] and row["miou_mean"] == pytest.approx(0.5) and row["miou_std"] == pytest.approx(0.141421, rel=1e-5)
    assert (row["miou_ci_low"], row["miou_ci_high"]) == pytest.approx((0.5 - 1.2706205, 0.5 + 1.2706205), rel=1e-6)
    assert table.iloc[0]["fp_reference_std"] == 0.0 and table.iloc[0]["fn_reference_mean"] == 0.5
    with pytest.raises(ValueError, match="other rows"):
        aggregate_ablation_tables([first, second.iloc[::-1]], keys=("split", "last_k"), confidence=0.95)
    flipped = second.assign(config_last_k=[True, False])
    with pytest.raises(ValueError, match="'config_last_k'"):
        aggregate_ablation_tables([first, flipped], keys=("split", "last_k"), confidence=0.95)

    paths = []
    for index, frame in enumerate((first, second)):
        frame.to_csv(tmp_path / f"layers_{index}.csv", index=False)
        paths.append(str(tmp_path / f"layers_{index}.csv"))
    out = tmp_path / "replicates"
    ablation_replicates_stage(ablation="layers", seeds=[0, 1], tables=paths, table_path=str(out / "layers.csv"),
                              plot_path=str(out / "layers.png"), section_path=str(out / "layers.md"))
    on_disk = pd.read_csv(out / "layers.csv")
    assert on_disk["miou_values"].tolist() == ["0.2;0.3", "0.4;0.6"] and on_disk["miou_mean"].tolist() == pytest.approx([0.25, 0.5])
    section = (out / "layers.md").read_text()
    assert section.startswith("## Layers fused (Fig. 6), 2 replicates") and "![layers](layers.png)" in section
    # K | mIoU, FP, FN on train (mean ± std, %) | paper
    assert "| K = 2 (maps.last_k) | 50.0 ± 14.1 | 25.0 ± 7.1 | 25.0 ± 0.0 | 47.2 |" in section
    assert "| K = 1 | 25.0 ± 7.1 | 10.0 ± 0.0 | 50.0 ± 0.0 | - |" in section
    assert (out / "layers.png").stat().st_size > 1000
    # Table 6's columns: seeds, pseudo masks per split, DeepLab without and with CRF, FP / FN with CRF
    def segmentation(offset):
        return pd.DataFrame({"variant": ["fused", "fused_refined"], "paper_row": ["a", "b"], "run_chain": [False, True],
                             "seed_miou": [0.4 + offset, 0.5], "pseudo_miou_train": [0.45, 0.55 + offset], "deeplab_miou": [0.5, 0.6],
                             "deeplab_fp": [0.1, 0.1], "deeplab_fn": [0.2, 0.2], "deeplab_miou_crf": [0.52 + offset, 0.62],
                             "deeplab_fp_crf": [0.1, 0.1], "deeplab_fn_crf": [0.2, 0.2], "paper_miou": [61.1, 62.6]})

    for index, offset in enumerate((0.0, 0.02, 0.04)):
        segmentation(offset).to_csv(tmp_path / f"segmentation_{index}.csv", index=False)
    ablation_replicates_stage(ablation="segmentation", seeds=[3, 4, 5], tables=[str(tmp_path / f"segmentation_{i}.csv") for i in range(3)],
                              table_path=str(out / "segmentation.csv"), plot_path=str(out / "segmentation.png"),
                              section_path=str(out / "segmentation.md"))
    section = (out / "segmentation.md").read_text()
    # fused: seeds 0.40 / 0.42 / 0.44 (mean 42.0, std 2.0), DeepLab + CRF 0.52 / 0.54 / 0.56 (54.0 ± 2.0)
    assert "| variant | seeds | pseudo masks train | DeepLab | + CRF | FP (+ CRF) | FN (+ CRF) | paper mIoU |" in section
    assert "| fused | 42.0 ± 2.0 | 45.0 ± 0.0 | 50.0 ± 0.0 | 54.0 ± 2.0 | 10.0 ± 0.0 | 20.0 ± 0.0 | 61.1 |" in section
    assert "| fused_refined (the run's chain) | 50.0 ± 0.0 | 57.0 ± 2.0 |" in section
    assert "3 replicates" in section and (out / "segmentation.png").stat().st_size > 1000
    flipped.to_csv(tmp_path / "flipped.csv", index=False)
    with pytest.raises(ValueError, match=r"'config_last_k'.*in order: \S*layers_0\.csv, \S*flipped\.csv"):
        ablation_replicates_stage(ablation="layers", seeds=[0, 1], tables=[paths[0], str(tmp_path / "flipped.csv")],
                                  table_path=str(out / "bad.csv"), plot_path=str(out / "bad.png"), section_path=str(out / "bad.md"))
    assert not (out / "bad.csv").exists()
    with pytest.raises(ValueError, match="one table per seed"):
        ablation_replicates_stage(ablation="layers", seeds=[0], tables=paths, table_path=str(out / "x.csv"),
                                  plot_path=str(out / "x.png"), section_path=str(out / "x.md"))


def test_segmentation_variants_must_be_made_by_the_model_version():
    from mctformer.config import ConfigError, check_config

    config = tiny_config()
    config["ablations"]["segmentation"]["variants"]["v2"] = ["fused", "attention_refined"]  # a V1 variant for V2
    with pytest.raises(ConfigError, match="ablations.segmentation.variants.v2: 'attention_refined'"):
        check_config(config)
    config["ablations"]["segmentation"]["variants"] = {"v1": ["attention", "patchcam"], "v2": ["fused"]}
    with pytest.raises(ConfigError, match="variants.v1: 'patchcam'"):
        check_config(config)


def test_the_default_target_runs_no_ablation(tmp_path):
    result = snakemake(tmp_path, "-n")
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "rule report:" in out, out[-3000:]
    assert "rule ablation" not in out and "/ablations/" not in out  # psa_ablation is the run's own


RUN_RULES = ("train_classifier", "extract_maps", "evaluate_seeds", "psa_labels", "train_affinity", "random_walk", "train_deeplab")


def run_targets(tiny_run, tmp_path, *targets):
    """``targets`` in one snakemake call on a copy of the tiny run; they must reuse its jobs, none of which reruns."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)  # copy2 keeps the mtimes: the run stays complete
    result = snakemake(workdir, *targets)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    for rule in RUN_RULES:
        assert f"rule {rule}:" not in out and f"localrule {rule}:" not in out, rule
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake(workdir, "-n"))  # the run itself untouched
    return workdir, workdir / "results" / "tiny"


def main_best(run, split, variant):
    return json.loads((run / "seeds" / split / variant / "best.json").read_text())


def test_layers_heads_and_maps_targets_on_the_tiny_run(tiny_run, tmp_path):
    """Fig. 6, Table 7 and Table 5 in one call: each writes its CSV, figure and section, beside the run's own numbers."""
    workdir, run = run_targets(tiny_run, tmp_path, "ablation_layers", "ablation_heads", "ablation_maps")
    ablations = run / "ablations"
    config = tiny_config()
    splits = config["data"]["splits"]["seed_eval"]
    for name in ("layers", "heads", "maps"):
        assert (ablations / f"{name}.png").stat().st_size > 1000 and (ablations / f"{name}.csv").exists(), name
    assert "## Layers fused (Fig. 6)" in (ablations / "layers.md").read_text()
    assert "## Class-token pooling (Table 7)" in (ablations / "heads.md").read_text()
    assert "## Localization maps (Table 5)" in (ablations / "maps.md").read_text()

    # Fig. 6: K = 1..4 on each split; K = maps.last_k is the run's own attention seed
    layers = pd.read_csv(ablations / "layers.csv")
    assert layers["last_k"].tolist() == [1, 2, 3, 4] * len(splits)
    for split in splits:
        row = layers[(layers["split"] == split) & (layers["last_k"] == config["maps"]["last_k"])].iloc[0]
        best = main_best(run, split, "attention")
        assert row["config_last_k"] and row["threshold"] == best["threshold"]
        for column in ("miou", "fp_reference", "fn_reference"):
            assert row[column] == pytest.approx(best[column], rel=1e-5), (split, column)
    assert layers["miou"].nunique() > 1
    sweeps = pd.read_csv(ablations / "layers_sweeps.csv")
    assert len(sweeps) == len(layers) * 13  # thresholds 0.00..0.60 step 0.05

    # Table 7: max and fc trained under ablations/, avg is the run's classifier
    from mctformer.training.classifier import load_classifier

    assert not (ablations / "heads" / "avg" / "classifier").exists()
    for pooling in ("max", "fc"):
        assert load_classifier(ablations / "heads" / pooling / "classifier" / "checkpoint.pt", 4, device="cpu").token_pooling == pooling
    heads = pd.read_csv(ablations / "heads.csv")
    assert heads["pooling"].tolist() == [p for p in ("avg", "max", "fc") for _ in splits]
    average = heads[(heads["pooling"] == "avg") & (heads["split"] == splits[0])].iloc[0]
    assert average["miou"] == pytest.approx(main_best(run, splits[0], "attention")["miou"], rel=1e-5)
    assert heads["paper_miou"].tolist() == [47.2] * len(splits) + [26.8] * len(splits) + [41.5] * len(splits)

    # Table 5: the run's four variants and Patch-CAM alone, extracted by one extra pass for every image the chain uses
    maps = pd.read_csv(ablations / "maps.csv")
    assert maps["variant"].unique().tolist() == ["attention", "patchcam", "fused", "fused_refined", "fused_feature_refined"]
    assert len(list((ablations / "maps" / "maps" / "patchcam").glob("*.npz"))) == 48 + 16
    assert not (ablations / "maps" / "maps" / "fused").exists()
    fused = maps[(maps["variant"] == "fused") & (maps["split"] == splits[0])].iloc[0]
    assert fused["miou"] == pytest.approx(main_best(run, splits[0], "fused")["miou"], rel=1e-5) and fused["paper_miou"] == 58.2

    # editing an ablation key reruns that ablation alone
    edited = tiny_config()
    edited["ablations"]["heads"]["poolings"] = ["avg", "max"]
    dry = snakemake(workdir, "-n", "ablation_layers", "ablation_heads", "ablation_maps", config=edited)
    out = dry.stdout + dry.stderr
    assert "rule ablation_heads_replicate:" in out and "rule ablation_heads_train_classifier:" not in out
    for rule in ("ablation_layers_replicate", "ablation_maps_replicate", "ablation_heads_extract_maps"):
        assert f"rule {rule}:" not in out, rule


def test_segmentation_target_and_the_joint_report_on_the_tiny_run(tiny_run, tmp_path):
    """Table 6: the second variant through the run's PSA and DeepLab rules under ablations/; `ablations` joins the sections."""
    workdir, run = run_targets(tiny_run, tmp_path, "ablation_segmentation")
    ablations = run / "ablations"
    assert (ablations / "segmentation.png").stat().st_size > 1000
    assert "## Segmentation from two map variants (Table 6)" in (ablations / "segmentation.md").read_text()
    # Table 6: fused through its own chain, fused_feature_refined (psa.seed_variant) is the run's
    segmentation = pd.read_csv(ablations / "segmentation.csv")
    assert segmentation["variant"].tolist() == ["fused", "fused_feature_refined"]
    assert segmentation["run_chain"].tolist() == [False, True]
    chain = ablations / "segmentation" / "fused"
    assert len(list((chain / "psa" / "labels").glob("*.png"))) == 48 and len(list((chain / "masks" / "pseudo").glob("*.png"))) == 48
    assert len(list((chain / "deeplab" / "pred_crf").glob("*.png"))) == 16
    ours = json.loads((chain / "deeplab" / "eval_pred_crf.json").read_text())
    assert segmentation["deeplab_miou_crf"][0] == pytest.approx(ours["miou"], rel=1e-5)
    run_chain = json.loads((run / "deeplab" / "eval_pred_crf.json").read_text())
    assert segmentation["deeplab_miou_crf"][1] == pytest.approx(run_chain["miou"], rel=1e-5)
    assert not (ablations / "segmentation" / "fused_feature_refined").exists()
    assert not list(run.rglob(".*.tmp*")), "temporary files left behind"
    # `ablations` also needs the other three sections: its dry run lists them and the joint report, not this chain again
    dry = snakemake(workdir, "-n", "ablations")
    out = dry.stdout + dry.stderr
    for rule in ("ablation_layers_replicate", "ablation_heads_replicate", "ablation_maps_replicate", "ablations"):
        assert f"rule {rule}:" in out, rule
    assert "rule ablation_segmentation_replicate:" not in out and "rule ablation_train_deeplab:" not in out
    assert "ablation_replicates" not in out  # one replicate: its own tables are the answer
