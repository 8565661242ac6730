"""The tiny pipeline, two replicates of it, through a real one-node SLURM cluster (tests/slurm/start-cluster.sh).

The cluster (with slurmdbd accounting, as production clusters have it) is the
one `.ci/run` started (MCTFORMER_SLURM_STATE names its state folder) or one
this module starts and stops. Without SLURM and without
root to install it, the test is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import yaml

from helpers.workflow import REPO, tiny_config
from mctformer.artifacts import load_map_file, read_label_png

SLURM_DIR = REPO / "tests" / "slurm"
# Everything of the tiny run goes through sbatch except the target rule `all`: replicate 0's chain (with the shared data
# and labels, and report_replicates, its report that aggregates both), and replicate 1's chain with its own report.
SUBMITTED_RULES = {
    "prepare_data", "class_labels", "train_classifier", "extract_maps", "evaluate_seeds", "psa_labels", "train_affinity",
    "random_walk", "evaluate_masks", "psa_ablation", "train_deeplab", "infer_deeplab", "evaluate_deeplab", "report",
    "report_replicates",
}
SHARED_RULES = {"prepare_data", "class_labels"}
SECOND = "_wildcards__replicates_seed_1"  # the plugin's comment: rule_<rule>_wildcards_<wildcard values, "/" as "_">

pytestmark = pytest.mark.slow


def cannot_run_slurm() -> str | None:
    if shutil.which("sbatch") and shutil.which("slurmctld"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "SLURM is not installed and installing it needs root and apt-get"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster with one (fake) GPU."""
    given = os.environ.get("MCTFORMER_SLURM_STATE")
    if given:
        yield os.path.join(given, "slurm.conf")
        return
    reason = cannot_run_slurm()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(SLURM_DIR / "start-cluster.sh"), str(state)], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        yield "/etc/slurm/slurm.conf"
    finally:
        subprocess.run([str(SLURM_DIR / "stop-cluster.sh"), str(state)], check=False)


def slurm_config() -> dict:
    """The tiny config with what a user sets for a cluster: threads, memory, wall time, a GPU for the classifier;
    and two replicates (seeds 0 and 1), each an independent chain of jobs."""
    config = tiny_config()
    config["replicates"] = 2
    # 2 threads, as the reference run's --cores 2 gives every job, so the numbers can be compared bitwise
    config["resources"]["default"].update(threads=2, mem_mb=1000, runtime=10)
    for settings in config["resources"]["rules"].values():
        settings.update(threads=2, mem_mb=1500, runtime=10)
    config["resources"]["rules"]["train_classifier"]["gpus"] = 1
    return config


def test_two_replicates_of_the_tiny_pipeline_through_slurm(slurm_cluster, tiny_run, tmp_path):
    """Both replicates complete as separate SLURM jobs; the first equals the local single run; the summary has both."""
    workdir = tmp_path / "slurm_run"
    workdir.mkdir()
    config_path = workdir / "config.slurm.yaml"
    config_path.write_text(yaml.safe_dump(slurm_config()))
    environment = {**os.environ, "SLURM_CONF": slurm_cluster}
    started = time.time()
    result = subprocess.run(
        [
            sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--profile", str(REPO / "workflow" / "profiles" / "slurm"), "--configfile", str(config_path),
            "--slurm-no-account",  # no bank accounts on this cluster
            "--slurm-init-seconds-before-status-checks", "2", "--retries", "0",
        ],
        capture_output=True, text=True, cwd=workdir, env=environment, timeout=1800,
    )
    print(f"SLURM run: {time.time() - started:.0f} s")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    # every job went through sbatch and completed, as slurmdbd's accounting records; the classifier got its GPU
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", result.stdout + result.stderr))
    listing = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--format=JobID,Comment,State,AllocTRES", "-j", ",".join(sorted(submitted))],
        capture_output=True, text=True, env=environment, check=True,
    ).stdout
    jobs = {job_id: (comment, state, tres) for job_id, comment, state, tres in (line.split("|") for line in listing.splitlines())}
    assert set(jobs) == submitted, listing
    rule_of = {job_id: comment.removeprefix("rule_").split("_wildcards")[0] for job_id, (comment, _, _) in jobs.items()}
    assert set(rule_of.values()) == SUBMITTED_RULES, listing
    assert all(state == "COMPLETED" for _, state, _ in jobs.values()), listing
    classifier_tres = [tres for job_id, (_, _, tres) in jobs.items() if rule_of[job_id] == "train_classifier"]
    assert len(classifier_tres) == 2 and all("gres/gpu=1" in tres for tres in classifier_tres), listing
    others = [tres for job_id, (_, _, tres) in jobs.items() if rule_of[job_id] != "train_classifier"]
    assert not any("gpu" in tres for tres in others), listing
    # the same jobs in each replicate: its own chain, the shared data and labels once
    second = Counter(rule_of[job_id] for job_id, (comment, _, _) in jobs.items() if SECOND in comment)
    first = Counter(
        "report" if rule == "report_replicates" else rule
        for job_id, rule in rule_of.items() if SECOND not in jobs[job_id][0] and rule not in SHARED_RULES
    )
    assert second == first and second["train_deeplab"] == 2 and len(second) == len(SUBMITTED_RULES) - 3, listing

    # the same numbers and files as the local run (same thread counts)
    local, remote = tiny_run / "results" / "tiny", workdir / "results" / "tiny"
    local_summary, remote_summary = (json.loads((run / "summary.json").read_text()) for run in (local, remote))
    for key in ("seeds", "masks", "deeplab", "deeplab_gt"):
        assert remote_summary[key] == local_summary[key], key
    # the summary has both replicates, the second's from its own folder
    second_summary = json.loads((remote / "replicates" / "seed_1" / "summary.json").read_text())
    aggregate = remote_summary["replicates"]
    assert aggregate["seeds"] == [0, 1]
    for stage, key in (("deeplab", "miou_crf"), ("masks", "miou")):
        assert aggregate["metrics"][stage][key]["values"] == [remote_summary[stage][key], second_summary[stage][key]], stage
    assert len(list((remote / "replicates" / "seed_1" / "masks" / "pseudo").glob("*.png"))) == 48
    for path in sorted((local / "maps" / "fused_feature_refined").glob("*.npz"))[:8]:
        (labels_a, maps_a), (labels_b, maps_b) = load_map_file(path), load_map_file(remote / path.relative_to(local))
        assert np.array_equal(labels_a, labels_b) and np.array_equal(maps_a, maps_b), path.name
    for path in sorted((local / "masks" / "pseudo").glob("*.png")):
        assert np.array_equal(read_label_png(path), read_label_png(remote / path.relative_to(local))), path.name


def test_a_sharded_stage_runs_its_shards_as_concurrent_jobs_and_reruns_a_killed_one_alone(slurm_cluster, tiny_run, tmp_path):
    """psa_labels in 3 shards through sbatch: the shards run as separate jobs, two at a time on the 2-core node
    (sacct); the job of shard 2-of-3, held by the pause hook once it has written a label, is killed (kill -9 of its
    stage, as an OOM kill would), the other two keep their parts, and the rerun submits shard 2-of-3 alone; the
    gathered labels are the local run's."""
    from helpers.reliability import PAUSE_HOOK
    from mctformer.run_layout import shard_names

    workdir = tmp_path / "sharded"
    shutil.copytree(tiny_run, workdir, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    run, local = workdir / "results" / "tiny", tiny_run / "results" / "tiny"
    shutil.rmtree(run / "psa" / "labels")
    (run / "psa" / "label_stats.json").unlink()
    config = tiny_config()
    config["resources"]["rules"]["psa_labels"].update(threads=1, mem_mb=1000, runtime=10, shards=3)  # 2 fit the node at once
    config_path = workdir / "config.sharded.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "results/tiny/psa/labels", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--profile", str(REPO / "workflow" / "profiles" / "slurm"), "--configfile", str(config_path), "--slurm-no-account",
        "--slurm-init-seconds-before-status-checks", "2", "--retries", "0", "--allowed-rules", "psa_labels", "gather_psa_labels",
    ]
    environment = {**os.environ, "SLURM_CONF": slurm_cluster}
    marker = workdir / "paused.json"
    hold = {"module": "mctformer.artifacts", "function": "save_label_png", "match": "/2-of-3/", "after": 1, "marker": str(marker)}
    held_environment = {
        **environment, "MCT_RELIABILITY_PAUSE": json.dumps(hold),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PAUSE_HOOK), os.environ.get("PYTHONPATH")])),
    }

    def accounting(job_ids, *columns: str) -> dict[str, list[str]]:
        """sacct's columns of each job by its shard ("2-of-3", the end of the plugin's comment)."""
        listing = subprocess.run(
            ["sacct", "-X", "-n", "-P", f"--format=Comment,{','.join(columns)}", "-j", ",".join(job_ids)],
            capture_output=True, text=True, env=environment, check=True,
        ).stdout
        rows = [line.split("|") for line in listing.splitlines()]
        assert all(comment.startswith("rule_psa_labels_wildcards_") for comment, *_ in rows), listing
        return {comment.rsplit("_", 1)[-1]: values for comment, *values in rows}

    with open(workdir / "first.out", "w+") as log:
        first = subprocess.Popen(command, cwd=workdir, env=held_environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            while not marker.exists():
                assert first.poll() is None, (workdir / "first.out").read_text()[-4000:]
                assert time.monotonic() < deadline, "shard 2-of-3 never started writing"
                time.sleep(0.5)
            os.kill(json.loads(marker.read_text())["pid"], signal.SIGKILL)
            # keep-going (the profile's): the other shards finish, the run reports the killed one
            assert first.wait(timeout=600) != 0
        finally:
            if first.poll() is None:
                first.kill()
        output = (workdir / "first.out").read_text()
    submitted = sorted(set(re.findall(r"submitted with SLURM jobid (\d+)", output)))
    jobs = accounting(submitted, "State", "Start", "End")
    assert sorted(jobs) == shard_names(3), jobs
    assert jobs["1-of-3"][0] == jobs["3-of-3"][0] == "COMPLETED" and jobs["2-of-3"][0] == "FAILED", jobs
    # concurrent cluster jobs: two shards' runs overlap in time
    assert any(jobs[a][1] < jobs[b][2] and jobs[b][1] < jobs[a][2] for a in jobs for b in jobs if a < b), jobs
    parts = run / "shards" / "psa_labels"
    assert sorted(path.name for path in parts.iterdir() if (path / "psa" / "labels").is_dir()) == ["1-of-3", "3-of-3"]
    assert len(list(parts.glob("[13]-of-3/psa/labels/*.png"))) == 32  # of 48 images: ids[0::3] and ids[2::3]

    rerun = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=environment, timeout=1200)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-4000:]
    again = sorted(set(re.findall(r"submitted with SLURM jobid (\d+)", output)))
    assert accounting(again, "State") == {"2-of-3": ["COMPLETED"]}  # the killed shard alone went through sbatch again
    assert "localrule gather_psa_labels" in output and not any(parts.rglob("*.png"))  # gathered, the parts removed
    for path in sorted((local / "psa" / "labels").glob("*.png")):
        assert (run / "psa" / "labels" / path.name).read_bytes() == path.read_bytes(), path.name
