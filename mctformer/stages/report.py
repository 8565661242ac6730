"""The stage of workflow/rules/report.smk: the run's summary.json and report.md (mctformer.report)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.layout import open_layout
from ..report import build_report


def report_stage(*, root: str, layout: str, classes: Sequence[str], **files_and_settings: Any) -> Any:
    """:func:`mctformer.report.build_report` on the dataset at ``root``; ``files_and_settings`` are its other arguments."""
    return build_report(layout=open_layout(root, layout, len(classes)), **files_and_settings)
