"""Old-format raster edits that set values (both stores).

An edit recorded before edits kept their kind and grid (before 2026-12-05) is the cells it made, by row and
column, pasted as made. An old delta edit warned when the ground under it changed (its raster replaced); an old
``values`` edit on a raster moved or put on another grid since was pasted on other ground without a word. It now
warns when its raster was written after it was made (``Store.raster_written``).
"""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from cim.raster import Raster, Window
from twin_core.errors import TwinWarning
from twin_core.twin import Twin

from .test_store_contract import X0, Y0

TOP = Y0 + 200  # the DEM's north edge: 40 x 50 cells of 5 m from (X0, TOP)
WIN = Window(3, 4, 2, 5)


def dem(shift: float = 0.0, *, shape=(40, 50), cell: float = 5.0, x0: float = X0, top: float = TOP) -> Raster:
    rows, cols = shape
    data = np.linspace(500, 490, rows * cols, dtype="float32").reshape(rows, cols) + np.float32(shift)
    return Raster(data, Affine(cell, 0, x0, 0, -cell, top), "EPSG:4544", unit="m")


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="oldvalues")
    t.store.write_raster("dem", dem())
    yield t
    t.close()


def _record_the_old_way(twin, scenario, win: Window, cells, attrs) -> None:
    """An edit as the code before 2026-12-05 recorded it: the cells it made, its window, no kind, no grid."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(cells, dtype="float32"), allow_pickle=False)
    key = f"scenario/{scenario}/dem/old.npy"
    twin.store.put_blob(key, buf.getvalue(), mime="application/x-npy")
    twin.scenarios._append([{"scenario": scenario, "op": "patch_raster", "target": "dem", "blob_key": key,
                             "window": json.dumps([win.row_off, win.col_off, win.height, win.width]),
                             "attrs": json.dumps(attrs)}])


def _pond(twin) -> np.ndarray:
    """A pond's bottom set to 480 m over part of the window (a polygon), the ground of then around it."""
    made = twin.raster("dem").window(WIN).data.copy()
    made[:, 1:4] = 480.0
    twin.scenarios.create("old")
    _record_the_old_way(twin, "old", WIN, made, {"values": "given"})
    return made


OLD_VALUES = (r"^scenario 'old' has an edit of raster 'dem' \(values set over 2 x 5 cells, made \d{4}-\d\d-\d\d "
              r"\d\d:\d\d UTC\) recorded as the cells it made, by row and column, and 'dem' was replaced since "
              r"\(written \d{4}-\d\d-\d\d \d\d:\d\d UTC\): if 'dem' moved or is on another grid now, the edit's "
              r"cells are pasted on other ground than it was drawn on, .*Take the edit back \(twin scenario undo "
              r"STORE old, or twin.scenarios\['old'\].undo\(\)\) and draw it again")


@pytest.mark.parametrize("new", [
    dem(x0=X0 + 20.0, top=TOP - 10.0),  # moved by whole cells (4 east, 2 south)
    dem(cell=4.0, shape=(60, 60)),  # on another grid (4 m cells), the window still inside it
    dem(10.0),  # a new survey on the same grid: the cells around the pond show the ground of then
], ids=["moved", "regridded", "resurveyed"])
def test_an_old_values_edit_on_a_replaced_dem_warns(twin, new):
    made = _pond(twin)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # on the raster it was made on: no warning
        np.testing.assert_array_equal(twin.raster("dem", scenario="old").window(WIN).data, made)
    twin.store.write_raster("dem", new)
    with pytest.warns(TwinWarning, match=OLD_VALUES) as caught:
        got = twin.raster("dem", scenario="old").window(WIN).data
    assert len(caught) == 1
    np.testing.assert_array_equal(got, made)  # pasted as before: it cannot be re-applied


def test_an_old_edit_without_its_values_marker_warns_too(twin):
    twin.scenarios.create("old")
    _record_the_old_way(twin, "old", WIN, np.full((2, 5), 480.0), {})
    twin.store.write_raster("dem", dem(x0=X0 + 5.0))
    with pytest.warns(TwinWarning, match=r"scenario 'old' has an edit of raster 'dem' \(cells pasted as made over "
                                         r"2 x 5 cells.*'dem' was replaced since"):
        twin.raster("dem", scenario="old")


def test_new_edits_and_old_deltas_on_ground_as_made_do_not_warn_of_the_replaced_raster(twin):
    # a values edit made now keeps its grid, and holds on a re-surveyed DEM without a word
    twin.scenarios.create("new").patch_raster("dem", WIN, values=480.0)
    # an old delta edit is checked against the ground under it, not the time: a DEM written again unchanged
    made = twin.raster("dem").window(WIN).data + np.float32(2.0)
    twin.scenarios.create("old")
    _record_the_old_way(twin, "old", WIN, made, {"delta": 2.0})
    twin.store.write_raster("dem", dem())  # the same DEM, imported again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(twin.raster("dem", scenario="old").window(WIN).data, made)
        twin.store.write_raster("dem", dem(10.0))
        np.testing.assert_array_equal(twin.raster("dem", scenario="new").window(WIN).data, np.full((2, 5), 480.0))


def test_a_store_says_when_a_raster_was_written_and_keeps_its_meta_as_given(store):
    t0 = pd.Timestamp.now(tz="UTC").floor("ms")  # a GeoPackage keeps milliseconds
    r = dem()
    store.write_raster("dem", Raster(r.data, r.transform, r.crs, unit="m", meta={"source": "survey 2025"}))
    t1 = pd.Timestamp.now(tz="UTC")
    written = store.raster_written("dem")
    assert written is not None and t0 <= written <= t1
    assert store.read_raster("dem").meta == {"source": "survey 2025"}  # the time is the store's, not the meta's
    assert store.read_raster("dem", window=Window(0, 0, 2, 2)).meta == {"source": "survey 2025"}
    store.write_raster("dem", dem(1.0))
    assert store.raster_written("dem") > written and store.read_raster("dem").meta == {}


def test_a_postgis_raster_written_before_it_kept_its_time_says_none_and_old_edits_paste_as_before(pg_dsn):
    """PostGIS keeps when a raster was written since 2026-12-05 (a GeoPackage always knew): for one written
    before, the store cannot tell, and an old values edit on it is pasted as before, without a warning."""
    with Twin.create(pg_dsn, name="oldvalues") as t:
        t.store.write_raster("dem", dem())
        made = _pond(t)
        t.store.write_raster("dem", dem(x0=X0 + 20.0))
        with t.store.transaction(), t.store.conn.cursor() as cur:  # as write_raster stored it before
            cur.execute(f'UPDATE "{t.store.schema}".twin_rasters SET meta = meta - \'twin:written\'')
            cur.execute(f'DELETE FROM "{t.store.schema}".twin_layer_written WHERE name = \'raster:dem\'')
        assert t.store.raster_written("dem") is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(t.raster("dem", scenario="old").window(WIN).data, made)
