"""The device the tests' networks run on: the CPU, whatever the host has, unless MCTFORMER_TEST_DEVICE=cuda.

The shipped config says ``device: auto``, which would put every workflow test on a GPU as soon as one is visible, and
the bit-for-bit tests' guarantees hold on the CPU only. So the tests pin a device: ``cpu`` by default; with
``MCTFORMER_TEST_DEVICE=cuda`` the workflow tests (tiny_config) run on CUDA and the tests marked ``cuda`` run; without
it those are skipped (docs/development.md).
"""

from __future__ import annotations

import os

TEST_DEVICE_VARIABLE = "MCTFORMER_TEST_DEVICE"
TEST_DEVICES = ("cpu", "cuda")
TEST_DEVICE = os.environ.get(TEST_DEVICE_VARIABLE, "cpu") or "cpu"
if TEST_DEVICE not in TEST_DEVICES:
    raise ValueError(f"{TEST_DEVICE_VARIABLE}={TEST_DEVICE!r}: expected one of {TEST_DEVICES}")


def cuda_tests_skip_reason() -> str | None:
    """Why the ``cuda``-marked tests do not run here (None: they do)."""
    if TEST_DEVICE != "cuda":
        return f"a CUDA test: set {TEST_DEVICE_VARIABLE}=cuda to run it"
    import torch

    if not torch.cuda.is_available():
        return f"{TEST_DEVICE_VARIABLE}=cuda, but torch sees no CUDA device"
    return None
