"""The stage of workflow/rules/side_by_side.smk: the models' chains side by side, as JSON, Markdown and a figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..artifacts import write_json, write_text
from ..provenance import collect, training_threads


def side_by_side_stage(
    *, files: Mapping[str, Sequence[Mapping[str, Any]]], seeds: Sequence[int], versions: Mapping[str, str], seed_variant: str,
    mask_split: str, deeplab_split: str, config: Mapping[str, Any], json_path: str, markdown_path: str, figure_path: str,
) -> dict:
    """mctformer.side_by_side's table of the models' replicates (``files`` by model, then replicate in seed order),
    with the run's provenance (mctformer.provenance) from its resolved ``config``; the figure: every seed's values,
    paired (plots.paired_models_figure)."""
    from ..artifacts import save_figure
    from ..plots import paired_models_figure
    from ..side_by_side import column_titles, side_by_side_markdown, side_by_side_table

    table = side_by_side_table(files, seeds=seeds, versions=versions, seed_variant=seed_variant, mask_split=mask_split,
                               deeplab_split=deeplab_split)
    table["provenance"] = collect(config=config, threads=training_threads(config), device=config["device"])
    lines = side_by_side_markdown(table)
    write_json(json_path, table)
    write_text(markdown_path, "\n".join(lines) + "\n")
    save_figure(figure_path, paired_models_figure(table, column_titles(table)))
    print("\n".join(lines))
    return table
