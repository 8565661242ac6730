"""The MCTformer+ paper configs (workflow/configs/voc12_plus.yaml, coco14_plus.yaml), composed and resolved as the
workflow does it, state what the authors' MCTformer+ code ran (tests/fixtures/reference_plus/settings.json), and
say which post-processing settings are ours."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from golden_plus_cases import GOLDEN_PLUS
from helpers.workflow import paper_config
from mctformer.compat import SWITCH_BY_KEY
from mctformer.config import ConfigError, check_config

SETTINGS = {(row["stage"], row["parameter"]): row["value"] for row in json.loads((GOLDEN_PLUS / "settings.json").read_text())["rows"]}
# (stage, parameter of settings.json) -> the key of the merged config that states it
REFERENCE_KEYS = {
    ("train", "--input-size"): "classifier.input_size",
    ("train", "--batch-size"): "classifier.batch_size",
    ("train", "--epochs"): "classifier.epochs",
    ("train", "--drop-path"): "classifier.drop_path",
    ("train", "--weight-decay"): "classifier.weight_decay",
    ("train", "--lr"): "classifier.base_lr",
    ("train", "--warmup-lr"): "classifier.warmup_lr",
    ("train", "--warmup-epochs"): "classifier.warmup_epochs",
    ("train", "--min-lr"): "classifier.min_lr",
    ("train", "--aa"): "classifier.augment.rand_augment",
    ("train", "--reprob"): "classifier.augment.random_erasing",
    ("train", "--remode"): "classifier.augment.random_erasing_mode",
    ("train", "--color-jitter"): "classifier.augment.color_jitter",
    ("train", "--seed"): "seed",
    ("loss", "GWRP decay"): "classifier.gwrp_decay",
    ("loss", "--loss-weight"): "classifier.cct_weight",
    ("loss", "--num-cct"): "classifier.cct_blocks",
    ("maps", "--scales"): "maps.scales",
    ("maps", "--layer-index"): "maps.last_k",
}


def lookup(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("name", ["voc12_plus", "coco14_plus"])
def test_plus_paper_config_states_the_reference_values(name):
    config = paper_config(name)
    assert config["classifier"]["version"] == "plus" and config["classifier"]["arch"] == "deit_small"
    wrong = [f"{key} = {lookup(config, key)!r}, the reference {SETTINGS[row]!r}" for row, key in REFERENCE_KEYS.items()
             if lookup(config, key) != SETTINGS[row]]
    assert not wrong, "\n".join(wrong)
    assert config["maps"]["flip"] and config["maps"]["variants"][-1] == "fused_refined"  # --attention-type fused, --patch-attn-refine
    assert (config["classifier"]["augment"]["scale"], config["classifier"]["augment"]["hflip"]) == ([0.08, 1.0], 0.5)


def test_plus_configs_share_one_recipe_and_the_v2_post_processing():
    """voc12_plus and coco14_plus differ only in the data; past the maps both are their V2 config's but the walk's background."""
    voc, coco = paper_config("voc12_plus"), paper_config("coco14_plus")
    for section in ("classifier", "maps", "seeds", "psa", "affinity", "irn", "deeplab", "refine"):
        assert {k: v for k, v in voc[section].items() if k != "test_split"} == {k: v for k, v in coco[section].items() if k != "test_split"}, section
    v2 = paper_config("voc12")
    for section in ("seeds", "affinity", "irn", "deeplab", "refine"):
        assert voc[section] == v2[section], section
    assert {k: v for k, v in voc["psa"].items() if k != "background"} == {k: v for k, v in v2["psa"].items() if k != "background"}
    assert voc["psa"]["background"] is None and v2["psa"]["background"] == SWITCH_BY_KEY["psa.background"].reference


def test_plus_learning_rate_per_epoch_is_the_references():
    """The schedule the reference's own loop ran (settings.json): lr 5e-4 x 32 / 512, warm-up from 1e-6, one epoch late."""
    from mctformer.training.classifier import lr_schedule

    settings = paper_config("voc12_plus")["classifier"]
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=settings["base_lr"] * settings["batch_size"] / 512)
    set_lr = lr_schedule(optimizer, settings, steps_per_epoch=3)
    ours = []
    for epoch in range(settings["epochs"]):
        set_lr(epoch * 3 + 1)
        ours.append(optimizer.param_groups[0]["lr"])
    assert ours == pytest.approx(SETTINGS[("train", "learning rate of each epoch")], rel=1e-9)


def test_plus_weight_decay_groups_are_the_references():
    """Reference switch classifier.weight_decay_exempt: cls_token exempt, the NEW pos_embed_cls / pos_embed_pat decayed."""
    from helpers.arguments import tiny_mctformer
    from mctformer.training.classifier import build_optimizer

    settings = paper_config("voc12_plus")["classifier"]
    model = tiny_mctformer(4, version="plus")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {group["weight_decay"]: {names[id(p)] for p in group["params"]} for group in build_optimizer(model, settings, 1e-3).param_groups}
    reference = SETTINGS[("train", "weight-decay groups")]
    assert {"class_tokens", "patch_embed.proj.bias", "patchcam_head.bias", "blocks.0.norm1.weight"} <= groups[0.0]
    assert {"class_pos_embed", "pos_embed", "patch_embed.proj.weight", "patchcam_head.weight", "blocks.0.attn.qkv.weight"} <= groups[0.05]
    assert {"pos_embed_cls", "pos_embed_pat"} <= set(reference["decay 0.05"]) and "cls_token" in reference["no_decay"]


def test_plus_input_size_must_hold_whole_patches(tmp_path):
    config = copy.deepcopy(paper_config("voc12_plus"))
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    for split in ("train_aug", "train", "val", "test"):
        (tmp_path / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("")
    config["data"]["root"] = str(tmp_path)
    check_config(config)  # as shipped, with a root
    config["classifier"]["input_size"] = 440
    with pytest.raises(ConfigError, match="classifier.input_size: MCTformer\\+ sizes its patch position embedding"):
        check_config(config)
