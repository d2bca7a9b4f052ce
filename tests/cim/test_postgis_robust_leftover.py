"""The PostGIS store after a DBA's review (2026-12-05), leftovers:

- the format version (``format_version`` in ``twin_meta``): a role that may only read opens an older twin
  without it, unstamped; the first writer's open stamps it and rewrites no other row;
- a large replace (``_write_staged``) takes the layer's write lock that every other write of it takes, so a
  normal write of the same layer waits for its swap, and the swap for a normal write;
- a repeated ``seq`` appended by hand to the scenario edit log is the project's SchemaError naming the table and
  the column and what to do, not the raw IntegrityError (both stores);
- a role without USAGE on the schema PostGIS lives in, or on the twin's schema, gets the store's message with the
  GRANT to run;
- a failed open (no schema, no twin there, a newer format, PostGIS out of reach) closes its connection.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import geopandas as gpd
import psycopg
import pytest
import shapely
from psycopg import sql

from cim.scenario import EDITS_TABLE
from cim.store.base import FORMAT_KEY, FORMAT_VERSION
from cim.store.postgis import PostGISStore
from twin_core.errors import SchemaError, StoreConnectionError, StorePermissionError
from twin_core.twin import Twin


def _layer(n: int, k0: int = 0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"k": list(range(k0, k0 + n))},
                            geometry=[shapely.Point(409300 + i, 3390500) for i in range(n)], crs="EPSG:4544")


@pytest.fixture
def admin(pg_server):
    with psycopg.connect(pg_server, autocommit=True) as conn:
        yield conn


def _as_role(dsn: str, role: str, dbname: str | None = None) -> str:
    u = urlsplit(dsn)
    netloc = f"{role}@{u.netloc.split('@', 1)[1]}"
    return urlunsplit((u.scheme, netloc, f"/{dbname}" if dbname else u.path, u.query, u.fragment))


@pytest.fixture
def role(admin):
    """A login role of its own, dropped afterwards (its sessions ended first), even when the test fails."""
    name = "robust_r_" + uuid.uuid4().hex[:8]
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
        admin.execute(sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(name)))


def _wait_for_lock(admin, pid: int, alive: threading.Thread, timeout: float = 10.0) -> str | None:
    """The kind of lock backend ``pid`` waits for (pg_locks.locktype), once it waits; None if it never did."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive.is_alive():
        row = admin.execute("SELECT locktype FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)).fetchone()
        if row is not None:
            return row[0]
        time.sleep(0.01)
    return None


# -- 1. the format version, PostGIS's own cases ------------------------------------------------------------
@pytest.mark.postgis
def test_an_older_twin_opens_unstamped_for_a_reader_and_the_writer_stamps_only_the_version(pg_dsn, admin, role):
    w = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    try:
        w.write_layer("pois", _layer(3))
        w.set_meta({"name": "old"})
        w.delete_meta([FORMAT_KEY])  # as a twin written before the key existed
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}").format(
            s=sql.Identifier(w.schema), r=sql.Identifier(role)))
        rows = lambda: dict(w.conn.execute(sql.SQL("SELECT key, xmin::text FROM {}").format(  # noqa: E731
            sql.Identifier(w.schema, "twin_meta"))).fetchall())
        before = rows()
    finally:
        w.close()
    r = PostGISStore(_as_role(pg_dsn, role))  # may only read: opens, stamps nothing, no error
    try:
        assert FORMAT_KEY not in r.get_meta() and len(r.read_layer("pois")) == 3
    finally:
        r.close()
    w = PostGISStore(pg_dsn)  # the owner: stamped at this open
    try:
        after = rows()
        assert w.get_meta()[FORMAT_KEY] == FORMAT_VERSION == 1
        assert {k: v for k, v in after.items() if k != FORMAT_KEY} == before  # no other row rewritten
    finally:
        w.close()


# -- 2. the staged replace takes the layer's write lock ------------------------------------------------------
@pytest.fixture
def two(pg_dsn, monkeypatch):
    """(store a, store b) on one twin, a's replaces of >= 20 rows staged (the threshold shrunk for speed)."""
    monkeypatch.setattr(PostGISStore, "staged_min_rows", 20)
    a = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    b = PostGISStore(pg_dsn)
    try:
        a.write_layer("pois", _layer(25, 100))
        yield a, b
    finally:
        a.close()
        b.close()


def _staged_spy(monkeypatch) -> list:
    calls = []
    real = PostGISStore._write_staged
    monkeypatch.setattr(PostGISStore, "_write_staged", lambda self, *a, **k: calls.append(a[0]) or real(self, *a, **k))
    return calls


@pytest.mark.postgis
def test_a_staged_replace_waits_for_a_normal_write_of_the_same_layer(two, admin, monkeypatch):
    a, b = two
    staged = _staged_spy(monkeypatch)
    pid_a = a.conn.info.backend_pid
    failed: list[BaseException] = []

    def replace() -> None:
        try:
            a.write_layer("new", _layer(30))
        except BaseException as exc:  # noqa: BLE001 - checked below
            failed.append(exc)

    worker = threading.Thread(target=replace)
    with b.transaction():
        b.write_layer("new", _layer(3, 500))  # a new layer, in a transaction still open: holds its write lock
        worker.start()
        waits_for = _wait_for_lock(admin, pid_a, worker)
    worker.join(30)
    assert not worker.is_alive()
    # before: the swap's rename waited on b's uncommitted table (a transactionid lock), then failed with the raw
    # duplicate key on pg_class once b committed
    assert not failed, failed
    assert waits_for == "advisory"  # the write lock b holds (_lock_name), as any other writer of the layer waits
    assert staged == ["new"]
    assert sorted(a.read_layer("new")["k"]) == list(range(30))  # one after the other: a's replace came last
    assert b.layer_info("new")["count"] == 30


@pytest.mark.postgis
def test_a_normal_write_waits_for_a_staged_replace_of_the_same_layer(two, admin, monkeypatch):
    a, b = two
    staged = _staged_spy(monkeypatch)
    in_swap, go_on = threading.Event(), threading.Event()
    real_swap = PostGISStore._swap_stage

    def paused_swap(self, *args, **kwargs):  # the swap's transaction has begun (and, now, taken the lock)
        in_swap.set()
        assert go_on.wait(20)
        return real_swap(self, *args, **kwargs)

    monkeypatch.setattr(PostGISStore, "_swap_stage", paused_swap)
    failed: list[BaseException] = []

    def run(fn) -> threading.Thread:
        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - checked below
                failed.append(exc)

        t = threading.Thread(target=body)
        t.start()
        return t

    pid_b = b.conn.info.backend_pid
    ta = run(lambda: a.write_layer("pois", _layer(30)))
    try:
        assert in_swap.wait(20)
        tb = run(lambda: b.write_layer("pois", _layer(4, 900), mode="append"))
        waits_for = _wait_for_lock(admin, pid_b, tb, timeout=5)
        still_waiting = tb.is_alive()
    finally:
        go_on.set()  # the swap goes on, whatever happened here
    ta.join(30)
    tb.join(30)
    assert not ta.is_alive() and not tb.is_alive()
    assert not failed, failed
    # before: b's append went ahead into the old layer and committed while the swap was pending; the swap then
    # dropped it with the old layer (b's rows lost)
    assert waits_for == "advisory" and still_waiting
    assert staged == ["pois"]
    assert sorted(a.read_layer("pois")["k"]) == list(range(30)) + [900, 901, 902, 903]  # b appended to a's


# -- 3. a repeated seq in the edit log: the project's error ---------------------------------------------------
@pytest.fixture
def edited(store_target):
    t = Twin.create(store_target, name="seq")
    s = t.scenarios.create("a")
    s.set_param("k0", 0)
    s.set_param("k1", 1)
    yield t, s
    t.close()


def test_a_repeated_seq_appended_by_hand_is_one_clear_error(edited):
    t, s = edited
    log = t.store.read_table(EDITS_TABLE)
    row = log.tail(1).drop(columns=["fid"], errors="ignore")  # a copy of the last edit row: its seq repeated
    with pytest.raises(SchemaError) as ei:  # was psycopg / sqlite3 IntegrityError (UniqueViolation)
        t.store.write_table(EDITS_TABLE, row, mode="append")
    msg = str(ei.value)
    assert not isinstance(ei.value, (psycopg.Error, sqlite3.Error)) and isinstance(ei.value, ValueError)
    assert f"table {EDITS_TABLE!r}" in msg and "['seq']" in msg and "unique index" in msg
    assert "nothing was written" in msg and "Scenarios" in msg and "delete the rows" in msg
    if t.store.kind == "postgis":
        assert f"the value {int(row['seq'].iloc[0])} is there already" in msg and "twin_ux_" in msg
    with pytest.raises(SchemaError, match="repeats a value"):  # in a caller's transaction too, rolled back
        with t.store.transaction():
            t.store.write_table(EDITS_TABLE, row.assign(seq=99), mode="append")
            t.store.write_table(EDITS_TABLE, row, mode="append")
    assert t.store.read_table(EDITS_TABLE)["seq"].tolist() == log["seq"].tolist()  # nothing kept
    s.set_param("k2", 2)  # the edit log goes on
    assert s.params() == {"k0": 0, "k1": 1, "k2": 2}


# -- 4. no USAGE on a schema the store needs: its message, with the GRANT --------------------------------------
@pytest.fixture
def postgis_apart(pg_server, admin, role):
    """A database of its own with PostGIS in schema ``gis`` (off every role's search path, no USAGE for
    ``role``); dropped afterwards, even when the test fails: (the role's DSN to it, role, database)."""
    db = "robust_gis_" + uuid.uuid4().hex[:8]
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        with psycopg.connect(_as_role(pg_server, "postgres", db), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA gis")
            conn.execute("CREATE EXTENSION postgis SCHEMA gis")
        yield _as_role(pg_server, role, db), role, db
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


@pytest.mark.postgis
def test_no_usage_on_the_postgis_schema_names_the_grant(postgis_apart, admin, pg_server):
    dsn, role, db = postgis_apart
    app = "robust-usage-" + uuid.uuid4().hex[:6]
    with pytest.raises(StoreConnectionError) as ei:
        PostGISStore(f"{dsn}?schema=city", create=True, crs="EPSG:4544", application_name=app)
    msg = str(ei.value)
    assert "PostGIS is installed in schema 'gis'" in msg and f"role {role!r} may not use" in msg
    assert f'GRANT USAGE ON SCHEMA "gis" TO "{role}"' in msg and "search_path" in msg
    assert _gone(admin, app)  # the failed open left no session behind (5.)
    with psycopg.connect(_as_role(pg_server, "postgres", db), autocommit=True) as conn:  # as the message says
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA gis TO {r}; GRANT CREATE ON DATABASE {d} TO {r}").format(
            r=sql.Identifier(role), d=sql.Identifier(db)))
    s = PostGISStore(f"{dsn}?schema=city", create=True, crs="EPSG:4544")
    try:
        s.write_layer("pois", _layer(3))
        assert s.read_layer("pois", bbox=(409300, 3390400, 409301.5, 3390600))["k"].tolist() == [0, 1]
    finally:
        s.close()


@pytest.mark.postgis
def test_no_usage_on_the_twins_schema_names_the_grant(pg_dsn, admin, role):
    w = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    try:
        w.write_layer("pois", _layer(3))
        admin.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}").format(
            s=sql.Identifier(w.schema), r=sql.Identifier(role)))  # SELECT, but no USAGE on the schema
        r = PostGISStore(_as_role(pg_dsn, role))  # opens (nothing read yet); the first read says what to do
        try:
            with pytest.raises(StorePermissionError) as ei:
                r.read_layer("pois")
        finally:
            r.close()
        msg = str(ei.value)
        assert f"role {role!r} may not use schema {w.schema!r}" in msg and "cannot read" in msg
        assert f'GRANT USAGE ON SCHEMA "{w.schema}" TO "{role}"' in msg
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}").format(s=sql.Identifier(w.schema),
                                                                         r=sql.Identifier(role)))
        r = PostGISStore(_as_role(pg_dsn, role))
        try:
            assert r.read_layer("pois")["k"].tolist() == [0, 1, 2]
        finally:
            r.close()
    finally:
        w.close()


# -- 5. a failed open closes its connection -------------------------------------------------------------------
def _sessions(admin, app: str) -> int:
    return admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()[0]


def _gone(admin, app: str, timeout: float = 5.0) -> bool:
    """Whether no session of ``app`` is left (a closed connection's backend exits a moment later)."""
    end = time.monotonic() + timeout
    while _sessions(admin, app):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.postgis
@pytest.mark.parametrize("why", ["no schema", "no twin", "newer format"])
def test_a_failed_open_closes_its_connection(pg_dsn, admin, why):
    schema = pg_dsn.rsplit("schema=", 1)[1]
    if why == "no twin":
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    elif why == "newer format":
        with PostGISStore(pg_dsn, create=True, crs="EPSG:4544") as s:
            s.set_meta({FORMAT_KEY: FORMAT_VERSION + 1})
    app = "robust-open-" + uuid.uuid4().hex[:6]
    assert _sessions(admin, app) == 0
    match = {"no schema": "does not exist", "no twin": "holds no twin", "newer format": "newer RongTwin"}[why]
    with pytest.raises(StoreConnectionError, match=match) as ei:
        PostGISStore(pg_dsn, application_name=app)
    assert ei.value is not None  # the traceback (and the half-made store in it) is still held, as a notebook does
    assert _gone(admin, app), f"{_sessions(admin, app)} session(s) of the failed open left open"  # was 1
