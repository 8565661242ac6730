"""The MCTformer+ golden cases of tests/fixtures/reference_plus/ and how to read them.

The fixtures are the authors' own outputs (xulianuwa/MCTformer at 0acc27a, MCTformerPlus, on fixed
inputs, float32 on CPU); their README gives every array's producer and tolerance. The small golden
model (embed 96, depth 4, heads 3, 28x28 position grid) is the reference's, in its parameter names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mctformer.data.transforms import normalize_image
from mctformer.models.mctformer import MCTformer, from_reference_plus_state_dict

GOLDEN_PLUS = Path(__file__).resolve().parents[1] / "fixtures" / "reference_plus"
NUM_CLASSES = 20
DEPTH = 4
GWRP_DECAY = 0.996  # MCTformerPlus(decay_parameter=0.996), its constructor default (models.py:14)
# The reference's procedure of map generation for MCTformer+ (maps.*), as the plus paper configs resolve it.
REFERENCE_PLUS_MAPS = dict(resize="pil_bicubic", remainder="crop", position_embedding="reference_scale_factor",
                           storage_dtype="float32", amp=True)  # autocast: CUDA only, no effect on these CPU runs
MAP_CASES = {  # file -> (scales, --layer-index, refined)
    "ms_k12_refined": ([1.0, 0.75, 1.25], 12, True),
    "s1_k12_refined": ([1.0], 12, True),
    "ms_k3_refined": ([1.0, 0.75, 1.25], 3, True),
    "ms_k12_fused": ([1.0, 0.75, 1.25], 12, False),
}
# The reference's parameter order (model.json), in which grad_norms is stored.
REFERENCE_NAMES: list[str] = __import__("json").loads((GOLDEN_PLUS / "model.json").read_text())["parameter_names"]


def last_blocks(layer_index: int) -> int:
    """The reference's ``[-K:]`` over a depth-4 model: K = 12 takes all 4 blocks (our maps.last_k must name 1..depth)."""
    return min(layer_index, DEPTH)


def relative(ours, reference) -> float:
    """max|ours - ref| / max|ref|: the README's ``rel``."""
    ours = ours.detach().numpy() if isinstance(ours, torch.Tensor) else ours
    return float(np.abs(np.asarray(ours, np.float64) - reference).max() / np.abs(reference).max())


def reference_weights() -> dict[str, torch.Tensor]:
    with np.load(GOLDEN_PLUS / "weights.npz") as weights:
        return {name: torch.from_numpy(weights[name].astype(np.float32)) for name in weights.files}


def golden_plus_model(drop_path_rate: float = 0.0, tied_tokens: bool = False) -> MCTformer:
    """The fixture's MCTformerPlus as ours (eval mode); ``tied_tokens``: every class token and class position
    replaced by row 0, as after the DeiT initialisation (the tied_tokens training variants)."""
    model = MCTformer(num_classes=NUM_CLASSES, version="plus", token_pooling="avg", patchcam_init="pytorch_default",
                      locality_sigma=None, gwrp_decay=GWRP_DECAY, img_size=448, patch_size=16, embed_dim=96, depth=DEPTH,
                      num_heads=3, mlp_ratio=4.0, qkv_bias=True, drop_path_rate=drop_path_rate)
    state = from_reference_plus_state_dict(reference_weights())
    if tied_tokens:
        for name in ("class_tokens", "class_pos_embed"):
            state[name] = state[name][:, :1].expand_as(state[name]).clone()
    model.load_state_dict(state)
    return model.eval()


def picture(name: str) -> np.ndarray:
    return np.array(Image.open(GOLDEN_PLUS / "images" / f"{name}.png").convert("RGB"))


def model_input(name: str) -> torch.Tensor:
    """[1, 3, H', W']: ToTensor + Normalize of the picture, cut to whole 16 px patches (what the reference's patch conv reads)."""
    image = normalize_image(picture(name))[None]
    height, width = image.shape[-2:]
    return image[..., : height // 16 * 16, : width // 16 * 16]


def training_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The case-c batch: images golden_p448 (bird, chair, person) and golden_t448 (car), multi-hot targets."""
    images = torch.cat([model_input("golden_p448"), model_input("golden_t448")])
    targets = torch.zeros(2, NUM_CLASSES)
    targets[0, [2, 8, 14]] = 1
    targets[1, 6] = 1
    return images, targets


class InjectedDropPath(torch.nn.Module):
    """Stochastic depth with the reference's recorded keep decisions ([B] 0/1): the random stream is timm's, not ours."""

    def __init__(self, keep: np.ndarray, probability: float) -> None:
        super().__init__()
        self.register_buffer("keep", torch.from_numpy(keep.astype(np.float32)))
        self.probability = probability

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        return branch * (self.keep / (1.0 - self.probability)).view(-1, *([1] * (branch.ndim - 1)))


def inject_drop_path(model: MCTformer, keep: np.ndarray) -> list[float]:
    """Replace every block's two DropPath modules by the recorded decisions keep [depth, 2, B]; returns each block's p."""
    probabilities = []
    for block, decisions in zip(model.blocks, keep):
        probability = float(block.drop_path1.drop_prob) if hasattr(block.drop_path1, "drop_prob") else 0.0
        probabilities.append(probability)
        block.drop_path1 = InjectedDropPath(decisions[0], probability)
        block.drop_path2 = InjectedDropPath(decisions[1], probability)
    return probabilities
