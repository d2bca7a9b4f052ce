"""The store keeps its CRS (``Store.crs``) instead of reading the whole ``twin_meta`` table at every call: every
layer and raster read asks for it (``/api/scene`` read the table ~8 times for it). What is kept stays right: a
write of the key through this handle (``set_meta``/``delete_meta``), a rolled-back or failed write, a store
closed, a PostGIS connection replaced (``_revive``), a twin given its CRS by another handle.
Both stores (``store`` fixture: the PostGIS half skips without a server)."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from cim.raster import Raster
from cim.store import open_store
from twin_core.errors import SchemaError, StoreError


def _count_meta_reads(store, monkeypatch) -> list:
    """Spy on ``store.get_meta`` (this handle only): the list grows by one per read of the metadata table."""
    reads = []
    real = store.get_meta
    monkeypatch.setattr(store, "get_meta", lambda: reads.append(1) or real())
    return reads


def _pois(n: int = 3) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"k": list(range(n))}, geometry=[shapely.Point(409300 + i, 3390500) for i in range(n)],
                            crs="EPSG:4544")


def test_the_crs_is_read_once_per_handle(store, monkeypatch):
    import numpy as np
    from affine import Affine

    store.write_layer("pois", _pois())
    store.write_raster("dem", Raster(np.zeros((4, 4), "float32"), Affine(1, 0, 409300, 0, -1, 3390504), "EPSG:4544"))
    reads = _count_meta_reads(store, monkeypatch)
    for _ in range(5):
        assert store.crs == "EPSG:4544"
        assert store.layer_info("pois")["crs"] == "EPSG:4544"
        assert store.read_layer("pois").crs == "EPSG:4544"
        store.raster_info("dem")
    assert len(reads) <= 1  # was 15 and more: one whole-table read per crs, layer_info and read_layer


def test_a_crs_written_through_the_store_is_seen(store):
    assert store.crs == "EPSG:4544"
    store.set_meta({"crs": "EPSG:32648", "name": "x"})
    assert store.crs == "EPSG:32648"
    store.delete_meta(["crs"])
    assert store.crs is None
    store.set_meta({"crs": "EPSG:4544"})
    assert store.crs == "EPSG:4544"
    store.set_meta({"name": "y"})  # other keys leave the kept CRS alone
    assert store.crs == "EPSG:4544" == store.get_meta()["crs"]


def test_a_rolled_back_crs_write_is_not_kept(store):
    assert store.crs == "EPSG:4544"
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.set_meta({"crs": "EPSG:32648"})
            assert store.crs == "EPSG:32648"  # the transaction's own write is seen in it
            assert store.crs == "EPSG:32648"
            raise RuntimeError("boom")
    assert store.crs == "EPSG:4544" == store.get_meta()["crs"]
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.delete_meta(["crs"])
            assert store.crs is None
            raise RuntimeError("boom")
    assert store.crs == "EPSG:4544"


def test_a_refused_crs_write_keeps_the_right_crs(store):
    assert store.crs == "EPSG:4544"
    with pytest.raises(SchemaError, match="NaN"):
        store.set_meta({"crs": "EPSG:32648", "bad": float("nan")})  # refused before anything is written
    assert store.crs == "EPSG:4544" == store.get_meta()["crs"]


def test_a_crs_write_that_fails_in_the_database_keeps_nothing_wrong(store, monkeypatch):
    from contextlib import contextmanager

    assert store.crs == "EPSG:4544"

    @contextmanager
    def broken():
        raise RuntimeError("disk full")
        yield  # pragma: no cover

    # the write's transaction fails as it begins (a GeoPackage's set_meta opens _sql_txn, PostGIS's transaction)
    monkeypatch.setattr(store, "_sql_txn" if store.kind == "gpkg" else "transaction", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        store.set_meta({"crs": "EPSG:32648"})
    with pytest.raises(RuntimeError, match="disk full"):
        store.delete_meta(["crs"])
    monkeypatch.undo()
    assert store.crs == "EPSG:4544" == store.get_meta()["crs"]  # not the value of the write that failed


def test_a_closed_store_says_it_is_closed(store):
    assert store.crs == "EPSG:4544"
    store.close()
    with pytest.raises(StoreError):
        store.crs  # noqa: B018 - as before: not a CRS kept from when it was open


def test_a_crs_another_handle_gives_a_twin_without_one_is_seen(store_target):
    a = open_store(store_target, create=True)  # no CRS yet
    try:
        assert a.crs is None
        b = open_store(store_target, crs="EPSG:4544")
        b.close()
        assert a.crs == "EPSG:4544"  # None is not kept
    finally:
        a.close()


def test_each_handle_keeps_its_own_crs(tmp_path):
    one = open_store(str(tmp_path / "a.gpkg"), create=True, crs="EPSG:4544")
    two = open_store(str(tmp_path / "b.gpkg"), create=True, crs="EPSG:32648")
    try:
        assert (one.crs, two.crs) == ("EPSG:4544", "EPSG:32648")
        assert (one.crs, two.crs) == ("EPSG:4544", "EPSG:32648")
    finally:
        one.close()
        two.close()
    again = open_store(str(tmp_path / "b.gpkg"))
    try:
        assert again.crs == "EPSG:32648"
    finally:
        again.close()


# -- PostGIS: the SRID follows the CRS; a replaced connection reads it again ------------------------------------


@pytest.mark.postgis
def test_postgis_srid_is_not_left_from_a_rolled_back_crs_write(pg_dsn):
    s = open_store(pg_dsn, create=True, crs="EPSG:4544")
    try:
        assert s.srid == 4544
        with pytest.raises(RuntimeError):
            with s.transaction():
                s.set_meta({"crs": "EPSG:32648"})
                assert s.srid == 32648
                raise RuntimeError("boom")
        assert s.srid == 4544  # was 32648: the SRID worked out inside the rolled-back transaction was kept
    finally:
        s.close()


@pytest.mark.postgis
def test_postgis_reconnection_reads_the_crs_again(pg_dsn, pg_server, monkeypatch):
    import time

    import psycopg
    from psycopg import sql

    s = open_store(pg_dsn, create=True, crs="EPSG:4544")
    try:
        assert s.crs == "EPSG:4544"
        with psycopg.connect(pg_server, autocommit=True) as admin:
            # the twin changed while this handle's session was gone (a schema restored from another twin's dump)
            admin.execute(sql.SQL("UPDATE {}.twin_meta SET value = %s::jsonb WHERE key = 'crs'").format(
                sql.Identifier(s.schema)), ('"EPSG:32648"',))
            pid = s.conn.info.backend_pid
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            for _ in range(100):
                if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0:
                    break
                time.sleep(0.02)
        s.ping()  # replaces the dropped connection (_revive)
        assert s.conn.info.backend_pid != pid
        assert s.crs == "EPSG:32648" and s.srid == 32648  # not the value kept on the old session
    finally:
        s.close()
