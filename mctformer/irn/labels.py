"""IRN's confident labels: thresholded seeds, each refined by a dense CRF on labels, merged with 255 between."""

from __future__ import annotations

import numpy as np

from ..crf import CRFParams, dense_crf
from ..data.voc import IGNORE


def check_thresholds(conf_fg_thres: float, conf_bg_thres: float) -> None:
    """Both thresholds in [0, 1] and background's not above foreground's; the errors name the config key."""
    for key, value in (("irn.conf_fg_thres", conf_fg_thres), ("irn.conf_bg_thres", conf_bg_thres)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{key} must lie in [0, 1], got {value!r}")
    if conf_bg_thres > conf_fg_thres:
        raise ValueError(f"irn.conf_bg_thres ({conf_bg_thres}) must not exceed irn.conf_fg_thres ({conf_fg_thres})")


def thresholded_index(maps: np.ndarray, threshold: float) -> np.ndarray:
    """Channel index per pixel of [threshold, maps]: 0 (background) unless some map exceeds ``threshold``
    (a tie with it stays background, as argmax takes the first maximum)."""
    if maps.shape[0] == 0:
        return np.zeros(maps.shape[1:], dtype=np.int64)
    return np.concatenate([np.full((1, *maps.shape[1:]), threshold, np.float32), maps.astype(np.float32)]).argmax(axis=0)


def label_crf(image: np.ndarray, index: np.ndarray, num_labels: int, params: CRFParams, gt_prob: float) -> np.ndarray:
    """Dense CRF on a label map [H, W] of channel indices: each pixel's own label at ``gt_prob``, the rest
    sharing 1 - gt_prob (pydensecrf's unary_from_labels without unsure pixels, the authors' label CRF);
    returns the refined channel index per pixel."""
    if not 0.0 < gt_prob < 1.0:
        raise ValueError(f"irn.crf.gt_prob must lie in (0, 1), got {gt_prob!r}")
    if num_labels < 2:
        return np.zeros_like(index)
    probs = np.full((num_labels, *index.shape), (1.0 - gt_prob) / (num_labels - 1), np.float32)
    np.put_along_axis(probs, index[None], np.float32(gt_prob), axis=0)
    return dense_crf(image, probs, params).argmax(axis=0)


def ir_labels(image: np.ndarray, labels: np.ndarray, maps: np.ndarray, *, conf_fg_thres: float, conf_bg_thres: float,
              crf_params: CRFParams, gt_prob: float) -> np.ndarray:
    """IRN's confident label (uint8 [H, W] of segmentation values, 255 = unsure) of one image.

    ``labels`` [K]: the segmentation values of ``maps`` [K, H, W] (in [0, 1]); ``crf_params`` already scaled
    to the image. Foreground: the CRF-refined argmax of [conf_fg_thres, maps] where it is a class;
    background: where the CRF-refined argmax of [conf_bg_thres, maps] is background too; 255 elsewhere.
    """
    check_thresholds(conf_fg_thres, conf_bg_thres)
    values = np.concatenate([[0], labels]).astype(np.uint8)
    num_labels = len(values)
    foreground = values[label_crf(image, thresholded_index(maps, conf_fg_thres), num_labels, crf_params, gt_prob)]
    background = values[label_crf(image, thresholded_index(maps, conf_bg_thres), num_labels, crf_params, gt_prob)]
    label = foreground.copy()
    label[foreground == 0] = IGNORE
    label[(foreground == 0) & (background == 0)] = 0
    return label
