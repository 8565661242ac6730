"""deeplab.inference_amp, psa.walk_amp, irn.walk_amp: float32 is no autocast at all (outputs unchanged), and a lowered
dtype stays within a tolerance of float32, on CPU (whose autocast runs bfloat16) and, where one is visible, on CUDA."""

from __future__ import annotations

import pytest
import torch

from helpers.workflow import tiny_config
from mctformer.models.affinitynet import AffinityNet
from mctformer.models.irn import BoundaryNet, boundary_probability
from mctformer.precision import inference_autocast
from mctformer.psa.walk import walk_seeds
from mctformer.segmentation import multiscale_softmax
from mctformer.training.deeplab import build_deeplab

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# (device, lowered dtype): CPU autocast takes bfloat16; CUDA both
CASES = [("cpu", "bfloat16"), pytest.param("cuda", "bfloat16", marks=CUDA), pytest.param("cuda", "float16", marks=CUDA)]


def test_unknown_dtype_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="deeplab.inference_amp"):
        inference_autocast(torch.device("cpu"), "float64", "deeplab.inference_amp")


def test_float32_enters_no_autocast():
    with inference_autocast(torch.device("cpu"), "float32", "psa.walk_amp"):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def small_deeplab(device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    settings = {**tiny_config()["deeplab"], "head_channels": 8, "dilation": 2}
    return build_deeplab(settings, 5).to(device).eval()


@pytest.mark.parametrize(("device", "dtype"), CASES)
def test_deeplab_inference_amp_within_tolerance_of_float32(device, dtype):
    device = torch.device(device)
    model = small_deeplab(device)
    images = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(1)).to(device)
    kwargs = dict(scales=[0.75, 1.0], flip=True, fuse="max", resize="ours")
    exact = multiscale_softmax(model, images, amp="float32", **kwargs)
    lowered = multiscale_softmax(model, images, amp=dtype, **kwargs)
    assert lowered.dtype == torch.float32  # the scores are cast back before the softmax and fusion
    assert (lowered - exact).abs().max().item() < 0.02
    assert (lowered.argmax(1) == exact.argmax(1)).float().mean().item() > 0.97


@pytest.mark.parametrize(("device", "dtype"), CASES)
def test_psa_walk_amp_features_walk_within_tolerance(device, dtype):
    device = torch.device(device)
    torch.manual_seed(0)
    net = AffinityNet(backbone="tiny", pretrained=None, feature_dim=16).to(device).eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.inference_mode():
        exact = net(images).float()
        with inference_autocast(device, dtype, "psa.walk_amp"):
            lowered = net(images)
        lowered = lowered.float()
        grid = exact.shape[-2:]
        seeds = [torch.rand(3, *grid, generator=torch.Generator().manual_seed(3 + i)) for i in range(2)]
        walked_exact = walk_seeds(exact, seeds, 8, 3, 4, "all")
        walked_lowered = walk_seeds(lowered, seeds, 8, 3, 4, "all")
    assert (lowered - exact).abs().max().item() < 0.05 * exact.abs().max().item()
    assert (walked_lowered.argmax(1) == walked_exact.argmax(1)).float().mean().item() > 0.97


@pytest.mark.parametrize(("device", "dtype"), CASES)
def test_irn_walk_amp_boundary_within_tolerance(device, dtype):
    device = torch.device(device)
    torch.manual_seed(0)
    net = BoundaryNet(backbone="tiny", pretrained=None, edge_channels=8, freeze_backbone=False).to(device).eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4)).to(device)
    with torch.inference_mode():
        exact = boundary_probability(net, images).float()
        with inference_autocast(device, dtype, "irn.walk_amp"):
            lowered = boundary_probability(net, images)
    assert (lowered.float() - exact).abs().max().item() < 0.02
