"""Scenarios as a notebook uses them: a cell run twice, a scenario deleted and made again, coordinates in
degrees, and what a scenario shows when it is the last line of a cell."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shapely
from affine import Affine

from cim.raster import Raster
from cim.results import list_results, save_result
from twin_core.errors import RasterError, ScenarioError, TwinWarning
from twin_core.twin import Twin

from .test_store_contract import X0, Y0, synthetic_layer

LEVEE = shapely.box(X0 + 50, Y0 + 1500, X0 + 300, Y0 + 1520)
CLOSURE = shapely.box(X0, Y0, X0 + 2100, Y0 + 2100)


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="test")
    t.store.write_layer("road_links", synthetic_layer("road_links", n=15, seed=4))
    dem = np.full((100, 120), 500.0, dtype="float32")
    t.store.write_raster("dem", Raster(dem, Affine(5, 0, X0, 0, -5, Y0 + 2000), "EPSG:4544", unit="m"))
    yield t
    t.close()


def quick_start_cell(twin, **create_kwargs):
    """The README's quick-start scenario lines."""
    s = twin.scenarios.create("river_levee", "a 2 m levee along the river", **create_kwargs)
    s.patch_raster("dem", LEVEE, delta=2.0)
    s.close_roads(CLOSURE)
    return s


def levee_height(twin, scenario="river_levee"):
    d = twin.raster("dem", scenario=scenario).data - twin.raster("dem").data
    return float(d.max())


# -- 1. a cell run again -------------------------------------------------------------------------------------

def test_creating_an_existing_scenario_says_how_to_reuse_or_replace_it(twin):
    quick_start_cell(twin)
    with pytest.raises(ScenarioError, match="exists already") as err:
        quick_start_cell(twin)
    text = str(err.value)
    assert "exist_ok=True" in text and "replace=True" in text
    assert "2 edits" in text and "patch_raster dem" in text  # what is in it, so one can tell which to choose
    assert levee_height(twin) == 2.0


def test_exist_ok_on_a_scenario_with_edits_warns_that_new_edits_add_to_them(twin):
    quick_start_cell(twin)
    with pytest.warns(TwinWarning, match="add to those") as rec:
        quick_start_cell(twin, exist_ok=True)
    text = str(rec[0].message)
    assert "replace=True" in text and "undo()" in text
    assert levee_height(twin) == 4.0  # what exist_ok means, now said out loud


def test_exist_ok_on_an_empty_scenario_is_quiet(twin):
    twin.scenarios.create("empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = twin.scenarios.create("empty", exist_ok=True)
    assert s.name == "empty"


def test_replace_makes_the_cell_safe_to_run_again(twin):
    quick_start_cell(twin, replace=True)
    save_result(twin.store, "river_levee", "flood1", "summary", {"max_depth_m": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = quick_start_cell(twin, replace=True)
    assert levee_height(twin) == 2.0  # not 4.0
    assert len(s.edits()) == len(twin.scenarios.get("river_levee").edits())
    assert set(s.edits()["op"]) == {"patch_raster", "modify"}
    row = twin.scenarios.list().set_index("name").loc["river_levee"]
    assert row["description"] == "a 2 m levee along the river"
    # the old definition's run is gone with it
    assert list_results(twin.store, scenario="river_levee").empty


def test_replace_keeps_a_parent_and_refuses_contradictions(twin):
    parent = quick_start_cell(twin)
    twin.scenarios.create("child", parent="river_levee")
    with pytest.raises(ScenarioError, match="parent of"):
        twin.scenarios.create("river_levee", replace=True)
    assert len(parent.edits()) == len(twin.scenarios.get("river_levee").edits()) > 0  # untouched
    with pytest.raises(ScenarioError, match="not both"):
        twin.scenarios.create("child", exist_ok=True, replace=True)
    assert twin.scenarios.create("new_one", replace=True).name == "new_one"  # nothing to replace: created


def test_the_cli_style_exist_ok_call_still_records_edits(twin):
    # twin_core/cli/scenario.py: create(name, exist_ok=True) on a missing scenario, inside a transaction
    with twin.store.transaction():
        ids = twin.scenarios.create("works", exist_ok=True).close_roads(CLOSURE)
    assert ids and twin.scenarios.get("works").edits()["op"].eq("modify").all()
    with pytest.warns(TwinWarning, match="exists already"), twin.store.transaction():
        twin.scenarios.create("works", exist_ok=True).patch_raster("dem", LEVEE, delta=1.0)
    assert levee_height(twin, "works") == 1.0


def test_the_twin_command_adds_edits_without_the_notebook_warning(tmp_path):
    # `twin scenario raise-ground` records into a scenario "created if missing": one command, one edit, by design
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    path = str(tmp_path / "c.gpkg")
    t = Twin.create(path, name="c")
    t.store.write_raster("dem", Raster(np.full((100, 120), 500.0, "float32"), Affine(5, 0, X0, 0, -5, Y0 + 2000),
                                       "EPSG:4544", unit="m"))
    t.close()
    b = ",".join(str(v) for v in LEVEE.bounds)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        for _ in range(2):
            res = CliRunner().invoke(get_app(), ["scenario", "raise-ground", path, "levee", "--bbox", b, "--delta", "1"])
            assert res.exit_code == 0, res.output
    with Twin.open(path) as t:
        assert levee_height(t, "levee") == 2.0
        with pytest.warns(TwinWarning, match="exists already"):
            t.scenarios.create("levee", exist_ok=True)


# -- 2. delete takes the results with it --------------------------------------------------------------------

def test_delete_removes_the_scenarios_results_and_only_those(twin):
    quick_start_cell(twin)
    twin.scenarios.create("other")
    save_result(twin.store, "river_levee", "flood1", "summary", {"max_depth_m": 1.0})
    save_result(twin.store, "river_levee", "flood1", "depth", np.zeros((2, 2)))
    save_result(twin.store, "other", "flood1", "summary", {"max_depth_m": 2.0})
    save_result(twin.store, "base", "flood1", "summary", {"max_depth_m": 3.0})
    assert twin.scenarios.delete("river_levee") == 2
    assert "river_levee" not in twin.scenarios
    left = list_results(twin.store)
    assert sorted(left["scenario"]) == ["base", "other"]
    # a new scenario of the same name does not list the old definition's runs as its own
    twin.scenarios.create("river_levee", "something else")
    assert list_results(twin.store, scenario="river_levee").empty
    assert levee_height(twin) == 0.0


def test_delete_refused_for_a_parent_keeps_everything(twin):
    quick_start_cell(twin)
    twin.scenarios.create("child", parent="river_levee")
    save_result(twin.store, "river_levee", "flood1", "summary", {"max_depth_m": 1.0})
    with pytest.raises(ScenarioError, match="parent of"):
        twin.scenarios.delete("river_levee")
    assert len(list_results(twin.store, scenario="river_levee")) == 1
    assert levee_height(twin) == 2.0


# -- 3. longitude/latitude where metres are wanted ----------------------------------------------------------

LONLAT_BOX = shapely.box(104.06, 30.65, 104.07, 30.66)  # central Chengdu in degrees


def test_patch_raster_with_a_lonlat_polygon_says_so(twin):
    s = twin.scenarios.create("levee")
    with pytest.raises(RasterError, match="longitude/latitude") as err:
        s.patch_raster("dem", LONLAT_BOX, delta=2.0)
    assert "EPSG:4544" in str(err.value) and "pyproj.Transformer" in str(err.value)
    with pytest.raises(RasterError, match="longitude/latitude.*transform_bounds"):
        s.patch_raster("dem", LONLAT_BOX.bounds, delta=2.0)
    assert len(s.edits()) == 0


def test_patch_raster_far_off_in_metres_gets_no_lonlat_hint(twin):
    s = twin.scenarios.create("levee")
    with pytest.raises(RasterError, match="do not overlap") as err:
        s.patch_raster("dem", (X0 + 90_000, Y0, X0 + 90_100, Y0 + 100), delta=2.0)
    assert "longitude" not in str(err.value)


def test_close_roads_with_a_lonlat_polygon_says_so(twin):
    s = twin.scenarios.create("works")
    with pytest.raises(ScenarioError, match="crosses no link.*longitude/latitude"):
        s.close_roads(LONLAT_BOX)
    with pytest.raises(ScenarioError, match="crosses no link") as err:
        s.close_roads(shapely.box(X0 + 90_000, Y0, X0 + 90_100, Y0 + 100))
    assert "longitude" not in str(err.value)


# -- 4. what a notebook shows ---------------------------------------------------------------------------------

def test_scenario_repr_shows_parent_description_and_edits(twin):
    s = quick_start_cell(twin)
    text = repr(s)
    assert "'river_levee'" in text and "parent='base'" in text and "2 edits" in text
    assert "a 2 m levee along the river" in text and "\n" not in text
    child = twin.scenarios.create("child", "x" * 500, parent="river_levee")
    assert "parent='river_levee'" in repr(child) and "0 edits" in repr(child) and len(repr(child)) < 250
    assert "the city itself" in repr(twin.scenarios.get("base"))


def test_scenario_html_is_a_small_escaped_table(twin):
    s = quick_start_cell(twin)
    s_html = s._repr_html_()
    for word in ("<table", "river_levee", "parent", "base", "a 2 m levee along the river", "2 edits",
                 "patch_raster dem", "created", "UTC"):
        assert word in s_html, word
    bad = twin.scenarios.create("bad", "<script>alert(1)</script>")
    assert "<script>" not in bad._repr_html_() and "&lt;script&gt;" in bad._repr_html_()
    assert "<script>" not in twin.scenarios._repr_html_()


def test_scenarios_html_lists_them(twin):
    assert "none yet" in twin.scenarios._repr_html_()
    quick_start_cell(twin)
    twin.scenarios.create("child", "on top", parent="river_levee")
    out = twin.scenarios._repr_html_()
    assert out.count("<tr>") == 3 and "river_levee" in out and "child" in out and "on top" in out


def test_reprs_are_safe_on_a_closed_store(twin):
    s = quick_start_cell(twin)
    sc = twin.scenarios
    twin.close()
    assert "store closed" in repr(s) and "river_levee" in repr(s)
    assert "store closed" in s._repr_html_()
    assert "store closed" in repr(sc) and "store closed" in sc._repr_html_()


def test_repr_of_a_deleted_scenario(twin):
    s = twin.scenarios.create("gone")
    twin.scenarios.delete("gone")
    assert "deleted" in repr(s) and "deleted" in s._repr_html_()
