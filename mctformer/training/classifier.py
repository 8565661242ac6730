"""Multi-label classification training of MCTformer (paper Sec. 3.2 / 4.1).

AdamW with lr scaled by batch/512, weight decay, cosine schedule with warm-up
(timm's scheduler, stepped per update), drop-path, AMP on CUDA. Checkpoints
every epoch and resumes after a kill.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.datasets import ClassificationDataset
from ..data.transforms import classification_transform
from ..data.voc import DatasetError, VOCLayout
from ..metrics import mean_average_precision
from ..models.mctformer import MCTformer, classification_loss, create_mctformer
from .common import (
    autocast,
    epoch_seed,
    fingerprint,
    load_resume_state,
    save_checkpoint,
    seed_everything,
    write_log,
)


def build_classifier(settings: Mapping[str, Any], num_classes: int) -> MCTformer:
    return create_mctformer(
        settings["arch"],
        num_classes=num_classes,
        version=settings["version"],
        token_pooling=settings["token_pooling"],
        drop_path_rate=settings["drop_path"],
        pretrained=settings.get("pretrained"),
    )


def load_classifier(path: str | os.PathLike, num_classes: int | None = None, device: str | torch.device = "cpu") -> MCTformer:
    """Rebuild a trained classifier from its ``checkpoint.pt``; refuses another class count."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"classifier checkpoint {path} does not exist") from None
    except Exception as error:
        raise ValueError(f"classifier checkpoint {path} is unreadable: {error}") from error
    if not isinstance(payload, dict) or "settings" not in payload or "model" not in payload:
        raise ValueError(f"{path} is not a classifier checkpoint of this pipeline")
    saved_classes = payload["architecture"]["num_classes"]
    if num_classes is not None and saved_classes != num_classes:
        raise ValueError(f"classifier checkpoint {path} was trained for {saved_classes} classes, the config has {num_classes}")
    settings = dict(payload["settings"], pretrained=None)
    model = build_classifier(settings, saved_classes)
    if model.architecture() != payload["architecture"]:
        raise ValueError(f"classifier checkpoint {path} holds {payload['architecture']}, the config builds {model.architecture()}")
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


@torch.no_grad()
def evaluate_map(model: MCTformer, loader: DataLoader, device: torch.device, amp: bool) -> float:
    model.eval()
    scores, targets = [], []
    for images, target in loader:
        with autocast(device, amp):
            output = model(images.to(device, non_blocking=True))
        scores.append(output.token_logits.float().cpu().numpy())
        targets.append(target.numpy())
    return mean_average_precision(np.concatenate(scores), np.concatenate(targets))


def train_classifier(
    layout: VOCLayout,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    class_labels: Mapping[str, np.ndarray],
    settings: Mapping[str, Any],
    checkpoint_path: str | os.PathLike,
    log_path: str | os.PathLike,
    resume_path: str | os.PathLike,
    device: torch.device,
    seed: int = 0,
    workers: int = 0,
) -> dict:
    """Train, then write ``checkpoint_path`` (final weights) and ``log_path`` (one row per epoch)."""
    if not train_ids:
        raise DatasetError("train_classifier: the training split list is empty")
    num_classes = len(next(iter(class_labels.values())))
    run_fingerprint = fingerprint({"settings": settings, "seed": seed, "train": len(train_ids), "val": len(val_ids), "classes": num_classes})
    seed_everything(seed)
    model = build_classifier(settings, num_classes).to(device)
    augment = settings["augment"]
    train_set = ClassificationDataset(layout, train_ids, class_labels, classification_transform(settings["input_size"], True, augment))
    val_set = ClassificationDataset(layout, val_ids, class_labels, classification_transform(settings["input_size"], False, augment))
    batch_size = settings["batch_size"]
    loader_args = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False)
    val_loader = DataLoader(val_set, batch_size=batch_size * 2, shuffle=False, **loader_args)

    lr = settings["base_lr"] * batch_size / 512
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings["weight_decay"])
    steps_per_epoch = max(1, len(train_set) // batch_size)
    total_steps = settings["epochs"] * steps_per_epoch
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=total_steps,
        lr_min=settings["min_lr"],
        warmup_t=int(round(settings["warmup_epochs"] * steps_per_epoch)),
        warmup_lr_init=settings["min_lr"],
        t_in_epochs=False,
    )
    amp = bool(settings.get("amp", True)) and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    start_epoch, rows = 0, []
    state = load_resume_state(resume_path, run_fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, rows = state["epoch"], state["log"]
        print(f"resuming classifier training from {resume_path} after epoch {start_epoch}")

    started = time.time()
    for epoch in range(start_epoch, settings["epochs"]):
        seed_everything(epoch_seed(seed, epoch))
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator, **loader_args)
        model.train()
        losses = []
        progress = tqdm(loader, desc=f"classifier epoch {epoch + 1}/{settings['epochs']}", unit="batch")
        for step_in_epoch, (images, targets) in enumerate(progress):
            step = epoch * steps_per_epoch + step_in_epoch
            scheduler.step_update(step)
            with autocast(device, amp):
                loss = classification_loss(model(images.to(device, non_blocking=True)), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            progress.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        val_map = evaluate_map(model, val_loader, device, amp) if len(val_set) else float("nan")
        rows.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_map": val_map, "lr": optimizer.param_groups[0]["lr"]})
        print(f"epoch {epoch + 1}: loss {rows[-1]['loss']:.4f} val mAP {val_map:.4f}")
        save_checkpoint(resume_path, {
            "fingerprint": run_fingerprint, "epoch": epoch + 1, "log": rows,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        })

    summary = {"seconds": time.time() - started, "epochs": settings["epochs"], "final": rows[-1] if rows else None}
    save_checkpoint(checkpoint_path, {
        "model": model.state_dict(),
        "architecture": model.architecture(),
        "settings": dict(settings),
        "class_count": num_classes,
        "log": rows,
    })
    write_log(log_path, rows)
    return summary
