"""The examples in twin_core.adapters.analysis run."""

from __future__ import annotations

import doctest

from twin_core.adapters import analysis


def test_analysis_docstring_examples_run():
    res = doctest.testmod(analysis, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0
