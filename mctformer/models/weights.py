"""Pretrained weights from local files: what to download for each model, which config key takes it, its checksum.

A ``*.pretrained`` value is a file path, or a timm model name (``deit_small_patch16_224``) or Hugging Face model id
(``timm/resnet50.a1_in1k``) found in the local Hugging Face cache (:func:`resolve_weights`). Nothing is
downloaded by the pipeline (compute nodes often have no internet);
a missing file stops with a message naming the file to fetch, where from (for a name: the cache folder and the
command that fills it), and the config key to point at it. Every loaded file's sha256 is printed, so a
job's log says exactly which weights it started from. torch is imported only
by :func:`read_state_dict`, so the config checks can use the messages.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple


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


# Suffixes that make a value a file path, never a model name (a missing one gets missing_weights' message).
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")
# The files a Hugging Face model repository holds its weights in, in the order timm reads them.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def hf_cache_dir() -> Path:
    """The local Hugging Face hub cache, found as huggingface_hub finds it (HF_HUB_CACHE, else HF_HOME/hub, else
    XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub), read from the environment at each call."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def is_weights_path(value: str | os.PathLike) -> bool:
    """Whether a ``*.pretrained`` value names a file (an existing one, or one by its suffix or a leading / . ~),
    rather than a timm model name or a Hugging Face model id."""
    text = str(value)
    return (Path(text).is_file() or Path(text).suffix.lower() in WEIGHT_SUFFIXES or text.startswith(("/", ".", "~"))
            or text.count("/") > 1 or "\\" in text)


def hub_repository(name: str) -> tuple[str, tuple[str, ...]]:
    """(Hugging Face model id, the files to look for) of a model name: an id ``org/name`` itself, or a timm model name
    (``deit_small_patch16_224``, with or without its ``.tag``) by timm's pretrained config (its default tag's)."""
    if "/" in name:
        return name, HUB_FILES
    import timm.models

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise ValueError(f"{name!r} is neither a weights file, a Hugging Face model id (org/name) nor a timm model name "
                         "with weights on the Hugging Face hub (timm.list_pretrained() lists those)")
    files = (cfg.hf_hub_filename,) if getattr(cfg, "hf_hub_filename", None) else HUB_FILES
    return cfg.hf_hub_id.split("@")[0], files


def resolve_weights(value: str | os.PathLike, model: str, config_key: str | None = None) -> Path:
    """The local file a ``*.pretrained`` value names: a path as it is, or a timm model name / Hugging Face model id
    looked up in the local Hugging Face cache (:func:`hf_cache_dir`) without any network access. Nothing is
    downloaded (compute nodes are often offline): an absent file stops with the cache folder and the command that
    fills it. ``model`` (the registry name of the architecture) words the hint for a missing path."""
    if is_weights_path(value):
        if not Path(value).is_file():
            raise missing_weights(value, model, config_key)
        return Path(value)
    from huggingface_hub import try_to_load_from_cache

    repo_id, files = hub_repository(str(value))
    cache = hf_cache_dir()
    for file_name in files:
        found = try_to_load_from_cache(repo_id, file_name, cache_dir=cache)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    key = config_key or (WEIGHTS[model].config_key if model in WEIGHTS else "affinity.pretrained / deeplab.pretrained")
    raise FileNotFoundError(
        f"pretrained weights {value!r} (Hugging Face {repo_id}, {' or '.join(files)}) are not in the local Hugging Face "
        f"cache {cache}; the pipeline never downloads. On a machine with internet, fill that cache: "
        f"`hf download {repo_id} {files[0]} --cache-dir {cache}` (or `huggingface-cli download {repo_id} {files[0]} "
        f"--cache-dir {cache}`), then copy the folder to the cluster and point HF_HUB_CACHE at it; or set {key} to a "
        "local file"
    )


def pretrained_sections(config: Mapping[str, Any]) -> list[str]:
    """The config sections whose network the run trains and whose ``pretrained`` is set: the classifier, AffinityNet
    (refine.methods psa), IRN's boundary net (irn), DeepLab."""
    methods = config["refine"]["methods"]
    sections = ["classifier", *(["affinity"] if "psa" in methods else []), *(["irn"] if "irn" in methods else []), "deeplab"]
    return [section for section in sections if config[section].get("pretrained")]


def pretrained_path(config: Mapping[str, Any], section: str) -> Path | None:
    """The file ``<section>.pretrained`` names when it is a path; None for a timm name or Hugging Face id, which
    the job that loads it resolves (:func:`resolve_weights`: timm and huggingface_hub are the jobs' packages, not
    necessarily the Snakemake process's)."""
    value = config[section].get("pretrained")
    return Path(value) if value and is_weights_path(value) else None


def pretrained_file(config: Mapping[str, Any], section: str) -> Path:
    """The file ``<section>.pretrained`` names (:func:`resolve_weights`)."""
    model = config[section].get("backbone") or config[section]["arch"]
    return resolve_weights(config[section]["pretrained"], model, f"{section}.pretrained")


def pretrained_provenance(config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """{value, file (resolved), sha256} of each of :func:`pretrained_sections`: what a run records in its provenance."""
    found = {}
    for section in pretrained_sections(config):
        path = pretrained_file(config, section)
        found[section] = {"value": str(config[section]["pretrained"]), "file": str(path.resolve()), "sha256": file_sha256(path)}
    return found


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
