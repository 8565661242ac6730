"""The reference-mode switches: each key, set to the reference's value, changes what the code does.

Each test pins the reference behaviour on a small hand-computed case and
checks that our default differs, so a switch that did nothing would fail.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.arguments import scaled_crf
from mctformer.crf import crf_argmax
from mctformer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, classification_transform, random_scale_flip_crop
from mctformer.segmentation import multiscale_softmax
from mctformer.training.common import TrainerFiles

# ------------------------------------------------------------------ classifier --


def lrs_over(settings, steps_per_epoch, base_lr=1e-3):
    from mctformer.training.classifier import lr_schedule

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=base_lr)
    set_lr = lr_schedule(optimizer, settings, steps_per_epoch)
    values = []
    for step in range(settings["epochs"] * steps_per_epoch):
        set_lr(step)
        values.append(optimizer.param_groups[0]["lr"])
    return values


SCHEDULE = {"epochs": 4, "warmup_epochs": 1, "min_lr": 1e-5, "warmup_lr": 1e-6}


def test_per_epoch_reference_schedule_lags_one_epoch():
    """timm cosine, t_initial 4 epochs, warm-up 1 epoch from 1e-6, stepped after each epoch with step(epoch).

    schedule(0) = 1e-6 (warm-up start); schedule(t >= 1) = min + (base - min)/2 (1 + cos(pi t / 4)).
    Epoch 0 runs at the value set at construction (= schedule(0)), epoch e >= 1 at schedule(e - 1).
    """
    base, low = 1e-3, 1e-5
    expected_epochs = [1e-6, 1e-6, low + 0.5 * (base - low) * (1 + math.cos(math.pi / 4)), low + 0.5 * (base - low)]
    assert expected_epochs[2] == pytest.approx(8.55018e-4, rel=1e-5) and expected_epochs[3] == pytest.approx(5.05e-4)
    values = lrs_over({**SCHEDULE, "lr_schedule": "per_epoch_reference"}, steps_per_epoch=3)
    assert values == pytest.approx([lr for lr in expected_epochs for _ in range(3)], rel=1e-9)


def test_per_step_schedule_moves_within_the_epoch_and_starts_at_warmup_lr():
    values = lrs_over({**SCHEDULE, "lr_schedule": "per_step"}, steps_per_epoch=3)
    assert values[0] == pytest.approx(1e-6)  # warmup_lr, not min_lr
    assert len(set(values[:3])) == 3  # warm-up over updates: every step its own lr
    assert values != pytest.approx(lrs_over({**SCHEDULE, "lr_schedule": "per_epoch_reference"}, 3))
    # config.yaml's warmup_lr equals its min_lr: the warm-up starts where it did before the key existed
    assert lrs_over({**SCHEDULE, "lr_schedule": "per_step", "warmup_lr": SCHEDULE["min_lr"]}, steps_per_epoch=3)[0] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="lr_schedule"):
        lrs_over({**SCHEDULE, "lr_schedule": "per_batch"}, 3)


def test_reference_schedule_reaches_training_log(synthetic_root, tmp_path):
    """Two epochs with one warm-up epoch: both run at the warm-up start lr (the log's lr column)."""
    from helpers.workflow import TINY_SPEC, tiny_config
    from mctformer.data.labels import build_class_labels
    from mctformer.data.voc import VOCLayout
    from mctformer.training.classifier import train_classifier

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    train, val = layout.read_ids("train_aug")[:16], layout.read_ids("val")[:4]
    settings = dict(tiny_config()["classifier"])
    settings.update(epochs=2, batch_size=8, input_size=32, warmup_epochs=1, warmup_lr=2e-6, lr_schedule="per_epoch_reference")
    train_classifier(layout, train, val, build_class_labels(layout, train + val, workers=1), settings,
                     TrainerFiles(tmp_path / "c.pt", tmp_path / "log.csv", tmp_path / "resume.pt", tensorboard=None), device=torch.device("cpu"), seed=0,
                     workers=settings["workers"])
    rows = (tmp_path / "log.csv").read_text().splitlines()
    lr_column = rows[0].split(",").index("lr")
    assert [float(row.split(",")[lr_column]) for row in rows[1:]] == pytest.approx([2e-6, 2e-6])


def test_weight_decay_exemption_param_groups():
    from helpers.arguments import tiny_mctformer
    from mctformer.training.classifier import build_optimizer

    model = tiny_mctformer(3, version="v2")
    settings = {"weight_decay": 0.05}
    plain = build_optimizer(model, {**settings, "weight_decay_exempt": False}, lr=1e-3)
    assert [g["weight_decay"] for g in plain.param_groups] == [0.05]

    exempt = build_optimizer(model, {**settings, "weight_decay_exempt": True}, lr=1e-3)
    assert sorted(g["weight_decay"] for g in exempt.param_groups) == [0.0, 0.05]
    names = {id(p): n for n, p in model.named_parameters()}
    group_names = {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in exempt.param_groups}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    tokens = {"class_tokens", "class_pos_embed", "pos_embed"}
    assert group_names[0.0] == {n for n, p in trainable.items() if p.ndim <= 1} | tokens
    assert group_names[0.05] == {n for n, p in trainable.items() if p.ndim > 1} - tokens
    assert "patchcam_head.weight" in group_names[0.05] and "patchcam_head.bias" in group_names[0.0]
    assert "blocks.0.norm1.weight" in group_names[0.0] and "blocks.0.attn.qkv.weight" in group_names[0.05]
    assert all(g["lr"] == 1e-3 for g in exempt.param_groups)


@pytest.mark.parametrize("mode", ["const", "pixel"])
def test_random_erasing_mode(mode):
    augment = {"scale": [1.0, 1.0], "ratio": [1.0, 1.0], "hflip": 0.0, "color_jitter": None, "rand_augment": None,
               "random_erasing": 1.0, "random_erasing_mode": mode, "eval_crop_pct": 1.0}
    from PIL import Image

    transform = classification_transform(32, True, augment)
    torch.manual_seed(0)
    image = Image.fromarray(np.full((32, 32, 3), 128, np.uint8))
    out = transform(image)
    plain = ((128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).view(3, 1, 1)
    erased = ~torch.isclose(out, plain.expand_as(out), atol=1e-4).all(0)  # [H, W] pixels the erasing touched
    assert erased.any()
    values = out[:, erased]
    if mode == "const":
        assert torch.equal(values, torch.zeros_like(values))  # zeros: one constant
    else:
        assert values.unique().numel() > 0.9 * values.numel() and values.std() > 0.5  # normal noise per pixel


# -------------------------------------------------------------- AffinityNet ---

def crop(image, label, size, **switches):
    """random_scale_flip_crop without rescale or flip, with our crop settings unless ``switches`` name the reference's."""
    settings = dict(scale_range=(1.0, 1.0), flip=False, ignore=255, color_jitter=None, pad_image="mean", placement="top_left")
    return random_scale_flip_crop(image, label, size, **{**settings, **switches})


def test_pad_image_black_is_minus_mean_over_std():
    image = np.full((10, 12, 3), 200, np.uint8)
    label = np.ones((10, 12), np.uint8)
    torch.manual_seed(0)
    mean_padded, _ = crop(image, label, 16)
    torch.manual_seed(0)
    black_padded, target = crop(image, label, 16, pad_image="black")
    black = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(3, 1, 1)
    assert torch.allclose(black_padded[:, 10:, :], black.expand(3, 6, 16), atol=1e-6)
    assert torch.allclose(black_padded[:, :, 12:], black.expand(3, 16, 4), atol=1e-6)
    assert torch.equal(black_padded[:, :10, :12], mean_padded[:, :10, :12])  # the picture itself is untouched
    assert torch.equal(mean_padded[:, 10:, :], torch.zeros(3, 6, 16))
    assert (target[10:, :] == 255).all()  # labels still padded with the ignore value
    with pytest.raises(ValueError, match="pad_image"):
        crop(image, label, 16, pad_image="white")


def test_unit_scale_range_does_not_resize():
    image = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    torch.manual_seed(0)
    tensor, _ = crop(image, np.zeros((10, 12), np.uint8), 8)
    from mctformer.data.transforms import normalize_image

    full = normalize_image(image)
    assert any(torch.equal(tensor, full[:, t : t + 8, c : c + 8]) for t in range(3) for c in range(5))


def test_color_jitter_changes_the_picture_within_its_range():
    image = np.full((8, 8, 3), 100, np.uint8)
    label = np.zeros((8, 8), np.uint8)
    torch.manual_seed(1)
    plain, _ = crop(image, label, 8)
    torch.manual_seed(1)
    jittered, _ = crop(image, label, 8, color_jitter=(0.3, 0.0, 0.0, 0.0))
    torch.manual_seed(1)
    again, _ = crop(image, label, 8, color_jitter=(0.3, 0.0, 0.0, 0.0))
    assert torch.equal(jittered, again)  # torch's RNG: seeded loaders repeat
    assert not torch.equal(plain, jittered)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = (jittered * std + mean) * 255
    factor = pixels / 100  # brightness only: every channel scaled by one factor in [0.7, 1.3]
    assert torch.allclose(factor, factor[0, 0, 0], atol=0.011) and 0.69 <= factor[0, 0, 0] <= 1.31


class Stop(Exception):
    pass


def recording_dataset(record):
    def make(*args, **kwargs):
        record.update(kwargs, args=args)
        raise Stop

    return make


def test_affinity_settings_reach_the_dataset(monkeypatch, tmp_path):
    from helpers.workflow import tiny_config
    from mctformer.artifacts import save_label_png, voc_palette
    from mctformer.training import affinity as affinity_module

    save_label_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8), voc_palette())
    record = {}
    monkeypatch.setattr(affinity_module, "AffinityCropDataset", recording_dataset(record))
    settings = dict(tiny_config()["affinity"], crop_size=32, color_jitter=[0.3, 0.3, 0.3, 0.1], pad_image="black", crop_placement="random")
    with pytest.raises(Stop):
        affinity_module.train_affinity(None, ["a"], tmp_path, settings, TrainerFiles(tmp_path / "c", tmp_path / "l", tmp_path / "r", tensorboard=None),
                                       device=torch.device("cpu"), seed=0, workers=0)
    assert record["color_jitter"] == [0.3, 0.3, 0.3, 0.1] and record["pad_image"] == "black" and record["placement"] == "random"


def test_affinity_dataset_applies_jitter_and_black_padding(synthetic_root):
    from helpers.workflow import TINY_SPEC
    from mctformer.data.datasets import SegmentationCropDataset
    from mctformer.data.voc import VOCLayout

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("train")[:1]
    common = dict(load_label=layout.load_mask, crop_size=40, scale_range=(1.0, 1.0), flip=False,
                  color_jitter=None, pad_image="mean", pad_label=255, placement="top_left", in_memory=False)  # ours
    torch.manual_seed(0)
    plain, plain_label = SegmentationCropDataset(layout, ids, **common)[0]
    torch.manual_seed(0)
    reference, _ = SegmentationCropDataset(layout, ids, **{**common, "color_jitter": (0.3, 0.3, 0.3, 0.1), "pad_image": "black"})[0]
    black = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(3, 1)
    assert torch.allclose(reference[:, 32:, :].reshape(3, -1), black, atol=1e-6)  # 32 px images in a 40 px crop
    assert not torch.equal(plain[:, :32, :32], reference[:, :32, :32])
    # DeepLab's pad_label: the reference pads labels with 0 (background)
    torch.manual_seed(0)
    _, background_padded = SegmentationCropDataset(layout, ids, **{**common, "pad_label": 0})[0]
    assert (plain_label[32:, :] == 255).all() and (background_padded[32:, :] == 0).all()
    assert torch.equal(background_padded[:32, :32], plain_label[:32, :32])


# ------------------------------------------------------------------- DeepLab --

# Our head (1x1 classifier, kaiming-normal init) on the tiny backbone; each test sets its sizes and the switch it tests.
OUR_HEAD = {"backbone": "tiny", "pretrained": None, "head": "largefov", "aspp_dilations": [1, 2, 3, 4], "classifier_kernel": 1,
            "head_init": "kaiming_normal"}

def test_classifier_kernel_3_is_a_dilated_3x3_and_checkpoints_keep_it(tmp_path):
    from mctformer.training.common import save_checkpoint
    from mctformer.training.deeplab import build_deeplab, load_deeplab

    settings = {**OUR_HEAD, "head_channels": 8, "dilation": 2, "dropout": 0.0, "classifier_kernel": 3}
    model = build_deeplab(settings, num_labels=5)
    classifier = model.head[3]
    assert classifier.weight.shape == (5, 8, 3, 3) and classifier.dilation == (2, 2) and classifier.padding == (2, 2)
    assert isinstance(model.head[2], torch.nn.Identity)  # dropout 0: no module at all
    assert model.architecture()["classifier_kernel"] == 3
    assert model(torch.randn(1, 3, 36, 44)).shape == (1, 5, 36, 44)
    ours = build_deeplab({**settings, "classifier_kernel": 1, "dropout": 0.5}, 5)
    assert ours.head[3].weight.shape == (5, 8, 1, 1) and isinstance(ours.head[2], torch.nn.Dropout2d)

    save_checkpoint(tmp_path / "d.pt", {"model": model.state_dict(), "architecture": model.architecture(), "settings": settings})
    loaded = load_deeplab(tmp_path / "d.pt", 5, device="cpu")
    assert loaded.head[3].kernel_size == (3, 3) and torch.equal(loaded.head[3].weight, classifier.weight)
    # settings that disagree with the recorded architecture still rebuild the recorded net
    save_checkpoint(tmp_path / "e.pt", {"model": model.state_dict(), "architecture": model.architecture(), "settings": {**settings, "classifier_kernel": 1}})
    assert load_deeplab(tmp_path / "e.pt", 5, device="cpu").head[3].kernel_size == (3, 3)
    # a checkpoint from before the key existed: the 1x1 classifier
    legacy = {k: v for k, v in ours.architecture().items() if k != "classifier_kernel"}
    legacy_settings = {k: v for k, v in settings.items() if k not in ("classifier_kernel", "head_init")}
    save_checkpoint(tmp_path / "f.pt", {"model": ours.state_dict(), "architecture": legacy, "settings": legacy_settings})
    assert load_deeplab(tmp_path / "f.pt", 5, device="cpu").head[3].kernel_size == (1, 1)


def test_dropout_zero_leaves_training_outputs_deterministic():
    from mctformer.training.deeplab import build_deeplab

    torch.manual_seed(0)
    model = build_deeplab({**OUR_HEAD, "head_channels": 8, "dilation": 2, "dropout": 0.0}, 3).train()
    images = torch.randn(1, 3, 16, 16)
    torch.manual_seed(1)
    first = model(images)
    torch.manual_seed(2)
    assert torch.equal(first, model(images))


def test_head_init_xavier_uniform_as_the_reference():
    from mctformer.training.deeplab import build_deeplab

    settings = {**OUR_HEAD, "head_channels": 16, "dilation": 2, "dropout": 0.0, "classifier_kernel": 3}
    torch.manual_seed(0)
    reference = build_deeplab({**settings, "head_init": "xavier_uniform"}, 4)
    ours = build_deeplab(settings, 4)
    for index in (0, 3):
        conv = reference.head[index]
        fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
        assert conv.bias.abs().max() > 0 and conv.bias.abs().max() <= 1 / math.sqrt(fan_in)  # PyTorch's default bias
        assert torch.equal(ours.head[index].bias, torch.zeros_like(ours.head[index].bias))
    with pytest.raises(ValueError, match="head_init"):
        build_deeplab({**settings, "head_init": "orthogonal"}, 4)


def test_pad_label_zero_pads_labels_with_background():
    image = np.full((10, 12, 3), 200, np.uint8)
    label = np.ones((10, 12), np.uint8)
    torch.manual_seed(0)
    _, target = crop(image, label, 16, ignore=0)
    assert (target[:10, :12] == 1).all() and (target[10:, :] == 0).all() and (target[:, 12:] == 0).all()


def test_deeplab_settings_reach_the_dataset(monkeypatch):
    from helpers.workflow import tiny_config
    from mctformer.training import deeplab as deeplab_module

    for value in (0, 255):
        record = {}
        monkeypatch.setattr(deeplab_module, "SegmentationCropDataset", recording_dataset(record))
        settings = dict(tiny_config()["deeplab"], pad_label=value)
        with pytest.raises(Stop):
            deeplab_module.train_deeplab(None, ["a"], None, 3, settings, TrainerFiles("c", "l", "r", tensorboard=None),
                                         device=torch.device("cpu"), seed=0, workers=0)
        assert record["pad_label"] == value


class StrideSpy(torch.nn.Module):
    """Records its inputs; ``logits`` gives scores at stride 2, ``forward`` at the input size (as DeepLabLargeFOV)."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def logits(self, images):
        self.inputs.append(images.clone())
        pooled = F.avg_pool2d(images[:, :2], 2, ceil_mode=True)
        ramp = torch.linspace(0, 2, pooled.shape[-1])  # left-right asymmetric, so a flip pair disagrees
        return torch.cat([pooled[:, :1] + ramp, -pooled[:, 1:]], 1) * 3

    def forward(self, images):
        return F.interpolate(self.logits(images), size=images.shape[-2:], mode="bilinear", align_corners=False)


def test_reference_inference_resize_floors_and_aligns_corners():
    images = torch.randn(1, 3, 10, 15, generator=torch.Generator().manual_seed(0))
    spy = StrideSpy()
    ours = multiscale_softmax(spy, images, scales=[0.75], flip=False, fuse="max", resize="ours", amp="float32")
    assert spy.inputs[-1].shape[-2:] == (8, 11)  # round(7.5), round(11.25)
    assert torch.equal(spy.inputs[-1], F.interpolate(images, size=(8, 11), mode="bilinear", align_corners=False))

    reference = multiscale_softmax(spy, images, scales=[0.75], flip=False, fuse="max", resize="reference", amp="float32")
    assert spy.inputs[-1].shape[-2:] == (7, 11)  # int(7.5), int(11.25)
    scaled = F.interpolate(images, size=(7, 11), mode="bilinear", align_corners=True)
    assert torch.equal(spy.inputs[-1], scaled)
    assert not torch.allclose(scaled, F.interpolate(images, size=(7, 11), mode="bilinear", align_corners=False))
    # the stride-2 scores go straight to 10 x 15 (no stop at the scaled input's size)
    direct = torch.softmax(F.interpolate(spy.logits(scaled), size=(10, 15), mode="bilinear", align_corners=False), 1)
    assert torch.allclose(reference, direct, atol=1e-6)
    assert ours.shape == reference.shape and not torch.allclose(ours, reference, atol=1e-3)
    # at scale 1 the align_corners=True resize is the identity
    multiscale_softmax(spy, images, scales=[1.0], flip=False, fuse="max", resize="reference", amp="float32")
    assert torch.allclose(spy.inputs[-1], images, atol=1e-6)
    with pytest.raises(ValueError, match="inference_resize"):
        multiscale_softmax(spy, images, scales=[1.0], flip=False, fuse="max", resize="nearest", amp="float32")


class RecordingUnary:
    seen: list = []

    def __call__(self, probs, scale=None, clip=1e-5):
        RecordingUnary.seen.append(np.array(probs))
        return -np.log(np.clip(probs, clip, 1.0)).reshape(probs.shape[0], -1).astype(np.float32)


class IdentityCRF:
    def __init__(self, width, height, channels):
        self.unary = None

    def setUnaryEnergy(self, unary):
        self.unary = unary

    def addPairwiseGaussian(self, sxy, compat):
        pass

    def addPairwiseBilateral(self, sxy, srgb, rgbim, compat):
        pass

    def inference(self, iterations):
        return np.exp(-self.unary)


def test_crf_normalise_scores_switch(monkeypatch):
    import pydensecrf.densecrf
    import pydensecrf.utils

    monkeypatch.setattr(pydensecrf.utils, "unary_from_softmax", RecordingUnary())
    monkeypatch.setattr(pydensecrf.densecrf, "DenseCRF2D", IdentityCRF)
    RecordingUnary.seen = []
    image = np.zeros((2, 2, 3), np.uint8)
    scores = np.array([[[0.9, 0.6], [0.2, 0.5]], [[0.8, 0.7], [0.9, 0.5]]], np.float32)  # max-fused: sums > 1
    crf = scaled_crf("deeplab", spatial_scale=1.0, iterations=1)
    crf_argmax(image, scores, crf, normalise=True)
    crf_argmax(image, scores, crf, normalise=False)
    normalised, as_is = RecordingUnary.seen
    assert np.allclose(normalised, scores / scores.sum(0, keepdims=True)) and np.allclose(normalised.sum(0), 1)
    assert np.array_equal(as_is, scores)


def test_segment_images_passes_the_crf_and_resize_switches(monkeypatch, synthetic_root, tmp_path):
    import pydensecrf.densecrf
    import pydensecrf.utils

    from helpers.workflow import TINY_SPEC
    from mctformer.artifacts import voc_palette
    from mctformer.data.transforms import normalize_image
    from mctformer.data.voc import VOCLayout
    from mctformer.segmentation import segment_images

    monkeypatch.setattr(pydensecrf.utils, "unary_from_softmax", RecordingUnary())
    monkeypatch.setattr(pydensecrf.densecrf, "DenseCRF2D", IdentityCRF)
    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("val")[:1]
    sums = {}
    for normalise in (True, False):
        RecordingUnary.seen = []
        spy = StrideSpy()
        segment_images(spy, layout, ids, None, str(tmp_path / f"crf_{normalise}"), scales=[0.75], flip=True, fuse="max",
                       crf=scaled_crf("deeplab", spatial_scale=1.0, iterations=1), palette=voc_palette(),
                       device=torch.device("cpu"), workers=1, resize="reference", normalise_crf_scores=normalise, amp="float32", loader_workers=0)
        expected = F.interpolate(normalize_image(layout.load_image(ids[0]))[None], size=(24, 24), mode="bilinear", align_corners=True)
        assert torch.allclose(spy.inputs[0], expected, atol=1e-6)  # int(32 * 0.75), align_corners=True
        sums[normalise] = RecordingUnary.seen[0].sum(0)
    assert np.allclose(sums[True], 1) and sums[False].max() > 1.01  # max over a flip pair sums above 1
