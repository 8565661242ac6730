"""Atomic artifacts: a failed write leaves nothing that looks complete."""

import os
import stat

import pytest

from mctformer.artifacts import atomic_directory, atomic_path


def test_atomic_directory_appears_whole_with_ordinary_permissions(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "a"
    umask = os.umask(0)
    os.umask(umask)
    # not mkdtemp's private 0700: a prepared dataset is shared by the users of a cluster
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failure_inside_atomic_directory_keeps_the_old_output_and_no_temporary(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failure_inside_atomic_path_leaves_no_file(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
