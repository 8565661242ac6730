import copy
import re
import subprocess
import sys

import pytest
import yaml
from snakemake.utils import validate

from helpers.workflow import REPO, tiny_config
from mctformer.config import ConfigError, check_config, load_config

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def validated(config):
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    return config


SHIPPED = ["config.yaml", *sorted(f"workflow/configs/{path.name}" for path in (REPO / "workflow" / "configs").glob("*.yaml"))]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_follow_the_schema(name):
    """Composed and resolved as the workflow does it (load_config validates against the schema), and again by
    Snakemake's own validate."""
    config, _ = load_config([] if name == "config.yaml" else [REPO / name])
    assert validated(config) == config  # accepted, and nothing filled in
    # ...and accepted because the schema checks every key the config sets, not because a key escapes it:
    # with every leaf made a value no leaf allows, each leaf path has an error of its own
    broken, leaves = copy.deepcopy(config), list(leaf_paths(config))
    for path in leaves:
        parent = broken
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = {"__not_a_value__": True}
    errors = [tuple(error.absolute_path) for error in schema_validator().iter_errors(broken)]
    unchecked = [".".join(path) for path in leaves if not any(error[: len(path)] == path for error in errors)]
    assert len(leaves) > 200 and unchecked == [], f"{name}: the schema does not check {unchecked}"


@pytest.mark.parametrize("name", [name for name in SHIPPED if name not in ("config.yaml", "workflow/configs/paper.yaml")])
def test_shipped_overlays_pass_the_cross_key_checks(name, tmp_path):
    import numpy as np

    from helpers.data import write_voc_root

    config = validated(load_config([REPO / name])[0])
    if config["data"]["source"] in ("voc", "coco"):
        ids = ["a", "b"]
        masks = {i: np.zeros((4, 4), np.uint8) for i in ids}
        config["data"]["root"] = str(write_voc_root(tmp_path / "voc", masks, {s: ids for s in ("train_aug", "train", "val")}))
        config["deeplab"]["test_split"] = None
    check_config(config)  # raises ConfigError where a cross-key check refuses the overlay
    # the checks did look at this overlay: the same overlay with one relation broken is refused, naming it
    if config["data"]["source"] in ("voc", "coco"):
        train = config["data"]["splits"]["train"]
        (tmp_path / "voc" / "ImageSets" / "Segmentation" / f"{train}.txt").unlink()
        refused = f"data.splits: split list {tmp_path / 'voc' / 'ImageSets' / 'Segmentation' / train}.txt does not exist"
    else:
        config["synthetic"]["min_objects"] = config["synthetic"]["max_objects"] + 1
        refused = "synthetic.min_objects: must not exceed synthetic.max_objects"
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert str(error.value) == refused


def schema_validator():
    """The schema as jsonschema reads it (what snakemake's validate uses), for its list of errors."""
    from jsonschema.validators import validator_for

    schema = yaml.safe_load(open(SCHEMA))
    return validator_for(schema)(schema)


def leaf_paths(node, path=()):
    """The key path of every value in a config that is not itself a non-empty mapping."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaf_paths(value, (*path, key))
    else:
        yield path


# Keys the schema allows that config.yaml leaves out on purpose: the real-data archives, rules config.yaml sizes by
# default, and `base:` (an overlay's).
OPTIONAL_KEYS = ("data.archives", "resources.rules.", "base")


def schema_defaults(node, path=""):
    """Every `default:` keyword in a schema node (a property merely named "default" is not one)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "default":
                found.append(path)
            if key == "properties":
                for name, child in value.items():
                    found += schema_defaults(child, f"{path}.{name}".lstrip("."))
            elif isinstance(value, (dict, list)) and key != "default":
                found += schema_defaults(value, path)
    elif isinstance(node, list):
        for child in node:
            found += schema_defaults(child, path)
    return found


def test_config_yaml_is_the_only_source_of_defaults():
    """The schema checks types, ranges and enums and holds no default: a reader learns every default from config.yaml."""
    assert schema_defaults(yaml.safe_load(open(SCHEMA))) == []


def test_config_yaml_states_every_key_the_schema_knows():
    """Itself or, for a reference switch, through its compat modes (mctformer.compat): the resolved default."""
    schema = yaml.safe_load(open(SCHEMA))
    config = load_config()[0]
    missing = []

    def walk(node, values, path):
        for name, child in node.get("properties", {}).items():
            key = f"{path}{name}"
            if key.startswith(OPTIONAL_KEYS):
                continue
            if name not in values:
                missing.append(key)
            elif isinstance(values[name], dict) and "properties" in child:
                walk(child, values[name], key + ".")

    walk(schema, config, "")
    assert not missing, f"config.yaml does not state {missing}"
    validated(config)


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
        (lambda c: c["seeds"].update(labels=["predicted", "guessed"]), "labels"),
        (lambda c: c["seeds"].update(label_threshold=1.0), "label_threshold"),
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
        (lambda c: c["maps"].update(last_k=9), "maps.last_k: maps.last_k must lie in 1..4 (the depth of tiny), got 9"),
        (lambda c: c["maps"].update(variants=["attention_refined"]), "maps.variants: 'attention_refined' needs another"),
        (lambda c: c["synthetic"].update(num_train=100), "synthetic.num_train"),
        (lambda c: c["data"]["splits"].update(val="test"), "data.splits"),
        (lambda c: c["seeds"].update(labels=["predicted"]), "seeds.labels: ['predicted'] lacks ground_truth"),
    ],
)
def test_cross_key_checks(edit, message):
    config = validated(tiny_config())
    edit(config)
    with pytest.raises(ConfigError, match=re.escape(message)):
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


@pytest.mark.parametrize(
    "edit, message",
    [
        # the realistic mistake: the default config pointed at one's own VOC-layout root (an existing folder)
        (lambda c, root: c["data"].update(root=str(root)), "data.root: {root} is ignored when data.source is 'synthetic'"),
        (lambda c, root: c["data"].update(archives={"voc": str(root)}), "data.archives: is ignored when data.source is 'synthetic'"),
        (lambda c, root: c["deeplab"].update(test_split="test"), "deeplab.test_split: the synthetic generator writes"),
    ],
)
def test_keys_the_synthetic_source_would_ignore_are_refused_naming_the_key(edit, message, tmp_path):
    config = validated(tiny_config())
    edit(config, tmp_path)
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert str(error.value).startswith(message.format(root=tmp_path)), error.value


def test_a_voc_config_keeps_the_synthetic_section_that_config_yaml_always_carries(tmp_path):
    """Snakemake merges --configfile over config.yaml, so `synthetic:` is always there: not a user-set key to refuse."""
    import numpy as np

    from helpers.data import write_voc_root

    config = validated(tiny_config())
    ids = ["a", "b"]
    root = write_voc_root(tmp_path / "voc", {i: np.zeros((4, 4), np.uint8) for i in ids}, {s: ids for s in ("train_aug", "train", "val")})
    config["data"].update(source="voc", root=str(root))
    # even edited, even inconsistent (train is no subset of train_aug): a voc run never reads it, so nothing refuses it
    config["synthetic"].update(num_train_aug=3, num_train=7)
    check_config(config)
    # where the section is read, the same values are refused: the pass above is the voc source's, not a check that never looks
    config["data"].update(source="synthetic", root=None)
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert str(error.value).startswith("synthetic.num_train: must not exceed synthetic.num_train_aug"), error.value


def test_data_root_with_the_synthetic_source_fails_a_dry_run_before_any_job(tmp_path):
    own_root = tmp_path / "VOCdevkit" / "VOC2012"
    own_root.mkdir(parents=True)
    config = tiny_config()
    config["data"]["root"] = str(own_root)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path), "--directory", str(tmp_path), "-s", str(REPO / "Snakefile")],
        capture_output=True, text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"invalid config: data.root: {own_root} is ignored when data.source is 'synthetic'" in output, output[-2000:]
    assert "Job stats" not in output and "prepare_data" not in output  # refused while loading, before any job is planned
    assert not (tmp_path / "results").exists()


def test_rule_resources_map_the_config_to_the_slurm_plugin_names():
    from mctformer.config import rule_resources, rule_settings

    config = validated(copy.deepcopy(tiny_config()))
    config["resources"].update(partition="cpu", gpu_partition="gpu", gpu_model="a100")
    config["resources"]["rules"]["train_classifier"].update(gpus=2, mem_mb=64000, runtime=600)
    assert rule_resources(config, "train_classifier") == {
        "mem_mb": 64000, "runtime": 600, "gpu": 2, "gpu_model": "a100", "slurm_partition": "gpu",
    }
    # a rule the config does not list takes resources.default; no GPU, the CPU partition
    config["resources"]["rules"].pop("report", None)
    default = config["resources"]["default"]
    assert rule_resources(config, "report") == {"mem_mb": default["mem_mb"], "runtime": default["runtime"], "slurm_partition": "cpu"}
    assert rule_settings(config, "report")["threads"] == default["threads"]


@pytest.mark.parametrize("rule, gpus, message", [
    ("evaluate_seeds", 1, "does not use a GPU"),
    ("extract_maps", 2, "only train_classifier and train_deeplab run on several GPUs"),
])
def test_rule_resources_refuse_gpus_where_they_cannot_be_used(rule, gpus, message):
    from mctformer.config import rule_resources

    config = validated(copy.deepcopy(tiny_config()))
    config["resources"]["rules"][rule] = {"gpus": gpus}
    with pytest.raises(ConfigError, match=message):
        rule_resources(config, rule)
    with pytest.raises(ConfigError, match=message):  # before any job
        check_config(config)
