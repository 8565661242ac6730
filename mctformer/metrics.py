"""Segmentation and classification metrics, and the vectorised background-threshold sweep.

Conventions (docs/design.md): a seed prediction is argmax over [t, maps] with the
background score a constant t (a tie goes to background); label 255 is
ignored; one confusion matrix accumulates over the whole split; mIoU is the
mean IoU over background and every class (classes with an empty union, i.e.
absent from both ground truth and prediction, are left out of the mean). The
reference's convention, ``miou_all_labels``, averages over every label with
IoU = TP / (union + 1e-10), so an absent label counts 0; the two agree up to
the factor (labels present) / (all labels) and rank thresholds alike unless a
label's union becomes empty inside the sweep.

False positives and negatives come in two forms. Per class, over the class's
ground truth (the per-class diagnostics): ``fp_rate`` = (P - TP) / T and
``fn_rate`` = (T - TP) / T, with P the predicted, T the ground-truth and TP the
correct pixels of the class (NaN where T = 0; fn_rate = 1 - recall; fp_rate
can exceed 1). The authors' evaluation.py (lines 69-70 per label, 77-80 the
means; the FP / FN it prints) divides by the class's union instead,
(P - TP) / (T + P - TP + 1e-10), and averages over every label, background
and absent labels included (an absent label adds 0), as its mIoU does: per
label IoU + FP + FN = 1, so miou_all_labels + fp_reference + fn_reference =
(labels present) / (all labels).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .artifacts import load_map_file
from .data.voc import IGNORE, DatasetError


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_labels: int, ignore: int = IGNORE) -> np.ndarray:
    """[num_labels, num_labels] int64 counts, rows = ground truth, cols = prediction."""
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"prediction has {pred.size} pixels, ground truth {gt.size}")
    keep = gt != ignore
    gt, pred = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    if gt.size and (gt.max() >= num_labels or pred.max() >= num_labels or pred.min() < 0):
        raise ValueError(f"labels must lie in 0..{num_labels - 1} (or {ignore} in ground truth)")
    return np.bincount(gt * num_labels + pred, minlength=num_labels**2).reshape(num_labels, num_labels)


def scores_from_confusion(confusion: np.ndarray) -> dict[str, np.ndarray | float]:
    """Scores of a [..., L, L] confusion (rows = ground truth), batched over the leading dims.

    Per label [..., L]: ``iou``, ``precision``, ``recall``, ``fp_rate``, ``fn_rate`` (over the label's
    ground truth) and ``fp_of_union``, ``fn_of_union`` (the reference's per-label terms); NaN where
    undefined. Aggregates [...]: ``miou`` (labels with a non-empty union), ``miou_all_labels``,
    ``fp_reference`` and ``fn_reference`` (the reference's: every label, an empty union adding 0),
    ``mean_fp_rate`` and ``mean_fn_rate`` (over the labels with ground truth, as the mean recall).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    gt_total = confusion.sum(axis=-1)
    pred_total = confusion.sum(axis=-2)
    union = gt_total + pred_total - true_positive
    false_positive = pred_total - true_positive
    false_negative = gt_total - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
        precision = np.where(pred_total > 0, true_positive / pred_total, np.nan)
        recall = np.where(gt_total > 0, true_positive / gt_total, np.nan)
        fp_rate = np.where(gt_total > 0, false_positive / gt_total, np.nan)
        fn_rate = np.where(gt_total > 0, false_negative / gt_total, np.nan)
        fp_of_union = np.where(union > 0, false_positive / union, np.nan)
        fn_of_union = np.where(union > 0, false_negative / union, np.nan)
    valid = union > 0
    miou = np.where(valid.any(axis=-1), np.nansum(iou, axis=-1) / np.maximum(valid.sum(axis=-1), 1), np.nan)
    # the reference (evaluation.py:65-80): every label in the means, each term over union + 1e-10 (an empty union scores 0)
    miou_all_labels = (true_positive / (union + 1e-10)).mean(axis=-1)
    fp_reference = (false_positive / (union + 1e-10)).mean(axis=-1)
    fn_reference = (false_negative / (union + 1e-10)).mean(axis=-1)
    has_gt = gt_total > 0

    def mean_over_gt_labels(per_label: np.ndarray) -> np.ndarray:
        return np.where(has_gt.any(axis=-1), np.nansum(per_label, axis=-1) / np.maximum(has_gt.sum(axis=-1), 1), np.nan)

    return {
        "iou": iou, "precision": precision, "recall": recall, "fp_rate": fp_rate, "fn_rate": fn_rate,
        "fp_of_union": fp_of_union, "fn_of_union": fn_of_union,
        "miou": miou, "miou_all_labels": miou_all_labels, "fp_reference": fp_reference, "fn_reference": fn_reference,
        "mean_fp_rate": mean_over_gt_labels(fp_rate), "mean_fn_rate": mean_over_gt_labels(fn_rate),
    }


def seed_prediction(labels: np.ndarray, maps: np.ndarray, threshold: float) -> np.ndarray:
    """argmax over [threshold, maps] with ties to background: labels [K] (1..C), maps [K, H, W]."""
    if maps.shape[0] == 0:
        return np.zeros(maps.shape[1:], dtype=np.int64)
    stacked = np.concatenate([np.full((1,) + maps.shape[1:], threshold, dtype=maps.dtype), maps], axis=0)
    return np.concatenate([[0], labels])[np.argmax(stacked, axis=0)]


def threshold_grid(start: float, stop: float, step: float) -> np.ndarray:
    """Thresholds start..stop inclusive, rounded so 0.39 is 0.39 and not 0.39000000000000001."""
    if step <= 0 or stop < start:
        raise ValueError("seeds.thresholds: need step > 0 and stop >= start")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return np.round(start + step * np.arange(count), 10)


def sweep_image(labels: np.ndarray, maps: np.ndarray, gt: np.ndarray, thresholds: np.ndarray, num_labels: int) -> np.ndarray:
    """Confusion matrices of every threshold at once for one image: [T, L, L].

    A pixel whose best class score is m predicts that class for every t < m
    and background otherwise, so one histogram over (number of thresholds
    below m, gt, class) and two cumulative sums give all T matrices.
    """
    if maps.shape[1:] != gt.shape:
        raise ValueError(f"maps are {maps.shape[1:]} but the ground truth is {gt.shape}")
    num_t = thresholds.shape[0]
    keep = gt.ravel() != IGNORE
    gt_flat = gt.ravel()[keep].astype(np.int64)
    if maps.shape[0] == 0:
        confusion = np.zeros((num_t, num_labels, num_labels), dtype=np.int64)
        confusion[:, :, 0] = np.bincount(gt_flat, minlength=num_labels)[None, :]
        return confusion
    flat = maps.reshape(maps.shape[0], -1)[:, keep]
    best = flat.max(axis=0)
    best_class = np.asarray(labels, dtype=np.int64)[flat.argmax(axis=0)]
    # below[p] = how many thresholds are strictly below the pixel's best score
    below = np.searchsorted(thresholds.astype(maps.dtype), best, side="left")
    histogram = np.bincount(
        (below * num_labels + gt_flat) * num_labels + best_class, minlength=(num_t + 1) * num_labels**2
    ).reshape(num_t + 1, num_labels, num_labels)
    # threshold index i predicts the class for pixels with below > i, background for below <= i
    foreground = np.cumsum(histogram[::-1], axis=0)[::-1][1:]
    background_rows = np.cumsum(histogram.sum(axis=2), axis=0)[:num_t]
    confusion = foreground.copy()
    confusion[:, :, 0] += background_rows
    return confusion


def sweep_split(
    map_dirs: Mapping[str, str | os.PathLike],
    ids: Sequence[str],
    load_gt: Callable[[str], np.ndarray],
    thresholds: np.ndarray,
    num_labels: int,
    class_labels: Mapping[str, np.ndarray] | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Dataset confusion for every threshold, [T, L, L] per map folder (variant).

    One pass over the images: each ground truth and each map file is read once.
    """
    from .logs import progress_bar

    if not ids:
        raise DatasetError("evaluate: the split list is empty")
    totals = {name: np.zeros((len(thresholds), num_labels, num_labels), dtype=np.int64) for name in map_dirs}
    for image_id in progress_bar(ids, desc="threshold sweep", unit="img", disable=not progress):
        gt = load_gt(image_id)
        for name, map_dir in map_dirs.items():
            path = os.path.join(map_dir, f"{image_id}.npz")
            labels, maps = load_map_file(path)
            check_map_labels(path, labels, class_labels.get(image_id) if class_labels is not None else None)
            totals[name] += sweep_image(labels, maps, gt, thresholds, num_labels)
    return totals


def check_map_labels(path: str, labels: np.ndarray, expected_multi_hot: np.ndarray | None) -> None:
    """A map file must hold exactly its image's classes."""
    if expected_multi_hot is None:
        return
    expected = np.flatnonzero(np.asarray(expected_multi_hot) > 0) + 1
    if not np.array_equal(np.sort(labels), expected):
        raise DatasetError(f"map file {path} holds classes {labels.tolist()} but the image's labels are {expected.tolist()}")


# The aggregate error columns of a sweep table (metrics.scores_from_confusion), carried into best.json's rows.
ERROR_COLUMNS = ("fp_reference", "fn_reference", "mean_fp_rate", "mean_fn_rate")


def sweep_table(confusions: np.ndarray, thresholds: np.ndarray, label_names: Sequence[str]) -> pd.DataFrame:
    """One row per threshold: mIoU, mean precision/recall, FP/FN (the reference's and over ground truth),
    then per class IoU, and precision, recall, fp_rate, fn_rate."""
    scores = scores_from_confusion(confusions)
    table = {"threshold": thresholds, "miou": scores["miou"], "miou_all_labels": scores["miou_all_labels"]}
    table["mean_precision"] = np.nanmean(scores["precision"], axis=1)
    table["mean_recall"] = np.nanmean(scores["recall"], axis=1)
    for column in ERROR_COLUMNS:
        table[column] = scores[column]
    for index, name in enumerate(label_names):
        table[f"iou_{name}"] = scores["iou"][:, index]
    for index, name in enumerate(label_names):
        for metric in ("precision", "recall", "fp_rate", "fn_rate"):
            table[f"{metric}_{name}"] = scores[metric][:, index]
    return pd.DataFrame(table)


MIOU_COLUMNS = {"present_labels": "miou", "all_labels": "miou_all_labels"}
SELECTIONS = ("global_max", "first_non_improving")


def best_threshold(table: pd.DataFrame, *, convention: str, selection: str) -> dict:
    """The sweep's answer: the threshold that feeds the walk, with both conventions and both selections beside it.

    ``convention`` (seeds.miou_convention) picks the mIoU that ranks (``present_labels``: ours,
    ``all_labels``: the reference's). ``selection`` (seeds.selection): ``global_max`` = the
    highest mIoU (the lowest threshold among equal ones);
    ``first_non_improving`` = the reference's --curve, which walks up the
    thresholds and stops at the first whose mIoU is not strictly higher than
    the best so far (on a curve with two bumps it answers the first).
    Each row also holds the table's mean precision/recall and FP/FN columns at its threshold.
    """
    if convention not in MIOU_COLUMNS:
        raise ValueError(f"seeds.miou_convention must be one of {sorted(MIOU_COLUMNS)}, got {convention!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"seeds.selection must be one of {SELECTIONS}, got {selection!r}")
    column = table[MIOU_COLUMNS[convention]].to_numpy()
    global_index = int(np.nanargmax(column))
    early_index = 0
    for index in range(1, len(column)):
        if not column[index] > column[early_index]:
            break
        early_index = index

    extras = [name for name in ("mean_precision", "mean_recall", *ERROR_COLUMNS) if name in table.columns]

    def row(index: int) -> dict[str, float]:
        return {"threshold": float(table["threshold"].iloc[index]), "miou": float(column[index]),
                "miou_present_labels": float(table["miou"].iloc[index]), "miou_all_labels": float(table["miou_all_labels"].iloc[index]),
                **{name: float(table[name].iloc[index]) for name in extras}}

    chosen = row(global_index if selection == "global_max" else early_index)
    return {**chosen, "convention": convention, "selection": selection,
            "global_max": row(global_index), "first_non_improving": row(early_index)}


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes (with at least one positive) of the average precision of ranking by score."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    precisions = []
    for column in range(scores.shape[1]):
        positives = targets[:, column]
        if not positives.any():
            continue
        order = np.argsort(-scores[:, column], kind="stable")
        hits = positives[order]
        precision_at = np.cumsum(hits) / np.arange(1, hits.size + 1)
        precisions.append(precision_at[hits].mean())
    return float(np.mean(precisions)) if precisions else float("nan")


def label_precision_recall(predicted: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Per class, the image-level labels ``predicted`` [N, C] against the true ones ``targets`` [N, C] (multi-hot):
    images that hold the class (``positives``), images it is predicted for (``predicted``), ``precision`` (NaN where
    it is predicted for none) and ``recall`` (NaN where no image holds it); a last row ``mean`` averages each column
    over the classes where it is defined (``exact_match``: the share of images whose whole label set is right)."""
    predicted, targets = np.asarray(predicted) > 0, np.asarray(targets) > 0
    if predicted.shape != targets.shape or predicted.shape[1] != len(classes):
        raise ValueError(f"predicted labels {predicted.shape} and true labels {targets.shape} for {len(classes)} classes")
    hits = (predicted & targets).sum(axis=0)
    positives, chosen = targets.sum(axis=0), predicted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(chosen > 0, hits / chosen, np.nan)
        recall = np.where(positives > 0, hits / positives, np.nan)
    table = pd.DataFrame({"class": list(classes), "positives": positives, "predicted": chosen, "precision": precision, "recall": recall})
    mean = {"class": "mean", "positives": positives.sum(), "predicted": chosen.sum(),
            "precision": np.nanmean(precision) if np.isfinite(precision).any() else np.nan,
            "recall": np.nanmean(recall) if np.isfinite(recall).any() else np.nan}
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    table["exact_match"] = np.nan
    table.loc[table.index[-1], "exact_match"] = float((predicted == targets).all(axis=1).mean()) if len(predicted) else np.nan
    return table


def dataset_confusion(pairs: Iterable[tuple[np.ndarray, np.ndarray]], num_labels: int) -> np.ndarray:
    """Sum of per-image confusions over (gt, prediction) pairs."""
    total = np.zeros((num_labels, num_labels), dtype=np.int64)
    for gt, pred in pairs:
        total += confusion_matrix(gt, pred, num_labels)
    return total
