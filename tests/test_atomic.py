"""The one atomic writer: whole files or none, as readable as the umask allows."""

import os
import stat

import pytest

from cutbench.atomic import TEMPORARY_SUFFIX, write_atomically
from cutbench.datasets import compute_features, load_dataset


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_mode_open_would_give(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        write_atomically(tmp_path / "sub" / "file.bin", lambda stream: stream.write(b"abc"))
        with open(tmp_path / "plain.bin", "wb") as stream:
            stream.write(b"abc")
    finally:
        os.umask(previous)
    assert (tmp_path / "sub" / "file.bin").read_bytes() == b"abc"
    assert stat.S_IMODE((tmp_path / "sub" / "file.bin").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode) == mode


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def half_then_fail(stream):
        stream.write(b"new, half")
        raise RuntimeError("checksum mismatch")

    with pytest.raises(RuntimeError, match="checksum mismatch"):
        write_atomically(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["file.bin"]
    assert TEMPORARY_SUFFIX == ".part"


def test_feature_cache_entries_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        compute_features(load_dataset("two_moons", n=40), [{"name": "pca", "n_components": 2}], cache=tmp_path)
    finally:
        os.umask(previous)
    entries = list(tmp_path.iterdir())
    assert len(entries) == 2
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o644 for path in entries)
