from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mctformer.artifacts import save_label_png, voc_palette
from mctformer.data.synthetic import SyntheticSpec, generate_synthetic_voc

REPO = Path(__file__).resolve().parents[1]

@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small generated VOC-layout root, shared read-only by the tests."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    generate_synthetic_voc(root, TINY_SPEC, palette=None, workers=1)
    return root


def write_voc_root(root: Path, masks: dict[str, np.ndarray], lists: dict[str, list[str]]) -> Path:
    """A hand-made VOC-layout root: a random JPEG per mask, palette PNG masks, split lists."""
    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassAug").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for image_id, mask in masks.items():
        Image.fromarray(rng.integers(0, 255, mask.shape + (3,), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        save_label_png(root / "SegmentationClassAug" / f"{image_id}.png", mask, voc_palette())
    for split, ids in lists.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def shipped_config() -> dict:
    """The shipped config.yaml, the one place a default lives."""
    return yaml.safe_load((REPO / "config.yaml").read_text())


def classifier_arguments(**overrides) -> dict:
    """create_mctformer's keyword arguments as the shipped config's ``classifier`` section sets them."""
    classifier = shipped_config()["classifier"]
    arguments = {
        "version": classifier["version"], "token_pooling": classifier["token_pooling"], "drop_path_rate": classifier["drop_path"],
        "pretrained": classifier["pretrained"], "patchcam_init": classifier["patchcam_init"],
        "locality_sigma": classifier["locality_sigma"],
    }
    return {**arguments, **overrides}


def tiny_mctformer(num_classes: int, **overrides):
    """A from-scratch ``tiny`` MCTformer with the shipped ``classifier`` settings, ``overrides`` aside."""
    from mctformer.models.mctformer import create_mctformer

    return create_mctformer("tiny", num_classes, **classifier_arguments(**overrides))


MAP_KEYS = ("scales", "flip", "last_k", "feature_temperature", "resize", "remainder", "position_embedding", "amp")


def map_arguments(**overrides) -> dict:
    """multiscale_maps' keyword arguments as the shipped config's ``maps`` section sets them."""
    maps = shipped_config()["maps"]
    return {**{key: maps[key] for key in MAP_KEYS}, **overrides}


def extract_arguments(**overrides) -> dict:
    """extract_maps' keyword arguments as the shipped config's ``maps`` section sets them, on the CPU."""
    maps = shipped_config()["maps"]
    arguments = {"batch_size": maps["batch_size"], "num_overlays": maps["overlays"], "storage_dtype": maps["storage_dtype"], "device": "cpu"}
    return {**map_arguments(), **arguments, **overrides}


def crf_params(section: str = "psa", **overrides):
    """The CRFParams of the shipped config's ``<section>.crf`` (psa or deeplab), ``overrides`` aside."""
    import dataclasses

    from mctformer.crf import CRFParams

    return dataclasses.replace(CRFParams.from_config(shipped_config()[section]["crf"]), **overrides)


def classic_overlay() -> dict:
    """workflow/configs/synthetic_classic.yaml: the classic synthetic world and the recipe it shipped with."""
    return yaml.safe_load((REPO / "workflow" / "configs" / "synthetic_classic.yaml").read_text())


def tiny_config(run_name: str = "tiny") -> dict:
    """The shipped config, shrunk to run the whole chain in well under a minute."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config = copy.deepcopy(config)
    config["run_name"] = run_name
    config["data"]["classes"] = ["disc", "square", "triangle", "diamond"]
    # the classic world (workflow/configs/synthetic_classic.yaml): colour gives the class, so one epoch learns it
    config["synthetic"].update(classic_overlay()["synthetic"])
    config["synthetic"].update(num_train_aug=48, num_train=12, num_val=16, image_size=32, max_objects=2)
    config["classifier"].update(epochs=1, batch_size=16, input_size=32, workers=0)
    config["maps"].update(batch_size=16, overlays=2)
    config["seeds"]["thresholds"] = {"start": 0.0, "stop": 0.6, "step": 0.05}
    config["psa"].update(max_images=None, workers=2)
    config["affinity"].update(epochs=1, batch_size=8, crop_size=32)
    config["deeplab"].update(epochs=1, batch_size=8, crop_size=32, scales=[0.75, 1.0])
    return config


def tiny_spec(**overrides) -> SyntheticSpec:
    """The synthetic data of :func:`tiny_config` (4 classes, 32 px), generated with seed 3."""
    synthetic = tiny_config()["synthetic"]
    values = {**synthetic, "radius_range": tuple(synthetic["radius_range"]), "num_classes": len(tiny_config()["data"]["classes"]), "seed": 3}
    return SyntheticSpec(**{**values, **overrides})


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole chain run once on the tiny config (--cores 2); tests read it, none may change it."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir
