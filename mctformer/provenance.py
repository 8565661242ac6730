"""Where a run's numbers come from: the ``provenance`` block of summary.json and its one-line form.

The block records the checkout's commit and whether its tracked files differed from it, a hash of the resolved
config, the versions of the packages that decide the numbers, the thread count, the device and the date. It
reads git and package metadata only; nothing here imports torch unless the device is asked for.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from typing import Any

PACKAGES = ("torch", "timm", "snakemake", "pydensecrf2")
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the resolved config as canonical JSON (sorted keys), so the same settings give the same hash
    whatever the order or the files they were merged from."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _git(args: list[str], cwd: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_state(checkout: str = CHECKOUT) -> dict[str, Any]:
    """{commit, dirty}: HEAD of the checkout and whether a tracked file differs from it (None, None outside git)."""
    commit = _git(["rev-parse", "HEAD"], checkout)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], checkout)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def resolved_device(device: str | None) -> str:
    """The device a config's ``device`` resolves to here: cpu, or cuda with the GPU's name."""
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    if device == "cuda":
        return "cuda (not available)"
    return "cpu"


def training_threads(config: Mapping[str, Any]) -> int | None:
    """The classifier's training threads: the config's resources for train_classifier (else resources.default),
    capped by the machine's CPUs, as Snakemake caps them with ``--cores all``; a smaller ``--cores`` caps them further,
    which a job cannot see."""
    resources = config.get("resources") or {}
    rule = (resources.get("rules") or {}).get("train_classifier") or {}
    threads = rule.get("threads", (resources.get("default") or {}).get("threads"))
    if threads is None:
        return None
    return min(int(threads), os.cpu_count() or int(threads))


def collect(*, config: Mapping[str, Any] | None, threads: int | None, device: str, checkout: str = CHECKOUT,
            now: _dt.datetime | None = None, weights: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """The provenance block: ``config`` is the resolved config (None: no hash), ``threads`` the thread count the
    run's jobs were given, ``device`` the config's device key (auto | cpu | cuda); ``weights``, when given, the
    pretrained weights the run started from (section -> {value, file, sha256}: a name resolves to a file in the
    Hugging Face cache, mctformer.models.weights.pretrained_provenance), recorded only when some section sets one."""
    stamp = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0)
    return {
        **({"weights": {section: dict(entry) for section, entry in weights.items()}} if weights else {}),
        **git_state(checkout),
        "config_sha256": None if config is None else config_hash(config),
        "versions": {"python": platform.python_version(), **package_versions()},
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "device": resolved_device(device),
        "date": stamp.isoformat(),
    }


def provenance_line(provenance: Mapping[str, Any] | None) -> str:
    """One line for a table's foot or a report's head: commit (+ dirty), config hash, versions, threads, device, date."""
    if not provenance:
        return "provenance: not recorded (a summary.json written before runs recorded it)"
    commit = provenance.get("commit")
    code = "commit unknown" if commit is None else f"commit {commit[:12]}{' (dirty tree)' if provenance.get('dirty') else ''}"
    config = provenance.get("config_sha256")
    versions = ", ".join(f"{name} {version}" for name, version in provenance.get("versions", {}).items() if version)
    weights = ", ".join(f"{section}.pretrained {entry['value']} (sha256 {entry['sha256'][:12]})"
                        for section, entry in (provenance.get("weights") or {}).items())
    parts = [code, f"config sha256 {config[:12]}" if config else "config not hashed", weights, versions,
             f"{provenance.get('threads')} threads", str(provenance.get("device")), str(provenance.get("date"))]
    return "provenance: " + "; ".join(part for part in parts if part)
