"""Pretrained weights from local files: what to download for each model, which config key takes it, its checksum.

Nothing is downloaded by the pipeline (compute nodes often have no internet);
a missing file stops with a message naming the file to fetch, where from, and
the config key to point at it. Every loaded file's sha256 is printed, so a
job's log says exactly which weights it started from. torch is imported only
by :func:`read_state_dict`, so the config checks can use the messages.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple


class WeightSource(NamedTuple):
    config_key: str
    file_name: str
    where: str


WEIGHTS: dict[str, WeightSource] = {
    "deit_small": WeightSource(
        "classifier.pretrained",
        "deit_small_patch16_224-cd65a155.pth",
        "https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth "
        "(or timm's model.safetensors from https://huggingface.co/timm/deit_small_patch16_224.fb_in1k)",
    ),
    "deit_tiny": WeightSource(
        "classifier.pretrained",
        "deit_tiny_patch16_224-a1311bcf.pth",
        "https://dl.fbaipublicfiles.com/deit/deit_tiny_patch16_224-a1311bcf.pth "
        "(or timm's model.safetensors from https://huggingface.co/timm/deit_tiny_patch16_224.fb_in1k)",
    ),
    "resnet38d": WeightSource(
        "affinity.pretrained / deeplab.pretrained",
        "ilsvrc-cls_rna-a1_cls1000_ep-0001.pth",
        "the converted ImageNet ResNet-38 weights linked from the READMEs of PSA (github.com/jiwoon-ahn/psa) "
        "and MCTformer (github.com/xulianuwa/MCTformer); the paper configs' reference recipe starts from PSA's "
        "VOC-trained res38_cls.pth instead (the same format, loaded the same way)",
    ),
}


def weights_hint(model: str, config_key: str | None = None) -> str:
    """What to download for ``model`` (a registry name, ``resnet38d`` or a timm model name) and where to put it."""
    source = WEIGHTS.get(model)
    if source is None:  # any other name is a timm CNN
        source = WeightSource(
            "affinity.pretrained / deeplab.pretrained",
            f"model.safetensors of timm's {model}",
            f"https://huggingface.co/timm (the {model}.* repository of the tag you want, e.g. {model}.tv_in1k), "
            f"or a .pth state dict saved from timm.create_model('{model}')",
        )
    key = config_key or source.config_key
    return f"download {source.file_name} from {source.where}, put it anywhere (e.g. weights/) and set {key} to its path"


def missing_weights(path: str | os.PathLike, model: str, config_key: str | None = None) -> FileNotFoundError:
    return FileNotFoundError(f"pretrained weights {path} not found: {weights_hint(model, config_key)}")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def announce(path: str | os.PathLike, what: str) -> str:
    """Print (to the job's log) which file was loaded and its sha256; return the full digest."""
    digest = file_sha256(path)
    print(f"{what}: loaded {path} (sha256 {digest[:16]}...)")
    return digest


def read_state_dict(path: str | os.PathLike, model: str):
    """A state dict from a local .pth/.pt (optionally under 'model' or 'state_dict') or .safetensors file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise missing_weights(path, model)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"pretrained weights {path} are unreadable (a .pth state dict or .safetensors file expected): {error}") from error
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"pretrained weights {path} hold no state dict")
    return state
