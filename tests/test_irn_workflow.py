"""PSA and IRN side by side through snakemake: `compare_refinements` on a copy of the tiny run (tests/conftest.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np

from helpers.workflow import snakemake, tiny_config


def both_refinements() -> dict:
    config = tiny_config()
    config["refine"]["methods"] = ["psa", "irn"]
    config["deeplab"]["pseudo_masks"] = ["psa", "irn"]
    config["irn"].update(max_images=None, epochs=1, batch_size=8, crop_size=32)
    return config


def test_compare_refinements_runs_irn_beside_psa_on_the_same_seeds(tiny_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = both_refinements()
    planned = snakemake(workdir, "compare_refinements", "-n", config=config)
    out = planned.stdout + planned.stderr
    assert planned.returncode == 0, out[-3000:]
    for job in ("ir_labels", "train_irn", "irn_walk", "evaluate_irn_masks", "compare_refinements"):
        assert f"rule {job}:" in out or f"localrule {job}:" in out, job
    assert "model=deeplab_irn" in out  # wildcards: replicate=, model=deeplab_irn
    # the same seeds: nothing upstream of the refinements, nor PSA or its DeepLab, runs again
    for upstream in ("train_classifier", "extract_maps", "evaluate_seeds", "psa_labels", "train_affinity", "random_walk"):
        assert f"rule {upstream}:" not in out, upstream
    assert "model=deeplab\n" not in out

    result = snakemake(workdir, "compare_refinements", "results/tiny/report.md", config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = workdir / "results" / "tiny"
    assert len(list((run / "irn" / "labels").glob("*.png"))) == 48
    assert len(list((run / "masks" / "irn" / "pseudo").glob("*.png"))) == 48
    assert (run / "irn" / "boundary_log.csv").read_text().startswith("epoch,loss,bg,fg,neg,lr,seconds")
    irn_masks = json.loads((run / "masks" / "irn" / "eval_train.json").read_text())
    assert 0 < irn_masks["miou"] <= 1 and irn_masks["images"] == 12
    table = json.loads((run / "refinements.json").read_text())
    assert [row["method"] for row in table["rows"]] == ["crf", "psa", "irn"]
    psa_masks = json.loads((run / "masks" / "eval_train.json").read_text())["miou"]
    rows = {row["method"]: row for row in table["rows"]}
    assert rows["psa"]["masks"] == psa_masks and rows["irn"]["masks"] == irn_masks["miou"]
    assert rows["psa"]["seeds"] == rows["irn"]["seeds"]  # one seed variant feeds both
    for method in ("psa", "irn"):
        assert rows[method]["masks_seconds"] > 0 and rows[method]["deeplab_seconds"] > 0 and 0 <= rows[method]["deeplab_crf"] <= 1
    assert rows["irn"]["paper"]["masks"] == 66.5 and rows["psa"]["paper"]["masks"] == 69.1
    assert len(list((run / "deeplab_irn" / "pred_crf").glob("*.png"))) == 16
    report = (run / "report.md").read_text()
    assert "## Refinements: seeds -> masks -> DeepLab" in report and "| IRN (boundaries + walk) |" in report
    summary = json.loads((run / "summary.json").read_text())
    assert [row["method"] for row in summary["refinements"]["rows"]] == ["crf", "psa", "irn"]
    original = json.loads((tiny_run / "results" / "tiny" / "summary.json").read_text())
    assert "deeplab_irn" in summary and summary["deeplab"]["miou"] == original["deeplab"]["miou"]  # PSA's DeepLab untouched

    # editing the walk reruns the walk and what follows, not the boundary network; a rerun is bit-identical
    walk_only = dict(config, irn=dict(config["irn"], exp_times=2))
    planned = snakemake(workdir, "compare_refinements", "-n", config=walk_only)
    out = planned.stdout + planned.stderr
    assert "rule irn_walk:" in out and "rule train_irn:" not in out and "rule ir_labels:" not in out
    before = {path.name: path.read_bytes() for path in (run / "masks" / "irn" / "pseudo").glob("*.png")}
    again = snakemake(workdir, "results/tiny/masks/irn/eval_train.json", "--forcerun", "irn_walk", config=config)
    assert again.returncode == 0, again.stderr[-3000:]
    after = {path.name: path.read_bytes() for path in (run / "masks" / "irn" / "pseudo").glob("*.png")}
    assert before == after
    assert np.isclose(json.loads((run / "masks" / "irn" / "eval_train.json").read_text())["miou"], irn_masks["miou"], rtol=0, atol=0)
