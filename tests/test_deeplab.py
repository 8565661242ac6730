import numpy as np
import pytest
import torch

from helpers.arguments import scaled_crf
from helpers.workflow import tiny_config
from mctformer.artifacts import read_label_png, voc_palette
from mctformer.data.layout import DatasetRef
from mctformer.data.transforms import random_scale_flip_crop
from mctformer.models.deeplab import DeepLabLargeFOV
from mctformer.segmentation import multiscale_softmax, segment_images
from mctformer.settings import Placement
from mctformer.training.common import TrainerFiles, save_checkpoint
from mctformer.training.deeplab import build_deeplab, load_deeplab
from mctformer.training.loop import poly_lr, set_group_lrs

# Our crop (no colour jitter, mean-colour padding, the image at the top left) with labels padded by 255.
OUR_CROP = dict(ignore=255, color_jitter=None, pad_image="mean", placement="top_left")


def small_deeplab_settings() -> dict:
    """The shipped config's deeplab section with a smaller head."""
    return {**tiny_config()["deeplab"], "head_channels": 8, "dilation": 2}


def test_poly_schedule_hand_values():
    assert poly_lr(0.01, 0, 100) == pytest.approx(0.01)
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0
    assert poly_lr(0.01, 150, 100) == 0.0


def test_group_learning_rates_keep_their_multiplier():
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": [weights[0]], "lr_mult": 1.0}, {"params": [weights[1]], "lr_mult": 10.0}], lr=1.0, momentum=0.9, weight_decay=5e-4)
    set_group_lrs(optimizer, 0.002)
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(0.002), pytest.approx(0.02)]
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 5e-4 for g in optimizer.param_groups)  # two separate settings


def test_crop_pads_image_with_the_mean_and_labels_with_255():
    image = np.full((10, 12, 3), 200, np.uint8)
    label = np.ones((10, 12), np.uint8)
    torch.manual_seed(0)
    tensor, target = random_scale_flip_crop(image, label, crop_size=16, scale_range=(1.0, 1.0), flip=False, **OUR_CROP)
    assert tensor.shape == (3, 16, 16) and target.shape == (16, 16)
    assert (target[:10, :12] == 1).all() and (target[10:, :] == 255).all() and (target[:, 12:] == 255).all()
    assert torch.equal(tensor[:, 10:, :], torch.zeros(3, 6, 16))  # 0 after normalisation = the mean colour
    assert target.dtype == torch.long


def test_random_scale_keeps_labels_integral():
    label = np.zeros((20, 20), np.uint8)
    label[5:15, 5:15] = 3
    label[0, :] = 255
    for seed in range(5):
        torch.manual_seed(seed)
        _, target = random_scale_flip_crop(np.zeros((20, 20, 3), np.uint8), label, 16, scale_range=(0.7, 1.3), flip=True, **OUR_CROP)
        assert set(torch.unique(target).tolist()) <= {0, 3, 255}


class ConstantSegmenter(torch.nn.Module):
    """Scores favour label 1 on the left half of whatever it sees: makes flips and scales observable."""

    def forward(self, images):
        batch, _, height, width = images.shape
        logits = torch.zeros(batch, 2, height, width)
        logits[:, 1, :, : width // 2] = 2.0
        return logits


def test_multiscale_softmax_fusion():
    images = torch.zeros(1, 3, 8, 8)
    single = multiscale_softmax(ConstantSegmenter(), images, scales=[1.0], flip=False, fuse="max", resize="ours", amp="float32")
    assert single.shape == (1, 2, 8, 8) and torch.allclose(single.sum(1), torch.ones(1, 8, 8))
    assert single[0, 1, 0, 0] > 0.8 and single[0, 1, 0, 7] == pytest.approx(0.5)
    # with the flip, the right half also sees label 1 in the flipped copy: max keeps the strongest score
    flipped_max = multiscale_softmax(ConstantSegmenter(), images, scales=[1.0], flip=True, fuse="max", resize="ours", amp="float32")
    assert torch.allclose(flipped_max[0, 1], torch.full((8, 8), float(torch.sigmoid(torch.tensor(2.0)))))
    flipped_mean = multiscale_softmax(ConstantSegmenter(), images, scales=[1.0, 0.5], flip=True, fuse="mean", resize="ours", amp="float32")
    assert torch.allclose(flipped_mean.sum(1), torch.ones(1, 8, 8), atol=1e-6)
    with pytest.raises(ValueError, match="fuse"):
        multiscale_softmax(ConstantSegmenter(), images, scales=[1.0], flip=False, fuse="median", resize="ours", amp="float32")


def test_deeplab_shapes_and_checkpoint_class_count(tmp_path):
    settings = small_deeplab_settings()
    model = build_deeplab(settings, num_labels=5)
    assert model(torch.randn(2, 3, 36, 44)).shape == (2, 5, 36, 44)
    save_checkpoint(tmp_path / "deeplab.pt", {"model": model.state_dict(), "architecture": model.architecture(), "settings": settings})
    assert isinstance(load_deeplab(tmp_path / "deeplab.pt", 5, device="cpu"), DeepLabLargeFOV)
    with pytest.raises(ValueError, match="predicts 5 labels, the config has 21"):
        load_deeplab(tmp_path / "deeplab.pt", 21, device="cpu")


def test_segment_images_writes_both_folders_with_crf(synthetic_root, tmp_path):
    from helpers.workflow import TINY_SPEC
    from mctformer.data.voc import VOCLayout

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("val")[:5]
    segment_images(
        ConstantSegmenter(), layout, ids, str(tmp_path / "pred"), str(tmp_path / "pred_crf"), scales=[1.0], flip=False, fuse="max",
        crf=scaled_crf("deeplab"), palette=voc_palette(), device=torch.device("cpu"),
        workers=2, resize="ours", normalise_crf_scores=True, amp="float32", loader_workers=0, chunk=2,
    )
    for image_id in ids:
        plain = read_label_png(tmp_path / "pred" / f"{image_id}.png")
        assert plain.shape == (32, 32) and (plain[:, :16] == 1).all() and (plain[:, 16:] == 0).all()
        assert read_label_png(tmp_path / "pred_crf" / f"{image_id}.png").shape == (32, 32)


def test_voc_submission_layout_and_tarball(synthetic_root, tmp_path):
    import tarfile

    from helpers.workflow import TINY_SPEC
    from mctformer.stages.deeplab import submission_stage

    settings = small_deeplab_settings()
    model = build_deeplab(settings, TINY_SPEC.num_classes + 1)
    save_checkpoint(tmp_path / "deeplab.pt", {"model": model.state_dict(), "architecture": model.architecture(), "settings": settings})
    inference = {
        "head": "largefov", "scales": [1.0], "flip_inference": True, "fuse": "max", "inference_resize": "ours", "inference_amp": "float32",
        "inference_workers": 0,
        "crf": {"normalise_scores": True, "iterations": 2, "gaussian_sxy": 4, "gaussian_compat": 3, "bilateral_sxy": 83, "bilateral_srgb": 5,
                "bilateral_compat": 3, "spatial_scale": "auto", "reference_size": 500},
    }
    classes = [f"c{i}" for i in range(TINY_SPEC.num_classes)]
    out = tmp_path / "submission"
    submission_stage(dataset=DatasetRef(str(synthetic_root), "voc", tuple(classes)), palette=None, split="val", checkpoint=str(tmp_path / "deeplab.pt"),
                     placement=Placement("cpu", False, 0), out_dir=str(out), tarball=str(tmp_path / "submission.tar.gz"), threads=1, **inference)
    pngs = sorted((out / "VOC2012" / "Segmentation" / "comp6_test_cls").glob("*.png"))
    assert len(pngs) == TINY_SPEC.num_val
    from PIL import Image

    with Image.open(pngs[0]) as first:
        assert first.mode == "P" and first.size == (TINY_SPEC.image_size, TINY_SPEC.image_size)
    with tarfile.open(tmp_path / "submission.tar.gz") as archive:
        names = archive.getnames()
    assert f"results/VOC2012/Segmentation/comp6_test_cls/{pngs[0].name}" in names
    assert sum(name.endswith(".png") for name in names) == TINY_SPEC.num_val


def test_training_loss_is_cross_entropy_ignoring_255(synthetic_root, tmp_path, monkeypatch):
    """The reference's loss: mean cross-entropy over the pixels whose label is not 255."""
    import torch.nn.functional as F

    from helpers.workflow import TINY_SPEC
    from mctformer.data.voc import VOCLayout
    from mctformer.training import deeplab as deeplab_module

    calls = []
    real = F.cross_entropy

    def recording(logits, labels, **kwargs):
        calls.append(kwargs)
        return real(logits, labels, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", recording)
    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    settings = dict(tiny_config()["deeplab"], epochs=1, batch_size=4, workers=0)
    ids = layout.read_ids("train")[:8]
    deeplab_module.train_deeplab(layout, ids, layout.load_mask, TINY_SPEC.num_classes + 1, settings,
                                 TrainerFiles(tmp_path / "c.pt", tmp_path / "l.csv", tmp_path / "r.pt", tensorboard=None), device=torch.device("cpu"), seed=0,
                                 workers=settings["workers"])
    assert calls and all(call == {"ignore_index": 255} for call in calls)


# ------------------------------------------------------------ DeepLab-V2 ASPP head

def aspp_settings(dilations=(1, 2, 3, 4)) -> dict:
    return {**small_deeplab_settings(), "head": "aspp", "aspp_dilations": list(dilations)}


def test_aspp_head_shapes_and_recorded_architecture():
    model = build_deeplab(aspp_settings(), num_labels=5)
    assert len(model.head.branches) == 4
    assert [branch.dilation[0] for branch in model.head.branches] == [1, 2, 3, 4]
    assert all(branch.kernel_size == (3, 3) and branch.out_channels == 5 for branch in model.head.branches)
    assert model.logits(torch.randn(2, 3, 32, 40)).shape == (2, 5, 8, 10)  # the tiny backbone's stride 4
    assert model(torch.randn(2, 3, 36, 44)).shape == (2, 5, 36, 44)
    assert model.architecture() == {"num_labels": 5, "backbone": "tiny", "head": "aspp", "aspp_dilations": [1, 2, 3, 4]}
    # LargeFOV keeps its architecture record (and so its checkpoints) as before
    assert "head" not in build_deeplab(small_deeplab_settings(), 5).architecture()


def test_aspp_sums_its_four_branches_by_hand():
    """A one-channel feature map with a single 1 at the centre: each branch, with one weight set, copies it to the
    pixel its dilation reaches; the head's output is their sum (plus the biases)."""
    from mctformer.models.deeplab import ASPPClassifier

    head = ASPPClassifier(1, 1, (1, 2, 3, 4))
    with torch.no_grad():
        for index, branch in enumerate(head.branches):
            branch.weight.zero_()
            branch.weight[0, 0, 0, 1] = index + 1.0  # the tap above the centre: each output reads the pixel `rate` rows above it
            branch.bias.fill_(0.5)
    features = torch.zeros(1, 1, 11, 11)
    features[0, 0, 5, 5] = 1.0
    scores = head(features)[0, 0]
    expected = torch.full((11, 11), 4 * 0.5)
    for index, rate in enumerate((1, 2, 3, 4)):
        expected[5 + rate, 5] += index + 1.0  # so the 1 shows `rate` rows below the centre
    assert torch.equal(scores, expected)


def test_checkpoint_of_one_head_is_refused_by_the_other(tmp_path):
    for settings, other in ((aspp_settings(), "largefov"), (small_deeplab_settings(), "aspp")):
        model = build_deeplab(settings, num_labels=5)
        path = tmp_path / f"{settings['head']}.pt"
        save_checkpoint(path, {"model": model.state_dict(), "architecture": model.architecture(), "settings": settings})
        loaded = load_deeplab(path, 5, head=settings["head"], device="cpu")
        assert loaded.architecture() == model.architecture()
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
        with pytest.raises(ValueError, match=rf"{path.name} has the '{settings['head']}' head, the config asks for deeplab.head '{other}'"):
            load_deeplab(path, 5, head=other, device="cpu")


def test_aspp_settings_are_checked():
    with pytest.raises(ValueError, match="deeplab.head"):
        build_deeplab({**small_deeplab_settings(), "head": "psp"}, 5)
    with pytest.raises(ValueError, match="deeplab.aspp_dilations"):
        build_deeplab(aspp_settings(dilations=()), 5)
