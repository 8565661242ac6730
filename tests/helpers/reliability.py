"""Shared by the reliability tests: the config they run, snakemake in a subprocess, output comparison."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from helpers.workflow import REPO, tiny_config

RUN_NAME = "rel"
RUN = f"results/{RUN_NAME}"
PAUSE_HOOK = REPO / "tests" / "reliability" / "pause_hook"
# The whole chain up to DeepLab's predictions (evaluations and the report are left out: they add no long stage).
CHAIN_TARGETS = [f"{RUN}/deeplab/pred"]
CORES = "2"  # every run uses the same --cores, so each job gets the same torch thread count


def reliability_config() -> dict:
    """The tiny test config, with two epochs per trainer (so a kill can land between epochs) and less to do."""
    config = tiny_config(RUN_NAME)
    # Bit for bit on the CPU only, whatever MCTFORMER_TEST_DEVICE says: on CUDA, DeepLab's bilinear upsampling backward
    # and its 2-D cross-entropy have no deterministic kernel (not even under `deterministic: true`), so two CUDA runs
    # differ in the last bits of their weights and losses
    config["device"] = "cpu"
    config["deterministic"] = False
    config["synthetic"].update(num_train_aug=32, num_train=8, num_val=8)
    config["data"]["splits"]["seed_eval"] = ["train"]
    config["maps"]["variants"] = ["fused", "fused_feature_refined"]
    config["classifier"]["epochs"] = 2
    config["affinity"]["epochs"] = 2
    config["deeplab"].update(epochs=2, train_on_gt=False)
    return config


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """What a user types (targets and options first), with the config written into ``workdir``."""
    return [
        sys.executable, "-m", "snakemake", *args, "--cores", CORES, "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.rel.yaml"),
    ]


def write_config(workdir: Path, config: dict | None = None) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.rel.yaml").write_text(yaml.safe_dump(config or reliability_config()))


def run_snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, cwd=workdir, timeout=timeout)


def run_each_in_two_threads(names, run) -> dict:
    """{name: run(name)} with two runs at a time (each a snakemake subprocess; the machine has 2 cores)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(names, pool.map(run, names)))


def output_of(result) -> str:
    return (result.stdout or "") + (result.stderr or "")


class PausedRun:
    """snakemake in its own process group, with one stage held at a known point by the pause hook."""

    def __init__(self, workdir: Path, args: list[str], module: str, function: str, match: str, after: int = 1,
                 when: str = "after", release: Path | None = None):
        self.workdir = workdir
        self.marker = workdir / f"paused.{time.monotonic_ns()}.json"
        spec = {"module": module, "function": function, "match": match, "after": after, "marker": str(self.marker), "when": when}
        if release is not None:
            spec["release"] = str(release)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PAUSE_HOOK), os.environ.get("PYTHONPATH")])),
                   MCT_RELIABILITY_PAUSE=json.dumps(spec))
        self.log = open(workdir / f"{self.marker.stem}.out", "w+")
        self.process = subprocess.Popen(
            snakemake_command(workdir, *args), cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: snakemake and the job it runs
        )

    def wait_paused(self, timeout: float = 600) -> dict:
        """Block until the stage reports it is held (polls the marker file; fails if snakemake exits first)."""
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"snakemake exited ({self.process.returncode}) before the stage paused:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                self.kill_group()
                raise AssertionError(f"the stage did not pause within {timeout} s:\n{self.output()[-4000:]}")
            time.sleep(0.2)
        return json.loads(self.marker.read_text())

    def kill_group(self) -> None:
        """kill -9 of snakemake and its job (the whole process group), as a power loss or OOM kill would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=60)

    def kill_job(self, pid: int, timeout: float = 300) -> int:
        """kill -9 of the job process alone; snakemake notices and exits by itself. Returns its exit status."""
        os.kill(pid, signal.SIGKILL)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill_group()  # leftovers of the group (e.g. CRF pool workers), if any

    def wait(self, timeout: float = 600) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def close(self) -> None:
        if self.process.returncode is None:  # still running (a failed test): end it
            self.kill_group()
        self.log.close()


def pid_alive(pid: int, grace: float = 30) -> bool:
    """Whether ``pid`` still runs ``grace`` seconds from now (a zombie counts as dead: it only awaits its parent)."""
    deadline = time.monotonic() + grace
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)


def temporaries(folder: Path) -> list[Path]:
    """What atomic writes leave behind while in progress: hidden ``.<name>.*.tmp*`` siblings."""
    return sorted(p for p in folder.rglob(".*") if ".tmp" in p.name) if folder.exists() else []


# -------------------------------------------------------------- the chain killed in each long stage --

@dataclass(frozen=True)
class Stage:
    rule: str
    kill: str  # "group": snakemake and its job; "job": the job process alone
    module: str  # where the pause hook holds the stage: after the `after`-th call of module.function on a path containing `match`
    function: str
    match: str
    after: int
    outputs: tuple[str, ...]
    resume: str | None = None  # a trainer's resume state
    temporary: str | None = None  # the temporary folder a directory() output is filled in


VARIANTS = reliability_config()["maps"]["variants"]
STAGES = [
    Stage("train_classifier", "group", "mctformer.training.common", "save_checkpoint", "classifier/resume/last.pt", 1,
          ("classifier/checkpoint.pt", "classifier/log.csv"), resume="classifier/resume/last.pt"),
    Stage("extract_maps", "job", "mctformer.artifacts", "save_map_file", "maps/.", 5,
          tuple(f"maps/{v}" for v in VARIANTS) + ("maps/overlays",), temporary=f"maps/.{VARIANTS[0]}."),
    Stage("train_affinity", "job", "mctformer.training.common", "save_checkpoint", "psa/resume/last.pt", 1,
          ("psa/affinity.pt", "psa/affinity_log.csv"), resume="psa/resume/last.pt"),
    Stage("random_walk", "group", "mctformer.artifacts", "save_label_png", "masks/.pseudo.", 3,
          ("masks/pseudo",), temporary="masks/.pseudo."),
    Stage("train_deeplab", "group", "mctformer.training.common", "save_checkpoint", "deeplab/resume/last.pt", 1,
          ("deeplab/checkpoint.pt", "deeplab/log.csv"), resume="deeplab/resume/last.pt"),
    Stage("infer_deeplab", "job", "mctformer.artifacts", "save_label_png", "deeplab/.pred_crf.", 2,
          ("deeplab/pred", "deeplab/pred_crf"), temporary="deeplab/.pred_crf."),
]


def snapshot(workdir, stage: Stage) -> dict:
    """What a kill left on disk."""
    import torch

    run = workdir / RUN
    resume = run / stage.resume if stage.resume else None
    return {
        "outputs_present": [name for name in stage.outputs if (run / name).exists()],
        "temporaries": [str(p.relative_to(run)) for p in temporaries(run)],
        "resume_epoch": torch.load(resume, weights_only=False)["epoch"] if resume is not None and resume.exists() else None,
    }


# -------------------------------------------------------------- comparison --

def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def assert_same_maps(a: Path, b: Path) -> int:
    """Every ``<id>.npz`` of two map folders holds bitwise identical arrays; returns how many were compared."""
    names = sorted(p.name for p in a.glob("*.npz"))
    assert names and names == sorted(p.name for p in b.glob("*.npz")), f"{a} and {b} hold other files"
    for name in names:
        x, y = npz_arrays(a / name), npz_arrays(b / name)
        assert x.keys() == y.keys(), name
        for key in x:
            assert x[key].dtype == y[key].dtype and np.array_equal(x[key], y[key]), f"{b / name}: {key} differs"
    return len(names)


def assert_same_pngs(a: Path, b: Path) -> int:
    """Every ``<id>.png`` of two folders has identical pixels; returns how many were compared."""
    names = sorted(p.name for p in a.glob("*.png"))
    assert names and names == sorted(p.name for p in b.glob("*.png")), f"{a} and {b} hold other files"
    for name in names:
        with Image.open(a / name) as x, Image.open(b / name) as y:
            assert x.mode == y.mode and np.array_equal(np.asarray(x), np.asarray(y)), f"{b / name} differs"
    return len(names)


def assert_same_weights(a: Path, b: Path) -> None:
    import torch

    x = torch.load(a, map_location="cpu", weights_only=False)
    y = torch.load(b, map_location="cpu", weights_only=False)
    assert x["architecture"] == y["architecture"]
    assert x["model"].keys() == y["model"].keys()
    for key in x["model"]:
        assert torch.equal(x["model"][key], y["model"][key]), f"{b}: {key} differs"


def log_rows(path: Path) -> list[dict]:
    """A training log.csv without its wall-time column."""
    import pandas as pd

    return pd.read_csv(path).drop(columns=["seconds"]).to_dict("records")
