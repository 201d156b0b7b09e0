"""Optional dependencies: import where used, fail with the exact install command."""

from __future__ import annotations

import importlib.util

from vmask_live.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str) -> None:
    """Raise :class:`MissingExtraError` (a gymnasium ``DependencyNotInstalled``) naming ``pip install "vmask-live[extra]"`` when missing."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f'{module} is not installed; run `pip install "vmask-live[{extra}]"`')
