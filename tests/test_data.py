import os

import numpy as np
import pytest

from helpers.data import write_voc_root
from mctformer.artifacts import save_label_png, voc_palette
from mctformer.data.coco import COCOLayout
from mctformer.data.labels import build_class_labels, labels_from_mask, load_class_labels, save_class_labels
from mctformer.data.layout import open_layout
from mctformer.data.voc import DatasetError, VOCLayout


def hand_masks():
    a = np.zeros((6, 8), np.uint8)
    a[1:3, 1:3] = 2
    a[0, :] = 255
    b = np.zeros((6, 8), np.uint8)
    b[2:5, 2:6] = 1
    b[4, 6] = 3
    c = np.full((6, 8), 255, np.uint8)
    c[3, 3] = 0
    return {"img_a": a, "img_b": b, "img_c": c}


def test_class_labels_from_hand_made_root(tmp_path):
    root = write_voc_root(tmp_path / "voc", hand_masks(), {"train": ["img_a", "img_b", "img_c"]})
    layout = VOCLayout(root, num_classes=3)
    labels = build_class_labels(layout, layout.read_ids("train"), workers=1)
    assert labels["img_a"].tolist() == [0, 1, 0]
    assert labels["img_b"].tolist() == [1, 0, 1]
    assert labels["img_c"].tolist() == [0, 0, 0]
    assert all(v.dtype == np.float32 for v in labels.values())
    save_class_labels(tmp_path / "cls_labels.npy", labels)
    loaded = load_class_labels(tmp_path / "cls_labels.npy", ["img_a", "img_b"], num_classes=3)
    assert {k: v.tolist() for k, v in loaded.items()} == {k: v.tolist() for k, v in labels.items()}
    # the reference's format: a pickled dict loaded with .item()
    raw = np.load(tmp_path / "cls_labels.npy", allow_pickle=True).item()
    assert set(raw) == {"img_a", "img_b", "img_c"}
    with pytest.raises(DatasetError, match="no labels for 1 ids, e.g. img_z"):
        load_class_labels(tmp_path / "cls_labels.npy", ["img_a", "img_z"])


def test_labels_from_mask_ignores_background_and_255():
    assert labels_from_mask(np.array([[0, 255], [4, 4]], np.uint8), 5).tolist() == [0, 0, 0, 1, 0]


def test_coco_layout_reads_official_folders(tmp_path):
    root = tmp_path / "coco"
    ids = ["COCO_train2014_000000000009", "COCO_val2014_000000000042"]
    for folder, image_id in zip(["train2014", "val2014"], ids):
        (root / folder).mkdir(parents=True)
        from PIL import Image

        Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(root / folder / f"{image_id}.jpg")
    (root / "SegmentationClass").mkdir()
    mask = np.zeros((5, 7), np.uint8)
    mask[1, 1] = 80
    for image_id in ids:
        save_label_png(root / "SegmentationClass" / f"{image_id}.png", mask, voc_palette())
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids))
    layout = open_layout(root, "coco", 80)
    assert isinstance(layout, COCOLayout)
    assert layout.read_ids("train") == ids
    assert layout.image_path(ids[1]).parent.name == "val2014"
    labels = build_class_labels(layout, ids, workers=1)
    assert labels[ids[0]][79] == 1 and labels[ids[0]].sum() == 1


# ---- bad input: one clear error naming the file ---------------------------------------------

@pytest.fixture
def voc_root(tmp_path):
    return write_voc_root(tmp_path / "voc", hand_masks(), {"train": ["img_a", "img_b"], "val": ["img_c"]})


def test_missing_root_is_named(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        VOCLayout(tmp_path / "nowhere", 3)


def test_list_naming_missing_image(voc_root):
    (voc_root / "ImageSets" / "Segmentation" / "bad.txt").write_text("img_a\nimg_missing\n")
    with pytest.raises(DatasetError, match=r"bad.txt names img_missing.*img_missing.jpg does not exist"):
        VOCLayout(voc_root, 3).read_ids("bad")


def test_empty_and_duplicate_lists(voc_root):
    lists = voc_root / "ImageSets" / "Segmentation"
    (lists / "empty.txt").write_text("\n")
    (lists / "dup.txt").write_text("img_a\nimg_a\n")
    layout = VOCLayout(voc_root, 3)
    with pytest.raises(DatasetError, match="empty.txt is empty"):
        layout.read_ids("empty")
    with pytest.raises(DatasetError, match="dup.txt names img_a twice"):
        layout.read_ids("dup")
    with pytest.raises(DatasetError, match="nolist.txt does not exist"):
        layout.read_ids("nolist")


def test_mask_class_outside_class_list(voc_root):
    layout = VOCLayout(voc_root, 2)  # img_b holds class 3
    with pytest.raises(DatasetError, match=r"img_b.png holds class index 3, outside 0..2"):
        layout.load_mask("img_b")


def test_corrupt_jpeg_and_truncated_png(voc_root):
    layout = VOCLayout(voc_root, 3)
    (voc_root / "JPEGImages" / "img_a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match="img_a.jpg is unreadable or corrupt"):
        layout.load_image("img_a")
    png = voc_root / "SegmentationClassAug" / "img_b.png"
    png.write_bytes(png.read_bytes()[:40])
    with pytest.raises(DatasetError, match="img_b.png is unreadable or corrupt"):
        layout.load_mask("img_b")


def test_mask_size_mismatch(voc_root):
    layout = VOCLayout(voc_root, 3)
    with pytest.raises(DatasetError, match="img_a.png is 8x6 but its image is 9x6"):
        layout.load_mask("img_a", expected_shape=(6, 9))


def test_command_line_builds_labels_and_scores_masks(synthetic_root, tmp_path, capsys):
    import yaml

    from helpers.workflow import TINY_SPEC, tiny_config
    from mctformer.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    assert main(["labels", str(synthetic_root), str(tmp_path / "cls.npy"), "--split", "val", "--config", str(config)]) == 0
    labels = load_class_labels(tmp_path / "cls.npy", num_classes=TINY_SPEC.num_classes)
    assert len(labels) == TINY_SPEC.num_val
    # the ground truth scored against itself is perfect
    assert main(["evaluate", str(synthetic_root), str(synthetic_root / "SegmentationClassAug"), "--split", "val", "--config", str(config)]) == 0
    assert "mIoU 1.0000" in capsys.readouterr().out


def test_classification_transform_is_bicubic_with_one_erasing():
    """The paper config's DeiT pipeline: bicubic random resized crops and one random-erasing box of per-pixel noise."""
    from timm.data.random_erasing import RandomErasing

    from helpers.workflow import paper_config
    from mctformer.data.transforms import classification_transform

    classifier = paper_config("voc12")["classifier"]
    steps = classification_transform(classifier["input_size"], True, classifier["augment"]).transforms
    crop = steps[0]
    assert type(crop).__name__ == "RandomResizedCropAndInterpolation" and str(crop.interpolation).lower().endswith("bicubic")
    erasing = [step for step in steps if isinstance(step, RandomErasing)]
    assert len(erasing) == 1 and erasing[0].max_count == 1 and erasing[0].mode == "pixel" and erasing[0].probability == 0.25
    evaluation = classification_transform(classifier["input_size"], False, classifier["augment"]).transforms
    assert evaluation[0].size == 256 and evaluation[1].size == (224, 224)


def assert_equal_samples_under_one_seed(first, second) -> None:
    """Sample i of both crop datasets, each drawn under torch seed i: the images and the labels (or grids) are equal."""
    import torch

    for index in range(len(first)):
        torch.manual_seed(index)
        image, label = first[index]
        torch.manual_seed(index)
        other_image, other_label = second[index]
        assert torch.equal(image, other_image) and torch.equal(label, other_label)


def test_in_memory_crops_equal_the_per_sample_reads_and_touch_no_file(synthetic_root):
    """deeplab.in_memory / affinity.in_memory: each image and label decoded once, at construction; the crops
    under one seed are the ones read from disk give, and nothing is read afterwards."""
    from helpers.workflow import TINY_SPEC
    from mctformer.data.datasets import SegmentationCropDataset

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("train")[:3]
    reads = []

    def counted_mask(image_id):
        reads.append(image_id)
        return layout.load_mask(image_id)

    common = dict(crop_size=40, scale_range=(0.7, 1.3), flip=True, color_jitter=None, pad_image="mean", pad_label=255,
                  placement="top_left")
    from_disk = SegmentationCropDataset(layout, ids, layout.load_mask, **common, in_memory=False)
    held = SegmentationCropDataset(layout, ids, counted_mask, **common, in_memory=True)
    assert reads == ids  # every label once, at construction

    class Unreadable:
        def load_image(self, image_id):
            raise AssertionError(f"read {image_id} from disk")

    held.layout = Unreadable()  # a held dataset must not go back to the layout
    assert_equal_samples_under_one_seed(from_disk, held)
    assert reads == ids
    with pytest.raises(KeyError):
        held.load_image("not_an_id")


def test_in_memory_affinity_crops_hold_the_pooled_scores_they_read(synthetic_root, tmp_path, monkeypatch):
    """affinity.grid_labels pooled_scores with in_memory: the .npz scores (what a sample reads) are held, each read
    once, and the grid labels are those read per sample give."""
    from helpers.workflow import TINY_SPEC
    from mctformer.psa.labels import save_confident_scores
    from mctformer.training import affinity as affinity_module

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("train")[:2]
    rng = np.random.default_rng(0)
    for image_id in ids:
        height, width = layout.load_image(image_id).shape[:2]
        scores = rng.random((2, 2, height, width)).astype(np.float32)  # background + one class, la and ha
        save_confident_scores(str(tmp_path / f"{image_id}.npz"), np.array([1]), scores[0], scores[1])
    reads = []
    load = affinity_module.load_confident_scores
    monkeypatch.setattr(affinity_module, "load_confident_scores", lambda path: reads.append(path) or load(path))
    common = dict(crop_size=32, scale_range=(0.9, 1.1), flip=True, color_jitter=None, pad_image="mean", placement="top_left")
    per_sample = affinity_module.AffinityCropDataset(layout, ids, tmp_path, "pooled_scores", 4, **common, in_memory=False)
    assert reads == []
    held = affinity_module.AffinityCropDataset(layout, ids, tmp_path, "pooled_scores", 4, **common, in_memory=True)
    assert [os.path.basename(path).removesuffix(".npz") for path in reads] == ids  # each score file once, at construction; no label PNG exists
    reads.clear()
    assert_equal_samples_under_one_seed(per_sample, held)
    assert len(reads) == len(ids)  # only the per-sample dataset read them again
