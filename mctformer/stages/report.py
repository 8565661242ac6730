"""The stage of workflow/rules/report.smk: the run's summary.json and report.md (mctformer.report)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..data.layout import DatasetRef
from ..models.weights import pretrained_provenance
from ..provenance import collect, training_threads
from ..report import ReportFiles, ReportOutputs, build_report  # the rule script builds these


def report_stage(*, dataset: DatasetRef, config: Mapping[str, Any], files: ReportFiles, outputs: ReportOutputs, **settings: Any) -> Any:
    """:func:`mctformer.report.build_report` of ``files`` into ``outputs`` on the dataset, with the run's provenance
    (mctformer.provenance) from its resolved ``config`` (with the pretrained weights' resolved files and sha256, when
    any section sets one); ``settings`` are build_report's report.smk params."""
    weights = pretrained_provenance(config)
    provenance = collect(config=config, threads=training_threads(config), device=config["device"], weights=weights)
    return build_report(layout=dataset.open(), files=files, outputs=outputs, provenance=provenance, **settings)
