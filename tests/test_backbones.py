import pytest
import torch

from mctformer.models.affinitynet import AffinityNet
from mctformer.models.backbones import ResNet38d, create_backbone
from mctformer.models.deeplab import DeepLabLargeFOV


@pytest.fixture(scope="module")
def resnet38():
    torch.manual_seed(0)
    return ResNet38d(None)


def test_resnet38_levels_at_stride_8(resnet38):
    levels = resnet38(torch.randn(1, 3, 32, 48))
    assert [tuple(level.shape) for level in levels] == [(1, 512, 4, 6), (1, 1024, 4, 6), (1, 4096, 4, 6)]
    assert 100e6 < sum(p.numel() for p in resnet38.parameters()) < 110e6  # the wide ResNet-38 (measured 105.1 M)


def test_resnet38_keeps_batch_norm_and_first_conv_frozen(resnet38):
    resnet38.train()
    norms = [m for m in resnet38.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert not resnet38.conv1a.weight.requires_grad and not norms[0].weight.requires_grad
    assert resnet38.b4_3.conv_branch2a.weight.requires_grad


def test_resnet38_loads_weights_in_the_reference_format(resnet38, tmp_path, capsys):
    import hashlib

    state = {key: torch.randn_like(value) if value.is_floating_point() else value for key, value in resnet38.state_dict().items()}
    state = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}  # the converted file has none
    torch.save(state, tmp_path / "resnet38.pth")
    loaded = ResNet38d(tmp_path / "resnet38.pth")
    assert torch.equal(loaded.b6.conv_branch2b2.weight, state["b6.conv_branch2b2.weight"])
    assert torch.equal(loaded.bn7.running_var, state["bn7.running_var"])
    assert f"sha256 {hashlib.sha256((tmp_path / 'resnet38.pth').read_bytes()).hexdigest()[:16]}" in capsys.readouterr().out
    del state["b7.conv_branch1.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="does not match ResNet-38"):
        ResNet38d(tmp_path / "broken.pth")
    with pytest.raises(FileNotFoundError, match="ilsvrc-cls_rna-a1_cls1000_ep-0001"):
        ResNet38d(tmp_path / "absent.pth")


def test_heads_on_every_backbone():
    torch.manual_seed(0)
    reference = AffinityNet(backbone="resnet38d", pretrained=None, feature_dim=448)  # the reference's feature dim
    assert reference(torch.randn(1, 3, 32, 32)).shape == (1, 448, 4, 4)
    assert [h.out_channels for h in reference.level_heads] == [64, 128, 256]  # the reference's widths
    deeplab = DeepLabLargeFOV(21, backbone="resnet18", pretrained=None, head="largefov", aspp_dilations=[6, 12, 18, 24], head_channels=16,
                              dilation=12, dropout=0.5, classifier_kernel=1, head_init="kaiming_normal")
    assert deeplab(torch.randn(1, 3, 40, 40)).shape == (1, 21, 40, 40)
    aspp = DeepLabLargeFOV(21, backbone="resnet18", pretrained=None, head="aspp", aspp_dilations=[6, 12, 18, 24], head_channels=16,
                           dilation=12, dropout=0.5, classifier_kernel=1, head_init="kaiming_normal")
    assert aspp(torch.randn(1, 3, 40, 40)).shape == (1, 21, 40, 40)
    assert create_backbone("resnet18", None).output_stride == 8
    with pytest.raises(ValueError, match="from scratch"):
        create_backbone("tiny", pretrained="weights.pth")


@pytest.mark.parametrize("name, size", [("tiny", 32), ("resnet18", 32)])
def test_registry_stride_is_the_backbones_real_stride(name, size):
    from mctformer.models.registry import backbone_output_stride

    backbone = create_backbone(name, None)
    assert backbone.output_stride == backbone_output_stride(name)
    assert backbone(torch.randn(1, 3, size, size))[-1].shape[-1] == size // backbone_output_stride(name)


def test_resnet38_loads_psa_voc_classifier_weights(resnet38, tmp_path):
    """PSA's res38_cls.pth (the paper configs' AffinityNet and DeepLab start): the same trunk names plus its fc8 classifier."""
    state = {key: torch.randn_like(value) if value.is_floating_point() else value for key, value in resnet38.state_dict().items()}
    state["fc8.weight"] = torch.randn(20, 4096, 1, 1)  # resnet38_cls.Net's 1x1 classifier, dropped on load
    torch.save(state, tmp_path / "res38_cls.pth")
    loaded = ResNet38d(tmp_path / "res38_cls.pth")
    assert torch.equal(loaded.b4_5.conv_branch2b1.weight, state["b4_5.conv_branch2b1.weight"])
    assert not any(key.startswith("fc8") for key in loaded.state_dict())
