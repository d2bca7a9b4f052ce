"""The PostGIS store as a DBA sees it (review of 2026-12-05):

- a connection the server dropped (``pg_terminate_backend``) is replaced at the next call outside a transaction;
  inside one the caller gets one clear error (rolled back, what to do), not AdminShutdown for ever;
- a write waiting on a lock another session holds (an idle-in-transaction notebook) fails after the store's
  ``lock_timeout`` naming that session, instead of stalling;
- connections carry an ``application_name``;
- a role that may only read gets one clear error (role, table, the GRANT and ALTER DEFAULT PRIVILEGES) for a
  table made after its GRANT, not a raw InsufficientPrivilege;
- PostGIS off the role's search path works (its schema is found and put on the session's path).

Each test terminates only the backends of its own store connections.
"""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import quote

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from cim.store.postgis import PostGISStore, application_name
from twin_core.errors import StoreConnectionError, StoreLockError, StorePermissionError

pytestmark = pytest.mark.postgis


def _layer(n: int = 3) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"k": list(range(n))}, geometry=[shapely.Point(409300 + i, 3390500) for i in range(n)],
                            crs="EPSG:4544")


@pytest.fixture
def admin(pg_server):
    import psycopg

    with psycopg.connect(pg_server, autocommit=True) as conn:
        yield conn


def _kill(admin, store: PostGISStore) -> int:
    """Terminate the store's own backend (only that one), as a DBA or a restart does; wait until it is gone."""
    pid = store.conn.info.backend_pid
    assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    for _ in range(100):
        if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0:
            break
        time.sleep(0.02)
    return pid


def test_a_dropped_connection_is_replaced_at_the_next_call(pg_dsn, admin):
    s = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    try:
        s.write_layer("pois", _layer())
        pid = _kill(admin, s)
        assert len(s.read_layer("pois")) == 3  # was AdminShutdown, then "the connection is closed" for ever
        assert s.conn.info.backend_pid != pid
        _kill(admin, s)
        assert s.write_table("t", pd.DataFrame({"a": [1, 2]})) == 2  # a save reconnects too
        _kill(admin, s)
        with s.conn.cursor() as cur:  # code that uses the connection itself (tiles, sensors)
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        _kill(admin, s)
        s.ping()
    finally:
        s.close()


def test_a_connection_lost_in_a_transaction_is_one_clear_error(pg_dsn, admin):
    s = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    try:
        s.set_meta({"k": 0})
        with pytest.raises(StoreConnectionError) as ei:
            with s.transaction():
                s.set_meta({"k": 1})
                _kill(admin, s)
                s.set_meta({"k": 2})
        msg = str(ei.value)
        assert "lost in the middle of a transaction" in msg and "rolled" in msg and "again" in msg
        assert s.get_meta()["k"] == 0  # nothing of it kept; the store reconnected at this call
        with pytest.raises(StoreConnectionError, match="rolled the transaction back"):  # a store method inside
            with s.transaction():
                _kill(admin, s)
                s.write_table("t", pd.DataFrame({"a": [1]}))
        assert "t" not in s.list_tables()
    finally:
        s.close()


def test_a_write_blocked_by_an_idle_transaction_names_the_session(pg_server, pg_dsn):
    import psycopg

    s = PostGISStore(pg_dsn + "&lock_timeout=0.5", create=True, crs="EPSG:4544")
    assert s.lock_timeout == 0.5
    holder = psycopg.connect(pg_server, application_name="pgconn-notebook")
    try:
        s.write_table("res_x", pd.DataFrame({"a": [1, 2]}))
        holder.execute(f'SELECT * FROM "{s.schema}".res_x').fetchall()  # idle in transaction, holding the table
        hpid = holder.info.backend_pid
        # the old store waited for ever: end the holder (this test's own connection) after 10 s so that it comes back
        def end_holder():
            with psycopg.connect(pg_server, autocommit=True) as c:
                c.execute("SELECT pg_terminate_backend(%s)", (hpid,))

        release = threading.Timer(10.0, end_holder)
        release.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(StoreLockError) as ei:
                s.write_table("res_x", pd.DataFrame({"a": [3]}))
        finally:
            release.cancel()
        waited = time.monotonic() - t0
        msg = str(ei.value)
        assert waited < 5, waited  # 0.5 s lock_timeout plus the query naming the holder
        assert f"pid {hpid}" in msg and "'pgconn-notebook'" in msg and "idle in transaction" in msg
        assert "since" in msg and "res_x" in msg and "pg_terminate_backend" in msg and "nothing was changed" in msg
        holder.rollback()
        assert s.read_table("res_x")["a"].tolist() == [1, 2]
        assert s.write_table("res_x", pd.DataFrame({"a": [3]})) == 1  # free again
    finally:
        holder.close()
        s.close()


def test_the_lock_timeout_option_is_checked():
    with pytest.raises(StoreConnectionError, match="lock_timeout='soon' in the DSN is not a duration"):
        PostGISStore("postgresql://nobody@127.0.0.1:1/x?lock_timeout=soon")


def test_connections_carry_an_application_name(pg_dsn, admin):
    def name_of(store):
        return admin.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                             (store.conn.info.backend_pid,)).fetchone()[0]

    a = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    with application_name("rongtwin-serve"):
        b = PostGISStore(pg_dsn)
    c = PostGISStore(pg_dsn + "&application_name=mine")
    try:
        assert name_of(a) == "rongtwin-python" and name_of(b) == "rongtwin-serve" and name_of(c) == "mine"
        _kill(admin, b)
        b.ping()
        assert name_of(b) == "rongtwin-serve"  # kept when it reconnects
    finally:
        for s in (a, b, c):
            s.close()


@pytest.fixture
def reader(pg_server, pg_dsn, admin):
    """(writer store, DSN of a role granted SELECT on the twin's tables as they were then)."""
    from psycopg import sql

    w = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    w.write_layer("pois", _layer())
    role = "pgconn_r_" + uuid.uuid4().hex[:8]
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}").format(
        s=sql.Identifier(w.schema), r=sql.Identifier(role)))
    dsn = pg_dsn.replace("postgres@", f"{role}@", 1)
    try:
        yield w, dsn, role
    finally:
        w.close()
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        admin.execute(sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(role)))


def test_a_read_refused_names_the_role_the_table_and_the_grant(reader):
    w, dsn, role = reader
    w.write_table("res_new", pd.DataFrame({"a": [1]}))  # made after the GRANT
    r = PostGISStore(dsn)
    try:
        assert len(r.read_layer("pois")) == 3
        with pytest.raises(StorePermissionError) as ei:
            r.read_table("res_new")
        msg = str(ei.value)
        assert isinstance(ei.value, PermissionError)
        assert f"role {role!r}" in msg and "res_new" in msg and "cannot read" in msg
        assert f'GRANT SELECT ON "{w.schema}"."res_new" TO "{role}"' in msg
        assert f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{w.schema}" GRANT SELECT ON TABLES TO "{role}"' in msg
        assert "GeoPackage" not in msg and "write" not in msg.split(";")[0]
    finally:
        r.close()


def test_an_older_twin_without_the_written_table_reads_with_a_role_that_may_only_read(reader):
    w, dsn, role = reader
    w.conn.execute(f'DROP TABLE "{w.schema}".twin_layer_written')  # as a twin written before 2026-12-05
    r = PostGISStore(dsn)
    try:
        assert r.layer_written("pois") is None  # absent: unknown, no DDL, no error
        w.write_layer("pois", _layer(2))  # the first writer makes it (after the reader's GRANT)
        with pytest.raises(StorePermissionError, match="twin_layer_written") as ei:
            r.layer_written("pois")
        assert "ALTER DEFAULT PRIVILEGES" in str(ei.value)
    finally:
        r.close()


@pytest.mark.parametrize("how", ["PGOPTIONS", "dsn"])
def test_postgis_off_the_search_path_is_found(pg_server, pg_dsn, admin, monkeypatch, how):
    # the session's search path holds only the twin's schema: PostGIS (in public here) is off it, as when it is
    # installed in a schema of its own. Before: UndefinedObject/UndefinedFunction (geometry, st_asbinary).
    # "dsn": the path given as the DSN's options= (its %20 was sent to libpq as '+', refused)
    schema = pg_dsn.rsplit("schema=", 1)[1]
    admin.execute(f'CREATE SCHEMA "{schema}"')
    if how == "dsn":
        dsn = f"{pg_dsn}&options={quote(f'-c search_path={schema}')}"
    else:  # as ALTER ROLE ... SET search_path does it for every session of the role
        dsn = pg_dsn
        monkeypatch.setenv("PGOPTIONS", f"-c search_path={schema}")
    s = PostGISStore(dsn, create=True, crs="EPSG:4544")
    try:
        assert s.conn.execute("SHOW search_path").fetchone()[0].startswith(schema)
        s.write_layer("pois", _layer())
        got = s.read_layer("pois", bbox=(409300, 3390400, 409301.5, 3390600))
        assert got["k"].tolist() == [0, 1]
        assert s.layer_info("pois")["count"] == 3
    finally:
        s.close()


def test_the_same_runs_save_still_waits_past_the_lock_timeout(pg_dsn):
    # run_lock makes a second save of the same run wait for the first to end, however long that takes: the
    # store's lock_timeout (for tables another session holds) does not cut that wait short
    a = PostGISStore(pg_dsn + "&lock_timeout=0.2", create=True, crs="EPSG:4544")
    b = PostGISStore(pg_dsn + "&lock_timeout=0.2")
    done = []
    try:
        with a.run_lock("base\x00X"):
            def second():
                with b.run_lock("base\x00X"):
                    b.write_table("t", pd.DataFrame({"a": [1]}))  # under the store's own lock_timeout again
                    done.append(b.conn.execute("SHOW lock_timeout").fetchone()[0])

            t = threading.Thread(target=second)
            t.start()
            time.sleep(1.0)  # five times the lock_timeout
            assert not done
        t.join(10)
        assert done == ["200ms"]
    finally:
        a.close()
        b.close()
