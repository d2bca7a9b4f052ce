"""The examples in the public docstrings run (they are documentation users copy)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "twin_core", "twin_core.twin", "twin_core._display", "twin_core.progress", "twin_core.units", "twin_core.net", "cim", "cim.schema", "cim.raster", "cim.crs",
    "cim.results", "cim.scenario", "cim.sensors", "twin_core.sensor_feed", "cim.io.vector", "cim.store.gpkg", "cim.store.base", "twin_core.errors", "cim.io.sumo", "cim.io.cityjson",
    "sample_city", "sample_city._city", "sample_city._store", "twin_core.adapters.results_export",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} docstring example(s) failed in {name}"
