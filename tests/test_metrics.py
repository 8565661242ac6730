import numpy as np
import pandas as pd
import pytest

from mctformer.artifacts import save_map_file
from mctformer.metrics import (
    best_threshold,
    confusion_matrix,
    mean_average_precision,
    scores_from_confusion,
    seed_prediction,
    sweep_image,
    sweep_split,
    sweep_table,
    threshold_grid,
)


def test_confusion_matrix_hand_case_with_ignore():
    gt = np.array([[0, 1, 1], [2, 255, 0]])
    pred = np.array([[0, 1, 2], [2, 1, 1]])
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert np.array_equal(confusion_matrix(gt, pred, 3), expected)


def test_iou_precision_recall_hand_case():
    confusion = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    scores = scores_from_confusion(confusion)
    assert np.allclose(scores["iou"], [1 / 2, 1 / 3, 1 / 2])
    assert np.allclose(scores["precision"], [1, 1 / 2, 1 / 2])
    assert np.allclose(scores["recall"], [1 / 2, 1 / 2, 1])
    assert scores["miou"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)


def test_classes_absent_everywhere_leave_the_mean():
    confusion = np.array([[2, 0, 0], [0, 3, 0], [0, 0, 0]])
    assert scores_from_confusion(confusion)["miou"] == pytest.approx(1.0)


def test_seed_prediction_ties_go_to_background():
    labels = np.array([2, 5])
    maps = np.array([[[0.3, 0.5, 0.2]], [[0.1, 0.5, 0.3]]], dtype=np.float32)
    # pixel 0: 0.3 > t=0.3? no -> tie -> background; pixel 1: class tie -> first (2); pixel 2: 0.3 == t -> bg
    assert seed_prediction(labels, maps, np.float32(0.3)).tolist() == [[0, 2, 0]]
    assert seed_prediction(labels, maps, np.float32(0.25)).tolist() == [[2, 2, 5]]


def test_threshold_grid_is_exact():
    grid = threshold_grid(0.0, 0.6, 0.01)
    assert len(grid) == 61 and grid[39] == 0.39 and grid[-1] == 0.6


def test_sweep_equals_naive_per_threshold_loop_on_random_data():
    rng = np.random.default_rng(1)
    grid = threshold_grid(0.0, 0.6, 0.01)
    for _ in range(30):
        k = int(rng.integers(0, 4))
        labels = np.sort(rng.choice(np.arange(1, 7), k, replace=False))
        maps = np.round(rng.random((k, 9, 11)), 2).astype(np.float32)  # many exact ties with thresholds
        gt = rng.integers(0, 7, (9, 11))
        gt[rng.random(gt.shape) < 0.15] = 255
        fast = sweep_image(labels, maps, gt, grid, 7)
        naive = np.stack([confusion_matrix(gt, seed_prediction(labels, maps, np.float32(t)), 7) for t in grid])
        assert np.array_equal(fast, naive)


# Our seed selection (config.yaml's seeds.miou_convention, seeds.selection), which the hand cases below rank by.
OURS = dict(convention="present_labels", selection="global_max")


def test_sweep_split_and_table(tmp_path):
    gt = {"a": np.array([[0, 1], [1, 255]]), "b": np.array([[2, 2], [0, 0]])}
    save_map_file(tmp_path / "a.npz", [1], np.array([[[0.1, 0.9], [0.5, 0.7]]]), dtype="float16")
    save_map_file(tmp_path / "b.npz", [2], np.array([[[0.8, 0.4], [0.2, 0.0]]]), dtype="float16")
    grid = np.array([0.0, 0.3, 0.6])
    confusions = sweep_split({"v": tmp_path}, ["a", "b"], gt.__getitem__, grid, 3, progress=False)["v"]
    # t = 0.3: a -> [[0,1],[1,1]], b -> [[2,2],[0,0]] : everything right except nothing
    assert np.array_equal(confusions[1], np.array([[3, 0, 0], [0, 2, 0], [0, 0, 2]]))
    table = sweep_table(confusions, grid, ["background", "x", "y"])
    assert table.loc[1, "miou"] == pytest.approx(1.0)
    best = best_threshold(table, **OURS)
    assert (best["threshold"], best["miou"], best["selection"], best["convention"]) == (0.3, 1.0, "global_max", "present_labels")
    assert best["miou_all_labels"] == pytest.approx(1.0)  # all three labels occur
    with pytest.raises(ValueError, match="holds classes"):
        sweep_split({"v": tmp_path}, ["a"], gt.__getitem__, grid, 3, class_labels={"a": np.array([0, 1], np.float32)}, progress=False)
    with pytest.raises(FileNotFoundError, match="c.npz"):
        sweep_split({"v": tmp_path}, ["c"], {"c": gt["a"]}.__getitem__, grid, 3, progress=False)


def test_best_threshold_prefers_the_lowest_on_ties():
    table = pd.DataFrame({"threshold": [0.1, 0.2, 0.3], "miou": [0.5, 0.7, 0.7], "miou_all_labels": [0.5, 0.7, 0.7]})
    assert best_threshold(table, **OURS)["threshold"] == 0.2


def test_early_stop_answers_the_first_bump_and_the_conventions_rank_separately():
    # all-labels mIoU: 0.2, 0.3, 0.25, 0.6 -> the reference's --curve stops after 0.3 (t = 0.2)
    table = pd.DataFrame({"threshold": [0.1, 0.2, 0.3, 0.4], "miou": [0.8, 0.4, 0.5, 0.6], "miou_all_labels": [0.2, 0.3, 0.25, 0.6]})
    early = best_threshold(table, convention="all_labels", selection="first_non_improving")
    assert (early["threshold"], early["miou"], early["miou_present_labels"]) == (0.2, 0.3, 0.4)
    assert early["global_max"]["threshold"] == 0.4
    ours = best_threshold(table, **OURS)
    assert (ours["threshold"], ours["miou"]) == (0.1, 0.8)
    assert ours["first_non_improving"]["threshold"] == 0.1  # 0.4 < 0.8: stops at once
    with pytest.raises(ValueError, match="seeds.selection"):
        best_threshold(table, convention="present_labels", selection="last")
    with pytest.raises(ValueError, match="seeds.miou_convention"):
        best_threshold(table, convention="mean", selection="global_max")


def test_all_labels_convention_counts_an_absent_label_as_zero():
    # label 2 occurs in neither ground truth nor prediction
    confusion = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    scores = scores_from_confusion(confusion)
    assert scores["miou"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert scores["miou_all_labels"] == pytest.approx((3 / 4 + 2 / 3 + 0) / 3)


def test_mean_average_precision_hand_case():
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2]])
    targets = np.array([[1, 0], [0, 1], [1, 0]])
    # class 0: ranks 1 (hit), 2 (miss), 3 (hit) -> (1 + 2/3) / 2; class 1: rank 1 hit -> 1
    assert mean_average_precision(scores, targets) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


def test_fp_fn_rates_and_the_reference_aggregate_hand_case():
    # rows = ground truth, cols = prediction
    confusion = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 1]])
    # T = [4, 4, 2], P = [4, 3, 3], TP = [3, 2, 1]: FP = P - TP = [1, 1, 2], FN = T - TP = [1, 2, 1], union = [5, 5, 4]
    scores = scores_from_confusion(confusion)
    assert np.allclose(scores["fp_rate"], [1 / 4, 1 / 4, 2 / 2])
    assert np.allclose(scores["fn_rate"], [1 / 4, 2 / 4, 1 / 2])
    assert np.allclose(scores["fn_rate"], 1 - scores["recall"])
    assert np.allclose(scores["fp_of_union"], [1 / 5, 1 / 5, 2 / 4])
    assert np.allclose(scores["fn_of_union"], [1 / 5, 2 / 5, 1 / 4])
    assert np.allclose(scores["iou"] + scores["fp_of_union"] + scores["fn_of_union"], 1.0)
    assert scores["fp_reference"] == pytest.approx((1 / 5 + 1 / 5 + 2 / 4) / 3)  # 0.3
    assert scores["fn_reference"] == pytest.approx((1 / 5 + 2 / 5 + 1 / 4) / 3)
    assert scores["mean_fp_rate"] == pytest.approx((1 / 4 + 1 / 4 + 1) / 3)
    assert scores["mean_fn_rate"] == pytest.approx((1 / 4 + 2 / 4 + 1 / 2) / 3)


def test_fp_fn_of_absent_labels_and_of_labels_without_ground_truth():
    # label 2 absent everywhere: the reference's means still divide by 3 (it adds 0), the rates leave it out
    absent = scores_from_confusion(np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]]))
    assert np.isnan(absent["fp_rate"][2]) and np.isnan(absent["fp_of_union"][2])
    assert absent["fp_reference"] == pytest.approx((0 / 4 + 1 / 3 + 0) / 3)
    assert absent["fn_reference"] == pytest.approx((1 / 4 + 0 / 3 + 0) / 3)
    assert absent["mean_fp_rate"] == pytest.approx((0 / 4 + 1 / 2) / 2)
    assert absent["mean_fn_rate"] == pytest.approx((1 / 4 + 0 / 2) / 2)
    assert absent["miou_all_labels"] + absent["fp_reference"] + absent["fn_reference"] == pytest.approx(2 / 3)
    # label 2 predicted once, never in the ground truth: no rate over its ground truth, but a whole FP of its union
    predicted_only = scores_from_confusion(np.array([[2, 1, 1], [0, 2, 0], [0, 0, 0]]))
    assert np.isnan(predicted_only["fp_rate"][2]) and predicted_only["fp_of_union"][2] == pytest.approx(1.0)
    assert predicted_only["fp_reference"] == pytest.approx((0 / 4 + 1 / 3 + 1 / 1) / 3)
    assert predicted_only["fn_reference"] == pytest.approx((2 / 4 + 0 / 3 + 0 / 1) / 3)
    assert predicted_only["mean_fp_rate"] == pytest.approx((0 / 4 + 1 / 2) / 2)


def test_fp_fn_are_batched_and_reach_the_sweep_table_and_best_json():
    first, second = np.array([[3, 1, 0], [0, 2, 2], [1, 0, 1]]), np.array([[2, 1, 1], [0, 2, 0], [0, 0, 0]])
    batched = scores_from_confusion(np.stack([first, second]))
    for index, confusion in enumerate((first, second)):
        single = scores_from_confusion(confusion)
        for key in ("fp_rate", "fn_rate", "fp_of_union", "fn_of_union", "fp_reference", "fn_reference", "mean_fp_rate", "mean_fn_rate"):
            np.testing.assert_allclose(batched[key][index], single[key], equal_nan=True)
    assert batched["fp_rate"].shape == (2, 3) and batched["fp_reference"].shape == (2,)
    table = sweep_table(np.stack([first, second]), np.array([0.1, 0.2]), ["background", "x", "y"])
    assert list(table.columns[:9]) == ["threshold", "miou", "miou_all_labels", "mean_precision", "mean_recall",
                                       "fp_reference", "fn_reference", "mean_fp_rate", "mean_fn_rate"]
    assert table.loc[0, "fp_reference"] == pytest.approx(0.3) and table.loc[0, "fp_rate_y"] == pytest.approx(1.0)
    assert table.loc[0, "fn_rate_x"] == pytest.approx(0.5) and np.isnan(table.loc[1, "fn_rate_y"])
    best = best_threshold(table, **OURS)
    chosen = int(np.argmax(table["miou"]))
    for key in ("mean_precision", "mean_recall", "fp_reference", "fn_reference", "mean_fp_rate", "mean_fn_rate"):
        assert best[key] == pytest.approx(table.loc[chosen, key]) and key in best["first_non_improving"]
