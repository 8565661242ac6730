"""Parity with the reference's numerical conventions (docs/design.md, "Numerical conventions"), on hand-made tensors.

One test per convention that no other test pins exactly. The ones pinned elsewhere:
- class tokens and their position embeddings copied from DeiT's cls token (.pth and safetensors):
  tests/test_model.py::test_deit_checkpoint_initialises_every_class_token
- V1 logits = mean of the final class tokens before the last LayerNorm:
  tests/test_model.py::test_token_logits_are_the_mean_of_unnormalised_class_tokens
- class-to-patch map = SUM over the last K blocks of rows [:C], cols [C:]:
  tests/test_localize.py::test_class_to_patch_attention_sums_the_last_k_blocks
- fusion = attention * ReLU(Patch-CAM): tests/test_localize.py::test_fusion_multiplies_by_relu_patchcam
- affinity = SUM over all blocks of patch-to-patch attention, refined map = A @ map:
  tests/test_localize.py::test_patch_affinity_sums_all_blocks_patch_to_patch,
  tests/test_localize.py::test_refinement_is_affinity_times_map, tests/test_localize.py::test_grid_maps_variants_from_one_output
- per scale and flip: bilinear (align_corners=False) upsampling, GT classes only, flip back, SUM; then
  per-class min-max (+1e-8): tests/test_localize.py::test_grid_level_flip_and_selection_equal_upsampling_everything_first,
  ::test_one_scale_without_flip_is_the_upsampled_grid_map, ::test_flip_aggregation_is_mirror_symmetric, ::test_minmax_per_map
- seeds: argmax over [t, maps] with ties to background, 255 ignored, one confusion per split, lowest t among
  equal mIoUs, the 0.00..0.60 grid: tests/test_metrics.py::test_seed_prediction_ties_go_to_background,
  ::test_sweep_equals_naive_per_threshold_loop_on_random_data, ::test_best_threshold_prefers_the_lowest_on_ties,
  ::test_threshold_grid_is_exact
- bg = (1 - max)^alpha and the la/ha merge: tests/test_psa.py::test_background_power_and_confident_labels
- affinity = exp(-mean L1), loss bg/4 + fg/4 + neg/2, pairs within radius: tests/test_psa.py::test_pair_affinity_and_loss_hand_case,
  ::test_pairs_are_every_unordered_neighbour_pair_once
- walk = dense reference T^(2^logt); seeds average-pooled by the stride: tests/test_psa.py::test_sparse_random_walk_equals_the_dense_reference,
  ::test_seed_scores_pad_with_zeros_and_pool
- CRF sxy scaled with image size: tests/test_psa.py::test_crf_spatial_scale
- DeepLab max/mean fusion with flips: tests/test_deeplab.py::test_multiscale_softmax_fusion
"""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.arguments import tiny_mctformer
from helpers.workflow import paper_config
from mctformer.crf import CRFParams, ScaledCRF, crf_argmax, dense_crf, spatial_scale
from mctformer.models.mctformer import ARCHITECTURES, load_deit_weights
from mctformer.psa.labels import confident_labels, crf_labels
from mctformer.psa.walk import random_walk, transition_matrix_transposed
from mctformer.segmentation import multiscale_softmax

# The paper config states the reference's values (tests/test_paper_configs.py checks it against its settings).
PAPER = paper_config("voc12")


def paper_value(*path):
    node = PAPER
    for key in path:
        node = node[key]
    return node


# ------------------------------------------------------------ position embedding --

@pytest.fixture(scope="module")
def deit_checkpoint(tmp_path_factory):
    """A DeiT-shaped checkpoint of the tiny architecture trained at 32 px: a 4x4 patch grid (the model's is 8x8)."""
    from timm.models.vision_transformer import VisionTransformer

    settings = {k: v for k, v in ARCHITECTURES["tiny"].items() if k != "img_size"}
    torch.manual_seed(3)
    deit = VisionTransformer(num_classes=1000, qkv_bias=True, img_size=32, **settings)
    state = deit.state_dict()
    state["pos_embed"][0, 1:, 0] = 0.7  # channel 0 constant: any interpolation keeps it
    path = tmp_path_factory.mktemp("deit") / "deit.pth"
    torch.save({"model": state}, path)
    return path, state


def as_grid(tokens, height, width):
    """[1, h*w, D] -> [1, D, h, w]."""
    return tokens.reshape(1, height, width, -1).permute(0, 3, 1, 2)


# The reference resamples the patch position embedding with plain F.interpolate(mode="bicubic",
# align_corners=False), cubic kernel a = -0.75; timm's resample_abs_pos_embed is antialiased, which
# in PyTorch means the PIL-style kernel (a = -0.5) even when upsampling. The model uses the former
# at load time and at every other input size; the tests tell the two kernels apart.
REFERENCE_BICUBIC = dict(mode="bicubic", align_corners=False)


def test_checkpoint_position_embedding_is_resampled_bicubically(deit_checkpoint):
    path, state = deit_checkpoint
    model = tiny_mctformer(2, version="v2")
    load_deit_weights(model, path)
    source = as_grid(state["pos_embed"][:, 1:], 4, 4)
    ours = as_grid(model.pos_embed.detach(), 8, 8)
    assert torch.allclose(ours, F.interpolate(source, size=(8, 8), **REFERENCE_BICUBIC), atol=1e-6)
    assert torch.allclose(ours[0, 0], torch.full((8, 8), 0.7), atol=1e-6)  # a constant stays constant
    # the test tells the modes apart: bilinear or align_corners=True give other values
    assert not torch.allclose(ours, F.interpolate(source, size=(8, 8), mode="bilinear", align_corners=False), atol=1e-4)
    assert not torch.allclose(ours, F.interpolate(source, size=(8, 8), mode="bicubic", align_corners=True, antialias=True), atol=1e-4)


def test_position_embedding_follows_the_input_size_bicubically(deit_checkpoint):
    """A 96 px input has a 12x12 grid, a 32 px one 4x4: the model's 8x8 embedding is resampled to it."""
    path, _ = deit_checkpoint
    model = tiny_mctformer(2, version="v2").eval()
    load_deit_weights(model, path)
    for size in (12, 4):
        with torch.no_grad():
            used = model._pos_embed(torch.zeros(1, size, size, model.embed_dim), "size")
        expected = F.interpolate(as_grid(model.pos_embed, 8, 8), size=(size, size), **REFERENCE_BICUBIC)
        assert torch.allclose(as_grid(used, size, size), expected, atol=1e-5)


def test_position_embedding_kernel_is_not_the_antialiased_one(deit_checkpoint):
    path, state = deit_checkpoint
    model = tiny_mctformer(2, version="v2")
    load_deit_weights(model, path)
    antialiased = F.interpolate(as_grid(state["pos_embed"][:, 1:], 4, 4), size=(8, 8), mode="bicubic", align_corners=False, antialias=True)
    assert not torch.allclose(as_grid(model.pos_embed.detach(), 8, 8), antialiased, atol=1e-3)


# ------------------------------------------------------------------------- la / ha --

def test_la_is_confident_foreground_and_ha_confident_background(monkeypatch):
    """With the CRF an identity, la/ha are argmaxes of [(1 - m)^alpha, m]; alpha = 1 (la) and 12 (ha) by default."""
    import mctformer.psa.labels as psa_labels

    seen = []
    monkeypatch.setattr(psa_labels, "dense_crf", lambda image, scores, params: seen.append(scores) or scores)
    assert (paper_value("psa", "alpha_low"), paper_value("psa", "alpha_high")) == (1, 12)
    maps = np.array([[[0.8, 0.4, 0.1]]], np.float32)  # one class (value 5), three pixels
    image = np.zeros((1, 3, 3), np.uint8)
    params = CRFParams.from_config(paper_value("psa", "crf"))
    la = crf_labels(image, np.array([5]), maps, 1, params)
    ha = crf_labels(image, np.array([5]), maps, 12, params)
    assert np.allclose(seen[0][0], [[0.2, 0.6, 0.9]]) and np.allclose(seen[1][0], np.power([[0.2, 0.6, 0.9]], 12))
    # la: 0.8 > 0.2 -> 5, 0.4 < 0.6 -> bg, 0.1 < 0.9 -> bg;  ha: 0.4 > 0.6^12 -> 5, 0.1 < 0.9^12 = 0.28 -> bg
    assert la.tolist() == [[5, 0, 0]] and ha.tolist() == [[5, 5, 0]]
    # la's foreground, ha's background, unsure (255) between
    assert confident_labels(la, ha).tolist() == [[5, 255, 0]]


# --------------------------------------------------------------------- random walk --

def test_random_walk_powers_affinities_elementwise_and_normalises_columns():
    beta = paper_value("psa", "beta")
    assert beta == 8
    sources, targets = torch.tensor([0, 1]), torch.tensor([1, 2])  # a chain 0 - 1 - 2
    affinity = torch.tensor([0.9, 0.5], dtype=torch.float64)
    b1, b2 = 0.9**beta, 0.5**beta  # elementwise power of A, self-affinity 1
    column_sums = [1 + b1, 1 + b1 + b2, 1 + b2]
    transition_t = transition_matrix_transposed(affinity, sources, targets, 3, beta)
    start = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    one_step = random_walk(start, transition_t, 1)  # v @ T, T[i, j] = A^beta[i, j] / column sum j
    assert torch.allclose(one_step, torch.tensor([[1 / column_sums[0], b1 / column_sums[1], 0.0]], dtype=torch.float64))
    # logt = 1 on two nodes: T^2 = [[1 + b^2, 2b], [2b, 1 + b^2]] / (1 + b)^2
    pair_t = transition_matrix_transposed(affinity[:1], sources[:1], targets[:1], 2, beta)
    two_steps = random_walk(start[:, :2], pair_t, 2**1)
    assert torch.allclose(two_steps, torch.tensor([[(1 + b1**2) / (1 + b1) ** 2, 2 * b1 / (1 + b1) ** 2]], dtype=torch.float64))


def test_random_walk_settings_and_background_score(tmp_path):
    from mctformer.models.registry import backbone_output_stride
    from mctformer.stages.psa import read_background

    assert paper_value("psa", "logt") == 6 and paper_value("affinity", "radius") == 5
    configs = {name: paper_config(name) for name in ("voc12", "coco14")}
    # MCTformer's run_psa.sh walks with logt 6 (jiwoon-ahn/psa's default is 8); it ships no COCO walk, so COCO keeps VOC's
    assert configs["voc12"]["psa"]["logt"] == 6 and configs["coco14"]["psa"]["logt"] == 6
    assert configs["voc12"]["affinity"]["backbone"] == "resnet38d" and backbone_output_stride("resnet38d") == 8  # maps pooled by 8
    # background score: the best seed threshold unless the config pins one (the reference hard-codes 0.39)
    (tmp_path / "best.json").write_text(json.dumps({"threshold": 0.39, "miou": 0.6}))
    assert paper_value("psa", "background") == 0.39
    assert read_background(None, str(tmp_path / "best.json")) == 0.39
    assert read_background(0.25, str(tmp_path / "best.json")) == 0.25


# ----------------------------------------------------------------------------- CRF --

class RecordingCRF:
    """Stands in for pydensecrf's DenseCRF2D and records what it is given."""

    calls: list = []

    def __init__(self, width, height, channels):
        self.shape = (channels, height * width)
        RecordingCRF.calls = [("size", width, height, channels)]

    def setUnaryEnergy(self, unary):
        RecordingCRF.calls.append(("unary", unary.shape))

    def addPairwiseGaussian(self, sxy, compat):
        RecordingCRF.calls.append(("gaussian", sxy, compat))

    def addPairwiseBilateral(self, sxy, srgb, rgbim, compat):
        RecordingCRF.calls.append(("bilateral", sxy, srgb, compat))

    def inference(self, iterations):
        RecordingCRF.calls.append(("inference", iterations))
        return np.full(self.shape, 1.0 / self.shape[0], np.float32)


def crf_defaults(section):
    keys = ("iterations", "gaussian_sxy", "gaussian_compat", "bilateral_sxy", "bilateral_srgb", "bilateral_compat")
    return tuple(paper_value(section, "crf", key) for key in keys)


def test_crf_parameters_reach_pydensecrf(monkeypatch):
    """PSA: t=10, gaussian sxy 3 compat 3, bilateral sxy 80 srgb 13 compat 10; DeepLab: 4/3 and 83/5/3; sxy for ~500 px."""
    import pydensecrf.densecrf

    monkeypatch.setattr(pydensecrf.densecrf, "DenseCRF2D", RecordingCRF)
    psa = CRFParams.from_config(paper_value("psa", "crf"))
    assert (psa.iterations, psa.gaussian_sxy, psa.gaussian_compat, psa.bilateral_sxy, psa.bilateral_srgb, psa.bilateral_compat) == (10, 3, 3, 80, 13, 10)
    assert crf_defaults("psa") == (10, 3, 3, 80, 13, 10)
    assert paper_value("psa", "crf", "reference_size") == 500 and spatial_scale((375, 500), "auto", 500) == 1.0
    image = np.zeros((375, 500, 3), np.uint8)  # a VOC-sized image: the sxy values are used as given
    dense_crf(image, np.full((3, 375, 500), 1 / 3, np.float32), psa.scaled(spatial_scale(image.shape[:2], "auto", 500)))
    assert RecordingCRF.calls == [("size", 500, 375, 3), ("unary", (3, 375 * 500)), ("gaussian", 3.0, 3), ("bilateral", 80.0, 13, 10), ("inference", 10)]

    assert crf_defaults("deeplab") == (10, 4, 3, 83, 5, 3)
    settings = paper_value("deeplab", "crf")
    crf_argmax(image, np.full((2, 375, 500), 0.5, np.float32), ScaledCRF.from_config(settings), normalise=settings["normalise_scores"])
    assert RecordingCRF.calls[2:] == [("gaussian", 4.0, 3), ("bilateral", 83.0, 5, 3), ("inference", 10)]
    # a 250 px image halves every sxy, nothing else
    crf_argmax(image[:125, :250], np.full((2, 125, 250), 0.5, np.float32), ScaledCRF(CRFParams.from_config(settings), "auto", 500),
               normalise=settings["normalise_scores"])
    assert RecordingCRF.calls[2:] == [("gaussian", 2.0, 3), ("bilateral", 41.5, 5, 3), ("inference", 10)]


# ------------------------------------------------------------- DeepLab inference --

class HalfSizeSegmenter(torch.nn.Module):
    """Class 1 scores 2 on inputs 4 px high (scale 0.5 of 8 px), 0 otherwise: makes each scale's softmax known."""

    def forward(self, images):
        batch, _, height, width = images.shape
        logits = torch.zeros(batch, 2, height, width)
        logits[:, 1] = 2.0 if height == 4 else 0.0
        return logits


def test_deeplab_fuses_scales_by_the_max_of_softmax():
    assert paper_value("deeplab", "scales") == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert paper_value("deeplab", "fuse") == "max" and paper_value("deeplab", "flip_inference") is False  # the reference: no flips
    images = torch.zeros(1, 3, 8, 8)
    sure = 1 / (1 + math.exp(-2.0))  # softmax of (0, 2)
    fused = multiscale_softmax(HalfSizeSegmenter(), images, scales=[0.5, 1.0], flip=True, fuse="max", resize="ours", amp="float32")
    # per channel, the max over scales (and flips) of the softmax, not renormalised
    assert torch.allclose(fused[0, 1], torch.full((8, 8), sure)) and torch.allclose(fused[0, 0], torch.full((8, 8), 0.5))
    mean = multiscale_softmax(HalfSizeSegmenter(), images, scales=[0.5, 1.0], flip=True, fuse="mean", resize="ours", amp="float32")
    assert torch.allclose(mean[0, 1], torch.full((8, 8), (sure + 0.5) / 2))
