"""The examples in the flood engine's public docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["simulation.flood", "simulation.flood.engine", "simulation.flood.forcing",
                                  "simulation.flood.params"])
def test_flood_docstring_examples_run(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
