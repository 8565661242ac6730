"""What every trainer shares: seeding, resumable checkpoints, the per-epoch log.

A trainer keeps ``last.pt`` beside (not among) its Snakemake outputs: a killed
job leaves it behind, and the rerun resumes from it, but only if its
fingerprint (a hash of everything that defines the run) matches, so a changed
config never resumes from a stale state.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..artifacts import atomic_path, write_dataframe_csv


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A per-epoch seed, so an epoch's randomness does not depend on whether the run resumed before it."""
    return int(hashlib.sha256(f"{seed}:{epoch}".encode()).hexdigest()[:8], 16)


def fingerprint(settings: Any) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_resume_state(path: str | os.PathLike, expected_fingerprint: str) -> dict | None:
    """The saved state if ``path`` holds a checkpoint of this very run, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a corrupt resume file is not worth failing for: start over
        print(f"ignoring unreadable resume file {path}: {error}")
        return None
    if state.get("fingerprint") != expected_fingerprint:
        print(f"ignoring {path}: it belongs to a run with other settings")
        return None
    return state


def write_log(path: str | os.PathLike, rows: list[dict]) -> None:
    write_dataframe_csv(path, pd.DataFrame(rows))


def autocast(device: torch.device, enabled: bool):
    """Mixed precision on CUDA only (CPU autocast is slower than float32 on these models)."""
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(max(1, int(threads)))


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: 'cuda' was asked for but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(name)


def torch_setup(threads: int, device: str) -> torch.device:
    """Thread count and device of a stage that runs a network (``threads``, ``device``: the rule's threads and config device)."""
    set_threads(threads)
    return resolve_device(device)


def read_checkpoint(path: str | os.PathLike, what: str, required: tuple[str, ...] = ("model", "architecture")) -> dict:
    """A pipeline checkpoint's payload; errors name the file and what it should have been."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} checkpoint {path} does not exist") from None
    except Exception as error:
        raise ValueError(f"{what} checkpoint {path} is unreadable: {error}") from error
    if not isinstance(payload, dict) or any(key not in payload for key in required):
        raise ValueError(f"{path} is not a {what} checkpoint of this pipeline")
    return payload


def save_trained(
    checkpoint_path: str | os.PathLike, log_path: str | os.PathLike, model: torch.nn.Module, settings: Any, rows: list[dict],
    resume_path: str | os.PathLike | None = None, **extra: Any,
) -> None:
    """The final artifacts of a trainer: weights with what rebuilds them, and the per-epoch log.

    The resume state is deleted once they are written: it exists to survive a
    kill, and a deliberate rerun (``--forcerun``) must train afresh.
    """
    save_checkpoint(checkpoint_path, {"model": model.state_dict(), "architecture": model.architecture(), "settings": dict(settings), "log": rows, **extra})
    write_log(log_path, rows)
    if resume_path is not None:
        Path(resume_path).unlink(missing_ok=True)
