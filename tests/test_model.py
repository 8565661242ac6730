import pytest
import torch

from helpers.arguments import classifier_arguments, tiny_mctformer
from mctformer.models.mctformer import (
    ARCHITECTURES,
    classification_loss,
    create_mctformer,
    load_deit_weights,
    model_summary,
)


@pytest.fixture(scope="module")
def tiny_v2():
    torch.manual_seed(0)
    return tiny_mctformer(5, version="v2").eval()


def test_deit_small_matches_table_4():
    """The paper's backbone: 21.7 M parameters and 4.6 GMACs at 224 (Table 4)."""
    summary = model_summary(create_mctformer("deit_small", num_classes=20, **classifier_arguments(version="v1")), 224)
    assert summary["params"] == pytest.approx(21.68e6, rel=0.005)  # measured 21,680,256
    assert summary["macs"] == pytest.approx(4.64e9, rel=0.01)  # measured 4.644 GMACs
    v2 = model_summary(create_mctformer("deit_small", num_classes=20, **classifier_arguments(version="v2")), 224)
    assert v2["params"] - summary["params"] == 384 * 20 * 9 + 20  # the 3x3 Patch-CAM conv


def test_output_shapes_any_size_and_aspect(tiny_v2):
    output = tiny_v2.forward_tokens(torch.randn(2, 3, 40, 72), return_attention=True, position_resampling="size")
    assert output.grid == (5, 9)
    assert output.token_logits.shape == (2, 5) and output.patchcam_logits.shape == (2, 5)
    assert output.patchcam.shape == (2, 5, 5, 9)
    tokens = 5 + 45
    assert output.attentions.shape == (4, 2, tokens, tokens)
    assert torch.allclose(output.attentions.sum(-1), torch.ones(4, 2, tokens), atol=1e-5)  # post-softmax rows


def test_attention_capture_does_not_change_the_forward(tiny_v2):
    images = torch.randn(3, 3, 64, 64)
    fused_before = [block.attn.fused_attn for block in tiny_v2.blocks]
    plain = tiny_v2.forward_tokens(images, position_resampling="size")
    captured = tiny_v2.forward_tokens(images, return_attention=True, position_resampling="size")
    assert plain.attentions is None
    assert torch.allclose(plain.token_logits, captured.token_logits, atol=1e-5)
    assert torch.allclose(plain.patchcam_logits, captured.patchcam_logits, atol=1e-5)
    assert [block.attn.fused_attn for block in tiny_v2.blocks] == fused_before
    assert not any(block.attn.attn_drop._forward_hooks for block in tiny_v2.blocks)


def test_token_logits_are_the_mean_of_unnormalised_class_tokens(tiny_v2):
    images = torch.randn(2, 3, 64, 64)
    seen = {}
    tiny_v2.blocks[-1].register_forward_hook(lambda m, i, o: seen.setdefault("tokens", o))
    output = tiny_v2.forward_tokens(images, position_resampling="size")
    tiny_v2.blocks[-1]._forward_hooks.clear()
    assert torch.allclose(output.token_logits, seen["tokens"][:, :5].mean(-1), atol=1e-6)


def test_v1_has_no_patchcam_and_table7_heads():
    for pooling in ("avg", "max", "fc"):
        model = tiny_mctformer(3, version="v1", token_pooling=pooling).eval()
        output = model(torch.randn(1, 3, 32, 32))
        assert output.patchcam is None and output.token_logits.shape == (1, 3)
        loss = classification_loss(output, torch.tensor([[1.0, 0.0, 1.0]]))
        loss.backward()
    assert model.token_head.weight.grad is not None


def test_loss_is_the_sum_of_both_soft_margin_losses(tiny_v2):
    output = tiny_v2(torch.randn(2, 3, 32, 32))
    target = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0]])
    expected = torch.nn.functional.multilabel_soft_margin_loss(output.token_logits, target)
    expected = expected + torch.nn.functional.multilabel_soft_margin_loss(output.patchcam_logits, target)
    assert torch.allclose(classification_loss(output, target), expected)


def test_image_smaller_than_a_patch_is_refused(tiny_v2):
    with pytest.raises(ValueError, match="smaller than one 8px patch"):
        tiny_v2(torch.randn(1, 3, 6, 64))


def test_deit_checkpoint_initialises_every_class_token(tmp_path, capsys):
    """Class tokens and their position embeddings start as copies of DeiT's cls token (.pth and safetensors)."""
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer

    settings = ARCHITECTURES["tiny"]
    torch.manual_seed(1)
    deit = VisionTransformer(num_classes=1000, qkv_bias=True, img_size=32, **{k: v for k, v in settings.items() if k != "img_size"})
    state = deit.state_dict()
    torch.save({"model": state}, tmp_path / "deit.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "deit.safetensors"))
    for name in ("deit.pth", "deit.safetensors"):
        model = tiny_mctformer(4, version="v2")
        info = load_deit_weights(model, tmp_path / name)
        assert len(info["sha256"]) == 64
        assert f"sha256 {info['sha256'][:16]}" in capsys.readouterr().out  # the job log says which file it was
        for c in range(4):
            assert torch.equal(model.class_tokens[0, c], state["cls_token"][0, 0])
            assert torch.equal(model.class_pos_embed[0, c], state["pos_embed"][0, 0])
        # 4x4 grid of the checkpoint resampled (bicubic) to the model's 8x8
        assert model.pos_embed.shape == (1, 64, 96)
        assert torch.equal(model.blocks[2].mlp.fc1.weight, state["blocks.2.mlp.fc1.weight"])
    with pytest.raises(FileNotFoundError, match="missing.pth not found"):
        load_deit_weights(model, tmp_path / "missing.pth")


def test_no_dropout_besides_drop_path():
    """The reference sets drop path 0.1 and leaves every dropout at 0 (timm's drop_rate, attention and projection dropout)."""
    model = tiny_mctformer(4, drop_path_rate=0.1)
    rates = [module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    assert rates and all(rate == 0.0 for rate in rates)
    # timm spaces the rate linearly over the blocks: 0 in the first, 0.1 in the last
    assert model.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)


def test_locality_bias_is_the_gaussian_prior_between_patches_only():
    model = tiny_mctformer(2, locality_sigma=2.0)
    bias = model.locality_bias((2, 3), torch.device("cpu"))
    assert bias.shape == (2 + 6, 2 + 6)
    assert (bias[:2] == 0).all() and (bias[:, :2] == 0).all()  # class tokens: no prior either way
    # patch 0 at (0, 0), patch 5 at (1, 2): d^2 = 5 -> -5 / (2 * 4); patch 1 at (0, 1): d^2 = 1
    assert bias[2 + 0, 2 + 5].item() == pytest.approx(-5 / 8)
    assert bias[2 + 0, 2 + 1].item() == pytest.approx(-1 / 8)
    assert torch.diagonal(bias).abs().max() == 0
    assert tiny_mctformer(2, locality_sigma=None).locality_bias((2, 3), torch.device("cpu")) is None
    with pytest.raises(ValueError, match="locality_sigma"):
        tiny_mctformer(2, locality_sigma=0.0)


def test_locality_prior_makes_patch_attention_local():
    """The same weights with and without the prior: with a small sigma each patch attends mostly to itself and
    its neighbours, without it about evenly; the captured attention is what the forward used."""
    torch.manual_seed(0)
    plain = tiny_mctformer(3, locality_sigma=None).eval()
    local = tiny_mctformer(3, locality_sigma=0.5).eval()
    local.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 64, 64)
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    positions = torch.stack([rows.flatten(), cols.flatten()], 1).float()
    distance = torch.cdist(positions, positions)

    def mean_distance(model):
        with torch.no_grad():
            output = model.forward_tokens(images, position_resampling="size", return_attention=True)
        patch = output.attentions[:, :, 3:, 3:]
        patch = patch / patch.sum(-1, keepdim=True)
        return (patch * distance).sum(-1).mean().item(), output

    far, plain_out = mean_distance(plain)
    near, local_out = mean_distance(local)
    assert near < 1.0 < 3.0 < far
    with torch.no_grad():
        again = local.forward_tokens(images, position_resampling="size")
    assert torch.allclose(again.patch_tokens, local_out.patch_tokens, atol=1e-5)  # fused attention: the same prior
    assert (plain_out.patch_tokens - local_out.patch_tokens).abs().max() > 0.01


def test_attention_locality_diagnostic_on_hand_made_attention():
    from benchmarks.attention_locality import attention_locality

    num_classes, grid = 2, (2, 2)
    size = num_classes + 4
    uniform = torch.full((1, 1, size, size), 1.0 / size)
    identity = torch.eye(size)[None, None]
    (flat,), (own,) = attention_locality(uniform, num_classes, grid), attention_locality(identity, num_classes, grid)
    # 2x2 grid: from a patch, distances 0, 1, 1, sqrt(2): mean (2 + sqrt 2) / 4
    assert flat["mean_distance"] == pytest.approx((2 + 2**0.5) / 4) == pytest.approx(flat["uniform_distance"])
    assert flat["patch_share"] == pytest.approx(4 / 6)
    assert own["mean_distance"] == 0 and own["patch_share"] == 1
