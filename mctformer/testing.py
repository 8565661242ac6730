"""The tiny configuration: the shipped config shrunk so the whole chain runs in well under a minute on two cores.

The tests (tests/helpers/workflow.py) and the device check (benchmarks/device_check.py) both run it, so it lives in the
package rather than in either of them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .data.synthetic import SyntheticSpec


def tiny_config(shipped: Mapping[str, Any], classic_synthetic: Mapping[str, Any], *, run_name: str, device: str) -> dict:
    """``shipped`` (the resolved config.yaml: every switch stated) shrunk, on ``device``, with the synthetic world of
    ``classic_synthetic`` (workflow/configs/synthetic_classic.yaml's ``synthetic`` section)."""
    config = copy.deepcopy(dict(shipped))
    config["run_name"] = run_name
    # never the shipped `auto`: a tiny run says where it runs; CUDA runs are made deterministic to be compared
    config["device"] = device
    config["deterministic"] = device == "cuda"
    config["data"]["classes"] = ["disc", "square", "triangle", "diamond"]
    # the classic world: colour gives the class, so one epoch learns it
    config["synthetic"].update(classic_synthetic)
    config["synthetic"].update(num_train_aug=48, num_train=12, num_val=16, image_size=32, max_objects=2)
    config["classifier"].update(epochs=1, batch_size=16, input_size=32, workers=0)
    config["maps"].update(batch_size=16, overlays=2)
    config["seeds"]["thresholds"] = {"start": 0.0, "stop": 0.6, "step": 0.05}
    config["psa"].update(max_images=None, workers=2)
    config["affinity"].update(epochs=1, batch_size=8, crop_size=32)
    config["deeplab"].update(epochs=1, batch_size=8, crop_size=32, scales=[0.75, 1.0])
    return config


def tiny_spec(tiny: Mapping[str, Any], **overrides: Any) -> SyntheticSpec:
    """The synthetic data of a :func:`tiny_config` (4 classes, 32 px), generated with seed 3."""
    synthetic = tiny["synthetic"]
    values = {**synthetic, "radius_range": tuple(synthetic["radius_range"]), "num_classes": len(tiny["data"]["classes"]), "seed": 3}
    return SyntheticSpec(**{**values, **overrides})
