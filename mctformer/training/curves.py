"""Training curves: one JSON line per logging interval beside a trainer's CSV log, and TensorBoard when asked.

Every trainer (classifier, AffinityNet, IRN's boundary net, DeepLab) writes ``<log>.jsonl`` beside its ``<log>.csv``:
a line every :data:`~mctformer.training.loop.LOSS_INTERVAL` steps and one at each epoch's end, each a JSON object

    {"kind": "interval" | "epoch", "epoch": 1, "step": 50, "loss": 0.41, "lr": 0.001, "images_per_second": 212.5, ...}

``step`` counts the optimizer steps done so far (all epochs); an interval line's ``loss`` is the mean step loss of
its interval, an epoch line's the epoch's mean and the CSV row's other numbers (loss parts, the classifier's
``val_map``, ``seconds``); ``images_per_second`` is steps x the section's batch size (the global batch, every rank's
images) over the wall-clock seconds since the previous line. The CSV log is unchanged. The JSON lines are written as
training goes, flushed line by line, to a hidden sibling ``.<log>.jsonl.live`` (``tail -f`` it), which becomes
``<log>.jsonl`` when the training ends: a killed training leaves no curves file that looks complete (Snakemake would
take it for an incomplete output and refuse the rerun), and a resumed training rewrites the lines of the epochs it
resumes after before it goes on.

With ``logging.tensorboard: true`` and the ``tensorboard`` extra installed (``pip install .[tensorboard]``), the same
numbers go to TensorBoard scalars under ``<trainer folder>/tensorboard/`` (``<trainer>/loss`` ...), and the classifier
adds a grid of its class maps on a few validation images after every epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def curves_path(log_path: str | os.PathLike) -> Path:
    """The JSON-lines file beside a trainer's CSV log: ``log.csv`` -> ``log.jsonl``."""
    return Path(log_path).with_suffix(".jsonl")


def tensorboard_folder(log_path: str | os.PathLike) -> Path:
    """Where a trainer's TensorBoard events go: ``<folder of its log>/tensorboard/<log name>``."""
    return Path(log_path).parent / "tensorboard" / Path(log_path).stem


def tensorboard_writer(folder: str | os.PathLike):
    """torch's TensorBoard SummaryWriter on ``folder``; the error says how to install the optional extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            f"logging.tensorboard is true but TensorBoard is not installed ({error}): pip install '.[tensorboard]' "
            "(or set logging.tensorboard to false; the JSON-lines curves are written either way)"
        ) from None
    return SummaryWriter(log_dir=str(folder))


def _plain(value: Any) -> Any:
    """A JSON-ready number: Python floats, NaN and infinities as null (JSON has none)."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class TrainingCurves:
    """The curve lines of one training run (see the module docstring); only the main rank makes one."""

    def __init__(self, path: str | os.PathLike, *, trainer: str, batch_size: int, tensorboard_dir: str | os.PathLike | None) -> None:
        self.path = Path(path)
        self.live_path = self.path.with_name(f".{self.path.name}.live")  # written as training goes; moved to path at the end
        self.trainer = trainer
        self.batch_size = batch_size
        self.lines: list[dict[str, Any]] = []
        self.epoch = 0
        self._handle = None
        self._clock = time.perf_counter()
        self._steps_at_clock = 0
        self.writer = None if tensorboard_dir is None else tensorboard_writer(tensorboard_dir)

    @property
    def writes_images(self) -> bool:
        return self.writer is not None

    def start(self, resumed: Sequence[Mapping[str, Any]], step: int) -> None:
        """Open the file afresh with the lines of the epochs a resumed run keeps (none for a fresh run)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.live_path, "w", buffering=1)
        self.lines = []
        for line in resumed:
            self._write(dict(line))
        self._clock, self._steps_at_clock = time.perf_counter(), step

    def _write(self, line: dict[str, Any]) -> None:
        line = {key: _plain(value) for key, value in line.items()}
        self.lines.append(line)
        assert self._handle is not None, "TrainingCurves.start() opens the file"
        self._handle.write(json.dumps(line) + "\n")
        if self.writer is not None:
            for key, value in line.items():
                if key not in ("kind", "epoch", "step") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{self.trainer}/{key}" if line["kind"] == "interval" else f"{self.trainer}/epoch_{key}",
                                           value, line["step"])

    def _rate(self, step: int) -> float:
        now = time.perf_counter()
        seconds, steps = now - self._clock, step - self._steps_at_clock
        self._clock, self._steps_at_clock = now, step
        return steps * self.batch_size / seconds if seconds > 0 else float("nan")

    def interval(self, *, epoch: int, step: int, loss: float, lr: float) -> None:
        """A line for the logging interval that ends at optimizer step ``step`` (of epoch ``epoch``, from 1)."""
        self.epoch = epoch
        self._write({"kind": "interval", "epoch": epoch, "step": step, "loss": loss, "lr": lr, "images_per_second": self._rate(step)})

    def epoch_end(self, row: Mapping[str, Any], step: int) -> None:
        """A line for the epoch's CSV row (its loss, parts, measured scores, lr, seconds)."""
        self.epoch = int(row["epoch"])
        self._write({"kind": "epoch", "step": step, **row, "images_per_second": self._rate(step)})

    def add_image(self, tag: str, image: np.ndarray) -> None:
        """An RGB uint8 image [H, W, 3] at the current epoch (TensorBoard only)."""
        if self.writer is not None:
            self.writer.add_image(f"{self.trainer}/{tag}", image, self.epoch, dataformats="HWC")

    def close(self) -> None:
        """The training ended: the live file becomes the curves file (an atomic rename)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            os.replace(self.live_path, self.path)
        if self.writer is not None:
            self.writer.close()


def read_curves(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines of a curves file; refuses a line that is not a JSON object, naming the file and the line."""
    lines = []
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError as error:
            raise ValueError(f"training curves {path}, line {number}: not JSON ({error})") from None
        if not isinstance(line, dict) or "kind" not in line or "step" not in line:
            raise ValueError(f"training curves {path}, line {number}: expected an object with kind and step")
        lines.append(line)
    return lines
