"""``mctformer predict`` on the tiny run, and seeds.labels: predicted in the workflow (issue #28, items 1 and 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from helpers.workflow import REPO, TINY_SPEC, snakemake, tiny_config
from mctformer.artifacts import load_map_file, read_label_png
from mctformer.data.image_files import ImageFiles
from mctformer.data.labels import load_class_labels, predicted_labels
from mctformer.data.synthetic import render_image
from mctformer.data.transforms import normalize_image
from mctformer.data.voc import DatasetError
from mctformer.metrics import label_precision_recall, seed_prediction
from mctformer.stages.predict import read_given_labels

CLASSES = tiny_config()["data"]["classes"]
VARIANTS = tiny_config()["maps"]["variants"]
NEW_NAMES = ("garden photo", "IMG_0042", "my-shapes.v2")  # names no VOC id has: a space, an underscore, a dot


def run_predict(tiny_run: Path, images, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """The installed command's code path (`mctformer predict` = cli.main) in its own process, on the tiny run."""
    command = [sys.executable, "-m", "mctformer", "predict", *map(str, images), "--out", str(out),
               "--configfile", str(tiny_run / "config.tiny.yaml"), "--run", str(tiny_run / "results" / "tiny"), "--threads", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def new_images(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Three images of the tiny run's synthetic world that it never saw (indices past its splits), under new names;
    their ground-truth masks beside."""
    folder = tmp_path_factory.mktemp("new_images")
    first_unseen = TINY_SPEC.num_train_aug + TINY_SPEC.num_val
    masks = {}
    for offset, name in enumerate(NEW_NAMES):
        picture, mask = render_image(TINY_SPEC, first_unseen + offset)
        Image.fromarray(picture).save(folder / f"{name}.png")
        masks[name] = mask
    return folder, masks


def test_predict_writes_labels_maps_seeds_masks_and_a_contact_sheet_for_new_images(tiny_run, new_images, tmp_path):
    folder, _ = new_images
    out = tmp_path / "out"
    result = run_predict(tiny_run, [folder], out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "records another config" not in result.stderr  # the config resolved from the run's overlay is the run's
    table = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert sorted(table["image"]) == sorted(NEW_NAMES)
    # labels.csv is a labels file: read back, it gives the labels the maps were made for
    given = read_given_labels(str(out / "labels.csv"), NEW_NAMES, CLASSES)

    # the scores are the classifier's: sigmoid of its class-token logits on each image (32 px: the training size)
    from mctformer.training.classifier import load_classifier

    model = load_classifier(tiny_run / "results" / "tiny" / "classifier" / "checkpoint.pt", len(CLASSES), device="cpu")
    threshold = tiny_config()["seeds"]["label_threshold"]
    for _, row in table.iterrows():
        picture = np.asarray(Image.open(folder / f"{row['image']}.png").convert("RGB"))
        with torch.no_grad():
            expected = torch.sigmoid(model(normalize_image(picture)[None]).token_logits)[0].numpy()
        scores = row[[f"score_{name}" for name in CLASSES]].to_numpy(dtype=np.float64)
        np.testing.assert_allclose(scores, expected, atol=1e-5)
        chosen = [name for name, score in zip(CLASSES, expected) if score >= threshold] or [CLASSES[int(expected.argmax())]]
        assert row["labels"].split(";") == chosen and row["label_source"] == "predicted"
        assert [name for name, on in zip(CLASSES, given[row["image"]]) if on] == chosen

        image_id, size = row["image"], picture.shape[:2]
        values = [CLASSES.index(name) + 1 for name in chosen]
        for variant in VARIANTS:
            labels, maps = load_map_file(out / "maps" / variant / f"{image_id}.npz")
            assert labels.tolist() == values and maps.shape == (len(values), *size)
            assert maps.min() >= 0 and maps.max() <= 1
        seed = read_label_png(out / "seeds" / f"{image_id}.png")
        assert seed.shape == size and set(np.unique(seed)) <= {0, *values}
        for folder_name in ("masks", "deeplab/pred", "deeplab/pred_crf"):
            label = read_label_png(out / folder_name / f"{image_id}.png")
            assert label.shape == size and label.max() <= len(CLASSES)
        overlay = Image.open(out / "overlays" / f"{image_id}.png")
        # overlay_png: one row per variant, the image and one tile per class, each 3x zoomed
        assert overlay.size == (3 * size[1] * (1 + len(values)), 3 * size[0] * len(VARIANTS))
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.format == "PNG" and sheet.size[0] > 0
    assert not list(tmp_path.glob(".out.*"))  # the output folder appeared whole, no temporary left


def test_predict_gives_the_workflows_maps_seeds_masks_and_segmentation_for_its_own_images(tiny_run, tmp_path):
    """With the ground-truth labels given, predict on two train and two val images of the run reproduces the run's own
    artifacts for them: the maps of every variant, the seed at the walk's threshold, PSA's pseudo mask (train) and
    DeepLab's prediction with and without CRF (val)."""
    run = tiny_run / "results" / "tiny"
    lists = run / "data" / "ImageSets" / "Segmentation"
    train = lists.joinpath("train.txt").read_text().split()[:2]
    val = lists.joinpath("val.txt").read_text().split()[:2]
    images = [run / "data" / "JPEGImages" / f"{image_id}.jpg" for image_id in train + val]
    out = tmp_path / "out"
    result = run_predict(tiny_run, images, out, "--labels", str(run / "labels" / "cls_labels.npy"))
    assert result.returncode == 0, result.stderr[-3000:]
    config = tiny_config()
    best = json.loads((run / "seeds" / config["psa"]["threshold_split"] / config["psa"]["seed_variant"] / "best.json").read_text())
    for image_id in train + val:
        for variant in VARIANTS:
            ours, theirs = load_map_file(out / "maps" / variant / f"{image_id}.npz"), load_map_file(run / "maps" / variant / f"{image_id}.npz")
            np.testing.assert_array_equal(ours[0], theirs[0])
            np.testing.assert_array_equal(ours[1], theirs[1])
        labels, maps = load_map_file(run / "maps" / config["psa"]["seed_variant"] / f"{image_id}.npz")
        np.testing.assert_array_equal(read_label_png(out / "seeds" / f"{image_id}.png"), seed_prediction(labels, maps, np.float32(best["threshold"])))
    for image_id in train:
        np.testing.assert_array_equal(read_label_png(out / "masks" / f"{image_id}.png"), read_label_png(run / "masks" / "pseudo" / f"{image_id}.png"))
    for image_id in val:
        for folder in ("pred", "pred_crf"):
            np.testing.assert_array_equal(read_label_png(out / "deeplab" / folder / f"{image_id}.png"),
                                          read_label_png(run / "deeplab" / folder / f"{image_id}.png"))
    assert set(pd.read_csv(out / "scores.csv")["label_source"]) == {"given"}


def test_predict_refuses_a_checkpoint_of_another_class_list_naming_it(tiny_run, new_images, tmp_path):
    config = tiny_config()
    config["data"]["classes"] = [*CLASSES, "star"]
    overlay = tmp_path / "five_classes.yaml"
    overlay.write_text(yaml.safe_dump(config))
    checkpoint = tiny_run / "results" / "tiny" / "classifier" / "checkpoint.pt"
    command = [sys.executable, "-m", "mctformer", "predict", str(new_images[0]), "--out", str(tmp_path / "out"),
               "--configfile", str(overlay), "--classifier", str(checkpoint), "--seed-threshold", "0.3"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert f"classifier checkpoint {checkpoint} was trained for 4 classes, the config has 5" in result.stderr
    assert not (tmp_path / "out").exists()


def test_predict_refuses_a_bad_labels_file_in_one_line_and_writes_nothing(tiny_run, new_images, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("image,labels\n" + "".join(f"{name},{CLASSES[0]}\n" for name in NEW_NAMES[:-1]) + f"{NEW_NAMES[-1]},star\n")
    result = run_predict(tiny_run, [new_images[0]], tmp_path / "out", "--labels", str(labels))
    assert result.returncode == 1
    assert f"mctformer predict: labels file {labels}, line {len(NEW_NAMES) + 1}: unknown class 'star'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_predicted_labels_take_the_classes_at_the_threshold_else_the_top_one():
    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.4, 0.3], [0.49, 0.51, 0.6]], dtype=np.float32)
    np.testing.assert_array_equal(predicted_labels(scores, 0.5), [[1, 1, 0], [0, 1, 0], [0, 1, 1]])


def test_label_precision_recall_counts_per_class_and_marks_the_undefined():
    predicted = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]])
    truth = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])
    table = label_precision_recall(predicted, truth, ["a", "b", "c"]).set_index("class")
    assert table.loc["a", "precision"] == 0.5 and table.loc["a", "recall"] == 1.0
    assert table.loc["b", "precision"] == 1.0 and table.loc["b", "recall"] == 1.0
    assert np.isnan(table.loc["c", "precision"]) and np.isnan(table.loc["c", "recall"])
    assert table.loc["mean", "precision"] == 0.75 and table.loc["mean", "exact_match"] == pytest.approx(2 / 3)


def test_image_files_refuse_two_images_of_one_name(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "photo.png")
    with pytest.raises(DatasetError, match="the same name 'photo'"):
        ImageFiles([tmp_path / "a" / "photo.png", tmp_path / "b" / "photo.png"], 4)


def test_given_labels_read_the_folder_datasets_labels_files_naming_the_bad_row(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("image,labels\nphoto.jpg,disc;square\nother.png,star\n")
    with pytest.raises(DatasetError, match=r"labels.csv, line 3: unknown class 'star'"):
        read_given_labels(str(path), ["photo"], CLASSES)
    path.write_text("image,labels\nphoto.jpg,disc\nphoto.jpg,square\n")
    with pytest.raises(DatasetError, match=r"labels.csv, line 3: 'photo.jpg' is given twice"):
        read_given_labels(str(path), ["photo"], CLASSES)
    path.write_text("image,labels\nphoto.jpg,disc\n")
    with pytest.raises(DatasetError, match="has no labels for 1 images, e.g. other"):
        read_given_labels(str(path), ["photo", "other"], CLASSES)
    # with or without the extension, and a dotted name without one (labels.csv's own `image` column)
    path.write_text("image,labels\nphoto.jpg,disc;square\nmy-shapes.v2,diamond\n")
    labels = read_given_labels(str(path), ["photo", "my-shapes.v2"], CLASSES)
    np.testing.assert_array_equal(labels["photo"], [1, 1, 0, 0])
    np.testing.assert_array_equal(labels["my-shapes.v2"], [0, 0, 0, 1])
    # the class-column and JSON forms; a file with its own class list must have the run's
    path.write_text(f"image,{','.join(CLASSES)}\nphoto,0,1,0,1\n")
    np.testing.assert_array_equal(read_given_labels(str(path), ["photo"], CLASSES)["photo"], [0, 1, 0, 1])
    path.write_text("image,disc,star\nphoto,1,0\n")
    with pytest.raises(DatasetError, match="has the classes disc, star; the run has " + ", ".join(CLASSES)):
        read_given_labels(str(path), ["photo"], CLASSES)
    json_path = tmp_path / "labels.json"
    json_path.write_text(json.dumps({"photo.png": [CLASSES[2]]}))
    np.testing.assert_array_equal(read_given_labels(str(json_path), ["photo"], CLASSES)["photo"], [0, 0, 1, 0])


def test_predicted_label_seeds_on_val_beside_the_ground_truth_ones(tiny_run, tmp_path):
    """seeds.labels: [ground_truth, predicted] on the finished tiny run adds the classifier's labels, their maps and
    seed sweeps on both seed splits and the report's section, and leaves the ground-truth seeds as they were."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = tiny_config()
    config["seeds"]["labels"] = ["ground_truth", "predicted"]
    result = snakemake(workdir, config=config)
    assert result.returncode == 0, result.stderr[-3000:]
    run = workdir / "results" / "tiny"
    summary = json.loads((run / "summary.json").read_text())
    original = json.loads((tiny_run / "results" / "tiny" / "summary.json").read_text())
    assert summary["seeds"] == original["seeds"]
    splits = config["data"]["splits"]["seed_eval"]
    assert set(summary["seeds_predicted"]) == set(splits)
    assert all(0 <= summary["seeds_predicted"][split][variant]["miou"] <= 1 for split in splits for variant in VARIANTS)

    # the labels are the scores at the threshold, and the maps hold exactly them
    scores = pd.read_csv(run / "classifier" / "predicted" / "scores.csv", keep_default_na=False)
    predicted = load_class_labels(run / "classifier" / "predicted" / "cls_labels.npy")
    expected = predicted_labels(scores[[f"score_{name}" for name in CLASSES]].to_numpy(), config["seeds"]["label_threshold"])
    np.testing.assert_array_equal(np.stack([predicted[i] for i in scores["image"]]), expected)
    val_ids = (run / "data" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    labels, _ = load_map_file(run / "maps_predicted" / VARIANTS[0] / f"{val_ids[0]}.npz")
    assert labels.tolist() == (np.flatnonzero(predicted[val_ids[0]]) + 1).tolist()

    # precision / recall against the ground truth, recounted here
    truth = load_class_labels(run / "labels" / "cls_labels.npy")
    val = summary["classifier_labels"]["val"]
    hits = sum(predicted[i][0] * truth[i][0] for i in val_ids)
    assert val[CLASSES[0]]["recall"] == pytest.approx(hits / sum(truth[i][0] for i in val_ids))
    report = (run / "report.md").read_text()
    assert "### Seeds from the classifier's labels" in report and "exact label sets" in report


def test_predict_notes_a_config_other_than_the_runs(tmp_path, capsys):
    from mctformer.cli import note_another_config
    from mctformer.provenance import config_hash

    config = tiny_config()
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"provenance": {"config_sha256": config_hash(config)}}))
    note_another_config(config, str(summary))
    assert capsys.readouterr().err == ""
    config["maps"]["last_k"] = 2
    note_another_config(config, str(summary))
    assert f"{summary} records another config" in capsys.readouterr().err
