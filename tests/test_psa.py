import dataclasses

import numpy as np
import pytest
import torch

from helpers.arguments import crf_params, scaled_crf
from helpers.workflow import shipped_config
from mctformer.affinity import affinity_loss, half_disc_offsets, neighbour_affinity, pair_affinity, pair_indices, pair_labels
from mctformer.crf import CRFParams, dense_crf, spatial_scale
from mctformer.psa.geometry import seed_scores_on_grid, walk_geometry, walk_to_mask
from mctformer.psa.labels import background_power_scores, confident_labels
from mctformer.psa.walk import dense_random_walk, random_walk, transition_matrix_transposed
from mctformer.training.common import TrainerFiles


def test_half_disc_offsets_hand_list():
    assert half_disc_offsets(3) == [
        (0, 1), (0, 2), (1, -2), (1, -1), (1, 0), (1, 1), (1, 2), (2, -2), (2, -1), (2, 0), (2, 1), (2, 2),
    ]
    with pytest.raises(ValueError):
        half_disc_offsets(1)


@pytest.mark.parametrize("height, width, radius", [(3, 3, 2), (4, 6, 3), (7, 5, 5)])
def test_pairs_are_every_unordered_neighbour_pair_once(height, width, radius):
    sources, targets = pair_indices(height, width, radius, "all")
    found = {frozenset((int(a), int(b))) for a, b in zip(sources, targets)}
    assert len(found) == len(sources)  # no pair twice, in either direction
    expected = set()
    for i in range(height * width):
        for j in range(height * width):
            (y1, x1), (y2, x2) = divmod(i, width), divmod(j, width)
            if i != j and (y1 - y2) ** 2 + (x1 - x2) ** 2 < radius**2:
                expected.add(frozenset((i, j)))
    assert found == expected
    if (height, width, radius) == (3, 3, 2):
        assert len(found) == 20  # 12 orthogonal + 8 diagonal edges of a 3x3 grid


def test_pair_labels_hand_case():
    label = np.array([[0, 0, 1], [255, 1, 2]], np.uint8)
    sources, targets = pair_indices(2, 3, 2, "all")
    kinds = pair_labels(label, 2, "all")
    by_pair = {(int(s), int(t)): k for k in ("bg", "fg", "neg") for s, t in zip(sources[kinds[k]], targets[kinds[k]])}
    assert by_pair[(0, 1)] == "bg"      # 0-0
    assert by_pair[(2, 4)] == "fg"      # 1-1 (diagonal)
    assert by_pair[(1, 2)] == "neg"     # 0-1
    assert by_pair[(4, 5)] == "neg"     # 1-2
    assert all(3 not in pair for pair in by_pair)  # pixel 3 is ignored
    assert sum(k.sum() for k in kinds.values()) == len(by_pair)


def test_pair_affinity_and_loss_hand_case():
    features = torch.tensor([[[[0.0, 1.0, 4.0]], [[0.0, 1.0, 0.0]]]])  # D=2, 1x3 grid
    sources, targets = torch.tensor([0, 1, 0]), torch.tensor([1, 2, 2])
    affinity = pair_affinity(features, sources, targets)
    assert torch.allclose(affinity, torch.exp(-torch.tensor([[1.0, 2.0, 2.0]])))
    labels = {"bg": torch.tensor([[True, False, False]]), "fg": torch.tensor([[False, True, False]]), "neg": torch.tensor([[False, False, True]])}
    loss, parts = affinity_loss(affinity, labels, eps=0.0)
    a = affinity[0]
    expected = -torch.log(a[0]) / 4 - torch.log(a[1]) / 4 - torch.log(1 - a[2]) / 2
    assert torch.allclose(loss, expected, atol=1e-6)
    assert parts["bg"] == pytest.approx(1.0, abs=1e-6) and parts["fg"] == pytest.approx(2.0, abs=1e-6)


def test_background_power_and_confident_labels():
    maps = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    scores = background_power_scores(maps, alpha=2)
    assert np.allclose(scores[0], [[1.0, 0.25, 0.0]])
    la = np.array([[0, 3, 3, 0]], np.uint8)
    ha = np.array([[0, 3, 0, 3]], np.uint8)
    assert confident_labels(la, ha).tolist() == [[0, 3, 0, 255]]
    assert background_power_scores(np.zeros((0, 2, 2), np.float32), 4).shape == (1, 2, 2)


def test_confident_label_stats_by_hand():
    """label_stats.json: the right share of each confident kind, and the object pixels taught as background."""
    from mctformer.psa.drivers import confident_label_counts, confident_label_stats

    class Layout:  # one image with ground truth
        mask_dir = "masks"

        def mask_path(self, image_id):
            class Exists:
                def is_file(self):
                    return True
            return Exists()

        def load_mask(self, image_id):
            return np.array([[0, 0, 1, 1, 1, 2, 2, 255]], np.uint8)

    label = np.array([[0, 1, 1, 0, 255, 2, 1, 1]], np.uint8)
    counts = confident_label_counts(Layout(), "a", label)
    # ground truth known on the first 7 pixels; labelled there: all but pixel 4
    assert counts == {"pixels": 8, "foreground": 5, "background": 2, "labelled_with_gt": 6, "correct": 3,
                      "foreground_with_gt": 4, "foreground_correct": 2, "background_with_gt": 2, "background_correct": 1,
                      "object_pixels": 5, "objects_labelled_background": 1}
    stats = confident_label_stats(counts, 1)
    assert stats["precision_vs_gt"] == pytest.approx(3 / 6)
    assert stats["foreground_precision"] == pytest.approx(2 / 4) and stats["background_precision"] == pytest.approx(1 / 2)
    assert stats["objects_labelled_background"] == pytest.approx(1 / 5)
    assert stats["foreground_fraction"] == pytest.approx(5 / 8) and stats["ignored_fraction"] == pytest.approx(1 / 8)
    # no ground truth: none of the ground-truth keys
    no_truth = confident_label_stats({"pixels": 8, "foreground": 5, "background": 2}, 1)
    assert not {"precision_vs_gt", "foreground_precision", "objects_labelled_background"} & set(no_truth)


def test_sparse_random_walk_equals_the_dense_reference():
    torch.manual_seed(0)
    height, width, radius = 9, 11, 5
    sources, targets = (torch.from_numpy(a) for a in pair_indices(height, width, radius, "all"))
    affinity = torch.rand(len(sources), dtype=torch.float64)
    scores = torch.rand(4, height * width, dtype=torch.float64)
    transition_t = transition_matrix_transposed(affinity, sources, targets, height * width, beta=8)
    dense_rows = transition_t.to_dense().sum(dim=1)
    assert torch.allclose(dense_rows, torch.ones_like(dense_rows))  # T is column-normalised
    for logt in (0, 1, 3, 6):
        sparse = random_walk(scores, transition_t, 2**logt)
        dense = dense_random_walk(scores, affinity, sources, targets, height * width, beta=8, logt=logt)
        assert torch.allclose(sparse, dense, atol=1e-10)


def test_seed_scores_pad_with_zeros_and_pool():
    maps = np.ones((1, 3, 3), np.float32)
    scores, padded = seed_scores_on_grid(np.array([2]), maps, background=0.5, stride=2)
    assert padded == (4, 4)
    # top-left cell is all image: bg 0.5, map 1; the bottom-right cell holds one image pixel of four
    assert torch.allclose(scores[:, 0, 0], torch.tensor([0.5, 1.0]))
    assert torch.allclose(scores[:, 1, 1], torch.tensor([0.125, 0.25]))


def test_walk_to_mask_upsamples_argmax_and_crops():
    walked = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 2.0], [2.0, 0.0]]]])  # one image, 2 channels, 2x2 grid
    mask = walk_to_mask(walked, (2, 2), (4, 4), (3, 4))
    assert mask.shape == (1, 3, 4)
    assert mask[0, 0, 0] == 0 and mask[0, 0, 3] == 1 and set(np.unique(mask)) <= {0, 1}



def test_walk_geometry_of_a_scaled_image():
    assert walk_geometry(64, 64, 4, 1.0) == ((64, 64), (64, 64), (16, 16))
    assert walk_geometry(64, 64, 4, 2.0) == ((128, 128), (128, 128), (32, 32))
    assert walk_geometry(10, 13, 4, 1.5) == ((15, 20), (16, 20), (4, 5))


def test_seed_scores_of_a_scaled_image_pool_the_resized_maps():
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, :, 2:] = 1.0  # right half
    scores, padded = seed_scores_on_grid(np.array([1]), maps, background=0.25, stride=2, scaled=(8, 8))
    assert padded == (8, 8) and scores.shape == (2, 4, 4)
    assert torch.allclose(scores[0], torch.full((4, 4), 0.25))
    # resized bilinearly then pooled: the outer columns keep 0 and 1, symmetric around the edge
    assert torch.allclose(scores[1, :, 0], torch.zeros(4)) and torch.allclose(scores[1, :, 3], torch.ones(4))
    assert torch.allclose(scores[1, :, 1] + scores[1, :, 2], torch.ones(4))


def test_walk_to_mask_of_a_scaled_walk_returns_the_original_size():
    walked = torch.full((1, 2, 4, 4), 0.5)
    walked[0, 1] = 0.0
    walked[0, 1, :, 2:] = 1.0  # class 1 on the right half of the scaled grid, background 0.5 everywhere
    mask = walk_to_mask(walked, (4, 4), (8, 8), (4, 4), scaled=(8, 8))
    assert mask.shape == (1, 4, 4)
    assert (mask[0, :, :2] == 0).all() and (mask[0, :, 2:] == 1).all()


def test_crf_cleans_a_noisy_unary_along_the_colour_edge():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 200
    truth = np.zeros((32, 32), int)
    truth[:, 16:] = 1
    confident = np.where(truth == 1, 0.7, 0.3)[None]
    probs = np.concatenate([1 - confident, confident])
    flipped = np.random.default_rng(0).random((32, 32)) < 0.3
    probs[:, flipped] = probs[::-1][:, flipped]
    assert (probs.argmax(0) == truth).mean() < 0.75
    # the reference's colour kernel (compat 10): the shipped label CRF has none (config.yaml psa.crf.bilateral_compat)
    refined = dense_crf(image, probs, crf_params("psa", bilateral_compat=10).scaled(spatial_scale((32, 32), "auto", 500)))
    assert refined.shape == probs.shape and np.allclose(refined.sum(0), 1, atol=1e-4)
    assert (refined.argmax(0) == truth).mean() > 0.98


@pytest.mark.parametrize("zero", ["gaussian_compat", "bilateral_compat"])
def test_a_crf_kernel_of_weight_zero_is_skipped_bit_for_bit(zero):
    """dense_crf leaves out a kernel whose compat is 0; pydensecrf with that zero-weight kernel gives the same bits."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    probs = rng.random((3, 24, 20)).astype(np.float32)
    probs /= probs.sum(0)
    params = dataclasses.replace(CRFParams(10, 1.5, 3.0, 8.0, 13.0, 10.0), **{zero: 0.0})
    full = dcrf.DenseCRF2D(20, 24, 3)
    full.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    full.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    full.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=np.ascontiguousarray(image),
                              compat=params.bilateral_compat)
    expected = np.asarray(full.inference(10), np.float32).reshape(3, 24, 20)
    refined = dense_crf(image, probs, params)
    assert np.array_equal(refined, expected)
    # the kernel that is left acts: with no kernel at all the result differs
    assert not np.array_equal(refined, dense_crf(image, probs, dataclasses.replace(params, gaussian_compat=0.0, bilateral_compat=0.0)))


def test_crf_spatial_scale():
    assert spatial_scale((250, 100), "auto", 500) == pytest.approx(0.5)
    assert spatial_scale((64, 64), 0.25, 500) == 0.25
    scaled = CRFParams(10, 3.0, 3.0, 80.0, 13.0, 10.0).scaled(0.5)
    assert (scaled.gaussian_sxy, scaled.bilateral_sxy, scaled.bilateral_srgb) == (1.5, 40.0, 13.0)


@pytest.mark.parametrize("height, width, radius", [(7, 9, 4), (16, 16, 5), (3, 2, 2)])
def test_neighbour_affinity_equals_gathering_every_pair(height, width, radius):
    torch.manual_seed(0)
    features = torch.randn(2, 5, height, width, requires_grad=True)
    sources, targets = (torch.from_numpy(a) for a in pair_indices(height, width, radius, "all"))
    gathered = pair_affinity(features, sources, targets)
    sliced = neighbour_affinity(features, radius, "all")
    assert torch.allclose(gathered, sliced)
    grad_gathered, = torch.autograd.grad(gathered.sum(), features)
    grad_sliced, = torch.autograd.grad(sliced.sum(), features)
    assert torch.allclose(grad_gathered, grad_sliced, atol=1e-6)


def test_batched_transition_walks_each_image_on_its_own():
    torch.manual_seed(1)
    sources, targets = (torch.from_numpy(a) for a in pair_indices(5, 6, 3, "all"))
    affinity = torch.rand(3, len(sources), dtype=torch.float64)
    scores = torch.rand(2, 3, 30, dtype=torch.float64)
    batched = random_walk(scores.reshape(2, -1), transition_matrix_transposed(affinity, sources, targets, 30, 8), 8).reshape(2, 3, 30)
    for image in range(3):
        alone = random_walk(scores[:, image], transition_matrix_transposed(affinity[image], sources, targets, 30, 8), 8)
        assert torch.allclose(batched[:, image], alone)


def test_missing_per_image_inputs_are_named(synthetic_root, tmp_path):
    from helpers.workflow import TINY_SPEC
    from mctformer.artifacts import voc_palette
    from mctformer.data.voc import VOCLayout
    from mctformer.psa.drivers import make_psa_labels
    from mctformer.training.affinity import train_affinity

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("val")[:3]
    (tmp_path / "maps").mkdir()
    with pytest.raises(FileNotFoundError, match=r"maps missing for 3 of 3 images, e\.g\. .*maps/syn_\d+\.npz"):
        make_psa_labels(layout, ids, str(tmp_path / "maps"), str(tmp_path / "labels"), alpha_low=4, alpha_high=12, crf=scaled_crf("psa"),
                        palette=voc_palette(), workers=1, image_source="decoded", keep_scores=False)
    assert not (tmp_path / "labels").exists()
    with pytest.raises(FileNotFoundError, match="PSA labels missing for 3 of 3 images"):
        settings = shipped_config()["affinity"]
        train_affinity(layout, ids, str(tmp_path / "maps"), settings, TrainerFiles(tmp_path / "a.pt", tmp_path / "a.csv", tmp_path / "r.pt", tensorboard=None),
                       device=torch.device("cpu"), seed=0, workers=0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))])
@pytest.mark.parametrize(("radius", "sources"), [(2, "all"), (5, "all"), (5, "reference")])
def test_batch_pair_labels_torch_equal_the_numpy_ones(device, radius, sources):
    from mctformer.affinity import batch_pair_labels_torch

    rng = np.random.default_rng(radius)
    labels = rng.integers(0, 4, (3, 13, 17)).astype(np.int64)
    labels[rng.random(labels.shape) < 0.1] = 255
    on_device = batch_pair_labels_torch(torch.from_numpy(labels).to(device), radius, sources)
    for kind in ("bg", "fg", "neg"):
        expected = np.stack([pair_labels(label, radius, sources)[kind] for label in labels])
        assert np.array_equal(on_device[kind].cpu().numpy(), expected)
