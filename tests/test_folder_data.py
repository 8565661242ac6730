"""data.source folder: your own images under any names, labels from a CSV or JSON, masks, optional split lists."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from helpers.workflow import snakemake, tiny_config
from mctformer.config import ConfigError, check_config, compose_config
from mctformer.data.folder import FolderLayout, default_split, prepare_folder, read_label_table
from mctformer.data.voc import DatasetError, VOCLayout

CLASSES = tiny_config()["data"]["classes"]


def own_name(index: int, image_id: str) -> str:
    """A file name no VOC id has: dots inside, upper case, brackets, a non-ASCII letter."""
    return f"Field.Shot-{index:03d}_é({image_id[-2:]}).jpg"


def write_folder_dataset(synthetic_root, out, *, columns: bool = True):
    """The generated images saved under :func:`own_name`s, their masks beside, a labels CSV (class columns, or one
    list cell) of the labels the masks give; returns {"images", "labels", "masks"} and id -> multi-hot."""
    source = VOCLayout(synthetic_root, len(CLASSES))
    ids = source.read_ids("train_aug") + source.read_ids("val")
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    lines = ["image," + ",".join(CLASSES) if columns else "image,labels"]
    expected = {}
    for index, image_id in enumerate(ids):
        name = own_name(index, image_id)
        shutil.copy(source.image_path(image_id), out / "images" / name)
        shutil.copy(source.mask_path(image_id), out / "masks" / f"{name[:-4]}.png")
        present = np.unique(source.load_mask(image_id))
        multi_hot = np.array([c + 1 in present for c in range(len(CLASSES))], dtype=np.float32)
        expected[name[:-4]] = multi_hot
        names = [c for c, on in zip(CLASSES, multi_hot) if on]
        lines.append(f"{name}," + (",".join(str(int(v)) for v in multi_hot) if columns else ";".join(names)))
    (out / "labels.csv").write_text("\n".join(lines) + "\n")
    return {"images": str(out / "images"), "labels": str(out / "labels.csv"), "masks": str(out / "masks")}, expected


def folder_config(paths, **folder):
    config = tiny_config("own")
    config["data"].update(source="folder", classes=None)
    config["data"]["folder"].update(**paths, **folder)
    config["data"]["folder"]["val_fraction"] = 0.25
    config["data"]["splits"] = {"train": "train", "val": "val", "seed_eval": ["train", "val"]}
    config["deeplab"]["train_on_gt"] = False  # the upper bound adds a DeepLab run and says nothing of the folder source
    return config


def composed(config):
    merged, _ = compose_config([], config)
    check_config(merged)
    return merged


@pytest.mark.parametrize("columns", [True, False], ids=["class-columns", "list-cell"])
def test_prepare_folder_links_images_by_id_and_takes_the_files_labels(synthetic_root, tmp_path, columns):
    paths, expected = write_folder_dataset(synthetic_root, tmp_path / "own", columns=columns)
    table = read_label_table(paths["labels"], None if columns else CLASSES)
    assert table.classes == tuple(CLASSES) and len(table.rows) == 64
    counts = prepare_folder(**paths, split_lists=None, splits=["train", "val"], train_split="train", val_split="val",
                            val_fraction=0.25, classes=CLASSES, out_root=tmp_path / "root")
    assert counts == {"train": 48, "val": 16}
    layout = FolderLayout(tmp_path / "root", len(CLASSES))
    train, val = layout.read_ids("train"), layout.read_ids("val")
    assert set(train) | set(val) == set(expected) and not set(train) & set(val)
    assert (train, val) == default_split(list(expected), 0.25)
    image_id = val[0]
    assert "." in image_id and layout.image_path(image_id).name == f"{image_id}.jpg"
    assert layout.load_image(image_id).shape[:2] == layout.load_mask(image_id).shape
    labels = layout.image_labels(train + val)
    assert all(np.array_equal(labels[i], expected[i]) for i in expected)


def test_the_default_split_depends_on_the_ids_only():
    ids = [f"img{i}" for i in range(40)]
    train, val = default_split(ids, 0.1)
    assert len(val) == 4 and train + val != ids and sorted(train + val) == sorted(ids)
    assert default_split(list(reversed(ids)), 0.1)[1] == list(reversed(val))  # the same images, whatever the order
    assert set(default_split([*ids, "extra"], 0.1)[1]) - {"extra"} <= set(val) | set(ids)
    with pytest.raises(DatasetError, match="1 image"):
        default_split(["alone"], 0.5)


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines.append(lines[1]), r"line 66: id 'Field.Shot-000_é\(\w+\)' .* given twice; line 2 gives it too"),
    (lambda lines: lines.append("nowhere.jpg,1,0,0,0"), r"line 66: image 'nowhere.jpg' is not in"),
    (lambda lines: lines.__setitem__(3, lines[3].rsplit(",", 1)[0] + ",2"), r"line 4: column 'diamond' holds '2'"),
    (lambda lines: lines.__setitem__(5, lines[5].split(",")[0] + ",0,0,0,0"), r"line 6: .* has no class"),
    (lambda lines: lines.__setitem__(0, lines[0] + ",hexagon"), r"line 2: expected 6 cells"),
], ids=["duplicate-id", "missing-image", "bad-value", "no-class", "short-row"])
def test_bad_rows_are_refused_naming_the_row(synthetic_root, tmp_path, edit, message):
    paths, _ = write_folder_dataset(synthetic_root, tmp_path / "own")
    lines = (tmp_path / "own" / "labels.csv").read_text().splitlines()
    edit(lines)
    (tmp_path / "own" / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=message):
        prepare_folder(**paths, split_lists=None, splits=["train", "val"], train_split="train", val_split="val",
                       val_fraction=0.25, classes=CLASSES, out_root=tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_json_labels_unknown_class_and_disallowed_ids_are_refused(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a b.png", "ok.1.png", "ok.1.jpg", "fine.png"):
        (tmp_path / "images" / name).write_bytes(b"")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"classes": ["cat", "dog"], "images": {"fine.png": ["cat", "cow"]}}))
    with pytest.raises(DatasetError, match=r"labels.json, image 'fine.png': unknown class 'cow' \(the classes are cat, dog\)"):
        read_label_table(labels, None)
    from mctformer.data.folder import index_images

    labels.write_text(json.dumps({"a b.png": ["cat"]}))
    with pytest.raises(DatasetError, match=r"image 'a b.png': the id 'a b' of 'a b.png' is not allowed: ids are letters"):
        index_images(read_label_table(labels, None), tmp_path / "images")
    labels.write_text(json.dumps({"ok.1": ["cat"]}))
    with pytest.raises(DatasetError, match=r"'ok.1' matches 2 images \(ok.1.jpg, ok.1.png\)"):
        index_images(read_label_table(labels, None), tmp_path / "images")
    labels.write_text(json.dumps({"fine": ["dog"], "ok.1.png": ["cat", "dog"]}))
    table = read_label_table(labels, None)
    assert table.classes == ("cat", "dog")  # no list in the file: the names it uses, sorted
    assert index_images(table, tmp_path / "images") == {"fine": "fine.png", "ok.1": "ok.1.png"}


def test_the_class_list_comes_from_the_file_and_a_set_one_must_agree(synthetic_root, tmp_path):
    paths, _ = write_folder_dataset(synthetic_root, tmp_path / "own")
    assert composed(folder_config(paths))["data"]["classes"] == CLASSES
    config = folder_config(paths)
    config["data"]["classes"] = list(reversed(CLASSES))
    with pytest.raises(ConfigError, match=r"^data.classes: .* is not the class list of data.folder.labels"):
        composed(config)
    with pytest.raises(ConfigError, match=r"^data.folder.masks: required"):
        composed(folder_config({**paths, "masks": None}))
    config = folder_config(paths)
    config["data"]["splits"]["seed_eval"] = ["train", "test"]
    with pytest.raises(ConfigError, match=r"^data.splits: without data.folder.split_lists .* not 'test'"):
        composed(config)
    config = tiny_config()
    config["data"]["folder"]["labels"] = paths["labels"]
    with pytest.raises(ConfigError, match=r"^data.folder.labels: is ignored unless data.source is 'folder'"):
        composed(config)


def test_the_whole_chain_runs_on_a_folder_dataset(synthetic_root, tmp_path):
    """Generated images under non-VOC names, a labels CSV, masks and split lists (ids and file names mixed): the
    workflow prepares the root, takes the labels from the file and runs every stage to the report."""
    paths, expected = write_folder_dataset(synthetic_root, tmp_path / "own")
    ids = list(expected)
    (tmp_path / "own" / "lists").mkdir()
    (tmp_path / "own" / "lists" / "train.txt").write_text("".join(f"{i}.jpg\n" for i in ids[:48]))
    (tmp_path / "own" / "lists" / "val.txt").write_text("".join(f"{i}\n" for i in ids[48:]))
    config = folder_config(paths, split_lists=str(tmp_path / "own" / "lists"))
    result = snakemake(tmp_path, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "results" / "own"
    assert (run / "data" / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == ids[48:]
    labels = np.load(run / "labels" / "cls_labels.npy", allow_pickle=True).item()
    assert labels.keys() == expected.keys() and all(np.array_equal(labels[i], expected[i]) for i in ids)
    assert (run / "masks" / "pseudo" / f"{ids[0]}.png").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 < summary["deeplab"]["miou"] <= 1.0
    assert (run / "benchmarks" / "prepare_folder.tsv").is_file()
    # every trainer wrote its curve lines beside its CSV log, the epoch lines carrying the CSV's numbers, and the
    # report drew them
    from mctformer.training.curves import read_curves

    for log in ("classifier/log.csv", "psa/affinity_log.csv", "deeplab/log.csv"):
        rows = list(csv.DictReader(open(run / log)))
        epochs = [line for line in read_curves((run / log).with_suffix(".jsonl")) if line["kind"] == "epoch"]
        assert [f"{line['loss']:.6g}" for line in epochs] == [row["loss"] for row in rows]  # the CSV's %.6g of the same float
    assert (run / "figures" / "training_curves.png").stat().st_size > 0
    assert "![training curves](figures/training_curves.png)" in (run / "report.md").read_text()


@pytest.mark.parametrize("problem, message", [
    ("missing", r"mask .*\.png of image .* does not exist \(every image needs one for evaluation\)"),
    ("class", r"mask .*\.png holds class index 9, outside 0..4 \(and 255 = ignore\)"),
    ("size", r"mask .*\.png is 16x16 but its image .* is 32x32"),
])
def test_bad_masks_are_refused_naming_the_mask(synthetic_root, tmp_path, problem, message):
    from mctformer.artifacts import save_label_png, voc_palette

    paths, expected = write_folder_dataset(synthetic_root, tmp_path / "own")
    mask = tmp_path / "own" / "masks" / f"{list(expected)[5]}.png"
    if problem == "missing":
        mask.unlink()
    else:
        save_label_png(mask, np.full((32, 32) if problem == "class" else (16, 16), 9 if problem == "class" else 1, np.uint8), voc_palette())
    with pytest.raises(DatasetError, match=message):
        prepare_folder(**paths, split_lists=None, splits=["train", "val"], train_split="train", val_split="val",
                       val_fraction=0.25, classes=CLASSES, out_root=tmp_path / "root")
    assert not (tmp_path / "root").exists()
