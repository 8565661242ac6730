"""Shards: a per-image stage's images split into N deterministic parts, run as N independent jobs, and gathered
into exactly the artifact the unsharded stage writes (config ``resources.rules.<rule>.shards``; docs/scaling.md).

The split is by the stage's own batches: the unsharded run's batch list (:func:`~.data.layout.batches_of_equal_size`
of the stage's id list and batch size), shard k of N taking batches k, k + N, k + 2N, ... So every image goes through
the network in exactly the batch it would unsharded (a batch's numerics may depend on what else is in it), each shard
gets a fair mix of the list's image sizes and positions (contiguous blocks would give one shard all of one size), and
the split depends on the id list, the image sizes and N alone. The CRF stages, per image, have batches of one:
shard k takes ids[k - 1::N].

Gathering merges the shards' part folders file by file (hard links where the file system allows, else copies: the
bytes are the parts' own) into a temporary folder renamed into place (artifacts.atomic_directory), and sums the
confident-label stages' pixel counts, integers, before turning them into label_stats.json as the unsharded stage
does, so the gathered artifact equals the unsharded one.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .artifacts import atomic_directory, atomic_path, read_json, write_json
from .run_layout import SHARD_NUMBER

SHARD_NAME = re.compile(rf"(?P<index>{SHARD_NUMBER})-of-(?P<count>{SHARD_NUMBER})")
# What Snakemake itself writes into a directory() output; never part of an artifact.
SNAKEMAKE_MARKERS = (".snakemake_timestamp",)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 1) of ``count``; ``Shard(1, 1)`` is the whole stage."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index} of {self.count}: the index must lie in 1..{self.count}")

    @classmethod
    def parse(cls, name: str | None) -> Shard:
        """The shard a ``{shard}`` wildcard ("2-of-3") names; None (a rule without shards): the whole stage."""
        if name is None:
            return WHOLE
        match = SHARD_NAME.fullmatch(name)
        if not match:
            raise ValueError(f"shard {name!r}: expected <k>-of-<N>, e.g. 2-of-3")
        return cls(int(match["index"]), int(match["count"]))

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"

    @property
    def whole(self) -> bool:
        return self.count == 1

    def select(self, layout, ids: Sequence[str], batch_size: int | None, stage: str) -> list[str]:
        """This shard's ids of the stage's ``ids``: its share of the unsharded run's batches (module docstring);
        ``batch_size`` None: one image at a time. ``ids`` unchanged for the whole stage. A shard left without images
        (more shards than batches) is refused, naming the stage and how many shards it can have."""
        if self.whole:
            return list(ids)
        if batch_size is None:
            batches = [[image_id] for image_id in ids]
        else:
            from .data.layout import batches_of_equal_size

            batches = batches_of_equal_size(layout, ids, batch_size)
        if len(batches) < self.count:
            raise ValueError(
                f"resources.rules.{stage}.shards = {self.count}: {stage}'s {len(ids)} images make {len(batches)} "
                f"batch(es) of {batch_size or 1}, so shard {self.name} would have none; use at most {len(batches)} shards"
            )
        return [image_id for batch in batches[self.index - 1 :: self.count] for image_id in batch]


WHOLE = Shard(1, 1)


def _part_files(part: Path) -> list[Path]:
    if not part.is_dir():
        raise FileNotFoundError(f"shard part {part} is missing or not a folder")
    return sorted(
        path.relative_to(part) for path in part.rglob("*") if path.is_file() and path.name not in SNAKEMAKE_MARKERS
    )


def gather_folders(parts: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> int:
    """The files of every part folder (sub-folders kept) in one new ``out_dir``, written atomically; the number of
    files. A file name in two parts is refused (the shards' images are disjoint), naming both."""
    owner: dict[Path, Path] = {}
    for part in map(Path, parts):
        for relative in _part_files(part):
            if relative in owner:
                raise ValueError(f"{relative} is in two shard parts, {owner[relative]} and {part}")
            owner[relative] = part
    with atomic_directory(out_dir) as tmp:
        for relative, part in sorted(owner.items()):
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(part / relative, target)  # same bytes, no copy; the parts are temporary
            except OSError:
                shutil.copy2(part / relative, target)
    return len(owner)


def write_label_counts(path: str | os.PathLike, totals: Mapping[str, int], images: int, seconds: float) -> None:
    """A confident-label shard's part of label_stats.json: its summed pixel counts (integers), images and time."""
    write_json(path, {"totals": dict(totals), "images": images, "seconds": seconds})


def gather_label_stats(parts: Sequence[str | os.PathLike], stats_path: str | os.PathLike) -> dict:
    """label_stats.json of a sharded confident-label stage: the shards' counts summed, then
    :func:`~.psa.drivers.confident_label_stats` as the unsharded stage computes it; ``seconds`` is the shards'
    summed time (the stage's compute, not its wall time)."""
    from .psa.drivers import confident_label_stats

    totals: dict[str, int] = {}
    images, seconds = 0, 0.0
    for part in parts:
        counts = read_json(part)
        for key, value in counts["totals"].items():
            totals[key] = totals.get(key, 0) + int(value)
        images += int(counts["images"])
        seconds += float(counts["seconds"])
    stats = confident_label_stats(totals, images)
    stats["seconds"] = seconds
    write_json(stats_path, stats)
    return stats


def gather_benchmarks(parts: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> None:
    """One Snakemake benchmark row for a sharded stage (what the report's stage-time table reads): the shards' summed
    seconds, CPU time and I/O (the stage's cost in job-seconds; its wall time depends on how many ran at once), their
    largest memory figures, and their load weighted by their seconds."""
    import pandas as pd

    rows = pd.concat([pd.read_csv(part, sep="\t").iloc[[-1]] for part in parts], ignore_index=True)
    columns = list(rows.columns)
    # a figure Snakemake could not read for a short job is "NA" or "-": left out of the sums and maxima
    rows = rows.drop(columns="h:m:s", errors="ignore").apply(pd.to_numeric, errors="coerce")
    seconds = float(rows["s"].sum())
    row = {column: float(rows[column].max()) for column in rows.columns if column.startswith("max_")}
    row.update({column: float(rows[column].sum()) for column in ("io_in", "io_out", "cpu_time") if column in rows})
    if "mean_load" in rows:
        row["mean_load"] = round(float((rows["mean_load"] * rows["s"]).sum() / seconds), 2) if seconds else 0.0
    hours, rest = divmod(int(seconds), 3600)
    table = pd.DataFrame([{"s": round(seconds, 4), "h:m:s": f"{hours}:{rest // 60:02d}:{rest % 60:02d}", **row}])
    with atomic_path(out_path) as tmp:
        table[[column for column in columns if column in table]].to_csv(tmp, sep="\t", index=False)
