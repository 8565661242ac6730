"""MCTformer-V1/V2 (Xu et al., CVPR 2022) and MCTformer+ (Xu et al., TPAMI 2024) on timm's ``VisionTransformer``.

C class tokens, each with its own position embedding, precede the patch tokens.
Class scores come from the final class tokens BEFORE the last LayerNorm (mean
over the embedding dim): after the norm every token has zero mean, so the
scores would be constant and nothing would learn. V2 adds Patch-CAM, a 3x3
convolution on the (un-normalised) final patch tokens whose global average
gives a second set of scores. MCTformer+ ('plus') pools Patch-CAM by global
weighted rank pooling instead, sizes its patch position embedding for its
training input (448 px: 28x28), keeps the class tokens of every block for its
contrastive class-token (CCT) loss, and fuses maps by a square root.

Attention is captured in the same forward pass that classifies: hooks on each
block's attention-dropout module see the post-softmax attention; they are
only attached (and timm's fused kernel, which never materialises the
attention, only disabled) while a caller asks for attention.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from . import weights
from .registry import ARCHITECTURES

TokenPooling = Literal["avg", "max", "fc"]
Version = Literal["v1", "v2", "plus"]
VERSIONS = ("v1", "v2", "plus")
# How the class-to-patch attention and Patch-CAM make the "fused" map (see localize.grid_maps).
Fusion = Literal["product", "sqrt"]
# How the patch position embedding follows another patch grid (see resample_position_embedding).
PositionResampling = Literal["size", "reference_scale_factor"]
PatchCamInit = Literal["trunc_normal", "pytorch_default"]

@dataclass
class MCTformerOutput:
    """What one forward pass gives.

    token_logits: [B, C] scores from the class tokens.
    patchcam_logits: [B, C] scores from Patch-CAM (V2 only).
    patchcam: [B, C, h, w] Patch-CAM maps before ReLU (V2 only).
    attentions: [L, B, C+M, C+M] post-softmax attention of every block, mean
        over heads (only when requested).
    patch_tokens: [B, M, D] final patch tokens before the last LayerNorm.
    grid: (h, w) of the patch grid.
    block_class_tokens: [L, B, C, D] the class tokens after every block (MCTformer+ only: its CCT loss).
    fusion: how this version's maps fuse: ``product`` (V1/V2: class-to-patch attention summed over
        the last K blocks, times ReLU(Patch-CAM)) or ``sqrt`` (MCTformer+: attention averaged over
        the last K blocks, square root of its product with ReLU(Patch-CAM)).
    """

    token_logits: torch.Tensor
    patchcam_logits: torch.Tensor | None
    patchcam: torch.Tensor | None
    attentions: torch.Tensor | None
    patch_tokens: torch.Tensor
    grid: tuple[int, int]
    block_class_tokens: torch.Tensor | None = None
    fusion: Fusion = "product"


class CapturedAttention:
    """Every block's head-averaged attention [depth, B, N, N], written in place as the blocks run.

    Without gradients (extraction) each block's mean goes straight into its slice of one preallocated tensor, so the
    captured attention exists once; stacking a list of per-block means would hold it twice at the peak (~6 GiB of the
    11-12 estimated for DeiT-S at scale 1.5, batch 16 + flip). With gradients the means are kept in a list and stacked,
    as autograd needs. Either way the numbers are the same: the same mean, written to a different place.
    """

    def __init__(self, depth: int) -> None:
        self.depth, self.means, self.buffer, self.count = depth, [], None, 0

    def keep(self, attention: torch.Tensor) -> None:
        """One block's attention [B, heads, N, N]."""
        if attention.requires_grad:
            self.means.append(attention.mean(dim=1))
            return
        if self.buffer is None:
            self.buffer = attention.new_empty((self.depth, attention.shape[0], *attention.shape[2:]))
        torch.mean(attention, dim=1, out=self.buffer[self.count])
        self.count += 1

    def stacked(self) -> torch.Tensor:
        if self.means:
            return torch.stack(self.means)
        if self.count != self.depth:
            raise RuntimeError(f"captured the attention of {self.count} blocks of {self.depth}")
        return self.buffer


class MCTformer(VisionTransformer):
    """Multi-class token transformer; ``version`` 'v1' (tokens only), 'v2' (+ Patch-CAM) or 'plus'
    (MCTformer+: Patch-CAM pooled by GWRP with ``gwrp_decay``, class tokens of every block returned)."""

    def __init__(
        self,
        num_classes: int,
        *,
        version: Version,
        token_pooling: TokenPooling,
        patchcam_init: PatchCamInit,
        locality_sigma: float | None,
        gwrp_decay: float | None,
        **vit_kwargs,
    ) -> None:
        if locality_sigma is not None and not locality_sigma > 0:
            raise ValueError(f"classifier.locality_sigma must be null or > 0, got {locality_sigma!r}")
        if patchcam_init not in ("trunc_normal", "pytorch_default"):
            raise ValueError(f"classifier.patchcam_init must be trunc_normal or pytorch_default, got {patchcam_init!r}")
        if version not in VERSIONS:
            raise ValueError(f"classifier.version must be one of {VERSIONS}, got {version!r}")
        if version == "plus" and (gwrp_decay is None or not 0 < gwrp_decay <= 1):
            raise ValueError(f"classifier.gwrp_decay must lie in (0, 1] for MCTformer+, got {gwrp_decay!r}")
        if token_pooling not in ("avg", "max", "fc"):
            raise ValueError(f"classifier.token_pooling must be avg, max or fc, got {token_pooling!r}")
        # Plain patch sequence from timm (no class token of its own, no head);
        # the C class tokens are ours. dynamic_img_size resamples the patch
        # position embedding (bicubic) to any input size.
        super().__init__(
            num_classes=0,
            global_pool="",
            class_token=False,
            dynamic_img_size=True,
            **vit_kwargs,
        )
        self.num_classes = num_classes
        self.version = version
        self.token_pooling = token_pooling
        self.locality_sigma = locality_sigma
        self.gwrp_decay = gwrp_decay if version == "plus" else None
        self.class_tokens = nn.Parameter(torch.zeros(1, num_classes, self.embed_dim))
        self.class_pos_embed = nn.Parameter(torch.zeros(1, num_classes, self.embed_dim))
        trunc_normal_(self.class_tokens, std=0.02)
        trunc_normal_(self.class_pos_embed, std=0.02)
        if token_pooling == "fc":
            # Table 7's "fully connected" alternative: one linear score per class token.
            self.token_head = nn.Conv1d(num_classes, num_classes, kernel_size=self.embed_dim, groups=num_classes)
        if version in ("v2", "plus"):
            self.patchcam_head = nn.Conv2d(self.embed_dim, num_classes, kernel_size=3, padding=1)
            # The reference applies ViT's _init_weights to this conv, which only touches Linear
            # and LayerNorm layers: the conv keeps PyTorch's default (kaiming-uniform) init.
            if patchcam_init == "trunc_normal":
                trunc_normal_(self.patchcam_head.weight, std=0.02)
                nn.init.zeros_(self.patchcam_head.bias)
        # The final LayerNorm is never applied (scores come before it). It stays so
        # that DeiT checkpoints load strictly, frozen so that data-parallel
        # training (DDP) finds no trainable parameter without a gradient.
        self.norm.requires_grad_(False)
        self._captured: list[torch.Tensor] | None = None

    @property
    def patch_size(self) -> int:
        return int(self.patch_embed.patch_size[0])

    def architecture(self) -> dict:
        """What a checkpoint must match to be loaded into this model."""
        return {
            "num_classes": self.num_classes,
            "version": self.version,
            "token_pooling": self.token_pooling,
            "embed_dim": self.embed_dim,
            "depth": len(self.blocks),
            "num_heads": self.blocks[0].attn.num_heads,
            "patch_size": self.patch_size,
            "locality_sigma": self.locality_sigma,
            # MCTformer+'s patch position grid follows its training input (classifier.input_size), V1/V2's the arch's 224
            **({"position_grid": list(self.patch_embed.grid_size), "gwrp_decay": self.gwrp_decay} if self.version == "plus" else {}),
        }

    def no_weight_decay(self) -> set[str]:
        """Parameters the reference keeps out of weight decay besides the 1-D ones (classifier.weight_decay_exempt).

        Its VisionTransformer exempts {pos_embed, cls_token}. In V1/V2 these hold our class_tokens,
        class_pos_embed and pos_embed; MCTformer+ moved the positions into the NEW pos_embed_cls and
        pos_embed_pat, which that rule does not name, so only its cls_token (our class_tokens) is exempt.
        """
        if self.version == "plus":
            return {"class_tokens"}
        return {"class_tokens", "class_pos_embed", "pos_embed"}

    def locality_bias(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor | None:
        """The additive attention bias of ``locality_sigma`` [C+M, C+M]: -d^2 / (2 sigma^2) between two patches
        d patches apart, 0 to and from the class tokens (None without the prior).

        A fixed Gaussian prior on the logits, in every block and head: attention then prefers nearby
        patches but can still reach any. Without it a ViT trained from scratch on little data learns
        patch-to-patch attention with no locality (its mean distance is 0.93-0.98 of a uniform one's), so the
        patch-affinity refinement (``fused_refined``) spreads each class over the whole image.
        """
        if self.locality_sigma is None:
            return None
        rows, cols = torch.meshgrid(torch.arange(grid[0], device=device), torch.arange(grid[1], device=device), indexing="ij")
        positions = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()
        squared = torch.cdist(positions, positions).square()
        size = self.num_classes + positions.shape[0]
        bias = torch.zeros(size, size, device=device)
        bias[self.num_classes :, self.num_classes :] = -squared / (2 * self.locality_sigma**2)
        return bias

    # -- attention capture ---------------------------------------------------
    @contextlib.contextmanager
    def _capture_attention(self) -> Iterator[CapturedAttention]:
        captured = CapturedAttention(len(self.blocks))
        handles = []
        fused = [block.attn.fused_attn for block in self.blocks]

        def keep_head_mean(_module, _inputs, output):
            captured.keep(output)

        try:
            for block in self.blocks:
                block.attn.fused_attn = False
                handles.append(block.attn.attn_drop.register_forward_hook(keep_head_mean))
            yield captured
        finally:
            for handle in handles:
                handle.remove()
            for block, was_fused in zip(self.blocks, fused):
                block.attn.fused_attn = was_fused

    # -- forward -------------------------------------------------------------
    def _pos_embed(self, patches: torch.Tensor, resampling: PositionResampling) -> torch.Tensor:
        """Patch tokens [B, h, w, D] plus the position embedding resampled to (h, w) -> [B, h*w, D].

        Replaces timm's version, whose resampling is antialiased (a different
        cubic kernel, a = -0.5, even when upsampling); the reference uses plain bicubic.
        """
        batch, height, width, dim = patches.shape
        # MCTformer+'s reference dropped V1/V2's +0.1 from its scale factor
        offset = 0.0 if self.version == "plus" else 0.1
        position = resample_position_embedding(
            self.pos_embed, tuple(self.patch_embed.grid_size), (height, width), resampling, reference_offset=offset,
        )
        return self.pos_drop(patches.reshape(batch, height * width, dim) + position)

    def _check_input(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        if min(images.shape[-2:]) < self.patch_size:
            raise ValueError(
                f"image size {tuple(images.shape[-2:])} is smaller than one {self.patch_size}px patch"
            )

    def forward_tokens(
        self, images: torch.Tensor, *, position_resampling: PositionResampling, return_attention: bool = False,
    ) -> MCTformerOutput:
        """One forward pass; ``position_resampling`` (maps.position_embedding) only matters on a grid other
        than the training one."""
        self._check_input(images)
        patches = self.patch_embed(images)  # [B, h, w, D] (dynamic_img_size)
        batch, grid_h, grid_w, _ = patches.shape
        patches = self._pos_embed(patches, position_resampling)  # [B, M, D], position embedding resampled to (h, w)
        class_tokens = (self.class_tokens + self.class_pos_embed).expand(batch, -1, -1)
        tokens = self.norm_pre(torch.cat([class_tokens, patches], dim=1))

        attentions = block_class_tokens = None
        bias = self.locality_bias((grid_h, grid_w), tokens.device)
        with self._capture_attention() if return_attention else contextlib.nullcontext() as captured:
            if self.version == "plus":
                tokens, block_class_tokens = self._run_blocks_keeping_class_tokens(tokens, bias)
            else:
                tokens = self._run_blocks(tokens, bias)
        if return_attention:
            attentions = captured.stacked()

        num_classes = self.num_classes
        final_class_tokens = tokens[:, :num_classes]  # before the last LayerNorm, on purpose
        patch_tokens = tokens[:, num_classes:]
        if self.token_pooling == "avg":
            token_logits = final_class_tokens.mean(dim=-1)
        elif self.token_pooling == "max":
            token_logits = final_class_tokens.amax(dim=-1)
        else:
            token_logits = self.token_head(final_class_tokens).squeeze(-1)

        patchcam = patchcam_logits = None
        if self.version in ("v2", "plus"):
            feature_map = patch_tokens.transpose(1, 2).reshape(batch, self.embed_dim, grid_h, grid_w)
            patchcam = self.patchcam_head(feature_map)
            if self.version == "plus":
                patchcam_logits = global_weighted_rank_pooling(patchcam, self.gwrp_decay)
            else:
                patchcam_logits = patchcam.mean(dim=(2, 3))
        return MCTformerOutput(
            token_logits, patchcam_logits, patchcam, attentions, patch_tokens, (grid_h, grid_w),
            block_class_tokens=block_class_tokens, fusion="sqrt" if self.version == "plus" else "product",
        )

    def _run_blocks_keeping_class_tokens(self, tokens: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The blocks one by one, keeping each one's class tokens: (final tokens, [L, B, C, D])."""
        kept = []
        for block in self.blocks:
            tokens = block(tokens) if bias is None else block(tokens, attn_mask=bias.to(tokens.dtype))
            kept.append(tokens[:, : self.num_classes])
        return tokens, torch.stack(kept)

    def _run_blocks(self, tokens: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if bias is None:
            return self.blocks(tokens)
        bias = bias.to(tokens.dtype)
        for block in self.blocks:
            tokens = block(tokens, attn_mask=bias)
        return tokens

    def forward(self, images: torch.Tensor) -> MCTformerOutput:  # type: ignore[override]
        """Classification at the training resolution (training, validation mAP): on the training grid
        the position embedding is used as it is, whichever resampling rule."""
        return self.forward_tokens(images, position_resampling="size")


def gwrp_weights(count: int, decay: float, device: torch.device | None = None) -> torch.Tensor:
    """[count] float32 weights decay^k, k = 0..count-1, of global weighted rank pooling.

    Computed in float64 and rounded once, which is what the reference's float32
    ``torch.logspace(0, N-1, N, base=decay)`` gives on CPU (within 3e-8 relative).
    """
    if count < 1:
        raise ValueError(f"global weighted rank pooling needs at least one patch score, got {count}")
    powers = torch.pow(torch.tensor(decay, dtype=torch.float64), torch.arange(count, dtype=torch.float64))
    return powers.to(device=device, dtype=torch.float32)


def global_weighted_rank_pooling(scores: torch.Tensor, decay: float) -> torch.Tensor:
    """MCTformer+'s Patch-CAM pooling: [B, C, h, w] (or [B, C, N]) scores -> [B, C].

    Per class the N scores are sorted in descending order and averaged with the
    weights decay^rank, normalised by their sum: between max pooling (decay -> 0)
    and average pooling (decay = 1). At N = 784 and decay 0.996 the last rank weighs 0.04.
    """
    flat = scores.flatten(2)
    if flat.shape[-1] < 1:
        raise ValueError(f"global weighted rank pooling of an empty patch grid {tuple(scores.shape)}: the image is smaller than one patch")
    # float32 weights, as the reference's: under float16 autocast the product is then promoted to float32
    weights = gwrp_weights(flat.shape[-1], decay, flat.device)
    ranked = flat.sort(dim=-1, descending=True).values
    return (ranked * weights).sum(dim=-1) / weights.sum()


def class_token_similarity(block_class_tokens: torch.Tensor) -> torch.Tensor:
    """[L, B, C, D] class tokens -> [L, B, C, C] cosine similarities of the L2-normalised tokens (no temperature)."""
    unit = F.normalize(block_class_tokens, dim=-1)
    return unit @ unit.transpose(-1, -2)


def class_token_cross_entropy(similarity: torch.Tensor) -> torch.Tensor:
    """[L, B, C, C] similarities -> [B, C, L]: for token j, -log softmax_i(S[l, b, i, j])[j], each token's own index its target."""
    layers, batch, classes, _ = similarity.shape
    own_index = torch.arange(classes, device=similarity.device).view(1, classes, 1).expand(batch, classes, layers)
    return F.cross_entropy(similarity.permute(1, 2, 3, 0), own_index, reduction="none")


def contrastive_class_token_loss(block_class_tokens: torch.Tensor, targets: torch.Tensor, blocks: int) -> torch.Tensor:
    """MCTformer+'s CCT loss over the class tokens of the last ``blocks`` blocks ([L, B, C, D]; targets [B, C] multi-hot).

    Per image and block, each present class's token is classified among all C tokens by
    cosine similarity; summed over the present classes, averaged over the blocks, divided by
    the number of present classes, averaged over the batch. Identical tokens give log C; since
    cosines lie in [-1, 1] it cannot fall below log(1 + (C-1) e^(-1-1/(C-1))) (2.03 for C = 20).
    """
    if blocks < 1:
        raise ValueError(f"classifier.cct_blocks must be >= 1, got {blocks}")
    if targets.shape[-1] != block_class_tokens.shape[2]:
        raise ValueError(f"CCT loss: {block_class_tokens.shape[2]} class tokens but targets of {targets.shape[-1]} classes")
    entropy = class_token_cross_entropy(class_token_similarity(block_class_tokens[-blocks:]))  # [B, C, L']
    per_block = (entropy * targets.to(entropy.dtype).unsqueeze(-1)).sum(dim=1)  # [B, L']
    return (per_block.mean(dim=1) / (targets.sum(dim=1) + 1e-8)).mean()


def plus_loss_terms(output: MCTformerOutput, targets: torch.Tensor, *, cct_weight: float, cct_blocks: int) -> dict[str, torch.Tensor]:
    """MCTformer+'s training loss and its terms: token and Patch-CAM (GWRP) soft-margin losses plus
    ``cct_weight`` x the CCT loss over the last ``cct_blocks`` blocks (classifier.cct_weight, classifier.cct_blocks)."""
    if output.block_class_tokens is None or output.patchcam_logits is None:
        raise ValueError("plus_loss_terms needs an MCTformer+ forward (class tokens of every block, Patch-CAM scores)")
    if targets.shape != output.token_logits.shape:
        raise ValueError(f"MCTformer+ loss: {output.token_logits.shape[-1]} class tokens but targets of {targets.shape[-1]} classes")
    token = F.multilabel_soft_margin_loss(output.token_logits, targets)
    cct = contrastive_class_token_loss(output.block_class_tokens, targets, cct_blocks)
    patchcam = F.multilabel_soft_margin_loss(output.patchcam_logits, targets)
    return {"token": token, "cct": cct, "patchcam": patchcam, "total": token + cct_weight * cct + patchcam}


def classification_loss(output: MCTformerOutput, targets: torch.Tensor) -> torch.Tensor:
    """V1/V2: sum of the multi-label soft-margin losses of the token (and Patch-CAM) scores (MCTformer+: plus_loss_terms)."""
    loss = F.multilabel_soft_margin_loss(output.token_logits, targets)
    if output.patchcam_logits is not None:
        loss = loss + F.multilabel_soft_margin_loss(output.patchcam_logits, targets)
    return loss


def create_mctformer(
    arch: str,
    num_classes: int,
    *,
    version: Version,
    token_pooling: TokenPooling,
    drop_path_rate: float,
    pretrained: str | os.PathLike | None,
    patchcam_init: PatchCamInit,
    locality_sigma: float | None,
    input_size: int,
    gwrp_decay: float,
) -> MCTformer:
    """Build a named configuration (the ``classifier`` keys); ``pretrained`` is a local DeiT checkpoint
    (.pth or .safetensors), a timm model name or Hugging Face id in the local cache, or None. ``input_size`` and ``gwrp_decay`` shape MCTformer+ only: its patch
    position embedding is sized for the training input (the reference's MCTformerPlus(input_size=448),
    28x28), where V1/V2 keep the architecture's (224: 14x14) as their reference does."""
    try:
        settings = dict(ARCHITECTURES[arch])
    except KeyError:
        raise ValueError(f"classifier.arch: unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}") from None
    if version == "plus":
        settings["img_size"] = input_size
    model = MCTformer(
        num_classes=num_classes,
        version=version,
        token_pooling=token_pooling,
        patchcam_init=patchcam_init,
        locality_sigma=locality_sigma,
        gwrp_decay=gwrp_decay if version == "plus" else None,
        qkv_bias=True,
        drop_path_rate=drop_path_rate,
        **settings,
    )
    if pretrained:
        # a timm model name (deit_small_patch16_224) or Hugging Face id becomes its file in the local Hugging Face cache
        deit = "deit_tiny" if model.embed_dim == 192 else "deit_small"
        load_deit_weights(model, weights.resolve_weights(pretrained, deit, "classifier.pretrained"))
    return model


def resample_position_embedding(
    pos_embed: torch.Tensor, old_size: tuple[int, int], new_size: tuple[int, int], method: PositionResampling,
    *, reference_offset: float = 0.1,
) -> torch.Tensor:
    """Patch position embedding [1, h*w, D] on an ``old_size`` grid -> [1, H*W, D] on ``new_size``.

    Plain bicubic (a = -0.75, align_corners=False) as the reference's
    F.interpolate; unchanged when the sizes agree. ``method``:

    - ``size``: interpolate to ``size=new_size``: output pixel centres map onto
      the old grid by the exact ratio old/new.
    - ``reference_scale_factor``: the reference's DINO-style call,
      ``scale_factor = (new + 0.1) / old`` and no size. Since PyTorch 1.6 the
      given factor also sets the sampling coordinates (src = (dst + 0.5) /
      factor - 0.5), so the +0.1 is not a rounding guard: it shifts and
      slightly shrinks the sampled grid (up to 0.2 difference on the golden
      embeddings, tests/test_reference_parity.py). ``reference_offset`` is
      that 0.1 (V1/V2); MCTformer+'s reference has none (0.0: scale_factor =
      new / old, within float rounding of ``size``, but the output size is
      still checked, as the reference asserts it).
    """
    if tuple(old_size) == tuple(new_size):
        return pos_embed
    grid = pos_embed.reshape(1, old_size[0], old_size[1], -1).permute(0, 3, 1, 2).float()
    if method == "size":
        grid = F.interpolate(grid, size=tuple(new_size), mode="bicubic", align_corners=False)
    elif method == "reference_scale_factor":
        factors = ((new_size[0] + reference_offset) / old_size[0], (new_size[1] + reference_offset) / old_size[1])
        grid = F.interpolate(grid, scale_factor=factors, mode="bicubic", align_corners=False)
        if tuple(grid.shape[-2:]) != tuple(new_size):
            raise RuntimeError(f"position embedding resampled to {tuple(grid.shape[-2:])}, expected {tuple(new_size)}")
    else:
        raise ValueError(f"maps.position_embedding must be size or reference_scale_factor, got {method!r}")
    grid = grid.to(pos_embed.dtype)
    return grid.permute(0, 2, 3, 1).reshape(1, new_size[0] * new_size[1], -1)


def replicate_position_embedding(pos_embed: torch.Tensor, old_size: tuple[int, int], new_size: tuple[int, int]) -> torch.Tensor:
    """[1, h*w, D] -> [1, H*W, D] by nearest neighbour: new position (r, c) copies old (r * h // H, c * w // W).

    MCTformer+'s DeiT initialisation: 14x14 -> 28x28 copies each position into a 2x2 block.
    """
    grid = pos_embed.reshape(1, old_size[0], old_size[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_size), mode="nearest")
    return grid.permute(0, 2, 3, 1).reshape(1, new_size[0] * new_size[1], -1)


# MCTformer+'s reference parameter names (models.py MCTformerPlus) -> ours; its pos_embed [1, 197, D] is never used.
PLUS_REFERENCE_NAMES = {"cls_token": "class_tokens", "pos_embed_cls": "class_pos_embed", "pos_embed_pat": "pos_embed",
                        "head.weight": "patchcam_head.weight", "head.bias": "patchcam_head.bias"}


def from_reference_plus_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of the reference's MCTformerPlus in our names (its unused ``pos_embed`` dropped)."""
    return {PLUS_REFERENCE_NAMES.get(name, name): value for name, value in state.items() if name != "pos_embed"}


def load_deit_weights(model: MCTformer, path: str | os.PathLike) -> dict[str, str]:
    """Initialise ``model`` from a DeiT checkpoint.

    As in the reference, every class token and its position embedding start as
    copies of DeiT's single cls token and its position embedding (all class
    tokens identical); the patch position embedding is resampled to the model's
    grid: bicubic for V1/V2, nearest for MCTformer+ (its reference copies each
    of DeiT's 14x14 positions into a 2x2 block of its 28x28 grid). DeiT's
    classifier head is dropped. Returns {'sha256': ..., 'path': ...}.
    """
    # The hint for a missing file names the DeiT of this width (DeiT-S is 384 wide, DeiT-Ti 192).
    state = weights.read_state_dict(path, "deit_tiny" if model.embed_dim == 192 else "deit_small")
    if "cls_token" not in state or "pos_embed" not in state:
        raise ValueError(f"{path} is not a DeiT/ViT checkpoint: it has no cls_token/pos_embed")
    own = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    cls_token = state["cls_token"]  # [1, 1, D]
    pos_embed = state["pos_embed"]  # [1, 1 + M0, D]
    if cls_token.shape[-1] != model.embed_dim:
        raise ValueError(f"{path}: embedding dim {cls_token.shape[-1]} does not match the model's {model.embed_dim}")
    converted["class_tokens"] = cls_token.expand(1, model.num_classes, -1).clone()
    converted["class_pos_embed"] = pos_embed[:, :1].expand(1, model.num_classes, -1).clone()
    grid = model.patch_embed.grid_size
    side = int(round((pos_embed.shape[1] - 1) ** 0.5))
    if side * side != pos_embed.shape[1] - 1:
        raise ValueError(f"{path}: pos_embed holds {pos_embed.shape[1] - 1} patch positions, not a square grid")
    if model.version == "plus":
        converted["pos_embed"] = replicate_position_embedding(pos_embed[:, 1:], (side, side), tuple(grid))
    else:
        # DeiT's 14x14 grid onto the model's: exact-ratio bicubic (maps.position_embedding is about extraction grids)
        converted["pos_embed"] = resample_position_embedding(pos_embed[:, 1:], (side, side), tuple(grid), "size")
    for key, value in state.items():
        if key in ("cls_token", "pos_embed") or key.startswith(("head.", "head_dist.", "dist_token")):
            continue
        if key not in own:
            continue
        if own[key].shape != value.shape:
            raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects {tuple(own[key].shape)}")
        converted[key] = value
    missing = [k for k in own if k not in converted and not k.startswith(("patchcam_head.", "token_head."))]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {len(missing)} backbone tensors, e.g. {missing[0]}")
    model.load_state_dict(converted, strict=False)
    return {"path": str(path), "sha256": weights.announce(path, "MCTformer backbone (DeiT)")}


def model_summary(model: MCTformer, image_size: int) -> dict[str, float]:
    """Parameter count and multiply-accumulates of one forward pass at ``image_size``."""
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    model.train(was_training)
    return {"params": float(params), "macs": counter.get_total_flops() / 2.0}
