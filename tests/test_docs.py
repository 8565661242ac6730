"""The documentation: the README stays a short front page, the generated tables are up to date with the files they
come from (every number of a results table is one of the rendered run's or the paper's), every schema key has a
description, no page outside the experiment notebook carries history, and no file cites a document that does not
exist."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mctformer import docs

REPO = Path(__file__).resolve().parents[1]
RESULT_REGIONS = ("results", "seeds", "masks", "deeplab")


def _pages() -> dict[Path, str]:
    return {Path(path): text for path, (text, _) in docs.render_pages(str(REPO)).items()}


def _regions(text: str) -> dict[str, str]:
    return {match.group("name"): match.group("body") for match in docs.REGION.finditer(text)}


def _table_rows(body: str) -> list[list[str]]:
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])] for line in body.splitlines() if line.startswith("|")]


def test_committed_pages_are_what_the_render_command_writes():
    stale = [os.path.relpath(path, REPO) for path, (before, after) in docs.render_pages(str(REPO)).items() if before != after]
    assert not stale, f"out of date (run `python -m mctformer docs render`): {stale}"


def test_the_readme_is_a_short_front_page_with_the_two_commands_first():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 220
    first_block = lines[lines.index("```") + 1:]
    assert first_block[:3] == ["make run", "make test", "```"], "the first code block is the two set-up commands"
    assert any("Run it on **VOC**" in line or "Run it on VOC" in line for line in lines[:40]), "VOC on the first screen"
    assert "<!-- generated:results -->" in "\n".join(lines)


def test_every_generated_table_parses():
    regions = 0
    for path, text in _pages().items():
        for name, body in _regions(text).items():
            rows = _table_rows(body)
            if not rows:
                continue
            regions += 1
            tables, current = [], []
            for line in body.splitlines():
                if line.startswith("|"):
                    current.append(line)
                elif current:
                    tables.append(current)
                    current = []
            tables += [current] if current else []
            for table in tables:
                widths = {len(row) for row in _table_rows("\n".join(table))}
                assert len(widths) == 1, f"{path.name}:{name}: rows of different widths {widths}"
                assert set(table[1].replace("|", "")) <= {"-", " "}, f"{path.name}:{name}: no header separator"
    assert regions >= 6


def _numbers(node) -> list[float]:
    if isinstance(node, dict):
        return [value for child in node.values() for value in _numbers(child)]
    if isinstance(node, list):
        return [value for child in node for value in _numbers(child)]
    return [float(node)] if isinstance(node, (int, float)) and not isinstance(node, bool) else []


def test_every_number_of_a_results_table_comes_from_the_rendered_run_or_the_paper():
    summary = json.loads((REPO / docs.SUMMARY).read_text())
    allowed = set()
    for value in _numbers(summary):
        allowed |= {f"{100 * value:.1f}", f"{value:.2f}"}
    paper = docs.paper_numbers()["numbers"]
    allowed |= {str(value) for value in _numbers(paper)}
    checked = 0
    for path, text in _pages().items():
        for name, body in _regions(text).items():
            if name not in RESULT_REGIONS:
                continue
            assert "provenance:" in body, f"{path.name}:{name}: no provenance line under the table"
            for row in _table_rows(body)[2:]:
                for cell in row[1:]:
                    for number in re.findall(r"\d+(?:\.\d+)?", cell):
                        checked += 1
                        assert number in allowed, f"{path.name}:{name}: {number} in {row} is not from {docs.SUMMARY}"
    assert checked > 40


def test_every_schema_key_has_a_description_and_a_row_on_the_configuration_page():
    schema = yaml.safe_load((REPO / docs.SCHEMA).read_text())
    page = (REPO / "docs" / "configuration.md").read_text()
    keys = docs._schema_rows(schema)
    assert len(keys) > 200
    for path, node in keys:
        assert node.get("description"), f"{'.'.join(path)} has no description"
        top_section = len(path) == 1 and "properties" in node
        assert (f"### `{path[0]}`" if top_section else f"| `{'.'.join(path)}` |") in page, f"{'.'.join(path)} not on the page"


def _repo_commits() -> set[str]:
    result = subprocess.run(["git", "rev-list", "--all"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    return set(result.stdout.split())


def test_no_history_outside_the_notebook_and_the_changelog():
    commits = _repo_commits()
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        # the provenance lines under generated tables name the commit they were measured at, as they should
        text = "\n".join(line for line in page.read_text().splitlines() if "provenance:" not in line)
        for token in re.findall(r"\b[0-9a-f]{7,40}\b", text):
            assert not any(commit.startswith(token) for commit in commits), f"{page.name} names commit {token}"
        assert "previous recipe" not in text, f"{page.name} speaks of a previous recipe"


def _tracked_text_files() -> list[Path]:
    result = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    names = result.stdout.split() if result.returncode == 0 else []
    suffixes = {".md", ".py", ".smk", ".yaml", ".yml", ".rst", ".toml", ".cfg"}
    return [REPO / name for name in names
            if (Path(name).suffix in suffixes or Path(name).name in ("Snakefile", "Makefile"))
            and not name.startswith("tests/fixtures/reference/") and (REPO / name).is_file()]


def test_no_file_cites_a_document_that_does_not_exist():
    missing = []
    for path in _tracked_text_files():
        text = path.read_text(errors="replace")
        for cited in re.findall(r"(?<![\w/.-])((?:docs/[\w./-]+\.md)|DESIGN\.md|CHANGELOG\.md|README\.md)", text):
            if not (REPO / cited).exists():
                missing.append(f"{path.relative_to(REPO)} cites {cited}")
        if path.suffix == ".md":
            for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
                if "://" not in link and not (path.parent / link).exists():
                    missing.append(f"{path.relative_to(REPO)} links {link}")
    assert not missing, missing


def test_the_report_description_prints_the_papers_numbers_as_the_package_holds_them():
    text = (REPO / "workflow" / "report" / "workflow.rst").read_text()
    assert 'report: "workflow/report/workflow.rst"' in (REPO / "Snakefile").read_text()
    printed = {float(number) for number in re.findall(r"^\S.*?\s(\d+\.\d)\s*$", text, re.MULTILINE)}
    assert printed == set(_numbers(docs.paper_numbers()["numbers"]))


def test_every_number_of_the_benchmark_table_comes_from_a_benchmarks_json():
    records = docs.benchmark_records(str(REPO))
    allowed = set()
    for record in records:
        for value in _numbers({key: value for key, value in record.items() if key != "provenance"}):
            allowed |= {docs.number_cell(value), f"{value:.1f}", str(value)}
        allowed |= set(re.findall(r"\d+(?:\.\d+)?", record["command"] + (record.get("target") or "")))
    body = _regions((REPO / "docs" / "development.md").read_text())["benchmarks"]
    for row in _table_rows(body)[2:]:
        for cell in row[1:]:
            for number in re.findall(r"\d+(?:\.\d+)?", re.sub(r"\([a-zA-Z]+\)", "", cell)):
                assert number in allowed, f"benchmarks: {number} in {row} is not from {docs.BENCHMARKS}"
    assert body.count("provenance:") == len(records)
