"""The conda environment files the rules name (conda itself cannot be installed here, so they are checked as data)."""

import ast
import re
import tomllib

import yaml

from conftest import REPO

CONDA_NAMES = {"pillow": "pillow", "pyyaml": "pyyaml", "matplotlib": "matplotlib-base"}
RULES = REPO / "workflow" / "rules"
# The stages that run a dense CRF, and so need envs/crf.yaml.
CRF_RULES = {"psa_labels", "psa_ablation", "infer_deeplab", "voc_submission"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].strip().lower()


def env_paths() -> dict[str, str]:
    """ENV variable name in common.smk -> env file path relative to the rule files."""
    return dict(re.findall(r'^(ENV\w*) = "([^"]+)"', (RULES / "common.smk").read_text(), flags=re.M))


def rule_envs() -> dict[str, str]:
    """rule name -> the ENV variable its conda: directive names."""
    envs = {}
    for rule_file in RULES.glob("*.smk"):
        text = rule_file.read_text()
        blocks = re.split(r"^\s*rule (\w+):", text, flags=re.M)[1:]
        for name, body in zip(blocks[::2], blocks[1::2]):
            match = re.search(r"conda:\s*\n\s*(\S+)", body)
            envs[name] = match.group(1) if match else None
    return envs


def load_env(variable: str) -> tuple[set[str], dict[str, str]]:
    env = yaml.safe_load((RULES / env_paths()[variable]).read_text())
    conda = {requirement_name(dep) for dep in env["dependencies"] if isinstance(dep, str)}
    pip = [dep for dep in env["dependencies"] if isinstance(dep, dict)][0]["pip"]
    return conda, {requirement_name(dep): dep for dep in pip if not dep.startswith("-")}


def test_every_rule_names_an_existing_env_a_log_and_a_benchmark():
    paths = env_paths()
    assert set(paths) == {"ENV", "ENV_CRF"}
    for path in paths.values():
        assert (RULES / path).resolve().is_file(), path
    envs = rule_envs()
    assert envs and all(env in paths for env in envs.values()), envs
    assert {rule for rule, env in envs.items() if env == "ENV_CRF"} == CRF_RULES
    for rule_file in RULES.glob("*.smk"):
        text = rule_file.read_text()
        rules = re.findall(r"^\s*rule (\w+):", text, flags=re.M)
        assert text.count("log:") == len(rules) and text.count("benchmark:") == len(rules), rule_file.name


def test_env_files_pin_what_the_package_needs():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = [r for r in project["dependencies"] if requirement_name(r) != "snakemake"]  # the runner, not a rule dependency
    crf_extra = project["optional-dependencies"]["crf"]
    for variable, required in (("ENV", base), ("ENV_CRF", base + crf_extra)):
        conda, pip = load_env(variable)
        for requirement in required:
            name = requirement_name(requirement)
            assert CONDA_NAMES.get(name, name) in conda or name in pip, f"{name} is missing from {env_paths()[variable]}"
        assert pip["torch"] == "torch==2.14.1" and pip["torchvision"] == "torchvision==0.29.1"
        assert "pydensecrf" not in pip  # the fork only: both install the same module
    assert "pydensecrf2" not in load_env("ENV")[1]
    assert load_env("ENV_CRF")[1]["pydensecrf2"] == crf_extra[0]


def test_only_the_crf_module_imports_pydensecrf_and_only_crf_rules_reach_it():
    package = REPO / "mctformer"
    importers = [
        path.relative_to(REPO).as_posix() for path in package.rglob("*.py")
        if any(
            isinstance(node, (ast.Import, ast.ImportFrom))
            and any("pydensecrf" in (alias.name or "") for alias in node.names) | ("pydensecrf" in (getattr(node, "module", "") or ""))
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert importers == ["mctformer/crf.py"]
    # crf.py imports pydensecrf inside its functions, so importing it (as randomwalk does) works without the CRF env
    tree = ast.parse((package / "crf.py").read_text())
    assert not any(isinstance(node, (ast.Import, ast.ImportFrom)) and "pydensecrf" in ast.dump(node) for node in tree.body)


def test_every_third_party_import_of_the_package_is_a_declared_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    declared |= {requirement_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    module_of = {"pillow": "PIL", "pyyaml": "yaml", "pydensecrf2": "pydensecrf", "scikit-image": "skimage"}
    provided = {module_of.get(name, name).replace("-", "_") for name in declared}
    imported = set()
    for path in [*(REPO / "mctformer").rglob("*.py"), *(REPO / "workflow" / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    import sys

    third_party = {name for name in imported if name not in sys.stdlib_module_names and name not in {"mctformer", "snakemake"}}
    assert third_party <= provided, third_party - provided
