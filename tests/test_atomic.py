"""Atomic writes: the target holds the old file or the new one, never a torn one or a leftover."""

from __future__ import annotations

import doctest

import pytest

from vmask_live import atomic
from vmask_live.atomic import atomic_path, atomic_write_text, temporary_name


def test_docstring_examples_run():
    res = doctest.testmod(atomic)
    assert res.attempted and not res.failed


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_text(path, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_temporary_names_are_hidden_and_keep_a_writers_suffix(tmp_path):
    assert temporary_name(tmp_path / "a.npy").name == ".a.npy.tmp"
    unique = temporary_name(tmp_path / "ppo.zip", suffix=".zip", unique=True).name
    assert unique.startswith(".ppo.zip.") and unique.endswith(".tmp.zip")


def test_checkpoint_still_exports_atomic_write_text():
    from vmask_live.checkpoint import atomic_write_text as reexported

    assert reexported is atomic_write_text
