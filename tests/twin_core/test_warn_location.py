"""Warnings point at the caller's line (a notebook cell, a script), not at RongTwin's own code.

``warnings.warn(..., stacklevel=N)`` counted frames by hand, so a warning raised one layer deeper than its
author expected (``Twin.flood`` -> ``run_flood`` -> ``prepare_flood``) showed ``twin_core/adapters/flood.py``
as where it came from. ``twin_core.errors.twin_warn`` walks up to the first frame outside the project.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from twin_core.errors import TwinWarning, twin_warn


def _caught(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return [x for x in w if issubclass(x.category, (TwinWarning, FutureWarning))]


def test_a_store_warning_points_at_this_file(tmp_path):
    from cim.results import save_result
    from cim.store import open_store

    store = open_store(str(tmp_path / "r.gpkg"), create=True, crs="EPSG:4544")
    try:
        w = _caught(lambda: save_result(store, "base", "r1", "s", {"x": float("nan")}))
    finally:
        store.close()
    assert len(w) == 1 and "NaN" in str(w[0].message)
    assert os.path.samefile(w[0].filename, __file__), w[0].filename


def test_a_warning_raised_two_layers_down_points_at_this_file(tmp_path):
    from twin_core.twin import Twin

    path = str(tmp_path / "c.gpkg")
    Twin.create(path).close()
    with Twin(path) as twin:
        w = _caught(lambda: twin.results(run="no-such-run"))
    assert w and "no-such-run" in str(w[0].message)
    assert os.path.samefile(w[0].filename, __file__), w[0].filename


def test_crowd_engine_warning_points_at_the_caller():
    from shapely.geometry import Polygon

    from simulation.crowd.geometry import WalkableArea

    # a hole that crosses the outline: invalid, repaired with a warning from inside the dataclass's __init__
    floor = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(8, 4), (12, 4), (12, 6), (8, 6)]])
    w = _caught(lambda: WalkableArea(floor, exits={"door": [(0, 4.5), (0, 5.5)]}))
    assert w, "an invalid walkable polygon is repaired with a warning"
    assert os.path.samefile(w[0].filename, __file__), w[0].filename


def test_called_only_from_project_code_it_still_warns():
    w = _caught(lambda: twin_warn("x"))
    assert len(w) == 1 and w[0].category is TwinWarning
    assert np.isfinite(w[0].lineno)


@pytest.mark.parametrize("category", [TwinWarning, FutureWarning])
def test_the_category_is_kept(category):
    w = _caught(lambda: twin_warn("y", category))
    assert w[0].category is category
