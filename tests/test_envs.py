"""The conda environment files the rules name (conda itself cannot be installed here, so they are checked as data)."""

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import fake_conda
import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement

from helpers.workflow import REPO, tiny_config

CONDA_NAMES = {"pillow": "pillow", "pyyaml": "pyyaml", "matplotlib": "matplotlib-base"}
RULES = REPO / "workflow" / "rules"
# The stages that run a dense CRF, and so need envs/crf.yaml (the ablation_* ones reuse psa_labels / infer_deeplab).
CRF_RULES = {"psa_labels", "psa_ablation", "infer_deeplab", "voc_submission", "ir_labels", "ablation_psa_labels", "ablation_infer_deeplab"}
# a named rule, a `use rule`, or a rule made in a loop (`rule:` with a `name:` directive: shards.smk's gather rules)
RULE_HEADER = re.compile(r"^\s*(?:rule (\w+)|use rule (\w+) as (\w+) with|rule(?=:)):", flags=re.M)


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].strip().lower()


def env_paths() -> dict[str, str]:
    """ENV variable name in common.smk -> env file path relative to the rule files."""
    return dict(re.findall(r'^(ENV\w*) = "([^"]+)"', (RULES / "common.smk").read_text(), flags=re.M))


def rule_blocks() -> list[tuple[str, str | None, str]]:
    """(name, the rule it reuses or None, body) of every ``rule`` and ``use rule ... with:`` of the rule files."""
    blocks = []
    for rule_file in RULES.glob("*.smk"):
        text = rule_file.read_text()
        headers = list(RULE_HEADER.finditer(text))
        for header, following in zip(headers, [*headers[1:], None]):
            body = text[header.end() : following.start() if following else len(text)]
            blocks.append((header.group(1), None, body) if header.group(1) else (header.group(3), header.group(2), body))
    return blocks


def directive_of_rules(pattern: str) -> dict[str, str | None]:
    """rule name -> the first group of ``pattern`` in its body; a ``use rule`` that does not override it inherits it."""
    found = {}
    for name, _, body in rule_blocks():
        match = re.search(pattern, body)
        found[name] = match.group(1) if match else None
    for name, parent, _ in rule_blocks():
        if parent is not None and found[name] is None:
            found[name] = found[parent]
    return found


def rule_envs() -> dict[str, str]:
    """rule name -> the ENV variable its conda: directive names."""
    return directive_of_rules(r"conda:\s*\n\s*(\S+)")


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
        rules = RULE_HEADER.findall(text)  # a `use rule` names its own log and benchmark too
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
    # crf.py imports pydensecrf inside its functions, so importing it (as mctformer.psa.labels does) works without the CRF env
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


# --- --use-conda as Snakemake and conda really run it (conda itself is replaced by tests/fake_conda.py) ---

SCRIPTS = REPO / "workflow" / "scripts"


def test_env_files_list_only_third_party_packages():
    """Every pip line is a plain requirement of an index package: no -e, no local path, no URL, no option."""
    for path in env_paths().values():
        for entry in fake_conda.pip_section(RULES / path):
            assert fake_conda.local_path_of(entry) is None, f"{path}: {entry!r} is a path (conda resolves it from .snakemake/conda/)"
            try:
                requirement = Requirement(entry)
            except InvalidRequirement:
                pytest.fail(f"{path}: {entry!r} is not a package requirement")
            assert requirement.url is None and requirement.name.lower() != "mctformer-pipeline", (path, entry)


def snakemake_copy(env_file, workdir):
    """Where Snakemake 9.27 puts the file conda reads: <workdir>/.snakemake/conda/<hash>_.yaml (deployment/conda.py, create_env)."""
    digest = hashlib.md5(env_file.read_bytes(), usedforsecurity=False).hexdigest()
    copy = workdir / ".snakemake" / "conda" / f"{digest}_.yaml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(env_file, copy)
    return copy


def test_env_files_build_from_where_snakemake_copies_them(tmp_path):
    for path in env_paths().values():
        copy = snakemake_copy((RULES / path).resolve(), tmp_path)
        assert fake_conda.pip_errors(copy) == [], path


def test_a_project_path_in_a_pip_section_breaks_only_once_copied(tmp_path):
    """Why checking the files where they lie proved nothing: `-e ../` names the project from envs/, .snakemake/ from the copy."""
    old = (REPO / "envs" / "torch.yaml").read_text().replace("      - pycocotools>=2.0.7\n", "      - pycocotools>=2.0.7\n      - -e ../\n")
    assert "-e ../" in old
    in_place = REPO / "envs" / f".probe-{os.getpid()}.yaml"
    in_place.write_text(old)
    try:
        assert fake_conda.pip_errors(in_place) == []  # resolves to the project: a parse-only check passes
        copy = snakemake_copy(in_place, tmp_path)
    finally:
        in_place.unlink()
    [error] = fake_conda.pip_errors(copy)
    assert f"{tmp_path / '.snakemake'} does not appear to be a Python project" in error


JOB_SCRIPT = '''\
import json, os, subprocess, sys
import mctformer
child = subprocess.run([sys.executable, "-c", "import mctformer; print(mctformer.__file__)"], capture_output=True, text=True)
caller = subprocess.run([sys.executable, "-c", "import module_on_the_callers_pythonpath"], capture_output=True)
with open(snakemake.output[0], "w") as out:
    json.dump({"prefix": sys.prefix, "job": mctformer.__file__, "child": child.stdout.strip(), "child_error": child.stderr[-600:],
               "callers_pythonpath_reaches_the_child": caller.returncode == 0, "PYTHONPATH": os.environ.get("PYTHONPATH")}, out)
'''


@pytest.mark.parametrize("use_conda", [True, False], ids=["use-conda", "venv"])
def test_jobs_and_their_children_import_the_checkouts_package(use_conda, tmp_path):
    """The workflow's own common.smk, a `script:` job and a `shell:` job under each env file.

    Under --use-conda the job's Python is a bare venv (fake conda: no mctformer, no
    site-packages) and Snakemake deletes PYTHONPATH from the job's environment: what
    reaches the job is what the workflow exports. The child stands for torchrun's ranks
    (`python -m mctformer.training.distributed`), which snakemake's script preamble
    (sys.path.extend) does not reach.
    """
    callers = tmp_path / "callers"
    callers.mkdir()
    (callers / "module_on_the_callers_pythonpath.py").write_text("")
    (tmp_path / "job.py").write_text(JOB_SCRIPT)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    shell_job = "python -c 'import mctformer, sys; print(mctformer.__file__); print(sys.prefix)' > {output}"
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{tmp_path / "config.yaml"}"\n'
        f'include: "{RULES / "common.smk"}"\n\n'
        'rule all:\n    input: "script.json", "shell.txt"\n\n'
        f'rule via_script:\n    output: "script.json"\n    conda: "{REPO / "envs" / "torch.yaml"}"\n    script: "job.py"\n\n'
        f'rule via_shell:\n    output: "shell.txt"\n    conda: "{REPO / "envs" / "crf.yaml"}"\n    shell: "{shell_job}"\n'
    )
    conda_bin = fake_conda.install(tmp_path / "conda")
    env = {**os.environ, "PATH": f"{conda_bin}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(callers)}
    command = [sys.executable, "-m", "snakemake", "--cores", "1", "-s", str(tmp_path / "Snakefile"), "--directory", str(tmp_path)]
    result = subprocess.run(command + (["--use-conda"] if use_conda else []), capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((tmp_path / "script.json").read_text())
    shell_file, shell_prefix = (tmp_path / "shell.txt").read_text().split()
    package = str(REPO / "mctformer" / "__init__.py")
    assert report["job"] == report["child"] == shell_file == package, report
    if use_conda:
        created = [json.loads(line) for line in (tmp_path / "conda" / "created.jsonl").read_text().splitlines()]
        assert sorted(Path(c["file"]).parent for c in created) == [tmp_path / ".snakemake" / "conda"] * 2
        assert {c["content"] for c in created} == {(REPO / "envs" / n).read_text() for n in ("torch.yaml", "crf.yaml")}
        assert {report["prefix"], shell_prefix} == {c["prefix"] for c in created}  # the jobs ran in the two envs' Pythons
        assert not report["callers_pythonpath_reaches_the_child"] and report["PYTHONPATH"] == str(REPO)
    else:
        assert report["prefix"] == sys.prefix  # a script job runs in snakemake's Python; `python` in a shell job is PATH's
        assert report["callers_pythonpath_reaches_the_child"] and report["PYTHONPATH"] == f"{REPO}{os.pathsep}{callers}"


# --- each rule's env provides every third-party module its script can import ---

# import name -> distribution name, where they differ
DISTRIBUTION_OF = {
    "PIL": "pillow", "yaml": "pyyaml", "pydensecrf": "pydensecrf2", "sklearn": "scikit-learn", "skimage": "scikit-image",
    "cv2": "opencv-python", "attr": "attrs", "google.protobuf": "protobuf", "dateutil": "python-dateutil",
}


class ImportGraph:
    """What running a rule script can import: module-level imports of every module it loads (transitively) and
    the imports inside each function it can reach by name from there (calls, references, local imports).

    A function-level import counts only when that function is reachable: crf.py imports pydensecrf inside its
    functions, so a rule that loads crf.py without calling them needs no pydensecrf.
    """

    def __init__(self, package_dir):
        self.trees = {}
        for path in package_dir.rglob("*.py"):
            parts = path.relative_to(package_dir.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            self.trees[name] = (ast.parse(path.read_text()), parts[-1] == "__init__")
        self.defs = {name: {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
                     for name, (tree, _) in self.trees.items()}
        self.bindings = {name: self._bindings(name, self._module_level(tree)) for name, (tree, _) in self.trees.items()}

    @staticmethod
    def _module_level(tree):
        """Statements run at import: the body, into if/try/with blocks, not into def/class bodies."""
        pending = list(tree.body)
        while pending:
            node = pending.pop(0)
            yield node
            if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    pending.extend(getattr(node, field, []))
            elif isinstance(node, ast.ExceptHandler):
                pending.extend(node.body)

    def _targets(self, module, node):
        """(bound name, target) of an import: target ("module", m) or ("attr", m, name); third-party as ("external", top)."""
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top != "mctformer":
                    yield alias.asname or top, ("external", alias.name)
                    continue
                for depth in range(1, alias.name.count(".") + 2):  # importing a.b.c runs a, a.b, a.b.c
                    yield None, ("module", ".".join(alias.name.split(".")[:depth]))
                yield alias.asname or top, ("module", alias.name if alias.asname else top)
            return
        base = node.module or ""
        if node.level:
            package = module if self.trees[module][1] else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if node.module else package
        if base.split(".")[0] != "mctformer":
            for alias in node.names:
                yield alias.asname or alias.name, ("external", base)
            return
        for alias in node.names:
            child = f"{base}.{alias.name}"
            yield alias.asname or alias.name, ("module", child) if child in self.trees else ("attr", base, alias.name)

    def _bindings(self, module, statements):
        bound = {}
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((name, target) for name, target in self._targets(module, node) if name)
        return bound

    def reach(self, roots):
        """Third-party import names (dotted, as written) reachable from roots; roots as targets."""
        seen, external, pending = set(), set(), list(roots)
        while pending:
            target = pending.pop()
            if target in seen:
                continue
            seen.add(target)
            if target[0] == "external":
                external.add(target[1])
                continue
            module = target[1]
            if module not in self.trees:
                continue
            if target[0] == "module":
                parent = module.rpartition(".")[0]
                if parent:
                    pending.append(("module", parent))
                tree = self.trees[module][0]
                for node in self._module_level(tree):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):  # runs the imported modules, calls nothing
                        pending.extend(("module", t[1]) if t[0] == "attr" else t for _, t in self._targets(module, node))
                    elif isinstance(node, ast.ClassDef):
                        pending.append(("attr", module, node.name))  # a class body runs at import
                    elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        pending.extend(self._references(module, node, {}))
                    else:
                        pending.extend(self._references(module, node.args, {}))  # defaults
                        for decorator in node.decorator_list:
                            pending.extend(self._references(module, decorator, {}))
                continue
            _, module, name = target
            pending.append(("module", module))
            if name in self.bindings[module]:  # a re-export
                pending.append(self.bindings[module][name])
            node = self.defs[module].get(name)
            if node is not None:
                local = {}
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        for bound, imported in self._targets(module, inner):
                            pending.append(imported)
                            if bound:
                                local[bound] = imported
                pending.extend(self._references(module, node, local))
        return external

    def _references(self, module, node, local):
        """Targets named in node: functions/classes of the module, imported names, attributes of imported modules."""
        def resolve(name):
            if name in local:
                return local[name]
            if name in self.bindings[module]:
                return self.bindings[module][name]
            if name in self.defs[module]:
                return ("attr", module, name)
            return None

        for inner in ast.walk(node):
            if isinstance(inner, ast.Name):
                target = resolve(inner.id)
                if target:
                    yield target
            elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
                target = resolve(inner.value.id)
                if target and target[0] == "module":
                    child = f"{target[1]}.{inner.attr}"
                    yield ("module", child) if child in self.trees else ("attr", target[1], inner.attr)

    def script_imports(self, script):
        tree = ast.parse(script.read_text())
        roots, local = [], {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for bound, target in self._targets("mctformer", node):  # scripts use absolute imports only
                    roots.append(target)
                    if bound:
                        local[bound] = target
        for inner in ast.walk(tree):
            if isinstance(inner, ast.Name) and inner.id in local:
                roots.append(local[inner.id])
            elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name) and local.get(inner.value.id, ("",))[0] == "module":
                roots.append(("attr", local[inner.value.id][1], inner.attr))
        return self.reach(roots)


def third_party(imports):
    names = set()
    for name in imports:
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        names.add(DISTRIBUTION_OF.get(name, DISTRIBUTION_OF.get(top, top)).lower().replace("_", "-"))
    return names


def provides(variable):
    conda, pip = load_env(variable)
    return {name for name in pip} | conda | {name for name, conda_name in CONDA_NAMES.items() if conda_name in conda}


def rule_scripts():
    """rule name -> its script (the rules all run one)."""
    scripts = {}
    for name, script in directive_of_rules(r'script:\s*\n\s*"([^"]+)"').items():
        assert script, f"rule {name} runs no script: extend this test to its command"
        scripts[name] = (RULES / script).resolve()
    return scripts


def test_each_rules_env_provides_every_module_its_script_can_import():
    graph = ImportGraph(REPO / "mctformer")
    envs, scripts = rule_envs(), rule_scripts()
    assert set(scripts) == set(envs) and all(path.is_file() for path in scripts.values())
    needs = {rule: third_party(graph.script_imports(path)) for rule, path in scripts.items()}
    for rule, needed in needs.items():
        missing = needed - provides(envs[rule])
        assert not missing, f"rule {rule} ({scripts[rule].name}) can import {sorted(missing)}, which {env_paths()[envs[rule]]} lacks"
    # the analysis sees through the stages: every training rule reaches torch, exactly the CRF rules reach pydensecrf
    assert all("torch" in needs[rule] for rule in ("train_classifier", "extract_maps", "train_affinity", "random_walk", "train_deeplab"))
    assert {rule for rule, needed in needs.items() if "pydensecrf2" in needed} == CRF_RULES


def test_the_snakemake_process_needs_nothing_but_snakemake_to_load_the_workflow():
    """common.smk imports mctformer.config in the process that runs snakemake, whichever env that is: it may use
    snakemake and what snakemake itself requires (pyyaml, jsonschema), nothing else."""
    import importlib.metadata

    requires = {re.split(r"[ ;<>=!~\[]", requirement)[0].lower() for requirement in importlib.metadata.requires("snakemake")
                if "extra ==" not in requirement}
    assert {"pyyaml", "jsonschema"} <= requires
    graph = ImportGraph(REPO / "mctformer")
    needed = third_party(graph.script_imports(RULES / "common.smk")) - {"snakemake"} - requires
    assert not needed, needed


def test_every_third_party_module_of_the_package_is_in_the_crf_env():
    """Functions no rule reaches today (the CLI, helpers) still run in a rule's env one day: the larger env has them all."""
    imported = set()
    for path in [*(REPO / "mctformer").rglob("*.py"), *SCRIPTS.glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module)
    needed = third_party(name for name in imported if name.split(".")[0] != "mctformer")
    assert needed <= provides("ENV_CRF"), needed - provides("ENV_CRF")
