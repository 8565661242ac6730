"""Pretrained weights from local files: timm checkpoints for timm backbones, and the missing-file messages.

Covered elsewhere (not repeated here): DeiT .pth ({'model': ...}) and timm safetensors into
MCTformer, with the printed checksum: tests/test_model.py::test_deit_checkpoint_initialises_every_class_token;
the converted PSA ResNet-38 file, with the printed checksum:
tests/test_backbones.py::test_resnet38_loads_weights_in_the_reference_format.
"""

import hashlib

import pytest
import torch

from helpers.arguments import tiny_mctformer
from helpers.workflow import tiny_config
from mctformer.models.backbones import TimmBackbone, create_backbone
from mctformer.models.mctformer import load_deit_weights

TIMM_NAME = "resnet10t"  # the smallest timm ResNet (5 M parameters) that takes output_stride=8


@pytest.fixture(scope="module")
def timm_state():
    import timm

    torch.manual_seed(0)
    model = timm.create_model(TIMM_NAME)
    return {key: torch.randn_like(value) if value.is_floating_point() else value for key, value in model.state_dict().items()}


@pytest.mark.parametrize("form", ["plain.pth", "wrapped.pth", "model.safetensors"])
def test_timm_backbone_loads_a_timm_checkpoint(timm_state, tmp_path, capsys, form):
    from safetensors.torch import save_file

    path = tmp_path / form
    if form == "plain.pth":
        torch.save(timm_state, path)
    elif form == "wrapped.pth":
        torch.save({"state_dict": timm_state, "epoch": 3}, path)
    else:
        save_file({k: v.contiguous() for k, v in timm_state.items()}, str(path))
    backbone = create_backbone(TIMM_NAME, pretrained=path)
    assert isinstance(backbone, TimmBackbone)
    assert torch.equal(backbone.body.layer4[0].conv2.weight, timm_state["layer4.0.conv2.weight"])
    assert torch.equal(backbone.body.bn1.running_var, timm_state["bn1.running_var"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"sha256 {digest[:16]}" in capsys.readouterr().out


def test_timm_checkpoint_of_another_network_is_refused(timm_state, tmp_path):
    """timm loads features-only models non-strictly; our check keeps a wrong file from loading half-way."""
    partial = {k: v for k, v in timm_state.items() if not k.startswith("layer4.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial.pth does not match timm's resnet10t: it lacks \d+ tensors, e\.g\. layer4\."):
        TimmBackbone(TIMM_NAME, tmp_path / "partial.pth")
    resized = dict(timm_state, **{"layer1.0.conv1.weight": torch.zeros(3, 3, 3, 3)})
    torch.save(resized, tmp_path / "resized.pth")
    with pytest.raises(ValueError, match=r"layer1.0.conv1.weight is \(3, 3, 3, 3\)"):
        TimmBackbone(TIMM_NAME, tmp_path / "resized.pth")


@pytest.mark.parametrize(
    "load, expected",
    [
        (lambda p: load_deit_weights(tiny_mctformer(3), p), ["deit_small_patch16_224-cd65a155.pth", "dl.fbaipublicfiles.com/deit", "classifier.pretrained"]),
        (lambda p: create_backbone("resnet38d", p), ["ilsvrc-cls_rna-a1_cls1000_ep-0001.pth", "jiwoon-ahn/psa", "affinity.pretrained / deeplab.pretrained"]),
        (lambda p: create_backbone(TIMM_NAME, p), ["huggingface.co/timm", f"timm.create_model('{TIMM_NAME}')", "deeplab.pretrained"]),
    ],
)
def test_missing_weights_say_what_to_download_and_where(tmp_path, load, expected):
    with pytest.raises(FileNotFoundError) as error:
        load(tmp_path / "absent.pth")
    message = str(error.value)
    assert "absent.pth not found" in message
    for part in expected:
        assert part in message


def test_config_check_names_the_download_for_each_key(tmp_path):
    from mctformer.config import ConfigError, check_config

    for section, backbone, expected in [
        ("classifier", None, "deit_small_patch16_224"),
        ("affinity", "resnet38d", "ilsvrc-cls_rna-a1_cls1000_ep-0001.pth"),
        ("deeplab", "resnet101", "huggingface.co/timm"),
    ]:
        config = tiny_config()
        config[section]["pretrained"] = str(tmp_path / "nowhere.pth")
        if section == "classifier":
            config["classifier"]["arch"] = "deit_small"
            config["maps"]["last_k"] = 3
        else:
            config[section]["backbone"] = backbone
        message = rf"{section}\.pretrained: weights file .*nowhere.pth does not exist: download .*{expected}.* set {section}\.pretrained"
        with pytest.raises(ConfigError, match=message):
            check_config(config)


# ---------------------------------------------------------------- weights by name, from the local Hugging Face cache --

def fill_hub_cache(cache, repo_id: str, tensors: dict, file_name: str = "model.safetensors"):
    """``repo_id``'s ``file_name`` in a Hugging Face hub cache folder in HF's own layout: the file a blob named by its
    sha256, the snapshot of a revision linking to it, refs/main naming that revision. Returns the snapshot's file."""
    from safetensors.torch import save_file

    repository = cache / ("models--" + repo_id.replace("/", "--"))
    (repository / "blobs").mkdir(parents=True)
    staging = repository / "blobs" / "staging"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(staging))
    blob = repository / "blobs" / hashlib.sha256(staging.read_bytes()).hexdigest()
    staging.rename(blob)
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(revision)
    snapshot = repository / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / file_name).symlink_to(blob)
    return snapshot / file_name


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub and the pipeline use (HF_HUB_CACHE), offline."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("value", [TIMM_NAME, f"{TIMM_NAME}.c3_in1k", f"timm/{TIMM_NAME}.c3_in1k"])
def test_a_timm_name_or_hub_id_loads_from_the_local_cache(timm_state, hub_cache, capsys, value):
    from mctformer.models.weights import resolve_weights

    # timm's pretrained config names the hub repository of resnet10t's default tag
    cached = fill_hub_cache(hub_cache, f"timm/{TIMM_NAME}.c3_in1k", timm_state)
    assert resolve_weights(value, TIMM_NAME, "deeplab.pretrained") == cached
    backbone = create_backbone(TIMM_NAME, pretrained=value)
    assert torch.equal(backbone.body.layer4[0].conv2.weight, timm_state["layer4.0.conv2.weight"])
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    assert f"{cached} (sha256 {digest[:16]}" in capsys.readouterr().out
    if value == TIMM_NAME:  # IRN's pyramid of the same network (irn.pretrained)
        from mctformer.models.irn import create_boundary_backbone

        pyramid = create_boundary_backbone(TIMM_NAME, value)
        assert torch.equal(pyramid.body.layer4[0].conv2.weight, timm_state["layer4.0.conv2.weight"])


def test_a_name_absent_from_the_cache_names_the_folder_and_the_command(hub_cache):
    from mctformer.config import ConfigError, check_config
    from mctformer.models.weights import pretrained_file, resolve_weights

    with pytest.raises(FileNotFoundError) as error:
        create_backbone(TIMM_NAME, pretrained=TIMM_NAME)
    message = str(error.value)
    assert f"not in the local Hugging Face cache {hub_cache}" in message
    assert f"`hf download timm/{TIMM_NAME}.c3_in1k model.safetensors --cache-dir {hub_cache}`" in message
    assert "huggingface-cli download" in message
    with pytest.raises(ValueError, match="neither a weights file, a Hugging Face model id .* nor a timm model name"):
        resolve_weights("no_such_network_anywhere", TIMM_NAME)
    config = tiny_config()
    config["deeplab"].update(backbone="resnet101", pretrained="resnet101")
    check_config(config)  # a name is the loading job's to resolve: the Snakemake process may have no timm
    with pytest.raises(FileNotFoundError, match=rf"'resnet101' \(Hugging Face timm/resnet101\.\w+, .*cache {hub_cache}.*hf download.*set deeplab\.pretrained"):
        pretrained_file(config, "deeplab")
    config["deeplab"]["pretrained"] = "weights/resnet101.pth"  # a path is checked at once
    with pytest.raises(ConfigError, match=r"^deeplab\.pretrained: weights file weights/resnet101.pth does not exist"):
        check_config(config)


def test_the_classifier_takes_a_deit_name_and_the_provenance_records_the_file(hub_cache):
    import timm

    from mctformer.models.mctformer import create_mctformer
    from mctformer.models.weights import pretrained_provenance
    from mctformer.provenance import collect, provenance_line

    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_patch16_224").state_dict()
    cached = fill_hub_cache(hub_cache, "timm/deit_tiny_patch16_224.fb_in1k", deit)
    model = create_mctformer("deit_tiny", 3, version="v2", token_pooling="avg", drop_path_rate=0.0, pretrained="deit_tiny_patch16_224",
                             patchcam_init="trunc_normal", locality_sigma=None, input_size=224, gwrp_decay=0.996)
    assert torch.equal(model.blocks[11].mlp.fc2.weight, deit["blocks.11.mlp.fc2.weight"])
    config = tiny_config()
    config["classifier"].update(arch="deit_tiny", pretrained="deit_tiny_patch16_224")
    config["maps"]["last_k"] = 3
    from mctformer.config import check_config

    check_config(config)
    weights = pretrained_provenance(config)
    assert weights == {"classifier": {"value": "deit_tiny_patch16_224", "file": str(cached.resolve()),
                                      "sha256": hashlib.sha256(cached.read_bytes()).hexdigest()}}
    block = collect(config=config, threads=1, device="cpu", weights=weights)
    assert block["weights"] == weights
    assert f"classifier.pretrained deit_tiny_patch16_224 (sha256 {weights['classifier']['sha256'][:12]})" in provenance_line(block)
    assert "weights" not in collect(config=config, threads=1, device="cpu", weights={})
