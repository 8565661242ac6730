"""MCTformer+ against the authors' own outputs (tests/fixtures/reference_plus/, copied from shared/parity/golden_plus/).

The fixtures were made by running xulianuwa/MCTformer at 0acc27a (MCTformerPlus) on fixed inputs, float32 on
CPU; their README gives every array's producer and tolerance. Every tolerance below is the README's, none
loosened. The golden model has 4 blocks: the reference's ``--layer-index 12`` / ``--num-cct 12`` take its last
12 blocks, i.e. all 4, which is maps.last_k 4 / classifier.cct_blocks 4 here (last_blocks()).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.golden_plus import (
    DEPTH,
    GOLDEN_PLUS,
    GWRP_DECAY,
    MAP_CASES,
    NUM_CLASSES,
    REFERENCE_NAMES,
    REFERENCE_PLUS_MAPS,
    golden_plus_model,
    inject_drop_path,
    last_blocks,
    model_input,
    picture,
    relative,
    training_batch,
)
from mctformer.artifacts import load_map_file
from mctformer.data.transforms import normalize_image
from mctformer.data.voc import VOCLayout
from mctformer.localize import extract_maps, grid_maps, patch_affinity, scaled_inputs
from mctformer.models.mctformer import (
    PLUS_REFERENCE_NAMES,
    MCTformer,
    class_token_cross_entropy,
    class_token_similarity,
    create_mctformer,
    gwrp_weights,
    plus_loss_terms,
    resample_position_embedding,
)

FORWARD_IMAGES = ["golden_p448", "golden_0001"]


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


def forward_arrays(model: MCTformer, name: str, rows: np.ndarray, layer_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Every array of forward/<name>.npz, computed by our model and map functions the way the pipeline calls them."""
    image = model_input(name)
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        output = model.forward_tokens(image, return_attention=True, position_resampling="reference_scale_factor")
        grid, count = output.grid, output.grid[0] * output.grid[1]
        for k in (12, 3):
            maps = grid_maps(output, ["attention", "fused", "fused_refined"], NUM_CLASSES, last_k=last_blocks(k), feature_temperature=0.1)
            arrays[f"mct_k{k}"], arrays[f"fused_k{k}"], arrays[f"refined_k{k}"] = (maps[v][0].numpy() for v in ("attention", "fused", "fused_refined"))
        attention = output.attentions[:, 0]  # [L, T, T], head mean
        affinity = patch_affinity(output.attentions, NUM_CLASSES)[0]
    arrays.update(
        x_cls_logits=output.token_logits[0].numpy(),
        x_patch_logits=output.patchcam_logits[0].numpy(),
        x_logits=((output.token_logits + output.patchcam_logits) / 2)[0].numpy(),
        class_tokens=output.block_class_tokens[:, 0].numpy(),
        patchcam_raw=output.patchcam[0].numpy(),
        patchcam=torch.relu(output.patchcam[0]).numpy(),
        gwrp_weights=gwrp_weights(count, GWRP_DECAY).numpy(),
        c2p_layers=attention[:, :NUM_CLASSES, NUM_CLASSES:].reshape(DEPTH, NUM_CLASSES, *grid).numpy(),
        p2p_sum_rows=affinity[torch.from_numpy(rows.astype(np.int64))].numpy(),
        p2p_rows=rows,
        p2p_layers_rows=attention[:, NUM_CLASSES:, NUM_CLASSES:][:, torch.from_numpy(layer_rows.astype(np.int64))].numpy(),
        p2p_layers_row_index=layer_rows,
    )
    return arrays


# README tolerances (rel = max|d| <= tol x max|ref|): 1e-4 everywhere but the sqrt fusion (1e-3) and the GWRP weights (1e-6).
FORWARD_TOLERANCE = {"fused_k12": 1e-3, "fused_k3": 1e-3, "gwrp_weights": 1e-6}


@pytest.mark.parametrize("name", FORWARD_IMAGES)
def test_forward_matches_the_reference(model, name):
    reference = np.load(GOLDEN_PLUS / "forward" / f"{name}.npz")
    ours = forward_arrays(model, name, reference["p2p_rows"], reference["p2p_layers_row_index"])
    assert set(reference.files) - {"pos_embed_pat_resampled"} == set(ours)
    for key, value in ours.items():
        assert value.shape == reference[key].shape, key
        if reference[key].dtype == np.int16:
            np.testing.assert_array_equal(value, reference[key])
        else:
            assert relative(value, reference[key]) <= FORWARD_TOLERANCE.get(key, 1e-4), (key, relative(value, reference[key]))


@pytest.mark.parametrize("method", ["reference_scale_factor", "size"])
def test_position_embedding_resampled_without_the_offset(model, method):
    """MCTformer+ dropped V1/V2's +0.1: its scale factor 23/28, 31/28 samples where ``size`` does."""
    reference = np.load(GOLDEN_PLUS / "forward" / "golden_0001.npz")["pos_embed_pat_resampled"]
    ours = resample_position_embedding(model.pos_embed.detach(), (28, 28), (23, 31), method, reference_offset=0.0)[0]
    assert relative(ours, reference) <= 1e-4
    with_offset = resample_position_embedding(model.pos_embed.detach(), (28, 28), (23, 31), "reference_scale_factor")[0]
    assert relative(with_offset, reference) > 1e-2  # V1/V2's rule would not be MCTformer+'s


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

TRAIN_VARIANTS = json.loads((GOLDEN_PLUS / "train" / "losses.json").read_text())["variants"]


def train_step(variant: str) -> tuple[dict[str, torch.Tensor], MCTformer, object, list[float]]:
    """train_one_epoch's forward and backward on the fixed batch (train mode, float32), with the variant's settings;
    drop-path variants replay the reference's recorded keep decisions (its random stream is timm's and the device's)."""
    settings = TRAIN_VARIANTS[variant]["settings"]
    reference = np.load(GOLDEN_PLUS / "train" / f"{variant}.npz")
    model = golden_plus_model(drop_path_rate=settings["drop_path_rate"], tied_tokens=settings["tied_class_tokens"]).train()
    probabilities = inject_drop_path(model, reference["drop_path_keep"]) if "drop_path_keep" in reference.files else []
    images, targets = training_batch()
    output = model(images)
    terms = plus_loss_terms(output, targets, cct_weight=settings["loss_weight"], cct_blocks=settings["num_cct"])
    terms["total"].backward()
    return terms, model, output, probabilities


@pytest.mark.parametrize("variant", list(TRAIN_VARIANTS))
def test_training_losses_and_gradients_match_the_reference(variant):
    reference = np.load(GOLDEN_PLUS / "train" / f"{variant}.npz")
    settings = TRAIN_VARIANTS[variant]["settings"]
    terms, model, output, probabilities = train_step(variant)
    images, targets = training_batch()
    if "targets" in reference.files:
        np.testing.assert_array_equal(targets.numpy(), reference["targets"])
    ours = {
        "loss_terms": np.array([terms[name].item() for name in ("token", "cct", "patchcam", "total")]),
        "x_cls_logits": output.token_logits.detach().numpy(),
        "x_patch_logits": output.patchcam_logits.detach().numpy(),
        "class_tokens": output.block_class_tokens.detach().numpy(),
        "cct_scores": class_token_similarity(output.block_class_tokens[-settings["num_cct"]:]).detach().numpy(),
        "grad.cls_token": model.class_tokens.grad.numpy(),
        "grad.head.bias": model.patchcam_head.bias.grad.numpy(),
        "grad.blocks.0.norm1.weight": model.blocks[0].norm1.weight.grad.numpy(),
        "grad.patch_embed.proj.bias": model.patch_embed.proj.bias.grad.numpy(),
    }
    ours["cct_ce"] = class_token_cross_entropy(torch.from_numpy(ours["cct_scores"])).numpy()
    parameters = dict(model.named_parameters())
    ours["grad_norms"] = np.array([
        np.nan if (p := parameters.get(PLUS_REFERENCE_NAMES.get(name, name))) is None or p.grad is None
        or name == "pos_embed" else float(p.grad.double().norm()) for name in REFERENCE_NAMES
    ])
    if "drop_path_prob" in reference.files:
        assert np.abs(np.array(probabilities) - reference["drop_path_prob"]).max() <= 1e-7
    compared = [key for key in reference.files if key not in ("targets", "drop_path_keep", "drop_path_prob")]
    assert set(compared) <= set(ours)
    for key in compared:
        expected = reference[key]
        assert ours[key].shape == expected.shape, key
        if key == "grad_norms":  # NaN: no gradient (the reference's unused pos_embed and norm.*)
            np.testing.assert_array_equal(np.isnan(ours[key]), np.isnan(expected))
            ours_key, expected = ours[key][~np.isnan(expected)], expected[~np.isnan(expected)]
        else:
            ours_key = ours[key]
        tolerance = 1e-5 if key == "loss_terms" else 1e-4
        assert relative(ours_key, expected) <= tolerance, (key, relative(ours_key, expected))


def test_tied_tokens_get_no_gradient_from_the_cct_loss():
    """At the DeiT initialisation (identical class tokens) the CCT loss is ln 20 and adds no gradient (README quirk)."""
    with_cct, model_with, _, _ = train_step("tied_tokens")
    _, model_without, _, _ = train_step("tied_tokens_cct_off")
    assert with_cct["cct"].item() == pytest.approx(np.log(NUM_CLASSES), rel=1e-6)
    for (name, p), q in zip(model_with.named_parameters(), model_without.parameters()):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-6), name


# ------------------------------------------------------------------ case d: localisation maps --

MAP_IMAGES = ["golden_0001", "golden_s002", "golden_s003"]


@pytest.fixture(scope="module")
def golden_plus_root(tmp_path_factory) -> Path:
    """A VOC-layout root of the map pictures (PNG bytes under .jpg names, as the reference read them)."""
    root = tmp_path_factory.mktemp("golden_plus") / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    for image_id in MAP_IMAGES:
        shutil.copy(GOLDEN_PLUS / "images" / f"{image_id}.png", root / "JPEGImages" / f"{image_id}.jpg")
    return root


@pytest.mark.parametrize("case", list(MAP_CASES))
def test_extracted_maps_match_the_reference_generator(model, golden_plus_root, tmp_path, case):
    """generate_attention_maps_ms through our extraction stage: the final per-class maps (float16-stored: abs 5e-4)."""
    reference = np.load(GOLDEN_PLUS / "maps" / f"{case}.npz")
    scales, layer_index, refined = MAP_CASES[case]
    variant = "fused_refined" if refined else "fused"
    ids = [i for i in MAP_IMAGES if i in reference.files]
    class_labels = {i: np.isin(np.arange(NUM_CLASSES), reference[f"{i}_classes"]).astype(np.float32) for i in ids}
    extract_maps(model, VOCLayout(golden_plus_root, NUM_CLASSES), ids, class_labels, {variant: tmp_path / variant}, scales=scales,
                 flip=True, last_k=last_blocks(layer_index), feature_temperature=0.1, batch_size=1, device="cpu", num_overlays=0,
                 **REFERENCE_PLUS_MAPS)
    for image_id in ids:
        labels, maps = load_map_file(tmp_path / variant / f"{image_id}.npz")
        np.testing.assert_array_equal(labels, reference[f"{image_id}_classes"] + 1)
        assert np.abs(maps - reference[image_id].astype(np.float32)).max() <= 5e-4, image_id


@pytest.mark.parametrize("case", [c for c in MAP_CASES if MAP_CASES[c][2]])
def test_every_pass_matches_the_reference_generator(model, case):
    """Each scale and flip's input size, logits and grid maps before and after the patch-affinity refinement."""
    reference = np.load(GOLDEN_PLUS / "maps" / f"{case}.npz")
    scales, layer_index, _ = MAP_CASES[case]
    for image_id in [i for i in MAP_IMAGES if f"{i}_pass_sizes" in reference.files]:
        present = torch.from_numpy(reference[f"{image_id}_classes"].astype(np.int64))
        image = picture(image_id)
        for index, scale in enumerate(scales):
            inputs = scaled_inputs(normalize_image(image)[None], [image], scale, 16, REFERENCE_PLUS_MAPS["resize"],
                                   REFERENCE_PLUS_MAPS["remainder"], flip=True)
            for flipped in (0, 1):
                size = reference[f"{image_id}_pass_sizes"][2 * index + flipped]
                assert tuple(inputs.shape[-2:]) == (size[0] // 16 * 16, size[1] // 16 * 16)
            with torch.no_grad():
                output = model.forward_tokens(inputs, return_attention=True, position_resampling=REFERENCE_PLUS_MAPS["position_embedding"])
                maps = grid_maps(output, ["fused", "fused_refined"], NUM_CLASSES, last_k=last_blocks(layer_index), feature_temperature=0.1)
            logits = (output.token_logits + output.patchcam_logits) / 2
            for flipped in (0, 1):
                step = 2 * index + flipped
                assert relative(logits[flipped], reference[f"{image_id}_pass_x_logits"][step]) <= 1e-4
                fused, refined = (maps[v][flipped, present] for v in ("fused", "fused_refined"))
                assert relative(fused, reference[f"{image_id}_p{step}_fused"]) <= 1e-3, (image_id, step)
                assert relative(refined, reference[f"{image_id}_p{step}_refined"]) <= 1e-4, (image_id, step)
