"""MCTformer+ (classifier.version plus): GWRP, the CCT loss, the model's forward and its refusals."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.arguments import tiny_mctformer
from mctformer.models.mctformer import (
    class_token_cross_entropy,
    class_token_similarity,
    contrastive_class_token_loss,
    global_weighted_rank_pooling,
    gwrp_weights,
    plus_loss_terms,
)
from mctformer.training.common import TrainerFiles

DECAY = 0.996


@pytest.fixture(scope="module")
def tiny_plus():
    torch.manual_seed(0)
    return tiny_mctformer(5, version="plus").eval()


# ------------------------------------------------------------------ GWRP --


def test_gwrp_weights_are_powers_of_the_decay():
    weights = gwrp_weights(784, DECAY)
    assert weights.dtype == torch.float32 and weights[0] == 1.0
    assert weights[783].item() == pytest.approx(DECAY**783, rel=1e-6)  # ~0.04: the last rank still counts


def test_gwrp_sorts_then_weights():
    scores = torch.tensor([[[[1.0, 3.0], [2.0, 0.0]]]])  # [1, 1, 2, 2]
    weights = torch.tensor([1.0, 0.5, 0.25, 0.125])
    expected = (torch.tensor([3.0, 2.0, 1.0, 0.0]) * weights).sum() / weights.sum()
    assert torch.allclose(global_weighted_rank_pooling(scores, 0.5), expected.view(1, 1))


def test_gwrp_lies_between_average_and_max_pooling():
    scores = torch.randn(2, 3, 7, 9)
    assert torch.allclose(global_weighted_rank_pooling(scores, 1.0), scores.mean(dim=(2, 3)), atol=1e-6)  # decay 1: average
    assert torch.allclose(global_weighted_rank_pooling(scores, 1e-6), scores.amax(dim=(2, 3)), atol=1e-4)  # decay -> 0: max
    pooled = global_weighted_rank_pooling(scores, DECAY)
    assert (pooled >= scores.mean(dim=(2, 3)) - 1e-6).all() and (pooled <= scores.amax(dim=(2, 3)) + 1e-6).all()


def test_gwrp_of_an_empty_grid_is_refused():
    with pytest.raises(ValueError, match="smaller than one patch"):
        global_weighted_rank_pooling(torch.zeros(1, 3, 0, 4), DECAY)


# ------------------------------------------------------------------ CCT --


def simplex_tokens(classes: int) -> torch.Tensor:
    """C tokens at the vertices of a regular simplex: pairwise cosine -1 / (C - 1), the CCT loss's minimum."""
    return torch.eye(classes) - 1.0 / classes


@pytest.mark.parametrize("classes", [20, 80])
def test_cct_starts_at_log_c_and_cannot_fall_below_its_floor(classes):
    targets = torch.ones(1, classes)
    tied = torch.ones(3, 1, classes, 8)  # [L, B, C, D]: identical tokens, as after the DeiT initialisation
    assert contrastive_class_token_loss(tied, targets, 12).item() == pytest.approx(math.log(classes), rel=1e-6)
    floor = math.log(1 + (classes - 1) * math.exp(-1 - 1 / (classes - 1)))  # 2.03 for 20 classes, 3.39 for 80
    simplex = simplex_tokens(classes).expand(3, 1, classes, classes)
    assert contrastive_class_token_loss(simplex, targets, 12).item() == pytest.approx(floor, rel=1e-5)
    random = torch.randn(3, 4, classes, 32)
    assert contrastive_class_token_loss(random, torch.ones(4, classes), 12).item() > floor
    assert {20: 2.03, 80: 3.39}[classes] == pytest.approx(floor, abs=0.005)


def test_tied_tokens_give_the_cct_loss_no_gradient():
    tokens = torch.ones(2, 1, 4, 6, requires_grad=True)
    contrastive_class_token_loss(tokens, torch.tensor([[1.0, 0, 1, 0]]), 2).backward()
    assert tokens.grad.abs().max() < 1e-6


def test_cct_counts_present_classes_and_averages_blocks():
    torch.manual_seed(1)
    tokens = torch.randn(3, 2, 4, 5)
    targets = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])
    entropy = class_token_cross_entropy(class_token_similarity(tokens[-2:]))  # [B, C, L']
    assert entropy.shape == (2, 4, 2)
    expected = torch.stack([entropy[0, [0, 2]].sum(0).mean() / 2, entropy[1, 3].mean() / 1]).mean()
    assert torch.allclose(contrastive_class_token_loss(tokens, targets, 2), expected)
    # an image without classes adds 0 (the reference's + 1e-8 keeps it finite)
    assert contrastive_class_token_loss(tokens, torch.zeros(2, 4), 3).item() == 0.0


def test_cct_refuses_another_class_count():
    with pytest.raises(ValueError, match="class tokens but targets of 3 classes"):
        contrastive_class_token_loss(torch.randn(2, 1, 4, 5), torch.ones(1, 3), 2)


# ------------------------------------------------------------------ the model --


def test_plus_forward_keeps_every_blocks_class_tokens(tiny_plus):
    output = tiny_plus.forward_tokens(torch.randn(2, 3, 40, 72), return_attention=True, position_resampling="size")
    assert output.block_class_tokens.shape == (4, 2, 5, 96) and output.fusion == "sqrt"
    assert torch.equal(output.token_logits, output.block_class_tokens[-1].mean(-1))
    assert torch.allclose(output.patchcam_logits, global_weighted_rank_pooling(output.patchcam, DECAY))
    plain = tiny_plus.forward_tokens(torch.randn(2, 3, 40, 72), position_resampling="size")
    assert plain.attentions is None and plain.block_class_tokens is not None


def test_plus_loss_is_token_plus_weighted_cct_plus_patchcam(tiny_plus):
    output = tiny_plus(torch.randn(2, 3, 64, 64))
    targets = torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 0]])
    terms = plus_loss_terms(output, targets, cct_weight=0.5, cct_blocks=12)
    expected = (torch.nn.functional.multilabel_soft_margin_loss(output.token_logits, targets)
                + 0.5 * contrastive_class_token_loss(output.block_class_tokens, targets, 4)
                + torch.nn.functional.multilabel_soft_margin_loss(output.patchcam_logits, targets))
    assert torch.allclose(terms["total"], expected)


def test_plus_position_grid_follows_the_input_size():
    model = tiny_mctformer(5, version="plus", input_size=96)
    assert model.patch_embed.grid_size == (12, 12) and model.pos_embed.shape[1] == 144
    assert model.architecture()["position_grid"] == [12, 12]
    assert tiny_mctformer(5, version="v2", input_size=96).patch_embed.grid_size == (8, 8)  # V1/V2: the arch's grid


def test_plus_weight_decay_exempts_only_the_class_tokens(tiny_plus):
    """The reference's rule names pos_embed and cls_token; MCTformer+'s new pos_embed_cls / pos_embed_pat are decayed."""
    assert tiny_plus.no_weight_decay() == {"class_tokens"}
    assert tiny_mctformer(5, version="v2").no_weight_decay() == {"class_tokens", "class_pos_embed", "pos_embed"}


def test_plus_image_smaller_than_a_patch_is_refused(tiny_plus):
    with pytest.raises(ValueError, match="smaller than one 8px patch"):
        tiny_plus(torch.randn(1, 3, 64, 7))


@pytest.mark.parametrize("decay", [0.0, 1.5, None])
def test_plus_refuses_a_bad_decay(decay):
    with pytest.raises(ValueError, match="gwrp_decay"):
        tiny_mctformer(5, version="plus", gwrp_decay=decay)


# ------------------------------------------------------------------ checkpoints --


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained V2 and MCTformer+ classifiers (tiny, 4 classes), saved as the trainer saves them."""
    from helpers.workflow import tiny_config
    from mctformer.training.classifier import build_classifier
    from mctformer.training.common import TrainerFiles, save_trained

    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for version in ("v2", "plus"):
        settings = {**tiny_config()["classifier"], "version": version}
        paths[version] = folder / f"{version}.pt"
        save_trained(TrainerFiles(paths[version], folder / f"{version}.csv", folder / f"{version}.resume.pt", tensorboard=None),
                     build_classifier(settings, 4), settings, [],
                     class_count=4)
    return paths


def test_plus_checkpoint_round_trip(checkpoints):
    from helpers.workflow import tiny_config
    from mctformer.training.classifier import load_classifier

    model = load_classifier(checkpoints["plus"], 4, device="cpu", version="plus")
    grid = tiny_config()["classifier"]["input_size"] // model.patch_size
    assert model.version == "plus" and model.gwrp_decay == DECAY and model.architecture()["position_grid"] == [grid, grid]


def test_v2_checkpoint_given_to_plus_is_refused_naming_the_file(checkpoints):
    from mctformer.training.classifier import load_classifier

    with pytest.raises(ValueError, match=r"classifier checkpoint \S*v2\.pt holds an MCTformer-V2, the config's classifier.version is 'plus'"):
        load_classifier(checkpoints["v2"], 4, device="cpu", version="plus")
    with pytest.raises(ValueError, match=r"\S*plus\.pt holds an MCTformer-PLUS, the config's classifier.version is 'v2'"):
        load_classifier(checkpoints["plus"], 4, device="cpu", version="v2")


def test_plus_checkpoint_with_another_class_count_is_refused(checkpoints):
    from mctformer.training.classifier import load_classifier

    with pytest.raises(ValueError, match=r"classifier checkpoint \S*plus\.pt was trained for 4 classes, the config has 20"):
        load_classifier(checkpoints["plus"], 20, device="cpu", version="plus")


def test_plus_model_refuses_targets_of_another_class_count(tiny_plus):
    output = tiny_plus(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="5 class tokens but targets of 20 classes"):
        plus_loss_terms(output, torch.ones(1, 20), cct_weight=1.0, cct_blocks=12)


def test_plus_trains_and_logs_each_loss(synthetic_root, tmp_path):
    """The trainer's MCTformer+ path: one epoch, the three loss terms logged per epoch, a loadable checkpoint."""
    from helpers.workflow import TINY_SPEC, tiny_config
    from mctformer.data.labels import build_class_labels
    from mctformer.data.voc import VOCLayout
    from mctformer.training.classifier import load_classifier, train_classifier

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    train, val = layout.read_ids("train_aug")[:16], layout.read_ids("val")[:4]
    settings = {**tiny_config()["classifier"], "version": "plus", "epochs": 1, "batch_size": 8, "input_size": 32}
    train_classifier(layout, train, val, build_class_labels(layout, train + val, workers=1), settings,
                     TrainerFiles(tmp_path / "checkpoint.pt", tmp_path / "log.csv", tmp_path / "resume.pt", tensorboard=None),
                     device=torch.device("cpu"), seed=3, workers=0)
    header, row = (tmp_path / "log.csv").read_text().splitlines()
    assert header == "epoch,loss,token_loss,cct_loss,patchcam_loss,val_map,lr,seconds"
    values = dict(zip(header.split(","), map(float, row.split(","))))
    assert values["loss"] == pytest.approx(values["token_loss"] + settings["cct_weight"] * values["cct_loss"] + values["patchcam_loss"], rel=1e-5)
    assert load_classifier(tmp_path / "checkpoint.pt", TINY_SPEC.num_classes, device="cpu", version="plus").version == "plus"
