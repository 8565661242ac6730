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


def test_map_files_are_the_same_bytes_whatever_the_time(tmp_path, monkeypatch):
    """Equal arrays give equal map files at any time: numpy stamps every member of an .npz with zip's first date, not
    the write time, so the shards' gather (tests/test_shards.py) compares map files byte for byte."""
    import time
    import zipfile

    import numpy as np

    from mctformer.artifacts import load_map_file, save_map_file

    labels, maps = np.array([2, 5]), np.random.default_rng(0).random((2, 7, 9))
    save_map_file(tmp_path / "now.npz", labels, maps, dtype="float16")
    later = time.time() + 3 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(time, "localtime", lambda seconds=None: time.gmtime(later))
    save_map_file(tmp_path / "later.npz", labels, maps, dtype="float16")
    assert (tmp_path / "now.npz").read_bytes() == (tmp_path / "later.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "now.npz") as archive:
        assert [(m.filename, m.date_time) for m in archive.infolist()] == [("labels.npy", (1980, 1, 1, 0, 0, 0)),
                                                                          ("maps.npy", (1980, 1, 1, 0, 0, 0))]
    read_labels, read_maps = load_map_file(tmp_path / "now.npz")
    assert np.array_equal(read_labels, labels) and np.array_equal(read_maps, maps.astype(np.float16).astype(np.float32))
