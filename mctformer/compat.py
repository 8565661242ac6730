"""The reference's procedure as one registry: every switch between our behaviour and the authors' code.

The authors' code (xulianuwa/MCTformer at 9606597, its ``psa/`` and ``seg/`` copies of PSA and
DeepLab, and jiwoon-ahn/irn) does some things on purpose-looking and some by accident that we do
differently. Each such difference is one config key, a *switch*, listed here once with both values,
what the reference does and where. The config's ``compat:`` section picks, per stage group,
``ours`` or ``reference``; :func:`apply_compat` then fills every switch the config does not state
with that mode's value. A key stated explicitly in its section wins (as timm's presets let explicit
arguments win), which is why no config file states a switch at all: ``config.yaml`` is always
loaded first, so a value there would override every overlay's compat mode.

Everything else that reads the reference's procedure (the paper configs' tests, the docs table,
``tests/fixtures/paper_settings.yaml``) reads it from :data:`SWITCHES`.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

# The stage groups a compat mode is chosen for: a switch belongs to the config section it lives in.
GROUPS = ("classifier", "maps", "seeds", "psa", "affinity", "irn", "deeplab")
MODES = ("ours", "reference")

# `where` names places as repository@commit path:line: MCTformer@9606597 is xulianuwa/MCTformer at
# 96065977f38ec07cff3dea7295555d5141502c2d (V1/V2 with its psa/ and seg/ copies), MCTformer@0acc27a the same
# repository at 0acc27ada87a5582053efb14648442d8644168aa (MCTformer+; psa/ and seg/ unchanged), irn@a2ece00 jiwoon-ahn/irn,
# timm 0.4.12 and Pillow 8.3.1 the versions its requirements.txt pins.


@dataclass(frozen=True)
class Switch:
    """One config key on which our behaviour and the reference's differ."""

    key: str  # dotted config key, e.g. "maps.resize"
    ours: Any  # the value in ``ours`` mode (the embedded default's)
    reference: Any  # the value that reproduces the authors' code
    reference_does: str  # what the authors' code does
    where: str  # where it does it: repository@commit path:line
    why_ours: str  # why ours differs

    @property
    def group(self) -> str:
        return self.key.split(".", 1)[0]

    def value(self, mode: str) -> Any:
        return self.ours if mode == "ours" else self.reference


SWITCHES: tuple[Switch, ...] = (
    # ------------------------------------------------------------------ classifier training (main.py)
    Switch(
        'classifier.patchcam_init', 'trunc_normal', 'pytorch_default',
        "V2's 3x3 Conv2d head gets _init_weights, which only sets Linear/LayerNorm, and DeiT's head is dropped on load, so it keeps PyTorch's default init.",
        'MCTformer@9606597 models.py:19, models.py:21, vision_transformer.py:178-185, main.py:222-225; torch.nn.Conv2d default init (reset_parameters)',
        'the same init as every other layer (std 0.02, zero bias)',
    ),
    Switch(
        'classifier.warmup_lr', 1e-05, 1e-06,
        "--warmup-lr defaults to 1e-6 (run.sh does not set it) and create_scheduler passes it as CosineLRScheduler's warmup_lr_init.",
        'MCTformer@9606597 main.py:62, main.py:270; timm 0.4.12 (its pin) timm.scheduler.create_scheduler timm/scheduler/scheduler_factory.py:32',
        'the warm-up starts at min_lr',
    ),
    Switch(
        'classifier.lr_schedule', 'per_step', 'per_epoch_reference',
        'The epoch-based cosine scheduler sets warmup_lr at creation and is stepped only by lr_scheduler.step(epoch) after each epoch, never per iteration.',
        'MCTformer@9606597 main.py:270, main.py:289-297; timm 0.4.12 (its pin) timm.scheduler.CosineLRScheduler cosine_lr.py:62-64, scheduler_factory.py:35',
        'cosine over updates, no one-epoch lag',
    ),
    Switch(
        'classifier.weight_decay_exempt', False, True,
        'create_optimizer(filter_bias_and_bn=True) puts 1-D params, *.bias and no_weight_decay()={pos_embed, cls_token} in a group with weight_decay 0. '
        "MCTformer+ keeps that rule, so its new pos_embed_cls and pos_embed_pat are decayed (MCTformer.no_weight_decay).",
        'MCTformer@9606597 main.py:267, vision_transformer.py:212-214; MCTformer@0acc27a main.py:284; '
        'timm 0.4.12 (its pin) timm add_weight_decay optim_factory.py:35, 101-106',
        'plain AdamW decay on every parameter',
    ),
    Switch(
        'classifier.augment.random_erasing_mode', 'const', 'pixel',
        "--remode defaults to 'pixel'; timm's RandomErasing then fills each erased box with per-pixel standard-normal noise.",
        'MCTformer@9606597 main.py:95, datasets.py:199; timm 0.4.12 (its pin) timm.data.RandomErasing random_erasing.py:17-18, 62-63',
        "timm's default zero fill",
    ),
    # ------------------------------------------------------------------ map generation (engine.py)
    Switch(
        'maps.resize', 'torch_bilinear', 'pil_bicubic',
        'VOC12DatasetMS resizes the PIL image to (round(W*s), round(H*s)) with PIL.Image.CUBIC before ToTensor; at s=1 Pillow returns an unchanged copy.',
        'MCTformer@9606597 datasets.py:144-146; Pillow 8.3.1 (its pin) Image.resize src/PIL/Image.py:1971-1972',
        'batched on the device, on the tensor',
    ),
    Switch(
        'maps.remainder', 'resize', 'crop',
        'The 16x16 stride-16 patch conv ignores the last H%16 rows and W%16 cols; the H//16 x W//16 maps are then bilinearly resized to the full image.',
        'MCTformer@9606597 vision_transformer.py:139, engine.py:157-159, engine.py:174',
        'straight to whole patches: every pixel is seen',
    ),
    Switch(
        'maps.position_embedding', 'size', 'reference_scale_factor',
        'interpolate_pos_encoding resizes the 14x14 grid bicubically with scale_factor ((H//16)+0.1)/14, ((W//16)+0.1)/14 and no size (skipped at 224x224). '
        "MCTformer+ resizes its 28x28 grid with scale_factor (H//16)/28, (W//16)/28, no +0.1, and asserts the size (the model's version picks the rule).",
        'MCTformer@9606597 models.py:39-48, models.py:136-145; MCTformer@0acc27a models.py:34-53',
        'the exact ratio: samples the grid it claims to',
    ),
    Switch(
        'maps.amp', False, True,
        "generate_attention_maps_ms runs every scale's forward, patch-attention refinement and upsampling inside torch.cuda.amp.autocast().",
        'MCTformer@9606597 engine.py:151',
        'exact on CPU and GPU alike',
    ),
    Switch(
        'maps.storage_dtype', 'float16', 'float32',
        "Each present class's min-max-normalised map (a float32 array) goes into a dict saved with np.save as <name>.npy.",
        'MCTformer@9606597 engine.py:182-183, engine.py:196-208',
        'half the disk, within 2.5e-4 on [0, 1]',
    ),
    # ------------------------------------------------------------------ seed evaluation (evaluation.py)
    Switch(
        'seeds.thresholds', {'start': 0.0, 'stop': 1.0, 'step': 0.01}, {'start': 0.0, 'stop': 0.59, 'step': 0.01},
        '--start 0 and --end 60 (not set by run.sh) make the --curve loop use background scores i/100 for i in range(0, 60): 0.00..0.59.',
        'MCTformer@9606597 evaluation.py:124-125, evaluation.py:139-140, run.sh:39-45',
        "the locality prior's refined maps peak above 0.6",
    ),
    Switch(
        'seeds.miou_convention', 'present_labels', 'all_labels',
        'IoU = TP/(T+P-TP+1e-10) for every one of the 21 labels and mIoU is their plain mean, so a label absent from GT and prediction counts 0.',
        'MCTformer@9606597 evaluation.py:65-66, evaluation.py:75',
        'small splits; equal on VOC train, where all 21 labels occur',
    ),
    Switch(
        'seeds.selection', 'global_max', 'first_non_improving',
        'The --curve sweep keeps the threshold while mIoU rises and breaks at the first threshold whose mIoU is not strictly higher than the best so far.',
        'MCTformer@9606597 evaluation.py:137-138, evaluation.py:144-148',
        'the maximum',
    ),
    # ------------------------------------------------------------------ PSA labels and walk (psa/)
    Switch(
        'psa.background', None, 0.39,
        '--bg_thr defaults to 0.39 (run_psa.sh sets none) and is written as the constant background channel before the random walk.',
        'MCTformer@9606597 psa/infer_aff.py:73, psa/infer_aff.py:116, run_psa.sh:23-27',
        'null: the best seed threshold of psa.threshold_split, so it follows the seeds',
    ),
    Switch(
        'psa.crf_image', 'decoded', 'normalised_roundtrip',
        'The CRF image is rebuilt from the normalised input tensor as (x*std+mean)*255 and cast with astype(np.uint8), truncating toward zero.',
        'MCTformer@9606597 engine.py:139-143, engine.py:212',
        'the image itself',
    ),
    Switch(
        'psa.crf.spatial_scale', 'auto', 1.0,
        'crf_inference divides sxy 3 and 80 by scale_factor, which defaults to 1 and is never passed by _crf_with_alpha.',
        'MCTformer@9606597 psa/tool/imutils.py:200, psa/tool/imutils.py:213-214, engine.py:229',
        'sxy x longer side / reference_size: the same on 500 px images, right on small ones',
    ),
    # ------------------------------------------------------------------ AffinityNet training (psa/train_aff.py)
    Switch(
        'affinity.pair_sources', 'all', 'reference',
        'Pair sources are only grid[:-(r-1), r-1:-(r-1)] (r=5): get_indices_of_pairs for the network, ExtractAffinityLabelInRadius for the labels.',
        'MCTformer@9606597 psa/tool/pyutils.py:145, psa/voc12/data.py:146, psa/network/resnet38_aff.py:29, psa/network/resnet38_aff.py:47',
        'every grid cell has pairs (a third of a 16x16 grid would have none)',
    ),
    Switch(
        'affinity.grid_labels', 'centre_pixel', 'pooled_scores',
        "la+ha CRF score channels are block-averaged 8x8 (skimage block_reduce mean), then argmax'd and merged: la bg->255, ha bg->0, zero-score cells->255.",
        'MCTformer@9606597 psa/train_aff.py:60, psa/tool/imutils.py:128-131, psa/voc12/data.py:222-229',
        "the confident label at each cell's centre: one PNG per image",
    ),
    Switch(
        'affinity.scale_range', [0.9, 1.1], [1.0, 1.0],
        'The joint transforms are None, None, RandomCrop(448), RandomHorizontalFlip: image and labels are never rescaled.',
        'MCTformer@9606597 psa/train_aff.py:44-49',
        'tuned on the embedded data',
    ),
    Switch(
        'affinity.color_jitter', None, [0.3, 0.3, 0.3, 0.1],
        'The first image transform is torchvision ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1) on the PIL image.',
        'MCTformer@9606597 psa/train_aff.py:51',
        'tuned on the embedded data',
    ),
    Switch(
        'affinity.pad_image', 'mean', 'black',
        'RandomCrop copies the raw 0-255 image into a zero container before model.normalize runs, so padding is black (-mean/std after normalising).',
        'MCTformer@9606597 psa/tool/imutils.py:56-58, psa/train_aff.py:47, psa/train_aff.py:52-53, psa/voc12/data.py:211-218',
        'padding with the mean (0 after normalising)',
    ),
    Switch(
        'affinity.crop_placement', 'top_left', 'random',
        'RandomCrop draws a random image offset when the image is larger than 448 and a random container offset (cont_left/cont_top) when it is smaller.',
        'MCTformer@9606597 psa/tool/imutils.py:42-54',
        'deterministic placement',
    ),
    Switch(
        'affinity.momentum', 0.9, 0.0005,
        "PolyOptimizer calls SGD.__init__(params, lr, weight_decay), so wt_dec 5e-4 lands in momentum; the groups' weight_decay keys still set the decay.",
        'MCTformer@9606597 psa/tool/torchutils.py:12-13, psa/train_aff.py:22, psa/train_aff.py:68-73; torch.optim.SGD(params, lr, momentum, ...)',
        'a real momentum',
    ),
    # ------------------------------------------------------------------ IRN (jiwoon-ahn/irn)
    Switch(
        'irn.pair_sources', 'all', 'reference',
        'PathIndex takes sources only from full_indices[:H-(r-1), r-1:W-(r-1)] (radius_floor=ceil(r)-1) and offsets paths from that window.',
        'irn@a2ece00 misc/indexing.py:10, misc/indexing.py:62-63, misc/indexing.py:75-76, misc/indexing.py:85',
        'every cell has pairs (none would be left on a 16x16 grid)',
    ),
    Switch(
        'irn.crf.spatial_scale', 'auto', 1.0,
        'crf_inference_label has no scale argument: Gaussian sxy=3 and bilateral sxy=50 are constants for every image size.',
        'irn@a2ece00 misc/imutils.py:156, misc/imutils.py:165-166',
        'sxy x longer side / reference_size',
    ),
    Switch(
        'irn.momentum', 0.9, 0.0001,
        "PolyOptimizer passes weight_decay (irn_weight_decay 1e-4) into SGD's momentum slot; the param groups set weight_decay 1e-4 themselves.",
        'irn@a2ece00 misc/torchutils.py:11-12, run_sample.py:44, step/train_irn.py:33-36; torch.optim.SGD(params, lr, momentum, ...)',
        'a real momentum',
    ),
    # ------------------------------------------------------------------ DeepLab (seg/)
    Switch(
        'deeplab.classifier_kernel', 1, 3,
        'The head is 3x3 conv 4096->512 (dilation 12) + ReLU, then a second 3x3 conv 512->num_classes (dilation 12, padding 12) as classifier.',
        'MCTformer@9606597 seg/network/resnet38_seg.py:12, seg/network/resnet38_seg.py:15, seg/network/resnet38_seg.py:21-24',
        "LargeFOV's 1x1 classifier",
    ),
    Switch(
        'deeplab.dropout', 0.5, 0.0,
        "The head's forward is conv, ReLU, conv with no dropout; the only Dropout2d are in backbone blocks b6 (0.3) and b7 (0.5).",
        'MCTformer@9606597 seg/network/resnet38_seg.py:21-24, seg/network/resnet38d.py:145, seg/network/resnet38d.py:147',
        "LargeFOV's dropout",
    ),
    Switch(
        'deeplab.head_init', 'kaiming_normal', 'xavier_uniform',
        "Both head convs get torch.nn.init.xavier_uniform_ on their weights; their biases keep PyTorch's default Conv2d init.",
        'MCTformer@9606597 seg/network/resnet38_seg.py:13, seg/network/resnet38_seg.py:16',
        'Kaiming-normal weights, zero bias',
    ),
    Switch(
        'deeplab.pad_label', 255, 0,
        'crop() places a too-small label at the top-left of np.zeros((dim, dim)), so padded label pixels are 0 (background), not 255.',
        'MCTformer@9606597 seg/tool/exutils.py:95-98, seg/tool/exutils.py:135-136',
        'padding is not background: ignored',
    ),
    Switch(
        'deeplab.momentum', 0.9, 1e-05,
        'PolyOptimizer_cls calls SGD.__init__(params, lr, weight_decay), so --wt_dec (default 1e-5, unset in run_seg.sh) becomes SGD momentum.',
        'MCTformer@9606597 seg/train_seg.py:31, seg/train_seg.py:66-69, seg/tool/torchutils.py:36-37; torch.optim.SGD(params, lr, momentum, ...)',
        'a real momentum',
    ),
    Switch(
        'deeplab.weight_decay', 0.0005, 0.0,
        "The two param groups set only params and lr, and wt_dec goes to momentum, so SGD's weight_decay stays at its default 0.",
        'MCTformer@9606597 seg/train_seg.py:66-69, seg/tool/torchutils.py:37',
        "DeepLab's weight decay",
    ),
    Switch(
        'deeplab.inference_resize', 'ours', 'reference',
        'Each scale resizes the input to [int(H*s), int(W*s)] (bilinear, align_corners=True); logits go straight to (H, W) bilinear align_corners=False.',
        'MCTformer@9606597 seg/infer_seg.py:92-93, seg/infer_seg.py:96',
        'round(H * s), align_corners=False',
    ),
    Switch(
        'deeplab.flip_inference', True, False,
        'The multi-scale loop runs model(x=im) once per scale on the unflipped image; there is no flipped pass.',
        'MCTformer@9606597 seg/infer_seg.py:91-98',
        "the flip's average is free accuracy",
    ),
    Switch(
        'deeplab.crf.normalise_scores', True, False,
        'Per-scale softmaxes are fused by element-wise max and that array, not renormalised, goes to unary_from_softmax in the CRF.',
        'MCTformer@9606597 seg/infer_seg.py:97-98, seg/infer_seg.py:100, seg/infer_seg.py:103, seg/tool/imutils.py:12',
        'the fused scores are a distribution again',
    ),
    Switch(
        'deeplab.crf.spatial_scale', 'auto', 1.0,
        'crf_inference_inf divides sxy 4 and 83 by scale_factor (default 1); crf_postprocess never passes it, so sxy is fixed.',
        'MCTformer@9606597 seg/tool/imutils.py:3, seg/tool/imutils.py:18-19, seg/infer_seg.py:30',
        'sxy x longer side / reference_size',
    ),
)

SWITCH_BY_KEY: dict[str, Switch] = {switch.key: switch for switch in SWITCHES}


def _parent(config: Mapping[str, Any], dotted: str) -> tuple[Mapping[str, Any] | None, str]:
    """The mapping that holds ``dotted``'s leaf (None where a level is missing) and the leaf's name."""
    *path, leaf = dotted.split(".")
    node: Any = config
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return (node if isinstance(node, Mapping) else None), leaf


def states(config: Mapping[str, Any], dotted: str) -> bool:
    """Whether ``config`` states the key ``dotted`` (a switch given explicitly)."""
    parent, leaf = _parent(config, dotted)
    return parent is not None and leaf in parent


def compat_modes(config: Mapping[str, Any]) -> dict[str, str]:
    """The config's ``compat:`` section, every group named (a group it leaves out runs ``ours``)."""
    chosen = config.get("compat") or {}
    return {group: chosen.get(group, "ours") for group in GROUPS}


def apply_compat(config: MutableMapping[str, Any]) -> list[tuple[str, Any, str]]:
    """Fill every switch ``config`` does not state with its group's compat mode's value, in place.

    Returns what it set, as (key, value, mode). A section the config lacks altogether (``irn`` in
    an old overlay, say) is left alone: the schema then names what is missing.
    """
    from copy import deepcopy

    modes = compat_modes(config)
    unknown = set(modes.values()) - set(MODES)
    if unknown:
        raise ValueError(f"compat: modes are {' | '.join(MODES)}, got {sorted(unknown)}")
    set_here = []
    for switch in SWITCHES:
        parent, leaf = _parent(config, switch.key)
        if parent is None or leaf in parent:
            continue
        mode = modes[switch.group]
        parent[leaf] = deepcopy(switch.value(mode))  # type: ignore[index]
        set_here.append((switch.key, parent[leaf], mode))  # type: ignore[index]
    return set_here


def _cell(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{key}: {item}" for key, item in value.items()) + "}`"
    return f"`{value}`"


def switches_markdown() -> str:
    """The reference-vs-ours table of every switch, by group (the docs render it from here)."""
    lines = ["| group | key | ours | reference | what the reference does (where) | why ours |", "|---|---|---|---|---|---|"]
    for switch in SWITCHES:
        lines.append(f"| {switch.group} | `{switch.key}` | {_cell(switch.ours)} | {_cell(switch.reference)} | "
                     f"{switch.reference_does} ({switch.where}) | {switch.why_ours} |")
    return "\n".join(lines)
