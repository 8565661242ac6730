"""What the device-aware benchmarks share: the device, timing that waits for the GPU, peak memory, the config and --json.

Peak memory is torch.cuda.max_memory_allocated on CUDA (reset before each measurement) and the process's peak RSS on a
CPU (ru_maxrss: it only grows, so on a CPU it is the peak of everything the process did so far).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def add_device_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """--device, --config, --json: the same three on every benchmark that can run on a GPU."""
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (auto: cuda when torch sees one)")
    parser.add_argument("--config", action="append", default=[],
                        help="config overlay(s) over config.yaml, as snakemake --configfile (e.g. workflow/configs/voc12.yaml: the paper's sizes)")
    parser.add_argument("--json", help=f"also write what was measured, for the docs (docs/results/benchmarks/{name}.json) or the device check")


def config_of(args: argparse.Namespace) -> dict:
    """The config as the workflow resolves it from config.yaml and ``--config`` (pretrained weights dropped: random weights)."""
    from mctformer.config import load_config

    return load_config([str(REPO / path) if not Path(path).is_absolute() else path for path in args.config])[0]


def device_of(args: argparse.Namespace) -> torch.device:
    from mctformer.training.common import resolve_device

    return resolve_device(args.device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float:
    """Peak GPU memory allocated since :func:`reset_peak` (CUDA), else the process's peak RSS (MiB)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def peak_label(device: torch.device) -> str:
    return "peak GPU MiB" if device.type == "cuda" else "peak RSS MiB"


def best_seconds(function: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Best of ``repeats`` timed runs after ``warmup`` untimed ones, each waiting for the GPU to finish."""
    for _ in range(warmup):
        function()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def write_json(args: argparse.Namespace, benchmark: str, measured: Mapping[str, Any], speedup: float | None, target: str | None,
               device: torch.device) -> None:
    if not args.json:
        return
    from mctformer.docs import write_benchmark_json

    write_benchmark_json(args.json, benchmark=benchmark, command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                         measured=measured, speedup=speedup, target=target, threads=torch.get_num_threads(), device=str(device))
