"""The examples in the crowd engine's and adapter's docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["simulation.crowd", "simulation.crowd.engine", "simulation.crowd.geometry",
                                  "twin_core.adapters.crowd"])
def test_crowd_docstring_examples_run(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0, f"{res.failed} docstring example(s) failed in {name}"
