"""The MCTformer+ golden cases of tests/fixtures/reference_plus/ and how to compute ours (not a benchmark).

The fixtures are the authors' own outputs (xulianuwa/MCTformer at 0acc27a, MCTformerPlus, on fixed
inputs, float32 on CPU); their README gives every array's producer and tolerance. The small golden
model (embed 96, depth 4, heads 3, 28x28 position grid) is the reference's, in its parameter names.
tests/test_reference_parity_plus.py asserts on these cases and benchmarks/parity_table_plus.py prints
the measured differences; both import this module (as golden_cases.py for V1/V2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mctformer.artifacts import load_map_file
from mctformer.data.transforms import normalize_image
from mctformer.data.voc import VOCLayout
from mctformer.localize import extract_maps, grid_maps, patch_affinity, scaled_inputs
from mctformer.models.mctformer import (
    PLUS_REFERENCE_NAMES,
    MCTformer,
    class_token_cross_entropy,
    class_token_similarity,
    from_reference_plus_state_dict,
    gwrp_weights,
    plus_loss_terms,
)

GOLDEN_PLUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "reference_plus"
NUM_CLASSES = 20
DEPTH = 4
GWRP_DECAY = 0.996  # MCTformerPlus(decay_parameter=0.996), its constructor default (models.py:14)
# The reference's procedure of map generation for MCTformer+ (maps.*), as the plus paper configs resolve it.
REFERENCE_PLUS_MAPS = dict(resize="pil_bicubic", remainder="crop", position_embedding="reference_scale_factor",
                           storage_dtype="float32", amp=True,  # autocast: CUDA only, no effect on these CPU runs
                           workers=0)  # images decoded in this process
MAP_CASES = {  # file -> (scales, --layer-index, refined)
    "ms_k12_refined": ([1.0, 0.75, 1.25], 12, True),
    "s1_k12_refined": ([1.0], 12, True),
    "ms_k3_refined": ([1.0, 0.75, 1.25], 3, True),
    "ms_k12_fused": ([1.0, 0.75, 1.25], 12, False),
}
# The reference's parameter order (model.json), in which grad_norms is stored.
REFERENCE_NAMES: list[str] = json.loads((GOLDEN_PLUS / "model.json").read_text())["parameter_names"]


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


FORWARD_IMAGES = ["golden_p448", "golden_0001"]
MAP_IMAGES = ["golden_0001", "golden_s002", "golden_s003"]


def tolerance(group: str, key: str) -> tuple[str, float]:
    """The README's tolerance of array ``key`` of a case group (forward, train, maps): ('rel' | 'abs' | 'exact', value).

    rel: max|ours - ref| <= value x max|ref|; abs: max|ours - ref| <= value. The sqrt fusion amplifies float32 noise
    where Patch-CAM is near 0 (rel 1e-3); the final maps are stored as float16 (abs 5e-4)."""
    if key in ("p2p_rows", "p2p_layers_row_index", "targets", "drop_path_keep", "classes", "pass_sizes"):
        return "exact", 0.0
    if group == "forward":
        return "rel", {"fused_k12": 1e-3, "fused_k3": 1e-3, "gwrp_weights": 1e-6}.get(key, 1e-4)
    if group == "train":
        return {"loss_terms": ("rel", 1e-5), "drop_path_prob": ("abs", 1e-7)}.get(key, ("rel", 1e-4))
    return {"maps": ("abs", 5e-4), "fused": ("rel", 1e-3)}.get(key, ("rel", 1e-4))  # maps: refined, pass_x_logits 1e-4


def difference(ours, reference: np.ndarray, kind: str) -> float:
    """What the tolerance of ``kind`` bounds: max|d| (abs), max|d| / max|ref| (rel) over the non-NaN entries; exact: 0 or 1."""
    ours = np.asarray(ours.detach() if isinstance(ours, torch.Tensor) else ours, np.float64)
    reference = np.asarray(reference, np.float64)
    if ours.shape != reference.shape or not np.array_equal(np.isnan(ours), np.isnan(reference)):
        return float("inf")
    if kind == "exact":
        return float(not np.array_equal(ours, reference))
    kept = ~np.isnan(reference)
    worst = float(np.abs(ours[kept] - reference[kept]).max())
    return worst / float(np.abs(reference[kept]).max()) if kind == "rel" else worst


def forward_arrays(model: MCTformer, name: str, rows: np.ndarray, layer_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Every array of forward/<name>.npz, computed by our model and map functions the way the pipeline calls them."""
    image = model_input(name)
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        output = model.forward_tokens(image, return_attention=True, position_resampling=REFERENCE_PLUS_MAPS["position_embedding"])
        grid, count = output.grid, output.grid[0] * output.grid[1]
        for k in (12, 3):
            maps = grid_maps(output, ["attention", "fused", "fused_refined"], NUM_CLASSES, last_k=last_blocks(k), feature_temperature=0.1)
            arrays[f"mct_k{k}"], arrays[f"fused_k{k}"], arrays[f"refined_k{k}"] = (maps[v][0].numpy() for v in ("attention", "fused", "fused_refined"))
        attention = output.attentions[:, 0]  # [L, T, T], head mean
        affinity = patch_affinity(output.attentions, NUM_CLASSES)[0]
    arrays.update(
        x_cls_logits=output.token_logits[0].numpy(),
        x_patch_logits=output.patchcam_logits[0].numpy(),
        x_logits=((output.token_logits + output.patchcam_logits) / 2)[0].numpy(),
        class_tokens=output.block_class_tokens[:, 0].numpy(),
        patchcam_raw=output.patchcam[0].numpy(),
        patchcam=torch.relu(output.patchcam[0]).numpy(),
        gwrp_weights=gwrp_weights(count, GWRP_DECAY).numpy(),
        c2p_layers=attention[:, :NUM_CLASSES, NUM_CLASSES:].reshape(DEPTH, NUM_CLASSES, *grid).numpy(),
        p2p_sum_rows=affinity[torch.from_numpy(rows.astype(np.int64))].numpy(),
        p2p_rows=rows,
        p2p_layers_rows=attention[:, NUM_CLASSES:, NUM_CLASSES:][:, torch.from_numpy(layer_rows.astype(np.int64))].numpy(),
        p2p_layers_row_index=layer_rows,
    )
    return arrays


TRAIN_VARIANTS = json.loads((GOLDEN_PLUS / "train" / "losses.json").read_text())["variants"]


def train_step(variant: str) -> tuple[dict[str, torch.Tensor], MCTformer, object, list[float]]:
    """train_one_epoch's forward and backward on the fixed batch (train mode, float32), with the variant's settings;
    drop-path variants replay the reference's recorded keep decisions (its random stream is timm's and the device's).
    Returns the loss terms, the model (with its gradients), the forward's output and each block's drop-path p."""
    settings = TRAIN_VARIANTS[variant]["settings"]
    reference = np.load(GOLDEN_PLUS / "train" / f"{variant}.npz")
    model = golden_plus_model(drop_path_rate=settings["drop_path_rate"], tied_tokens=settings["tied_class_tokens"]).train()
    probabilities = inject_drop_path(model, reference["drop_path_keep"]) if "drop_path_keep" in reference.files else []
    images, targets = training_batch()
    output = model(images)
    terms = plus_loss_terms(output, targets, cct_weight=settings["loss_weight"], cct_blocks=settings["num_cct"])
    terms["total"].backward()
    return terms, model, output, probabilities


def training_arrays(variant: str) -> dict[str, np.ndarray]:
    """Every array of train/<variant>.npz but the injected keep decisions, computed by ours; grad_norms in the
    reference's parameter order, NaN where there is no gradient (its unused pos_embed and norm.*)."""
    settings = TRAIN_VARIANTS[variant]["settings"]
    terms, model, output, probabilities = train_step(variant)
    scores = class_token_similarity(output.block_class_tokens[-settings["num_cct"]:]).detach()
    parameters = dict(model.named_parameters())

    def grad_norm(name: str) -> float:
        parameter = parameters.get(PLUS_REFERENCE_NAMES.get(name, name)) if name != "pos_embed" else None
        return np.nan if parameter is None or parameter.grad is None else float(parameter.grad.double().norm())

    return {
        "loss_terms": np.array([terms[name].item() for name in ("token", "cct", "patchcam", "total")]),
        "x_cls_logits": output.token_logits.detach().numpy(),
        "x_patch_logits": output.patchcam_logits.detach().numpy(),
        "class_tokens": output.block_class_tokens.detach().numpy(),
        "cct_scores": scores.numpy(),
        "cct_ce": class_token_cross_entropy(scores).numpy(),
        "grad_norms": np.array([grad_norm(name) for name in REFERENCE_NAMES]),
        "grad.cls_token": model.class_tokens.grad.numpy(),
        "grad.head.bias": model.patchcam_head.bias.grad.numpy(),
        "grad.blocks.0.norm1.weight": model.blocks[0].norm1.weight.grad.numpy(),
        "grad.patch_embed.proj.bias": model.patch_embed.proj.bias.grad.numpy(),
        "targets": training_batch()[1].numpy(),
        "drop_path_prob": np.array(probabilities),
    }


def golden_plus_root(folder: Path) -> Path:
    """A VOC-layout root of the map pictures under ``folder`` (PNG bytes under .jpg names, as the reference read them)."""
    import shutil

    root = folder / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    for image_id in MAP_IMAGES:
        shutil.copy(GOLDEN_PLUS / "images" / f"{image_id}.png", root / "JPEGImages" / f"{image_id}.jpg")
    return root


def extracted_maps(model: MCTformer, root: Path, case: str, out: Path) -> dict[str, np.ndarray]:
    """maps/<case>.npz's final maps and classes, made by our extraction stage (extract_maps) in reference mode."""
    reference = np.load(GOLDEN_PLUS / "maps" / f"{case}.npz")
    scales, layer_index, refined = MAP_CASES[case]
    variant = "fused_refined" if refined else "fused"
    ids = [i for i in MAP_IMAGES if i in reference.files]
    class_labels = {i: np.isin(np.arange(NUM_CLASSES), reference[f"{i}_classes"]).astype(np.float32) for i in ids}
    extract_maps(model, VOCLayout(root, NUM_CLASSES), ids, class_labels, {variant: out}, scales=scales, flip=True,
                 last_k=last_blocks(layer_index), feature_temperature=0.1, batch_size=1, device="cpu", num_overlays=0,
                 **REFERENCE_PLUS_MAPS)
    arrays = {}
    for image_id in ids:
        labels, arrays[image_id] = load_map_file(out / f"{image_id}.npz")
        arrays[f"{image_id}_classes"] = labels - 1  # 0-based, as the reference's dict keys
    return arrays


def pass_arrays(model: MCTformer, case: str) -> dict[str, np.ndarray]:
    """maps/<case>.npz's per-pass arrays, made as our extraction makes each pass (scaled_inputs, forward, grid_maps):
    the input size before the patch crop is not kept, so ``<id>_pass_sizes`` holds the cropped size (whole patches)."""
    reference = np.load(GOLDEN_PLUS / "maps" / f"{case}.npz")
    scales, layer_index, _ = MAP_CASES[case]
    arrays = {}
    for image_id in [i for i in MAP_IMAGES if f"{i}_pass_sizes" in reference.files]:
        present = torch.from_numpy(reference[f"{image_id}_classes"].astype(np.int64))
        image = picture(image_id)
        sizes, logits = [], []
        for index, scale in enumerate(scales):
            inputs = scaled_inputs(normalize_image(image)[None], [image], scale, 16, REFERENCE_PLUS_MAPS["resize"],
                                   REFERENCE_PLUS_MAPS["remainder"], flip=True)
            with torch.no_grad():
                output = model.forward_tokens(inputs, return_attention=True, position_resampling=REFERENCE_PLUS_MAPS["position_embedding"])
                maps = grid_maps(output, ["fused", "fused_refined"], NUM_CLASSES, last_k=last_blocks(layer_index), feature_temperature=0.1)
            for flipped in (0, 1):
                step = 2 * index + flipped
                sizes.append(tuple(inputs.shape[-2:]))
                logits.append(((output.token_logits + output.patchcam_logits) / 2)[flipped].numpy())
                arrays[f"{image_id}_p{step}_fused"] = maps["fused"][flipped, present].numpy()
                arrays[f"{image_id}_p{step}_refined"] = maps["fused_refined"][flipped, present].numpy()
        arrays[f"{image_id}_pass_sizes"] = np.array(sizes)
        arrays[f"{image_id}_pass_x_logits"] = np.stack(logits)
    return arrays


def map_key_kind(key: str) -> str:
    """The tolerance key of an array of maps/<case>.npz: maps, classes, pass_sizes, pass_x_logits, fused, refined."""
    for suffix in ("_classes", "_pass_sizes", "_pass_x_logits", "_fused", "_refined"):
        if key.endswith(suffix):
            return suffix.removeprefix("_")
    return "maps"


def comparable_reference(kind: str, reference: np.ndarray) -> np.ndarray:
    """The reference array as ours is to equal it: its pass sizes cut to whole 16 px patches (what the patch conv reads)."""
    return reference // 16 * 16 if kind == "pass_sizes" else reference
