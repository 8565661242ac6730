"""Where the networks run and in what precision: torch_setup's refusal and log line, determinism, AMP dtypes
(float16 / bfloat16), resume across devices, data-parallel ranks and SyncBatchNorm, the GPU rules' config checks.

CPU autocast is off in the pipeline (common.AUTOCAST_DEVICE_TYPES); the tolerance tests here turn it on to run the very
code paths under bfloat16 on the CPU. The ``cuda``-marked tests need MCTFORMER_TEST_DEVICE=cuda (docs/development.md).
"""

from __future__ import annotations

import copy
import re

import pytest
import torch

from helpers.arguments import tiny_mctformer
from helpers.device import TEST_DEVICE
from helpers.reliability import reliability_config
from helpers.workflow import tiny_config
from mctformer.config import ConfigError, check_config, rule_resources
from mctformer.settings import Placement
from mctformer.training import common, distributed
from mctformer.training.common import autocast, grad_scaler, torch_setup
from mctformer.training.loop import restore_scaler, train_epochs

CPU = torch.device("cpu")


@pytest.fixture
def cpu_autocast(monkeypatch):
    """The pipeline's autocast also on the CPU, for this test only."""
    monkeypatch.setattr(common, "AUTOCAST_DEVICE_TYPES", {"cuda", "cpu"})


# --- the test switch ---------------------------------------------------------------------------------------------


def test_the_tests_run_on_the_chosen_device_and_the_bit_for_bit_ones_on_the_cpu():
    assert tiny_config()["device"] == TEST_DEVICE  # never the shipped `auto`
    assert reliability_config()["device"] == "cpu"


# --- torch_setup: where a stage runs ---------------------------------------------------------------------------------


def test_a_gpu_job_that_sees_no_cuda_is_refused_not_run_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RuntimeError, match=r"device: auto, and this job asked for 1 GPU.*CUDA_VISIBLE_DEVICES=''.*set device: cpu"):
        torch_setup(1, Placement("auto", False, 1), amp_dtype=None)


def test_every_stage_says_where_it_runs(capsys):
    threads = torch.get_num_threads()
    try:
        assert torch_setup(1, Placement("cpu", False, 0), amp_dtype="bfloat16") == CPU
    finally:
        torch.set_num_threads(threads)
    line = capsys.readouterr().out
    # autocast is CUDA only, so the CPU stage computes in float32 whatever amp_dtype says
    assert line.startswith("device: cpu (CPU; device: cpu, 0 GPU(s) asked for), compute float32, 1 threads, deterministic off")


def test_deterministic_sets_the_flags_and_warns_only(capsys):
    try:
        words = common.set_deterministic(True, CPU)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert words == "deterministic on"
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    assert common.set_deterministic(False, CPU) == "deterministic off" and not torch.are_deterministic_algorithms_enabled()


# --- AMP dtypes --------------------------------------------------------------------------------------------------


def test_float16_gets_a_loss_scaler_and_bfloat16_none(cpu_autocast):
    assert grad_scaler(CPU, "float16").is_enabled() and grad_scaler(CPU, True).is_enabled()  # True: maps.amp's float16
    assert not grad_scaler(CPU, "bfloat16").is_enabled()
    assert not grad_scaler(CPU, None).is_enabled() and not grad_scaler(CPU, "float32").is_enabled()
    with pytest.raises(ValueError, match="amp_dtype must be one of"):
        autocast(CPU, "float8")


def test_autocast_is_off_on_the_cpu_in_the_pipeline():
    with autocast(CPU, "bfloat16"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32


def forward_difference(device: torch.device, dtype: str) -> float:
    """Largest |autocast - float32| of the tiny MCTformer's class and Patch-CAM scores, relative to their scale."""
    torch.manual_seed(0)
    model = tiny_mctformer(4).to(device).eval()
    images = torch.randn(4, 3, 32, 32, device=device)
    with torch.no_grad():
        reference = model(images).token_logits.float()
        with autocast(device, dtype):
            mixed = model(images).token_logits.float()
    return float((mixed - reference).abs().max() / reference.abs().max().clamp_min(1e-6))


def test_bfloat16_forward_is_close_to_float32_on_the_cpu(cpu_autocast):
    # bfloat16 keeps 8 mantissa bits: ~0.4 % per rounding
    assert 0 < forward_difference(CPU, "bfloat16") < 5e-2  # not 0: autocast did run


@pytest.mark.cuda
@pytest.mark.parametrize("dtype, tolerance", [("float16", 5e-3), ("bfloat16", 5e-2)])
def test_autocast_forward_is_close_to_float32_on_cuda(dtype, tolerance):
    assert forward_difference(torch.device("cuda"), dtype) < tolerance


def small_training(resume_path, *, amp: bool, amp_dtype: str, epochs: int = 2, device: torch.device = CPU) -> list[dict]:
    """A small conv net trained by the pipeline's epoch loop on a fixed problem."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    inputs = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    targets = inputs.argmax(dim=1)

    def loss_of_batch(batch):
        images, labels = batch
        return torch.nn.functional.cross_entropy(model(images.to(device)).float(), labels.to(device)), {}

    return train_epochs(
        model, optimizer, lambda generator: torch.utils.data.DataLoader(list(zip(inputs, targets)), batch_size=4, generator=generator, shuffle=True),
        loss_of_batch, set_lr=lambda step: None, epochs=epochs, steps_per_epoch=4, seed=0, resume_path=resume_path,
        run_fingerprint="small", device=device, amp=amp, amp_dtype=amp_dtype, curves=None,
    )


def test_bfloat16_training_follows_float32_within_tolerance(cpu_autocast, tmp_path):
    float32 = small_training(tmp_path / "f32.pt", amp=False, amp_dtype="bfloat16")
    bfloat16 = small_training(tmp_path / "bf16.pt", amp=True, amp_dtype="bfloat16")
    for a, b in zip(float32, bfloat16):
        assert b["loss"] == pytest.approx(a["loss"], rel=3e-2)


# --- resume across devices ---------------------------------------------------------------------------------------


def test_a_scaler_state_saved_on_the_cpu_loads_into_an_enabled_scaler(tmp_path, capsys):
    saved = torch.amp.GradScaler("cpu", enabled=False).state_dict()  # what a CPU run's resume file holds
    assert saved == {}
    enabled = torch.amp.GradScaler("cpu", enabled=True)
    with pytest.raises(RuntimeError, match="empty"):  # torch's own load: the crash of a CPU -> CUDA resume
        enabled.load_state_dict(saved)
    restore_scaler(enabled, saved, tmp_path / "last.pt")
    assert enabled.is_enabled() and "holds no loss-scaler state" in capsys.readouterr().out


def test_a_resume_file_of_another_compute_mode_is_not_resumed(monkeypatch, tmp_path, capsys):
    resume = tmp_path / "last.pt"
    small_training(resume, amp=False, amp_dtype="float16", epochs=1)  # a float32 run killed after epoch 1
    assert resume.is_file()
    monkeypatch.setattr(common, "AUTOCAST_DEVICE_TYPES", {"cuda", "cpu"})  # the rerun: float16 with an enabled scaler
    rows = small_training(resume, amp=True, amp_dtype="float16")
    assert [row["epoch"] for row in rows] == [1, 2]  # trained afresh, no crash on the empty scaler state
    assert "belongs to a run with other settings" in capsys.readouterr().out


@pytest.mark.cuda
def test_a_training_started_on_the_cpu_reruns_on_cuda_with_float16(tmp_path, capsys):
    resume = tmp_path / "last.pt"
    small_training(resume, amp=True, amp_dtype="float16", epochs=1)  # on the CPU: float32, an empty scaler state
    rows = small_training(resume, amp=True, amp_dtype="float16", device=torch.device("cuda"))
    assert [row["epoch"] for row in rows] == [1, 2] and "belongs to a run with other settings" in capsys.readouterr().out


# --- data parallel -------------------------------------------------------------------------------------------------


def test_ranks_are_the_gpus_torch_sees(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.data_parallel_ranks(4, "auto") == 2
    assert "asked for 4 GPUs but torch sees 2" in capsys.readouterr().out
    assert distributed.data_parallel_ranks(2, "auto") == 2 and capsys.readouterr().out == ""
    assert distributed.data_parallel_ranks(3, "cpu") == 3  # gloo processes


def test_sync_batchnorm_is_refused_on_cpu_ranks_and_keeps_the_weights_in_place(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    keys, weight = list(model.state_dict()), model[1].weight
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="deeplab.sync_batchnorm: SyncBatchNorm needs CUDA"):
        distributed.wrap(model, CPU, sync_batchnorm=True)
    # what wrap does on CUDA before DDP: converted in place, the same parameters (the optimizer holds them) and keys
    assert torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) is model
    assert isinstance(model[1], torch.nn.SyncBatchNorm) and model[1].weight is weight and list(model.state_dict()) == keys


# --- the GPU rules in the config ---------------------------------------------------------------------------------


def test_a_global_batch_that_does_not_split_over_the_gpus_is_refused_at_validation():
    config = copy.deepcopy(tiny_config())
    config["deeplab"]["batch_size"] = 10
    config["resources"]["rules"]["train_deeplab"] = {"gpus": 4}
    with pytest.raises(ConfigError, match=re.escape("deeplab.batch_size: 10 does not split over the 4 GPUs of resources.rules.train_deeplab.gpus")):
        check_config(config)
    config["deeplab"]["batch_size"] = 12
    check_config(config)


def test_voc_submission_is_a_gpu_rule():
    config = copy.deepcopy(tiny_config())
    config["resources"]["rules"]["voc_submission"] = {"gpus": 1}
    assert rule_resources(config, "voc_submission")["gpu"] == 1
