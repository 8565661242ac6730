"""Two snakemake runs on one results folder: the second is refused with Snakemake's lock message, nothing is corrupted."""

import numpy as np
import pytest

from helpers.reliability import RUN, PausedRun, output_of, run_snakemake, write_config

pytestmark = pytest.mark.slow


def tree(folder):
    """Every file under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_run_on_the_same_results_is_refused(tmp_path):
    write_config(tmp_path)
    labels = f"{RUN}/labels/cls_labels.npy"
    release = tmp_path / "release"
    # the first run, held inside class_labels just before it writes its output
    first = PausedRun(tmp_path, [labels], "mctformer.data.labels", "save_class_labels", "cls_labels.npy", when="before", release=release)
    try:
        first.wait_paused()
        before = tree(tmp_path / "results")
        same = run_snakemake(tmp_path, labels)  # the same command
        downstream = run_snakemake(tmp_path, f"{RUN}/classifier/checkpoint.pt")  # another target that needs the same file
        for second in (same, downstream):
            assert second.returncode != 0
            assert "LockException" in output_of(second) and "Directory cannot be locked" in output_of(second)
        assert tree(tmp_path / "results") == before  # the refused runs touched nothing
        release.touch()
        assert first.wait() == 0, first.output()[-4000:]
    finally:
        first.close()
    stored = np.load(tmp_path / labels, allow_pickle=True).item()
    assert len(stored) == 40  # train_aug (32, train among them) + val (8)
    again = run_snakemake(tmp_path, labels, "-n")
    assert again.returncode == 0 and "Nothing to be done" in output_of(again)
