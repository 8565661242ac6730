"""Map extraction, the seed sweep and the random walk stream over the images: at most about a batch is in memory.

Each stage runs on N and on 4N images while every image, map and mask it
loads or computes is tracked (weak references): how many are alive at once
must stay within a batch or two, whatever the number of images. The peak RSS
of the same stages at N and 4N images is measured by benchmarks/bench_memory.py.
"""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest
import torch

from helpers.arguments import extract_arguments
from helpers.workflow import TINY_SPEC, tiny_config
from mctformer import artifacts, localize, metrics
from mctformer.data.labels import build_class_labels
from mctformer.data.voc import VOCLayout

BATCH = 4


class Live:
    """How many of the tracked objects were alive at once."""

    def __init__(self):
        self.now = self.peak = self.seen = 0
        self.lock = threading.Lock()

    def track(self, obj):
        with self.lock:
            self.now += 1
            self.seen += 1
            self.peak = max(self.peak, self.now)
        weakref.finalize(obj, self.release)
        return obj

    def release(self):
        with self.lock:
            self.now -= 1


@pytest.fixture(scope="module")
def layout(synthetic_root):
    return VOCLayout(synthetic_root, TINY_SPEC.num_classes)


@pytest.fixture(scope="module")
def sizes(layout):
    ids = layout.read_ids("train_aug")
    assert len(ids) >= 4 * 12
    return {"N": ids[:12], "4N": ids[:48]}


@pytest.fixture(scope="module")
def map_dir(layout, sizes, tmp_path_factory):
    """Seed-like maps of the 4N images (the ground truth's class masks)."""
    folder = tmp_path_factory.mktemp("maps")
    for image_id in sizes["4N"]:
        mask = layout.load_mask(image_id)
        labels = np.array([v for v in np.unique(mask) if v not in (0, 255)], dtype=np.int64)
        maps = np.stack([(mask == v).astype(np.float32) for v in labels]) if len(labels) else np.zeros((0, *mask.shape), np.float32)
        artifacts.save_map_file(folder / f"{image_id}.npz", labels, maps, dtype=tiny_config()["maps"]["storage_dtype"])
    return folder


def test_extraction_holds_a_batch_or_two(layout, sizes, tmp_path, monkeypatch):
    from mctformer.training.classifier import build_classifier

    torch.manual_seed(0)
    model = build_classifier(tiny_config()["classifier"], TINY_SPEC.num_classes)
    labels = build_class_labels(layout, sizes["4N"], workers=1)
    real_load, real_normalize = layout.load_image, localize.minmax_normalize
    peaks = {}
    for name, ids in sizes.items():
        images, maps = Live(), Live()
        monkeypatch.setattr(layout, "load_image", lambda image_id, live=images: live.track(real_load(image_id)))
        monkeypatch.setattr(localize, "minmax_normalize", lambda x, live=maps: live.track(real_normalize(x)))
        localize.extract_maps(model, layout, ids, labels, {"fused": tmp_path / name / "fused"}, **extract_arguments(batch_size=BATCH, workers=0))
        gc.collect()
        assert images.seen == len(ids) and maps.seen == len(ids) and images.now == maps.now == 0
        peaks[name] = (images.peak, maps.peak)
    for images_peak, maps_peak in peaks.values():
        assert images_peak <= 2 * BATCH and maps_peak <= 2 * BATCH, peaks  # this batch and the one being written
    assert peaks["4N"][0] == peaks["N"][0]


def test_sweep_holds_an_image_or_two(layout, sizes, map_dir, monkeypatch):
    grid = metrics.threshold_grid(0.0, 0.6, 0.05)
    real_load = metrics.load_map_file
    peaks = {}
    for name, ids in sizes.items():
        maps, masks = Live(), Live()

        def load_map(path, live=maps):
            labels, values = real_load(path)
            return labels, live.track(values)

        monkeypatch.setattr(metrics, "load_map_file", load_map)
        metrics.sweep_split({"v": map_dir}, ids, lambda image_id, live=masks: live.track(layout.load_mask(image_id)), grid,
                            TINY_SPEC.num_classes + 1, progress=False)
        assert maps.seen == masks.seen == len(ids)
        peaks[name] = (maps.peak, masks.peak)
    assert peaks["N"] == peaks["4N"] and max(peaks["4N"]) <= 2, peaks  # this image and the last one


def test_random_walk_holds_a_batch(layout, sizes, map_dir, tmp_path, monkeypatch):
    from mctformer.models.affinitynet import AffinityNet
    from mctformer.psa import drivers
    from mctformer.psa.drivers import random_walk_masks

    torch.manual_seed(0)
    config = tiny_config()
    model = AffinityNet(backbone="tiny", pretrained=None, feature_dim=config["affinity"]["feature_dim"])
    real_image, real_map = layout.load_image, artifacts.load_map_file
    peaks = {}
    for name, ids in sizes.items():
        images, maps = Live(), Live()

        def load_map(path, live=maps):
            labels, values = real_map(path)
            return labels, live.track(values)

        monkeypatch.setattr(layout, "load_image", lambda image_id, live=images: live.track(real_image(image_id)))
        monkeypatch.setattr(drivers, "load_map_file", load_map)
        random_walk_masks(model, layout, ids, str(map_dir), str(tmp_path / name), background=0.3, beta=8, logt=2, radius=4,
                          palette=artifacts.voc_palette(), device=torch.device("cpu"), batch_size=BATCH,
                          scale=config["psa"]["walk_scale"], pair_sources=config["affinity"]["pair_sources"],
                          amp=config["psa"]["walk_amp"])
        gc.collect()
        assert images.seen == maps.seen == len(ids) and len(list((tmp_path / name).glob("*.png"))) == len(ids)
        peaks[name] = (images.peak, maps.peak)
    for images_peak, maps_peak in peaks.values():
        assert images_peak <= BATCH and maps_peak <= BATCH, peaks
    assert peaks["N"] == peaks["4N"], peaks
