import copy
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO, tiny_config
from mctformer.config import ConfigError, check_config

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def validated(config):
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("name", ["config.yaml", "workflow/configs/voc12.yaml", "workflow/configs/coco14.yaml"])
def test_shipped_configs_follow_the_schema(name):
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    override = yaml.safe_load((REPO / name).read_text())
    merged = merge(base, override)
    validated(merged)


@pytest.mark.parametrize("name", ["workflow/configs/voc12.yaml", "workflow/configs/synthetic_v1.yaml"])
def test_shipped_overlays_pass_the_cross_key_checks(name, tmp_path):
    from conftest import write_voc_root
    import numpy as np

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    config = validated(merge(base, yaml.safe_load((REPO / name).read_text())))
    if config["data"]["source"] == "voc":
        ids = ["a", "b"]
        config["data"]["root"] = str(write_voc_root(tmp_path / "voc", {i: np.zeros((4, 4), np.uint8) for i in ids}, {s: ids for s in ("train_aug", "train", "val")}))
    check_config(config)


def merge(base, override):
    result = copy.deepcopy(base)
    for key, value in override.items():
        result[key] = merge(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
    return result


def test_defaults_are_filled():
    config = tiny_config()
    del config["maps"]["last_k"]
    assert validated(config)["maps"]["last_k"] == 3


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda c: c.update(unknown_key=1), "unknown_key"),
        (lambda c: c["classifier"].update(epochs=-1), "epochs"),
        (lambda c: c["classifier"].update(epochs="four"), "epochs"),
        (lambda c: c["seeds"]["thresholds"].update(stop=1.5), "stop"),
        (lambda c: c["maps"].update(scales=[]), "scales"),
        (lambda c: c["classifier"].update(arch="resnet"), "arch"),
        (lambda c: c["maps"].update(variants=["nonsense"]), "variants"),
        (lambda c: c["classifier"]["augment"].update(typo=1), "typo"),
    ],
)
def test_schema_rejects_bad_values_naming_the_key(edit, key):
    config = tiny_config()
    edit(config)
    with pytest.raises(Exception) as error:
        validate(config, SCHEMA)
    assert key in str(error.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["data"].update(source="voc", root=None), "data.root: required"),
        (lambda c: c["data"].update(source="voc", root="/no/such/root"), "data.root: /no/such/root does not exist"),
        (lambda c: c["classifier"].update(pretrained="/no/deit.pth"), "classifier.pretrained: weights file /no/deit.pth"),
        (lambda c: c["maps"].update(last_k=9), "maps.last_k: 9 exceeds the 4 blocks"),
        (lambda c: c["maps"].update(variants=["attention_refined"]), "maps.variants: 'attention_refined' needs another"),
        (lambda c: c["synthetic"].update(num_train=100), "synthetic.num_train"),
        (lambda c: c["data"]["splits"].update(val="test"), "data.splits"),
    ],
)
def test_cross_key_checks(edit, message):
    config = validated(tiny_config())
    edit(config)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        check_config(config)


def test_bad_config_fails_before_any_job(tmp_path):
    config = tiny_config()
    config["classifier"]["epochs"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path), "--directory", str(tmp_path), "-s", str(REPO / "Snakefile")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "epochs" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
