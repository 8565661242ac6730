"""Fixtures shared by the tests; the plain helpers they use live in tests/helpers/."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.device import TEST_DEVICE, TEST_DEVICE_VARIABLE, cuda_tests_skip_reason
from helpers.workflow import TINY_SPEC, snakemake
from mctformer.data.synthetic import generate_synthetic_voc


def pytest_report_header(config) -> str:
    return f"network tests on: {TEST_DEVICE} ({TEST_DEVICE_VARIABLE}; helpers/device.py)"


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``cuda``-marked tests unless asked for (MCTFORMER_TEST_DEVICE=cuda) on a host with CUDA."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    reason = cuda_tests_skip_reason() if cuda_items else None
    for item in cuda_items if reason else []:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small generated VOC-layout root, shared read-only by the tests."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    generate_synthetic_voc(root, TINY_SPEC, palette=None, workers=1)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole chain run once on the tiny config (--cores 2); tests read it, none may change it."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir
