"""maps.workers and deeplab.inference_workers (images decoded in loader processes) and the overlapped forkserver CRF
pool change no byte of what extraction and DeepLab inference write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.arguments import extract_arguments, scaled_crf, tiny_mctformer
from helpers.workflow import TINY_SPEC, tiny_config
from mctformer.artifacts import voc_palette
from mctformer.data.layout import batches_of_equal_size
from mctformer.data.prefetch import prefetched_batches
from mctformer.data.voc import VOCLayout
from mctformer.localize import extract_maps
from mctformer.segmentation import segment_images
from mctformer.training.deeplab import build_deeplab


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_prefetched_batches_equal_the_ones_made_here(synthetic_root):
    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    batches = batches_of_equal_size(layout, layout.read_ids("train")[:7], 3)
    here = list(prefetched_batches(layout, batches, 0, pin_memory=False))
    loaded = list(prefetched_batches(layout, batches, 2, pin_memory=False))
    assert [batch[0] for batch in loaded] == [batch[0] for batch in here] == batches
    for (_, pictures_a, images_a, _), (_, pictures_b, images_b, _) in zip(here, loaded):
        assert all(isinstance(p, np.ndarray) and np.array_equal(p, q) for p, q in zip(pictures_a, pictures_b))
        assert torch.equal(images_a, images_b)


@pytest.mark.parametrize(("resize", "remainder"), [("torch_bilinear", "resize"), ("pil_bicubic", "crop")])
def test_extraction_with_loader_workers_writes_the_same_bytes(synthetic_root, tmp_path, resize, remainder):
    """With pil_bicubic the loader also resizes to every scale (voc12.yaml's reference geometry)."""
    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("train")[:10]
    labels = {i: np.isin(np.arange(TINY_SPEC.num_classes), np.unique(layout.load_mask(i)) - 1).astype(np.float32) for i in ids}
    torch.manual_seed(0)
    model = tiny_mctformer(TINY_SPEC.num_classes).eval()
    for workers in (0, 2):
        extract_maps(model, layout, ids, labels, {"fused": tmp_path / f"w{workers}"},
                     **extract_arguments(batch_size=4, workers=workers, scales=[1.0, 0.5, 1.5], resize=resize, remainder=remainder))
    assert folder_bytes(tmp_path / "w0") == folder_bytes(tmp_path / "w2")


def test_inference_with_loader_workers_and_overlapped_crf_pool_writes_the_same_bytes(synthetic_root, tmp_path):
    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("val")[:6]
    torch.manual_seed(0)
    model = build_deeplab({**tiny_config()["deeplab"], "head_channels": 8, "dilation": 2}, TINY_SPEC.num_classes + 1).eval()
    for name, crf_workers, loader_workers in (("serial", 1, 0), ("pooled", 2, 2)):
        segment_images(model, layout, ids, str(tmp_path / name / "pred"), str(tmp_path / name / "crf"), scales=[1.0, 0.5], flip=True, fuse="max",
                       crf=scaled_crf("deeplab", iterations=2), palette=voc_palette(),
                       device=torch.device("cpu"), workers=crf_workers, resize="ours", normalise_crf_scores=True, amp="float32",
                       loader_workers=loader_workers, chunk=2)
    for folder in ("pred", "crf"):
        assert folder_bytes(tmp_path / "serial" / folder) == folder_bytes(tmp_path / "pooled" / folder)


def test_forkserver_pool_runs_module_level_jobs():
    from mctformer.parallel import worker_pool

    with worker_pool(2, start_method="forkserver") as pool:
        assert list(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]
