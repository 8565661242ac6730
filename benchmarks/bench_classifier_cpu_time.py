"""CPU seconds per classifier training step (process time, every thread counted) of several configs' classifiers,
interleaved block by block so that other load on a shared machine falls on each alike: the cost of one model against
another where wall times are not comparable (e.g. V2 against MCTformer+ at the embedded sizes, for the `make run`
budget). Random weights and inputs at each config's input size and batch size; AdamW as the trainer; 2 threads.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_classifier_cpu_time.py config.yaml workflow/configs/synthetic_plus.yaml

(OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep rather than spin, so the process time is the work done.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_train_step import network_step

from mctformer.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="config.yaml, or an overlay of it, per classifier")
    parser.add_argument("--blocks", type=int, default=6, help="rounds over the classifiers (the first one warms up)")
    parser.add_argument("--steps", type=int, default=4, help="steps of each classifier per round")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trained = {}
    for path in args.configs:
        config = load_config([] if path == "config.yaml" else [path])[0]
        torch.manual_seed(0)
        model, loss_of, _, _, what = network_step("classifier", config, None, None, torch.device("cpu"))
        trained[path] = (loss_of, torch.optim.AdamW(model.parameters(), lr=1e-4), what)
    cpu: dict[str, list[float]] = {path: [] for path in trained}
    for block in range(args.blocks):
        for path, (loss_of, optimizer, _) in trained.items():
            for _ in range(args.steps):
                started = time.process_time()
                loss = loss_of()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if block > 0:
                    cpu[path].append(time.process_time() - started)
    first = args.configs[0]
    for path, (_, _, what) in trained.items():
        median = statistics.median(cpu[path])
        print(f"{path} ({what}): CPU s/step median {median:.3f}, min {min(cpu[path]):.3f} (n={len(cpu[path])}); "
              f"median / {first}'s: {median / statistics.median(cpu[first]):.3f}")


if __name__ == "__main__":
    main()
