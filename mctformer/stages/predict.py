"""``mctformer predict``: a trained run applied to images of one's own, outside the workflow.

Every step is the workflow's own function with the run's resolved config: the classifier's scores (the validation
forward, training.classifier.image_scores), the localization maps (localize.extract_maps, every maps key), the seed
(metrics.seed_prediction at the walk's background score: psa.background or the run's best seed threshold), the PSA
random walk (psa.drivers.random_walk_masks with the psa / affinity keys the rule passes) and DeepLab with its CRF
(segmentation.segment_images with the deeplab inference keys). An image the workflow also processed therefore gets
the same maps, seed, pseudo mask and segmentation as in the run (tests/test_predict.py checks it).

The output folder (replaced only when complete)::

    labels.csv                 per image the labels used, as a labels file (data.label_table: image,labels with
                               cat;dog), so that, corrected, it is --labels or a folder dataset's labels file
    scores.csv                 per image: each class's score, the labels used and where they came from
    maps/<variant>/<id>.npz    the maps of every maps.variants entry (artifacts.save_map_file's format)
    overlays/<id>.png          the image and each of its classes' map as a heat overlay, one row per variant
    seeds/<id>.png             the seed (palette PNG)
    masks/<id>.png             the pseudo mask of the PSA walk (when the run has an AffinityNet)
    deeplab/pred/<id>.png, deeplab/pred_crf/<id>.png   DeepLab's argmax and its CRF (when the run has a DeepLab)
    contact_sheet.png          the first images: image, class overlays, seed, pseudo mask, DeepLab + CRF
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import atomic_directory, load_map_file, make_palette, read_label_png, save_label_png, write_dataframe_csv
from ..data.image_files import ImageFiles, image_paths
from ..data.label_table import label_cell, read_label_table
from ..data.labels import labels_from_names, load_class_labels, predicted_labels
from ..data.voc import DatasetError
from ..run_layout import RunLayout
from ..settings import Placement

LABEL_SOURCES = ("predicted", "given")


@dataclass(frozen=True)
class RunCheckpoints:
    """The trained networks predict applies: the classifier's (required), the AffinityNet's and DeepLab's (None:
    that step is skipped), and the best-seed-threshold file that sets the walk's background score (None: psa.background
    or an explicit threshold sets it)."""

    classifier: str
    affinity: str | None
    deeplab: str | None
    seed_best: str | None

    @classmethod
    def of_run(cls, config: Mapping[str, Any], run: str, deeplab_model: str) -> RunCheckpoints:
        """The files a finished run of ``config`` holds under ``run`` (results/<run_name>), those absent as None;
        ``deeplab_model``: the DeepLab to apply (the first of deeplab.pseudo_masks: deeplab/ on PSA's masks)."""
        layout = RunLayout(run)
        classifier = layout.classifier_checkpoint()
        if not os.path.isfile(classifier):
            raise FileNotFoundError(f"classifier checkpoint {classifier} does not exist: is {run} a trained run of this config "
                                    f"(results/<run_name>), or give the checkpoint files")
        deeplab = layout.deeplab_checkpoint(deeplab_model)
        best = layout.seed_best(config["psa"]["threshold_split"], config["psa"]["seed_variant"])
        return cls(
            classifier=classifier,
            affinity=_existing(layout.affinity_checkpoint()),
            deeplab=_existing(deeplab),
            seed_best=_existing(best),
        )


def _existing(path: str) -> str | None:
    return path if os.path.isfile(path) else None


def read_given_labels(path: str, ids: Sequence[str], classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Ground-truth image-level labels for ``ids``: a ``cls_labels.npy`` (the pipeline's format, keyed by the file
    names without extension) or a labels file of the folder dataset's forms (data.label_table.read_label_table:
    .csv or .json, entries naming the image with or without its extension), predict's own ``labels.csv`` among
    them. Refuses an unknown class and an image given twice (naming the file and the row), a file whose own class
    list is not the run's, and an image without labels."""
    if path.endswith(".npy"):
        return load_class_labels(path, ids, len(classes))
    table = read_label_table(path, classes)
    if table.classes != tuple(classes):
        raise DatasetError(f"labels file {path} has the classes {', '.join(table.classes)}; the run has {', '.join(classes)}")
    labels: dict[str, np.ndarray] = {}
    for row in table.rows:
        if row.entry in labels:
            raise DatasetError(f"labels file {path}, {row.where}: {row.entry!r} is given twice")
        labels[row.entry] = labels_from_names(row.classes, classes)
    # a row names its image with or without the extension; a name of its own (`my.photo`, no extension) wins
    for entry in list(labels):
        labels.setdefault(Path(entry).stem, labels[entry])
    missing = [image_id for image_id in ids if image_id not in labels]
    if missing:
        raise DatasetError(f"labels file {path} has no labels for {len(missing)} images, e.g. {missing[0]}")
    return labels


def predict_stage(
    *, config: Mapping[str, Any], images: Sequence[str], out_dir: str, checkpoints: RunCheckpoints, labels_path: str | None,
    label_threshold: float, seed_threshold: float | None, placement: Placement, batch_size: int, sheet_images: int, threads: int,
) -> dict[str, Any]:
    """Labels, maps, seeds, pseudo masks and DeepLab's segmentation of ``images`` (folders and files) in ``out_dir``.

    ``config``: the run's resolved config (every setting of every step is its key, as the rule passes it);
    ``labels_path``: ground-truth labels to use in place of the predicted ones (:func:`read_given_labels`);
    ``label_threshold``: a class is predicted where its score reaches it (data.labels.predicted_labels);
    ``seed_threshold``: the background score of the seed and the walk when the run has no best-threshold file (and
    psa.background is null); ``batch_size``: images per forward. Returns what was written, by step."""
    import pandas as pd

    from ..localize import extract_maps
    from ..training.classifier import image_scores, load_classifier
    from ..training.common import torch_setup

    classes = tuple(config["data"]["classes"])
    reader = ImageFiles(image_paths(images), len(classes))
    ids = reader.ids
    maps_config, psa = config["maps"], config["psa"]
    background = _background(psa, checkpoints.seed_best, seed_threshold)
    palette = make_palette(config["data"]["palette"])
    torch_device = torch_setup(threads, placement, amp_dtype="float16" if maps_config["amp"] else None)
    classifier = load_classifier(checkpoints.classifier, len(classes), device=torch_device, version=config["classifier"]["version"],
                                 class_names=classes)
    scores = image_scores(classifier, reader, ids, config["classifier"], device=torch_device, batch_size=batch_size)
    if labels_path is None:
        labels = dict(zip(ids, predicted_labels(scores, label_threshold)))
    else:
        labels = read_given_labels(labels_path, ids, classes)
    variants = list(maps_config["variants"])
    written: dict[str, Any] = {"images": len(ids), "label_source": "predicted" if labels_path is None else "given"}
    with atomic_directory(out_dir) as tmp:
        write_dataframe_csv(tmp / "labels.csv", pd.DataFrame({"image": ids, "labels": [label_cell(labels[i], classes) for i in ids]}))
        write_dataframe_csv(tmp / "scores.csv", score_table(ids, scores, labels, classes, written["label_source"], label_threshold))
        extract_maps(
            classifier, reader, ids, labels, {variant: tmp / "maps" / variant for variant in variants},
            scales=maps_config["scales"], flip=maps_config["flip"], last_k=maps_config["last_k"],
            feature_temperature=maps_config["feature_temperature"], batch_size=batch_size, device=torch_device,
            num_overlays=len(ids), resize=maps_config["resize"], remainder=maps_config["remainder"],
            position_embedding=maps_config["position_embedding"], amp=maps_config["amp"], storage_dtype=maps_config["storage_dtype"],
            workers=0, overlay_dir=tmp / "overlays",
        )
        seed_dir = tmp / "maps" / psa["seed_variant"]
        write_seeds(seed_dir, ids, background, tmp / "seeds", palette)
        written.update(seed_variant=psa["seed_variant"], background=background)
        if checkpoints.affinity is not None and "psa" in config["refine"]["methods"]:
            walk_masks(config, checkpoints.affinity, reader, ids, seed_dir, background, tmp / "masks", palette, torch_device, batch_size)
            written["masks"] = "masks"
        if checkpoints.deeplab is not None:
            segment(config, checkpoints.deeplab, reader, ids, tmp / "deeplab", palette, torch_device, threads)
            written["deeplab"] = "deeplab"
        write_contact_sheet(tmp, reader, ids[:sheet_images], dict(zip(ids, scores)), classes, psa["seed_variant"], palette)
    return written


def _background(psa: Mapping[str, Any], seed_best: str | None, seed_threshold: float | None) -> float:
    """The walk's background score, as the rule reads it (stages.psa.read_background): psa.background, else the run's
    best seed threshold, else the one given here."""
    from .psa import read_background

    if psa["background"] is not None or seed_best is not None:
        return read_background(psa["background"], seed_best)
    if seed_threshold is None:
        raise ValueError("no background score for the seeds: psa.background is null and the run has no best seed threshold "
                         f"(seeds/{psa['threshold_split']}/{psa['seed_variant']}/best.json); give one (--seed-threshold)")
    return float(seed_threshold)


def score_table(ids: Sequence[str], scores: np.ndarray, labels: Mapping[str, np.ndarray], classes: Sequence[str], source: str,
                threshold: float):
    """scores.csv: per image its classifier score of each class, the labels the maps were made for and their source."""
    import pandas as pd

    table = pd.DataFrame(scores, columns=[f"score_{name}" for name in classes])
    table.insert(0, "image", list(ids))
    table["labels"] = [label_cell(labels[i], classes) for i in ids]
    table["label_source"] = source
    table["label_threshold"] = threshold if source == "predicted" else np.nan
    return table


def write_seeds(map_dir: Path, ids: Sequence[str], background: float, out_dir: Path, palette: np.ndarray) -> None:
    """Each image's seed: argmax over [background, its maps] (metrics.seed_prediction), as a palette PNG."""
    from ..logs import progress_bar
    from ..metrics import seed_prediction

    with atomic_directory(out_dir) as tmp:
        for image_id in progress_bar(ids, desc="seeds", unit="img", mininterval=2.0):
            labels, maps = load_map_file(map_dir / f"{image_id}.npz")
            save_label_png(tmp / f"{image_id}.png", seed_prediction(labels, maps, np.float32(background)), palette, atomic=False)


def walk_masks(config: Mapping[str, Any], checkpoint: str, reader, ids: Sequence[str], map_dir: Path, background: float, out_dir: Path,
               palette: np.ndarray, device, batch_size: int) -> None:
    """The PSA random walk of the rule random_walk: psa.beta, logt, walk_scale, walk_amp and affinity.backbone,
    radius, pair_sources."""
    from ..psa.drivers import random_walk_masks
    from ..training.affinity import load_affinity_net

    psa, affinity = config["psa"], config["affinity"]
    model = load_affinity_net(checkpoint, affinity["backbone"], device=device)
    random_walk_masks(
        model, reader, ids, str(map_dir), str(out_dir), background=background, beta=psa["beta"], logt=psa["logt"],
        radius=affinity["radius"], palette=palette, device=device, batch_size=batch_size, scale=psa["walk_scale"],
        pair_sources=affinity["pair_sources"], amp=psa["walk_amp"],
    )


def segment(config: Mapping[str, Any], checkpoint: str, reader, ids: Sequence[str], out_dir: Path, palette: np.ndarray, device,
            threads: int) -> None:
    """DeepLab's prediction and its CRF, as the rule infer_deeplab makes them (deeplab.head and the inference keys)."""
    from ..crf import ScaledCRF
    from ..segmentation import segment_images
    from ..training.deeplab import load_deeplab

    deeplab = config["deeplab"]
    model = load_deeplab(checkpoint, len(config["data"]["classes"]) + 1, head=deeplab["head"], device=device)
    crf = deeplab["crf"]
    segment_images(
        model, reader, ids, str(out_dir / "pred"), str(out_dir / "pred_crf"), scales=deeplab["scales"], flip=deeplab["flip_inference"],
        fuse=deeplab["fuse"], crf=ScaledCRF.from_config(crf),
        palette=palette, device=device, workers=max(1, threads), resize=deeplab["inference_resize"], normalise_crf_scores=crf["normalise_scores"],
        amp=deeplab["inference_amp"], loader_workers=0,
    )


def write_contact_sheet(out: Path, reader, ids: Sequence[str], scores: Mapping[str, np.ndarray], classes: Sequence[str],
                        seed_variant: str, palette: np.ndarray) -> None:
    """contact_sheet.png: per image the picture, each of its classes' ``seed_variant`` map as a heat overlay (titled
    with the class's classifier score), the seed and, where they were made, the pseudo mask and DeepLab's CRF-refined
    segmentation."""
    from ..plots import contact_sheet, heat_overlay

    rows = []
    for image_id in ids:
        picture = reader.load_image(image_id)
        label_values, maps = load_map_file(out / "maps" / seed_variant / f"{image_id}.npz")
        row = [("image", picture)]
        row += [(f"{classes[value - 1]} {scores[image_id][value - 1]:.2f}", heat_overlay(picture, class_map))
                for value, class_map in zip(label_values, maps)]
        row.append(("seed", read_label_png(out / "seeds" / f"{image_id}.png")))
        for title, folder in (("pseudo mask", out / "masks"), ("DeepLab + CRF", out / "deeplab" / "pred_crf")):
            if folder.is_dir():
                row.append((title, read_label_png(folder / f"{image_id}.png")))
        rows.append(row)
    contact_sheet(str(out / "contact_sheet.png"), rows, list(ids), palette)
