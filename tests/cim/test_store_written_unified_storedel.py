"""PostGIS keeps when layers and rasters were written in one place, ``twin_layer_written`` (a raster under
``raster:<name>``), stamped in the writing transaction; a raster whose time only the old raster meta key
(``twin:written``) holds is still reported, and moves to the table when written again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
import geopandas as gpd
from affine import Affine

from cim.raster import Raster
from twin_core.errors import LayerNotFoundError

CRS = "EPSG:4544"


def _dem(shift: float = 0.0, meta=None) -> Raster:
    data = (np.arange(12, dtype="float32").reshape(3, 4) + np.float32(shift))
    return Raster(data, Affine(5.0, 0, 500000.0, 0, -5.0, 3390100.0), CRS, unit="m", meta=meta or {})


def _rows(s) -> dict:
    with s.conn.cursor() as cur:
        cur.execute(f'SELECT name, written_at FROM "{s.schema}".twin_layer_written')
        return {k: pd.Timestamp(v) for k, v in cur.fetchall()}


def _meta(s, name) -> dict:
    with s.conn.cursor() as cur:
        cur.execute(f'SELECT meta FROM "{s.schema}".twin_rasters WHERE name = %s', (name,))
        return cur.fetchone()[0]


def test_postgis_layers_and_rasters_are_kept_in_the_one_table(pg_dsn):
    from cim.store import open_store

    with open_store(pg_dsn, create=True, crs=CRS) as s:
        s.write_raster("dem", _dem(meta={"source": "survey"}))
        rows = _rows(s)  # a raster alone makes the table
        assert list(rows) == ["raster:dem"] and s.raster_written("dem") == rows["raster:dem"]
        assert _meta(s, "dem") == {"source": "survey"}  # no time in the raster's meta any more
        assert s.read_raster("dem").meta == {"source": "survey"}
        s.write_layer("roads", gpd.GeoDataFrame({"k": [1]}, geometry=[shapely.Point(500000, 3390000)], crs=CRS))
        rows = _rows(s)
        assert set(rows) == {"raster:dem", "roads"} and s.layer_written("roads") == rows["roads"]
        # a layer's time is not a raster's of the same key, nor the other way round
        with pytest.raises(LayerNotFoundError, match="no layer 'dem'"):
            s.layer_written("dem")
        with pytest.raises(LayerNotFoundError, match="no raster 'roads'"):
            s.raster_written("roads")
        first = s.raster_written("dem")
        s.write_raster("dem", _dem(1.0))
        assert s.raster_written("dem") > first and s.layer_written("roads") == rows["roads"]
        s.delete_raster("dem")
        assert set(_rows(s)) == {"roads"}
        with pytest.raises(LayerNotFoundError, match="no raster 'dem'"):
            s.raster_written("dem")


def test_postgis_a_raster_time_is_written_in_the_writing_transaction(pg_dsn):
    """Another session sees the new time when, and only when, the raster it dates commits; a rolled-back
    write leaves the time as it was."""
    from cim.store import open_store

    with open_store(pg_dsn, create=True, crs=CRS) as s, open_store(pg_dsn) as other:
        s.write_raster("dem", _dem())
        first = s.raster_written("dem")
        assert other.raster_written("dem") == first
        with s.transaction():
            s.write_raster("dem", _dem(1.0))
            mine = s.raster_written("dem")
            assert mine > first and other.raster_written("dem") == first
            assert other.read_raster("dem").data[0, 0] == 0.0
        assert other.raster_written("dem") == mine and other.read_raster("dem").data[0, 0] == 1.0
        with pytest.raises(RuntimeError, match="boom"), s.transaction():
            s.write_raster("dem", _dem(2.0))
            raise RuntimeError("boom")
        assert s.raster_written("dem") == mine and other.raster_written("dem") == mine


@pytest.mark.parametrize("table", ["kept", "dropped"])
def test_postgis_a_raster_written_the_old_way_is_still_reported_then_moves_to_the_table(pg_dsn, table):
    """A raster written before the table kept rasters: its time only in its meta's ``twin:written`` (the table
    there, for layers, or not made yet). That time is reported; writing the raster again moves it to the
    table and out of the meta."""
    from cim.store import open_store

    old = "2026-12-01T08:30:00.250000+00:00"
    with open_store(pg_dsn, create=True, crs=CRS) as s:
        s.write_layer("roads", gpd.GeoDataFrame({"k": [1]}, geometry=[shapely.Point(500000, 3390000)], crs=CRS))
        s.write_raster("dem", _dem(meta={"source": "survey"}))
        with s.transaction(), s.conn.cursor() as cur:  # as write_raster stored it before
            cur.execute(f'UPDATE "{s.schema}".twin_rasters SET meta = meta || jsonb_build_object(\'twin:written\', '
                        '%s::text)', (old,))
            if table == "dropped":
                cur.execute(f'DROP TABLE "{s.schema}".twin_layer_written')
            else:
                cur.execute(f'DELETE FROM "{s.schema}".twin_layer_written WHERE name = \'raster:dem\'')
    with open_store(pg_dsn) as s:
        assert s.raster_written("dem") == pd.Timestamp(old)
        assert s.read_raster("dem").meta == {"source": "survey"}  # the store's key is not the data's meta
        s.write_raster("dem", s.read_raster("dem"))
        now = s.raster_written("dem")
        assert now > pd.Timestamp(old) and _rows(s)["raster:dem"] == now
        assert _meta(s, "dem") == {"source": "survey"}
        assert s.layer_written("roads") == (None if table == "dropped" else _rows(s)["roads"])
