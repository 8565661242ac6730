"""The repository, its shipped config, the tiny test config shrunk from it, and snakemake run on it.

``shipped_config`` and ``tiny_config`` live together here: every test that needs a
config starts from one of them (fixtures in tests/conftest.py import them too).
"""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
from pathlib import Path

import yaml

from helpers.device import TEST_DEVICE
from mctformer import testing
from mctformer.config import load_config
from mctformer.data.synthetic import SyntheticSpec

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _resolved(*configfiles: Path) -> dict:
    return load_config(configfiles, default_file=REPO / "config.yaml")[0]


def shipped_config() -> dict:
    """The shipped config.yaml as the workflow resolves it (mctformer.config.load_config): every reference switch
    stated, at its compat mode's value (ours). A fresh copy each call: tests edit it."""
    return copy.deepcopy(_resolved())


def paper_config(name: str) -> dict:
    """workflow/configs/<name>.yaml as the workflow resolves it: config.yaml, its base chain, then compat."""
    return copy.deepcopy(_resolved(REPO / "workflow" / "configs" / f"{name}.yaml"))


def classic_overlay() -> dict:
    """workflow/configs/synthetic_classic.yaml: the classic synthetic world and the recipe it shipped with."""
    return yaml.safe_load((REPO / "workflow" / "configs" / "synthetic_classic.yaml").read_text())


def tiny_config(run_name: str = "tiny") -> dict:
    """The shipped config, resolved (every switch stated), shrunk to run the whole chain in well under a minute
    (mctformer.testing); on the CPU whatever the host has, on CUDA when asked (helpers/device.py)."""
    return testing.tiny_config(shipped_config(), classic_overlay()["synthetic"], run_name=run_name, device=TEST_DEVICE)


def tiny_spec(**overrides) -> SyntheticSpec:
    """The synthetic data of :func:`tiny_config` (4 classes, 32 px), generated with seed 3."""
    return testing.tiny_spec(tiny_config(), **overrides)


TINY_SPEC = tiny_spec()


def snakemake(workdir, *args, config=None):
    """Run this repository's workflow in ``workdir`` with ``config`` (default: :func:`tiny_config`)."""
    config_path = workdir / "config.tiny.yaml"
    config_path.write_text(yaml.safe_dump(config or tiny_config()))
    command = [
        sys.executable, "-m", "snakemake", *args, "--cores", "2", "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(config_path),
    ]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir)


def miou_of_folder(run, folder, split) -> float:
    """The present-labels mIoU of the label PNGs in ``folder`` against the ground truth of a run of :func:`tiny_config`
    (``run``: its results/<run_name>) on ``split``, counted here, not read from the run's own evaluation."""
    from mctformer.artifacts import read_label_png
    from mctformer.data.voc import VOCLayout
    from mctformer.metrics import dataset_confusion, scores_from_confusion

    classes = tiny_config()["data"]["classes"]
    layout = VOCLayout(run / "data", len(classes))
    pairs = [(layout.load_mask(image_id), read_label_png(folder / f"{image_id}.png")) for image_id in layout.read_ids(split)]
    return float(scores_from_confusion(dataset_confusion(pairs, len(classes) + 1))["miou"])
