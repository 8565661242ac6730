"""Numbers that write themselves: the generated regions of README.md and docs/*.md.

A page marks a region ``<!-- generated:NAME -->`` ... ``<!-- /generated -->``; :func:`render_pages` rewrites every
region from its source and leaves the rest of the page as it is:

- ``results`` (the README's table at a glance), ``seeds``, ``masks``, ``deeplab``: from the rendered run's
  ``summary.json`` (``docs/results/embedded-default/summary.json``, copied there from a run's folder by
  ``python -m mctformer docs render --run results/synthetic``), each table with the run's provenance line under it;
- ``configuration``: every key of ``workflow/schemas/config.schema.yaml`` with its description, type and range,
  and its default from ``config.yaml``;
- ``paper``: the paper's numbers as the package holds them;
- ``side-by-side``: V2 and MCTformer+ over the replicates (``docs/results/side-by-side/side_by_side.json``, copied
  there from a run's ``side_by_side/`` folder by ``python -m mctformer docs render --side-by-side
  results/synthetic/side_by_side``), with that run's provenance line;
- ``benchmarks``: one row per ``docs/results/benchmarks/<name>.json`` that a benchmark script wrote with
  ``--json`` (:func:`write_benchmark_json`), each with its provenance;
- ``scaling_plan``: benchmarks/plan_scale.py's predicted wall times with and without shards, from its JSON;
- ``switches``: the reference-vs-ours table of ``mctformer.compat.switches_markdown()`` (left as it is while the
  package has no registry).

``python -m mctformer docs check`` renders in memory and names each page whose committed text differs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from .paper import seed_miou
from .provenance import provenance_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RENDERED_RUN = os.path.join("docs", "results", "embedded-default")
SUMMARY = os.path.join(RENDERED_RUN, "summary.json")
BENCHMARKS = os.path.join("docs", "results", "benchmarks")
SIDE_BY_SIDE = os.path.join("docs", "results", "side-by-side", "side_by_side.json")
SIDE_BY_SIDE_FIGURE = os.path.join("docs", "results", "side-by-side", "side_by_side.png")
SCHEMA = os.path.join("workflow", "schemas", "config.schema.yaml")
CONFIG = "config.yaml"
PAGES = ("README.md", "docs")  # README.md and every docs/*.md (docs/experiments/ is the notebook: never rendered)
REGION = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.DOTALL)


def paper_numbers() -> dict[str, Any]:
    """The paper's PASCAL VOC 2012 numbers (%) the pages print, from mctformer.paper: its Table 5 seed rows by name,
    the pseudo masks, DeepLab on val and test."""
    from . import paper

    return {"numbers": {"seeds": {row: miou for row, miou in paper.SEEDS.values()}, "masks": paper.PSEUDO_MASKS,
                        "deeplab_val": paper.DEEPLAB_VAL, "deeplab_test": paper.DEEPLAB_TEST}}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _source_line(summary: Mapping[str, Any]) -> str:
    return (f"<sub>Rendered by `python -m mctformer docs render` from `{SUMMARY}`; "
            f"{provenance_line(summary.get('provenance'))}.</sub>")


def _seed_splits(summary: Mapping[str, Any]) -> list[str]:
    return [key for key, value in summary["seeds"].items() if isinstance(value, Mapping) and "miou" not in value]


def _variants(summary: Mapping[str, Any]) -> list[str]:
    return list(summary["seeds"][_seed_splits(summary)[0]])


def _deeplab_models(summary: Mapping[str, Any]) -> list[str]:
    return [key for key, value in summary.items() if isinstance(value, Mapping) and "miou_crf" in value]


def results_table(summary: Mapping[str, Any]) -> str:
    """The README's table: seeds per variant and split, the pseudo masks and their ablation, DeepLab; the paper's."""
    paper = paper_numbers()
    splits = _seed_splits(summary)
    lines = [f"| stage | ours ({' / '.join(splits)}) | paper (VOC) |", "|---|---|---|"]
    for variant in _variants(summary):
        ours = " / ".join(pct(summary["seeds"][split][variant]["miou"]) for split in splits)
        value = seed_miou(variant)
        lines.append(f"| seeds, `{variant}` | {ours} | {value if value is not None else '-'} |")
    masks = summary["masks"]
    method = masks.get("method", "psa")
    lines.append(f"| pseudo masks ({method.upper()}), {splits[0]} | {pct(masks['miou'])} | {paper['numbers']['masks']} |")
    for name, value in masks.get("ablation", {}).items():
        if name not in ("seeds", "random walk, learned affinity (PSA)"):  # the seeds row and the masks row above
            lines.append(f"| ablation: {name}, {splits[0]} | {pct(value)} | - |")
    for model in _deeplab_models(summary):
        crf_paper = paper["numbers"]["deeplab_val"] if model == "deeplab" else "-"
        what = {"deeplab": "DeepLab on pseudo masks", "deeplab_gt": "DeepLab on ground truth (upper bound)"}.get(model, f"`{model}`")
        split = summary[model].get("split", "val")
        lines.append(f"| {what}, {split}, no CRF / + CRF | {pct(summary[model]['miou'])} / {pct(summary[model]['miou_crf'])} | - / {crf_paper} |")
    return "\n".join(lines + ["", _source_line(summary)]) + "\n"


def seeds_table(summary: Mapping[str, Any]) -> str:
    """Every seed variant on every split: mIoU at the best threshold, the threshold, the authors' FP / FN."""
    lines = ["| split | variant | mIoU | threshold | FP / FN (authors') | mean precision / recall | paper (VOC train) |",
             "|---|---|---|---|---|---|---|"]
    for split in _seed_splits(summary):
        for variant, best in summary["seeds"][split].items():
            value = seed_miou(variant)
            lines.append(f"| {split} | `{variant}` | {pct(best['miou'])} | {best['threshold']:.2f} | "
                         f"{pct(best.get('fp_reference'))} / {pct(best.get('fn_reference'))} | "
                         f"{pct(best.get('mean_precision'))} / {pct(best.get('mean_recall'))} | {value if value is not None else '-'} |")
    return "\n".join(lines + ["", _source_line(summary)]) + "\n"


def masks_table(summary: Mapping[str, Any]) -> str:
    """The pseudo masks per split, the refinement ablation, and the confident labels they were trained from."""
    masks = summary["masks"]
    lines = ["| pseudo masks | mIoU | FP / FN (authors') | mean precision / recall |", "|---|---|---|---|"]
    for split, scores in masks.items():
        if isinstance(scores, Mapping) and "miou" in scores:
            lines.append(f"| {masks.get('method', 'psa').upper()}, {split} | {pct(scores['miou'])} | {pct(scores.get('fp_reference'))} / "
                         f"{pct(scores.get('fn_reference'))} | {pct(scores.get('mean_precision'))} / {pct(scores.get('mean_recall'))} |")
    for name, value in masks.get("ablation", {}).items():
        lines.append(f"| ablation: {name} | {pct(value)} | | |")
    stats = summary.get("psa_labels") or summary.get("irn_labels")
    if stats:
        lines += ["", "| confident labels | % |", "|---|---|"]
        for key in ("foreground_fraction", "background_fraction", "ignored_fraction", "precision_vs_gt", "foreground_precision",
                    "background_precision", "objects_labelled_background"):
            if key in stats:
                lines.append(f"| {key.replace('_', ' ')} | {pct(stats[key])} |")
    return "\n".join(lines + ["", _source_line(summary)]) + "\n"


def deeplab_table(summary: Mapping[str, Any]) -> str:
    """Each DeepLab model without and with the CRF, with the authors' FP / FN."""
    paper = paper_numbers()
    lines = ["| model | split | no CRF | + CRF | FP / FN (authors', + CRF) | paper (VOC val, + CRF) |", "|---|---|---|---|---|---|"]
    for model in _deeplab_models(summary):
        crf = summary[model].get("pred_crf", {})
        value = paper["numbers"]["deeplab_val"] if model == "deeplab" else "-"
        lines.append(f"| `{model}` | {summary[model].get('split', '-')} | {pct(summary[model]['miou'])} | {pct(summary[model]['miou_crf'])} | "
                     f"{pct(crf.get('fp_reference'))} / {pct(crf.get('fn_reference'))} | {value} |")
    return "\n".join(lines + ["", _source_line(summary)]) + "\n"


def paper_table() -> str:
    paper = paper_numbers()["numbers"]
    lines = ["| stage | paper (PASCAL VOC 2012, mIoU %) |", "|---|---|"]
    lines += [f"| seeds (train): {name} | {value} |" for name, value in paper["seeds"].items()]
    lines += [f"| pseudo masks (train) | {paper['masks']} |", f"| DeepLab, val (+ CRF) | {paper['deeplab_val']} |",
              f"| DeepLab, test (+ CRF) | {paper['deeplab_test']} |"]
    from . import paper as papers

    lines += ["", f"{papers.PLUS_SOURCE}: DeepLab on VOC val {papers.PLUS_DEEPLAB_VAL}, on COCO val "
              f"{papers.PLUS_DEEPLAB_VAL_COCO} (mIoU %, + CRF); a {papers.PLUS_PSEUDO_MASK_AMBIGUOUS} \"pseudo-mask\" VOC number is cited "
              "without saying whether seeds or masks."]
    return "\n".join(lines) + "\n"


def draw_side_by_side_figure(repo: str = REPO) -> str:
    """The side-by-side figure (plots.paired_models_figure) drawn from the rendered run's table, beside it; its path."""
    from .artifacts import save_figure
    from .plots import paired_models_figure
    from .side_by_side import column_titles

    with open(os.path.join(repo, SIDE_BY_SIDE)) as handle:
        table = json.load(handle)
    path = os.path.join(repo, SIDE_BY_SIDE_FIGURE)
    save_figure(path, paired_models_figure(table, column_titles(table)))
    return path


def side_by_side_region(repo: str = REPO) -> str | None:
    """The side-by-side table (mctformer.side_by_side) of the rendered run, with its provenance; None (the region left
    as it is) where no run has been copied there."""
    from .side_by_side import side_by_side_markdown

    path = os.path.join(repo, SIDE_BY_SIDE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        table = json.load(handle)
    source = f"<sub>Rendered by `python -m mctformer docs render` from `{SIDE_BY_SIDE}`; {provenance_line(table.get('provenance'))}.</sub>"
    return "\n".join([*side_by_side_markdown(table), "", source]) + "\n"


def write_benchmark_json(path: str, *, benchmark: str, command: str, measured: Mapping[str, Any], speedup: float | None,
                         target: str | None, threads: int | None, device: str, plan: Mapping[str, Any] | None = None) -> None:
    """What a benchmark script measured, for the docs' ``benchmarks`` table: ``measured`` {what: value} in the order
    the table shows them, ``speedup`` the ratio the benchmark exists for, with the run's provenance (``device``: the
    torch device it ran on, so a GPU figure never reads as a CPU one); ``plan``: what benchmarks/plan_scale.py
    predicts from its measurement (the ``scaling_plan`` region)."""
    from .artifacts import write_json
    from .provenance import collect

    record = {"benchmark": benchmark, "command": command, "measured": dict(measured), "speedup": speedup,
              "target": target, "load_average": round(os.getloadavg()[0], 2),  # other work on the machine
              "provenance": collect(config=None, threads=threads, device=device)}
    if plan is not None:
        record["plan"] = dict(plan)
    write_json(path, record)


def scaling_plan_table(record: Mapping[str, Any] | None) -> str:
    """benchmarks/plan_scale.py's plan (docs/results/benchmarks/plan_scale.json): per dataset and per-image stage, the
    measured core-seconds per image and the predicted wall time without shards (one job: one node) and with one
    shard per node, marked as the prediction it is."""
    if record is None or "plan" not in record:
        return "Not measured yet: `nice -n 5 .venv/bin/python benchmarks/plan_scale.py --json docs/results/benchmarks/plan_scale.json`.\n"
    plan = record["plan"]
    clusters = [str(count) for count in plan["nodes"] if count > 1]
    lines = [
        f"Predicted wall minutes on nodes of {plan['cores']} cores, from per-image costs measured on one core of this machine "
        f"({plan['images_measured']} image(s) per stage; load average {record.get('load_average')}); a prediction, not a "
        "cluster measurement. Without shards a stage is one job on one node, however many nodes the cluster has; one "
        "shard per node divides it by the nodes.",
        "",
        "| dataset | stage | images | s / image (1 core) | 1 node | "
        + " | ".join(f"{count} nodes, no shards | {count} nodes, {count} shards" for count in clusters) + " |",
        "|---|---|---|---|---|" + "---|---|" * len(clusters),
    ]
    for row in plan["rows"]:
        unsharded = f"{row['unsharded_hours'] * 60:.1f}"
        cells = " | ".join(f"{unsharded} | {row['sharded_hours'][count] * 60:.1f}" for count in clusters)
        lines.append(f"| {row['dataset']} | {row['stage']} | {row['images']} | {row['seconds_per_image']:.3f} | {unsharded} | {cells} |")
    lines += ["", f"<sub>`{record['command']}`: {provenance_line(record.get('provenance'))}.</sub>"]
    return "\n".join(lines) + "\n"


def plan_record(repo: str = REPO) -> dict | None:
    path = os.path.join(repo, BENCHMARKS, "plan_scale.json")
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def number_cell(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def benchmarks_table(records: list[Mapping[str, Any]]) -> str:
    """One row per benchmark JSON (sorted by name), then each one's provenance."""
    if not records:
        return "No benchmark has written its JSON yet (`--json docs/results/benchmarks/<name>.json`).\n"
    lines = ["| benchmark | measured | speed-up | target | load average |", "|---|---|---|---|---|"]
    for record in records:
        measured = "; ".join(f"{name} {number_cell(value)}" for name, value in record["measured"].items())
        speedup = "-" if record.get("speedup") is None else f"{record['speedup']:.1f}x"
        load = record.get("load_average")
        lines.append(f"| `{record['command']}` | {measured} | {speedup} | {record.get('target') or '-'} | {'-' if load is None else load} |")
    lines.append("")
    lines += [f"<sub>{record['benchmark']}: {provenance_line(record.get('provenance'))}.</sub><br>" for record in records]
    return "\n".join(lines) + "\n"


def benchmark_records(repo: str = REPO) -> list[dict]:
    folder = os.path.join(repo, BENCHMARKS)
    if not os.path.isdir(folder):
        return []
    records = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as handle:
                records.append(json.load(handle))
    return records


def _schema_rows(node: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
    rows = []
    for key, child in (node.get("properties") or {}).items():
        rows.append((path + (key,), child))
        if isinstance(child, Mapping):
            rows += _schema_rows(child, path + (key,))
    return rows


def _type_cell(node: Mapping[str, Any], definitions: Mapping[str, Any]) -> str:
    if "$ref" in node:
        node = {**definitions.get(node["$ref"].rsplit("/", 1)[-1], {}), **node}
    alternatives = node.get("oneOf") or node.get("anyOf")
    if alternatives:
        return " or ".join(_type_cell(alternative, definitions) for alternative in alternatives)
    if "const" in node:
        return f"`{node['const']}`"
    kinds = node.get("type", "")
    text = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    if "enum" in node:
        text += ": " + " \\| ".join(f"`{value}`" for value in node["enum"])
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is not None or high is not None:
        left = "(" if "exclusiveMinimum" in node else "["
        right = ")" if "exclusiveMaximum" in node else "]"
        text += f", {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    items = node.get("items")
    if isinstance(items, Mapping) and "type" in items:
        text += f" of {_type_cell(items, definitions)}"
    return text


def _default(config: Any, path: tuple[str, ...]) -> str:
    node = config
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return "(unset)"
        node = node[key]
    if isinstance(node, Mapping):
        return "" if len(json.dumps(node)) > 60 else f"`{json.dumps(node)}`"
    return f"`{json.dumps(node)}`"


def configuration_table(schema: Mapping[str, Any], config: Mapping[str, Any], from_compat: frozenset[str] = frozenset()) -> str:
    """One table per top-level section: key, default (config.yaml as the workflow resolves it; ``from_compat``: the
    keys its compat section set), type and range, description (the schema's)."""
    definitions = schema.get("definitions") or schema.get("$defs") or {}
    out: list[str] = []
    top_level = []
    for path, node in _schema_rows(schema):
        if len(path) == 1 and "properties" not in node:
            top_level.append((path, node))
    sections = [(path, node) for path, node in _schema_rows(schema) if len(path) == 1 and "properties" in node]

    def row(path, node):
        description = " ".join(str(node.get("description", "")).split()).replace("|", "\\|")
        dotted = ".".join(path)
        default = _default(config, path) + (" (compat)" if dotted in from_compat else "")
        return f"| `{dotted}` | {default} | {_type_cell(node, definitions)} | {description} |"

    header = ["| key | default | type, range | meaning |", "|---|---|---|---|"]
    out += ["### Top level", "", *header, *(row(p, n) for p, n in top_level), ""]
    for path, node in sections:
        out += [f"### `{path[0]}`", ""]
        if node.get("description"):
            out += [" ".join(str(node["description"]).split()), ""]
        out += header
        out += [row(p, n) for p, n in _schema_rows(node, path)]
        out.append("")
    return "\n".join(out)


def switches_table() -> str:
    from .compat import switches_markdown

    return switches_markdown().rstrip("\n") + "\n"


RULE = re.compile(r"^[ \t]*(?:use rule \w+ as (?P<copy>\w+) with:|rule (?P<rule>\w+):)", re.MULTILINE)
STAGE_IMPORT = re.compile(r"^from mctformer\.(?P<module>[\w.]+) import (?P<names>.+)$", re.MULTILINE)


def rules_table(repo: str = REPO) -> str:
    """Every rule of workflow/rules/*.smk with its rule file, script and the stage function the script calls, read
    from the files themselves (a ``use rule`` copy runs the script of the rule it copies)."""
    rules_dir, scripts_dir = os.path.join(repo, "workflow", "rules"), os.path.join(repo, "workflow", "scripts")
    lines = ["| rule file | rule | script | stage |", "|---|---|---|---|"]
    for name in sorted(os.listdir(rules_dir)):
        with open(os.path.join(rules_dir, name)) as handle:
            text = handle.read()
        matches = list(RULE.finditer(text))
        for index, match in enumerate(matches):
            body = text[match.end(): matches[index + 1].start() if index + 1 < len(matches) else len(text)]
            script = re.search(r'"\.\./scripts/(\w+\.py)"', body)
            rule = match.group("rule") or match.group("copy")
            if not script:
                copied = "(the copied rule's)" if match.group("copy") else "-"
                lines.append(f"| {name} | `{rule}` | {copied} | - |")
                continue
            with open(os.path.join(scripts_dir, script.group(1))) as handle:
                source = handle.read()
            calls = [(found.group("module"), callee) for found in STAGE_IMPORT.finditer(source) if found.group("module").startswith("stages")
                     for callee in (n.strip() for n in found.group("names").split(",")) if re.search(rf"^\s*{callee}\(", source, re.MULTILINE)]
            stage = ", ".join(f"`{module}.{callee}`" for module, callee in calls) or "-"
            lines.append(f"| {name} | `{rule}` | {script.group(1)} | {stage} |")
    return "\n".join(lines) + "\n"


def renderers(repo: str = REPO, summary: Mapping[str, Any] | None = None) -> dict[str, Callable[[], str | None]]:
    """Region name -> a function giving its body (None: leave the region as it is)."""
    if summary is None:
        with open(os.path.join(repo, SUMMARY)) as handle:
            summary = json.load(handle)

    def configuration() -> str:
        with open(os.path.join(repo, SCHEMA)) as handle:
            schema = yaml.safe_load(handle)
        from .config import load_config

        config, set_by_compat = load_config(default_file=os.path.join(repo, CONFIG))
        return configuration_table(schema, config, frozenset(key for key, *_ in set_by_compat))

    return {
        "results": lambda: results_table(summary), "seeds": lambda: seeds_table(summary), "masks": lambda: masks_table(summary),
        "deeplab": lambda: deeplab_table(summary), "paper": paper_table,
        "benchmarks": lambda: benchmarks_table(benchmark_records(repo)), "configuration": configuration, "switches": switches_table,
        "rules": lambda: rules_table(repo), "scaling_plan": lambda: scaling_plan_table(plan_record(repo)),
        "side-by-side": lambda: side_by_side_region(repo),
    }


def render_text(text: str, bodies: Mapping[str, Callable[[], str | None]], *, where: str = "") -> str:
    """``text`` with every generated region's body replaced; an unknown region name is an error."""

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in bodies:
            raise KeyError(f"{where}: unknown generated region {name!r} (known: {', '.join(sorted(bodies))})")
        body = bodies[name]()
        if body is None:
            return match.group(0)
        return match.group(1) + body + match.group(4)

    return REGION.sub(replace, text)


def page_paths(repo: str = REPO) -> list[str]:
    paths = [os.path.join(repo, "README.md")]
    docs = os.path.join(repo, "docs")
    paths += sorted(os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md"))
    return paths


def render_pages(repo: str = REPO, summary: Mapping[str, Any] | None = None) -> dict[str, tuple[str, str]]:
    """{page: (committed text, rendered text)} for README.md and docs/*.md."""
    bodies = renderers(repo, summary)
    pages = {}
    for path in page_paths(repo):
        with open(path) as handle:
            text = handle.read()
        pages[path] = (text, render_text(text, bodies, where=os.path.relpath(path, repo)))
    return pages


def headline(summary: Mapping[str, Any], report: str) -> str:
    """What `make run` prints at its end: the README's table as plain text and where the report is."""
    lines = ["", "Headline numbers (mIoU %, ours vs the paper's VOC numbers):"]
    for line in results_table(summary).splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip().replace("`", "") for cell in line.strip("|").split("|")]
            lines.append(f"  {cells[0]:<60} {cells[1]:>13}   {cells[2]}")
    lines += [f"  {provenance_line(summary.get('provenance'))}", f"Report: {report}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mctformer docs")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="rewrite the generated regions of README.md and docs/*.md")
    render.add_argument("--run", help=f"a run's folder (results/<run_name>): its summary.json is copied to {SUMMARY} first")
    render.add_argument("--side-by-side", help=f"a side_by_side folder (results/<run_name>/side_by_side): its table is copied to "
                        f"{SIDE_BY_SIDE} first")
    commands.add_parser("check", help="exit 1 naming each page whose generated regions are out of date")
    head = commands.add_parser("headline", help="print a run's headline numbers and where its report is")
    head.add_argument("--run", help="a run's folder (default: results/<run_name of config.yaml>)")
    args = parser.parse_args(argv)
    if args.command == "headline":
        run = args.run
        if run is None:
            with open(CONFIG) as handle:
                run = os.path.join("results", yaml.safe_load(handle)["run_name"])
        with open(os.path.join(run, "summary.json")) as handle:
            print(headline(json.load(handle), os.path.join(run, "report.md")))
        return 0
    if args.command == "render" and args.run:
        os.makedirs(os.path.join(REPO, RENDERED_RUN), exist_ok=True)
        shutil.copyfile(os.path.join(args.run, "summary.json"), os.path.join(REPO, SUMMARY))
    if args.command == "render" and args.side_by_side:
        os.makedirs(os.path.dirname(os.path.join(REPO, SIDE_BY_SIDE)), exist_ok=True)
        shutil.copyfile(os.path.join(args.side_by_side, "side_by_side.json"), os.path.join(REPO, SIDE_BY_SIDE))
        draw_side_by_side_figure(REPO)
    stale = []
    for path, (before, after) in render_pages().items():
        if before != after:
            stale.append(os.path.relpath(path, REPO))
            if args.command == "render":
                with open(path, "w") as handle:
                    handle.write(after)
    if args.command == "check":
        for path in stale:
            print(f"{path}: out of date; run `python -m mctformer docs render`")
        return 1 if stale else 0
    print("rewrote " + (", ".join(stale) if stale else "nothing (up to date)"))
    return 0
