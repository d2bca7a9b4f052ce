"""The docstring examples of the viewer modules run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["viewer.auth", "viewer.geo", "viewer.scene", "viewer.settings", "viewer.imaging"])
def test_viewer_docstring_examples_run(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
