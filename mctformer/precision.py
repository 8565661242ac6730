"""Autocast of the inference forwards the config can lower: DeepLab inference (deeplab.inference_amp), the PSA walk's
AffinityNet (psa.walk_amp) and IRN's boundary network (irn.walk_amp).

Training keeps its own float16 switch (training.common.autocast, the sections' ``amp``); these keys name a dtype instead
because bfloat16 is what H100/H200-class GPUs run fastest without a GradScaler, and inference needs none. ``float32`` (the
default) enters no autocast at all, so every output stays what it was before the keys existed.
"""

from __future__ import annotations

import contextlib

import torch

INFERENCE_AMP = ("float32", "bfloat16", "float16")


def inference_autocast(device: torch.device, amp: str, key: str) -> contextlib.AbstractContextManager:
    """The autocast context of one inference forward on ``device``: none for ``float32``, else ``amp``'s dtype
    (CPU autocast runs bfloat16 and float16 too, which is how the tolerance tests check it). ``key`` names the
    config key in the error."""
    if amp not in INFERENCE_AMP:
        raise ValueError(f"{key} must be one of {INFERENCE_AMP}, got {amp!r}")
    if amp == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, amp))
