"""Atomic file writes: write a temporary file in the target's folder, then rename it into place.

Every file that a resume or a cache trusts (checkpoints, dataset shards and manifests, cached
evaluation results, run settings, exported artifacts) is written through this module, so an
interrupted job (Ctrl-C, ``kill``, a full disk) leaves either the old file or the new one, never a
torn one. The rename is atomic on POSIX and Windows when both names are on one file system, which
a temporary file in the same folder guarantees.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write_text(folder / "state.json", '{"step": 3}')
    >>> (folder / "state.json").read_text()
    '{"step": 3}'
    >>> with atomic_path(folder / "weights.bin") as tmp:
    ...     _ = tmp.write_bytes(b"abc")  # any writer that takes a path
    >>> sorted(p.name for p in folder.iterdir())
    ['state.json', 'weights.bin']
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "temporary_name"]


def temporary_name(path: str | os.PathLike, *, suffix: str = "", unique: bool = False) -> Path:
    """The temporary file :func:`atomic_path` writes before renaming it to ``path``.

    A hidden name next to ``path`` ending in ``.tmp`` (then ``suffix``): ``.NAME.tmp``, or
    ``.NAME.PID.tmp`` with ``unique``.
    """
    path = Path(path)
    pid = f".{os.getpid()}" if unique else ""
    return path.with_name(f".{path.name}{pid}.tmp{suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "", unique: bool = False) -> Iterator[Path]:
    """A temporary path to write to; when the block ends normally it is renamed to ``path``.

    If the block raises (a ``KeyboardInterrupt`` included), the temporary file is deleted and
    ``path`` is left as it was.

    Args:
        path: the file to write.
        suffix: appended to the temporary name, for writers that add their own extension unless
            the name already ends in it (SB3's ``model.save`` and ``.zip``, ``np.save`` and ``.npy``).
        unique: put the process id in the temporary name, so that two processes writing the same
            file (filling one cache entry) never write into each other's temporary file.
    """
    path = Path(path)
    tmp = temporary_name(path, suffix=suffix, unique=unique)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
