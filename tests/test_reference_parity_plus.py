"""MCTformer+ against the authors' own outputs (tests/fixtures/reference_plus/, copied from shared/parity/golden_plus/).

The fixtures were made by running xulianuwa/MCTformer at 0acc27a (MCTformerPlus) on fixed inputs, float32 on
CPU; their README gives every array's producer and tolerance. Every tolerance below is the README's, none
loosened. The golden model has 4 blocks: the reference's ``--layer-index 12`` / ``--num-cct 12`` take its last
12 blocks, i.e. all 4, which is maps.last_k 4 / classifier.cct_blocks 4 here (last_blocks()).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from golden_plus_cases import (
    FORWARD_IMAGES,
    GOLDEN_PLUS,
    GWRP_DECAY,
    MAP_CASES,
    NUM_CLASSES,
    REFERENCE_NAMES,
    TRAIN_VARIANTS,
    comparable_reference,
    difference,
    extracted_maps,
    forward_arrays,
    golden_plus_model,
    golden_plus_root,
    map_key_kind,
    pass_arrays,
    tolerance,
    train_step,
    training_arrays,
)
from mctformer.models.mctformer import MCTformer, create_mctformer, resample_position_embedding


def assert_within(group: str, ours: dict[str, np.ndarray], reference, keys) -> None:
    """Every array ``keys`` of ``reference`` within the README's tolerance of its group."""
    failed = []
    for key in keys:
        kind, limit = tolerance(group, map_key_kind(key) if group == "maps" else key)
        measured = difference(ours[key], comparable_reference(map_key_kind(key), reference[key]) if group == "maps" else reference[key], kind)
        if measured > limit:
            failed.append(f"{key}: {kind} {measured:.3g} > {limit:g}")
    assert not failed, "\n".join(failed)


@pytest.fixture(scope="module")
def model() -> MCTformer:
    return golden_plus_model()


# ------------------------------------------------------------------ case a: initialisation --


def synthetic_deit(path, embed_dim: int = 384) -> None:
    """The dump's synthetic DeiT-S: cls_token[0, 0, d] = -(d + 1), pos_embed[0, t, d] = 1000 t + d, so every loaded
    value names its source; the rest is a DeiT-S state dict of zeros (1000-class head included)."""
    reference = create_mctformer("deit_small", 20, version="v1", token_pooling="avg", drop_path_rate=0.0, pretrained=None,
                                 patchcam_init="pytorch_default", locality_sigma=None, input_size=224, gwrp_decay=GWRP_DECAY)
    state = {k: torch.zeros_like(v) for k, v in reference.state_dict().items() if k not in ("class_tokens", "class_pos_embed", "pos_embed")}
    state["cls_token"] = -(torch.arange(embed_dim, dtype=torch.float32) + 1).view(1, 1, embed_dim)
    state["pos_embed"] = (1000 * torch.arange(197, dtype=torch.float32).view(1, 197, 1) + torch.arange(embed_dim).view(1, 1, embed_dim))
    state["head.weight"], state["head.bias"] = torch.zeros(1000, embed_dim), torch.zeros(1000)
    torch.save({"model": state}, path)


def test_deit_initialisation_matches_the_reference(tmp_path):
    """run_mct_plus.sh's --finetune: class token and class position repeated C times, patch grid 2x2-replicated to 28x28."""
    synthetic_deit(tmp_path / "deit.pth")
    model = create_mctformer("deit_small", 20, version="plus", token_pooling="avg", drop_path_rate=0.0, pretrained=tmp_path / "deit.pth",
                             patchcam_init="pytorch_default", locality_sigma=None, input_size=448, gwrp_decay=GWRP_DECAY)
    expected = np.load(GOLDEN_PLUS / "init" / "finetune_init.npz")
    position_index = (model.pos_embed[0, :, 0] / 1000).round().to(torch.int16).numpy()  # d = 0: 1000 t
    np.testing.assert_array_equal(position_index, expected["deit_pos_index_of_pos_embed_pat"])
    assert torch.equal(model.pos_embed[0] - model.pos_embed[0, :, :1], torch.arange(384.0).expand(784, 384))  # whole rows copied
    class_position_index = (model.class_pos_embed[0, :, 0] / 1000).round().to(torch.int16).numpy()
    np.testing.assert_array_equal(class_position_index, expected["deit_pos_index_of_pos_embed_cls"])
    # every class token is DeiT's single one (row 0 of its [1, 1, D]): all identical
    rows = [0 if torch.equal(token, -(torch.arange(384.0) + 1)) else -1 for token in model.class_tokens[0]]
    np.testing.assert_array_equal(np.array(rows, np.int16), expected["deit_cls_row_of_cls_token"])
    assert model.patch_embed.grid_size == (28, 28) and model.version == "plus"


def test_golden_weights_load_by_the_reference_names(model):
    """All 58 reference tensors but the unused pos_embed [1, 197, D] map onto ours one to one."""
    ours = model.state_dict()
    assert len(ours) == len(REFERENCE_NAMES) - 1
    assert ours["pos_embed"].shape == (1, 784, 96) and ours["class_pos_embed"].shape == (1, NUM_CLASSES, 96)


# ------------------------------------------------------------------ case b: eval-mode forward --


@pytest.mark.parametrize("name", FORWARD_IMAGES)
def test_forward_matches_the_reference(model, name):
    reference = np.load(GOLDEN_PLUS / "forward" / f"{name}.npz")
    ours = forward_arrays(model, name, reference["p2p_rows"], reference["p2p_layers_row_index"])
    assert set(reference.files) - {"pos_embed_pat_resampled"} == set(ours)
    assert_within("forward", ours, reference, sorted(ours))


@pytest.mark.parametrize("method", ["reference_scale_factor", "size"])
def test_position_embedding_resampled_without_the_offset(model, method):
    """MCTformer+ dropped V1/V2's +0.1: its scale factor 23/28, 31/28 samples where ``size`` does."""
    reference = np.load(GOLDEN_PLUS / "forward" / "golden_0001.npz")["pos_embed_pat_resampled"]
    ours = resample_position_embedding(model.pos_embed.detach(), (28, 28), (23, 31), method, reference_offset=0.0)[0]
    assert difference(ours, reference, "rel") <= tolerance("forward", "pos_embed_pat_resampled")[1]
    with_offset = resample_position_embedding(model.pos_embed.detach(), (28, 28), (23, 31), "reference_scale_factor")[0]
    assert difference(with_offset, reference, "rel") > 1e-2  # V1/V2's rule would not be MCTformer+'s


def test_training_grid_adds_the_position_embedding_unchanged(model):
    assert resample_position_embedding(model.pos_embed, (28, 28), (28, 28), "reference_scale_factor", reference_offset=0.0) is model.pos_embed


def test_reference_scale_factor_fails_where_the_reference_asserts(model):
    """g = 61 at a 28 grid: floor(28 * (61 / 28)) = 60, the reference's size assertion fails; so does ours."""
    with pytest.raises(RuntimeError, match="resampled to"):
        resample_position_embedding(model.pos_embed.detach(), (28, 28), (61, 20), "reference_scale_factor", reference_offset=0.0)


def test_losses_json_agrees_with_the_arrays():
    """The README's loss table and the npz files hold the same numbers (a guard on the fixture copy)."""
    losses = json.loads((GOLDEN_PLUS / "train" / "losses.json").read_text())["variants"]
    for variant, row in losses.items():
        terms = np.load(GOLDEN_PLUS / "train" / f"{variant}.npz")["loss_terms"]
        np.testing.assert_allclose(terms, [row["mct_loss"], row["attn_loss"], row["pat_loss"], row["loss"]], rtol=1e-7)


# ------------------------------------------------------------------ case c: training losses and gradients --

@pytest.mark.parametrize("variant", list(TRAIN_VARIANTS))
def test_training_losses_and_gradients_match_the_reference(variant):
    """Every array of the variant but the injected keep decisions: losses, logits, class tokens, CCT matrices, gradients."""
    reference = np.load(GOLDEN_PLUS / "train" / f"{variant}.npz")
    compared = [key for key in reference.files if key != "drop_path_keep"]
    assert len(compared) >= 10
    assert_within("train", training_arrays(variant), reference, compared)


def test_tied_tokens_get_no_gradient_from_the_cct_loss():
    """At the DeiT initialisation (identical class tokens) the CCT loss is ln 20 and adds no gradient (README quirk)."""
    with_cct, model_with, _, _ = train_step("tied_tokens")
    _, model_without, _, _ = train_step("tied_tokens_cct_off")
    assert with_cct["cct"].item() == pytest.approx(np.log(NUM_CLASSES), rel=1e-6)
    for (name, p), q in zip(model_with.named_parameters(), model_without.parameters()):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-6), name


# ------------------------------------------------------------------ case d: localisation maps --

@pytest.fixture(scope="module")
def map_root(tmp_path_factory):
    return golden_plus_root(tmp_path_factory.mktemp("golden_plus"))


@pytest.mark.parametrize("case", list(MAP_CASES))
def test_extracted_maps_match_the_reference_generator(model, map_root, tmp_path, case):
    """generate_attention_maps_ms through our extraction stage: the final per-class maps (float16-stored: abs 5e-4) and their classes."""
    reference = np.load(GOLDEN_PLUS / "maps" / f"{case}.npz")
    ours = extracted_maps(model, map_root, case, tmp_path / case)
    assert len(ours) >= 4
    assert_within("maps", ours, reference, sorted(ours))


@pytest.mark.parametrize("case", [c for c in MAP_CASES if MAP_CASES[c][2]])
def test_every_pass_matches_the_reference_generator(model, case):
    """Each scale and flip's input size, logits and grid maps before and after the patch-affinity refinement."""
    reference = np.load(GOLDEN_PLUS / "maps" / f"{case}.npz")
    ours = pass_arrays(model, case)
    assert set(ours) == {key for key in reference.files if "_p" in key and not key.endswith("_classes")}
    assert_within("maps", ours, reference, sorted(ours))
