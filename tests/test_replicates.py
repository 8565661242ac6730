"""Replicates (config `replicates`): the aggregation on hand-computed numbers, and the fan-out through Snakemake."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from helpers.workflow import snakemake, tiny_config
from mctformer.artifacts import load_map_file
from mctformer.replicates import aggregate_summaries, mean_interval, metric_at, replicate_table

# Student's t quantiles from the tables: t_{0.975, 2}, t_{0.975, 1}, t_{0.95, 2}
# Student's t quantiles (scipy.stats.t.ppf(0.975, 2), (0.975, 1), (0.95, 2)) to full float precision: the interval of
# two replicates whose values are far apart has a low end near zero, where a rounded quantile's error is far above
# the rel=1e-5 the tests allow (a run's times are among the aggregated leaves, so that happened by chance)
T_975_2, T_975_1, T_95_2 = 4.302652729749462, 12.706204736174694, 2.9199855803537242


def test_mean_interval_of_one_two_three():
    # mean 2; sample variance ((1-2)^2 + 0 + (3-2)^2) / (3 - 1) = 1; half width t * 1 / sqrt(3)
    result = mean_interval([1, 2, 3], confidence=0.95)
    half = T_975_2 / math.sqrt(3)  # 2.48414
    assert result["values"] == [1.0, 2.0, 3.0] and result["n"] == 3
    assert result["mean"] == 2.0 and result["std"] == pytest.approx(1.0)
    assert result["ci"] == pytest.approx([2 - half, 2 + half], rel=1e-6)
    assert result["ci"] == pytest.approx([-0.48414, 4.48414], abs=1e-5)
    assert mean_interval([1, 2, 3], confidence=0.90)["ci"] == pytest.approx([2 - T_95_2 / math.sqrt(3), 2 + T_95_2 / math.sqrt(3)], rel=1e-6)


def test_mean_interval_of_two_values_and_of_one():
    # [2, 4]: mean 3, std sqrt(2), half width t_{0.975,1} * sqrt(2) / sqrt(2) = 12.706
    result = mean_interval([2, 4], confidence=0.95)
    assert result["mean"] == 3.0 and result["std"] == pytest.approx(math.sqrt(2))
    assert result["ci"] == pytest.approx([3 - T_975_1, 3 + T_975_1], rel=1e-6)
    # equal values: no spread, the interval is the point
    assert mean_interval([0.5, 0.5, 0.5], confidence=0.95) == {"values": [0.5] * 3, "n": 3, "mean": 0.5, "std": 0.0, "ci": [0.5, 0.5]}
    # one value: no spread to estimate
    assert mean_interval([0.7], confidence=0.95) == {"values": [0.7], "n": 1, "mean": 0.7, "std": None, "ci": None}
    with pytest.raises(ValueError):
        mean_interval([], confidence=0.95)
    with pytest.raises(ValueError):
        mean_interval([1, 2], confidence=95)


def test_aggregate_summaries_mirrors_the_tree():
    summaries = [
        {"seeds": {"val": {"miou": 0.1, "selection": "global_max"}}, "deeplab": {"miou": 0.5, "split": "val"},
         "rows": [{"name": "psa", "masks": 1.0}, {"name": "crf", "masks": None}], "only_here": 3, "flag": True, "varies": "a"},
        {"seeds": {"val": {"miou": 0.2, "selection": "global_max"}}, "deeplab": {"miou": 0.7, "split": "val"},
         "rows": [{"name": "psa", "masks": 2.0}, {"name": "crf", "masks": None}], "flag": True, "varies": "b"},
        {"seeds": {"val": {"miou": 0.3, "selection": "global_max"}}, "deeplab": {"miou": 0.9, "split": "val"},
         "rows": [{"name": "psa", "masks": 3.0}, {"name": "crf", "masks": None}], "flag": True, "varies": "c"},
    ]
    aggregate = aggregate_summaries(summaries, seeds=[4, 5, 6], confidence=0.95)
    assert aggregate["seeds"] == [4, 5, 6] and aggregate["n"] == 3 and aggregate["confidence"] == 0.95
    metrics = aggregate["metrics"]
    seeds = metrics["seeds"]["val"]["miou"]
    assert seeds["values"] == [0.1, 0.2, 0.3] and seeds["mean"] == pytest.approx(0.2) and seeds["std"] == pytest.approx(0.1)
    assert seeds["ci"] == pytest.approx([0.2 - 0.1 * T_975_2 / math.sqrt(3), 0.2 + 0.1 * T_975_2 / math.sqrt(3)], rel=1e-6)
    assert metrics["deeplab"]["miou"]["std"] == pytest.approx(0.2) and metrics["deeplab"]["split"] == "val"
    assert metrics["seeds"]["val"]["selection"] == "global_max"
    # lists item by item; names and nulls the same in every replicate are kept
    assert metrics["rows"][0]["name"] == "psa" and metrics["rows"][0]["masks"]["mean"] == 2.0 and metrics["rows"][1] == {"name": "crf", "masks": None}
    # what one replicate lacks, or what differs without being a number, is left out; a bool is no metric
    assert "only_here" not in metrics and "varies" not in metrics and metrics["flag"] is True
    assert metric_at(metrics, ["deeplab", "miou"])["mean"] == pytest.approx(0.7)
    assert metric_at(metrics, ["deeplab", "split"]) is None and metric_at(metrics, ["nothing", "here"]) is None
    with pytest.raises(ValueError):
        aggregate_summaries(summaries, seeds=[4, 5], confidence=0.95)


def test_replicate_table_in_percent_beside_the_paper():
    summaries = [{"masks": {"miou": value}, "deeplab": {"miou": value / 2}} for value in (0.6, 0.7, 0.8)]
    aggregate = aggregate_summaries(summaries, seeds=[0, 1, 2], confidence=0.95)
    rows = [("pseudo masks", "psa", ("masks", "miou"), 69.1), ("DeepLab", "deeplab", ("deeplab", "miou"), None),
            ("DeepLab", "missing", ("deeplab_gt", "miou"), None)]
    table = replicate_table(aggregate, rows)
    assert list(table["metric"]) == ["psa", "deeplab"]  # a metric the summaries lack is left out
    first = table.iloc[0]
    assert first["values"] == pytest.approx([60, 70, 80]) and first["mean"] == pytest.approx(70) and first["std"] == pytest.approx(10)
    half = 10 * T_975_2 / math.sqrt(3)
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((70 - half, 70 + half), rel=1e-6) and first["paper"] == 69.1
    assert table.iloc[1]["mean"] == pytest.approx(35)


# ---------------------------------------------------------------- through Snakemake ---

UPSTREAM_OF_DEEPLAB = ("prepare_data", "class_labels", "train_classifier", "extract_maps", "evaluate_seeds", "psa_labels",
                       "train_affinity", "random_walk", "evaluate_masks", "psa_ablation")


def planned_jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job in a Snakemake run's or dry run's log."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", "\n" + output):
        match = re.match(r"(?:local)?rule (\w+):\n", block)
        if not match:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        pairs = [item.split("=", 1) for item in wildcards.group(1).split(", ")] if wildcards else []
        jobs.append((match.group(1), dict(pairs)))
    return jobs


def numeric_leaves(tree, path=()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from numeric_leaves(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from numeric_leaves(value, (*path, index))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def two_replicate_config() -> dict:
    config = tiny_config()
    config["replicates"] = 2
    return config


@pytest.fixture(scope="module")
def two_replicates(tiny_run, tmp_path_factory):
    """The tiny run with a second replicate: a copy of the session's tiny run (its records too) run with replicates: 2."""
    workdir = tmp_path_factory.mktemp("replicates")
    for name in ("results", ".snakemake"):
        shutil.copytree(tiny_run / name, workdir / name, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    config = two_replicate_config()
    result = snakemake(workdir, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, planned_jobs(result.stdout + result.stderr), config


def test_a_second_replicate_runs_the_seed_dependent_chain_beside_the_first(two_replicates, tiny_run):
    workdir, jobs, _ = two_replicates
    run, second = workdir / "results" / "tiny", workdir / "results" / "tiny" / "replicates" / "seed_1"
    # the first replicate is the single run, reused: only replicate 1's chain ran, and replicate 0's (aggregating) report
    assert {wildcards.get("replicate") for rule, wildcards in jobs if rule != "report_replicates"} - {None} == {"/replicates/seed_1"}, jobs
    assert ("report_replicates", {}) in jobs and not any(rule in ("prepare_data", "class_labels") for rule, _ in jobs)
    for replicate in (run, second):
        assert (replicate / "classifier" / "checkpoint.pt").stat().st_size > 0
        assert len(list((replicate / "masks" / "pseudo").glob("*.png"))) == 48
        assert len(list((replicate / "deeplab" / "pred_crf").glob("*.png"))) == 16
        assert (replicate / "seeds" / "val" / "sweep.png").exists() and (replicate / "report.md").exists()
        assert (replicate / "logs" / "train_classifier.log").exists() and (replicate / "benchmarks" / "train_deeplab.tsv").exists()
    # the data and the labels are shared, not made again
    assert not (second / "data").exists() and not (second / "labels").exists()
    # another seed, another classifier: its maps differ
    name = sorted((run / "maps" / "fused").glob("*.npz"))[0].name
    assert not np.array_equal(load_map_file(run / "maps" / "fused" / name)[1], load_map_file(second / "maps" / "fused" / name)[1])


def test_the_summary_aggregates_every_metric_of_both_replicates(two_replicates, tiny_run):
    workdir, _, _ = two_replicates
    run = workdir / "results" / "tiny"
    summary = json.loads((run / "summary.json").read_text())
    second = json.loads((run / "replicates" / "seed_1" / "summary.json").read_text())
    single = json.loads((tiny_run / "results" / "tiny" / "summary.json").read_text())
    aggregate = summary.pop("replicates")
    # the rest of summary.json is the first replicate's, as a single run writes it, but for its provenance: the
    # configs differ in `replicates`, and the runs in their dates
    provenance, single_provenance = summary.pop("provenance"), single.pop("provenance")
    assert provenance["config_sha256"] != single_provenance["config_sha256"] and provenance["commit"] == single_provenance["commit"]
    assert summary == single and "replicates" not in second and "provenance" in second
    assert aggregate["seeds"] == [0, 1] and aggregate["n"] == 2 and aggregate["confidence"] == 0.95
    leaves = dict(numeric_leaves(second))
    assert len(leaves) > 100
    for path, value in numeric_leaves(summary):
        metric = aggregate["metrics"]
        for key in path:
            metric = metric[key]
        assert metric["values"] == [value, leaves[path]], path
        assert metric["mean"] == pytest.approx((value + leaves[path]) / 2)
        assert metric["std"] == pytest.approx(abs(value - leaves[path]) / math.sqrt(2))
        half = T_975_1 * metric["std"] / math.sqrt(2)
        assert metric["ci"] == pytest.approx([metric["mean"] - half, metric["mean"] + half], rel=1e-5, abs=1e-12)
    deeplab = aggregate["metrics"]["deeplab"]["miou_crf"]
    assert deeplab["values"] == [summary["deeplab"]["miou_crf"], second["deeplab"]["miou_crf"]]
    report = (run / "report.md").read_text()
    assert "## Replicates (2: seeds 0, 1)" in report and "figures/replicates.png" in report
    fused = aggregate["metrics"]["seeds"]["train"]["fused"]["miou"]
    assert f"| seeds (train) | fused | {100 * fused['mean']:.1f} ± {100 * fused['std']:.1f} |" in report
    assert (run / "figures" / "replicates.png").stat().st_size > 1000
    assert "## Replicates" not in (run / "replicates" / "seed_1" / "report.md").read_text()


def test_a_deeplab_key_reruns_deeplab_in_both_replicates_and_nothing_upstream(two_replicates):
    workdir, _, config = two_replicates
    config = copy.deepcopy(config)  # the run's config (not config.yaml's of now, which may have been edited since)
    config["deeplab"]["lr"] = 2 * config["deeplab"]["lr"]
    result = snakemake(workdir, "-n", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    trained = sorted((wildcards["replicate"], wildcards["model"]) for rule, wildcards in jobs if rule == "train_deeplab")
    assert trained == [("", "deeplab"), ("", "deeplab_gt"), ("/replicates/seed_1", "deeplab"), ("/replicates/seed_1", "deeplab_gt")], jobs
    assert not [rule for rule, _ in jobs if rule in UPSTREAM_OF_DEEPLAB], jobs
    assert {"infer_deeplab", "evaluate_deeplab", "report", "report_replicates"} <= {rule for rule, _ in jobs}


def test_each_replicate_runs_the_ablations_and_their_tables_give_mean_and_std(two_replicates, tmp_path):
    """`ablation_layers` with replicates: 2 runs Fig. 6 on each replicate's classifier and joins the two tables; the
    dry run of `ablations` plans the other three in both replicates (the heads trained once per replicate)."""
    workdir, _, config = two_replicates
    copy_dir = tmp_path / "run"
    shutil.copytree(workdir, copy_dir, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    result = snakemake(copy_dir, "ablation_layers", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    assert sorted(w["replicate"] for rule, w in jobs if rule == "ablation_layers_replicate") == ["", "/replicates/seed_1"], jobs
    assert ("ablation_replicates", {"ablation": "layers"}) in jobs and not [rule for rule, _ in jobs if rule in UPSTREAM_OF_DEEPLAB]
    run = copy_dir / "results" / "tiny"
    tables = [pd.read_csv(replicate / "ablations" / "layers.csv") for replicate in (run, run / "replicates" / "seed_1")]
    last_k = config["maps"]["last_k"]
    for replicate, table in zip((run, run / "replicates" / "seed_1"), tables):
        # the row K = maps.last_k is this replicate's own attention seeds: its own classifier
        best = json.loads((replicate / "seeds" / "val" / "attention" / "best.json").read_text())
        row = table[(table["split"] == "val") & (table["last_k"] == last_k)].iloc[0]
        assert row["miou"] == pytest.approx(best["miou"], rel=1e-5)
    assert not tables[0]["miou"].equals(tables[1]["miou"])
    joint = pd.read_csv(run / "ablations" / "replicates" / "layers.csv")
    assert joint[["split", "last_k"]].equals(tables[0][["split", "last_k"]]) and (joint["n"] == 2).all()
    assert joint["miou_mean"].tolist() == pytest.approx(((tables[0]["miou"] + tables[1]["miou"]) / 2).tolist(), rel=1e-5)
    assert joint["miou_std"].tolist() == pytest.approx(((tables[0]["miou"] - tables[1]["miou"]).abs() / math.sqrt(2)).tolist(),
                                                       rel=1e-4, abs=1e-7)
    section = (run / "ablations" / "replicates" / "layers.md").read_text()
    assert section.startswith("## Layers fused (Fig. 6), 2 replicates") and (run / "ablations" / "replicates" / "layers.png").exists()

    dry = snakemake(copy_dir, "-n", "ablations", config=config)
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout + dry.stderr)
    trained = sorted((w["replicate"], w["pooling"]) for rule, w in jobs if rule == "ablation_heads_train_classifier")
    assert trained == [("", "fc"), ("", "max"), ("/replicates/seed_1", "fc"), ("/replicates/seed_1", "max")], jobs
    for rule in ("ablation_heads_replicate", "ablation_maps_replicate", "ablation_segmentation_replicate", "ablation_train_deeplab"):
        assert sorted(w["replicate"] for name, w in jobs if name == rule) == ["", "/replicates/seed_1"], rule
    assert sorted(w["ablation"] for rule, w in jobs if rule == "ablation_replicates") == ["heads", "maps", "segmentation"]
    assert "ablation_layers_replicate" not in {rule for rule, _ in jobs} and ("ablations", {}) in jobs


def test_replicates_are_numbered_from_the_config_seed(tmp_path):
    """seed: 5, replicates: 3 plans seeds 5 (the run's own paths), 6 and 7, one classifier each."""
    config = tiny_config()
    config.update(seed=5, replicates=3)
    result = snakemake(tmp_path, "-n", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    replicates = sorted(wildcards["replicate"] for rule, wildcards in jobs if rule == "train_classifier")
    assert replicates == ["", "/replicates/seed_6", "/replicates/seed_7"]
    assert [rule for rule, _ in jobs].count("prepare_data") == 1 and [rule for rule, _ in jobs].count("report") == 2
