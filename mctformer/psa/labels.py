"""PSA's confident labels: la / ha CRF scores, their merge, and the CRF's input image."""

from __future__ import annotations

import numpy as np
import torch

from ..crf import CRFParams, dense_crf
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize_image
from ..data.voc import IGNORE


def background_power_scores(maps: np.ndarray, alpha: float) -> np.ndarray:
    """[K, H, W] maps in [0, 1] -> [K+1, H, W] with background (1 - max)^alpha in front."""
    if maps.shape[0] == 0:
        return np.ones((1,) + maps.shape[1:], dtype=np.float32)
    background = np.power(1.0 - maps.max(axis=0), alpha)
    return np.concatenate([background[None], maps], axis=0).astype(np.float32)


def crf_scores(image: np.ndarray, maps: np.ndarray, alpha: float, params: CRFParams) -> np.ndarray:
    """The CRF's probabilities [K+1, H, W] on [bg^alpha, maps] (the reference's la / ha dicts, background first)."""
    return dense_crf(image, background_power_scores(maps, alpha), params)


def crf_labels(image: np.ndarray, labels: np.ndarray, maps: np.ndarray, alpha: float, params: CRFParams) -> np.ndarray:
    """Argmax of the CRF on [bg^alpha, maps], as segmentation values (0 or one of ``labels``)."""
    return np.concatenate([[0], labels]).astype(np.uint8)[crf_scores(image, maps, alpha, params).argmax(axis=0)]


CRF_IMAGES = ("decoded", "normalised_roundtrip")


def crf_image(picture: np.ndarray, source: str) -> np.ndarray:
    """The RGB image the label CRF sees: the decoded picture, or the reference's round trip.

    The reference maps its normalised network input back, (x * std + mean) *
    255, and truncates to uint8, which lowers up to ~10 % of the channel
    values by one (psa.crf_image).
    """
    if source == "decoded":
        return picture
    if source != "normalised_roundtrip":
        raise ValueError(f"psa.crf_image must be one of {CRF_IMAGES}, got {source!r}")

    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((normalize_image(picture) * std + mean) * 255).permute(1, 2, 0).numpy().astype(np.uint8)


def confident_labels(la: np.ndarray, ha: np.ndarray) -> np.ndarray:
    """Foreground where la is foreground, background where ha is background, 255 elsewhere."""
    label = la.copy()
    label[la == 0] = IGNORE
    label[ha == 0] = 0
    return label


def save_confident_scores(path: str, labels: np.ndarray, la: np.ndarray, ha: np.ndarray) -> None:
    """The la / ha CRF scores of one image (float16, background first) for AffinityNet's pooled grid labels."""
    np.savez_compressed(path, labels=np.asarray(labels, np.int16), la=la.astype(np.float16), ha=ha.astype(np.float16))


def load_confident_scores(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels [K], la [K+1, H, W], ha [K+1, H, W]) as :func:`save_confident_scores` wrote them; errors name the file."""
    try:
        with np.load(path) as data:
            return data["labels"].astype(np.int64), data["la"].astype(np.float32), data["ha"].astype(np.float32)
    except FileNotFoundError:
        raise FileNotFoundError(f"PSA score file missing: {path} (psa_labels writes it when affinity.grid_labels is pooled_scores)") from None
    except Exception as error:
        raise ValueError(f"unreadable PSA score file {path}: {error}") from error
