"""Optional dependencies: import where used, fail with the exact install command."""

from __future__ import annotations

import importlib.util

from gymnasium.error import DependencyNotInstalled

__all__ = ["require"]


def require(module: str, extra: str) -> None:
    """Raise ``DependencyNotInstalled`` naming ``pip install "vmask-live[extra]"`` when missing."""
    if importlib.util.find_spec(module) is None:
        raise DependencyNotInstalled(f'{module} is not installed; run `pip install "vmask-live[{extra}]"`')
