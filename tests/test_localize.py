import pytest
import torch

from helpers.arguments import extract_arguments, tiny_mctformer
from mctformer.localize import (
    class_to_patch_attention,
    fuse_with_patchcam,
    grid_maps,
    minmax_normalize,
    multiscale_maps,
    patch_affinity,
    refine_with_affinity,
    scaled_size,
    token_feature_affinity,
)
from mctformer.models.mctformer import MCTformerOutput

# The input geometry the hand-computed expectations below are made with (ours: every pixel seen).
OURS = dict(feature_temperature=0.1, resize="torch_bilinear", remainder="resize", position_embedding="size", amp=False)

C, GRID = 2, (2, 2)  # 2 classes, 4 patches -> 6 tokens


def hand_attention():
    """[L=3, B=1, 6, 6] attention where block l holds the value l+1 everywhere, plus marks."""
    attention = torch.stack([torch.full((1, 6, 6), float(level + 1)) for level in range(3)])
    attention[2, 0, 0, 2:] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # class 0 -> patches, last block
    return attention


def test_class_to_patch_attention_sums_the_last_k_blocks():
    attention = hand_attention()
    maps = class_to_patch_attention(attention, C, GRID, last_k=2)
    assert maps.shape == (1, 2, 2, 2)
    assert maps[0, 0].tolist() == [[2 + 1, 2 + 2], [2 + 3, 2 + 4]]
    assert maps[0, 1].tolist() == [[5, 5], [5, 5]]
    assert class_to_patch_attention(attention, C, GRID, last_k=1)[0, 0].flatten().tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="last_k"):
        class_to_patch_attention(attention, C, GRID, last_k=4)


def test_patch_affinity_sums_all_blocks_patch_to_patch():
    attention = hand_attention()
    attention[0, 0, 3, 4] = 10.0
    affinity = patch_affinity(attention, C)
    assert affinity.shape == (1, 4, 4)
    assert affinity[0, 1, 2] == 10 + 2 + 3
    assert affinity[0, 0, 0] == 1 + 2 + 3


def test_fusion_multiplies_by_relu_patchcam():
    attention = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    patchcam = torch.tensor([[[[-1.0, 0.5], [2.0, -3.0]]]])
    assert fuse_with_patchcam(attention, patchcam).tolist() == [[[[0.0, 1.0], [6.0, 0.0]]]]


def test_refinement_is_affinity_times_map():
    torch.manual_seed(0)
    maps = torch.rand(2, 3, 2, 3)
    affinity = torch.rand(2, 6, 6)
    refined = refine_with_affinity(maps, affinity)
    for b in range(2):
        for c in range(3):
            expected = affinity[b] @ maps[b, c].flatten()
            assert torch.allclose(refined[b, c].flatten(), expected)


def test_feature_affinity_is_row_stochastic_and_prefers_similar_patches():
    tokens = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [-0.9, -0.1]]])
    affinity = token_feature_affinity(tokens, temperature=0.1)
    assert torch.allclose(affinity.sum(-1), torch.ones(1, 4))
    assert affinity[0, 0, 1] > 10 * affinity[0, 0, 2]


def test_grid_maps_variants_from_one_output():
    attention = hand_attention()
    patchcam = torch.tensor([[[[1.0, -1.0], [0.5, 2.0]], [[0.0, 1.0], [1.0, 1.0]]]])
    output = MCTformerOutput(torch.zeros(1, 2), torch.zeros(1, 2), patchcam, attention, torch.randn(1, 4, 8), GRID)
    maps = grid_maps(output, ["attention", "fused", "fused_refined", "fused_feature_refined", "patchcam"], C, 1, 0.1)
    assert torch.equal(maps["fused"], maps["attention"] * torch.relu(patchcam))
    assert torch.allclose(maps["fused_refined"], refine_with_affinity(maps["fused"], patch_affinity(attention, C)))
    assert torch.equal(maps["patchcam"], torch.relu(patchcam))
    assert set(maps) == {"attention", "fused", "fused_refined", "fused_feature_refined", "patchcam"}


def test_minmax_per_map():
    maps = minmax_normalize(torch.tensor([[[1.0, 3.0]], [[-2.0, 2.0]]]))
    assert torch.allclose(maps, torch.tensor([[[0.0, 1.0]], [[0.0, 1.0]]]), atol=1e-6)
    flat = minmax_normalize(torch.full((1, 2, 2), 7.0))
    assert torch.equal(flat, torch.zeros(1, 2, 2))  # constant map -> zeros, no division by zero


def test_scaled_size_rounds_to_whole_patches():
    assert scaled_size(64, 48, 1.0, 8) == (64, 48)
    assert scaled_size(64, 48, 0.5, 16) == (32, 32)
    assert scaled_size(20, 20, 0.1, 16) == (16, 16)


def test_flip_aggregation_is_mirror_symmetric():
    """Summing a scale with its flipped-back mirror makes the result equivariant to flipping the image."""
    torch.manual_seed(0)
    model = tiny_mctformer(3, version="v2").eval()
    images = torch.randn(2, 3, 32, 40)
    present = torch.ones(2, 3, dtype=torch.bool)
    variants = ["attention", "fused", "fused_refined"]
    maps = multiscale_maps(model, images, present, variants, scales=[1.0, 0.75], flip=True, last_k=2, **OURS)
    mirrored = multiscale_maps(model, images.flip(-1), present, variants, scales=[1.0, 0.75], flip=True, last_k=2, **OURS)
    for variant in variants:
        for index in range(2):
            assert maps[variant][index].shape == (3, 32, 40)
            assert torch.allclose(maps[variant][index], mirrored[variant][index].flip(-1), atol=1e-5)


def test_grid_level_flip_and_selection_equal_upsampling_everything_first():
    """The reference order: upsample every class map of both flips, flip back, sum, then keep GT classes."""
    torch.manual_seed(0)
    model = tiny_mctformer(4, version="v2").eval()
    images = torch.randn(2, 3, 32, 48)
    present = torch.tensor([[True, False, True, False], [False, False, False, True]])
    ours = multiscale_maps(model, images, present, ["fused"], scales=[1.0, 0.5], flip=True, last_k=3, **OURS)["fused"]
    expected = torch.zeros(2, 4, 32, 48)
    with torch.no_grad():
        for scale in (1.0, 0.5):
            size = scaled_size(32, 48, scale, 8)
            inputs = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
            for flipped in (False, True):
                batch = inputs.flip(-1) if flipped else inputs
                grid = grid_maps(model.forward_tokens(batch, return_attention=True, position_resampling="size"), ["fused"], 4, 3, 0.1)["fused"]
                full = torch.nn.functional.interpolate(grid, size=(32, 48), mode="bilinear", align_corners=False)
                expected += full.flip(-1) if flipped else full
    assert torch.allclose(ours[0], expected[0, [0, 2]], atol=1e-4)
    assert torch.allclose(ours[1], expected[1, [3]], atol=1e-4)


def test_one_scale_without_flip_is_the_upsampled_grid_map():
    torch.manual_seed(0)
    model = tiny_mctformer(3, version="v2").eval()
    images = torch.randn(1, 3, 32, 32)
    maps = multiscale_maps(model, images, torch.ones(1, 3, dtype=torch.bool), ["fused"], scales=[1.0], flip=False, last_k=3, **OURS)
    with torch.no_grad():
        grid = grid_maps(model.forward_tokens(images, return_attention=True, position_resampling="size"), ["fused"], 3, 3, 0.1)["fused"]
    expected = torch.nn.functional.interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(maps["fused"][0], expected[0], atol=1e-6)


def test_killed_extraction_leaves_no_output_folder(synthetic_root, tmp_path, monkeypatch):
    from helpers.workflow import TINY_SPEC
    from mctformer import localize
    from mctformer.data.labels import build_class_labels
    from mctformer.data.voc import VOCLayout

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("val")
    labels = build_class_labels(layout, ids, workers=1)
    model = tiny_mctformer(TINY_SPEC.num_classes, version="v2")
    out_dirs = {"attention": tmp_path / "maps" / "attention", "fused": tmp_path / "maps" / "fused"}
    calls = {"n": 0}
    real_save = localize.save_map_file

    def die_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("killed")
        real_save(*args, **kwargs)

    monkeypatch.setattr(localize, "save_map_file", die_midway)
    with pytest.raises(KeyboardInterrupt):
        localize.extract_maps(model, layout, ids, labels, out_dirs, **extract_arguments(batch_size=4, num_overlays=2, workers=0),
                              overlay_dir=tmp_path / "maps" / "overlays")
    assert list((tmp_path / "maps").iterdir()) == []  # neither outputs nor temporaries remain

    monkeypatch.setattr(localize, "save_map_file", real_save)
    localize.extract_maps(model, layout, ids, labels, out_dirs, **extract_arguments(batch_size=4, workers=0))
    assert sorted(p.stem for p in out_dirs["fused"].iterdir()) == sorted(ids)
    with pytest.raises(ValueError, match="is not produced by an MCTformer-V2"):
        localize.extract_maps(model, layout, ids, labels, {"attention_refined": tmp_path / "x"}, **extract_arguments(workers=0))
