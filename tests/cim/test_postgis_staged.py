"""PostGIS staged bulk load: a large replace goes through a hidden staging table, its two indexes
built at once on two connections, then renamed into place in one short transaction.

The path must give the same layer as the one-transaction path and keep the store's atomicity: a
load that fails at any step leaves the old layer and no staging table; a load killed outright
leaves a staging table that the next open drops, unless its loader still holds it.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from cim.store.postgis import PostGISStore
from tests.cim.test_store_contract import assert_frames_equal, synthetic_layer


@pytest.fixture
def pg(pg_dsn):
    s = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    s.staged_min_rows = 0  # every replace takes the staged path
    yield s
    s.close()


def _relations(store) -> list[tuple[str, str]]:
    return store.conn.execute(
        "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname NOT LIKE 'twin%%' ORDER BY 1", (store.schema,)).fetchall()


def _stages(store) -> list[str]:
    return [r[0] for r in store.conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname LIKE 'twin\\_stage\\_%%'", (store.schema,)).fetchall()]


def test_staged_load_gives_the_same_layer(pg):
    gdf = synthetic_layer("buildings", n=40)
    assert pg.write_layer("buildings", gdf) == 40
    assert pg.write_layer("buildings", gdf) == 40  # a replace of a staged layer
    assert_frames_equal(gdf.reset_index(drop=True), pg.read_layer("buildings")[list(gdf.columns)])
    # the same objects, under the same names, as the one-transaction path makes
    assert _relations(pg) == [("buildings", "r"), ("buildings_fid_seq", "S"),
                              ("buildings_geom_gist", "i"), ("buildings_pkey", "i")]
    cons = pg.conn.execute("SELECT conname, contype::text FROM pg_constraint WHERE conrelid = %s::regclass",
                           (f"{pg.schema}.buildings",)).fetchall()
    assert cons == [("buildings_pkey", "p")]
    assert pg.conn.execute(sql.SQL("SELECT min(fid), max(fid) FROM {}").format(
        sql.Identifier(pg.schema, "buildings"))).fetchone() == (1, 40)
    pg.write_layer("buildings", gdf.iloc[:3], mode="append")  # the sequence goes on after the staged rows
    assert pg.conn.execute(sql.SQL("SELECT max(fid), count(*) FROM {}").format(
        sql.Identifier(pg.schema, "buildings"))).fetchone() == (43, 43)
    assert pg.list_layers() == ["buildings"]
    assert pg.layer_info("buildings")["geometry_type"] == "MULTIPOLYGON"


@pytest.mark.parametrize("step", ["_copy_rows", "_index_stage", "_swap_stage"])
def test_staged_load_that_fails_leaves_the_store_as_it_was(pg, monkeypatch, step):
    good = synthetic_layer("buildings", n=12)
    pg.write_layer("buildings", good)
    real = getattr(PostGISStore, step)

    def then_fail(self, *args, **kwargs):
        real(self, *args, **kwargs)  # the step's own work is done (inside the transaction for _swap_stage) ...
        raise OSError("No space left on device")  # ... then the disk fills

    monkeypatch.setattr(PostGISStore, step, then_fail)
    with pytest.raises(OSError, match="No space") as info:
        pg.write_layer("buildings", synthetic_layer("buildings", n=30, seed=5))
    monkeypatch.undo()
    assert any("rolled back" in n for n in info.value.__notes__)
    assert pg.read_layer("buildings")["building_id"].tolist() == good["building_id"].tolist()
    assert pg.list_layers() == ["buildings"]
    assert _stages(pg) == []
    assert pg.conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                           ).fetchone() == (0,)
    pg.write_layer("buildings", good)  # and the store takes the next load
    assert len(pg.read_layer("buildings")) == 12


def test_open_drops_staging_tables_of_dead_loads_only(pg, pg_dsn):
    pg.write_layer("buildings", synthetic_layer("buildings", n=5))
    dead, live = "twin_stage_0000000dead00", "twin_stage_000000011ve00"
    for stage in (dead, live):
        pg.conn.execute(sql.SQL("CREATE TABLE {} (fid bigint)").format(sql.Identifier(pg.schema, stage)))
    with psycopg.connect(pg._conninfo, autocommit=True) as loader:  # a load still running elsewhere
        with loader.cursor() as cur:
            pg._stage_lock(cur, live, "lock")
        again = PostGISStore(pg_dsn)
        assert _stages(again) == [live]
        again.close()
    again = PostGISStore(pg_dsn)  # the loader has gone: its table goes too
    assert _stages(again) == []
    assert again.list_layers() == ["buildings"]
    again.close()


def test_refused_second_connection_loads_in_one_transaction(pg, monkeypatch):
    def refuse(*args, **kwargs):
        raise psycopg.OperationalError("FATAL: sorry, too many clients already")

    monkeypatch.setattr(psycopg, "connect", refuse)
    gdf = synthetic_layer("buildings", n=8)
    with pytest.warns(UserWarning, match="one transaction"):
        pg.write_layer("buildings", gdf)
    monkeypatch.undo()
    assert pg.read_layer("buildings")["building_id"].tolist() == gdf["building_id"].tolist()
    assert _stages(pg) == []


def test_inside_a_transaction_the_load_stays_in_it(pg):
    """Staging commits on its own, so a write inside the caller's transaction takes the one-transaction path."""
    good = synthetic_layer("buildings", n=6)
    pg.write_layer("buildings", good)
    with pytest.raises(RuntimeError, match="abort"):
        with pg.transaction():
            pg.write_layer("buildings", synthetic_layer("buildings", n=9, seed=2))
            raise RuntimeError("abort")
    assert pg.read_layer("buildings")["building_id"].tolist() == good["building_id"].tolist()
    assert _stages(pg) == []
