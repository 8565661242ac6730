"""The evaluation of a folder of label PNGs against the ground truth: the pseudo masks' (rule evaluate_masks)
and DeepLab's predictions' (rule evaluate_deeplab)."""

from __future__ import annotations

import os

import numpy as np

from .artifacts import read_label_png, save_figure, write_dataframe_csv, write_json
from .data.layout import DatasetRef
from .logs import progress_bar
from .metrics import ERROR_COLUMNS, dataset_confusion, scores_from_confusion


def evaluate_mask_folder(dataset: DatasetRef, split: str, mask_dir: str, *, title: str, table_path: str, summary_path: str, plot_path: str) -> dict:
    """mIoU (and per-class IoU/precision/recall/FP/FN) of ``mask_dir``'s PNGs of every id of ``split``.

    The table has per class the rates over its ground truth (fp_rate, fn_rate) and the reference's
    terms over its union (fp_of_union, fn_of_union); the summary the means and the reference's FP/FN
    (see metrics.scores_from_confusion)."""
    import pandas as pd

    from .plots import per_class_figure

    reader = dataset.open()
    ids = reader.read_ids(split)
    label_names = ["background", *dataset.classes]

    def pairs():
        for image_id in progress_bar(ids, desc=f"evaluate {title}", unit="img", mininterval=2.0):
            gt = reader.load_mask(image_id)
            prediction = read_label_png(os.path.join(mask_dir, f"{image_id}.png"))
            if prediction.shape != gt.shape:
                raise ValueError(f"{os.path.join(mask_dir, image_id + '.png')} is {prediction.shape}, its ground truth {gt.shape}")
            yield gt, prediction

    scores = scores_from_confusion(dataset_confusion(pairs(), len(label_names)))
    per_class = ("iou", "precision", "recall", "fp_rate", "fn_rate", "fp_of_union", "fn_of_union")
    table = pd.DataFrame({"class": label_names, **{name: scores[name] for name in per_class}})
    write_dataframe_csv(table_path, table)
    summary = {
        "miou": float(scores["miou"]), "miou_all_labels": float(scores["miou_all_labels"]),
        "mean_precision": float(np.nanmean(scores["precision"])), "mean_recall": float(np.nanmean(scores["recall"])),
        **{name: float(scores[name]) for name in ERROR_COLUMNS}, "images": len(ids), "split": split,
    }
    write_json(summary_path, summary)
    save_figure(plot_path, per_class_figure(table, f"{title} on {split}: mIoU {summary['miou']:.3f}"))
    print(f"{title} on {split}: mIoU {summary['miou']:.4f}, mean precision {summary['mean_precision']:.4f}, "
          f"mean recall {summary['mean_recall']:.4f}, FP {summary['fp_reference']:.4f}, FN {summary['fn_reference']:.4f} "
          f"(the reference's); FP / ground truth {summary['mean_fp_rate']:.4f}")
    return summary
