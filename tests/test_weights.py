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
