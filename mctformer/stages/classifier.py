"""The stage of workflow/rules/classifier.smk: training MCTformer on the image-level labels."""

from __future__ import annotations

from collections.abc import Mapping
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
    from ..training.curves import tensorboard_folder

    torch_device = distributed_device(threads, placement, amp_dtype=training_precision(settings))
    reader = dataset.open()
    train_ids = reader.read_ids(train_split)
    val_ids = reader.read_ids(val_split)
    labels = load_class_labels(labels_path, train_ids + val_ids, len(dataset.classes))
    summary = train_classifier(
        reader, train_ids, val_ids, labels, settings, checkpoint, log_csv, resume,
        device=torch_device, seed=seed, workers=settings["workers"], tensorboard_dir=tensorboard_folder(log_csv) if tensorboard else None,
    )
    print(f"classifier trained in {summary['seconds']:.1f} s: {summary['final']}")
