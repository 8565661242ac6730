"""Training curves: the JSON lines every trainer writes beside its CSV log, TensorBoard when asked, the report's figure."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from helpers.arguments import tiny_mctformer
from mctformer.training.common import TrainerFiles
from mctformer.training.curves import TrainingCurves, curves_path, read_curves
from mctformer.training.loop import LOSS_INTERVAL, train_epochs

STEPS = LOSS_INTERVAL + 10  # an interval line inside each epoch, then the epoch's line
BATCH = 4


def small_training(tmp_path, *, epochs: int, curves: bool = True):
    """A small conv net trained by the pipeline's epoch loop for ``epochs`` of STEPS steps, its curves beside a CSV."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    inputs = torch.randn(STEPS * BATCH, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    targets = inputs.argmax(dim=1)
    losses = []

    def loss_of_batch(batch):
        images, labels = batch
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        losses.append(loss.item())
        return loss, {}

    def set_lr(step):
        for group in optimizer.param_groups:
            group["lr"] = 0.05 / (1 + step)

    log = tmp_path / "log.csv"
    rows = train_epochs(
        model, optimizer, lambda generator: torch.utils.data.DataLoader(list(zip(inputs, targets)), batch_size=BATCH, generator=generator, shuffle=True),
        loss_of_batch, set_lr=set_lr, epochs=epochs, steps_per_epoch=STEPS, seed=0, resume_path=tmp_path / "resume.pt",
        run_fingerprint="small", device=torch.device("cpu"), amp=False, amp_dtype="float16", description="small",
        curves=TrainingCurves(curves_path(log), trainer="small", batch_size=BATCH, tensorboard_dir=None) if curves else None,
    )
    return rows, losses, read_curves(curves_path(log)) if curves else None


def test_a_line_per_interval_and_per_epoch_with_the_logged_numbers(tmp_path):
    rows, losses, lines = small_training(tmp_path, epochs=2)
    assert [(line["kind"], line["epoch"], line["step"]) for line in lines] == [
        ("interval", 1, LOSS_INTERVAL), ("epoch", 1, STEPS), ("interval", 2, STEPS + LOSS_INTERVAL), ("epoch", 2, 2 * STEPS)]
    # an interval's loss is the mean of its steps' losses; an epoch line carries the CSV row's numbers
    assert lines[0]["loss"] == pytest.approx(np.mean(losses[:LOSS_INTERVAL]), rel=1e-6)
    assert lines[2]["loss"] == pytest.approx(np.mean(losses[STEPS:STEPS + LOSS_INTERVAL]), rel=1e-6)
    for line, row in zip(lines[1::2], rows):
        assert {key: line[key] for key in row} == row
    assert lines[0]["lr"] == pytest.approx(0.05 / LOSS_INTERVAL)  # the lr of the interval's last step (step index 49)
    assert all(line["images_per_second"] > 0 for line in lines)
    # the curves change nothing of the training: the CSV rows are those of a run without them
    without, _, _ = small_training(tmp_path / "without", epochs=2, curves=False)
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in rows] == [
        {k: v for k, v in row.items() if k != "seconds"} for row in without]


def test_a_resumed_training_keeps_the_lines_of_the_epochs_it_resumes_after(tmp_path):
    _, _, whole = small_training(tmp_path / "whole", epochs=2)
    small_training(tmp_path / "parts", epochs=1)
    (tmp_path / "parts" / "log.jsonl").write_text("")  # what it kept is in the resume state, not in the file
    _, _, resumed = small_training(tmp_path / "parts", epochs=2)
    drop_rate = [{k: v for k, v in line.items() if k not in ("images_per_second", "seconds")} for line in whole]
    assert [{k: v for k, v in line.items() if k not in ("images_per_second", "seconds")} for line in resumed] == drop_rate


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_class_map_grid_shows_each_image_and_each_class(version):
    from mctformer.training.classifier import class_map_grid

    model = tiny_mctformer(3, version=version).train()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    grid = class_map_grid(model, images, torch.device("cpu"))
    assert grid.shape == (2 * 32, 4 * 32, 3) and grid.dtype == np.uint8
    assert model.training  # put back as it was
    # the first column is the image itself, min-max scaled: its darkest pixel black and its brightest white
    assert grid[:32, :32].min() == 0 and grid[:32, :32].max() == 255


def test_tensorboard_gets_the_scalars_and_the_class_maps(tmp_path, synthetic_root):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from helpers.workflow import TINY_SPEC, tiny_config
    from mctformer.data.labels import build_class_labels
    from mctformer.data.voc import VOCLayout
    from mctformer.training.classifier import train_classifier

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    train, val = layout.read_ids("train_aug")[:16], layout.read_ids("val")[:4]
    settings = {**tiny_config()["classifier"], "epochs": 2, "batch_size": 8, "input_size": 32}
    files = TrainerFiles.of_rule(str(tmp_path / "c.pt"), str(tmp_path / "log.csv"), str(tmp_path / "r.pt"), tensorboard=True)
    train_classifier(layout, train, val, build_class_labels(layout, train + val, workers=1), settings, files,
                     device=torch.device("cpu"), seed=0, workers=0)
    events = EventAccumulator(str(tmp_path / "tensorboard" / "log"), size_guidance={"images": 0}).Reload()
    losses = [event.value for event in events.Scalars("classifier/epoch_loss")]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert losses == pytest.approx([float(row["loss"]) for row in rows], rel=1e-6)
    assert [event.step for event in events.Images("classifier/class_maps")] == [1, 2]
    assert "classifier/epoch_val_map" in events.Tags()["scalars"]


def test_the_tensorboard_switch_without_tensorboard_is_refused(monkeypatch):
    import importlib.util

    from helpers.workflow import tiny_config
    from mctformer.config import ConfigError, check_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    config = tiny_config()
    config["logging"]["tensorboard"] = True
    with pytest.raises(ConfigError, match=r"^logging.tensorboard: TensorBoard is not installed; pip install '.\[tensorboard\]'"):
        check_config(config)


def test_the_report_figure_draws_every_trainer(tmp_path):
    from mctformer.plots import training_curves_figure

    lines = [{"kind": "interval", "epoch": 1, "step": 50, "loss": 0.7, "lr": 0.01},
             {"kind": "epoch", "epoch": 1, "step": 60, "loss": 0.65, "lr": 0.009}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    figure = training_curves_figure({"classifier": read_curves(tmp_path / "a.jsonl"), "deeplab": lines[1:]})
    assert [axes.get_title() for axes in figure.axes if axes.get_title()] == ["classifier", "deeplab"]
    (tmp_path / "bad.jsonl").write_text('{"kind": "epoch", "step": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not JSON"):
        read_curves(tmp_path / "bad.jsonl")


def test_the_curves_file_appears_only_when_the_training_ends(tmp_path):
    """Lines go to a hidden live file as training goes; log.jsonl appears at the end. A killed training (no close)
    leaves no log.jsonl, which Snakemake would take for an incomplete output and refuse to rerun over."""
    from mctformer.training.curves import TrainingCurves, read_curves

    curves = TrainingCurves(tmp_path / "log.jsonl", trainer="t", batch_size=4, tensorboard_dir=None)
    curves.start([], step=0)
    curves.interval(epoch=1, step=50, loss=0.5, lr=0.1)
    assert not (tmp_path / "log.jsonl").exists()
    assert [line["loss"] for line in read_curves(tmp_path / ".log.jsonl.live")] == [0.5]  # readable while it trains
    curves.epoch_end({"epoch": 1, "loss": 0.4, "lr": 0.1, "seconds": 1.0}, step=60)
    curves.close()
    assert [line["kind"] for line in read_curves(tmp_path / "log.jsonl")] == ["interval", "epoch"]
    assert not (tmp_path / ".log.jsonl.live").exists()
