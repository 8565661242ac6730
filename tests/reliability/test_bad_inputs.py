"""Bad inputs: one clear error naming the file or key, a non-zero exit, nothing half-written.

tests/test_data.py and tests/test_config.py check the readers and the schema
in-process; here the same faults go through the workflow as a user meets them
(snakemake exits non-zero, says which file or key, leaves no output), and the
stages are given wrong checkpoints and faults found half-way through their work.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from helpers.data import write_voc_root
from helpers.reliability import (
    RUN,
    output_of,
    reliability_config,
    run_each_in_two_threads,
    run_snakemake,
    temporaries,
    write_config,
)
from helpers.workflow import REPO, TINY_SPEC, tiny_config
from mctformer.data.layout import DatasetRef
from mctformer.data.voc import DatasetError
from mctformer.settings import Placement

CLASSES = reliability_config()["data"]["classes"]
LABELS = f"{RUN}/labels/cls_labels.npy"


# ------------------------------------------------- dataset faults, through snakemake --

def good_masks() -> dict[str, np.ndarray]:
    masks = {}
    for index in range(6):
        mask = np.zeros((12, 16), np.uint8)
        mask[2:8, 3 + index : 9 + index] = 1 + index % len(CLASSES)
        masks[f"im{index}"] = mask
    return masks


def truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


def set_list(root, split, text):
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(text)


def wrong_mask(root, image_id, mask):
    from mctformer.artifacts import save_label_png, voc_palette

    save_label_png(root / "SegmentationClassAug" / f"{image_id}.png", mask, voc_palette())


# name -> (how the good root is broken, what the error must say)
DATA_FAULTS = {
    "corrupt_jpeg": (lambda r: (r / "JPEGImages" / "im2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg"),
                     r"image \S*/JPEGImages/im2\.jpg is unreadable or corrupt"),
    "truncated_png_mask": (lambda r: truncate(r / "SegmentationClassAug" / "im1.png", 60),
                           r"\S*/SegmentationClassAug/im1\.png is unreadable or corrupt"),
    "mask_value_outside_classes": (lambda r: wrong_mask(r, "im3", np.full((12, 16), 9, np.uint8)),
                                   rf"mask \S*/im3\.png holds class index 9, outside 0\.\.{len(CLASSES)}"),
    "mask_size_mismatch": (lambda r: wrong_mask(r, "im4", np.zeros((10, 16), np.uint8)),
                           r"mask \S*/im4\.png is 16x10 but its image is 16x12"),
    "list_names_missing_image": (lambda r: set_list(r, "train", "im0\nghost\n"),
                                 r"split list \S*/train\.txt names ghost, but \S*/JPEGImages/ghost\.jpg does not exist"),
    "empty_split": (lambda r: set_list(r, "val", "\n"), r"split list \S*/val\.txt is empty"),
    "duplicate_ids": (lambda r: set_list(r, "train_aug", "im0\nim1\nim0\n"), r"split list \S*/train_aug\.txt names im0 twice"),
}


def bad_root(base, name):
    root = write_voc_root(base / name / "voc", good_masks(), {"train_aug": ["im0", "im1", "im2", "im3"], "train": ["im0", "im1"], "val": ["im4", "im5"]})
    DATA_FAULTS[name][0](root)
    return root


@pytest.mark.parametrize("fault", DATA_FAULTS)
def test_bad_dataset_is_refused_naming_the_file(tmp_path, fault):
    """The class_labels stage (the first to read a given root) on each fault: the error, and no output."""
    from mctformer.stages.data import make_class_labels

    root = bad_root(tmp_path, fault)
    out = tmp_path / "labels" / "cls_labels.npy"
    with pytest.raises(DatasetError, match=DATA_FAULTS[fault][1]):
        make_class_labels(dataset=DatasetRef(str(root), "voc", tuple(CLASSES)), splits=["train_aug", "val", "train"], out_path=str(out), workers=1)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# a few of them as a user meets them: through snakemake
SNAKEMAKE_DATA_FAULTS = ["corrupt_jpeg", "mask_value_outside_classes", "duplicate_ids"]


def run_data_fault(base, name):
    workdir = base / name
    config = reliability_config()
    config["data"].update(source="voc", root=str(bad_root(base, name)))
    write_config(workdir, config)
    return workdir, run_snakemake(workdir, LABELS)


@pytest.fixture(scope="module")
def data_fault_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("data_faults")
    return run_each_in_two_threads(SNAKEMAKE_DATA_FAULTS, lambda name: run_data_fault(base, name))


@pytest.mark.slow
@pytest.mark.parametrize("fault", SNAKEMAKE_DATA_FAULTS)
def test_bad_dataset_stops_the_workflow_naming_the_file(data_fault_runs, fault):
    workdir, result = data_fault_runs[fault]
    out = output_of(result)
    assert result.returncode != 0
    assert "Error in rule class_labels" in out
    errors = re.findall(r"DatasetError: (.*)", out)
    assert errors and all(re.search(DATA_FAULTS[fault][1], error) for error in errors), out[-3000:]
    assert not (workdir / LABELS).exists() and temporaries(workdir / "results") == []


# ------------------------------------------------- config faults, through snakemake --

def put(path, value):
    def edit(config):
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


# name -> (edit, what the error must name)
CONFIG_FAULTS = {
    "unknown_key": (put(("classifier", "epochz"), 3), "epochz"),
    "wrong_type": (put(("maps", "batch_size"), "sixteen"), "batch_size"),
    "negative_epochs": (put(("affinity", "epochs"), -2), "epochs"),
    "threshold_above_one": (put(("seeds", "thresholds", "stop"), 1.5), "stop"),
    "threshold_below_zero": (put(("psa", "background"), -0.1), "background"),
    "empty_scales": (put(("deeplab", "scales"), []), "scales"),
    "missing_classifier_weights": (put(("classifier", "pretrained"), "/no/such/deit_small.pth"), "classifier.pretrained"),
    "missing_affinity_weights": (put(("affinity", "pretrained"), "/no/such/resnet38d.pth"), "affinity.pretrained"),
    "missing_deeplab_weights": (put(("deeplab", "pretrained"), "/no/such/resnet38d.pth"), "deeplab.pretrained"),
}


@pytest.mark.parametrize("fault", CONFIG_FAULTS)
def test_bad_config_is_refused_naming_the_key(fault):
    """The checks common.smk runs before building the DAG: the schema, then the cross-key and path checks."""
    from snakemake.utils import validate

    from mctformer.config import check_config

    config = reliability_config()
    CONFIG_FAULTS[fault][0](config)
    with pytest.raises(Exception) as error:
        validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
        check_config(config)
    assert CONFIG_FAULTS[fault][1] in str(error.value)


# a few of them as a user meets them: through snakemake
SNAKEMAKE_CONFIG_FAULTS = ["unknown_key", "threshold_above_one", "missing_deeplab_weights"]


def run_config_fault(base, name):
    workdir = base / name
    config = reliability_config()
    CONFIG_FAULTS[name][0](config)
    write_config(workdir, config)
    return workdir, run_snakemake(workdir)


@pytest.fixture(scope="module")
def config_fault_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("config_faults")
    return run_each_in_two_threads(SNAKEMAKE_CONFIG_FAULTS, lambda name: run_config_fault(base, name))


@pytest.mark.slow
@pytest.mark.parametrize("fault", SNAKEMAKE_CONFIG_FAULTS)
def test_bad_config_stops_the_workflow_before_any_job(config_fault_runs, fault):
    workdir, result = config_fault_runs[fault]
    out = output_of(result)
    assert result.returncode != 0
    assert CONFIG_FAULTS[fault][1] in out, out[-3000:]
    assert not (workdir / "results").exists()  # not a single job ran


# ------------------------------------------------- checkpoints given to the stages --

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained checkpoints of each network, saved as the trainers save them."""
    from mctformer.models.affinitynet import AffinityNet
    from mctformer.training.classifier import build_classifier
    from mctformer.training.common import TrainerFiles, save_trained
    from mctformer.training.deeplab import build_deeplab

    config = tiny_config()
    folder = tmp_path_factory.mktemp("checkpoints")
    num_classes = TINY_SPEC.num_classes
    models = {
        "classifier": (build_classifier(config["classifier"], num_classes), config["classifier"], {"class_count": num_classes}),
        "classifier_3_classes": (build_classifier(config["classifier"], 3), config["classifier"], {"class_count": 3}),
        "affinity": (AffinityNet(backbone="tiny", pretrained=None, feature_dim=config["affinity"]["feature_dim"]), config["affinity"], {}),
        "deeplab": (build_deeplab(config["deeplab"], num_classes + 1), config["deeplab"], {}),
        "deeplab_3_labels": (build_deeplab(config["deeplab"], 3), config["deeplab"], {}),
    }
    paths = {}
    for name, (model, settings, extra) in models.items():
        paths[name] = folder / f"{name}.pt"
        save_trained(TrainerFiles(paths[name], folder / f"{name}.csv", folder / f"{name}.resume.pt", tensorboard=None), model, settings, [], **extra)
    paths["garbage"] = folder / "garbage.pt"
    paths["garbage"].write_bytes(b"this is not a checkpoint")
    paths["missing"] = folder / "missing.pt"
    return paths


@pytest.fixture(scope="module")
def class_labels(synthetic_root, tmp_path_factory):
    from mctformer.stages.data import make_class_labels

    path = tmp_path_factory.mktemp("labels") / "cls_labels.npy"
    make_class_labels(dataset=DatasetRef(str(synthetic_root), "voc", tuple(tiny_config()["data"]["classes"])), splits=["train_aug", "val"],
                      out_path=str(path), workers=1)
    return path


def extract(root, labels, checkpoint, out, batch_size=16):
    from mctformer.settings import MapGeometry
    from mctformer.stages.seeds import extract_maps_stage

    config = tiny_config()
    geometry, settings = MapGeometry.take({key: value for key, value in config["maps"].items() if key != "variants"})
    settings.update(batch_size=batch_size, overlays=2)
    extract_maps_stage(
        dataset=DatasetRef(str(root), "voc", tuple(config["data"]["classes"])), labels_path=str(labels), checkpoint=str(checkpoint),
        version=config["classifier"]["version"], splits=["train_aug"], placement=Placement("cpu", False, 0),
        out_dirs={v: str(out / v) for v in ("fused", "attention")},
        overlay_dir=str(out / "overlays"), threads=1, geometry=geometry, **settings,
    )


def walk(root, maps, checkpoint, out):
    from mctformer.settings import WalkSettings
    from mctformer.stages.psa import random_walk_stage

    config = tiny_config()
    psa, affinity = config["psa"], config["affinity"]
    random_walk_stage(
        dataset=DatasetRef(str(root), "voc", tuple(config["data"]["classes"])), palette=None, splits=["train"], map_dir=str(maps),
        checkpoint=str(checkpoint), best_json=None, background=0.3,
        walk=WalkSettings(beta=psa["beta"], logt=2, radius=affinity["radius"], pair_sources=affinity["pair_sources"]),
        walk_scale=psa["walk_scale"], batch_size=psa["batch_size"], backbone=affinity["backbone"], walk_amp=psa["walk_amp"],
        placement=Placement("cpu", False, 0),
        out_dir=str(out / "pseudo"),
        threads=1,
    )


def infer(root, checkpoint, out):
    from mctformer.stages.deeplab import infer_deeplab_stage

    config = tiny_config()
    keys = ("head", "scales", "flip_inference", "fuse", "inference_resize", "crf", "inference_amp", "inference_workers")
    settings = {key: config["deeplab"][key] for key in keys}
    infer_deeplab_stage(dataset=DatasetRef(str(root), "voc", tuple(config["data"]["classes"])), palette=None, split="val",
                        checkpoint=str(checkpoint), placement=Placement("cpu", False, 0), pred_dir=str(out / "pred"),
                        crf_dir=str(out / "pred_crf"), threads=1,
                        **settings)


# (stage, checkpoint given, what the error must say)
CHECKPOINT_FAULTS = [
    ("extract", "classifier_3_classes", r"classifier checkpoint \S*classifier_3_classes\.pt was trained for 3 classes, the config has 4"),
    ("extract", "deeplab", r"\S*deeplab\.pt is not a classifier \(MCTformer\) checkpoint"),
    ("extract", "missing", r"classifier checkpoint \S*missing\.pt does not exist"),
    ("extract", "garbage", r"classifier checkpoint \S*garbage\.pt is unreadable"),
    ("walk", "classifier", r"\S*classifier\.pt is not an AffinityNet checkpoint"),
    ("walk", "missing", r"AffinityNet checkpoint \S*missing\.pt does not exist"),
    ("infer", "deeplab_3_labels", r"DeepLab checkpoint \S*deeplab_3_labels\.pt predicts 3 labels, the config has 5"),
    ("infer", "affinity", r"\S*affinity\.pt is not a DeepLab checkpoint"),
    ("infer", "garbage", r"DeepLab checkpoint \S*garbage\.pt is unreadable"),
]


@pytest.mark.parametrize("stage, given, message", CHECKPOINT_FAULTS, ids=[f"{s}-{g}" for s, g, _ in CHECKPOINT_FAULTS])
def test_wrong_checkpoint_is_refused_naming_the_file(synthetic_root, class_labels, checkpoints, tmp_path, stage, given, message):
    out = tmp_path / "out"
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        if stage == "extract":
            extract(synthetic_root, class_labels, checkpoints[given], out)
        elif stage == "walk":
            walk(synthetic_root, tmp_path / "maps", checkpoints[given], out)
        else:
            infer(synthetic_root, checkpoints[given], out)
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------- faults found half-way through a stage --

def test_corrupt_image_late_in_extraction_leaves_no_maps(synthetic_root, class_labels, checkpoints, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    ids = (root / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split()
    truncate(root / "JPEGImages" / f"{ids[-1]}.jpg", 300)  # the header still reads; the pixels do not
    out = tmp_path / "maps"
    with pytest.raises(DatasetError, match=rf"image \S*/{ids[-1]}\.jpg is unreadable or corrupt"):
        extract(root, class_labels, checkpoints["classifier"], out, batch_size=4)  # 11 batches written before it
    assert not out.exists() or (list(out.iterdir()) == [] and temporaries(out) == [])


def test_corrupt_map_file_in_the_random_walk_leaves_no_masks(synthetic_root, checkpoints, tmp_path):
    from mctformer.artifacts import save_map_file
    from mctformer.data.voc import VOCLayout

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("train")
    maps = tmp_path / "maps"
    maps.mkdir()
    for image_id in ids:
        mask = layout.load_mask(image_id)
        labels = np.array([v for v in np.unique(mask) if v not in (0, 255)])
        save_map_file(maps / f"{image_id}.npz", labels, np.stack([(mask == v) for v in labels]).astype(np.float32).reshape(len(labels), *mask.shape),
                      dtype=tiny_config()["maps"]["storage_dtype"])
    (maps / f"{ids[-1]}.npz").write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "masks"
    with pytest.raises(ValueError, match=rf"unreadable map file \S*/{ids[-1]}\.npz"):
        walk(synthetic_root, maps, checkpoints["affinity"], out)
    assert not out.exists() or (list(out.iterdir()) == [] and temporaries(out) == [])
