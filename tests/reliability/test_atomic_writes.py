"""What a killed job's atomic write leaves behind is cleared by the next write of the same output.

(A failed write leaving the previous output whole and no temporary: tests/test_io.py.)
"""

from mctformer.artifacts import atomic_directory


def test_a_killed_jobs_temporary_folder_goes_when_the_output_is_written_again(tmp_path):
    # what SIGKILL leaves: a half-filled temporary beside the (absent) output; and another output's temporary
    stale = tmp_path / ".masks.k1ll3d_x.tmp"
    stale.mkdir()
    (stale / "a.png").write_text("half")
    other = tmp_path / ".masks_gt.abcd1234.tmp"
    other.mkdir()
    with atomic_directory(tmp_path / "masks") as tmp:
        (tmp / "a.png").write_text("whole")
    assert not stale.exists() and other.exists()  # only this output's leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == [".masks_gt.abcd1234.tmp", "masks"]
    assert (tmp_path / "masks" / "a.png").read_text() == "whole"
