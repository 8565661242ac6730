"""Data-parallel training (DDP) under torchrun: one process per GPU, gloo on CPU.

A training stage given ``processes > 1`` relaunches itself through
``torch.distributed.run`` (:func:`run_under_torchrun`); every rank then trains
on its shard of each epoch's shuffled order and DDP averages the gradients, so
the ranks hold identical weights after every step. Only rank 0 evaluates,
logs and writes checkpoints. The global batch (config ``batch_size``) is split
over the ranks, so the learning-rate schedule is the single-process one.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ..settings import Placement


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_distributed() -> bool:
    return world()[1] > 1


def is_main() -> bool:
    return world()[0] == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); the device of this rank."""
    if not is_distributed():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def wrap(model: torch.nn.Module, device: torch.device, *, sync_batchnorm: bool) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks (checkpoints keep saving ``model`` itself).

    ``sync_batchnorm`` (deeplab.sync_batchnorm): the batch norms of ``model`` become SyncBatchNorm in place first, so
    each normalises over the global batch, not its rank's share (same parameters and buffers, so the optimizer built
    on them and the checkpoint keys stay). torch's SyncBatchNorm runs on CUDA only: on the CPU it is refused.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError("deeplab.sync_batchnorm: SyncBatchNorm needs CUDA ranks; set it to false for data-parallel runs on the CPU")
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:  # only a bare BatchNorm is replaced rather than converted in place
            raise ValueError("deeplab.sync_batchnorm: the model itself is a batch norm")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def shuffled_loader(dataset, batch_size: int, generator: torch.Generator, **loader_args: Any) -> Iterable:
    """One epoch of shuffled, full batches; under DDP this rank's 1/world of each batch, from one shared order."""
    rank, world_size = world()
    if world_size == 1:
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator, **loader_args)
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} does not split over {world_size} processes; use a multiple of {world_size}")
    # every rank draws the same seed from the epoch's generator, so the shards partition one permutation
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    return DataLoader(dataset, batch_size=batch_size // world_size, sampler=sampler, drop_last=True, **loader_args)


def run_under_torchrun(function: Callable[..., Any], arguments: dict[str, Any], processes: int) -> None:
    """Run ``function(**arguments)`` in ``processes`` ranks (torchrun on this node) and wait.

    ``function`` must be importable by its module and name (a module-level
    function); each rank imports it through :mod:`.launch`, so this module
    knows nothing of the stages that use it.
    """
    target = f"{function.__module__}:{function.__qualname__}"
    # pickled, not JSON: the stages take small frozen dataclasses (a DatasetRef) beside plain values; the file is
    # this job's own, read back by its own ranks
    with tempfile.NamedTemporaryFile("wb", suffix=".pkl", delete=False) as handle:
        pickle.dump(arguments, handle)
    try:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "mctformer.training.launch", target, handle.name,
        ]
        print("launching", " ".join(command), flush=True)
        # the ranks write where this process writes (a stage's log file under redirect_to_log)
        result = subprocess.run(command, stdout=_file_descriptor(sys.stdout), stderr=_file_descriptor(sys.stderr))
        if result.returncode:
            raise RuntimeError(f"{target} failed in one of its {processes} processes (exit {result.returncode}); see the log above")
    finally:
        os.unlink(handle.name)


def _file_descriptor(stream) -> int | None:
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # e.g. pytest's capture: inherit ours
        return None


def data_parallel_ranks(gpus: int, device: str) -> int:
    """How many ranks a data-parallel stage runs: one per GPU the job asked for (``gpus``) that torch sees.

    A scheduler or a workstation may give fewer than were asked for (CUDA_VISIBLE_DEVICES); a rank per missing GPU
    would fail on an invalid device ordinal, so the visible ones count, with a log line. ``device: cpu`` runs
    ``gpus`` gloo processes (how the tests exercise DDP); with no CUDA at all, torch_setup refuses ``auto``.
    """
    if gpus <= 1 or device == "cpu" or not torch.cuda.is_available():
        return max(1, gpus)
    visible = torch.cuda.device_count()
    if visible < gpus:
        print(f"the job asked for {gpus} GPUs but torch sees {visible} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}): "
              f"running {visible} data-parallel rank(s)", flush=True)
        return max(1, visible)
    return gpus


def relaunched_under_torchrun(stage: Callable[..., Any], arguments: Mapping[str, Any]) -> bool:
    """Run ``stage`` in :func:`data_parallel_ranks` torchrun ranks (from ``arguments['placement']``'s gpus and device)
    unless this already is one; True when it did."""
    if is_distributed():
        return False
    placement = arguments["placement"]
    processes = data_parallel_ranks(int(placement.gpus), placement.device)
    if processes <= 1:
        return False
    # each rank gets its share of the job's CPU threads (and, being a rank, does not relaunch)
    ranked = dict(arguments, threads=max(1, int(arguments["threads"]) // processes))
    run_under_torchrun(stage, ranked, processes)
    return True


def distributed_device(threads: int, placement: Placement, **setup_settings: Any) -> torch.device:
    """:func:`.common.torch_setup` (``setup_settings``: its keyword arguments), then this rank's device in the
    process group (if any)."""
    from .common import torch_setup

    return setup(torch_setup(threads, placement, **setup_settings))
