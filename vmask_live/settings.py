"""Checking a job's settings: every bad one reported at once, in one format.

Each job (collect, train, train-agent, evaluate, play/record) checks its config before it loads
or writes anything, with one :class:`SettingChecks`; a bad run raises one
:class:`~vmask_live.errors.ConfigError` that lists every bad setting as
``name: expected ..., got ...`` (then the fix, where there is one)::

    Invalid train settings (2):
      batch_size: expected an integer >= 1, got -4
      lr: expected a finite number > 0, got 0.0
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from vmask_live.errors import ConfigError

__all__ = ["SettingChecks"]


class SettingChecks:
    """Collects every bad setting of a job config, so that one :class:`ConfigError` lists them all.

    Args:
        job: the job's name in the message ("Invalid <job> settings (n): ...").

    Example:
        >>> checks = SettingChecks("train")
        >>> checks.integer("batch_size", -4, minimum=1)
        >>> checks.number("lr", 0.0, low=0, low_open=True)
        >>> checks.raise_if_any()
        Traceback (most recent call last):
        ...
        vmask_live.errors.ConfigError: Invalid train settings (2):
          batch_size: expected an integer >= 1, got -4
          lr: expected a finite number > 0, got 0.0
    """

    def __init__(self, job: str) -> None:
        self.job = job
        self.problems: list[str] = []

    def add(self, name: str, expected: str, value: Any = None, hint: str = "", *, got: str | None = None) -> None:
        """Record that ``name`` should be ``expected`` but is ``value`` (``hint``: the fix).

        ``got`` replaces ``repr(value)`` where what was given is not one value (``"both ..."``).
        """
        shown = got if got is not None else repr(value)
        self.problems.append(f"{name}: expected {expected}, got {shown}" + (f"; {hint}" if hint else ""))

    def integer(self, name: str, value: Any, minimum: int, *, optional: bool = False, what: str = "") -> None:
        """An ``int`` (not a bool) ``>= minimum``; ``None`` too when ``optional``.

        ``what`` says what the number counts, in parentheses after the expectation.
        """
        if optional and value is None:
            return
        is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not is_int or value < minimum:
            expected = f"an integer >= {minimum}" + (" or None" if optional else "")
            self.add(name, expected + (f" ({what})" if what else ""), value)

    def number(
        self,
        name: str,
        value: Any,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        optional: bool = False,
        what: str = "",
    ) -> None:
        """A finite real number within the bounds (``*_open``: the bound itself is excluded)."""
        if optional and value is None:
            return
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if ok:
            return
        if low is not None and high is not None:
            expected = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            expected = f"a finite number {'>' if low_open else '>='} {low}"
        elif high is not None:
            expected = f"a finite number {'<' if high_open else '<='} {high}"
        else:
            expected = "a finite number"
        expected += " or None" if optional else ""
        self.add(name, expected + (f" ({what})" if what else ""), value)

    def choice(self, name: str, value: Any, options: tuple[str, ...] | list[str]) -> None:
        """One of the known names."""
        if value not in options:
            self.add(name, "one of " + ", ".join(repr(o) for o in options), value)

    def flag(self, name: str, value: Any) -> None:
        """A ``bool``."""
        if not isinstance(value, bool):
            self.add(name, "True or False", value)

    def text(self, name: str, value: Any, expected: str, *, allow_empty: bool = False) -> None:
        """A string (non-empty unless ``allow_empty``); ``expected`` says what it names."""
        if not isinstance(value, str) or not (value or allow_empty):
            self.add(name, expected, value)

    def device(self, name: str, value: Any) -> None:
        """``cpu``, ``auto``, ``cuda``/``cuda:N`` where CUDA is available, ``mps`` where MPS is."""
        import torch

        names = "'cpu', 'cuda', 'cuda:N' or 'auto'"
        if value in ("cpu", "auto"):
            return
        m = re.fullmatch(r"cuda(?::(\d+))?", value) if isinstance(value, str) else None
        if m:
            if not torch.cuda.is_available():
                self.add(
                    name,
                    "'cpu' or 'auto' (CUDA is not available on this machine: no NVIDIA GPU or driver, or a "
                    "CPU-only torch build)",
                    value,
                    "use --device cpu",
                )
            elif m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
                self.add(name, f"a CUDA device index below {torch.cuda.device_count()} (the GPUs found)", value)
            return
        if value == "mps":
            if not torch.backends.mps.is_available():
                self.add(
                    name, "'cpu' or 'auto' (Apple MPS is not available on this machine)", value, "use --device cpu"
                )
            return
        self.add(name, names, value)

    def raise_if_any(self) -> None:
        """Raise one :class:`ConfigError` listing every recorded problem."""
        if self.problems:
            listing = "\n  ".join(self.problems)
            raise ConfigError(f"Invalid {self.job} settings ({len(self.problems)}):\n  {listing}")
