"""Same config and seed in two results folders: byte-identical maps, labels, masks, predictions and weights on CPU.

The two runs are the session's reference run and the run killed in every long
stage (conftest.py), both with --cores 2, so every job has the same thread
count: that one of them was interrupted and resumed six times must not show.

Device scope: the CPU. reliability_config pins ``device: cpu`` whatever MCTFORMER_TEST_DEVICE says, since on CUDA
DeepLab's bilinear upsampling backward and 2-D cross-entropy have no deterministic kernel.
"""

import pytest

from helpers.reliability import (
    RUN,
    assert_same_maps,
    assert_same_pngs,
    assert_same_weights,
    reliability_config,
)

pytestmark = pytest.mark.slow

IMAGES = reliability_config()["synthetic"]["num_train_aug"]


@pytest.fixture(scope="module")
def runs(reference_run, killed_run):
    return reference_run / RUN, killed_run[0] / RUN


@pytest.mark.parametrize("variant", reliability_config()["maps"]["variants"])
def test_maps_are_identical(runs, variant):
    first, second = runs
    assert assert_same_maps(first / "maps" / variant, second / "maps" / variant) == IMAGES  # npz contents, bit for bit


@pytest.mark.parametrize("folder", ["psa/labels", "masks/pseudo", "deeplab/pred", "deeplab/pred_crf"])
def test_masks_are_identical(runs, folder):
    first, second = runs
    count = assert_same_pngs(first / folder, second / folder)  # pixel arrays
    assert count == (IMAGES if not folder.startswith("deeplab") else reliability_config()["synthetic"]["num_val"])


@pytest.mark.parametrize("checkpoint", ["classifier/checkpoint.pt", "psa/affinity.pt", "deeplab/checkpoint.pt"])
def test_weights_are_identical(runs, checkpoint):
    first, second = runs
    assert_same_weights(first / checkpoint, second / checkpoint)


def test_chosen_threshold_and_label_statistics_are_identical(runs):
    first, second = runs
    variant = reliability_config()["psa"]["seed_variant"]
    for name in (f"seeds/train/{variant}/best.json", f"seeds/train/{variant}/sweep.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
