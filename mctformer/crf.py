"""Dense CRF (Kraehenbuehl & Koltun) through pydensecrf: the one place that imports it.

pydensecrf is installed from the maintained ``pydensecrf2`` fork (same module,
same API; the original 1.0rc3 sdist no longer builds on current Cython).
Spatial parameters (every ``sxy``) are given for ~500 px images, as in the
reference code; :class:`ScaledCRF` adapts them to the images at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CRFParams:
    """One dense CRF: gaussian (smoothness) and bilateral (appearance) kernels, t iterations.

    The fields are the keys of the config's ``psa.crf`` / ``deeplab.crf`` / ``irn.crf`` (:meth:`from_config`); none has a default.
    """

    iterations: int
    gaussian_sxy: float
    gaussian_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> CRFParams:
        """The CRF of a config section (``psa.crf``, ``deeplab.crf``, ``irn.crf``); its other keys are ignored."""
        return cls(
            section["iterations"], section["gaussian_sxy"], section["gaussian_compat"],
            section["bilateral_sxy"], section["bilateral_srgb"], section["bilateral_compat"],
        )

    def scaled(self, factor: float) -> CRFParams:
        """The same CRF with every spatial standard deviation multiplied by ``factor``."""
        return CRFParams(
            self.iterations, self.gaussian_sxy * factor, self.gaussian_compat,
            self.bilateral_sxy * factor, self.bilateral_srgb, self.bilateral_compat,
        )


def spatial_scale(image_shape: tuple[int, int], setting: float | str, reference_size: float) -> float:
    """Factor for the sxy terms: ``auto`` = longer image side / reference_size, else the number given
    (``setting``, ``reference_size``: the config's crf.spatial_scale, crf.reference_size)."""
    if setting == "auto":
        return max(image_shape[:2]) / reference_size
    return float(setting)


@dataclass(frozen=True)
class ScaledCRF:
    """A config's CRF as every per-image driver takes it: the kernels, given for ``reference_size`` px images as in
    the reference code, and how their spatial terms follow the image at hand (``spatial_scale``: ``auto`` or a fixed
    factor; see :func:`spatial_scale`). The fields are the keys of ``psa.crf`` / ``deeplab.crf`` / ``irn.crf``."""

    kernels: CRFParams
    spatial_scale: float | str
    reference_size: float

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ScaledCRF:
        """The CRF of a config section; its other keys (``normalise_scores``, ``gt_prob``) are ignored."""
        return cls(CRFParams.from_config(section), section["spatial_scale"], section["reference_size"])

    def for_image(self, image_shape: tuple[int, ...]) -> CRFParams:
        """The kernels for an image of ``image_shape`` ([H, W, ...]): every sxy times :func:`spatial_scale`."""
        return self.kernels.scaled(spatial_scale(image_shape[:2], self.spatial_scale, self.reference_size))


def dense_crf(image: np.ndarray, probs: np.ndarray, params: CRFParams) -> np.ndarray:
    """Mean-field inference: RGB uint8 [H, W, 3] and probabilities [C, H, W] -> refined probabilities [C, H, W]."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    channels, height, width = probs.shape
    if image.shape[:2] != (height, width):
        raise ValueError(f"CRF: image is {image.shape[:2]} but the probabilities are {(height, width)}")
    crf = dcrf.DenseCRF2D(width, height, channels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs.astype(np.float32))))
    # a kernel of weight (compat) 0 adds exactly nothing, so it is not filtered at all: the result is bit for bit
    # the same, and the bilateral filter is ~3/4 of a CRF's time on 64 px images (psa.crf.bilateral_compat: 0)
    if params.gaussian_compat != 0:
        crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    if params.bilateral_compat != 0:
        crf.addPairwiseBilateral(
            sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
            rgbim=np.array(image, dtype=np.uint8, order="C"), compat=params.bilateral_compat,
        )
    return np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(channels, height, width)


def crf_argmax(image: np.ndarray, scores: np.ndarray, crf: ScaledCRF, *, normalise: bool) -> np.ndarray:
    """Channel index per pixel after a CRF on non-negative scores [C, H, W].

    With ``normalise`` the scores are divided by their per-pixel sum first
    (max-fused softmax or a constant background score do not sum to one);
    without, they go to the CRF as they are (the reference's DeepLab inference:
    unary_from_softmax takes -log of the clipped scores). The sxy terms are
    scaled to the image size.
    """
    probs = scores / np.maximum(scores.sum(axis=0, keepdims=True), 1e-8) if normalise else scores
    return dense_crf(image, probs, crf.for_image(image.shape)).argmax(axis=0)
