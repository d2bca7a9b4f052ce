"""The map server on PostGIS when the database misbehaves (review of 2026-12-05):

- its connection dropped (``pg_terminate_backend``): the next request reconnects (it answered 500 for ever);
- ``/api/health`` runs ``SELECT 1`` and answers 503 with the reason when the database cannot be reached (it said
  200 ok while every other call failed);
- a role that may only read, on a table made after its GRANT: 503 naming the GRANT, not the GeoPackage advice;
- its connections say "rongtwin-serve" in pg_stat_activity.
"""

from __future__ import annotations

import time
import uuid

import geopandas as gpd
import pytest
import shapely

pytestmark = pytest.mark.postgis


def _pois(n: int = 2) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"k": list(range(n))}, geometry=[shapely.Point(409300 + i, 3390500) for i in range(n)],
                            crs="EPSG:4544")


@pytest.fixture
def admin(pg_server):
    import psycopg

    with psycopg.connect(pg_server, autocommit=True) as conn:
        yield conn


@pytest.fixture
def twin_dsn(pg_dsn):
    from twin_core.twin import Twin

    t = Twin.create(pg_dsn, crs="EPSG:4544")
    t.store.write_layer("pois", _pois())
    t.close()
    return pg_dsn


def _client(dsn):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    return TestClient(create_app(Settings(store=dsn)), raise_server_exceptions=False, base_url="http://127.0.0.1")


def _kill(admin, store) -> None:
    """Terminate the server store's own backend (only that one) and wait until it is gone."""
    pid = store.conn.info.backend_pid
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(100):
        if admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 0:
            return
        time.sleep(0.02)


def test_the_server_reconnects_and_health_checks_the_database(twin_dsn, admin):
    with _client(twin_dsn) as c:
        store = c.app.state.twin_state.store.raw
        assert c.get("/api/health").json() == {"ok": True, "store": "postgis"}
        _kill(admin, store)
        r = c.get("/api/layers/pois/features")
        assert r.status_code == 200, r.text  # was 500 AdminShutdown, then "the connection is closed" for ever
        assert r.json()["numberReturned"] == 2
        _kill(admin, store)
        assert c.get("/api/health").status_code == 200  # health reconnects too
        app = admin.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s",
                            (store.conn.info.backend_pid,)).fetchone()[0]
        assert app == "rongtwin-serve"  # a DBA tells the server's sessions apart
        # the database unreachable: the connection dropped and a new one refused (here: a closed port)
        _kill(admin, store)
        store._conninfo = "postgresql://postgres@127.0.0.1:1/twin_test"
        r = c.get("/api/health")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["ok"] is False and "cannot connect to PostGIS" in body["detail"]
        r = c.get("/api/layers/pois/features")
        assert r.status_code == 503 and "cannot connect to PostGIS" in r.json()["detail"]


@pytest.fixture
def reader_dsn(twin_dsn, admin):
    from psycopg import sql

    schema = twin_dsn.rsplit("schema=", 1)[1]
    role = "pgconn_v_" + uuid.uuid4().hex[:8]
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}").format(
        s=sql.Identifier(schema), r=sql.Identifier(role)))
    try:
        yield twin_dsn.replace("postgres@", f"{role}@", 1), role
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        admin.execute(sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(role)))


def test_a_read_the_role_may_not_do_is_a_503_naming_the_grant(twin_dsn, reader_dsn):
    from cim.store.postgis import PostGISStore

    dsn, role = reader_dsn
    w = PostGISStore(twin_dsn)
    try:
        w.write_layer("flooded", _pois(3))  # made after the reader's GRANT, as a new run's result is
    finally:
        w.close()
    with _client(dsn) as c:
        assert c.get("/api/layers/pois/features").status_code == 200
        r = c.get("/api/layers/flooded/features")
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert "GeoPackage" not in detail and "cannot write" not in detail  # it was a read, on PostGIS
        assert role in detail and "flooded" in detail and "GRANT SELECT" in detail
        assert "ALTER DEFAULT PRIVILEGES" in detail
