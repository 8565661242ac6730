"""Checks of a configuration beyond its schema (cross-key rules and paths).

The schema (workflow/schemas/config.schema.yaml) checks types, ranges and
unknown keys; this module checks what one key implies for another and that
every path the config names exists, so a bad config fails before any job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .models.registry import ARCHITECTURES, MAP_VARIANTS, backbone_output_stride

SYNTHETIC_SPLITS = ("train_aug", "train", "val")


class ConfigError(ValueError):
    """A configuration error; the message names the key and what was expected."""


def data_root(config: Mapping[str, Any], run_dir: str) -> str:
    """Where the VOC/COCO-layout tree is: generated under the run for synthetic data, else data.root."""
    if config["data"]["source"] == "synthetic":
        return f"{run_dir}/data"
    return str(config["data"]["root"])


def layout_name(config: Mapping[str, Any]) -> str:
    return "coco" if config["data"]["source"] == "coco" else "voc"


def all_splits(config: Mapping[str, Any]) -> list[str]:
    splits = config["data"]["splits"]
    return list(dict.fromkeys([splits["train"], splits["val"], *splits["seed_eval"], *config["psa"]["eval_splits"]]))


def check_config(config: Mapping[str, Any]) -> None:
    data = config["data"]
    if data["source"] == "synthetic":
        synthetic = config.get("synthetic", {})
        if synthetic["num_train"] > synthetic["num_train_aug"]:
            raise ConfigError("synthetic.num_train: must not exceed synthetic.num_train_aug (train is a subset of train_aug)")
        if synthetic["min_objects"] > synthetic["max_objects"]:
            raise ConfigError("synthetic.min_objects: must not exceed synthetic.max_objects")
        if synthetic["max_objects"] > len(data["classes"]):
            raise ConfigError("synthetic.max_objects: must not exceed the number of data.classes (one object per class)")
        low, high = synthetic["radius_range"]
        if low > high:
            raise ConfigError("synthetic.radius_range: expected [low, high] with low <= high")
        for split in all_splits(config):
            if split not in SYNTHETIC_SPLITS:
                raise ConfigError(f"data.splits: the synthetic generator writes {SYNTHETIC_SPLITS}, not {split!r}")
    else:
        if not data.get("root"):
            raise ConfigError(f"data.root: required when data.source is {data['source']!r} (a VOC/COCO-layout folder)")
        root = Path(data["root"])
        if not root.is_dir():
            raise ConfigError(f"data.root: {root} does not exist or is not a directory")
        for split in all_splits(config):
            path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
            if not path.is_file():
                raise ConfigError(f"data.splits: split list {path} does not exist")
    if data.get("palette") and len(data["palette"]) < len(data["classes"]) + 1:
        raise ConfigError("data.palette: needs one colour for background and one per class")

    classifier = config["classifier"]
    pretrained = classifier.get("pretrained")
    if pretrained and not Path(pretrained).is_file():
        raise ConfigError(f"classifier.pretrained: weights file {pretrained} does not exist")
    depth = ARCHITECTURES[classifier["arch"]]["depth"]
    if config["maps"]["last_k"] > depth:
        raise ConfigError(f"maps.last_k: {config['maps']['last_k']} exceeds the {depth} blocks of {classifier['arch']}")
    allowed = MAP_VARIANTS[classifier["version"]]
    for variant in config["maps"]["variants"]:
        if variant not in allowed:
            raise ConfigError(f"maps.variants: {variant!r} needs another model version; {classifier['version']} makes {list(allowed)}")
    psa = config["psa"]
    if psa["seed_variant"] not in config["maps"]["variants"]:
        raise ConfigError(f"psa.seed_variant: {psa['seed_variant']!r} is not among maps.variants {config['maps']['variants']}")
    if psa["background"] is None and psa["threshold_split"] not in data["splits"]["seed_eval"]:
        raise ConfigError(
            f"psa.threshold_split: {psa['threshold_split']!r} is not in data.splits.seed_eval, so no best threshold is "
            f"computed for it; pick one of {data['splits']['seed_eval']} or pin psa.background"
        )
    stride = backbone_output_stride(config["affinity"]["backbone"])
    if config["affinity"]["crop_size"] % stride:
        raise ConfigError(f"affinity.crop_size: must be a multiple of the backbone's output stride ({stride} for {config['affinity']['backbone']})")
    thresholds = config["seeds"]["thresholds"]
    if thresholds["stop"] < thresholds["start"]:
        raise ConfigError("seeds.thresholds: stop must not be below start")
