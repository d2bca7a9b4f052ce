"""Store.layer_written: when a layer was last written (replaced or appended to), on both stores, so the map can
tell a run made before the base layer it read was replaced (viewer.routers.results.mark_stale)."""

from __future__ import annotations

import time

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from twin_core.errors import LayerNotFoundError


def _gdf(n: int = 1) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"link_id": [f"L{i}" for i in range(n)]},
                            geometry=[shapely.Point(400000 + i, 3400000) for i in range(n)], crs="EPSG:4544")


def _pause() -> None:
    time.sleep(0.02)  # a GeoPackage keeps last_change to the millisecond


def test_replace_and_append_move_the_time_on(store):
    before = pd.Timestamp.now(tz="UTC")
    _pause()
    store.write_layer("road_links", _gdf())
    first = store.layer_written("road_links")
    assert first is not None and str(first.tz) == "UTC" and first > before
    _pause()
    store.write_layer("road_links", _gdf(2))
    second = store.layer_written("road_links")
    assert second > first
    _pause()
    store.write_layer("road_links", _gdf(), mode="append")  # GDAL leaves last_change as it was on an append
    third = store.layer_written("road_links")
    assert third > second
    assert third <= pd.Timestamp.now(tz="UTC")
    _pause()
    store.write_layer("pois", _gdf())  # another layer: this one's time stays
    assert store.layer_written("road_links") == third


def test_an_unknown_or_deleted_layer_is_named(store):
    store.write_layer("road_links", _gdf())
    with pytest.raises(LayerNotFoundError, match="road_linkz"):
        store.layer_written("road_linkz")
    store.delete_layer("road_links")
    with pytest.raises(LayerNotFoundError, match="road_links"):
        store.layer_written("road_links")
    store.write_layer("road_links", _gdf())  # written again: known again
    assert store.layer_written("road_links") is not None


def test_postgis_layers_written_before_the_record_are_unknown(pg_dsn):
    """A twin made before twin_layer_written: its layers' times are unknown (None), not an error; the next
    write makes the table, and a write whose transaction rolls back leaves none behind."""
    from cim.store import open_store

    with open_store(pg_dsn, create=True, crs="EPSG:4544") as s:
        s.write_layer("road_links", _gdf())
        s.conn.execute(f'DROP TABLE "{s.schema}".twin_layer_written')  # as a twin written before 2026-12-05
    with open_store(pg_dsn) as s:
        assert s.layer_written("road_links") is None
        with pytest.raises(RuntimeError, match="boom"), s.transaction():
            s.write_layer("buildings", _gdf())
            raise RuntimeError("boom")
        assert s.layer_written("road_links") is None  # the rolled-back table is not taken as there
        s.write_layer("buildings", _gdf())
        assert s.layer_written("buildings") is not None and s.layer_written("road_links") is None


def test_base_store_does_not_know():
    from cim.store.base import Store

    assert Store.layer_written(object(), "road_links") is None
