"""The papers' PASCAL VOC 2012 numbers (mIoU, %), as printed: the one place they are written down.

MCTformer's tables are keyed like our runs: (model version, our map variant) for its seeds and
segmentations, the class-token pooling for its heads, K for its layers. Our *_feature_refined variants
and V2's attention / Patch-CAM alone have no row (TS-CAM*'s 41.3 in Table 5 is a ReLU on the Patch-CAM
of a one-class-token ViT, another model).
"""

from __future__ import annotations

# Table 5: seeds on VOC train, {(version, variant): (the paper's row, mIoU)}
SEEDS = {
    ("v1", "attention"): ("MCTformer-V1 (Attention)", 47.2),
    ("v1", "attention_refined"): ("MCTformer-V1 (Attention + PatchAffinity)", 55.2),
    ("v2", "fused"): ("MCTformer-V2 (Attention + PatchCAM)", 58.2),
    ("v2", "fused_refined"): ("MCTformer-V2 (Attention + PatchCAM + PatchAffinity)", 61.7),
}
# Table 6: DeepLab on VOC val, {(version, variant): (the paper's row, mIoU)}
SEGMENTATION = {
    ("v1", "attention"): ("MCTformer-V1 (Attention)", 55.6),
    ("v1", "attention_refined"): ("MCTformer-V1 (Attention + PatchAffinity)", 58.8),
    ("v2", "fused"): ("MCTformer-V2 (Attention + PatchCAM)", 61.1),
    ("v2", "fused_refined"): ("MCTformer-V2 (Attention + PatchCAM + PatchAffinity)", 62.6),
}
# Table 7: V1 attention seeds on VOC train, {classifier.token_pooling: (the paper's row, mIoU)}
HEADS = {"fc": ("Fully-connected", 41.5), "max": ("Max-pooling", 26.8), "avg": ("Average-pooling", 47.2)}
# Fig. 6 (V1 attention, VOC train), {K: mIoU}: the text prints K = 3 only ("mIoU of 47.2%"); the plotted points are not printed.
LAYERS = {3: 47.2}
# The full method (V2 seeds + PSA): pseudo masks on VOC train, DeepLab on VOC val and test (with CRF).
PSEUDO_MASKS = 69.1
DEEPLAB_VAL = 71.9
DEEPLAB_TEST = 71.6

# Each refinement's paper, seeds -> pseudo masks on VOC train (-> DeepLab on val where it is reported).
REFINEMENTS = {
    "psa": {"paper": "MCTformer (CVPR 2022), V2 seeds + PSA", "seeds": SEEDS["v2", "fused_refined"][1], "masks": PSEUDO_MASKS,
            "deeplab": DEEPLAB_VAL},
    "irn": {"paper": "IRN (CVPR 2019), ResNet-50 CAMs + IRN", "seeds": 48.3, "masks": 66.5, "deeplab": None},
}


def seed_miou(variant: str, default: float | None = None) -> float | None:
    """Table 5's mIoU of one of our map variants (whichever model version has it), else ``default``."""
    for (_, paper_variant), (_, miou) in SEEDS.items():
        if paper_variant == variant:
            return miou
    return default

# MCTformer+ (Xu et al., TPAMI 2024, arXiv 2308.03005). Its own tables are in no stored source (../shared/notes/
# mctformer-plus.md, 1.8): these are the numbers later papers cite for it (the ComCD paper's related-work note), DeepLab
# on VOC val and COCO val (with CRF). The same note cites 68.8 on VOC as its "pseudo-mask" mIoU without saying whether
# that is the seeds or the refined masks, so it fills neither column; the paper's seed and test numbers are unknown.
PLUS_SOURCE = "MCTformer+ (TPAMI 2024) as cited by ComCD; its own tables unread"
PLUS_DEEPLAB_VAL = 74.0
PLUS_DEEPLAB_VAL_COCO = 45.2
PLUS_PSEUDO_MASK_AMBIGUOUS = 68.8

# The side-by-side table's paper columns (VOC, mIoU %): seeds on train, PSA pseudo masks on train, DeepLab on val
# (+ CRF), by classifier.version; None where the paper prints no such number.
SIDE_BY_SIDE = {
    "v2": {"paper": "MCTformer-V2 (CVPR 2022); seeds: Attention + PatchCAM + PatchAffinity", "seeds": SEEDS["v2", "fused_refined"][1],
           "masks": PSEUDO_MASKS, "deeplab": DEEPLAB_VAL},
    "plus": {"paper": PLUS_SOURCE, "seeds": None, "masks": None, "deeplab": PLUS_DEEPLAB_VAL},
}
