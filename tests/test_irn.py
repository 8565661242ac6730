"""IRN beside PSA: confident labels, path-max boundary affinity, the pair losses, the sparse boundary walk,
the boundary network and its training, and the bad inputs each names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.arguments import crf_params, scaled_crf
from helpers.workflow import TINY_SPEC, shipped_config
from mctformer.affinity import pair_indices, pair_labels
from mctformer.artifacts import save_map_file, voc_palette
from mctformer.irn.labels import check_thresholds, ir_labels
from mctformer.irn.paths import boundary_affinity, irn_affinity_loss, path_offsets
from mctformer.irn.walk import boundary_walk, walked_to_masks
from mctformer.psa.walk import dense_random_walk
from mctformer.training.common import TrainerFiles


def shipped_irn() -> dict:
    return shipped_config()["irn"]


# ------------------------------------------------------------------ paths ---

def test_path_cells_hand_cases():
    table = dict(path_offsets(5))
    assert set(table[(0, 4)]) == {(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)}
    assert set(table[(1, 1)]) == {(0, 0), (0, 1), (1, 0), (1, 1)}  # squared distance 1/2 < 1 for both side cells
    # (2, 4): cells within distance 1 of the line y = x / 2: |x - 2y| < sqrt(5)
    assert set(table[(2, 4)]) == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 2), (2, 3), (2, 4)}
    assert set(table[(3, -1)]) == {(0, 0), (1, 0), (2, 0), (3, 0), (0, -1), (1, -1), (2, -1), (3, -1)}
    # the offsets are AffinityNet's, in its order, each path from the source to the target
    from mctformer.affinity import half_disc_offsets

    assert [offset for offset, _ in path_offsets(5)] == half_disc_offsets(5)
    assert all((0, 0) in cells and offset in cells for offset, cells in path_offsets(5))


def test_path_max_affinity_on_a_grid_with_a_known_wall():
    """A 5x6 grid with a wall in column 3 (boundary 1) and two weaker cells: pairs on one side keep affinity 1,
    pairs across or onto the wall get 0, a path over the weak cells 1 - their larger value."""
    boundary = torch.zeros(1, 5, 6)
    boundary[0, :, 3] = 1.0
    boundary[0, 2, 1], boundary[0, 3, 1] = 0.3, 0.8
    affinity = boundary_affinity(boundary, 3, "all")[0]
    sources, targets = pair_indices(5, 6, 3, "all")
    by_pair = {(int(s), int(t)): float(a) for s, t, a in zip(sources, targets, affinity)}

    def at(y0, x0, y1, x1):
        return by_pair[(y0 * 6 + x0, y1 * 6 + x1)]

    assert at(0, 0, 0, 1) == 1.0 and at(0, 0, 1, 1) == 1.0 and at(0, 4, 0, 5) == 1.0  # same side, no boundary
    assert at(0, 2, 0, 4) == 0.0 and at(1, 2, 2, 4) == 0.0 and at(0, 4, 1, 3) == 0.0  # across or onto the wall
    assert at(1, 1, 2, 1) == pytest.approx(0.7)   # ends on the 0.3 cell
    assert at(1, 1, 3, 1) == pytest.approx(0.2)   # passes 0.3 and ends on 0.8: the larger counts
    assert at(2, 0, 2, 2) == pytest.approx(0.7)   # through the 0.3 cell
    assert at(0, 0, 0, 2) == 1.0                  # the row above the weak cells
    assert len(affinity) == len(sources)


@pytest.mark.parametrize("height, width, radius, sources", [(7, 9, 3, "all"), (9, 11, 5, "all"), (12, 14, 5, "reference"), (6, 5, 2, "reference")])
def test_path_max_affinity_equals_gathering_every_path(height, width, radius, sources):
    torch.manual_seed(0)
    boundary = torch.rand(2, height, width)
    ours = boundary_affinity(boundary, radius, sources)
    table = dict(path_offsets(radius))
    source_index, target_index = pair_indices(height, width, radius, sources)
    expected = torch.empty(2, len(source_index))
    for pair, (s, t) in enumerate(zip(source_index, target_index)):
        y, x, dy, dx = s // width, s % width, t // width - s // width, t % width - s % width
        cells = table[(int(dy), int(dx))]
        expected[:, pair] = 1 - torch.stack([boundary[:, y + cy, x + cx] for cy, cx in cells]).amax(0)
    assert torch.equal(ours, expected)


# ----------------------------------------------------------------- labels ---

def test_confident_labels_at_the_thresholds():
    """With a CRF that keeps its input (no iteration), the labels are the thresholds' alone: foreground above
    conf_fg_thres, background at or below conf_bg_thres in every map, 255 between; a tie stays below."""
    maps = np.array([[[0.05, 0.06, 0.30, 0.31, 0.50, 0.04]],
                     [[0.00, 0.00, 0.00, 0.00, 0.60, 0.20]]], np.float32)
    image = np.full((1, 6, 3), 128, np.uint8)
    keep = crf_params("psa", iterations=0)
    label = ir_labels(image, np.array([3, 7]), maps, conf_fg_thres=0.30, conf_bg_thres=0.05, crf_params=keep, gt_prob=0.7)
    assert label.tolist() == [[0, 255, 255, 3, 7, 255]]


def test_confident_labels_are_refined_by_the_label_crf():
    """A 24x24 image, left half dark and right half bright, the seed covering the right half except one pixel:
    the CRF (the authors' label CRF, 10 iterations) gives the stray pixel its neighbours' label."""
    image = np.zeros((24, 24, 3), np.uint8)
    image[:, 12:] = 200
    maps = np.zeros((1, 24, 24), np.float32)
    maps[0, :, 12:] = 0.9
    maps[0, 6, 18] = 0.0  # a hole in the seed: below both thresholds
    settings = shipped_irn()["crf"]
    params = crf_params("psa", iterations=10, gaussian_sxy=3, gaussian_compat=3, bilateral_sxy=50, bilateral_srgb=5, bilateral_compat=10)
    assert settings["bilateral_sxy"] == 50 and settings["gt_prob"] == 0.7
    label = ir_labels(image, np.array([2]), maps, conf_fg_thres=0.30, conf_bg_thres=0.05, crf_params=params, gt_prob=0.7)
    assert label[6, 18] == 2
    assert (label[:, :12] == 0).all() and (label[:, 12:] == 2).all()


@pytest.mark.parametrize("fg, bg, message", [
    (1.5, 0.05, r"irn.conf_fg_thres must lie in \[0, 1\], got 1.5"),
    (0.3, -0.1, r"irn.conf_bg_thres must lie in \[0, 1\], got -0.1"),
    (0.2, 0.4, r"irn.conf_bg_thres \(0.4\) must not exceed irn.conf_fg_thres \(0.2\)"),
])
def test_thresholds_out_of_range_name_the_key(fg, bg, message):
    with pytest.raises(ValueError, match=message):
        check_thresholds(fg, bg)


def test_config_check_names_the_threshold_key():
    from helpers.workflow import tiny_config
    from mctformer.config import ConfigError, check_config

    for key, value, message in (("conf_fg_thres", 1.2, "irn.conf_fg_thres: must lie in"), ("sem_seg_bg_thres", -1, "irn.sem_seg_bg_thres"),
                                ("conf_bg_thres", 0.5, "irn.conf_bg_thres: 0.5 exceeds irn.conf_fg_thres")):
        config = tiny_config()
        config["irn"][key] = value
        with pytest.raises(ConfigError, match=message):
            check_config(config)
    config = tiny_config()
    config["deeplab"]["pseudo_masks"] = ["psa", "irn"]
    with pytest.raises(ConfigError, match=r"deeplab.pseudo_masks: 'irn' is not among refine.methods \['psa'\]"):
        check_config(config)


# ----------------------------------------------------------------- losses ---

def test_pair_losses_on_a_hand_made_label_map():
    """Grid [[0, 0, 1], [255, 1, 2]], radius 2 (offsets (0,1), (1,-1), (1,0), (1,1)): pairs by hand, then the loss."""
    label = np.array([[0, 0, 1], [255, 1, 2]], np.uint8)
    sources, targets = pair_indices(2, 3, 2, "all")
    kinds = pair_labels(label, 2, "all")
    pairs = list(zip(sources.tolist(), targets.tolist()))
    listed = {kind: {pairs[i] for i in np.flatnonzero(kinds[kind])} for kind in ("bg", "fg", "neg")}
    assert listed == {"bg": {(0, 1)}, "fg": {(2, 4)}, "neg": {(1, 2), (4, 5), (1, 4), (2, 5), (0, 4), (1, 5)}}
    # pairs touching the 255 cell (index 3) are in none
    given = {(0, 1): 0.9, (2, 4): 0.6, (1, 2): 0.2, (4, 5): 0.1, (1, 4): 0.3, (2, 5): 0.4, (0, 4): 0.2, (1, 5): 0.1}
    affinity = torch.tensor([[given.get(pair, 0.5) for pair in pairs]], dtype=torch.float64)
    masks = {kind: torch.from_numpy(mask)[None] for kind, mask in kinds.items()}
    total, parts = irn_affinity_loss(affinity, masks, eps=0.0)
    bg, fg = -np.log(0.9), -np.log(0.6)
    neg = -np.mean(np.log(1 - np.array([0.2, 0.1, 0.3, 0.4, 0.2, 0.1])))
    assert parts["bg"] == pytest.approx(bg) and parts["fg"] == pytest.approx(fg) and parts["neg"] == pytest.approx(neg)
    assert float(total) == pytest.approx((bg / 2 + fg / 2 + neg) / 2)


def test_boundary_on_the_class_edge_lowers_the_loss():
    """A wall between two classes makes every pair across it negative at no cost (its own cells still cost the
    positive pairs that touch them); no boundary at all costs -log(eps) per negative pair."""
    label = np.zeros((6, 6), np.uint8)
    label[:, 3:] = 1
    masks = {kind: torch.from_numpy(mask)[None] for kind, mask in pair_labels(label, 3, "all").items()}
    wall = torch.zeros(1, 6, 6)
    wall[0, :, 3] = 1.0
    clean, clean_parts = irn_affinity_loss(boundary_affinity(wall, 3, "all"), masks)
    none, none_parts = irn_affinity_loss(boundary_affinity(torch.zeros(1, 6, 6), 3, "all"), masks)
    assert clean_parts["neg"] == pytest.approx(0.0, abs=1e-4) and none_parts["neg"] == pytest.approx(-np.log(1e-5), rel=1e-3)
    assert none_parts["bg"] == pytest.approx(0.0, abs=1e-4) and clean_parts["bg"] == pytest.approx(0.0, abs=1e-4)
    assert float(clean) < float(none)


# ------------------------------------------------------------------- walk ---

def dense_reference_walk(boundary: torch.Tensor, seeds: torch.Tensor, radius: int, beta: float, exp_times: int) -> torch.Tensor:
    """The authors' way, written out: a dense affinity over every pixel pair within the radius (path-max from the
    path table), A^beta with a unit diagonal, column-normalised, squared exp_times times; seeds x (1 - boundary)."""
    height, width = boundary.shape
    table = dict(path_offsets(radius))
    size = height * width
    dense = torch.eye(size, dtype=torch.float64)
    for (dy, dx), cells in table.items():
        for y in range(height):
            for x in range(width):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    value = 1 - max(float(boundary[y + cy, x + cx]) for cy, cx in cells)
                    dense[y * width + x, (y + dy) * width + x + dx] = dense[(y + dy) * width + x + dx, y * width + x] = value
    transition = dense.pow(beta)
    transition = transition / transition.sum(dim=0, keepdim=True)
    for _ in range(exp_times):
        transition = transition @ transition
    return ((seeds * (1 - boundary)).reshape(seeds.shape[0], -1) @ transition).reshape(seeds.shape)


def test_sparse_boundary_walk_equals_a_dense_reference_walk():
    torch.manual_seed(1)
    boundary = torch.rand(7, 8, dtype=torch.float64) ** 3
    seeds = torch.rand(2, 7, 8, dtype=torch.float64)
    walked = boundary_walk(boundary[None], [seeds], beta=10, exp_times=3, radius=3)[0]
    expected = dense_reference_walk(boundary, seeds, radius=3, beta=10, exp_times=3)
    assert torch.allclose(walked, expected, rtol=1e-9, atol=1e-12)
    # and the same through PSA's dense helper with the path-max affinities
    sources, targets = (torch.from_numpy(a) for a in pair_indices(7, 8, 3, "all"))
    affinity = boundary_affinity(boundary[None], 3, "all")[0]
    psa_dense = dense_random_walk((seeds * (1 - boundary)).reshape(2, -1), affinity, sources, targets, 56, 10, 3)
    assert torch.allclose(walked.reshape(2, -1), psa_dense, rtol=1e-9, atol=1e-12)


def test_batched_boundary_walk_walks_each_image_alone_and_pads_missing_classes():
    torch.manual_seed(2)
    boundary = torch.rand(3, 5, 6, dtype=torch.float64)
    seeds = [torch.rand(2, 5, 6, dtype=torch.float64), torch.rand(1, 5, 6, dtype=torch.float64), torch.rand(2, 5, 6, dtype=torch.float64)]
    batched = boundary_walk(boundary, seeds, beta=10, exp_times=2, radius=3)
    for index, scores in enumerate(seeds):
        alone = boundary_walk(boundary[index : index + 1], [scores], beta=10, exp_times=2, radius=3)[0]
        assert torch.allclose(batched[index, : scores.shape[0]], alone)
    assert (batched[1, 1] == -1).all()


def test_walked_scores_to_masks_normalise_and_add_the_background_score():
    walked = torch.tensor([[[[2.0, 0.2], [0.4, 0.0]], [[0.0, 1.0], [0.2, 0.1]]]])  # max 2: halved
    geometry = ((2, 2), (2, 2), (2, 2))  # stride 1: the grid is the image
    mask = walked_to_masks(walked, [np.array([5, 9])], geometry, (2, 2), bg_threshold=0.25)[0]
    assert mask.tolist() == [[5, 9], [0, 0]]  # 0.2 / 2 and 0.1 / 2 fall below 0.25
    upsampled = walked_to_masks(walked, [np.array([5, 9])], ((8, 8), (8, 8), (2, 2)), (8, 8), bg_threshold=0.25)[0]
    assert upsampled.shape == (8, 8) and upsampled[0, 0] == 5 and upsampled[0, 7] == 9 and upsampled[7, 7] == 0


# --------------------------------------------------------- network, stages ---

def test_boundary_network_shapes_freezing_and_flip_averaging():
    from mctformer.models.irn import BoundaryNet, boundary_probability

    torch.manual_seed(0)
    model = BoundaryNet(backbone="tiny", pretrained=None, edge_channels=8, freeze_backbone=False).eval()
    images = torch.randn(2, 3, 32, 40)
    assert model(images).shape == (2, 1, 8, 10)
    with torch.no_grad():
        probability = boundary_probability(model, images)
    assert probability.shape == (2, 8, 10)
    with torch.no_grad():  # the authors' EdgeDisplacement: the sigmoid of the two views' logits averaged, not the two sigmoids averaged
        logits, mirrored = model(images)[:, 0], model(images.flip(-1))[:, 0].flip(-1)
    assert torch.allclose(probability, torch.sigmoid((logits + mirrored) / 2), atol=1e-6)
    assert not torch.allclose(probability, (torch.sigmoid(logits) + torch.sigmoid(mirrored)) / 2, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(boundary_probability(model, images.flip(-1)), probability.flip(-1), atol=1e-6)
    frozen = BoundaryNet(backbone="tiny", pretrained=None, edge_channels=8, freeze_backbone=True).train()
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    assert not frozen.backbone.training and frozen.level_heads.training
    frozen(images).sum().backward()
    assert all(p.grad is not None for p in frozen.head_parameters())
    with pytest.raises(ValueError, match="irn.edge_channels must be a multiple of 4"):
        BoundaryNet(backbone="tiny", pretrained=None, edge_channels=6, freeze_backbone=False)


def test_timm_pyramid_gives_a_stride_4_boundary_map():
    from mctformer.models.irn import BoundaryNet

    model = BoundaryNet(backbone="resnet18", pretrained=None, edge_channels=8, freeze_backbone=True).eval()
    assert model.backbone.channels == [64, 128, 256, 512]
    assert model(torch.randn(1, 3, 64, 48)).shape == (1, 1, 16, 12)


def irn_maps(root, ids, out):
    """Maps of ``ids`` from their ground truth (each class's mask blurred a little): seeds a walk can follow."""
    from scipy.ndimage import uniform_filter

    from mctformer.data.voc import VOCLayout

    layout = VOCLayout(root, TINY_SPEC.num_classes)
    out.mkdir()
    for image_id in ids:
        mask = layout.load_mask(image_id)
        classes = [c for c in np.unique(mask) if c not in (0, 255)]
        maps = np.stack([uniform_filter((mask == c).astype(np.float32), 5) for c in classes])
        save_map_file(out / f"{image_id}.npz", np.array(classes), maps, dtype="float32")
    return layout


def test_labels_training_and_walk_stages_end_to_end(synthetic_root, tmp_path, capsys):
    from mctformer.irn.drivers import irn_walk_masks, make_ir_labels
    from mctformer.training.irn import load_boundary_net, train_boundary_net

    layout_ids = sorted(p.stem for p in (synthetic_root / "JPEGImages").glob("*.jpg"))[:8]
    layout = irn_maps(synthetic_root, layout_ids, tmp_path / "maps")
    settings = shipped_irn()
    crf = scaled_crf("psa", iterations=settings["crf"]["iterations"], gaussian_sxy=3, gaussian_compat=3, bilateral_sxy=50,
                        bilateral_srgb=5, bilateral_compat=10)
    stats = make_ir_labels(layout, layout_ids, str(tmp_path / "maps"), str(tmp_path / "labels"), conf_fg_thres=0.3, conf_bg_thres=0.05,
                           crf=crf, gt_prob=0.7, palette=voc_palette(), workers=1)
    assert stats["images"] == 8 and stats["precision_vs_gt"] > 0.9 and 0 < stats["ignored_fraction"] < 0.5
    training = {**settings, "crop_size": 32, "batch_size": 4, "epochs": 2, "workers": 0, "edge_channels": 8}
    files = TrainerFiles(tmp_path / "b.pt", tmp_path / "b.csv", tmp_path / "resume.pt", tensorboard=None)
    summary = train_boundary_net(layout, layout_ids, str(tmp_path / "labels"), training, files, device=torch.device("cpu"), seed=0, workers=0)
    log = capsys.readouterr().out
    assert log.count("irn epoch 1:") == 1 and log.count("irn epoch 2:") == 1
    assert (tmp_path / "b.csv").read_text().startswith("epoch,loss,bg,fg,neg,lr,seconds")
    assert summary["final"]["epoch"] == 2 and not (tmp_path / "resume.pt").exists()
    model = load_boundary_net(tmp_path / "b.pt", "tiny", device="cpu")
    irn_walk_masks(model, layout, layout_ids, str(tmp_path / "maps"), str(tmp_path / "masks"), beta=10, exp_times=3, radius=5,
                   bg_threshold=0.25, scale=1.0, batch_size=4, palette=voc_palette(), device=torch.device("cpu"), amp="float32")
    from mctformer.artifacts import read_label_png

    for image_id in layout_ids:
        mask = read_label_png(tmp_path / "masks" / f"{image_id}.png")
        assert mask.shape == layout.load_mask(image_id).shape
        assert set(np.unique(mask)) <= {0, *np.unique(layout.load_mask(image_id)).tolist()} - {255}
    assert not list(tmp_path.glob(".*.tmp"))


def test_boundary_checkpoint_of_another_backbone_is_refused(tmp_path):
    from mctformer.models.irn import BoundaryNet
    from mctformer.training.common import save_checkpoint
    from mctformer.training.irn import load_boundary_net

    model = BoundaryNet(backbone="tiny", pretrained=None, edge_channels=8, freeze_backbone=False)
    save_checkpoint(tmp_path / "boundary.pt", {"model": model.state_dict(), "architecture": model.architecture(), "settings": {}})
    with pytest.raises(ValueError, match=r"IRN boundary checkpoint \S*boundary\.pt has backbone 'tiny', the config asks for irn.backbone 'resnet50'"):
        load_boundary_net(tmp_path / "boundary.pt", "resnet50", device="cpu")
    affinity = {"model": {}, "architecture": {"backbone": "tiny", "feature_dim": 112}}
    save_checkpoint(tmp_path / "affinity.pt", affinity)
    with pytest.raises(ValueError, match=r"\S*affinity\.pt is not an IRN boundary-network checkpoint"):
        load_boundary_net(tmp_path / "affinity.pt", "tiny", device="cpu")


def test_missing_maps_are_named(synthetic_root, tmp_path):
    from mctformer.data.voc import VOCLayout
    from mctformer.irn.drivers import irn_walk_masks, make_ir_labels
    from mctformer.models.irn import BoundaryNet

    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    ids = layout.read_ids("val")[:3]
    (tmp_path / "maps").mkdir()
    save_map_file(tmp_path / "maps" / f"{ids[0]}.npz", np.array([1]), np.zeros((1, *layout.image_size(ids[0]))), dtype="float32")
    with pytest.raises(FileNotFoundError, match=rf"maps missing for 2 of 3 images, e\.g\. .*maps/{ids[1]}\.npz"):
        make_ir_labels(layout, ids, str(tmp_path / "maps"), str(tmp_path / "labels"), conf_fg_thres=0.3, conf_bg_thres=0.05,
                       crf=scaled_crf("psa"), gt_prob=0.7, palette=voc_palette(), workers=1)
    assert not (tmp_path / "labels").exists()
    model = BoundaryNet(backbone="tiny", pretrained=None, edge_channels=8, freeze_backbone=False)
    with pytest.raises(FileNotFoundError, match=rf"maps missing for 2 of 3 images, e\.g\. .*maps/{ids[1]}\.npz"):
        irn_walk_masks(model, layout, ids, str(tmp_path / "maps"), str(tmp_path / "masks"), beta=10, exp_times=2, radius=5,
                       bg_threshold=0.25, scale=1.0, batch_size=4, palette=voc_palette(), device=torch.device("cpu"), amp="float32")
    with pytest.raises(ValueError, match="irn.conf_fg_thres must lie in"):
        make_ir_labels(layout, ids[:1], str(tmp_path / "maps"), str(tmp_path / "labels"), conf_fg_thres=1.3, conf_bg_thres=0.05,
                       crf=scaled_crf("psa"), gt_prob=0.7, palette=voc_palette(), workers=1)
