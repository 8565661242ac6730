"""How local a trained classifier's patch-to-patch attention is, block by block.

The reference's patch-affinity refinement (``fused_refined``: A @ map, A the
patch-to-patch attention summed over the blocks) only sharpens maps when A is
local. This prints, per block, the mean distance (in patches) from a patch to
where its attention goes, beside the same mean for uniform attention, and the
share of each row that stays on patches rather than class tokens; a ratio near
1 means no locality. Diagnostic, not a speed benchmark.

    .venv/bin/python benchmarks/attention_locality.py results/synthetic/classifier/checkpoint.pt results/synthetic/data
"""

from __future__ import annotations

import argparse

import torch

from mctformer.data.transforms import normalize_image
from mctformer.data.voc import VOCLayout
from mctformer.training.classifier import load_classifier


def patch_distances(height: int, width: int) -> torch.Tensor:
    """[M, M] Euclidean distance between the patches of an h x w grid, in patches."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    positions = torch.stack([rows.flatten(), cols.flatten()], dim=1).float()
    return torch.cdist(positions, positions)


def attention_locality(attentions: torch.Tensor, num_classes: int, grid: tuple[int, int]) -> list[dict]:
    """Per block of [L, B, C+M, C+M] attention: patch share of the patch rows, their mean distance and the uniform one."""
    distance = patch_distances(*grid)
    rows = []
    for block in attentions:
        patch_to_patch = block[:, num_classes:, num_classes:]
        mass = patch_to_patch.sum(-1, keepdim=True)
        mean_distance = ((patch_to_patch / mass) * distance).sum(-1).mean().item()
        rows.append({"patch_share": mass.mean().item(), "mean_distance": mean_distance, "uniform_distance": distance.mean().item()})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("root", help="the VOC-layout data root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_classifier(args.checkpoint, device="cpu")
    layout = VOCLayout(args.root, model.num_classes)
    ids = layout.read_ids(args.split)[: args.images]
    images = torch.stack([normalize_image(layout.load_image(image_id)) for image_id in ids])
    with torch.no_grad():
        output = model.forward_tokens(images, position_resampling="size", return_attention=True)
    print(f"{args.checkpoint}: locality_sigma {model.locality_sigma}, {len(ids)} {args.split} images, grid {output.grid}")
    for index, row in enumerate(attention_locality(output.attentions, model.num_classes, output.grid)):
        print(f"block {index}: patch share {row['patch_share']:.2f}, mean distance {row['mean_distance']:.2f} patches "
              f"(uniform {row['uniform_distance']:.2f}, ratio {row['mean_distance'] / row['uniform_distance']:.2f})")


if __name__ == "__main__":
    main()
