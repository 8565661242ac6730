"""The conda environment file the rules name (conda itself cannot be installed here, so it is checked as data)."""

import re
import tomllib

import yaml

from conftest import REPO

CONDA_NAMES = {"pillow": "pillow", "pyyaml": "pyyaml", "matplotlib": "matplotlib-base"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0].strip().lower()


def test_every_rule_names_the_env_a_log_and_a_benchmark():
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    env_path = re.search(r'^ENV = "([^"]+)"', common, flags=re.M).group(1)
    assert (REPO / "workflow" / "rules" / env_path).resolve() == (REPO / "envs" / "pipeline.yaml").resolve()
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        text = rule_file.read_text()
        rules = re.findall(r"^\s*rule (\w+):", text, flags=re.M)
        assert re.findall(r"conda:\s*\n\s*(\S+)", text) == ["ENV"] * len(rules), rule_file.name
        assert text.count("log:") == len(rules) and text.count("benchmark:") == len(rules), rule_file.name


def test_env_file_pins_what_the_package_needs():
    env = yaml.safe_load((REPO / "envs" / "pipeline.yaml").read_text())
    conda = {requirement_name(dep) for dep in env["dependencies"] if isinstance(dep, str)}
    pip = [dep for dep in env["dependencies"] if isinstance(dep, dict)][0]["pip"]
    pip_names = {requirement_name(dep) for dep in pip if not dep.startswith("-")}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in project:
        name = requirement_name(requirement)
        if name == "snakemake":  # the runner, not a rule dependency
            continue
        assert CONDA_NAMES.get(name, name) in conda or name in pip_names, f"{name} is missing from envs/pipeline.yaml"
    pins = {requirement_name(dep): dep for dep in pip}
    assert pins["torch"] == "torch==2.14.1" and pins["torchvision"] == "torchvision==0.29.1"
    assert "pydensecrf" not in pip_names  # the fork only: both install the same module
