"""A replace of a PostGIS layer or table dropped its table and made it again: with a user's view on it
(``CREATE VIEW s.tall AS SELECT * FROM s.buildings WHERE ...``) the import failed with the driver's raw
``DependentObjectsStillExist`` traceback, and without one the table's GRANTs, the user's indexes and its
comment were silently lost. Now a replace whose columns are those the table has refills it in place (TRUNCATE
and COPY in one transaction), so all of that stays; one whose columns change still makes the table again, and
a view in the way is one clear StoreError naming it, with nothing changed.
"""

from __future__ import annotations

import pandas as pd
import pytest
from psycopg import sql

from cim.store.base import index_name
from cim.store.postgis import PostGISStore
from tests.cim.test_store_contract import synthetic_layer
from twin_core.errors import StoreError


@pytest.fixture(params=["one transaction", "staged"])
def pg(request, pg_dsn):
    s = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    if request.param == "staged":
        s.staged_min_rows = 0  # every replace outside a transaction takes the staged path
    yield s
    s.close()


def _q(store, *names):
    return sql.Identifier(store.schema, *names)


def _one(store, query, params=()):
    return store.conn.execute(query, params).fetchone()


def _stages(store) -> list:
    return store.conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname LIKE 'twin\\_stage\\_%%'", (store.schema,)).fetchall()


def _user_objects(store, table: str) -> None:
    """A view, a grant, a comment and an index of the user's on ``table``."""
    with store.conn.transaction():
        store.conn.execute(sql.SQL("CREATE VIEW {} AS SELECT * FROM {} WHERE fid > 2").format(
            _q(store, "tall"), _q(store, table)))
        store.conn.execute(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(_q(store, table)))
        store.conn.execute(sql.SQL("COMMENT ON TABLE {} IS 'surveyed 2025'").format(_q(store, table)))
        store.conn.execute(sql.SQL("CREATE INDEX user_fid_desc ON {} (fid DESC)").format(_q(store, table)))


def _kept(store, table: str) -> None:
    oid = f"{store.schema}.{table}"
    assert _one(store, "SELECT obj_description(%s::regclass, 'pg_class')", (oid,)) == ("surveyed 2025",)
    assert _one(store, "SELECT has_table_privilege('public', %s, 'SELECT')", (oid,)) == (True,)
    assert _one(store, "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = 'user_fid_desc'",
                (store.schema,)) == (1,)


def test_a_replace_with_the_same_columns_keeps_the_view_grant_comment_and_index(pg):
    pg.write_layer("buildings", synthetic_layer("buildings", n=20))
    _user_objects(pg, "buildings")
    new = synthetic_layer("buildings", n=30, seed=5)
    assert pg.write_layer("buildings", new) == 30
    assert pg.read_layer("buildings")["building_id"].tolist() == new["building_id"].tolist()
    assert _one(pg, sql.SQL("SELECT count(*) FROM {}").format(_q(pg, "tall"))) == (28,)  # the view: new rows
    _kept(pg, "buildings")
    # numbered as a new table's rows, the store's indexes there, and the next append goes on after them
    assert _one(pg, sql.SQL("SELECT min(fid), max(fid) FROM {}").format(_q(pg, "buildings"))) == (1, 30)
    assert {r[0] for r in pg.conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s",
                                          (pg.schema,))} >= {"buildings_pkey", "buildings_geom_gist"}
    pg.write_layer("buildings", new.iloc[:2], mode="append")
    assert _one(pg, sql.SQL("SELECT max(fid), count(*) FROM {}").format(_q(pg, "buildings"))) == (32, 32)
    assert _stages(pg) == []
    assert pg.layer_info("buildings")["geometry_type"] == "MULTIPOLYGON"


def test_changed_columns_under_a_view_are_one_clear_error_and_nothing_is_lost(pg):
    old = synthetic_layer("buildings", n=20)
    pg.write_layer("buildings", old)
    _user_objects(pg, "buildings")
    new = synthetic_layer("buildings", n=30, seed=5).assign(survey_note="checked")
    with pytest.raises(StoreError, match=r"cannot replace the layer 'buildings' in .*: its columns change \(new "
                                         r"columns \['survey_note'\]\).*view \S*tall depends on table "
                                         r"\S*buildings.*nothing was changed.*Drop those views.*scenario") as info:
        pg.write_layer("buildings", new)
    assert "DependentObjectsStillExist" not in repr(info.value)
    assert pg.read_layer("buildings")["building_id"].tolist() == old["building_id"].tolist()
    assert _one(pg, sql.SQL("SELECT count(*) FROM {}").format(_q(pg, "tall"))) == (18,)
    _kept(pg, "buildings")
    assert _stages(pg) == []


def test_changed_columns_without_a_view_make_the_table_again(pg):
    pg.write_layer("buildings", synthetic_layer("buildings", n=5))
    new = synthetic_layer("buildings", n=7, seed=2).assign(survey_note="checked")
    assert pg.write_layer("buildings", new) == 7
    got = pg.read_layer("buildings")
    assert got["survey_note"].tolist() == ["checked"] * 7 and len(got) == 7


def test_a_table_replace_keeps_the_view_grant_comment_and_index(pg):
    pg.write_table("log", pd.DataFrame({"sensor_id": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]}))
    _user_objects(pg, "log")
    assert pg.write_table("log", pd.DataFrame({"sensor_id": ["d", "e", "f", "g"], "v": [4.0, 5.0, 6.0, 7.0]})) == 4
    assert pg.read_table("log")["sensor_id"].tolist() == ["d", "e", "f", "g"]
    assert _one(pg, sql.SQL("SELECT count(*) FROM {}").format(_q(pg, "tall"))) == (2,)
    _kept(pg, "log")
    with pytest.raises(StoreError, match=r"cannot replace the table 'log'.*columns \['v'\] gone.*tall"):
        pg.write_table("log", pd.DataFrame({"sensor_id": ["x"]}))
    assert pg.read_table("log")["v"].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_a_table_with_the_stores_own_index_is_made_again_and_a_view_on_it_says_so(pg):
    """A replaced table has none of create_index's indexes (the store contract; the scenarios' edit log tells
    its table apart by OID): such a table is still dropped and made again, and a view in the way is named."""
    pg.write_table("log", pd.DataFrame({"sensor_id": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]}))
    made = pg.create_index("log", "sensor_id")
    assert made == index_name("log", ["sensor_id"])
    pg.write_table("log", pd.DataFrame({"sensor_id": ["d"], "v": [4.0]}))
    assert pg.list_indexes("log") == {}
    pg.create_index("log", "sensor_id")
    _user_objects(pg, "log")
    with pytest.raises(StoreError, match=rf"cannot replace the table 'log' .*: it has the store's indexes "
                                         rf"\['{made}'\] \(create_index\).*view \S*tall depends"):
        pg.write_table("log", pd.DataFrame({"sensor_id": ["e"], "v": [5.0]}))
    assert pg.read_table("log")["sensor_id"].tolist() == ["d"] and made in pg.list_indexes("log")


def test_deleting_a_layer_under_a_view_says_so(pg):
    pg.write_layer("buildings", synthetic_layer("buildings", n=4))
    _user_objects(pg, "buildings")
    with pytest.raises(StoreError, match=r"cannot delete the layer 'buildings' .*view \S*tall depends on table.*"
                                         r"nothing was changed. Drop them first"):
        pg.delete_layer("buildings")
    assert pg.list_layers() == ["buildings"] and len(pg.read_layer("buildings")) == 4


def test_a_view_on_the_key_and_a_foreign_key_to_the_layer(pg):
    """A view that needs the fid key (GROUP BY fid) keeps it through a replace; another table's foreign key
    to the layer stops it (TRUNCATE may not empty it): a clear StoreError, the layer as it was."""
    pg.write_layer("buildings", synthetic_layer("buildings", n=6))
    pg.conn.execute(sql.SQL("CREATE VIEW {} AS SELECT fid, geom FROM {} GROUP BY fid").format(
        _q(pg, "by_fid"), _q(pg, "buildings")))
    pg.conn.commit()
    new = synthetic_layer("buildings", n=9, seed=3)
    assert pg.write_layer("buildings", new) == 9
    assert _one(pg, sql.SQL("SELECT count(*) FROM {}").format(_q(pg, "by_fid"))) == (9,)
    assert _one(pg, "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
                (f"{pg.schema}.buildings",)) == (1,)
    pg.conn.execute(sql.SQL("CREATE TABLE {} (b bigint REFERENCES {} (fid))").format(
        _q(pg, "visits"), _q(pg, "buildings")))
    pg.conn.commit()
    with pytest.raises(StoreError, match=r"cannot replace the layer 'buildings' .*foreign key.*nothing was changed"):
        pg.write_layer("buildings", synthetic_layer("buildings", n=4, seed=4))
    assert pg.read_layer("buildings")["building_id"].tolist() == new["building_id"].tolist()
    assert _stages(pg) == []
