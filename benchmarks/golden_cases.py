"""The golden cases of tests/fixtures/reference/ and how to read them (not a benchmark).

The fixtures are the authors' own outputs (xulianuwa/MCTformer at 9606597 and its psa/ copy, on fixed
inputs; their README gives every array's producer and tolerance). Two places read them the same way:
tests/test_reference_parity.py asserts on them, benchmarks/parity_table.py prints the measured
differences. Both import this module, so neither imports the other (pytest finds it through the
``pythonpath`` setting in pyproject.toml; the benchmark, as a script beside it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mctformer.artifacts import read_label_png
from mctformer.crf import CRFParams
from mctformer.data.transforms import normalize_image
from mctformer.localize import grid_maps
from mctformer.models.mctformer import MCTformer

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference"
NUM_CLASSES = 20
IMAGE_IDS = [f"golden_000{i}" for i in range(1, 5)]
BG_THRESHOLD = 0.39  # MCTformer's psa/infer_aff.py --bg_thr, also the README's seed-agreement threshold

# The reference's PSA CRF (psa/tool/imutils.crf_inference, as the fixtures README lists it).
REFERENCE_PSA_CRF = CRFParams(iterations=10, gaussian_sxy=3, gaussian_compat=3, bilateral_sxy=80, bilateral_srgb=13, bilateral_compat=10)

# The reference's procedure, as the paper configs set it (maps.*).
REFERENCE_MAPS = dict(resize="pil_bicubic", remainder="crop", position_embedding="reference_scale_factor", storage_dtype="float32",
                      amp=True,  # autocast: CUDA only, so no effect on these CPU runs
                      workers=0)  # images decoded in this process (no loader: four pictures)


def relative(ours: np.ndarray, reference: np.ndarray) -> float:
    """max|ours - ref| / max|ref|: the README's ``rel``."""
    return float(np.abs(np.asarray(ours, np.float64) - reference).max() / np.abs(reference).max())


def picture(name: str) -> np.ndarray:
    return np.array(Image.open(GOLDEN / "images" / f"{name}.png").convert("RGB"))


def seeds_of(maps: np.ndarray) -> np.ndarray:
    """argmax over [0.39, maps], ties to background: the README's agreement figure."""
    return np.argmax(np.concatenate([np.full((1, *maps.shape[1:]), BG_THRESHOLD, np.float32), maps]), axis=0)


def golden_model(version: str) -> MCTformer:
    """Embed 96, depth 4, heads 3, patch 16, 20 classes, trained at 224: the fixture's weights.npz (our names)."""
    model = MCTformer(num_classes=NUM_CLASSES, version=version, token_pooling="avg", patchcam_init="pytorch_default", locality_sigma=None, gwrp_decay=None,
                      img_size=224, patch_size=16, embed_dim=96, depth=4, num_heads=3, mlp_ratio=4.0, qkv_bias=True)
    with np.load(GOLDEN / "weights.npz") as weights:
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items() if version == "v2" or not k.startswith("patchcam")}
    model.load_state_dict(state)
    return model.eval()



MODEL_INPUTS = {"224x224": "golden_m224", "160x224": "golden_m160", "375x500": "golden_0001"}
GRID_OF = {"224x224": (14, 14), "160x224": (10, 14), "375x500": (23, 31)}


def forward_arrays(model: MCTformer, name: str, position_resampling: str) -> dict[str, np.ndarray]:
    image = normalize_image(picture(MODEL_INPUTS[name]))[None]
    height, width = image.shape[-2:]
    image = image[..., : height // 16 * 16, : width // 16 * 16]  # what the reference's stride-16 patch conv reads
    with torch.no_grad():
        output = model.forward_tokens(image, return_attention=True, position_resampling=position_resampling)
        variants = ["attention", "attention_refined"] if model.version == "v1" else ["attention", "patchcam", "fused", "fused_refined"]
        maps = grid_maps(output, variants, NUM_CLASSES, last_k=3, feature_temperature=0.1)
    arrays = {"logits": output.token_logits[0].numpy()}
    if model.version == "v2":
        arrays["patchcam_logits"] = output.patchcam_logits[0].numpy()
    arrays.update({variant: grid[0].numpy() for variant, grid in maps.items()})
    return arrays


EXTRACTIONS = {"s1": [1.0], "s3": [1.0, 0.5, 1.5]}


def golden_seed_set(name: str):
    folder = GOLDEN / "seeds" / name
    maps = np.load(folder / "maps.npz")
    ids = sorted(key for key in maps.files if not key.endswith("_classes"))
    return [(read_label_png(folder / f"gt_{i}.png"), maps[f"{i}_classes"].astype(np.int64) + 1, maps[i].astype(np.float32)) for i in ids]



class InjectedFeatures(torch.nn.Module):
    """Stands in for AffinityNet in the walk: returns the fixture's feature map, as the dump's trunk-less network did."""

    output_stride = 8

    def __init__(self, features: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("features", torch.from_numpy(features.astype(np.float32))[None])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert tuple(images.shape[-2:]) == tuple(8 * s for s in self.features.shape[-2:])
        return self.features.expand(images.shape[0], -1, -1, -1)


WALKS = ["47x63", "30x40", "12x15"]


def walk_case(grid: str):
    case = np.load(GOLDEN / "psa" / f"walk_{grid}.npz")
    cams = np.load(GOLDEN / "extract" / "maps_s1_fused_refined.npz")["golden_0001"] if grid == "47x63" else case["cams"]
    return case, case["classes"].astype(np.int64) + 1, cams.astype(np.float32)


