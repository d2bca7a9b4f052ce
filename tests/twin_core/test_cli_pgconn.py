"""The CLI on a PostGIS twin when the database misbehaves (review of 2026-12-05): one line, no traceback, for a
connection lost and not regained, and for a read the role may not do; and its sessions say "rongtwin-cli"."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import uuid

import geopandas as gpd
import pytest
import shapely

pytestmark = pytest.mark.postgis


def _main(*args):
    """Run the `twin` entry point in process: (exit code, stderr text)."""
    from twin_core.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as ex:
        main(list(args))
    return ex.value.code, err.getvalue()


def _pois(n: int = 2) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"k": list(range(n))}, geometry=[shapely.Point(409300 + i, 3390500) for i in range(n)],
                            crs="EPSG:4544")


@pytest.fixture
def twin_dsn(pg_dsn):
    from twin_core.twin import Twin

    t = Twin.create(pg_dsn, crs="EPSG:4544")
    t.store.write_layer("pois", _pois())
    t.close()
    return pg_dsn


def test_a_connection_lost_and_not_regained_is_one_line(twin_dsn, pg_server, monkeypatch):
    # as `twin flood DSN --run X` whose backend was terminated while it computed, and the database then down:
    # the next store call (list_layers, the save) found the connection gone. Before: an AdminShutdown traceback
    import psycopg

    from cim.store.postgis import PostGISStore

    opened = PostGISStore._init_schema

    def open_then_lose(self, create):
        opened(self, create)
        with psycopg.connect(pg_server, autocommit=True) as admin:  # this store's own backend only
            admin.execute("SELECT pg_terminate_backend(%s)", (self.conn.info.backend_pid,))
        self._conninfo = "postgresql://postgres@127.0.0.1:1/twin_test"  # and no new connection is let in

    monkeypatch.setattr(PostGISStore, "_init_schema", open_then_lose)
    code, err = _main("info", twin_dsn)
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "cannot connect to PostGIS" in err or "connection to" in err


@pytest.fixture
def reader_dsn(twin_dsn, pg_server):
    import psycopg
    from psycopg import sql

    schema = twin_dsn.rsplit("schema=", 1)[1]
    role = "pgconn_c_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}").format(
            s=sql.Identifier(schema), r=sql.Identifier(role)))
    try:
        yield twin_dsn.replace("postgres@", f"{role}@", 1), role
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            admin.execute(sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(role)))


def test_a_read_the_role_may_not_do_is_one_line_naming_the_grant(twin_dsn, reader_dsn):
    from cim.store.postgis import PostGISStore

    dsn, role = reader_dsn
    w = PostGISStore(twin_dsn)
    try:
        w.write_layer("flooded", _pois(3))  # made after the reader's GRANT
    finally:
        w.close()
    code, err = _main("info", dsn)
    assert code == 2 and "Traceback" not in err, err  # was an InsufficientPrivilege traceback
    assert err.startswith("error: cannot read") and role in err and "flooded" in err
    assert "GRANT SELECT" in err and "ALTER DEFAULT PRIVILEGES" in err


def test_the_cli_names_its_sessions(twin_dsn):
    # a subprocess: PGAPPNAME, which the CLI sets, is read by libpq from the process's environment
    code = ("import os, sys\n"
            "from twin_core.cli import main\n"
            "from cim.store import postgis\n"
            "seen = []\n"
            "orig = postgis._connect\n"
            "def spy(*a, **k):\n"
            "    c = orig(*a, **k); seen.append(c.execute('SHOW application_name').fetchone()[0]); return c\n"
            "postgis._connect = spy\n"
            "try:\n"
            "    main(['info', sys.argv[1]])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('NAMES', seen, file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code, twin_dsn], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in __import__("os").environ.items() if k != "PGAPPNAME"})
    names = [line for line in out.stderr.splitlines() if line.startswith("NAMES")]
    assert names and "'rongtwin-cli'" in names[0] and "python" not in names[0], out.stderr[-2000:]
