"""The core package's keyword arguments as the shipped config.yaml sets them (so no test restates a default)."""

from __future__ import annotations

from helpers.workflow import shipped_config


def classifier_arguments(**overrides) -> dict:
    """create_mctformer's keyword arguments as the shipped config's ``classifier`` section sets them."""
    classifier = shipped_config()["classifier"]
    arguments = {
        "version": classifier["version"], "token_pooling": classifier["token_pooling"], "drop_path_rate": classifier["drop_path"],
        "pretrained": classifier["pretrained"], "patchcam_init": classifier["patchcam_init"],
        "locality_sigma": classifier["locality_sigma"], "input_size": classifier["input_size"],
        "gwrp_decay": classifier["gwrp_decay"],
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


def scaled_crf(section: str = "psa", *, spatial_scale: float | str = "auto", reference_size: float = 500, **overrides):
    """:func:`crf_params` as the drivers take it: with its spatial scaling (``auto``: sxy for ~500 px images)."""
    from mctformer.crf import ScaledCRF

    return ScaledCRF(crf_params(section, **overrides), spatial_scale, reference_size)
