"""PostGIS behaves as the GeoPackage does where a user meets it (found in a parity audit, 2026-12-04).

- a DSN in libpq's own URI forms (``postgresql:///db?host=...``) opens the twin (it was a raw
  ``psycopg.ProgrammingError`` traceback), and a password given as ``?password=`` never shows in messages;
- a role that may only read opens the twin and reads it (``twin info`` was a traceback:
  "permission denied for database"); its writes are one clear StoreError, as for a read-only .gpkg;
- a twin made in an existing schema (``public``) is stamped ``created`` as the GeoPackage is;
- a JSON result reads back with its keys in the order it was saved (jsonb reordered them, so an exported
  summary.json differed between the stores);
- a filter value or a blob key with a NUL character behaves the same in both (PostgreSQL refused the query);
- metadata PostgreSQL's jsonb cannot hold is one clear SchemaError, not a raw server error.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import Point

from cim.results import load_result, save_result
from cim.store import open_store
from twin_core.errors import SchemaError, StoreConnectionError, StoreError


def _points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"name": ["a", "b", None]},
                            geometry=[Point(409600, 3391000), Point(409700, 3391100), Point(409800, 3391200)],
                            crs="EPSG:4544")


def test_a_dsn_with_the_host_as_a_parameter_opens_the_twin(pg_dsn):
    open_store(pg_dsn, create=True, crs="EPSG:4544").close()
    parts = urlsplit(pg_dsn)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    user = parts.username or "postgres"
    dsn = f"postgresql://{parts.path}?host={host}&port={port}&user={user}&{parts.query}"
    with open_store(dsn) as s:
        assert s.get_meta()["crs"] == "EPSG:4544"


def test_a_password_parameter_is_never_shown(pg_server):
    parts = urlsplit(pg_server)
    dsn = f"postgresql://{parts.netloc}/no_such_db_{uuid.uuid4().hex[:6]}?password=s3cret&connect_timeout=3"
    with pytest.raises(StoreConnectionError) as err:
        open_store(dsn)
    assert "s3cret" not in str(err.value) and "password=***" in str(err.value)
    with pytest.raises(StoreConnectionError, match="cannot connect"):  # a malformed DSN: no traceback
        open_store(f"postgresql://{parts.netloc}/x?no_such_option=1")


@pytest.fixture
def reader(pg_dsn, pg_server):
    """A role that may only read the twin at ``pg_dsn``, and the DSN that connects as it."""
    import psycopg
    from psycopg import sql

    with open_store(pg_dsn, create=True, crs="EPSG:4544") as s:
        s.write_layer("pois", _points())
        s.write_table("log", pd.DataFrame({"a": [1]}))
    schema = urlsplit(pg_dsn).query.split("schema=")[1]
    role = "audit_ro_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(role)))
    parts = urlsplit(pg_dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    try:
        yield f"postgresql://{role}@{host}{parts.path}?{parts.query}"
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_role_that_may_only_read_reads_and_its_writes_are_one_clear_error(reader):
    with open_store(reader) as s:
        assert len(s.read_layer("pois")) == 3
        assert s.get_meta()["crs"] == "EPSG:4544"
        for write in (lambda: s.write_layer("pois", _points()),
                      lambda: s.write_table("log", pd.DataFrame({"a": [2]}), mode="append"),
                      lambda: s.set_meta({"k": 1}),
                      lambda: save_result(s, "base", "r1", "summary", {"a": 1})):
            with pytest.raises(StoreError, match=r"cannot write .*: the server refused the write \((permission "
                                                 r"denied|must be owner).*nothing was changed"):
                write()
        assert len(s.read_table("log")) == 1


def test_a_readers_large_replace_is_the_same_clear_error(reader):
    """A replace of staged_min_rows rows or more loads through a staging table on its own connection: a reader
    got the raw psycopg InsufficientPrivilege there, where a smaller replace gets the StoreError."""
    with open_store(reader) as s:
        s.staged_min_rows = 2  # the staged path without writing 50,000 rows
        big = pd.concat([_points()] * 2, ignore_index=True)
        assert len(big) >= s.staged_min_rows and s._txn_depth == 0
        with pytest.raises(StoreError, match=r"cannot write .*: the server refused the write \(permission "
                                             r"denied.*nothing was changed. Connect as a role that may write"):
            s.write_layer("pois", big)
        assert len(s.read_layer("pois")) == 3  # the layer as it was, the connection still usable
        assert s.conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = %s AND c.relname LIKE 'twin\\_stage\\_%%'",
                              (s.schema,)).fetchone()[0] == 0


def test_a_twin_made_in_an_existing_schema_is_stamped_created(pg_dsn, pg_server):
    import psycopg
    from psycopg import sql

    schema = urlsplit(pg_dsn).query.split("schema=")[1]
    with psycopg.connect(pg_server, autocommit=True) as conn:  # as public is: there before the twin
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    with open_store(pg_dsn, create=True, crs="EPSG:4544") as s:
        created = s.get_meta().get("created")
    assert created is not None and pd.Timestamp(created).tzinfo is not None and "T" in created


def test_a_json_result_keeps_its_key_order(store):
    value = {"scenario": "base", "engine": "flood", "rain": {"total_mm": 1.5, "source": "x", "peak": 2}, "a": 1}
    save_result(store, "base", "r1", "summary", value)
    back = load_result(store, "base", "r1", "summary")
    assert back == value and list(back) == list(value) and list(back["rain"]) == list(value["rain"])


def test_a_filter_value_with_a_nul_finds_nothing(store):
    store.write_layer("pois", _points())
    assert len(store.read_layer("pois", where={"name": "a\x00b"})) == 0
    assert len(store.read_layer("pois", where={"name": ["a", "a\x00b"]})) == 1
    assert sorted(store.read_layer("pois", where={"name": ("!=", "a\x00")})["name"]) == ["a", "b"]


def test_a_blob_key_with_a_nul_is_refused(store):
    with pytest.raises(ValueError, match="NUL"):
        store.put_blob("a\x00b", b"x")
    assert store.list_blobs().empty


def test_metadata_jsonb_cannot_hold_is_a_clear_error(store):
    # in both stores: the GeoPackage kept NaN, which PostgreSQL (and JSON readers but Python's) refuse
    with pytest.raises(SchemaError, match="'k'.*NaN"):
        store.set_meta({"k": float("nan")})
    with pytest.raises(SchemaError, match="'k'.*NUL"):
        store.set_meta({"k": {"x": ["a\x00"]}})
    assert "k" not in store.get_meta()


def test_paging_sorts_as_sqlite_does(store):
    """NULL first (PostgreSQL put it last), text byte-wise: a page is the same page in both stores."""
    store.write_table("t", pd.DataFrame({"name": ["b", None, "B", "a", "é", "_x"], "v": range(6)}))
    assert store.read_table("t", order_by="name")["name"].tolist() == [None, "B", "_x", "a", "b", "é"]
    assert store.read_table("t", order_by="name", descending=True)["name"].tolist() == ["é", "b", "a", "_x", "B", None]
    assert store.read_table("t", order_by="name", limit=2, offset=1)["name"].tolist() == ["B", "_x"]
    assert sorted(store.read_table("t", where={"name": ("<", "a")})["name"]) == ["B", "_x"]


def test_text_sorts_byte_wise_whatever_the_collation(pg_dsn, pg_server):
    """A database made with en_US (most servers) sorted 'a' before 'B'; the GeoPackage sorts 'B' first."""
    import psycopg
    from psycopg import sql

    with open_store(pg_dsn, create=True, crs="EPSG:4544") as s:
        s.write_table("t", pd.DataFrame({"name": ["b", "B", "a", "A"]}))
        schema = s.schema
        with psycopg.connect(pg_server, autocommit=True) as conn:
            have = conn.execute("SELECT collname FROM pg_collation WHERE collname = 'en-x-icu'").fetchone()
            if have is None:
                pytest.skip("this server has no ICU collation en-x-icu to stand for an en_US database")
            conn.execute(sql.SQL('ALTER TABLE {} ALTER COLUMN name TYPE text COLLATE "en-x-icu"').format(
                sql.Identifier(schema, "t")))
        assert s.read_table("t", order_by="name")["name"].tolist() == ["A", "B", "a", "b"]
        assert sorted(s.read_table("t", where={"name": ("<", "a")})["name"]) == ["A", "B"]
        assert s.count_rows("t", where={"name": (">=", "a")}) == 2
