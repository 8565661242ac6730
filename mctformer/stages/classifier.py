"""The stages of workflow/rules/classifier.smk: training MCTformer on the image-level labels, and its own labels (seeds.labels: predicted)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..data.labels import load_class_labels
from ..data.layout import DatasetRef
from ..settings import Placement, training_precision


def train_classifier_stage(
    *, dataset: DatasetRef, labels_path: str, train_split: str, val_split: str,
    settings: Mapping[str, Any], seed: int, placement: Placement, checkpoint: str, log_csv: str, resume: str, threads: int,
    tensorboard: bool,
) -> None:
    """Train MCTformer (``settings`` = the config's ``classifier`` section, all of which it reads; ``tensorboard``:
    logging.tensorboard, TensorBoard beside the curve lines, mctformer.training.curves);
    ``gpus`` (the job's) > 1: data-parallel, one torchrun process per visible GPU (distributed.data_parallel_ranks)."""
    arguments = dict(locals())  # the keyword arguments alone, taken before an import adds a name
    from ..training.distributed import distributed_device, relaunched_under_torchrun

    if relaunched_under_torchrun(train_classifier_stage, arguments):
        return
    from ..training.classifier import train_classifier
    from ..training.common import TrainerFiles

    torch_device = distributed_device(threads, placement, amp_dtype=training_precision(settings))
    reader = dataset.open()
    train_ids = reader.read_ids(train_split)
    val_ids = reader.read_ids(val_split)
    labels = load_class_labels(labels_path, train_ids + val_ids, len(dataset.classes))
    summary = train_classifier(
        reader, train_ids, val_ids, labels, settings, TrainerFiles.of_rule(checkpoint, log_csv, resume, tensorboard=tensorboard),
        device=torch_device, seed=seed, workers=settings["workers"], class_names=dataset.classes,
    )
    print(f"classifier trained in {summary['seconds']:.1f} s: {summary['final']}")


def predict_labels_stage(
    *, dataset: DatasetRef, labels_path: str, splits: Sequence[str], settings: Mapping[str, Any], label_threshold: float,
    batch_size: int, placement: Placement, checkpoint: str, labels_out: str, scores_out: str, evaluation_out: str, threads: int,
) -> None:
    """The classifier's image-level labels of every image of ``splits`` (seeds.labels: predicted): its scores
    (training.classifier.image_scores, ``settings`` = the classifier section), the classes at or above
    ``label_threshold`` (data.labels.predicted_labels) in cls_labels.npy's format, each image's scores beside its
    predicted and true labels, and per split the per-class precision / recall against the ground truth."""
    import numpy as np
    import pandas as pd

    from ..artifacts import write_dataframe_csv
    from ..data.label_table import label_cell
    from ..data.labels import predicted_labels, save_class_labels
    from ..data.layout import ids_of_splits
    from ..metrics import label_precision_recall
    from ..training.classifier import image_scores, load_classifier
    from ..training.common import torch_setup

    torch_device = torch_setup(threads, placement, amp_dtype=training_precision(settings))
    reader = dataset.open()
    ids = ids_of_splits(reader, splits)
    classes = list(dataset.classes)
    truth = load_class_labels(labels_path, ids, len(classes))
    model = load_classifier(checkpoint, len(classes), device=torch_device, version=settings["version"], class_names=classes)
    scores = image_scores(model, reader, ids, settings, device=torch_device, batch_size=batch_size)
    predicted = dict(zip(ids, predicted_labels(scores, label_threshold)))
    save_class_labels(labels_out, predicted)

    table = pd.DataFrame(scores, columns=[f"score_{name}" for name in classes])
    table.insert(0, "image", ids)
    table["predicted"] = [label_cell(predicted[i], classes) for i in ids]
    table["ground_truth"] = [label_cell(truth[i], classes) for i in ids]
    write_dataframe_csv(scores_out, table)
    tables = []
    for split in splits:
        split_ids = reader.read_ids(split)
        evaluation = label_precision_recall(np.stack([predicted[i] for i in split_ids]), np.stack([truth[i] for i in split_ids]), classes)
        evaluation.insert(0, "split", split)
        tables.append(evaluation)
        mean = evaluation.iloc[-1]
        print(f"{split}: predicted labels at {label_threshold}: mean precision {mean['precision']:.3f}, mean recall "
              f"{mean['recall']:.3f}, exact label sets {mean['exact_match']:.3f} ({len(split_ids)} images)")
    evaluation_table = pd.concat(tables, ignore_index=True)
    evaluation_table.insert(1, "label_threshold", label_threshold)
    write_dataframe_csv(evaluation_out, evaluation_table)
