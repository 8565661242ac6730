"""An offline stand-in for `conda`: what `snakemake --use-conda` asks of it, and how conda resolves a pip section.

conda channels cannot be reached from the test machines, so tests/test_envs.py
puts this on PATH (see :func:`install`) and lets Snakemake do the rest for real:
copy the rule's env file to ``.snakemake/conda/<hash>.yaml`` and run
``conda env create --file <that copy> --prefix <.snakemake/conda/<hash>>``
(snakemake/deployment/conda.py, ``create_env``), then run each job as
``source <conda>/bin/activate <prefix>; <command>`` with PYTHONPATH removed
from the job's environment (snakemake/shell.py).

``env create`` here checks what conda would do with the pip section: conda
writes it to a requirements file and runs pip with the env file's folder as
working directory, so a local path such as ``-e ../`` resolves from the copy's
folder, ``.snakemake/conda/`` -> ``.snakemake/``, not from ``envs/``. Such an
entry that does not name a Python project there fails, as pip would. No
package is installed (offline): the environment is a bare ``python -m venv``
of this Python, without pip and without site-packages, so that it has neither
mctformer nor anything else of the project's venv.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import venv
from pathlib import Path

VERSION = "24.11.3"  # snakemake 9.27 needs >= 24.7.1 (MIN_CONDA_VER)
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def pip_section(env_file: str | os.PathLike) -> list[str]:
    import yaml

    env = yaml.safe_load(Path(env_file).read_text())
    sections = [dep["pip"] for dep in env.get("dependencies", []) if isinstance(dep, dict) and "pip" in dep]
    return [entry for section in sections for entry in section]


def local_path_of(entry: str) -> str | None:
    """The local path a pip requirement line names (``-e ../``, ``./pkg[extra]``, ``file:..``), or None."""
    text = entry.strip()
    for option in ("-e", "--editable"):
        if text.startswith((option + " ", option + "=")):
            text = text[len(option) + 1 :].strip()
            break
    if " @ " in text:  # PEP 508 direct reference: name @ url
        text = text.split(" @ ", 1)[1].strip()
    if text.startswith("file:"):
        return re.sub(r"^file:(//)?", "", text)
    if URL.match(text):
        return None
    if text.startswith((".", "/", "~")) or os.sep in text.split("[")[0]:
        return re.sub(r"\[.*\]$", "", text)
    return None


def pip_errors(env_file: str | os.PathLike) -> list[str]:
    """What pip, run by conda in the env file's folder, would refuse among the local paths of the pip section."""
    workdir = Path(env_file).resolve().parent
    errors = []
    for entry in pip_section(env_file):
        path = local_path_of(entry)
        if path is None:
            continue
        resolved = (workdir / os.path.expanduser(path)).resolve()
        if not ((resolved / "pyproject.toml").is_file() or (resolved / "setup.py").is_file()):
            errors.append(
                f"ERROR: {entry!r}: {resolved} does not appear to be a Python project "
                f"(resolved from {workdir}, the folder of {Path(env_file).name})"
            )
    return errors


def install(base: Path, python: str = sys.executable) -> Path:
    """A fake conda installation at ``base`` (bin/conda and bin/activate); returns its bin folder for PATH."""
    bin_dir = base / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    conda = bin_dir / "conda"
    conda.write_text(f'#!/bin/sh\nFAKE_CONDA_BASE="{base}" exec "{python}" "{Path(__file__).resolve()}" "$@"\n')
    conda.chmod(conda.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    # `source <base>/bin/activate <prefix>`, as Snakemake activates a job's env
    (bin_dir / "activate").write_text('export CONDA_PREFIX="$1"\nexport PATH="$1/bin:$PATH"\n')
    return bin_dir


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def main(argv: list[str]) -> int:
    base = os.environ["FAKE_CONDA_BASE"]
    with open(os.path.join(base, "calls.jsonl"), "a") as calls:
        calls.write(json.dumps(argv) + "\n")
    if argv == ["--version"]:
        print(f"conda {VERSION}")
        return 0
    if argv[:2] == ["info", "--json"]:
        print(json.dumps({"conda_prefix": base, "platform": "linux-64", "conda_version": VERSION, "envs_dirs": [os.path.join(base, "envs")]}))
        return 0
    if argv[:3] == ["config", "--get", "channel_priority"]:
        print(json.dumps({"get": {"channel_priority": "strict"}, "rc_path": None, "warnings": []}))
        return 0
    if argv[:2] == ["env", "create"]:
        env_file, prefix = _option(argv, "--file"), _option(argv, "--prefix")
        errors = pip_errors(env_file)
        if errors:
            print("Pip subprocess error:\n" + "\n".join(errors) + "\nfailed\n\nCondaEnvException: Pip failed", file=sys.stderr)
            return 1
        venv.EnvBuilder(with_pip=False, system_site_packages=False, symlinks=True).create(prefix)
        with open(os.path.join(base, "created.jsonl"), "a") as created:
            created.write(json.dumps({"file": os.path.abspath(env_file), "content": Path(env_file).read_text(), "prefix": os.path.abspath(prefix)}) + "\n")
        return 0
    if argv[:1] == ["clean"]:  # --conda-cleanup-pkgs (default: tarballs): no cache here
        return 0
    print(f"fake conda: unsupported command {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
