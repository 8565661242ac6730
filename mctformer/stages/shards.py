"""The stage of workflow/rules/shards.smk: gather_<rule> joins a sharded per-image rule's parts into the artifacts the
unsharded rule writes (mctformer.shards)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def gather_stage(*, folders: Mapping[str, tuple[Sequence[str], str]], label_counts: Sequence[str], label_stats: str | None,
                 tarball: str | None, benchmarks: Sequence[str], benchmark: str) -> None:
    """``folders`` {name: (its shards' parts, the gathered folder)}; the shards' ``label_counts`` summed into
    ``label_stats`` (confident-label rules), the first folder packed into ``tarball`` (voc_submission), the shards'
    ``benchmarks`` summed into the rule's ``benchmark``."""
    from ..shards import gather_benchmarks, gather_folders, gather_label_stats

    for parts, folder in folders.values():
        files = gather_folders(parts, folder)
        print(f"{folder}: {files} files from {len(parts)} shards")
    if label_stats is not None:
        print(gather_label_stats(label_counts, label_stats))
    if tarball is not None:
        from ..segmentation import pack_submission

        pack_submission(next(iter(folders.values()))[1], tarball)
    gather_benchmarks(benchmarks, benchmark)
