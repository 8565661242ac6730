"""The stages of workflow/rules/deeplab.smk: DeepLab trained on the pseudo masks (or the ground truth),
its predictions, their evaluation and the VOC test-server submission."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..artifacts import make_palette
from ..crf import ScaledCRF
from ..data.layout import DatasetRef
from ..settings import Placement, training_precision
from ..shards import WHOLE, Shard
from .psa import evaluate_masks_stage


def train_deeplab_stage(
    *, dataset: DatasetRef, split: str, mask_dir: str | None, settings: Mapping[str, Any],
    seed: int, placement: Placement, checkpoint: str, log_csv: str, resume: str, threads: int, tensorboard: bool,
) -> None:
    """Train on the pseudo masks in ``mask_dir``, or on the ground truth when ``mask_dir`` is None (``settings`` =
    the config's ``deeplab`` training keys); ``gpus`` (the job's) > 1: data-parallel, one torchrun process per visible GPU."""
    arguments = dict(locals())  # the keyword arguments alone, taken before an import adds a name
    from ..training.distributed import distributed_device, relaunched_under_torchrun

    if relaunched_under_torchrun(train_deeplab_stage, arguments):
        return
    from ..artifacts import read_label_png, require_per_image_files
    from ..training.common import TrainerFiles
    from ..training.deeplab import train_deeplab

    torch_device = distributed_device(threads, placement, amp_dtype=training_precision(settings))
    reader = dataset.open()
    ids = reader.read_ids(split)
    if mask_dir is None:
        load_label = reader.load_mask
    else:
        require_per_image_files(mask_dir, ids, ".png", "pseudo masks")

        def load_label(image_id: str) -> np.ndarray:
            return read_label_png(os.path.join(mask_dir, f"{image_id}.png"))

    summary = train_deeplab(
        reader, ids, load_label, len(dataset.classes) + 1, settings, TrainerFiles.of_rule(checkpoint, log_csv, resume, tensorboard=tensorboard),
        device=torch_device, seed=seed, workers=settings["workers"],
    )
    print(f"DeepLab ({'ground truth' if mask_dir is None else 'pseudo masks'}) trained in {summary['seconds']:.1f} s: {summary['final']}")


def infer_deeplab_stage(
    *, dataset: DatasetRef, palette: Sequence | None, split: str, checkpoint: str, head: str,
    scales: Sequence[float], flip_inference: bool, fuse: str, inference_resize: str, crf: Mapping[str, Any],
    inference_amp: str, inference_workers: int, placement: Placement, pred_dir: str | None, crf_dir: str | None,
    threads: int, shard: Shard = WHOLE, stage: str = "infer_deeplab",
) -> None:
    """DeepLab predictions of a split: plain argmax in ``pred_dir`` and/or CRF-refined in ``crf_dir``
    (``head``: deeplab.head, which the checkpoint must have); of one ``shard``'s share of its images, for a sharded
    ``stage`` (the rule, named in errors)."""
    from ..segmentation import INFERENCE_CHUNK, segment_images
    from ..training.common import torch_setup
    from ..training.deeplab import load_deeplab

    torch_device = torch_setup(threads, placement, amp_dtype=None)
    reader = dataset.open()
    ids = shard.select(reader, reader.read_ids(split), INFERENCE_CHUNK, stage)
    model = load_deeplab(checkpoint, len(dataset.classes) + 1, head=head, device=torch_device)
    started = time.time()
    segment_images(
        model, reader, ids, pred_dir, crf_dir, scales=scales, flip=flip_inference, fuse=fuse, crf=ScaledCRF.from_config(crf),
        palette=make_palette(palette), device=torch_device,
        workers=max(1, threads), resize=inference_resize, normalise_crf_scores=crf["normalise_scores"], amp=inference_amp,
        loader_workers=inference_workers, chunk=INFERENCE_CHUNK,
    )
    print(f"segmented {len(ids)} images of {split} in {time.time() - started:.1f} s")


# The rule evaluate_deeplab scores DeepLab's predictions exactly as evaluate_masks scores the pseudo masks.
evaluate_deeplab_stage = evaluate_masks_stage


def submission_stage(
    *, dataset: DatasetRef, palette: Sequence | None, split: str, checkpoint: str, head: str,
    scales: Sequence[float], flip_inference: bool, fuse: str, inference_resize: str, crf: Mapping[str, Any],
    inference_amp: str, inference_workers: int, placement: Placement, out_dir: str, tarball: str | None, threads: int,
    shard: Shard = WHOLE,
) -> None:
    """Test-set predictions (multi-scale + CRF) in the official VOC submission layout, and its tarball; one ``shard``
    of several writes its images' predictions alone (``tarball`` None: the gather packs them)."""
    from ..artifacts import atomic_directory
    from ..segmentation import SUBMISSION_FOLDER, pack_submission

    with atomic_directory(out_dir) as tmp:
        infer_deeplab_stage(
            dataset=dataset, palette=palette, split=split, checkpoint=checkpoint, head=head, scales=scales,
            flip_inference=flip_inference, fuse=fuse, inference_resize=inference_resize, crf=crf, inference_amp=inference_amp,
            inference_workers=inference_workers, placement=placement, pred_dir=None,
            crf_dir=os.path.join(tmp, SUBMISSION_FOLDER), threads=threads, shard=shard, stage="voc_submission",
        )
    if tarball is None:
        print(f"test predictions of shard {shard.name} in {out_dir}")
        return
    pack_submission(out_dir, tarball)
    print(f"test predictions in {out_dir}, packed as {tarball}")
