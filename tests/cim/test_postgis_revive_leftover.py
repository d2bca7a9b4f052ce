"""The PostGIS store's reconnect check (review leftovers, 2026-12-05): one place decides it (``_revive``), once at
the start of each operation; ``_closed`` is set in ``__init__``; a closed store stays closed."""

from __future__ import annotations

import pandas as pd
import pytest

import cim.store.postgis as pg
from cim.store.postgis import PostGISStore

pytestmark = pytest.mark.postgis


def test_a_new_store_says_it_is_open_from_init(pg_dsn):
    s = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    try:
        assert vars(s)["_closed"] is False  # was set only by close(), read with getattr(..., False)
    finally:
        s.close()
    assert s._closed is True


def test_the_connection_is_checked_once_per_operation(pg_dsn, monkeypatch):
    s = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    try:
        s.write_table("t", pd.DataFrame({"a": [1, 2]}))
        looks = []
        real = pg._conn_dead
        monkeypatch.setattr(pg, "_conn_dead", lambda conn: looks.append(conn) or real(conn))
        assert len(s.read_table("t")) == 2  # a public method that reaches self.conn (and others) inside
        assert len(looks) == 1
        s.write_table("t", pd.DataFrame({"a": [3]}), mode="append")  # transaction(), nested methods inside
        assert len(looks) == 2
        s.conn.execute("SELECT 1")  # code that uses the connection itself: checked at each use
        assert len(looks) == 3
        with s.transaction():  # checked as the transaction begins, not inside it
            s.read_table("t")
            s.conn.execute("SELECT 1")
        assert len(looks) == 4
    finally:
        s.close()


def test_a_closed_store_stays_closed(pg_dsn):
    s = PostGISStore(pg_dsn, create=True, crs="EPSG:4544")
    s.write_table("t", pd.DataFrame({"a": [1]}))
    conn = s.conn
    s.close()
    with pytest.raises(Exception):
        s.read_table("t")
    assert s.conn is conn and conn.closed  # not replaced by a new connection
