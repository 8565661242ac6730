"""Sparse random walk vs the reference's dense T^(2^logt) by repeated squaring.

Same affinities on a VOC-size feature grid (~63x47 at stride 8, radius 5, 21
score channels): the propagated scores and the argmax must agree; the speed-up
and the memory each transition takes are printed.

    .venv/bin/python benchmarks/bench_random_walk.py [--height 47 --width 63 --logt 6 --images 5] [--device cuda]

With --device cuda both walks run on the GPU (their timings wait for it) and the peak GPU memory is printed.
"""

from __future__ import annotations

import argparse
import time

import torch
from device_bench import peak_label, peak_mib, reset_peak, synchronize

from mctformer.affinity import pair_indices
from mctformer.psa.walk import dense_random_walk, random_walk, transition_matrix_transposed
from mctformer.training.common import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=47)
    parser.add_argument("--width", type=int, default=63)
    parser.add_argument("--radius", type=int, default=5)
    parser.add_argument("--channels", type=int, default=21)
    parser.add_argument("--beta", type=float, default=8)
    parser.add_argument("--logt", type=int, default=6)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (the walks and their inputs on it)")
    parser.add_argument("--json", help="also write what was measured here, for the docs (docs/results/benchmarks/bench_random_walk.json)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    reset_peak(device)
    torch.manual_seed(0)
    size = args.height * args.width
    sources, targets = (torch.from_numpy(a).to(device) for a in pair_indices(args.height, args.width, args.radius, "all"))  # every pixel a source
    dense_seconds = sparse_seconds = 0.0
    worst, argmax_equal = 0.0, True
    for _ in range(args.images):
        # smooth affinities, as a trained AffinityNet gives: near 1 inside regions, small across edges
        field = torch.rand(1, 3, args.height // 8 + 2, args.width // 8 + 2).to(device)
        field = torch.nn.functional.interpolate(field, size=(args.height, args.width), mode="bilinear", align_corners=False)[0].reshape(3, -1)
        affinity = torch.exp(-4 * (field[:, sources] - field[:, targets]).abs().mean(0))
        scores = torch.rand(args.channels, size).to(device)

        synchronize(device)
        started = time.perf_counter()
        dense = dense_random_walk(scores, affinity, sources, targets, size, args.beta, args.logt)
        synchronize(device)
        dense_seconds += time.perf_counter() - started

        started = time.perf_counter()
        transition_t = transition_matrix_transposed(affinity, sources, targets, size, args.beta)
        sparse = random_walk(scores, transition_t, 2**args.logt)
        synchronize(device)
        sparse_seconds += time.perf_counter() - started

        worst = max(worst, float(((sparse - dense).abs() / dense.abs().clamp_min(1e-12)).max()))
        argmax_equal &= bool(torch.equal(sparse.argmax(0), dense.argmax(0)))

    dense_bytes = size * size * 4
    sparse_bytes = transition_t.values().numel() * 4 + transition_t.col_indices().numel() * 8 + transition_t.crow_indices().numel() * 8
    print(f"grid {args.height}x{args.width} ({size} nodes), radius {args.radius}, {args.channels} channels, "
          f"beta {args.beta}, logt {args.logt}, {args.images} images, on {device}")
    print(f"largest relative difference {worst:.2e}; argmax identical: {argmax_equal}")
    print(f"dense repeated squaring {dense_seconds / args.images * 1000:.1f} ms/image, sparse propagation {sparse_seconds / args.images * 1000:.1f} ms/image")
    print(f"speed-up: {dense_seconds / sparse_seconds:.1f}x (target >= 20x)")
    print(f"transition memory: dense {dense_bytes / 2**20:.1f} MiB, sparse {sparse_bytes / 2**20:.2f} MiB; {peak_label(device)} {peak_mib(device)}")
    if args.json:
        from mctformer.docs import write_benchmark_json

        write_benchmark_json(
            args.json, benchmark="bench_random_walk",
            command=f"bench_random_walk.py --height {args.height} --width {args.width} --radius {args.radius} --channels {args.channels} "
                    f"--beta {args.beta} --logt {args.logt} --images {args.images} --device {args.device}",
            measured={"argmax identical": argmax_equal, "largest relative difference": worst,
                      "dense (ms/image)": dense_seconds / args.images * 1000, "sparse (ms/image)": sparse_seconds / args.images * 1000,
                      "transition dense (MiB)": dense_bytes / 2**20, "transition sparse (MiB)": sparse_bytes / 2**20,
                      peak_label(device): peak_mib(device)},
            speedup=dense_seconds / sparse_seconds, target=">= 20x", threads=torch.get_num_threads(), device=str(device),
        )
    if not argmax_equal:
        raise SystemExit("sparse and dense random walks disagree")


if __name__ == "__main__":
    main()
