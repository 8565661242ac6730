"""Measured differences of our MCTformer+ from the authors' code on its golden data, worst per array group.

    .venv/bin/python benchmarks/parity_table_plus.py

Each row is one group of arrays of tests/fixtures/reference_plus/ (its README gives every array's tolerance):
the worst difference over the group's arrays in the unit of its tolerance (rel = max|d| / max|ref|, abs = max|d|,
exact = 0 when equal), beside that tolerance. The arrays come from the functions tests/test_reference_parity_plus.py
asserts on (benchmarks/golden_plus_cases.py; this script imports nothing from tests/).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import golden_plus_cases as golden

worst: dict[tuple[str, str], tuple[str, float, float, int]] = {}  # (case, group) -> (kind, tolerance, worst, arrays)


def record(case: str, group: str, key: str, ours, reference, kind_key: str | None = None) -> None:
    kind, limit = golden.tolerance(group, kind_key or key)
    measured = golden.difference(ours, golden.comparable_reference(kind_key or key, reference), kind)
    previous = worst.get((case, kind_key or key), (kind, limit, 0.0, 0))
    worst[(case, kind_key or key)] = (kind, limit, max(previous[2], measured), previous[3] + 1)


def main() -> None:
    model = golden.golden_plus_model()
    for name in golden.FORWARD_IMAGES:
        reference = np.load(golden.GOLDEN_PLUS / "forward" / f"{name}.npz")
        ours = golden.forward_arrays(model, name, reference["p2p_rows"], reference["p2p_layers_row_index"])
        for key, value in ours.items():
            record("b forward", "forward", key, value, reference[key])
    for variant in golden.TRAIN_VARIANTS:
        reference = np.load(golden.GOLDEN_PLUS / "train" / f"{variant}.npz")
        ours = golden.training_arrays(variant)
        case = "c train (drop-path)" if "drop_path_keep" in reference.files else "c train"
        for key in reference.files:
            if key != "drop_path_keep":
                record(case, "train", key, ours[key], reference[key])
    with tempfile.TemporaryDirectory() as folder:
        root = golden.golden_plus_root(Path(folder))
        for case in golden.MAP_CASES:
            reference = np.load(golden.GOLDEN_PLUS / "maps" / f"{case}.npz")
            ours = {**golden.extracted_maps(model, root, case, Path(folder) / case),
                    **(golden.pass_arrays(model, case) if golden.MAP_CASES[case][2] else {})}
            for key, value in ours.items():
                record("d maps", "maps", key, value, reference[key], golden.map_key_kind(key))
    print("| case | arrays | n | worst | tolerance | pass |\n|---|---|---|---|---|---|")
    for (case, key), (kind, limit, measured, count) in worst.items():
        shown = ("equal" if measured == 0 else "DIFFERENT") if kind == "exact" else f"{measured:.2g}"
        print(f"| {case} | {key} | {count} | {shown} | {kind} {limit:g} | {'yes' if measured <= limit else 'NO'} |")


if __name__ == "__main__":
    main()
