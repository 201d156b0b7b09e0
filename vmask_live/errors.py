"""Every error vmask-live raises on purpose, under one base class.

The CLI turns a :class:`VmaskError` (and file-system errors) into a one-line ``error:`` message;
anything else is a bug and keeps its traceback. Messages follow one habit: what was expected,
what came, the likely cause and the fix.

Each class also derives from the builtin that callers would catch without knowing us
(``ValueError`` for bad values, ``ImportError`` for a missing extra), so existing
``except ValueError`` code keeps working.
"""

from __future__ import annotations

from gymnasium.error import DependencyNotInstalled

__all__ = [
    "VmaskError",
    "ConfigError",
    "ObservationError",
    "CheckpointError",
    "PairingError",
    "DatasetError",
    "BackendUnavailable",
    "NoDisplayError",
    "MissingExtraError",
    "UnsafeFileError",
    "TrainingDiverged",
]


class VmaskError(Exception):
    """Base class of every error vmask-live raises for a user's input, files or machine."""


class ConfigError(VmaskError, ValueError):
    """A job setting (batch size, steps, learning rate, ...) or option combination that cannot work."""


class ObservationError(VmaskError, ValueError):
    """An observation or observation space that is not the pixels a checkpoint expects
    (shape, layout, dtype, value range or finiteness)."""


class CheckpointError(VmaskError, ValueError):
    """A checkpoint that is missing, corrupt, truncated, of another kind or of an unknown architecture."""


class PairingError(VmaskError, ValueError):
    """An explainer used with an agent other than the one it was trained for."""


class DatasetError(VmaskError, ValueError):
    """A dataset folder that is missing, incomplete, locked, or made with other settings."""


class BackendUnavailable(VmaskError, RuntimeError):
    """An inference backend that cannot run on this machine (no GPU, missing package)."""


class NoDisplayError(VmaskError, RuntimeError):
    """The live window was asked for on a machine without a display."""


class MissingExtraError(VmaskError, DependencyNotInstalled):
    """An optional dependency is missing; the message names the exact ``pip install`` command."""


class UnsafeFileError(VmaskError, ValueError):
    """A file whose loading would execute code from it (a pickle) without an explicit opt-in."""


class TrainingDiverged(VmaskError, RuntimeError):
    """A training loss that became NaN or infinite: the weights are no longer usable."""
