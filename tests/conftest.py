"""Fixtures shared by the tests; the plain helpers they use live in tests/helpers/."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.workflow import REPO, TINY_SPEC, snakemake  # noqa: F401  (REPO: tests/test_paper_configs.py still imports it from here)
from mctformer.data.synthetic import generate_synthetic_voc


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
