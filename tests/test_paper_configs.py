"""The paper configs are the paper's: merged as Snakemake merges them, they state what the reference ran.

tests/fixtures/paper_settings.yaml says, for every one of the reference's VOC hyper-parameters in
tests/fixtures/reference/settings.json (made by reading the authors' run scripts and argparse defaults),
which config keys reproduce it. Whatever is not a key is a code convention pinned by a named test, a
file only the user can supply, or a kept difference that the README's "Reproducing the paper" lists.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from conftest import REPO

FIXTURES = Path(__file__).parent / "fixtures"
PAPER_CONFIGS = ("voc12", "coco14")
SETTINGS = json.loads((FIXTURES / "reference" / "settings.json").read_text())["rows"]
EXPECTED = yaml.safe_load((FIXTURES / "paper_settings.yaml").read_text())
# The keys in which the COCO config may differ from the VOC one: the dataset itself.
DATASET_KEYS = ("run_name", "data.", "deeplab.test_split")
SYNTHETIC_ONLY = ("synthetic.", "resources.rules.prepare_data.")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def merged(name: str) -> dict:
    """config.yaml overlaid with workflow/configs/<name>.yaml by Snakemake's own merge, then validated by the schema."""
    config = load(REPO / "config.yaml")
    update_config(config, load(REPO / "workflow" / "configs" / f"{name}.yaml"))
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
        assert {"config", "code", "user_file"} & set(expected), expected


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_merged_paper_config_states_the_reference_values(name):
    config = merged(name)
    wrong = []
    for expected in EXPECTED:
        for key, value in expected.get("config", {}).items():
            if name == "coco14" and key.startswith(DATASET_KEYS):
                continue
            if lookup(config, key) != value:
                wrong.append(f"{expected['parameter']}: {key} = {lookup(config, key)!r}, the reference {value!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", [*PAPER_CONFIGS, "voc12_irn"])
def test_paper_configs_inherit_nothing_from_the_embedded_default(name):
    """Every key of config.yaml is stated in the paper config, so no toy value slips into a paper run."""
    default = load(REPO / "config.yaml")
    paper = load(REPO / "workflow" / "configs" / f"{name}.yaml")
    # the synthetic generator and its rule never run on real data
    missing = sorted(key for key in leaf_keys(default) if key not in leaf_keys(paper) and not key.startswith(SYNTHETIC_ONLY))
    assert not missing, f"{name}.yaml inherits from config.yaml: {missing}"


def test_voc_and_coco_configs_share_one_recipe():
    voc = load(REPO / "workflow" / "configs" / "voc12.yaml")
    coco = load(REPO / "workflow" / "configs" / "coco14.yaml")
    differing = sorted(
        key for key in leaf_keys(voc) | leaf_keys(coco)
        if not key.startswith(DATASET_KEYS) and _get(voc, key) != _get(coco, key)
    )
    assert not differing, f"voc12.yaml and coco14.yaml differ outside the dataset keys: {differing}"


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


def test_readme_lists_every_kept_difference_and_user_file():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Reproducing the paper"):]
    section = section[: section.find("\n## ", 4)]
    for expected in EXPECTED:
        for key in ("differs", "user_file"):
            if key in expected:
                mentioned = expected["user_file"] if key == "user_file" else expected["parameter"]
                assert f"`{mentioned}`" in section, f"README's 'Reproducing the paper' does not list `{mentioned}`"


def test_paper_config_is_refused_without_its_data():
    """A paper config names no data; the checks say which key to fill before any job starts."""
    from mctformer.config import ConfigError, check_config

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
    # everything up to the seeds is the paper config's
    for section in ("data", "classifier", "maps", "seeds", "psa", "affinity"):
        assert config[section] == voc[section], section
    # and the paper configs keep PSA + LargeFOV
    assert voc["refine"]["methods"] == ["psa"] and voc["deeplab"]["head"] == "largefov" and voc["deeplab"]["pseudo_masks"] == "psa"
