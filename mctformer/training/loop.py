"""The epoch loop every trainer runs: seeding, AMP, progress, per-epoch checkpoint and resume."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

from ..logs import progress_bar
from .common import (
    TrainerFiles,
    amp_mode,
    autocast,
    autocast_dtype,
    epoch_seed,
    fingerprint,
    grad_scaler,
    load_resume_state,
    save_checkpoint,
    save_trained,
    seed_everything,
)
from .curves import TrainingCurves
from .distributed import is_main, shuffled_loader


def poly_lr(base_lr: float, step: int, total_steps: int, power: float = 0.9) -> float:
    """base_lr * (1 - step / total)^power: DeepLab's and PSA's schedule."""
    return base_lr * (1.0 - min(step, total_steps) / max(total_steps, 1)) ** power


def set_group_lrs(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group at lr times its own ``lr_mult`` (1 unless the group says otherwise)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


def train_epochs(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    make_loader: Callable[[torch.Generator], Iterable],
    loss_of_batch: Callable[[Any], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    set_lr: Callable[[int], None],
    epochs: int,
    steps_per_epoch: int,
    seed: int,
    resume_path: str | os.PathLike,
    run_fingerprint: str,
    device: torch.device,
    amp: bool,
    amp_dtype: str,
    end_of_epoch: Callable[[], dict[str, float]] | None = None,
    description: str = "train",
    *,
    curves: TrainingCurves | None,
) -> list[dict]:
    """Train for ``epochs``, resuming from ``resume_path`` when it holds this run; returns the log rows.

    Each epoch reseeds every generator from (seed, epoch), so an interrupted and
    resumed run repeats exactly the epochs an uninterrupted one would run.
    Under DDP every rank runs this loop; only rank 0 evaluates, prints and saves.
    ``amp`` / ``amp_dtype``: the section's autocast (CUDA only; float16 with a GradScaler, bfloat16 without).
    ``curves`` (rank 0's; None: none): a line every LOSS_INTERVAL steps and at each epoch's end (mctformer.training.curves).
    """
    precision = autocast_dtype(amp_dtype, f"{description}.amp_dtype") if amp else None
    scaler = grad_scaler(device, precision)
    # the device type and what it computes in belong to the run: a resume state saved on the CPU (a disabled scaler's
    # empty state, float32 steps) is no state of a CUDA float16 run, so a resume file of another device is not resumed
    run_fingerprint = fingerprint({"run": run_fingerprint, "device": device.type, "compute": amp_mode(device, precision)})
    start_epoch, rows, curve_lines = 0, [], []
    state = load_resume_state(resume_path, run_fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_scaler(scaler, state["scaler"], resume_path)
        start_epoch, rows, curve_lines = state["epoch"], state["log"], state.get("curve", [])
        print(f"resuming {description} from {resume_path} after epoch {start_epoch}")
    if curves is not None:
        curves.start(curve_lines, step=start_epoch * steps_per_epoch)

    for epoch in range(start_epoch, epochs):
        started = time.time()
        seed_everything(epoch_seed(seed, epoch))
        loader = make_loader(torch.Generator().manual_seed(epoch_seed(seed, epoch)))
        model.train()
        if curves is not None:
            curves.epoch = epoch + 1
        # the step losses stay on the device (no host sync per step) until a logging interval reads them; the epoch's
        # numbers are the same float64 means of the float32 losses that per-step .item() calls gave
        step_losses: list[torch.Tensor] = []
        parts_sum: dict[str, torch.Tensor] = {}
        progress = progress_bar(loader, desc=f"{description} epoch {epoch + 1}/{epochs}", unit="batch", mininterval=2.0, disable=not is_main())
        for step_in_epoch, batch in enumerate(progress):
            set_lr(epoch * steps_per_epoch + step_in_epoch)
            with autocast(device, precision):
                loss, parts = loss_of_batch(batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step_losses.append(loss.detach())
            for key, value in parts.items():
                parts_sum[key] = parts_sum.get(key, torch.zeros((), dtype=torch.float64, device=value.device)) + value.double()
            if (step_in_epoch + 1) % LOSS_INTERVAL == 0:
                interval_loss = float(host_losses(step_losses[-LOSS_INTERVAL:]).mean())
                progress.set_postfix(loss=f"{interval_loss:.4f}")
                if curves is not None:
                    curves.interval(epoch=epoch + 1, step=epoch * steps_per_epoch + step_in_epoch + 1, loss=interval_loss,
                                    lr=optimizer.param_groups[0]["lr"])
        losses = host_losses(step_losses)
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if len(losses) else float("nan")}
        row.update({key: value.item() / max(len(losses), 1) for key, value in parts_sum.items()})
        if end_of_epoch is not None and is_main():
            row.update(end_of_epoch())
        row["lr"] = optimizer.param_groups[0]["lr"]
        row["seconds"] = time.time() - started
        rows.append(row)
        if curves is not None:
            curves.epoch_end(row, step=epoch * steps_per_epoch + len(losses))
        if is_main():
            print(f"{description} epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
            save_checkpoint(resume_path, {
                "fingerprint": run_fingerprint, "epoch": epoch + 1, "log": rows, "curve": [] if curves is None else curves.lines,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            })
    if curves is not None:
        curves.close()
    return rows


LOSS_INTERVAL = 50  # steps between the progress bar's loss readings (the mean over them)


def host_losses(step_losses: list[torch.Tensor]) -> np.ndarray:
    """Step losses as float64 on the host in one transfer: the values per-step ``loss.item()`` calls would give."""
    if not step_losses:
        return np.zeros(0)
    return torch.stack(step_losses).double().cpu().numpy()


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict, resume_path: str | os.PathLike) -> None:
    """Load a resume file's GradScaler state, or start the scaler afresh (saying so) when it saved none.

    A disabled scaler (CPU, or bfloat16) saves ``{}``, which an enabled one refuses ("The source state dict is empty");
    the fingerprint keeps such files from being resumed, and this keeps one that slips through from crashing.
    """
    if scaler.is_enabled() and not saved:
        print(f"{resume_path} holds no loss-scaler state (saved without float16 autocast): the scaler starts afresh")
        return
    if scaler.is_enabled():
        scaler.load_state_dict(saved)


def backbone_and_head_groups(model: torch.nn.Module, head_lr_mult: float) -> list[dict]:
    """Optimizer parameter groups: the backbone at the base lr, ``model.head_parameters()`` at ``head_lr_mult`` times it."""
    head = model.head_parameters()
    head_ids = set(map(id, head))
    return [
        {"params": [p for p in model.parameters() if id(p) not in head_ids], "lr_mult": 1.0},
        {"params": head, "lr_mult": head_lr_mult},
    ]


OPTIMIZERS = ("sgd", "adamw")


def sgd_or_adamw(groups: list[dict], settings: Mapping[str, Any], section: str) -> torch.optim.Optimizer:
    """The optimizer ``settings["optimizer"]`` names over ``groups``: SGD with momentum or AdamW, at the settings' lr
    and weight decay (``section``: the config section, for the error)."""
    if settings["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"{section}.optimizer must be one of {OPTIMIZERS}, got {settings['optimizer']!r}")
    if settings["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=settings["lr"], momentum=settings["momentum"], weight_decay=settings["weight_decay"])
    return torch.optim.AdamW(groups, lr=settings["lr"], weight_decay=settings["weight_decay"])


def fit_poly(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset,
    loss_of_batch: Callable[[Any], tuple[torch.Tensor, dict[str, float]]],
    settings: dict,
    files: TrainerFiles,
    run_fingerprint: str,
    device: torch.device,
    seed: int,
    workers: int,
    description: str,
) -> dict:
    """Dense-prediction training (AffinityNet, IRN, DeepLab): shuffled batches, poly schedule, final checkpoint and
    log, the curve lines beside the log (and TensorBoard's where ``files.tensorboard`` is set)."""

    batch_size = settings["batch_size"]
    steps_per_epoch = max(1, len(dataset) // batch_size)
    total_steps = settings["epochs"] * steps_per_epoch
    started = time.time()
    rows = train_epochs(
        model, optimizer,
        make_loader=lambda generator: shuffled_loader(dataset, batch_size, generator, num_workers=workers),
        loss_of_batch=loss_of_batch,
        set_lr=lambda step: set_group_lrs(optimizer, poly_lr(settings["lr"], step, total_steps)),
        epochs=settings["epochs"], steps_per_epoch=steps_per_epoch, seed=seed,
        resume_path=files.resume, run_fingerprint=run_fingerprint, device=device, amp=settings["amp"],
        amp_dtype=settings["amp_dtype"], description=description,
        curves=TrainingCurves(files.curves, trainer=description, batch_size=batch_size, tensorboard_dir=files.tensorboard)
        if is_main() else None,
    )
    if is_main():
        save_trained(files, model, settings, rows)
    return {"seconds": time.time() - started, "final": rows[-1] if rows else None}
