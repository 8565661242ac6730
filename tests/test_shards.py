"""Shards (resources.rules.<rule>.shards; mctformer/shards.py, workflow/rules/shards.smk, docs/scaling.md).

A per-image stage split into N jobs and gathered writes exactly what the unsharded stage writes. Here: the split
itself; each sharded stage run shard by shard in this process and gathered, against the same stage run whole at the
same settings and thread count (N = 2 and 3, none dividing its batch count evenly); and the workflow on a copy of the
tiny run: extract_maps in 3 shards gathered into the tiny run's own maps and overlays (N = 1), the seed evaluation
on them unchanged; psa_labels in 5, one failing, the rerun running that one alone, gathered into the tiny run's
labels and label_stats.json.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from helpers.workflow import REPO, snakemake, tiny_config
from mctformer.run_layout import shard_names
from mctformer.shards import SNAKEMAKE_MARKERS, Shard, gather_folders

THREADS = 2  # the tiny run's (--cores 2): the same thread count on both sides of every comparison


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (Snakemake's own marker aside) by relative path, with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*")) if path.is_file() and path.name not in SNAKEMAKE_MARKERS
    }


def assert_same_maps(folder: Path, reference: Path) -> None:
    """The same map files, byte for byte (numpy stamps no write time into an .npz)."""
    names = sorted(path.name for path in folder.glob("*.npz"))
    assert names == sorted(path.name for path in reference.glob("*.npz")) and names, folder
    for name in names:
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name


# --- the split ---


class SizedIds:
    """A layout stand-in: image_size by id (what batches_of_equal_size reads)."""

    def __init__(self, sizes: dict[str, tuple[int, int]]):
        self.sizes = sizes

    def image_size(self, image_id: str) -> tuple[int, int]:
        return self.sizes[image_id]


def test_a_shard_takes_every_nth_batch_of_the_unsharded_run():
    from mctformer.data.layout import batches_of_equal_size

    # 23 images of two sizes, interleaved: batches of 4 are [a0..a3], [a4..a7], [a8..a11], [b0..b3], ...
    ids = [f"img{index:02d}" for index in range(23)]
    layout = SizedIds({image_id: (32, 32) if index % 3 else (48, 40) for index, image_id in enumerate(ids)})
    batches = batches_of_equal_size(layout, ids, 4)
    assert Shard(1, 1).select(layout, ids, 4, "extract_maps") == ids  # whole: the list itself, order kept
    for count in (2, 3, 5):
        shards = [Shard.parse(name).select(layout, ids, 4, "extract_maps") for name in shard_names(count)]
        assert sorted(image_id for shard in shards for image_id in shard) == sorted(ids)  # disjoint, complete
        for index, shard in enumerate(shards):
            # the shard's batches, as its job forms them, are the unsharded run's batches index, index + N, ...
            assert batches_of_equal_size(layout, shard, 4) == batches[index::count]
        # deterministic: the same answer again
        assert shards == [Shard(k, count).select(layout, ids, 4, "extract_maps") for k in range(1, count + 1)]
    # one image at a time (the CRF stages): ids[k - 1::N], no image read
    assert Shard(2, 3).select(None, ids, None, "psa_labels") == ids[1::3]


def test_more_shards_than_batches_and_bad_names_are_refused():
    layout = SizedIds({f"img{index}": (32, 32) for index in range(10)})
    with pytest.raises(ValueError, match=r"resources.rules.random_walk.shards = 4: random_walk's 10 images make 3 batch\(es\) of 4.*at most 3"):
        Shard(4, 4).select(layout, list(layout.sizes), 4, "random_walk")
    for name in ("0-of-2", "3-of-2", "2of3", "1-of-0"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(name)


def test_gather_joins_disjoint_parts_and_refuses_an_overlap_writing_nothing(tmp_path):
    parts = [tmp_path / "parts" / name for name in shard_names(2)]
    (parts[0] / "sub").mkdir(parents=True)
    (parts[1] / "sub").mkdir(parents=True)
    (parts[0] / "a.png").write_bytes(b"a")
    (parts[0] / "sub" / "b.png").write_bytes(b"b")
    (parts[1] / "sub" / "c.png").write_bytes(b"c")
    (parts[1] / ".snakemake_timestamp").write_bytes(b"")
    assert gather_folders(parts, tmp_path / "out") == 3
    assert folder_files(tmp_path / "out") == {"a.png": b"a", "sub/b.png": b"b", "sub/c.png": b"c"}
    assert not (tmp_path / "out" / ".snakemake_timestamp").exists()
    (parts[1] / "a.png").write_bytes(b"other")
    with pytest.raises(ValueError, match=r"a.png is in two shard parts"):
        gather_folders(parts, tmp_path / "again")
    assert not (tmp_path / "again").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out", "parts"]


def test_only_the_per_image_rules_take_shards():
    from mctformer.config import ConfigError, rule_settings

    config = tiny_config()
    config["resources"]["rules"]["train_affinity"]["shards"] = 2
    with pytest.raises(ConfigError, match=r"resources.rules.train_affinity.shards: train_affinity is not split"):
        rule_settings(config, "train_affinity")
    assert rule_settings(config, "random_walk")["shards"] == 1  # resources.default's


# --- each sharded stage, in this process, against itself unsharded ---


# The stages run on the tiny run's 16 val images (their maps are extracted for the seed evaluation), not its 48 train
# images: a third of the work, and the walks' batches of 5 split unevenly.
def stage_settings(run: Path) -> dict:
    """What the rules hand every stage: the tiny run's dataset, palette and device."""
    from mctformer.config import layout_name
    from mctformer.data.layout import DatasetRef
    from mctformer.settings import Placement

    config = tiny_config()
    return dict(
        dataset=DatasetRef(str(run / "data"), layout_name(config), tuple(config["data"]["classes"])),
        palette=config["data"]["palette"], placement=Placement(config["device"], config["deterministic"], 0), threads=THREADS,
    )


def random_walk_case(run: Path, tmp_path: Path) -> tuple:
    from mctformer.settings import WalkSettings
    from mctformer.stages.psa import random_walk_stage

    config = tiny_config()
    psa, affinity = config["psa"], config["affinity"]
    keys = dict(
        **stage_settings(run), splits=["val"],
        map_dir=str(run / "maps" / psa["seed_variant"]), checkpoint=str(run / "psa" / "affinity.pt"),
        best_json=str(run / "seeds" / psa["threshold_split"] / psa["seed_variant"] / "best.json"), background=psa["background"],
        walk=WalkSettings(psa["beta"], psa["logt"], affinity["radius"], affinity["pair_sources"]), walk_scale=psa["walk_scale"],
        batch_size=5,  # val's 16 images in 4 batches (the tiny run's 64 makes one batch), so 2 and 3 shards split unevenly
        backbone=affinity["backbone"], walk_amp=psa["walk_amp"],
    )
    return random_walk_stage, keys, {"out_dir": "masks"}


def ir_labels_case(run: Path, tmp_path: Path) -> tuple:
    from mctformer.stages.irn import ir_labels_stage

    irn = tiny_config()["irn"]
    keys = dict(
        **stage_settings(run), split="val", map_dir=str(run / "maps" / irn["seed_variant"]),
        **{key: irn[key] for key in ("max_images", "conf_fg_thres", "conf_bg_thres", "crf", "label_workers")},
    )
    keys.pop("placement")
    return ir_labels_stage, keys, {"out_dir": "labels", "stats_path": "label_stats.json"}


def irn_walk_case(run: Path, tmp_path: Path) -> tuple:
    """IRN's walk on an untrained boundary network (seeded): the identity asks nothing of its quality."""
    import torch

    from mctformer.stages.irn import irn_walk_stage
    from mctformer.training.common import save_checkpoint
    from mctformer.training.irn import build_boundary_net

    config = tiny_config()
    irn = config["irn"]
    torch.manual_seed(0)
    model = build_boundary_net(irn)
    save_checkpoint(tmp_path / "boundary.pt", {"model": model.state_dict(), "architecture": model.architecture()})
    keys = dict(
        **stage_settings(run), splits=["val"],
        map_dir=str(run / "maps" / irn["seed_variant"]), checkpoint=str(tmp_path / "boundary.pt"),
        **{key: irn[key] for key in ("backbone", "walk_radius", "beta", "exp_times", "sem_seg_bg_thres", "walk_scale", "walk_amp")},
        walk_batch_size=5,
    )
    return irn_walk_stage, keys, {"out_dir": "masks"}


def deeplab_inference_keys(run: Path) -> dict:
    deeplab = tiny_config()["deeplab"]
    inference = ("head", "scales", "flip_inference", "fuse", "inference_resize", "crf", "inference_amp", "inference_workers")
    return dict(**stage_settings(run), checkpoint=str(run / "deeplab" / "checkpoint.pt"), **{key: deeplab[key] for key in inference})


def infer_deeplab_case(run: Path, tmp_path: Path) -> tuple:
    from mctformer.stages.deeplab import infer_deeplab_stage

    keys = dict(**deeplab_inference_keys(run), split=tiny_config()["deeplab"]["eval_split"])
    return infer_deeplab_stage, keys, {"pred_dir": "pred", "crf_dir": "pred_crf"}


def voc_submission_case(run: Path, tmp_path: Path) -> tuple:
    from mctformer.stages.deeplab import submission_stage

    keys = dict(**deeplab_inference_keys(run), split=tiny_config()["deeplab"]["eval_split"])
    return submission_stage, keys, {"out_dir": "submission", "tarball": "submission.tar.gz"}


CASES = {
    "random_walk": random_walk_case, "ir_labels": ir_labels_case, "irn_walk": irn_walk_case,
    "infer_deeplab": infer_deeplab_case, "voc_submission": voc_submission_case,
}


@pytest.mark.parametrize("rule", list(CASES))
def test_a_sharded_stage_gathers_into_what_it_writes_whole(rule, tiny_run, tmp_path, monkeypatch):
    """Shard by shard, then gathered as gather_<rule> does, for N = 2 and 3: the same files as the stage run whole,
    byte for byte (the submission's tarball: the same members with the same bytes; label_stats.json: the same shares)."""
    import mctformer.segmentation
    from mctformer.shards import gather_label_stats

    # DeepLab's inference batches are chunks of 32 images of one size: the tiny run's 16 val images make one. In
    # chunks of 4 they make 4, and the stage, whole or sharded, runs with the same chunks.
    monkeypatch.setattr(mctformer.segmentation, "INFERENCE_CHUNK", 4)
    stage, keys, outputs = CASES[rule](tiny_run / "results" / "tiny", tmp_path)
    whole = tmp_path / "whole"
    stage(**keys, **{key: str(whole / name) for key, name in outputs.items()}, shard=Shard(1, 1))
    for count in (2, 3):
        sharded = tmp_path / f"shards{count}"
        for name in shard_names(count):
            part = {key: str(sharded / name / file) for key, file in outputs.items()}
            stage(**keys, **{**part, "tarball": None} if "tarball" in outputs else part, shard=Shard.parse(name))
        for key, file in outputs.items():
            parts = [sharded / name / file for name in shard_names(count)]
            if key == "stats_path":
                gather_label_stats(parts, sharded / file)
                gathered, reference = (json.loads((folder / file).read_text()) for folder in (sharded, whole))
                assert {**gathered, "seconds": 0} == {**reference, "seconds": 0}
            elif key == "tarball":
                from mctformer.segmentation import pack_submission

                pack_submission(str(sharded / outputs["out_dir"]), str(sharded / file))
                assert tar_members(sharded / file) == tar_members(whole / file)
            else:
                assert gather_folders(parts, sharded / file) == len(folder_files(whole / file)) > 0
                assert folder_files(sharded / file) == folder_files(whole / file), (rule, count, file)


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {member.name: archive.extractfile(member).read() for member in archive.getmembers() if member.isfile()}


# --- the workflow ---

MAP_VARIANTS = ("attention", "fused", "fused_refined", "fused_feature_refined")


def sharded_config() -> dict:
    config = tiny_config()
    config["resources"]["rules"]["extract_maps"]["shards"] = 3  # 64 images in 4 batches of 16: shards of 32, 16, 16
    config["resources"]["rules"]["psa_labels"]["shards"] = 5  # 48 images: shards of 10, 10, 10, 9, 9
    return config


def workflow_run(workdir: Path, targets, rules, *options):
    """snakemake on ``targets`` with only ``rules`` allowed to run (the rest of the tiny run stays as it is)."""
    return snakemake(workdir, *targets, *options, "--allowed-rules", *rules, config=sharded_config())


def test_sharded_workflow_gathers_the_tiny_runs_artifacts_and_reruns_only_a_failed_shard(tiny_run, tmp_path):
    reference = tiny_run / "results" / "tiny"
    workdir = tmp_path / "sharded"
    shutil.copytree(tiny_run, workdir, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    run = workdir / "results" / "tiny"

    # extract_maps in 3 shards, gathered, and the seed evaluation on the gathered maps
    for folder in (run / "seeds", *(run / "maps" / name for name in (*MAP_VARIANTS, "overlays"))):
        shutil.rmtree(folder)
    splits = tiny_config()["data"]["splits"]["seed_eval"]
    result = workflow_run(workdir, [f"results/tiny/seeds/{split}/sweep.png" for split in splits],
                          ["extract_maps", "gather_extract_maps", "evaluate_seeds"])
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_shards(result.stderr)
    assert jobs["extract_maps"] == shard_names(3) and jobs["gather_extract_maps"] == [None], jobs
    for variant in MAP_VARIANTS:
        assert_same_maps(run / "maps" / variant, reference / "maps" / variant)
    assert folder_files(run / "maps" / "overlays") == folder_files(reference / "maps" / "overlays")
    for split in splits:
        for variant in MAP_VARIANTS:
            best = f"seeds/{split}/{variant}/best.json"
            assert json.loads((run / best).read_text()) == json.loads((reference / best).read_text()), best
    assert not any((run / "shards").rglob("*.npz"))  # the parts are temp: gone once gathered
    shard_seconds = sum(benchmark_seconds(run / "benchmarks" / f"extract_maps_{name}.tsv") for name in shard_names(3))
    assert benchmark_seconds(run / "benchmarks" / "extract_maps.tsv") == pytest.approx(shard_seconds, abs=1e-3)

    # psa_labels in 5 shards, one of which fails (an input it alone reads is missing): the others finish and stay
    shutil.rmtree(run / "psa" / "labels")
    (run / "psa" / "label_stats.json").unlink()
    second = sorted((run / "maps" / tiny_config()["psa"]["seed_variant"]).glob("*.npz"))[1]  # shard 2-of-5's first image
    hidden = tmp_path / second.name
    second.rename(hidden)
    labels = ["results/tiny/psa/labels"]
    failed = workflow_run(workdir, labels, ["psa_labels", "gather_psa_labels"], "--keep-going")
    assert failed.returncode != 0 and "Error in rule psa_labels" in failed.stderr and second.name in failed.stderr
    assert job_shards(failed.stderr) == {"psa_labels": shard_names(5)}, failed.stderr[-3000:]
    parts = run / "shards" / "psa_labels"
    assert sorted(path.name for path in parts.iterdir() if (path / "psa" / "labels").is_dir()) == ["1-of-5", "3-of-5", "4-of-5", "5-of-5"]
    assert len(list(parts.rglob("*.png"))) == 48 - 10 and not (run / "psa" / "labels").exists()

    # the rerun runs that shard and the gather alone, into the unsharded run's labels and label_stats.json
    hidden.rename(second)
    rerun = workflow_run(workdir, labels, ["psa_labels", "gather_psa_labels"])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert job_shards(rerun.stderr) == {"psa_labels": ["2-of-5"], "gather_psa_labels": [None]}
    assert folder_files(run / "psa" / "labels") == folder_files(reference / "psa" / "labels")
    stats, reference_stats = (json.loads((folder / "psa" / "label_stats.json").read_text()) for folder in (run, reference))
    assert {**stats, "seconds": 0} == {**reference_stats, "seconds": 0}


def test_editing_shards_on_a_finished_run_reruns_nothing(tiny_run):
    """The artifacts are there and the same whichever way they were made: a new shard count schedules no job."""
    result = snakemake(tiny_run, "-n", config=sharded_config())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def benchmark_seconds(path: Path) -> float:
    import pandas as pd

    return float(pd.read_csv(path, sep="\t")["s"].iloc[-1])


def job_shards(log: str) -> dict[str, list]:
    """Snakemake's job announcements in ``log``: each rule's {shard} values, in order (None: a job without one)."""
    jobs: dict[str, list] = {}
    for rule, wildcards in re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    wildcards: ([^\n]*)", log, flags=re.M):
        shard = re.search(r"shard=([^,\s]+)", wildcards)
        jobs.setdefault(rule, []).append(shard[1] if shard else None)
    return {rule: sorted(values, key=lambda value: value or "") for rule, values in jobs.items()}


def test_shards_default_to_one_job_per_rule_as_before():
    """The shipped config splits nothing: no job has a {shard}, no gather rule exists (the DAG of before)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "2", "-s", str(REPO / "Snakefile")],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gather_" not in result.stdout and "shard=" not in result.stdout


def test_every_per_image_rule_shards_in_the_dag(tmp_path):
    """All seven per-image rules in 2 shards (IRN beside PSA, DeepLab on both, the submission on val): each is two
    jobs per artifact it makes, each artifact one gather job, and the jobs downstream are those of the run without
    shards."""
    from mctformer.run_layout import SHARDED_RULES

    def job_counts(config) -> dict[str, int]:
        result = snakemake(tmp_path, "-n", "--quiet", "rules", config=config)
        assert result.returncode == 0, result.stderr[-3000:]
        table = result.stdout.split("Job stats:")[1].split("total")[0]
        return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}

    config = tiny_config()
    config["refine"]["methods"] = ["psa", "irn"]
    config["deeplab"]["pseudo_masks"] = ["psa", "irn"]
    config["deeplab"]["test_split"] = "val"
    whole = job_counts(config)
    for rule in SHARDED_RULES:
        config["resources"]["rules"][rule]["shards"] = 2
    sharded = job_counts(config)
    for rule in SHARDED_RULES:
        assert sharded[rule] == 2 * whole[rule] and sharded[f"gather_{rule}"] == whole[rule], rule
    assert {name: count for name, count in sharded.items() if not name.startswith("gather_") and name not in SHARDED_RULES} == {
        name: count for name, count in whole.items() if name not in SHARDED_RULES}
