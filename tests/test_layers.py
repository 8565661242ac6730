"""The top of the layering that import-linter cannot see (workflow/scripts is no package): each rule script imports its
stage from the stage module named like its rule file (workflow/rules/<name>.smk -> mctformer.stages.<name>), and from
the core package nothing else but the log redirection; the rest of the layering is `lint-imports` (pyproject.toml)."""

from __future__ import annotations

import ast
import re

from helpers.workflow import REPO

ALLOWED_BESIDE_THE_STAGE = {"mctformer.logs"}


def scripts_by_rule_file() -> dict[str, str]:
    """{script name: the rule file (without .smk) whose rule runs it}."""
    owners: dict[str, str] = {}
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for script in re.findall(r'"\.\./scripts/(\w+)\.py"', rules.read_text()):
            assert owners.setdefault(script, rules.stem) == rules.stem, f"{script}.py is run by rules of two rule files"
    return owners


def test_every_rule_script_imports_its_stage_from_the_module_named_like_its_rule_file():
    owners = scripts_by_rule_file()
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert {path.stem for path in scripts} == set(owners), "a script no rule runs, or a rule's script that is missing"
    for path in scripts:
        imported = {node.module for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mctformer")}
        stage_module = f"mctformer.stages.{owners[path.stem]}"
        assert stage_module in imported, f"{path.name} (rules/{owners[path.stem]}.smk) does not import from {stage_module}"
        assert imported <= {stage_module} | ALLOWED_BESIDE_THE_STAGE, f"{path.name} imports {sorted(imported)}"
