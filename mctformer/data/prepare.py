"""Build the pipeline's dataset roots from the official releases.

``prepare_voc12``: PASCAL VOC 2012 trainval (``VOCtrainval_11-May-2012.tar`` or
its extracted ``VOCdevkit/VOC2012``) plus SBD (``benchmark.tgz`` or its
extracted ``benchmark_RELEASE``) into the VOCLayout tree the stages read:

    JPEGImages/<id>.jpg                      (extracted from a tar; symlinked from a folder)
    SegmentationClassAug/<id>.png            SBD masks (GTcls.Segmentation), VOC's own where both exist
    ImageSets/Segmentation/{train_aug,train,val}.txt  (+ test.txt from the optional test release)
    cls_labels.npy                           id -> float32 multi-hot over the 20 classes

``train_aug`` is (SBD train + SBD val + VOC train) minus VOC val: 10,582 ids on
the official files, the list every WSSS paper since PSA trains on (the
reference code ships the list but no code to make it).

``prepare_coco14``: MS COCO 2014 (``train2014/``, ``val2014/`` and
``annotations/instances_{train,val}2014.json``) into the COCOLayout tree:

    train2014/, val2014/                     symlinks to the image folders (120k images are not copied)
    SegmentationClass/<id>.png               0 = background, 1..80, 255 = crowd
    ImageSets/Segmentation/{train,val}.txt   images with at least one visible object
    cls_labels.npy

Archives are read member by member with ``tarfile`` (nothing is extracted to
a scratch folder first), in archive order, so a gzipped archive is decompressed
sequentially rather than seeked in. Every output tree is filled in a temporary
folder and renamed when complete. Errors are ``DatasetError`` naming the file.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..artifacts import atomic_directory, save_label_png, voc_palette, write_json
from ..logs import progress_bar
from ..parallel import map_in_processes
from .coco import COCO_CLASSES
from .labels import labels_from_mask, save_class_labels
from .voc import IGNORE, VOC_CLASSES, DatasetError

# The official sizes; other inputs (fixtures, subsets) are fine, they only get a note in the log.
VOC_OFFICIAL_COUNTS = {"train_aug": 10582, "train": 1464, "val": 1449}
COCO_OFFICIAL_COUNTS = {"train": 82081, "val": 40137}

LIST_DIR = Path("ImageSets") / "Segmentation"


# ------------------------------------------------------------------ releases --

class Release:
    """The files of one dataset release, read from a tar archive (any compression) or its extracted folder.

    The release root is found by ``markers`` (files relative to it, e.g.
    ``ImageSets/Segmentation/val.txt``) and ``folders`` (that must hold files),
    so ``VOCdevkit/``, ``VOCdevkit/VOC2012/`` or the archive itself may be
    given. Paths below are relative to that root.
    """

    def __init__(self, path: str | os.PathLike, markers: Sequence[str], what: str, folders: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.what = what
        self.folders = tuple(folders)
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        self.prefix = ""  # of the release root inside an archive
        if self.path.is_dir():
            self.root = self._find_folder_root(markers)
        elif self.path.is_file():
            self.root = Path()
            try:
                self._tar = tarfile.open(self.path, "r:*")
                members = self._tar.getmembers()
                prefix = self.prefix = self._find_archive_prefix(members, markers)
            except (tarfile.TarError, OSError, EOFError) as error:
                self.close()
                raise DatasetError(f"{what}: {self.path} is not a readable tar archive: {error}") from error
            except DatasetError:
                self.close()
                raise
            self._members = {
                member.name.removeprefix("./")[len(prefix):]: member
                for member in members
                if member.isfile() and member.name.removeprefix("./").startswith(prefix)
            }
        else:
            raise DatasetError(f"{what}: {self.path} does not exist")

    def _find_folder_root(self, markers: Sequence[str]) -> Path:
        # The given folder or up to two levels below it (VOCdevkit/VOC2012, benchmark_RELEASE/dataset).
        for pattern in ("", "*/", "*/*/"):
            for marker in sorted(self.path.glob(pattern + markers[0])):
                root = Path(str(marker)[: -len(markers[0])])
                if all((root / m).is_file() for m in markers) and all(any((root / f).glob("*")) for f in self.folders):
                    return root
        raise DatasetError(f"{self.what}: {self.path} holds no {self._expected(markers)} (looked up to two folders deep)")

    def _find_archive_prefix(self, members: Sequence[tarfile.TarInfo], markers: Sequence[str]) -> str:
        names = {m.name.removeprefix("./") for m in members if m.isfile()}
        candidates = sorted(
            (name[: -len(markers[0])] for name in names if name == markers[0] or name.endswith("/" + markers[0])),
            key=len,
        )
        for prefix in candidates:
            if all(prefix + m in names for m in markers) and all(any(n.startswith(f"{prefix}{f}/") for n in names) for f in self.folders):
                return prefix
        raise DatasetError(f"{self.what}: archive {self.path} holds no {self._expected(markers)}")

    def _expected(self, markers: Sequence[str]) -> str:
        return " and ".join([*markers, *(f"{f}/" for f in self.folders)])

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def describe(self, rel: str) -> str:
        """A path for error messages: the real file, or ``archive:member``."""
        if self._tar is None:
            return str(self.root / rel)
        return f"{self.path}:{self.prefix}{rel}"

    def exists(self, rel: str) -> bool:
        return rel in self._members if self._tar is not None else (self.root / rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        if not self.exists(rel):
            raise DatasetError(f"{self.what}: {self.describe(rel)} does not exist")
        try:
            if self._tar is None:
                return (self.root / rel).read_bytes()
            handle = self._tar.extractfile(self._members[rel])
            assert handle is not None  # regular files only are indexed
            return handle.read()
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DatasetError(f"{self.what}: cannot read {self.describe(rel)}: {error}") from error

    def read_list(self, rel: str) -> list[str]:
        """Ids of a split list (first word of each non-empty line)."""
        text = self.read_bytes(rel).decode("utf-8", errors="replace")
        return [line.split()[0] for line in text.splitlines() if line.strip()]

    def read_many(self, rels: Iterable[str], desc: str) -> Iterator[tuple[str, bytes]]:
        """(path, bytes) of every path, in archive order: a compressed archive is then read front to back once."""
        rels = list(rels)
        missing = [rel for rel in rels if not self.exists(rel)]
        if missing:
            raise DatasetError(f"{self.what}: {len(missing)} of {len(rels)} files are missing, e.g. {self.describe(missing[0])}")
        if self._tar is not None:
            rels.sort(key=lambda rel: self._members[rel].offset)
        for rel in progress_bar(rels, desc=desc, unit="file", mininterval=2.0):
            yield rel, self.read_bytes(rel)

    def local_file(self, rel: str) -> Path | None:
        """The file itself when the release is a folder (so it can be linked), else None."""
        return None if self._tar is not None else (self.root / rel).resolve()

    def __enter__(self) -> Release:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------- decoding --

def _check_mask(mask: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    if mask.ndim != 2:
        raise DatasetError(f"mask {where} has shape {mask.shape}; expected a 2-D class-index map")
    values = np.unique(mask)
    bad = values[(values > num_classes) & (values != IGNORE)]
    if bad.size:
        raise DatasetError(f"mask {where} holds class index {int(bad[0])}, outside 0..{num_classes} (and 255 = ignore)")
    return mask.astype(np.uint8)


def read_voc_mask_png(data: bytes, where: str) -> np.ndarray:
    """A VOC ``SegmentationClass`` palette PNG (class indices, 255 on object borders) as uint8 [H, W]."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError(f"mask {where} has mode {image.mode}; expected a palette PNG of class indices")
            mask = np.asarray(image)
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(f"mask {where} is unreadable or corrupt: {error}") from error
    return _check_mask(mask, len(VOC_CLASSES), where)


def read_sbd_mat(data: bytes, where: str) -> np.ndarray:
    """The class mask of an SBD ``cls/<id>.mat`` file (struct ``GTcls``, field ``Segmentation``) as uint8 [H, W]."""
    from scipy.io import loadmat

    try:
        content = loadmat(io.BytesIO(data), squeeze_me=True, struct_as_record=False)
    except Exception as error:
        raise DatasetError(f"SBD file {where} is not a readable .mat file: {error}") from error
    gt = content.get("GTcls")
    if gt is None or not hasattr(gt, "Segmentation"):
        raise DatasetError(f"SBD file {where} has no GTcls.Segmentation (is it from dataset/cls/, not dataset/inst/?)")
    return _check_mask(np.asarray(gt.Segmentation), len(VOC_CLASSES), where)


def _image_size(data_or_path: bytes | Path, where: str) -> tuple[int, int]:
    """(height, width) from the image header, without decoding the pixels."""
    try:
        source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
        with Image.open(source) as image:
            width, height = image.size
    except Exception as error:
        raise DatasetError(f"image {where} is unreadable or corrupt: {error}") from error
    return height, width


def _write_list(root: Path, split: str, ids: Sequence[str]) -> None:
    (root / LIST_DIR).mkdir(parents=True, exist_ok=True)
    (root / LIST_DIR / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


def _note_counts(counts: Mapping[str, int], official: Mapping[str, int]) -> None:
    for split, count in counts.items():
        if split in official and count != official[split]:
            print(f"note: {split} has {count} images; the official release gives {official[split]}")


# ------------------------------------------------------------------------ VOC --

def train_aug_ids(sbd_train: Iterable[str], sbd_val: Iterable[str], voc_train: Iterable[str], voc_val: Iterable[str]) -> list[str]:
    """(SBD train + SBD val + VOC train) minus VOC val, sorted."""
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def prepare_voc12(
    voc: str | os.PathLike,
    sbd: str | os.PathLike | None,
    out_root: str | os.PathLike,
    test: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Build the VOC 2012 + SBD root at ``out_root`` (see the module docstring); returns the split sizes.

    Without ``sbd`` there is no augmented set: the masks are VOC's own and
    ``train_aug`` is VOC train (printed as a warning, since the paper trains on 10,582).
    ``test`` (``VOC2012test.tar`` or its folder) adds ``test.txt`` and its images for a submission.
    """
    palette = voc_palette()
    labels: dict[str, np.ndarray] = {}
    mask_shapes: dict[str, tuple[int, int]] = {}
    with Release(voc, ["ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt"], "VOC 2012 trainval") as release, \
            atomic_directory(out_root) as tmp:
        voc_train = release.read_list("ImageSets/Segmentation/train.txt")
        voc_val = release.read_list("ImageSets/Segmentation/val.txt")
        if set(voc_train) & set(voc_val):
            raise DatasetError(f"{release.describe('ImageSets/Segmentation/val.txt')} shares ids with train.txt")
        mask_dir = tmp / "SegmentationClassAug"
        mask_dir.mkdir()

        def keep_mask(image_id: str, mask: np.ndarray) -> None:
            save_label_png(mask_dir / f"{image_id}.png", mask, palette, atomic=False)
            labels[image_id] = labels_from_mask(mask, len(VOC_CLASSES))
            mask_shapes[image_id] = mask.shape

        # SBD first, then VOC's own masks over them: VOC's have the 255 border band and are the reference GT.
        sbd_train: list[str] = []
        sbd_val: list[str] = []
        if sbd is None:
            print("warning: no SBD given: train_aug is VOC train alone (1,464 images, not the paper's 10,582)")
        else:
            with Release(sbd, ["train.txt", "val.txt"], "SBD", folders=["cls"]) as sbd_release:
                sbd_train = sbd_release.read_list("train.txt")
                sbd_val = sbd_release.read_list("val.txt")
                # VOC's own masks replace SBD's for every VOC id, so those are not even decoded.
                voc_ids = set(voc_train) | set(voc_val)
                wanted = [i for i in dict.fromkeys(sbd_train + sbd_val) if i not in voc_ids]
                for rel, data in sbd_release.read_many([f"cls/{i}.mat" for i in wanted], "SBD masks"):
                    keep_mask(Path(rel).stem, read_sbd_mat(data, sbd_release.describe(rel)))
        voc_ids = list(dict.fromkeys(voc_train + voc_val))
        for rel, data in release.read_many([f"SegmentationClass/{i}.png" for i in voc_ids], "VOC masks"):
            keep_mask(Path(rel).stem, read_voc_mask_png(data, release.describe(rel)))

        splits = {"train_aug": train_aug_ids(sbd_train, sbd_val, voc_train, voc_val), "train": voc_train, "val": voc_val}
        image_sizes = _gather_images(release, list(dict.fromkeys(splits["train_aug"] + voc_val)), tmp / "JPEGImages")
        for image_id, shape in mask_shapes.items():
            if image_sizes[image_id] != shape:
                raise DatasetError(
                    f"the mask of {image_id} is {shape[1]}x{shape[0]} but its image {release.describe(f'JPEGImages/{image_id}.jpg')} "
                    f"is {image_sizes[image_id][1]}x{image_sizes[image_id][0]}"
                )
        if test is not None:
            with Release(test, ["ImageSets/Segmentation/test.txt"], "VOC 2012 test") as test_release:
                splits["test"] = test_release.read_list("ImageSets/Segmentation/test.txt")
                _gather_images(test_release, splits["test"], tmp / "JPEGImages")
        for split, ids in splits.items():
            _write_list(tmp, split, ids)
        labelled = list(dict.fromkeys(splits["train_aug"] + voc_val))
        save_class_labels(tmp / "cls_labels.npy", {i: labels[i] for i in labelled})
        counts = {split: len(ids) for split, ids in splits.items()}
        write_json(tmp / "prepared.json", {"dataset": "voc12", "voc": str(voc), "sbd": None if sbd is None else str(sbd),
                                           "test": None if test is None else str(test), "counts": counts})
    print(f"VOC 2012 root at {out_root}: " + ", ".join(f"{split} {count}" for split, count in counts.items()))
    _note_counts(counts, VOC_OFFICIAL_COUNTS)
    return counts


def _gather_images(release: Release, ids: Sequence[str], out_dir: Path) -> dict[str, tuple[int, int]]:
    """Each id's JPEG into ``out_dir`` (extracted, or symlinked from an extracted release); their sizes."""
    out_dir.mkdir(exist_ok=True)
    sizes: dict[str, tuple[int, int]] = {}
    rels = [f"JPEGImages/{i}.jpg" for i in ids]
    missing = [rel for rel in rels if not release.exists(rel)]
    if missing:
        raise DatasetError(f"{release.what}: the split lists name {len(missing)} images that are missing, e.g. {release.describe(missing[0])}")
    if release.local_file(rels[0] if rels else "") is not None:
        for image_id, rel in progress_bar(list(zip(ids, rels)), desc="link images", unit="img", mininterval=2.0):
            source = release.local_file(rel)
            sizes[image_id] = _image_size(source, str(source))
            os.symlink(source, out_dir / f"{image_id}.jpg")
        return sizes
    for rel, data in release.read_many(rels, "extract images"):
        image_id = Path(rel).stem
        sizes[image_id] = _image_size(data, release.describe(rel))
        (out_dir / f"{image_id}.jpg").write_bytes(data)
    return sizes


# ----------------------------------------------------------------------- COCO --

def coco_category_index(categories: Sequence[Mapping[str, Any]], where: str) -> dict[int, int]:
    """COCO category id -> contiguous mask value 1..80, in order of category id (ids run 1..90 with gaps)."""
    ordered = sorted(categories, key=lambda c: c["id"])
    names = tuple(c["name"] for c in ordered)
    if names != COCO_CLASSES:
        unexpected = sorted(set(names) ^ set(COCO_CLASSES)) or ["(same names, other order)"]
        raise DatasetError(f"{where}: categories are not the 80 COCO classes, e.g. {unexpected[0]!r} differs")
    return {c["id"]: index + 1 for index, c in enumerate(ordered)}


def coco_class_mask(height: int, width: int, annotations: Sequence[Mapping[str, Any]], category_index: Mapping[int, int]) -> np.ndarray:
    """Class-index mask uint8 [H, W] of one image's instance annotations.

    Crowd regions are painted 255 first; objects then go on top in order of
    decreasing area (ties by annotation id), so where objects overlap the
    smaller one wins - it is usually the one in front - and a pixel of a crowd
    region keeps a label when some individual object covers it. Polygons,
    uncompressed and compressed RLEs are decoded by pycocotools.
    """
    from pycocotools import mask as mask_utils

    label = np.zeros((height, width), dtype=np.uint8)
    crowd = [a for a in annotations if a.get("iscrowd", 0)]
    objects = sorted((a for a in annotations if not a.get("iscrowd", 0)), key=lambda a: (-float(a["area"]), a.get("id", 0)))
    for annotation in crowd + objects:
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, list):  # polygons
            if not segmentation:
                continue
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:  # compressed RLE
            rle = segmentation
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation, nothing about the data
            warnings.simplefilter("ignore", DeprecationWarning)
            region = mask_utils.decode(rle).astype(bool)
        label[region] = IGNORE if annotation.get("iscrowd", 0) else category_index[annotation["category_id"]]
    return label


def _coco_mask_job(job: tuple) -> tuple[str, np.ndarray | None]:
    image_id, height, width, annotations, category_index, out_path = job
    mask = coco_class_mask(height, width, annotations, category_index)
    multi_hot = labels_from_mask(mask, len(COCO_CLASSES))
    if not multi_hot.any():
        return image_id, None  # nothing visible to classify: left out of the lists, as in WSSS practice
    save_label_png(out_path, mask, voc_palette(), atomic=False)
    return image_id, multi_hot


def _read_coco_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"COCO annotations {path} do not exist (they are in annotations_trainval2014.zip of cocodataset.org)")
    try:
        with open(path) as handle:
            content = json.load(handle)
    except Exception as error:
        raise DatasetError(f"COCO annotations {path} are unreadable or corrupt: {error}") from error
    for key in ("images", "annotations", "categories"):
        if key not in content:
            raise DatasetError(f"COCO annotations {path} have no {key!r} (instances_*.json expected)")
    return content


def prepare_coco14(
    images_root: str | os.PathLike,
    annotations_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    workers: int,
) -> dict[str, Any]:
    """Build the COCO 2014 root at ``out_root`` (see the module docstring) in ``workers`` processes; returns the split sizes."""
    images_root = Path(images_root).resolve()
    annotations_dir = Path(annotations_dir)
    splits: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    category_index: dict[int, int] | None = None
    for split in ("train", "val"):
        if not (images_root / f"{split}2014").is_dir():
            raise DatasetError(f"COCO images: {images_root / f'{split}2014'} does not exist (unpack {split}2014.zip there)")
    with atomic_directory(out_root) as tmp:
        (tmp / "SegmentationClass").mkdir()
        for split in ("train", "val"):
            json_path = annotations_dir / f"instances_{split}2014.json"
            content = _read_coco_json(json_path)
            index = coco_category_index(content["categories"], str(json_path))
            if category_index is not None and index != category_index:
                raise DatasetError(f"{json_path}: categories differ from those of the train annotations")
            category_index = index
            by_image: dict[int, list[dict]] = {image["id"]: [] for image in content["images"]}
            for annotation in content["annotations"]:
                if annotation["image_id"] not in by_image:
                    raise DatasetError(f"{json_path}: annotation {annotation.get('id')} names image {annotation['image_id']}, which is not listed")
                by_image[annotation["image_id"]].append(annotation)
            jobs = []
            missing = []
            for image in sorted(content["images"], key=lambda image: image["file_name"]):
                image_id = Path(image["file_name"]).stem
                if not (images_root / f"{split}2014" / image["file_name"]).is_file():
                    missing.append(images_root / f"{split}2014" / image["file_name"])
                jobs.append((image_id, image["height"], image["width"], by_image[image["id"]], index, tmp / "SegmentationClass" / f"{image_id}.png"))
            if missing:
                raise DatasetError(f"COCO images: {len(missing)} images of {json_path} are missing, e.g. {missing[0]}")
            results = list(progress_bar(map_in_processes(_coco_mask_job, jobs, workers, chunksize=64), total=len(jobs), desc=f"{split} masks",
                                unit="img", mininterval=2.0))
            kept = {image_id: multi_hot for image_id, multi_hot in results if multi_hot is not None}
            dropped = len(results) - len(kept)
            if dropped:
                print(f"{split}: {dropped} of {len(results)} images have no visible object and are left out of {split}.txt")
            labels.update(kept)
            splits[split] = list(kept)
            _write_list(tmp, split, splits[split])
            # Linked, not copied: the layout reads <root>/<split>2014/<id>.jpg.
            os.symlink(images_root / f"{split}2014", tmp / f"{split}2014", target_is_directory=True)
        save_class_labels(tmp / "cls_labels.npy", labels)
        counts = {split: len(ids) for split, ids in splits.items()}
        write_json(tmp / "prepared.json", {"dataset": "coco14", "images": str(images_root), "annotations": str(annotations_dir), "counts": counts})
    print(f"COCO 2014 root at {out_root}: " + ", ".join(f"{split} {count}" for split, count in counts.items()))
    _note_counts(counts, COCO_OFFICIAL_COUNTS)
    return counts
