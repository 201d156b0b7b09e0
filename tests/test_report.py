"""Result tables shared by evaluate and ablate."""

from __future__ import annotations

import doctest

from vmask_live import report
from vmask_live.report import csv_text, markdown_table


def test_docstring_examples_run():
    res = doctest.testmod(report)
    assert res.attempted and not res.failed


def test_missing_values_are_a_dash_in_markdown_and_empty_in_csv():
    assert markdown_table(["m", "x"], [["a", None]])[-1] == "| a | – |"
    assert csv_text(["m", "x"], [["a", None], ["b", 0.12345]]) == "m,x\r\na,\r\nb,0.12345\r\n"
