"""DeepLab inference: multi-scale + flip softmax fusion, then a dense CRF (in a process pool)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .artifacts import atomic_directory, save_label_png
from .crf import ScaledCRF, crf_argmax
from .data.layout import batches_of_equal_size
from .data.prefetch import prefetched_batches
from .logs import progress_bar
from .parallel import worker_pool
from .precision import inference_autocast

INFERENCE_RESIZES = ("ours", "reference")


@torch.inference_mode()
def multiscale_softmax(
    model: torch.nn.Module, images: torch.Tensor, *, scales: Sequence[float], flip: bool, fuse: str, resize: str, amp: str,
) -> torch.Tensor:
    """Softmax [B, L, H, W] fused over scales (and flips) by ``max`` (the reference) or ``mean`` (the config's
    deeplab.scales, flip_inference, fuse, inference_resize).

    ``resize`` 'ours': each scale is round(H*s) x round(W*s), bilinear with
    align_corners=False, and the model's input-size scores are upsampled to
    H x W. 'reference' (seg/infer_seg.py): int(H*s) x int(W*s) (floor), bilinear
    with align_corners=True (at every scale, 1 included: an identity there), and
    the scores at the output stride (``model.logits`` where the model has it)
    upsampled straight to H x W with align_corners=False.

    ``amp`` (deeplab.inference_amp): the network forward under autocast to that dtype (``float32``: none); the
    scores are cast back to float32 before resizing, softmax and fusion.
    """
    if fuse not in ("max", "mean"):
        raise ValueError(f"deeplab.fuse must be 'max' or 'mean', got {fuse!r}")
    if resize not in INFERENCE_RESIZES:
        raise ValueError(f"deeplab.inference_resize must be one of {INFERENCE_RESIZES}, got {resize!r}")
    if not scales:
        raise ValueError("deeplab.scales must name at least one scale")
    height, width = images.shape[-2:]
    reference = resize == "reference"
    scores_of = getattr(model, "logits", model) if reference else model
    fused = None
    count = 0
    for scale in scales:
        if reference:
            size = (max(1, int(height * scale)), max(1, int(width * scale)))
            inputs = F.interpolate(images, size=size, mode="bilinear", align_corners=True)
        else:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            inputs = F.interpolate(images, size=size, mode="bilinear", align_corners=False) if size != (height, width) else images
        variants = [inputs, inputs.flip(-1)] if flip else [inputs]
        for index, batch in enumerate(variants):
            with inference_autocast(images.device, amp, "deeplab.inference_amp"):
                logits = scores_of(batch)
            logits = logits.float()
            probs = torch.softmax(F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False), dim=1)
            if index == 1:
                probs = probs.flip(-1)
            count += 1
            if fused is None:
                fused = probs
            elif fuse == "max":
                fused = torch.maximum(fused, probs)
            else:
                fused = fused + probs
    return fused if fuse == "max" else fused / count


def _crf_job(job: tuple) -> tuple[str, np.ndarray]:
    image_id, image, probs, crf, normalise = job
    label = crf_argmax(image, probs, crf, normalise=normalise)
    return image_id, label.astype(np.uint8)


# Images of one size that go through the network at once (a sharded inference splits by these batches: shards.py).
INFERENCE_CHUNK = 32


def segment_images(
    model: torch.nn.Module,
    layout,
    ids: Sequence[str],
    out_dir: str | None,
    crf_out_dir: str | None,
    *,
    scales: Sequence[float],
    flip: bool,
    fuse: str,
    crf: ScaledCRF,
    palette: np.ndarray,
    device: torch.device,
    workers: int,
    resize: str,
    normalise_crf_scores: bool,
    amp: str,
    loader_workers: int,
    chunk: int = INFERENCE_CHUNK,
) -> None:
    """Label PNGs of every id in ``out_dir`` and/or CRF-refined ones in ``crf_out_dir``; folders appear when complete.

    ``scales``, ``flip``, ``fuse``, ``resize``: see :func:`multiscale_softmax`; ``crf``, ``normalise_crf_scores``:
    deeplab.crf (see :func:`crf.crf_argmax`); ``workers``: CRF processes;
    ``amp``: deeplab.inference_amp; ``loader_workers`` (deeplab.inference_workers): image-decoding processes working
    ahead of the network (0: decoded here, batch by batch).

    On CUDA the CRF pool starts by ``forkserver`` (never a fork of a process holding CUDA; the calling script then needs
    an ``if __name__ == "__main__"`` guard, as the rule scripts have) and works on one batch while the GPU works on the
    next: a batch's CRF results are collected after the next batch's inference, so at most two batches are in flight.
    On a CPU the network and the CRFs would compete for the same cores (benchmarks/bench_inference_loader.py: 0.8x),
    so there the pool is forked and waited on after each batch, as before. The labels are the same either way (each
    CRF depends on its image alone).
    """
    import contextlib

    if not ids:
        raise ValueError("infer_deeplab: the split list is empty")
    model = model.to(device).eval()
    with contextlib.ExitStack() as stack:
        out_tmp = stack.enter_context(atomic_directory(out_dir)) if out_dir else None
        crf_tmp = stack.enter_context(atomic_directory(crf_out_dir)) if crf_out_dir else None
        pool = stack.enter_context(worker_pool(workers if crf_out_dir else 1, start_method="forkserver" if device.type == "cuda" else None))
        progress = stack.enter_context(progress_bar(total=len(ids), desc="segment", unit="img", mininterval=2.0))

        def write_crf(results) -> None:
            for image_id, label in results:
                save_label_png(os.path.join(crf_tmp, f"{image_id}.png"), label, palette, atomic=False)
                progress.update(1)

        overlap = device.type == "cuda"
        in_flight = None  # on CUDA: the previous batch's CRF results, still being computed by the pool
        batches = batches_of_equal_size(layout, ids, chunk)
        for batch_ids, images, batch, _ in prefetched_batches(layout, batches, loader_workers, pin_memory=device.type == "cuda"):
            batch = batch.to(device, non_blocking=True)
            probs = multiscale_softmax(model, batch, scales=scales, flip=flip, fuse=fuse, resize=resize, amp=amp).cpu().numpy()
            jobs = []
            for image_id, image, image_probs in zip(batch_ids, images, probs):
                if out_tmp is not None:
                    save_label_png(os.path.join(out_tmp, f"{image_id}.png"), image_probs.argmax(axis=0).astype(np.uint8), palette, atomic=False)
                jobs.append((image_id, image, image_probs, crf, normalise_crf_scores))
            if crf_tmp is None:
                progress.update(len(jobs))
            elif pool is None:
                write_crf(map(_crf_job, jobs))
            elif not overlap:
                write_crf(pool.map(_crf_job, jobs))
            else:
                submitted = pool.map(_crf_job, jobs)  # submits every job now; the results come in order
                if in_flight is not None:
                    write_crf(in_flight)
                in_flight = submitted
        if in_flight is not None:
            write_crf(in_flight)


SUBMISSION_FOLDER = os.path.join("VOC2012", "Segmentation", "comp6_test_cls")


def pack_submission(submission_root: str, tarball: str) -> None:
    """The tarball the PASCAL VOC evaluation server takes: results/VOC2012/Segmentation/comp6_test_cls/*.png."""
    import tarfile

    from .artifacts import atomic_path

    with atomic_path(tarball) as tmp, tarfile.open(tmp, "w:gz") as archive:
        archive.add(os.path.join(submission_root, "VOC2012"), arcname=os.path.join("results", "VOC2012"))
