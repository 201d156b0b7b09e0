"""Result tables of the jobs that compare explainers (``evaluate``, ``ablate``): one format for both.

Example:
    >>> rows = [{"accuracy": 98.71, "deletion": 17.0}, {"accuracy": 92.6}]
    >>> cols = metric_columns(rows, require="any")
    >>> print("\\n".join(markdown_table(["method", *cols.values()], [["a", 98.71, 17.0], ["b", 92.6, None]])))
    | method | Acc ↑ | Del ↓ |
    |---|---|---|
    | a | 98.7 | 17 |
    | b | 92.6 | – |
"""

from __future__ import annotations

import csv
import io
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["METRIC_COLUMNS", "metric_columns", "format_cell", "markdown_table", "csv_text"]

#: Result keys shown in tables, in order, with their column headers (arrow: which way is better).
METRIC_COLUMNS: dict[str, str] = {
    "accuracy": "Acc ↑",
    "deletion": "Del ↓",
    "insertion": "Ins ↑",
    "lle": "LLE ↓",
    "sparseness": "Sp ↑",
    "relevance_mass": "GT mass ↑",
    "pointing_game": "Pointing ↑",
    "ms_per_frame": "ms/frame",
    "agent_passes_per_frame": "agent passes/frame",
}


def metric_columns(rows: Iterable[Mapping[str, Any]], require: str = "all") -> dict[str, str]:
    """The :data:`METRIC_COLUMNS` that ``all`` (or ``any``) of ``rows`` have a value for."""
    rows = list(rows)
    has = all if require == "all" else any
    return {k: h for k, h in METRIC_COLUMNS.items() if has(k in r for r in rows)}


def format_cell(value: Any) -> str:
    """Numbers to 3 significant digits, ``None`` as a dash, text as it is."""
    if value is None:
        return "–"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{value:.3g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table; cells are formatted by :func:`format_cell`."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in rows]
    return lines


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same table as CSV (values as they are: full precision, ``None`` as an empty cell)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(["" if v is None else v for v in row] for row in rows)
    return buf.getvalue()
