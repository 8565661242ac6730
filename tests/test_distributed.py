"""Data-parallel training (DDP) on CPU: 2 processes under torchrun with the gloo backend."""

import json
import subprocess
import sys

import pytest
import torch

from helpers.workflow import REPO, TINY_SPEC, tiny_config
from mctformer.data.layout import DatasetRef
from mctformer.settings import Placement
from mctformer.stages.classifier import train_classifier_stage
from mctformer.stages.data import make_class_labels
from mctformer.training.curves import read_curves
from mctformer.training.distributed import shuffled_loader


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)


def test_two_ranks_keep_identical_weights_and_only_rank_0_saves(tmp_path):
    result = torchrun(str(REPO / "tests" / "helpers" / "ddp_worker.py"), str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    # each epoch's 32 samples split into two disjoint halves: the ranks trained on different data...
    for epoch in range(2):
        halves = [set(rank["seen"][epoch * 16 : (epoch + 1) * 16]) for rank in ranks]
        assert not halves[0] & halves[1] and halves[0] | halves[1] == set(range(32))
    # ...yet hold the same weights after every step (checked at the end), which only synchronised gradients give
    initial = torch.load(tmp_path / "initial_rank0.pt")
    finals = [torch.load(tmp_path / f"final_rank{rank}.pt") for rank in (0, 1)]
    for name in initial:
        assert torch.equal(finals[0][name], finals[1][name]), name
    assert any(not torch.equal(initial[name], finals[0][name]) for name in initial)
    # only rank 0 writes checkpoints
    assert ranks[0]["saves"] == [1, 2] and ranks[1]["saves"] == []
    assert torch.load(tmp_path / "resume.pt", weights_only=False)["epoch"] == 2


def test_single_process_loader_is_the_plain_shuffled_one():
    data = torch.arange(10)
    batches = list(shuffled_loader(data, 4, torch.Generator().manual_seed(3)))
    expected = list(torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(3)))
    assert len(batches) == 2 and all(torch.equal(a, b) for a, b in zip(batches, expected))


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="multiple of 3"):
        shuffled_loader(torch.arange(12), 4, torch.Generator())


def test_classifier_stage_trains_data_parallel_in_two_processes(synthetic_root, tmp_path):
    classes = [f"c{i}" for i in range(TINY_SPEC.num_classes)]
    labels = tmp_path / "cls_labels.npy"
    make_class_labels(dataset=DatasetRef(str(synthetic_root), "voc", tuple(classes)), splits=["train_aug", "val"], out_path=str(labels), workers=1)
    settings = dict(tiny_config()["classifier"], epochs=1, batch_size=8, input_size=32, workers=0)
    checkpoint, log_csv = tmp_path / "checkpoint.pt", tmp_path / "log.csv"
    train_classifier_stage(
        dataset=DatasetRef(str(synthetic_root), "voc", tuple(classes)), labels_path=str(labels), train_split="train_aug", val_split="val",
        settings=settings, seed=0, placement=Placement("cpu", False, 2),  # device cpu, 2 GPUs asked for: two gloo processes
        checkpoint=str(checkpoint), log_csv=str(log_csv), resume=str(tmp_path / "resume" / "last.pt"), threads=2, tensorboard=False,
    )
    assert checkpoint.is_file() and not (tmp_path / "resume" / "last.pt").exists()
    log = log_csv.read_text().splitlines()
    assert log[0].startswith("epoch,loss") and len(log) == 2
    # rank 0 alone writes the curve lines: one epoch, one line
    assert [line["kind"] for line in read_curves(tmp_path / "log.jsonl")] == ["epoch"]


def test_deeplab_stage_trains_data_parallel_in_two_processes(synthetic_root, tmp_path):
    from mctformer.stages.deeplab import train_deeplab_stage

    settings = dict(tiny_config()["deeplab"], epochs=1, batch_size=8, crop_size=32, workers=0)
    checkpoint, log_csv = tmp_path / "checkpoint.pt", tmp_path / "log.csv"
    classes = [f"c{i}" for i in range(TINY_SPEC.num_classes)]
    train_deeplab_stage(
        dataset=DatasetRef(str(synthetic_root), "voc", tuple(classes)), split="train_aug", mask_dir=None, settings=settings, seed=0,
        placement=Placement("cpu", False, 2),  # two gloo processes
        checkpoint=str(checkpoint), log_csv=str(log_csv), resume=str(tmp_path / "resume" / "last.pt"), threads=2, tensorboard=False,
    )
    assert checkpoint.is_file() and len(log_csv.read_text().splitlines()) == 2
