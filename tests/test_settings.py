"""SettingChecks: every job reports bad settings in one format."""

from __future__ import annotations

import doctest

import pytest

from vmask_live import settings
from vmask_live.errors import ConfigError
from vmask_live.settings import SettingChecks


def test_docstring_examples_run():
    res = doctest.testmod(settings)
    assert res.attempted and not res.failed


def test_every_problem_is_listed_with_its_fix():
    c = SettingChecks("demo")
    c.integer("n", 0, 1, what="test states")
    c.integer("limit", None, 1, optional=True)  # None allowed
    c.text("env", "", "an env name")
    c.add("data, env", "one source", got="both", hint="pass one")
    with pytest.raises(ConfigError) as err:
        c.raise_if_any()
    assert str(err.value) == (
        "Invalid demo settings (3):\n"
        "  n: expected an integer >= 1 (test states), got 0\n"
        "  env: expected an env name, got ''\n"
        "  data, env: expected one source, got both; pass one"
    )
