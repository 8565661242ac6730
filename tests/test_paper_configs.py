"""The paper configs are the paper's: composed and resolved as the workflow does it, they state what the reference ran.

tests/fixtures/paper_settings.yaml says, for every one of the reference's VOC hyper-parameters in
tests/fixtures/reference/settings.json (made by reading the authors' run scripts and argparse defaults),
which config keys reproduce it: plain keys with their values, or reference switches, whose value is the
registry's (mctformer/compat.py). Whatever is not a key is a code convention pinned by a named test, a
file only the user can supply, or a kept difference that the docs list.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from helpers.workflow import REPO
from mctformer.compat import GROUPS, SWITCH_BY_KEY, SWITCHES, apply_compat, states, switches_markdown
from mctformer.config import ConfigError, compose_config, load_config

FIXTURES = Path(__file__).parent / "fixtures"
CONFIGS = REPO / "workflow" / "configs"
PAPER_CONFIGS = ("voc12", "coco14")
SETTINGS = json.loads((FIXTURES / "reference" / "settings.json").read_text())["rows"]
EXPECTED = yaml.safe_load((FIXTURES / "paper_settings.yaml").read_text())
# The keys in which the COCO config may differ from the VOC one: the dataset itself.
# side_by_side.models: each dataset's MCTformer+ config (voc12_plus.yaml, coco14_plus.yaml), the recipe of both the same
DATASET_KEYS = ("run_name", "data.", "deeplab.test_split", "side_by_side.models.")
# Keys read only for another data.source (the generator's, a folder dataset's: refused as set with voc/coco).
SYNTHETIC_ONLY = ("synthetic.", "resources.rules.prepare_data.", "data.folder.")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def merged(name: str) -> dict:
    """config.yaml, then workflow/configs/<name>.yaml with its base chain, compat-resolved and validated."""
    config, _ = load_config([CONFIGS / f"{name}.yaml"])
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def lookup(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def leaf_keys(config: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in config.items():
        if isinstance(value, dict) and value:
            keys |= leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def test_the_expectations_cover_every_reference_setting():
    assert len(EXPECTED) == len(SETTINGS)
    for expected, row in zip(EXPECTED, SETTINGS):
        assert expected["parameter"] == row["parameter"], (expected, row["stage"])
        assert {"config", "switches", "code", "user_file"} & set(expected), expected
        for key in expected.get("switches", []):
            assert key in SWITCH_BY_KEY, f"{expected['parameter']}: {key} is not a reference switch (mctformer/compat.py)"
        for key in expected.get("config", {}):
            assert key not in SWITCH_BY_KEY, f"{expected['parameter']}: {key} is a switch: list it under switches:"


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_merged_paper_config_states_the_reference_values(name):
    config = merged(name)
    wrong = []
    for expected in EXPECTED:
        wanted = {**expected.get("config", {}), **{key: SWITCH_BY_KEY[key].reference for key in expected.get("switches", [])}}
        for key, value in wanted.items():
            if name == "coco14" and key.startswith(DATASET_KEYS):
                continue
            if lookup(config, key) != value:
                wrong.append(f"{expected['parameter']}: {key} = {lookup(config, key)!r}, the reference {value!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", [*PAPER_CONFIGS, "voc12_irn"])
def test_paper_configs_inherit_nothing_from_the_embedded_default(name):
    """The paper config and its base chain state every key of the resolved default, but the synthetic ones and the
    switches (which compat sets), so no toy value slips into a paper run."""
    default = load_config()[0]
    chain, _ = compose_config([], load(CONFIGS / f"{name}.yaml"))
    stated = leaf_keys(chain)
    missing = sorted(key for key in leaf_keys(default) if key not in stated and not key.startswith(SYNTHETIC_ONLY))
    assert not missing, f"{name}.yaml inherits from config.yaml: {missing}"


def test_voc_and_coco_configs_share_one_recipe():
    voc, coco = merged("voc12"), merged("coco14")
    differing = sorted(
        key for key in leaf_keys(voc) | leaf_keys(coco)
        if not key.startswith(DATASET_KEYS) and _get(voc, key) != _get(coco, key)
    )
    assert not differing, f"voc12 and coco14 differ outside the dataset keys: {differing}"


def _get(config: dict, key: str):
    try:
        return lookup(config, key)
    except KeyError:
        return "<absent>"


def test_code_conventions_are_pinned_by_existing_tests():
    for expected in EXPECTED:
        if "code" not in expected:
            continue
        path, name = expected["code"].split("::")
        source = (REPO / path).read_text()
        assert re.search(rf"^def {name}\b", source, re.M), f"{expected['parameter']}: {expected['code']} does not exist"


def test_the_docs_list_every_kept_difference_and_user_file():
    page = (REPO / "docs" / "reproducing-the-paper.md").read_text()
    section = page[page.index("## Reproducing the paper"):]
    section = section[: section.find("\n## ", 4)] if "\n## " in section[4:] else section
    for expected in EXPECTED:
        for key in ("differs", "user_file"):
            if key in expected:
                mentioned = expected["user_file"] if key == "user_file" else expected["parameter"]
                assert f"`{mentioned}`" in section, f"docs/reproducing-the-paper.md's 'Reproducing the paper' does not list `{mentioned}`"


def test_paper_config_is_refused_without_its_data():
    """A paper config names no data; the checks say which key to fill before any job starts."""
    from mctformer.config import check_config

    config = copy.deepcopy(merged("voc12"))
    with pytest.raises(ConfigError, match="data.root"):
        check_config(config)


def test_irn_config_states_the_irn_and_deeplab_v2_recipe():
    """voc12_irn.yaml: voc12.yaml's seeds, IRN with its authors' hyper-parameters over train_aug, DeepLab-V2 ResNet-101."""
    config = merged("voc12_irn")
    voc = merged("voc12")
    irn = config["irn"]
    assert config["refine"]["methods"] == ["irn"] and config["deeplab"]["pseudo_masks"] == "irn"
    assert (irn["epochs"], irn["batch_size"], irn["crop_size"], irn["lr"], irn["weight_decay"]) == (3, 32, 512, 0.1, 1e-4)
    assert (irn["train_radius"], irn["walk_radius"], irn["beta"], irn["exp_times"], irn["sem_seg_bg_thres"]) == (10, 5, 10, 8, 0.25)
    assert (irn["conf_fg_thres"], irn["conf_bg_thres"], irn["backbone"], irn["freeze_backbone"]) == (0.30, 0.05, "resnet50", True)
    crf = irn["crf"]
    assert (crf["gaussian_sxy"], crf["gaussian_compat"], crf["bilateral_sxy"], crf["bilateral_srgb"], crf["bilateral_compat"]) == (3, 3, 50, 5, 10)
    assert config["data"]["splits"]["train"] == "train_aug"  # the walk covers train_aug, not only their default train list
    deeplab = config["deeplab"]
    assert (deeplab["head"], deeplab["aspp_dilations"], deeplab["backbone"]) == ("aspp", [6, 12, 18, 24], "resnet101")
    # our DeepLab conventions (compat.deeplab: ours), but for what DeepLab-V2's recipe states explicitly
    assert config["compat"]["deeplab"] == "ours"
    for switch in SWITCHES:
        if switch.group == "deeplab":
            assert lookup(config, switch.key) == switch.ours, switch.key
    # everything up to the seeds is the paper config's
    for section in ("data", "classifier", "maps", "seeds", "psa", "affinity"):
        assert config[section] == voc[section], section
    # and the paper configs keep PSA + LargeFOV
    assert voc["refine"]["methods"] == ["psa"] and voc["deeplab"]["head"] == "largefov" and voc["deeplab"]["pseudo_masks"] == "psa"


# ------------------------------------------------------------------ the registry and the compat modes


def test_every_switch_is_in_the_registry():
    """A key a paper config needs that config.yaml does not state can only come from the registry: a switch taken
    out of the registry (or a new one left out of it) leaves the resolved default without that key."""
    raw_default = leaf_keys(load(REPO / "config.yaml"))

    def switch_of(key: str) -> str | None:  # a dict-valued switch (seeds.thresholds) has leaves of its own
        return next((switch.key for switch in SWITCHES if key == switch.key or key.startswith(switch.key + ".")), None)

    for name in ("voc12", "coco14", "voc12_irn"):
        # what config.yaml leaves to overlays on purpose: the release archives, the real data's rule sizes, `base:`
        needed = {key for key in leaf_keys(merged(name)) - raw_default if not key.startswith(("data.archives", "resources.rules.", "base"))}
        assert not {key for key in needed if switch_of(key) is None}, f"{name}: needs keys that neither config.yaml nor the registry has"
        assert {switch_of(key) for key in needed} == set(SWITCH_BY_KEY)
    assert len(SWITCHES) == len(SWITCH_BY_KEY), "a switch is listed twice"
    assert {switch.group for switch in SWITCHES} <= set(GROUPS)


def test_no_config_file_states_a_switch_at_its_reference_value():
    """The compat modes set them: a stated reference value would be a second copy of the registry."""
    for path in [REPO / "config.yaml", *sorted(CONFIGS.glob("*.yaml"))]:
        config = load(path)
        for switch in SWITCHES:
            if states(config, switch.key):
                assert lookup(config, switch.key) != switch.reference, f"{path.name} states {switch.key} at the reference's value"
    default = load(REPO / "config.yaml")
    assert not [key for key in SWITCH_BY_KEY if states(default, key)], "config.yaml would override every overlay's compat mode"


@pytest.mark.parametrize("mode", ["ours", "reference"])
def test_every_switch_value_passes_the_schema_and_every_switch_is_documented(mode):
    config = load_config()[0]
    for switch in SWITCHES:
        *parents, leaf = switch.key.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = copy.deepcopy(switch.value(mode))
        assert switch.ours != switch.reference, switch.key
        assert switch.reference_does and switch.why_ours and re.search(r"\S+:\d+|timm|torch", switch.where), switch.key
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def test_a_compat_mode_fills_only_the_switches_of_its_group_and_a_stated_key_wins():
    config = {"compat": {"maps": "reference"}, "maps": {"resize": "torch_bilinear"}, "seeds": {}, "deeplab": {"crf": {}}}
    set_here = {key: (value, mode) for key, value, mode in apply_compat(config)}
    assert config["maps"]["resize"] == "torch_bilinear" and "maps.resize" not in set_here  # stated: kept
    assert config["maps"]["remainder"] == "crop" and set_here["maps.remainder"] == ("crop", "reference")
    assert config["seeds"]["selection"] == "global_max" and set_here["seeds.selection"] == ("global_max", "ours")  # a group left out
    assert config["deeplab"]["crf"]["spatial_scale"] == "auto" and config["deeplab"]["pad_label"] == 255
    assert "classifier" not in config and "classifier.warmup_lr" not in set_here  # a section the config lacks stays absent
    with pytest.raises(ValueError, match="compat"):
        apply_compat({"compat": {"maps": "theirs"}, "maps": {}})


def test_a_user_overlay_can_run_one_group_the_reference_way(tmp_path):
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("compat: {maps: reference}\n")
    config, set_here = load_config([overlay])
    assert (config["maps"]["resize"], config["maps"]["remainder"], config["seeds"]["selection"]) == ("pil_bicubic", "crop", "global_max")
    assert {key for key, _, mode in set_here if mode == "reference"} == {s.key for s in SWITCHES if s.group == "maps"}


def test_a_missing_or_circular_base_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="base: config file .*nowhere.yaml does not exist"):
        compose_config([], {"base": str(tmp_path / "nowhere.yaml")})
    (tmp_path / "a.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(ConfigError, match="is its own base"):
        compose_config([], {"base": str(tmp_path / "a.yaml")})


def test_config_show_prints_the_resolved_paper_config_and_what_compat_set(capsys):
    from mctformer.cli import main

    assert main(["config", "show", "--configfile", str(CONFIGS / "voc12_irn.yaml"), "--default-file", str(REPO / "config.yaml")]) == 0
    out, err = capsys.readouterr()
    shown = yaml.safe_load(out)
    assert shown == merged("voc12_irn")
    assert "#   maps.resize: \"pil_bicubic\"  (reference)" in out and "#   deeplab.pad_label: 255  (ours)" in out
    assert "data.root: required" in err  # the run would stop there, and the user is told before any job


def test_the_switch_table_has_a_row_per_switch():
    rows = [line for line in switches_markdown().splitlines() if line.startswith("| ") and "`" in line]
    assert [row.split("|")[2].strip(" `") for row in rows] == [switch.key for switch in SWITCHES]
