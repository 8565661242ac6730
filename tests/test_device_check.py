"""benchmarks/device_check.sh parses, and its tiny-chain part runs on the CPU in dry mode (the whole dry run takes
about two minutes on two cores: `OUT=/tmp/dry bash benchmarks/device_check.sh --dry`, see docs/gpu.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_device_check_script_parses():
    subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "device_check.sh")], check=True)


def test_device_check_chain_runs_dry(tmp_path):
    out = tmp_path / "chain.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "device_check.py"), "chain", str(tmp_path / "work"), str(out), "--dry"],
                   check=True, cwd=REPO, timeout=300)
    results = json.loads(out.read_text())
    assert set(results) == {"extraction", "psa_walk", "irn_walk", "deeplab_inference"}
    assert not [key for key, value in results.items() if "error" in value]
    # on the CPU against the CPU, float32 agrees exactly; bfloat16 autocast is the only difference left
    assert results["extraction"]["maps_max_abs_diff"] == 0.0
    assert results["psa_walk"]["mask_agreement_float32_vs_cpu_float32"] == 1.0
    assert results["deeplab_inference"]["prediction_agreement_float32_vs_cpu_float32"] == 1.0
