"""Building the VOC 2012 + SBD and COCO 2014 roots from (fixture copies of) the official releases."""

import io
import json
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy.io import savemat

from helpers.workflow import REPO, tiny_config
from mctformer.artifacts import read_label_png, voc_palette
from mctformer.cli import main as cli_main
from mctformer.data.coco import COCO_CLASSES
from mctformer.data.labels import build_class_labels, load_class_labels
from mctformer.data.layout import open_layout
from mctformer.data.prepare import coco_category_index, coco_class_mask, prepare_coco14, prepare_voc12, train_aug_ids
from mctformer.data.voc import VOC_CLASSES, DatasetError, VOCLayout

# ------------------------------------------------------------------ VOC + SBD --
# VOC train a1 a2, val v1 v2; SBD train s1 a1 v1, val s2 s3. a1 is in SBD and VOC train (VOC's mask
# wins); v1 is in SBD train and VOC val (left out of train_aug); x9 has an image but no list.
VOC_TRAIN, VOC_VAL = ["2007_000001", "2007_000002"], ["2007_000003", "2007_000004"]
SBD_TRAIN, SBD_VAL = ["2008_000010", "2007_000001", "2007_000003"], ["2008_000011", "2008_000012"]
UNLISTED = "2009_000099"
SIZES = {"2007_000001": (6, 8), "2007_000002": (5, 7), "2007_000003": (6, 6), "2007_000004": (4, 9),
         "2008_000010": (7, 5), "2008_000011": (6, 8), "2008_000012": (5, 5), UNLISTED: (4, 4)}
SBD_CLASS = {"2008_000010": 7, "2007_000001": 5, "2007_000003": 9, "2008_000011": 20, "2008_000012": 12}
VOC_CLASS = {"2007_000001": 3, "2007_000002": 15, "2007_000003": 1, "2007_000004": 11}


def object_mask(image_id, value, border):
    height, width = SIZES[image_id]
    mask = np.zeros((height, width), np.uint8)
    mask[1:-1, 1:-1] = value
    if border:  # VOC's 255 band around objects
        mask[0, :] = 255
    return mask


def jpeg_bytes(image_id):
    height, width = SIZES[image_id]
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_bytes(mask):
    buffer = io.BytesIO()
    image = Image.fromarray(mask, mode="P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mat_bytes(mask):
    """SBD's cls/<id>.mat: a struct GTcls with Segmentation, Boundaries and CategoriesPresent."""
    buffer = io.BytesIO()
    present = np.unique(mask[mask > 0]).astype(np.uint8)
    savemat(buffer, {"GTcls": {"Segmentation": mask, "Boundaries": np.zeros((1, 1), object), "CategoriesPresent": present}})
    return buffer.getvalue()


def voc_files(prefix="VOCdevkit/VOC2012/"):
    files = {f"{prefix}JPEGImages/{i}.jpg": jpeg_bytes(i) for i in SIZES}
    for image_id, value in VOC_CLASS.items():
        files[f"{prefix}SegmentationClass/{image_id}.png"] = png_bytes(object_mask(image_id, value, border=True))
    files[f"{prefix}ImageSets/Segmentation/train.txt"] = "\n".join(VOC_TRAIN).encode() + b"\n"
    files[f"{prefix}ImageSets/Segmentation/val.txt"] = "\n".join(VOC_VAL).encode() + b"\n"
    files[f"{prefix}ImageSets/Segmentation/trainval.txt"] = "\n".join(VOC_TRAIN + VOC_VAL).encode() + b"\n"
    files[f"{prefix}Annotations/{VOC_TRAIN[0]}.xml"] = b"<annotation/>"
    return files


def sbd_files(prefix="benchmark_RELEASE/dataset/"):
    files = {f"{prefix}cls/{i}.mat": mat_bytes(object_mask(i, value, border=False)) for i, value in SBD_CLASS.items()}
    files[f"{prefix}inst/{SBD_TRAIN[0]}.mat"] = b"not read"
    files[f"{prefix}train.txt"] = "\n".join(SBD_TRAIN).encode() + b"\n"
    files[f"{prefix}val.txt"] = "\n".join(SBD_VAL).encode() + b"\n"
    return files


def write_tar(path, files, mode="w"):
    with tarfile.open(path, mode) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_folder(root, files):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    base = tmp_path_factory.mktemp("releases")
    return {
        "voc_tar": write_tar(base / "VOCtrainval_11-May-2012.tar", voc_files()),
        "sbd_tgz": write_tar(base / "benchmark.tgz", sbd_files(), mode="w:gz"),
        "voc_dir": write_folder(base / "extracted", voc_files()) / "VOCdevkit" / "VOC2012",
        "sbd_dir": write_folder(base / "extracted", sbd_files()) / "benchmark_RELEASE",
    }


EXPECTED_TRAIN_AUG = sorted({"2008_000010", "2007_000001", "2008_000011", "2008_000012", "2007_000002"})


def test_train_aug_is_sbd_and_voc_train_minus_voc_val():
    assert train_aug_ids(SBD_TRAIN, SBD_VAL, VOC_TRAIN, VOC_VAL) == EXPECTED_TRAIN_AUG
    assert "2007_000003" not in EXPECTED_TRAIN_AUG  # in SBD train, but VOC val


@pytest.mark.parametrize("voc_key, sbd_key", [("voc_tar", "sbd_tgz"), ("voc_dir", "sbd_dir")])
def test_prepare_voc12(releases, tmp_path, voc_key, sbd_key, capsys):
    out = tmp_path / "data"
    counts = prepare_voc12(releases[voc_key], releases[sbd_key], out)
    assert counts == {"train_aug": 5, "train": 2, "val": 2}
    layout = VOCLayout(out, len(VOC_CLASSES))
    assert layout.mask_dir.name == "SegmentationClassAug"
    assert layout.read_ids("train_aug") == EXPECTED_TRAIN_AUG
    assert layout.read_ids("train") == VOC_TRAIN and layout.read_ids("val") == VOC_VAL
    # VOC's mask (class 3, 255 band) overrides SBD's (class 5) for an id in both
    assert set(np.unique(layout.load_mask("2007_000001")).tolist()) == {0, 3, 255}
    # SBD-only ids get the .mat mask; VOC val gets VOC's own
    assert np.array_equal(layout.load_mask("2008_000010"), object_mask("2008_000010", 7, border=False))
    assert set(np.unique(layout.load_mask("2007_000003")).tolist()) == {0, 1, 255}
    # only listed images are taken; the layout's own size checks pass
    assert not (out / "JPEGImages" / f"{UNLISTED}.jpg").exists()
    assert sorted(p.stem for p in (out / "JPEGImages").iterdir()) == sorted(EXPECTED_TRAIN_AUG + VOC_VAL)
    assert (out / "JPEGImages" / "2007_000002.jpg").is_symlink() == (voc_key == "voc_dir")
    labels = load_class_labels(out / "cls_labels.npy", EXPECTED_TRAIN_AUG + VOC_VAL, num_classes=20)
    assert len(labels) == 7
    assert np.flatnonzero(labels["2007_000001"]).tolist() == [2]  # class 3 (VOC), not 5 (SBD)
    assert np.flatnonzero(labels["2008_000011"]).tolist() == [19]
    rebuilt = build_class_labels(layout, list(labels), workers=1)
    assert all(np.array_equal(rebuilt[i], labels[i]) for i in labels)
    assert "note: train_aug has 5 images; the official release gives 10582" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary left beside it


def test_prepare_voc12_without_sbd_and_with_test(releases, tmp_path, capsys):
    test_tar = write_tar(tmp_path / "VOC2012test.tar", {
        "VOCdevkit/VOC2012/ImageSets/Segmentation/test.txt": f"{UNLISTED}\n".encode(),
        f"VOCdevkit/VOC2012/JPEGImages/{UNLISTED}.jpg": jpeg_bytes(UNLISTED),
    })
    out = tmp_path / "data"
    counts = prepare_voc12(releases["voc_tar"], None, out, test=test_tar)
    assert counts == {"train_aug": 2, "train": 2, "val": 2, "test": 1}
    assert "warning: no SBD given" in capsys.readouterr().out
    layout = VOCLayout(out, 20)
    assert layout.read_ids("train_aug") == VOC_TRAIN and layout.read_ids("test") == [UNLISTED]


def test_bad_releases_are_named_and_leave_nothing(releases, tmp_path):
    out = tmp_path / "data"
    with pytest.raises(DatasetError, match="does not exist"):
        prepare_voc12(tmp_path / "missing.tar", None, out)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(DatasetError, match="junk.tar is not a readable tar archive"):
        prepare_voc12(tmp_path / "junk.tar", None, out)
    with pytest.raises(DatasetError, match=r"SBD: archive .*VOCtrainval_11-May-2012.tar holds no train.txt and val.txt and cls/"):
        prepare_voc12(releases["voc_tar"], releases["voc_tar"], out)  # the VOC tar given as SBD
    files = sbd_files()
    del files["benchmark_RELEASE/dataset/cls/2008_000011.mat"]
    with pytest.raises(DatasetError, match=r"SBD: 1 of 3 files are missing, e\.g\. .*sbd\.tgz:benchmark_RELEASE/dataset/cls/2008_000011\.mat"):
        prepare_voc12(releases["voc_tar"], write_tar(tmp_path / "sbd.tgz", files, "w:gz"), out)
    files = sbd_files()
    files["benchmark_RELEASE/dataset/cls/2008_000011.mat"] = b"MATLAB 5.0 garbage"
    with pytest.raises(DatasetError, match=r"2008_000011\.mat is not a readable \.mat file"):
        prepare_voc12(releases["voc_tar"], write_tar(tmp_path / "sbd2.tgz", files, "w:gz"), out)
    files = sbd_files()
    files["benchmark_RELEASE/dataset/cls/2008_000011.mat"] = mat_bytes(np.zeros((3, 3), np.uint8))  # image is 8x6
    with pytest.raises(DatasetError, match=r"mask of 2008_000011 is 3x3 but its image .*2008_000011\.jpg is 8x6"):
        prepare_voc12(releases["voc_tar"], write_tar(tmp_path / "sbd3.tgz", files, "w:gz"), out)
    files = voc_files()
    files["VOCdevkit/VOC2012/SegmentationClass/2007_000002.png"] = png_bytes(np.full((5, 7), 21, np.uint8))
    with pytest.raises(DatasetError, match=r"2007_000002\.png holds class index 21"):
        prepare_voc12(write_tar(tmp_path / "voc.tar", files), None, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.tar", "sbd.tgz", "sbd2.tgz", "sbd3.tgz", "voc.tar"]


# ----------------------------------------------------------------------- COCO --
# The 80 COCO category ids (1..90 with gaps), listed out of order in the JSON.
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
H, W = 16, 20


def categories():
    entries = [{"id": cid, "name": name, "supercategory": "x"} for cid, name in zip(COCO_IDS, COCO_CLASSES)]
    return entries[::-1]


def rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def uncompressed_rle(mask):
    """COCO's iscrowd format: run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def compressed_rle(mask):
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def coco_fixture(root):
    stop_sign = np.zeros((H, W), np.uint8)
    stop_sign[0:3, 14:20] = 1
    crowd = np.zeros((H, W), np.uint8)
    crowd[13:16, :] = 1
    train_images = [
        {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": H, "width": W},
        {"id": 25, "file_name": "COCO_train2014_000000000025.jpg", "height": H, "width": W},  # crowd only
        {"id": 30, "file_name": "COCO_train2014_000000000030.jpg", "height": H, "width": W},  # nothing
    ]
    train_annotations = [
        # listed small-first: the order of painting comes from the areas, not the file
        {"id": 2, "image_id": 9, "category_id": 90, "iscrowd": 0, "area": 16.0, "segmentation": rect(6, 6, 10, 10)},
        {"id": 1, "image_id": 9, "category_id": 1, "iscrowd": 0, "area": 100.0, "segmentation": rect(2, 2, 12, 12)},
        {"id": 3, "image_id": 9, "category_id": 13, "iscrowd": 0, "area": 18.0, "segmentation": compressed_rle(stop_sign)},
        {"id": 4, "image_id": 9, "category_id": 1, "iscrowd": 1, "area": 60.0, "segmentation": uncompressed_rle(crowd)},
        {"id": 5, "image_id": 9, "category_id": 3, "iscrowd": 0, "area": 12.0, "segmentation": rect(15, 12, 19, 16)},
        {"id": 6, "image_id": 25, "category_id": 1, "iscrowd": 1, "area": 60.0, "segmentation": uncompressed_rle(crowd)},
    ]
    val_images = [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "height": H, "width": W}]
    val_annotations = [{"id": 7, "image_id": 42, "category_id": 90, "iscrowd": 0, "area": 30.0, "segmentation": rect(1, 1, 7, 6)}]
    (root / "annotations").mkdir(parents=True)
    for split, images, annotations in (("train", train_images, train_annotations), ("val", val_images, val_annotations)):
        (root / "annotations" / f"instances_{split}2014.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories()})
        )
        (root / "images" / f"{split}2014").mkdir(parents=True)
        for image in images:
            Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "images" / f"{split}2014" / image["file_name"])
    return root / "images", root / "annotations"


def test_category_ids_map_to_contiguous_values():
    index = coco_category_index(categories(), "x.json")
    assert index[1] == 1 and index[13] == 12 and index[90] == 80  # 12 is no category: stop sign (13) is the 12th class
    assert sorted(index.values()) == list(range(1, 81))
    renamed = categories()
    renamed[0] = dict(renamed[0], name="tooth brush")
    with pytest.raises(DatasetError, match="x.json: categories are not the 80 COCO classes"):
        coco_category_index(renamed, "x.json")


def test_coco_mask_overlaps_by_area_crowd_and_rles(tmp_path):
    _, annotations_dir = coco_fixture(tmp_path)
    content = json.loads((annotations_dir / "instances_train2014.json").read_text())
    index = coco_category_index(content["categories"], "")
    mask = coco_class_mask(H, W, [a for a in content["annotations"] if a["image_id"] == 9], index)
    assert mask[4, 4] == 1        # person (polygon)
    assert mask[8, 8] == 80       # toothbrush inside the person: the smaller object is painted last
    assert (mask[0:3, 14:20] == 12).all() and mask[3, 16] == 0   # stop sign: compressed RLE, exact
    assert (mask[13:16, 0:12] == 255).all()                     # crowd: ignored ...
    assert (mask[13:15, 16:19] == 3).all()                      # ... except where an object (car) lies on it
    assert mask[0, 0] == 0 and mask[8, 16] == 0
    assert set(np.unique(mask).tolist()) == {0, 1, 3, 12, 80, 255}


def test_prepare_coco14_is_read_by_the_coco_layout(tmp_path, capsys):
    images, annotations = coco_fixture(tmp_path)
    out = tmp_path / "coco"
    counts = prepare_coco14(images, annotations, out, workers=1)
    assert counts == {"train": 1, "val": 1}
    assert "2 of 3 images have no visible object" in capsys.readouterr().out
    layout = open_layout(out, "coco", 80)
    assert layout.read_ids("train") == ["COCO_train2014_000000000009"]
    assert layout.read_ids("val") == ["COCO_val2014_000000000042"]
    assert (out / "train2014").is_symlink()
    labels = load_class_labels(out / "cls_labels.npy", layout.read_ids("train") + layout.read_ids("val"), num_classes=80)
    assert np.flatnonzero(labels["COCO_train2014_000000000009"]).tolist() == [0, 2, 11, 79]
    assert np.flatnonzero(labels["COCO_val2014_000000000042"]).tolist() == [79]
    mask = layout.load_mask("COCO_train2014_000000000009", expected_shape=(H, W))
    assert mask[8, 8] == 80 and mask[14, 2] == 255
    (images / "val2014" / "COCO_val2014_000000000042.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 images of .*instances_val2014\.json are missing, e\.g\. .*COCO_val2014_000000000042\.jpg"):
        prepare_coco14(images, annotations, tmp_path / "again", workers=1)
    (annotations / "instances_val2014.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"instances_val2014\.json are unreadable or corrupt"):
        prepare_coco14(images, annotations, tmp_path / "again", workers=1)
    assert not (tmp_path / "again").exists()


def test_command_line_prepares_both(releases, tmp_path):
    assert cli_main(["prepare-voc12", str(releases["voc_tar"]), str(tmp_path / "voc"), "--sbd", str(releases["sbd_dir"])]) == 0
    assert VOCLayout(tmp_path / "voc", 20).read_ids("train_aug") == EXPECTED_TRAIN_AUG
    images, annotations = coco_fixture(tmp_path / "src")
    assert cli_main(["prepare-coco14", str(images), str(annotations), str(tmp_path / "coco"), "--workers", "2"]) == 0
    assert read_label_png(tmp_path / "coco" / "SegmentationClass" / "COCO_val2014_000000000042.png")[3, 3] == 80


# ------------------------------------------------------------------- workflow --

def archive_config(releases, run_name="voc_archives"):
    config = tiny_config(run_name)
    config["data"].update(source="voc", root=None, classes=list(VOC_CLASSES), palette=None,
                          archives={"voc": str(releases["voc_tar"]), "sbd": str(releases["sbd_tgz"])})
    return config


def test_prepare_rule_through_snakemake(releases, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(archive_config(releases)))
    target = "results/voc_archives/labels/cls_labels.npy"
    command = [sys.executable, "-m", "snakemake", "--cores", "1", target, "-s", str(REPO / "Snakefile"),
               "--directory", str(tmp_path), "--configfile", str(config_path)]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.time() - started < 60
    run = tmp_path / "results" / "voc_archives"
    assert VOCLayout(run / "data", 20).read_ids("train_aug") == EXPECTED_TRAIN_AUG
    assert (run / "logs" / "prepare_voc12.log").exists() and (run / "benchmarks" / "prepare_voc12.tsv").exists()
    labels = np.load(run / "labels" / "cls_labels.npy", allow_pickle=True).item()
    prepared = np.load(run / "data" / "cls_labels.npy", allow_pickle=True).item()
    assert set(labels) == set(prepared) and all(np.array_equal(labels[i], prepared[i]) for i in labels)


def test_archive_config_checks(releases, tmp_path):
    from snakemake.utils import validate

    from mctformer.config import ConfigError, check_config, data_root

    config = archive_config(releases)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    check_config(config)
    assert data_root(config, "results/x") == "results/x/data"
    bad = [
        (lambda c: c["data"].update(root=str(tmp_path)), "give one of them"),
        (lambda c: c["data"]["archives"].update(voc=str(tmp_path / "nope.tar")), "data.archives.voc: .*nope.tar does not exist"),
        (lambda c: c["data"]["archives"].update(images=str(tmp_path)), "data.archives.images: not used for data.source 'voc'"),
        (lambda c: c["data"]["splits"].update(val="trainval"), "data.splits: the prepared voc root"),
        (lambda c: c["deeplab"].update(test_split="test"), "deeplab.test_split: 'test' is not prepared"),
        (lambda c: c["data"].update(source="coco"), "data.archives.voc: not used for data.source 'coco'"),
    ]
    for edit, message in bad:
        changed = archive_config(releases)
        edit(changed)
        with pytest.raises(ConfigError, match=message):
            check_config(changed)
