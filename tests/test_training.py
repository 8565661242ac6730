import pytest
import torch

from helpers.arguments import tiny_mctformer
from helpers.workflow import TINY_SPEC, tiny_config
from mctformer.data.labels import build_class_labels
from mctformer.data.voc import VOCLayout
from mctformer.training import loop as loop_module
from mctformer.training.classifier import load_classifier, train_classifier
from mctformer.training.common import TrainerFiles


def settings(epochs=2):
    values = dict(tiny_config()["classifier"])
    values.update(epochs=epochs, batch_size=8, input_size=32)
    return values


@pytest.fixture(scope="module")
def data(synthetic_root):
    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    train, val = layout.read_ids("train_aug")[:24], layout.read_ids("val")[:8]
    return layout, train, val, build_class_labels(layout, train + val, workers=1)


def run(data, tmp, epochs=2, **kwargs):
    layout, train, val, labels = data
    values = settings(epochs)
    return train_classifier(
        layout, train, val, labels, values, TrainerFiles(tmp / "checkpoint.pt", tmp / "log.csv", tmp / "resume" / "last.pt", tensorboard=None),
        device=torch.device("cpu"), seed=7, workers=values["workers"], **kwargs,
    )


def test_training_writes_checkpoint_and_log(data, tmp_path):
    run(data, tmp_path)
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0] == "epoch,loss,val_map,lr,seconds" and len(log) == 3
    model = load_classifier(tmp_path / "checkpoint.pt", num_classes=TINY_SPEC.num_classes, device="cpu")
    assert model.version == "v2" and not model.training
    with pytest.raises(ValueError, match="trained for 4 classes, the config has 20"):
        load_classifier(tmp_path / "checkpoint.pt", num_classes=20, device="cpu")


def test_a_checkpoint_of_the_same_count_but_other_class_names_is_refused_naming_it(data, tmp_path):
    names = ["disc", "square", "triangle", "diamond"]
    run(data, tmp_path, epochs=1, class_names=names)
    checkpoint = tmp_path / "checkpoint.pt"
    assert load_classifier(checkpoint, len(names), device="cpu", class_names=tuple(names)).num_classes == 4
    other = ["disc", "square", "star", "diamond"]
    with pytest.raises(ValueError, match=f"classifier checkpoint {checkpoint} was trained for the classes disc, square, "
                                         "triangle, diamond, the config has disc, square, star, diamond"):
        load_classifier(checkpoint, len(other), device="cpu", class_names=other)


def kill_after_first_epoch(monkeypatch):
    """Make the first per-epoch checkpoint the last thing a run does."""
    real_save = loop_module.save_checkpoint

    def save_then_die(path, payload):
        real_save(path, payload)
        raise KeyboardInterrupt("killed after the first epoch's checkpoint")

    monkeypatch.setattr(loop_module, "save_checkpoint", save_then_die)
    return real_save


def test_killed_training_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    run(data, straight)
    assert not (straight / "resume" / "last.pt").exists()  # a finished run leaves no resume state

    interrupted = tmp_path / "interrupted"
    real_save = kill_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(data, interrupted)
    assert not (interrupted / "checkpoint.pt").exists() and (interrupted / "resume" / "last.pt").exists()
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    run(data, interrupted)

    a = torch.load(straight / "checkpoint.pt", weights_only=False)
    b = torch.load(interrupted / "checkpoint.pt", weights_only=False)
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in a["log"]] == [
        {k: v for k, v in row.items() if k != "seconds"} for row in b["log"]
    ]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_resume_state_of_other_settings_is_ignored(data, tmp_path, monkeypatch, capsys):
    real_save = kill_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(data, tmp_path, epochs=3)
    assert (tmp_path / "resume" / "last.pt").exists()
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)
    capsys.readouterr()
    run(data, tmp_path, epochs=2)  # other settings: must train from scratch, not resume
    printed = capsys.readouterr().out
    assert "belongs to a run with other settings" in printed and "resuming" not in printed
    assert len(torch.load(tmp_path / "checkpoint.pt", weights_only=False)["log"]) == 2


def test_empty_training_list_is_refused(data, tmp_path):
    layout, _, val, labels = data
    with pytest.raises(ValueError, match="training split list is empty"):
        train_classifier(layout, [], val, labels, settings(), TrainerFiles(tmp_path / "c.pt", tmp_path / "l.csv", tmp_path / "r.pt", tensorboard=None),
                         device=torch.device("cpu"), seed=0, workers=0)


def test_classifier_optimizer_is_adamw_with_torch_defaults(data, tmp_path, monkeypatch):
    """As the reference: AdamW (eps 1e-8, betas 0.9/0.999), no gradient clipping, shuffled batches (no repeated
    augmentation), and the checkpoint holds the weights after the last epoch."""
    from mctformer.training.classifier import build_optimizer

    optimizer = build_optimizer(tiny_mctformer(4), settings(), lr=1e-3)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["eps"] == 1e-8 and optimizer.defaults["betas"] == (0.9, 0.999)

    def no_clipping(*args, **kwargs):
        raise AssertionError("the reference clips no gradients")

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", no_clipping)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_value_", no_clipping)
    final_states = []
    real_save = loop_module.save_checkpoint
    monkeypatch.setattr(loop_module, "save_checkpoint", lambda path, payload: (final_states.append(payload["model"]), real_save(path, payload)))
    run(data, tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(saved[key], final_states[-1][key]) for key in saved)
