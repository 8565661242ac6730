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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..artifacts import atomic_path, write_dataframe_csv
from ..settings import Placement
from .curves import curves_path, tensorboard_folder


@dataclass(frozen=True)
class TrainerFiles:
    """The files of one training: the final ``checkpoint``, the per-epoch CSV ``log`` (its curve lines beside it,
    :func:`curves`), the ``resume`` state that survives a kill, and ``tensorboard``'s folder (None: no TensorBoard)."""

    checkpoint: str | os.PathLike
    log: str | os.PathLike
    resume: str | os.PathLike
    tensorboard: str | os.PathLike | None

    @classmethod
    def of_rule(cls, checkpoint: str, log_csv: str, resume: str, *, tensorboard: bool) -> TrainerFiles:
        """A trainer rule's files; ``tensorboard``: logging.tensorboard, the events beside the log
        (training.curves.tensorboard_folder)."""
        return cls(checkpoint, log_csv, resume, tensorboard_folder(log_csv) if tensorboard else None)

    @property
    def curves(self) -> Path:
        return curves_path(self.log)


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


# autocast's dtypes by their config name (the training sections' amp_dtype); float16 needs a GradScaler, bfloat16
# (float32's exponent range) does not
AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
# Device types whose autocast the pipeline uses. CPU autocast is slower than float32 on these models and would change
# every CPU number, so an amp setting means CUDA only; the CPU tolerance tests add "cpu" here to run the same code paths.
AUTOCAST_DEVICE_TYPES = {"cuda"}


def autocast_dtype(amp: bool | str | None, key: str = "amp_dtype") -> str | None:
    """The autocast dtype an amp setting names: None (no autocast) for False, None or "float32"; "float16" for True
    (a boolean ``amp`` such as maps.amp: the reference's float16); "float16" / "bfloat16" as given. ``key``: the
    config key named in the error."""
    if amp is None or amp is False or amp == "float32":
        return None
    if amp is True:
        return "float16"
    if amp not in AMP_DTYPES:
        raise ValueError(f"{key} must be one of {tuple(AMP_DTYPES)}, got {amp!r}")
    return amp


def amp_active(device: torch.device, amp: bool | str | None) -> bool:
    """Whether a stage with the amp setting ``amp`` (see autocast_dtype) runs under autocast on ``device``."""
    return autocast_dtype(amp) is not None and device.type in AUTOCAST_DEVICE_TYPES


def autocast(device: torch.device, amp: bool | str | None):
    """The one autocast context of the package (training and inference): mixed precision in the dtype ``amp`` names
    (autocast_dtype: True = float16, "float16", "bfloat16"; False / None / "float32": none) when ``device`` is one the
    pipeline autocasts on (CUDA; AUTOCAST_DEVICE_TYPES), else a disabled autocast context."""
    dtype = autocast_dtype(amp)
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[dtype or "float16"], enabled=amp_active(device, dtype))


def grad_scaler(device: torch.device, amp: bool | str | None) -> torch.amp.GradScaler:
    """The loss scaler of a training step: enabled under float16 autocast only (bfloat16 does not underflow like it)."""
    return torch.amp.GradScaler(device.type, enabled=amp_active(device, amp) and autocast_dtype(amp) == "float16")


def amp_mode(device: torch.device, amp: bool | str | None) -> str:
    """What a stage computes in on ``device``, as its log line and a resume state record it: "float32" or "autocast <dtype>"."""
    return f"autocast {autocast_dtype(amp)}" if amp_active(device, amp) else "float32"


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(max(1, int(threads)))


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: 'cuda' was asked for but no CUDA device is available ({cuda_diagnosis()}; use 'auto' or 'cpu')")
    return torch.device(name)


def cuda_diagnosis() -> str:
    """Why torch may see no GPU, in the terms one checks: the wheel's CUDA, the visible devices, the count."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (f"torch {torch.__version__} built for CUDA {torch.version.cuda}, CUDA_VISIBLE_DEVICES="
            f"{'(unset)' if visible is None else repr(visible)}, {torch.cuda.device_count()} device(s) visible; an older driver "
            f"than the wheel needs, or a SLURM job without --gpus, also shows as none")


# Ops of this pipeline without a deterministic CUDA kernel in torch 2.x (torch.use_deterministic_algorithms' list):
# under `deterministic: true` they still run, and torch warns when one does.
NONDETERMINISTIC_CUDA_OPS = (
    "F.interpolate bilinear backward (DeepLab's logits; AffinityNet's and IRN's feature levels)",
    "NLLLoss / F.cross_entropy on 4-D logits (DeepLab training)",
)


def set_deterministic(enabled: bool, device: torch.device) -> str:
    """``deterministic: true``: deterministic algorithms (warn-only, so an op without one still runs), cuDNN
    deterministic without autotuning, cuBLAS's fixed workspace. False leaves torch's defaults. Returns the log's words."""
    if not enabled:
        return "deterministic off"
    # cuBLAS reads this when it initialises, which is after this call: no CUDA work precedes torch_setup
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if device.type != "cuda":
        return "deterministic on"
    return "deterministic on; no deterministic CUDA kernel for: " + "; ".join(NONDETERMINISTIC_CUDA_OPS)


def device_name(device: torch.device) -> str:
    if device.type != "cuda":
        return "CPU"
    return torch.cuda.get_device_name(device)


def torch_setup(threads: int, placement: Placement, *, amp_dtype: str | None) -> torch.device:
    """Thread count, device and determinism of a stage that runs a network, and one log line saying what it runs on.

    ``threads``: the rule's threads; ``placement``: the config's device and deterministic and the GPUs the rule's job
    asked for (resources.rules.<rule>.gpus); ``amp_dtype``: the dtype the stage
    autocasts to where autocast is used (its section's amp_dtype, or "float16" for an ``amp`` without one), None:
    float32. ``device: auto`` with GPUs asked for and no CUDA visible is refused: the job would otherwise run on the
    CPU without a word.
    """
    device, gpus = placement.device, placement.gpus
    set_threads(threads)
    if device == "auto" and gpus > 0 and not torch.cuda.is_available():
        raise RuntimeError(
            f"device: auto, and this job asked for {gpus} GPU(s) (resources.rules.<rule>.gpus), but torch sees no CUDA device "
            f"({cuda_diagnosis()}); set device: cpu to run on the CPU on purpose, or resources gpus: 0"
        )
    torch_device = resolve_device(device)
    determinism = set_deterministic(placement.deterministic, torch_device)
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    ranked = f" (rank {rank} of {world_size})" if world_size > 1 else ""
    print(f"device{ranked}: {torch_device} ({device_name(torch_device)}; device: {device}, {gpus} GPU(s) asked for), "
          f"compute {amp_mode(torch_device, amp_dtype)}, {torch.get_num_threads()} threads, {determinism}", flush=True)
    return torch_device


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


def save_trained(files: TrainerFiles, model: torch.nn.Module, settings: Any, rows: list[dict], **extra: Any) -> None:
    """The final artifacts of a trainer: weights with what rebuilds them, and the per-epoch log.

    The resume state is deleted once they are written: it exists to survive a
    kill, and a deliberate rerun (``--forcerun``) must train afresh.
    """
    save_checkpoint(files.checkpoint, {"model": model.state_dict(), "architecture": model.architecture(), "settings": dict(settings), "log": rows, **extra})
    write_log(files.log, rows)
    Path(files.resume).unlink(missing_ok=True)
