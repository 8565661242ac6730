"""IRN's walk: our sparse boundary walk against a dense implementation at VOC size.

A 128x128 stride-4 grid (a 512 px image), radius 5, beta 10, 2^8 steps, a synthetic boundary map (the
edges of random discs) and seeds on the discs. Ours: the path-max affinities of every pair within the
radius (mctformer.irn.paths), one sparse transition matrix, 256 sparse products (mctformer.irn.walk).
Dense: the authors' propagate_to_edge, written out: the N x N affinity matrix, A^beta over column sums,
then either squared exp_times times (``squaring``: what they run, on a GPU) or applied 2^exp_times times
(``products``: the cheaper dense way, used on a CPU, where one 16384^2 squaring takes minutes). Each
runs in a fresh process, so its peak RSS (ru_maxrss minus the process's RSS before the walk) is its
own; on CUDA the peak allocated GPU memory is printed too. The masks must be equal.

    .venv/bin/python benchmarks/bench_irn_walk.py [--grid 128 --radius 5 --channels 2 --dense-method auto --time-one-squaring]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time

import numpy as np
import torch


def scene(grid: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(boundary [grid, grid] in [0, 1], seeds [channels, grid, grid]): discs, their edges, noisy seeds inside."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:grid, 0:grid]
    region = np.zeros((grid, grid), np.int64)
    for label in range(1, channels + 1):
        cy, cx, r = rng.uniform(0.2, 0.8) * grid, rng.uniform(0.2, 0.8) * grid, rng.uniform(0.12, 0.25) * grid
        region[(ys - cy) ** 2 + (xs - cx) ** 2 < r * r] = label
    edge = np.zeros((grid, grid), bool)
    edge[:-1] |= region[:-1] != region[1:]
    edge[:, :-1] |= region[:, :-1] != region[:, 1:]
    boundary = np.clip(np.where(edge, 0.9, 0.0) + rng.uniform(0, 0.05, (grid, grid)), 0, 1).astype(np.float32)
    seeds = np.stack([(region == label) * rng.uniform(0.2, 1.0, (grid, grid)) for label in range(1, channels + 1)]).astype(np.float32)
    seeds *= rng.uniform(size=(channels, grid, grid)) < 0.3  # sparse seeds: the walk has to spread them
    return torch.from_numpy(boundary), torch.from_numpy(seeds)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def to_masks(walked: torch.Tensor, grid: int, stride: int, bg_threshold: float) -> np.ndarray:
    from mctformer.irn.walk import walked_to_masks

    size = (grid * stride, grid * stride)
    labels = np.arange(1, walked.shape[0] + 1)
    return walked_to_masks(walked[None].float().cpu(), [labels], (size, size, (grid, grid)), size, bg_threshold)[0]


def measured_walk(device: torch.device, walk, grid: int, bg_threshold: float) -> dict:
    """``walk()`` (-> the walked scores [channels, grid, grid]) timed, with its peak RSS (and on CUDA its peak GPU
    memory), the scores and their masks."""
    before = rss_mb()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    walked = walk()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"seconds": seconds, "peak_rss_mb": peak, "gpu_mb": gpu, "walked": walked.cpu(),
            "mask": to_masks(walked, grid, 4, bg_threshold)}


def sparse_job(arguments: dict) -> dict:
    from mctformer.irn.walk import boundary_walk

    torch.set_num_threads(arguments["threads"])
    device = torch.device(arguments["device"])
    boundary, seeds = scene(arguments["grid"], arguments["channels"], arguments["seed"])
    boundary, seeds = boundary.to(device), seeds.to(device)

    def walk() -> torch.Tensor:
        return boundary_walk(boundary[None], [seeds], beta=arguments["beta"], exp_times=arguments["exp_times"], radius=arguments["radius"])[0]

    return measured_walk(device, walk, arguments["grid"], arguments["bg_threshold"])


def dense_job(arguments: dict) -> dict:
    from mctformer.affinity import pair_indices
    from mctformer.irn.paths import boundary_affinity

    torch.set_num_threads(arguments["threads"])
    device = torch.device(arguments["device"])
    grid, method = arguments["grid"], arguments["method"]
    boundary, seeds = scene(grid, arguments["channels"], arguments["seed"])
    boundary, seeds = boundary.to(device), seeds.to(device)

    def walk() -> torch.Tensor:
        size = grid * grid
        sources, targets = (torch.from_numpy(a).to(device) for a in pair_indices(grid, grid, arguments["radius"], "all"))
        affinity = boundary_affinity(boundary[None], arguments["radius"], "all")[0]
        dense = torch.eye(size, device=device)
        dense[sources, targets] = affinity
        dense[targets, sources] = affinity
        dense.pow_(arguments["beta"])
        dense /= dense.sum(dim=0, keepdim=True)
        scores = (seeds * (1 - boundary)).reshape(seeds.shape[0], -1)
        if method == "squaring":
            for _ in range(arguments["exp_times"]):
                dense = dense @ dense
            return (scores @ dense).reshape(seeds.shape)
        walked = scores
        for _ in range(2 ** arguments["exp_times"]):
            walked = walked @ dense
        return walked.reshape(seeds.shape)

    return measured_walk(device, walk, grid, arguments["bg_threshold"])


def one_squaring_job(arguments: dict) -> dict:
    torch.set_num_threads(arguments["threads"])
    size = arguments["grid"] ** 2
    matrix = torch.rand(size, size)
    started = time.perf_counter()
    matrix @ matrix
    return {"seconds": time.perf_counter() - started}


def in_fresh_process(job, arguments: dict) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(job, (arguments,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--radius", type=int, default=5)
    parser.add_argument("--channels", type=int, default=2, help="class maps walked (a VOC image has 1.5 classes on average)")
    parser.add_argument("--beta", type=float, default=10)
    parser.add_argument("--exp-times", type=int, default=8)
    parser.add_argument("--bg-threshold", type=float, default=0.25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dense-method", choices=("auto", "squaring", "products"), default="auto",
                        help="auto: squaring (the authors') on CUDA, products on a CPU")
    parser.add_argument("--time-one-squaring", action="store_true", help="on a CPU: time one N x N squaring (x exp_times = the authors' way)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write what was measured, for the docs (docs/results/benchmarks/bench_irn_walk.json) or the device check")
    args = parser.parse_args()
    method = args.dense_method if args.dense_method != "auto" else ("squaring" if args.device == "cuda" else "products")
    arguments = {"grid": args.grid, "radius": args.radius, "channels": args.channels, "beta": args.beta, "exp_times": args.exp_times,
                 "bg_threshold": args.bg_threshold, "device": args.device, "threads": args.threads, "seed": args.seed, "method": method}
    size = args.grid**2
    print(f"grid {args.grid}x{args.grid} ({size} nodes, a {4 * args.grid} px image at stride 4), radius {args.radius}, {args.channels} classes, "
          f"beta {args.beta}, 2^{args.exp_times} steps, {args.device}, {args.threads} threads")
    sparse = in_fresh_process(sparse_job, arguments)
    dense = in_fresh_process(dense_job, arguments)
    equal = bool(np.array_equal(sparse["mask"], dense["mask"]))
    agree = float((sparse["mask"] == dense["mask"]).mean())
    difference = float((sparse["walked"] - dense["walked"]).abs().max() / dense["walked"].abs().max())
    print(f"masks equal: {equal} ({100 * agree:.4f} % of {sparse['mask'].size} pixels agree); largest walked-score difference "
          f"{difference:.2e} of the largest score")
    print(f"sparse walk: {sparse['seconds']:.2f} s, peak RSS +{sparse['peak_rss_mb']:.0f} MiB"
          + (f", peak GPU {sparse['gpu_mb']:.0f} MiB" if sparse["gpu_mb"] is not None else ""))
    print(f"dense walk ({method}): {dense['seconds']:.2f} s, peak RSS +{dense['peak_rss_mb']:.0f} MiB"
          + (f", peak GPU {dense['gpu_mb']:.0f} MiB" if dense["gpu_mb"] is not None else ""))
    print(f"speed-up over dense {method}: {dense['seconds'] / sparse['seconds']:.1f}x (target >= 20x)")
    if args.time_one_squaring and method != "squaring":
        one = in_fresh_process(one_squaring_job, arguments)
        total = one["seconds"] * args.exp_times
        print(f"the authors' dense squaring here: one {size}^2 product took {one['seconds']:.1f} s, x {args.exp_times} = {total:.0f} s "
              f"(one measured, the rest extrapolated): {total / sparse['seconds']:.0f}x the sparse walk")
    if args.json:
        from mctformer.docs import write_benchmark_json

        write_benchmark_json(
            args.json, benchmark="bench_irn_walk", command=" ".join(["bench_irn_walk.py", *sys.argv[1:]]),
            measured={"masks equal": equal, "pixel agreement": agree, "largest relative difference": difference,
                      "sparse (s)": sparse["seconds"], f"dense {method} (s)": dense["seconds"], "sparse peak RSS +MiB": sparse["peak_rss_mb"],
                      "sparse peak GPU MiB": sparse["gpu_mb"], "dense peak GPU MiB": dense["gpu_mb"]},
            speedup=dense["seconds"] / sparse["seconds"], target=">= 20x", threads=args.threads, device=args.device,
        )
    if not equal:
        raise SystemExit("sparse and dense walks give different masks")


if __name__ == "__main__":
    main()
