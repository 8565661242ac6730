"""Named MCTformer configurations and the localization maps each version gives (no torch import)."""

# As timm registers its models. ``img_size`` is the training resolution that
# sizes the learned patch position embedding.
ARCHITECTURES: dict[str, dict] = {
    "deit_small": dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0),
    "deit_tiny": dict(img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0),
    # From scratch, for the embedded default on 2 CPU cores (64 px images, 8x8 grid).
    "tiny": dict(img_size=64, patch_size=8, embed_dim=96, depth=4, num_heads=3, mlp_ratio=4.0),
}

def check_last_k(last_k: int, depth: int, model: str = "the model") -> None:
    """maps.last_k must name 1..depth blocks: the one check, run by the config checks before any job and by the maps."""
    if not 1 <= last_k <= depth:
        raise ValueError(f"maps.last_k must lie in 1..{depth} (the depth of {model}), got {last_k}")


def backbone_output_stride(name: str) -> int:
    """Output stride of a dense backbone (AffinityNet, DeepLab) by name: tiny keeps 64 px images at 16x16."""
    return 4 if name == "tiny" else 8


# Map variants per version; "*_refined" use the patch-to-patch attention (the
# reference), "*_feature_refined" an affinity from the final patch tokens.
MAP_VARIANTS: dict[str, tuple[str, ...]] = {
    "v1": ("attention", "attention_refined", "attention_feature_refined"),
    "v2": ("attention", "patchcam", "fused", "fused_refined", "fused_feature_refined"),
    # MCTformer+: the same names; its attention is the mean over the last K blocks and "fused" a square root
    "plus": ("attention", "patchcam", "fused", "fused_refined", "fused_feature_refined"),
}
