"""`twin build` into PostGIS refuses what it refuses for a file: an existing twin without --force (it rebuilt
the base layers silently and kept the old city's scenarios and results), and a schema of other tables."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from twin_core.cli.build import build_city
from twin_core.errors import TwinError
from twin_core.twin import Twin


@pytest.mark.postgis
def test_build_over_a_postgis_twin_needs_force_and_then_starts_afresh(pg_dsn):
    build_city(pg_dsn, "small", 0, quiet=True)
    with Twin.open(pg_dsn) as twin:
        twin.scenarios.create("a")
        twin.scenarios.create("b", parent="a")
        twin.save_result("b", "r1", "summary", {"x": 1})
        before = len(twin.layer("buildings"))
    with pytest.raises(TwinError, match=r"holds a twin already \(2 scenario\(s\), 1 stored result\(s\)\); pass "
                                        r"--force to rebuild it"):
        build_city(pg_dsn, "small", 1, quiet=True)
    with Twin.open(pg_dsn) as twin:  # refused: nothing changed
        assert twin.scenarios.names() == ["a", "b"] and len(twin.results()) == 1
    s = build_city(pg_dsn, "small", 0, force=True, quiet=True)
    assert s["scenarios"] == [] and s["results"] == 0 and s["layers"]["buildings"] == before


@pytest.mark.postgis
def test_build_into_a_schema_of_other_tables_needs_force_and_leaves_them(pg_dsn, pg_server):
    schema = pg_dsn.split("schema=")[1]
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        con.execute(sql.SQL("CREATE TABLE {}.foo (a int)").format(sql.Identifier(schema)))
        con.execute(sql.SQL("INSERT INTO {}.foo VALUES (7)").format(sql.Identifier(schema)))
    with pytest.raises(TwinError, match=r"holds tables that are no twin \(foo\); build into a schema of its own"):
        build_city(pg_dsn, "small", 0, quiet=True)
    s = build_city(pg_dsn, "small", 0, force=True, quiet=True)
    assert s["layers"]["buildings"] > 0
    with psycopg.connect(pg_server) as con:
        assert con.execute(sql.SQL("SELECT a FROM {}.foo").format(sql.Identifier(schema))).fetchall() == [(7,)]
