"""Multi-label classification training of MCTformer (paper Sec. 3.2 / 4.1).

AdamW with lr scaled by batch/512, weight decay, cosine schedule with warm-up
(timm's scheduler, stepped per update, or per epoch with the reference's lag:
``lr_schedule``), drop-path, AMP on CUDA. Checkpoints
every epoch and resumes after a kill.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader

from ..data.datasets import ClassificationDataset
from ..data.transforms import classification_transform
from ..data.voc import DatasetError, VOCLayout
from ..logs import progress_bar
from ..metrics import mean_average_precision
from ..models.mctformer import MCTformer, classification_loss, create_mctformer, model_summary, plus_loss_terms
from .common import TrainerFiles, autocast, fingerprint, read_checkpoint, save_trained, seed_everything
from .curves import TrainingCurves
from .distributed import is_main, shuffled_loader, wrap
from .loop import train_epochs


def build_classifier(settings: Mapping[str, Any], num_classes: int) -> MCTformer:
    """A fresh MCTformer from the config's ``classifier`` section (every key it reads is required)."""
    return create_mctformer(
        settings["arch"],
        num_classes=num_classes,
        version=settings["version"],
        token_pooling=settings["token_pooling"],
        drop_path_rate=settings["drop_path"],
        patchcam_init=settings["patchcam_init"],
        pretrained=settings["pretrained"],
        locality_sigma=settings["locality_sigma"],
        input_size=settings["input_size"],
        gwrp_decay=settings["gwrp_decay"],
    )


# Keys a checkpoint's saved ``settings`` may lack because it was written before the key existed, with
# the value every such checkpoint was trained with. Only these are filled in; the config is never read.
# (gwrp_decay came with MCTformer+: every older checkpoint is a V1/V2, which does not read it.)
LEGACY_CLASSIFIER_SETTINGS = {"patchcam_init": "trunc_normal", "locality_sigma": None, "gwrp_decay": 0.996}


def load_classifier(
    path: str | os.PathLike, num_classes: int | None = None, *, device: str | torch.device, version: str | None = None,
    class_names: Sequence[str] | None = None,
) -> MCTformer:
    """Rebuild a trained classifier from its ``checkpoint.pt`` on ``device``; refuses another class count, another
    ``version`` (classifier.version; None: any) and, where the checkpoint records them, other ``class_names`` (the
    config's data.classes; a checkpoint written before they were recorded is checked by count alone)."""
    payload = read_checkpoint(path, "classifier", ("model", "architecture", "settings"))
    if "num_classes" not in payload["architecture"]:  # e.g. an AffinityNet or DeepLab checkpoint
        raise ValueError(f"{path} is not a classifier (MCTformer) checkpoint of this pipeline")
    saved_classes = payload["architecture"]["num_classes"]
    if num_classes is not None and saved_classes != num_classes:
        raise ValueError(f"classifier checkpoint {path} was trained for {saved_classes} classes, the config has {num_classes}")
    saved_names = payload.get("class_names")
    if class_names is not None and saved_names is not None and list(saved_names) != list(class_names):
        raise ValueError(f"classifier checkpoint {path} was trained for the classes {', '.join(saved_names)}, the config "
                         f"has {', '.join(class_names)}")
    saved_version = payload["architecture"].get("version")
    if version is not None and saved_version != version:
        raise ValueError(f"classifier checkpoint {path} holds an MCTformer-{str(saved_version).upper()}, "
                         f"the config's classifier.version is {version!r}")
    # no pretrained weights to read: the checkpoint's own follow; patchcam_init only shapes a fresh model's init
    settings = {**LEGACY_CLASSIFIER_SETTINGS, **payload["settings"], "pretrained": None}
    model = build_classifier(settings, saved_classes)
    recorded = {"locality_sigma": LEGACY_CLASSIFIER_SETTINGS["locality_sigma"], **payload["architecture"]}
    if model.architecture() != recorded:
        raise ValueError(f"classifier checkpoint {path} holds {recorded}, the config builds {model.architecture()}")
    model.load_state_dict(payload["model"])
    return model.to(device).eval()


LR_SCHEDULES = ("per_step", "per_epoch_reference")


def build_optimizer(model: torch.nn.Module, settings: Mapping[str, Any], lr: float) -> torch.optim.AdamW:
    """AdamW; ``weight_decay_exempt``: no decay on 1-D parameters (biases, LayerNorm) and on what the
    reference's model.no_weight_decay() names (MCTformer.no_weight_decay: the class tokens and, for
    V1/V2, the position embeddings), as the reference (timm's param_groups_weight_decay, the helper
    timm's create_optimizer uses); else decay on every parameter."""
    if settings["weight_decay_exempt"]:
        from timm.optim import param_groups_weight_decay

        skip = set(model.no_weight_decay())
        groups = param_groups_weight_decay(model, settings["weight_decay"], no_weight_decay_list=sorted(skip))
        return torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=settings["weight_decay"])


def lr_schedule(optimizer: torch.optim.Optimizer, settings: Mapping[str, Any], steps_per_epoch: int):
    """``set_lr(global_step)`` of timm's cosine schedule with linear warm-up from ``warmup_lr``.

    per_step: over epochs x steps, warm-up in steps, updated every step.
    per_epoch_reference: the reference's (t_initial = epochs, warm-up in epochs,
    ``lr_scheduler.step(epoch)`` after each epoch): epoch e runs at the
    schedule's value for e - 1, epoch 0 at its value for 0, so with warm-up the
    first two epochs both run at the warm-up start lr.
    """
    mode = settings["lr_schedule"]
    if mode not in LR_SCHEDULES:
        raise ValueError(f"classifier.lr_schedule must be one of {LR_SCHEDULES}, got {mode!r}")
    warmup_lr = settings["warmup_lr"]
    if mode == "per_step":
        scheduler = CosineLRScheduler(
            optimizer,
            t_initial=settings["epochs"] * steps_per_epoch,
            lr_min=settings["min_lr"],
            warmup_t=int(round(settings["warmup_epochs"] * steps_per_epoch)),
            warmup_lr_init=warmup_lr,
            t_in_epochs=False,
        )
        return scheduler.step_update
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=settings["epochs"],
        lr_min=settings["min_lr"],
        warmup_t=settings["warmup_epochs"],
        warmup_lr_init=warmup_lr,
        t_in_epochs=True,
    )
    # stateless in the epoch, so a resumed run sets the same lr as an uninterrupted one
    return lambda step: scheduler.step(max(step // steps_per_epoch - 1, 0))


GRID_IMAGES = 4  # validation images in the TensorBoard class-map grid


@torch.no_grad()
def class_map_grid(model: MCTformer, images: torch.Tensor, device: torch.device) -> np.ndarray:
    """RGB uint8 [rows * H, (1 + C) * W, 3]: each image (its own min-max), then each class's map over it in the jet
    colours, each map min-max normalised: ReLU(Patch-CAM) for V2 and MCTformer+, the last block's head-averaged
    class-to-patch attention for V1 (no Patch-CAM). Float32, whatever training's autocast; restores train mode."""
    import matplotlib

    was_training = model.training
    model.eval()
    output = model.forward_tokens(images.to(device), position_resampling="size", return_attention=model.version == "v1")
    if output.patchcam is not None:
        maps = torch.relu(output.patchcam.float())
    else:
        num_classes, (grid_h, grid_w) = model.num_classes, output.grid
        maps = output.attentions[-1][:, :num_classes, num_classes:].float().reshape(len(images), num_classes, grid_h, grid_w)
    model.train(was_training)
    size = images.shape[-2:]
    maps = torch.nn.functional.interpolate(maps, size=size, mode="bilinear", align_corners=False).cpu()
    low, high = maps.amin(dim=(2, 3), keepdim=True), maps.amax(dim=(2, 3), keepdim=True)
    maps = ((maps - low) / (high - low).clamp_min(1e-8)).numpy()
    pictures = images.float().cpu()
    low, high = pictures.amin(dim=(1, 2, 3), keepdim=True), pictures.amax(dim=(1, 2, 3), keepdim=True)
    pictures = ((pictures - low) / (high - low).clamp_min(1e-8)).permute(0, 2, 3, 1).numpy()
    jet = matplotlib.colormaps["jet"]
    rows = [np.concatenate([picture, *(0.5 * picture + 0.5 * jet(class_map)[..., :3] for class_map in image_maps)], axis=1)
            for picture, image_maps in zip(pictures, maps)]
    return (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)


@torch.no_grad()
def evaluate_map(model: MCTformer, loader: DataLoader, device: torch.device, amp: bool | str | None) -> float:
    """Validation mAP; ``amp``: the autocast setting (common.autocast)."""
    model.eval()
    scores, targets = [], []
    for images, target in loader:
        with autocast(device, amp):
            output = model(images.to(device, non_blocking=True))
        scores.append(output.token_logits.float().cpu().numpy())
        targets.append(target.numpy())
    return mean_average_precision(np.concatenate(scores), np.concatenate(targets))


@torch.no_grad()
def image_scores(
    model: MCTformer, layout, ids: Sequence[str], settings: Mapping[str, Any], *, device: torch.device, batch_size: int,
) -> np.ndarray:
    """sigmoid of the classifier's class scores [N, C] for the images of ``ids``: the validation mAP's forward
    (:func:`evaluate_map`: the evaluation transform of ``settings``, the run's classifier section, and its autocast),
    one image at a time through the same dataset class, in batches of ``batch_size``."""
    num_classes = model.num_classes
    unlabelled = {image_id: np.zeros(num_classes, dtype=np.float32) for image_id in ids}
    transform = classification_transform(settings["input_size"], False, settings["augment"])
    loader = DataLoader(ClassificationDataset(layout, ids, unlabelled, transform), batch_size=batch_size, shuffle=False)
    amp = settings["amp_dtype"] if settings["amp"] else None
    model.eval()
    scores = []
    for images, _ in progress_bar(loader, desc="classifier scores", unit="batch", mininterval=2.0):
        with autocast(device, amp):
            output = model(images.to(device, non_blocking=True))
        scores.append(torch.sigmoid(output.token_logits.float()).cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros((0, num_classes), dtype=np.float32)


def train_classifier(
    layout: VOCLayout,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    class_labels: Mapping[str, np.ndarray],
    settings: Mapping[str, Any],
    files: TrainerFiles,
    *,
    device: torch.device,
    seed: int,
    workers: int,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Train (``settings`` = the config's ``classifier`` section; ``seed``, ``workers``: the config's seed and
    classifier.workers), then write ``files.checkpoint`` (final weights, with ``class_names``, data.classes, for
    :func:`load_classifier`'s check) and ``files.log`` (one row per epoch); the curve lines beside the log as it
    trains (and TensorBoard's where ``files.tensorboard`` is set, with a grid of class maps on the first validation
    images after each epoch)."""
    if not train_ids:
        raise DatasetError("train_classifier: the training split list is empty")
    num_classes = len(next(iter(class_labels.values())))
    run_fingerprint = fingerprint({"settings": settings, "seed": seed, "train": len(train_ids), "val": len(val_ids), "classes": num_classes})
    seed_everything(seed)
    model = build_classifier(settings, num_classes).to(device)
    size = model_summary(model, settings["input_size"])
    print(f"MCTformer-{model.version.upper()} {settings['arch']}: {size['params'] / 1e6:.2f} M parameters, "
          f"{size['macs'] / 1e9:.3f} GMACs per {settings['input_size']}px image")
    augment = settings["augment"]
    train_set = ClassificationDataset(layout, train_ids, class_labels, classification_transform(settings["input_size"], True, augment))
    val_set = ClassificationDataset(layout, val_ids, class_labels, classification_transform(settings["input_size"], False, augment))
    batch_size = settings["batch_size"]
    loader_args = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False)
    val_loader = DataLoader(val_set, batch_size=batch_size * 2, shuffle=False, **loader_args)

    lr = settings["base_lr"] * batch_size / 512
    optimizer = build_optimizer(model, settings, lr)
    steps_per_epoch = max(1, len(train_set) // batch_size)
    set_lr = lr_schedule(optimizer, settings, steps_per_epoch)
    amp, amp_dtype = bool(settings["amp"]), settings["amp_dtype"]

    trained = wrap(model, device, sync_batchnorm=False)  # DDP under torchrun, else the model itself (a ViT: no batch norm)

    def loss_of_batch(batch):
        images, targets = batch
        output, targets = trained(images.to(device, non_blocking=True)), targets.to(device)
        if model.version != "plus":
            return classification_loss(output, targets), {}
        terms = plus_loss_terms(output, targets, cct_weight=settings["cct_weight"], cct_blocks=settings["cct_blocks"])
        return terms["total"], {f"{name}_loss": value.detach() for name, value in terms.items() if name != "total"}

    curves = None
    if is_main():
        curves = TrainingCurves(files.curves, trainer="classifier", batch_size=batch_size, tensorboard_dir=files.tensorboard)
    grid_images = torch.stack([val_set[i][0] for i in range(min(GRID_IMAGES, len(val_set)))]) if curves and curves.writes_images else None

    def end_of_epoch() -> dict[str, float]:
        scores = {"val_map": evaluate_map(model, val_loader, device, amp_dtype if amp else None) if len(val_set) else float("nan")}
        if grid_images is not None and len(grid_images):
            curves.add_image("class_maps", class_map_grid(model, grid_images, device))
        return scores

    started = time.time()
    rows = train_epochs(
        model, optimizer,
        make_loader=lambda generator: shuffled_loader(train_set, batch_size, generator, **loader_args),
        loss_of_batch=loss_of_batch,
        set_lr=set_lr,
        epochs=settings["epochs"], steps_per_epoch=steps_per_epoch, seed=seed,
        resume_path=files.resume, run_fingerprint=run_fingerprint, device=device, amp=amp,
        amp_dtype=amp_dtype,
        end_of_epoch=end_of_epoch,
        description="classifier",
        curves=curves,
    )

    summary = {"seconds": time.time() - started, "epochs": settings["epochs"], "final": rows[-1] if rows else None}
    if is_main():
        names = {} if class_names is None else {"class_names": list(class_names)}
        save_trained(files, model, settings, rows, class_count=num_classes, **names)
    return summary
