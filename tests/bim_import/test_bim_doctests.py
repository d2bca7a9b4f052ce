"""The examples in bim_import's public docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["bim_import", "bim_import.georef", "bim_import.compliance", "bim_import.samples", "bim_import.gltf",
           "bim_import.cityjson", "bim_import.building", "bim_import.floorplan", "bim_import.model",
           "bim_import.checks"]


@pytest.mark.parametrize("name", MODULES)
def test_bim_docstring_examples_run(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} docstring example(s) failed in {name}"
