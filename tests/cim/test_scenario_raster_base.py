"""A scenario's raster edits on a base raster updated after them (both stores).

A raise-ground edit was kept as the cells it made and pasted over whatever base was there: a DEM imported again
10 m higher turned a 2 m levee into an 8 m trench without a word, and a DEM on another grid failed with a raw
numpy broadcast error. An edit now keeps what it is (a delta, or values) and the grid it was drawn on.
"""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import shapely
from affine import Affine

from cim.raster import Raster, Window
from cim.scenario import raster_edit_kind
from twin_core.errors import ScenarioError, TwinWarning
from twin_core.twin import Twin

from .test_store_contract import X0, Y0

TOP = Y0 + 200  # the DEM's north edge: 40 x 50 cells of 5 m from (X0, TOP)
LEVEE = shapely.box(X0 + 50, TOP - 100, X0 + 150, TOP - 90)  # 20 x 2 cells whose centres lie inside


def dem(shift: float = 0.0, *, shape=(40, 50), cell: float = 5.0, x0: float = X0, top: float = TOP,
        nodata=None) -> Raster:
    rows, cols = shape
    data = np.linspace(500, 490, rows * cols, dtype="float32").reshape(rows, cols) + np.float32(shift)
    return Raster(data, Affine(cell, 0, x0, 0, -cell, top), "EPSG:4544", nodata=nodata, unit="m")


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="rasterbase")
    t.store.write_raster("dem", dem())
    yield t
    t.close()


def change(twin, scenario):
    return twin.raster("dem", scenario=scenario).data.astype("f8") - twin.raster("dem").data


def test_a_raised_ground_stays_raised_on_a_dem_imported_again(twin):
    twin.scenarios.create("levee").patch_raster("dem", LEVEE, delta=2.0)
    before = change(twin, "levee")
    assert (before != 0).sum() == 40 and np.allclose(before[before != 0], 2.0)
    twin.store.write_raster("dem", dem(10.0))  # a new survey, 10 m higher everywhere, on the same grid
    after = change(twin, "levee")
    np.testing.assert_array_equal(after != 0, before != 0)  # the same cells, still 2 m above the (new) ground
    np.testing.assert_allclose(after[after != 0], 2.0, atol=1e-4)
    (row,) = twin.scenarios.diff("base", "levee").itertuples()
    assert json.loads(row.fields)["mean_change"] == pytest.approx(2.0, abs=1e-4)  # was -8.0


def test_values_set_stay_those_values_and_a_lowered_ground_stays_lowered(twin):
    s = twin.scenarios.create("plot")
    s.patch_raster("dem", Window(0, 0, 2, 3), values=480.0)
    s.patch_raster("dem", Window(1, 1, 3, 3), delta=-1.5)  # over the set cells: 478.5 where they overlap
    twin.store.write_raster("dem", dem(-7.0))
    got, base = twin.raster("dem", scenario="plot").data, twin.raster("dem").data
    np.testing.assert_array_equal(got[0, 0:3], 480.0)
    np.testing.assert_array_equal(got[1, 1:3], 478.5)
    np.testing.assert_allclose(got[2:4, 1:4], base[2:4, 1:4] - 1.5, atol=1e-4)
    assert got[1, 0] == 480.0 and got[5, 5] == base[5, 5]
    kinds = [raster_edit_kind(a) for a in s.edits()["attrs"]]
    assert kinds == ["values", "delta"]


def test_a_child_sees_its_parents_levee_on_the_new_dem(twin):
    twin.scenarios.create("levee").patch_raster("dem", LEVEE, delta=2.0)
    twin.scenarios.create("higher", parent="levee").patch_raster("dem", LEVEE, delta=1.0)
    twin.store.write_raster("dem", dem(10.0))
    d = change(twin, "higher")
    np.testing.assert_allclose(d[d != 0], 3.0, atol=1e-4)


def test_nodata_in_the_new_dem_stays_nodata(twin):
    twin.scenarios.create("levee").patch_raster("dem", LEVEE, delta=2.0)
    new = dem(10.0, nodata=-9999.0)
    win = twin.raster("dem").window_from_bounds(LEVEE.bounds)
    new.data[win.row_off, win.col_off + 5] = -9999.0  # a gap in the new survey, under the levee
    twin.store.write_raster("dem", new)
    got = twin.raster("dem", scenario="levee").data
    assert got[win.row_off, win.col_off + 5] == -9999.0  # no ground invented on a gap
    assert got[win.row_off, win.col_off + 6] == pytest.approx(new.data[win.row_off, win.col_off + 6] + 2.0)


def test_a_dem_grown_by_whole_cells_keeps_the_edit_in_place(twin):
    twin.scenarios.create("levee").patch_raster("dem", LEVEE, delta=2.0)
    # three more rows on the north, two more columns on the west: the levee's cells move, its place does not
    twin.store.write_raster("dem", dem(10.0, shape=(45, 55), x0=X0 - 10, top=TOP + 15))
    sc, base = twin.raster("dem", scenario="levee"), twin.raster("dem")
    d = sc.data.astype("f8") - base.data
    rr, cc = np.nonzero(d)
    assert len(rr) == 40 and np.allclose(d[rr, cc], 2.0, atol=1e-4)
    xs, ys = base.xy(rr, cc)
    assert shapely.contains_xy(LEVEE, xs, ys).all()


@pytest.mark.parametrize("new", [
    dict(shape=(10, 10), cell=20.0),  # another cell size
    dict(x0=X0 + 2.5),  # moved by half a cell
    dict(shape=(12, 12)),  # the same cells, but the levee's lie outside
], ids=["cell size", "half a cell", "outside"])
def test_a_dem_on_another_grid_is_a_clear_error_naming_scenario_and_raster(twin, new):
    twin.scenarios.create("levee").patch_raster("dem", LEVEE, delta=2.0)
    twin.scenarios.create("higher", parent="levee")
    twin.store.write_raster("dem", dem(10.0, **new))
    for scenario in ("levee", "higher"):  # the child's read names the parent, whose edit it is
        with pytest.raises(ScenarioError, match=r"scenario 'levee' has an edit of raster 'dem' \(\+2 m over 2 x 20 "
                                                r"cells.*does not map onto 'dem' now.*Draw the edit again on the new "
                                                r"'dem'.*twin scenario undo STORE levee"):
            twin.raster("dem", scenario=scenario)
    with pytest.raises(ScenarioError, match="does not map"):
        twin.scenarios.diff("base", "levee")
    twin.scenarios["levee"].undo()  # what the message says to do: then it reads (and is the new base)
    np.testing.assert_array_equal(twin.raster("dem", scenario="higher").data, twin.raster("dem").data)


def test_a_dem_in_another_unit_is_refused(twin):
    twin.scenarios.create("levee").patch_raster("dem", LEVEE, delta=2.0)
    r = dem()
    twin.store.write_raster("dem", Raster(r.data * 3.28084, r.transform, r.crs, unit="ft"))
    with pytest.raises(ScenarioError, match="drawn in 'm' and 'dem' is now in 'ft'"):
        twin.raster("dem", scenario="levee")


def test_a_dem_imported_again_with_another_spelling_of_its_unit_keeps_the_edit(twin):
    """'metre' is 'm' (the import takes both): an edit drawn on a DEM in 'm' was refused on the same DEM imported
    again with unit 'metre' (a code review found it)."""
    twin.scenarios.create("levee").patch_raster("dem", LEVEE, delta=2.0)
    r = dem(10.0)
    twin.store.write_raster("dem", Raster(r.data, r.transform, r.crs, unit="metre"))
    after = change(twin, "levee")
    assert (after != 0).sum() == 40 and np.allclose(after[after != 0], 2.0, atol=1e-4)


def _record_the_old_way(twin, scenario, win: Window, cells, attrs) -> None:
    """An edit as the code before this change recorded it: the cells it made, its window, no kind, no grid."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(cells, dtype="float32"), allow_pickle=False)
    key = f"scenario/{scenario}/dem/old.npy"
    twin.store.put_blob(key, buf.getvalue(), mime="application/x-npy")
    twin.scenarios._append([{"scenario": scenario, "op": "patch_raster", "target": "dem", "blob_key": key,
                             "window": json.dumps([win.row_off, win.col_off, win.height, win.width]),
                             "attrs": json.dumps(attrs)}])


def test_edits_recorded_the_old_way_read_as_before(twin):
    # an existing twin file: its edits are the absolute cells they made, and are pasted as they always were
    twin.scenarios.create("old")
    win = Window(3, 4, 2, 5)
    made = twin.raster("dem").window(win).data + np.float32(2.0)
    _record_the_old_way(twin, "old", win, made, {"delta": 2.0})
    (attrs,) = twin.scenarios["old"].edits()["attrs"]
    assert raster_edit_kind(attrs) == "absolute"  # flagged as the cells made then, though it says delta 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # on the ground it was made on: no warning
        np.testing.assert_array_equal(twin.raster("dem", scenario="old").window(win).data, made)
    twin.store.write_raster("dem", dem(10.0))
    # pasted as before, but said: the old edit cannot be re-applied, and it now shows the old ground
    with pytest.warns(TwinWarning, match=r"scenario 'old' has an edit of raster 'dem' \(\+2 over 2 x 5 cells.*"
                                         r"recorded as the cells it made, and the ground under it changed since "
                                         r"\('dem' replaced.*: 10 of its cells.*twin scenario undo STORE old"):
        np.testing.assert_array_equal(twin.raster("dem", scenario="old").window(win).data, made)  # as before
    # a new edit on top of the old one is relative to the scenario's cells
    with pytest.warns(TwinWarning, match="ground under it changed since"):  # the old edit still says so
        twin.scenarios["old"].patch_raster("dem", win, delta=1.0)
        np.testing.assert_allclose(twin.raster("dem", scenario="old").window(win).data, made + 1.0, atol=1e-4)


def test_an_old_edit_on_a_smaller_dem_is_a_clear_error_not_a_broadcast_error(twin):
    twin.scenarios.create("old")
    win = Window(30, 40, 2, 5)
    _record_the_old_way(twin, "old", win, np.full((2, 5), 502.0), {"delta": 2.0})
    twin.store.write_raster("dem", dem(shape=(10, 10), cell=20.0))
    with pytest.raises(ScenarioError, match=r"scenario 'old' has an edit of raster 'dem' \(cells pasted as made "
                                            r"over 2 x 5 cells at row 30, column 40.*its cells lie outside 'dem', "
                                            r"which is now 10 x 10 cells"):
        twin.raster("dem", scenario="old")


def test_the_reviews_levee_through_the_twin_command(small_city_gpkg):
    # the review's steps: a 2 m levee, the DEM imported again 10 m higher (then on another grid), diff and flood
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    def twin_cmd(*args):
        return CliRunner().invoke(get_app(), [a if a != "C" else small_city_gpkg for a in args])

    assert twin_cmd("scenario", "create", "C", "levee").exit_code == 0
    res = twin_cmd("scenario", "raise-ground", "C", "levee", "--bbox", "409500,3391090,409700,3391100", "--delta", "2")
    assert res.exit_code == 0, res.output
    with Twin.open(small_city_gpkg) as t:
        old = t.raster("dem")
        t.store.write_raster("dem", Raster(old.data + np.float32(10), old.transform, old.crs, old.nodata, old.unit))
    res = twin_cmd("scenario", "diff", "C", "base", "levee", "--json")
    (row,) = json.loads(res.stdout)
    assert json.loads(row["fields"])["mean_change"] == pytest.approx(2.0, abs=1e-4)  # was -8.0
    with Twin.open(small_city_gpkg) as t:
        other = Affine(10, 0, old.transform.c, 0, -10, old.transform.f)  # another cell size
        t.store.write_raster("dem", Raster(np.full((10, 10), 500.0, "float32"), other, old.crs, unit="m"))
    res = twin_cmd("flood", "C", "--scenario", "levee", "--duration", "1min", "--quiet")
    assert isinstance(res.exception, ScenarioError), res.exception  # was a raw numpy ValueError
    assert "scenario 'levee' has an edit of raster 'dem'" in str(res.exception)
