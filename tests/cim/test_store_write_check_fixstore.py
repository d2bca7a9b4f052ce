"""A twin this handle may not write is found out before an engine runs, not when it saves after the whole run.

An operator's ``twin flood DSN`` as a role that may only read ran the storm to 100 % and only then failed
"cannot write ... twin_rasters" (minutes of a medium city's storm wasted; the same for a job of the map
server). :func:`cim.results.claim_run`, where every engine and analysis claims its run id, now asks the store
(:meth:`cim.store.base.Store.check_writable`): PostGIS from the catalogue (a read-only session, CREATE on the
schema, INSERT/UPDATE/DELETE on the twin's tables), a GeoPackage by a write rolled back at once.

A read-only GeoPackage is made with ``chmod`` where that stops the user running the tests; root ignores
permission bits, so there the file is made immutable with ``chattr +i`` (as ``test_store_read_only`` does),
and the tests skip where that is not allowed either.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cim.results import claim_run, list_results
from twin_core.errors import StoreError
from twin_core.twin import Twin

GPKG_REFUSED = r"cannot write .*: the file \(or its folder\) is read-only .*nothing was changed.*chmod u\+w"


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture
def read_only_gpkg(tmp_path):
    """A twin file this process may not write: chmod 444 (not root), else chattr +i (root)."""
    path = tmp_path / "ro.gpkg"
    Twin.create(path, name="ro").close()
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield path
        finally:
            path.chmod(0o644)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                         capture_output=True).returncode != 0:
        pytest.skip("running as root, which permission bits do not stop, and chattr +i is not allowed here")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _no_engine(monkeypatch):
    """Make the flood engine's first step fail loudly: a run that reaches it was not stopped up front."""
    import twin_core.adapters.flood as flood

    def ran(*a, **k):
        raise AssertionError("the flood engine ran: the read-only store was not found out before it")

    monkeypatch.setattr(flood, "prepare_flood", ran)


def test_a_read_only_gpkg_is_refused_before_the_flood_runs(read_only_gpkg, monkeypatch):
    _no_engine(monkeypatch)
    before = _sha(read_only_gpkg)
    with Twin.open(read_only_gpkg) as twin:
        with pytest.raises(StoreError, match=GPKG_REFUSED + r".*checked before a flood run started"):
            twin.flood(duration="10min", run="storm")
        with pytest.raises(StoreError, match=GPKG_REFUSED):
            twin.store.check_writable()
        # a run that saves nothing needs no write: it goes on (here into the stubbed engine)
        with pytest.raises(AssertionError, match="the flood engine ran"):
            twin.flood(duration="10min", save=False)
    assert _sha(read_only_gpkg) == before


def test_every_engine_claims_through_the_check(read_only_gpkg):
    with Twin.open(read_only_gpkg) as twin:
        for engine in ("simulation.flood", "traffic", "access", "sunlight", "viewshed", "crowd", "compare"):
            with pytest.raises(StoreError, match=GPKG_REFUSED):
                claim_run(twin.store, None, "r1", engine)
            with pytest.raises(StoreError, match=GPKG_REFUSED):
                claim_run(twin.store, None, None, engine)  # a new id, too
            assert claim_run(twin.store, None, "r1", engine, save=False) == "r1"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_gpkg_in_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "c.gpkg"
    Twin.create(path, name="ro").close()
    folder.chmod(0o555)  # the file may be written, but SQLite cannot make its journal beside it
    try:
        with Twin.open(path) as twin, pytest.raises(StoreError, match=GPKG_REFUSED):
            claim_run(twin.store, None, "r1", "simulation.flood")
    finally:
        folder.chmod(0o755)


def test_a_writable_gpkg_passes_and_the_check_writes_nothing(tmp_path):
    path = tmp_path / "c.gpkg"
    with Twin.create(path, name="rw") as twin:
        meta = twin.store.get_meta()
        twin.store.check_writable()
        assert claim_run(twin.store, None, "r1", "simulation.flood") == "r1"
        assert twin.store.get_meta() == meta and not twin.store.in_transaction
        with twin.store.transaction():  # inside a caller's transaction: a savepoint, the caller's write kept
            twin.store.set_meta({"note": 1})
            twin.store.check_writable()
        assert twin.store.get_meta() == {**meta, "note": 1}
    assert not Path(str(path) + "-journal").exists()


def test_a_file_another_process_writes_passes_at_once(tmp_path):
    """The probe does not wait out the 30 s busy timeout while another connection writes the file: the map
    server runs it holding its store lock (a job submit), so every request waited behind it (11.7 s for a
    GET /api/layers against 0.04 s, a code review of 2026-12-05). A busy file can be written, in turn: it passes,
    and the handle's own busy timeout is as before."""
    import sqlite3
    import time

    path = tmp_path / "busy.gpkg"
    Twin.create(path, name="busy").close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT OR REPLACE INTO twin_meta (key, value) VALUES ('other', '1')")
    try:
        with Twin.open(path) as twin:
            waits = twin.store._live().execute("PRAGMA busy_timeout").fetchone()[0]
            t0 = time.monotonic()
            twin.store.check_writable()
            assert time.monotonic() - t0 < 2.0
            assert twin.store._live().execute("PRAGMA busy_timeout").fetchone()[0] == waits > 0
    finally:
        other.execute("ROLLBACK")
        other.close()


# -- PostGIS -------------------------------------------------------------------------------------------


@pytest.fixture
def pg_twin(pg_dsn, pg_server):
    """A twin in a fresh schema, and a role made for the test (dropped after): ``(owner_dsn, role, dsn_as)``,
    where ``dsn_as(role)`` is the DSN of the twin as that role."""
    import psycopg
    from psycopg import sql

    Twin.create(pg_dsn, name="pgro").close()
    role = "fixstore_" + uuid.uuid4().hex[:8]
    schema = urlsplit(pg_dsn).query.split("schema=")[1]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(role)))
    parts = urlsplit(pg_dsn)
    host = parts.netloc.rsplit("@", 1)[-1]

    def grant(text: str) -> None:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL(text).format(schema=sql.Identifier(schema), role=sql.Identifier(role)))

    try:
        yield f"postgresql://{role}@{host}{parts.path}?{parts.query}", role, grant
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_role_that_may_only_read_is_refused_before_the_flood_runs(pg_twin, monkeypatch):
    dsn, role, _ = pg_twin
    _no_engine(monkeypatch)
    with Twin.open(dsn) as twin:
        with pytest.raises(StoreError) as err:
            twin.flood(duration="10min", run="storm")
        assert len(list_results(twin.store)) == 0
    msg = str(err.value)
    assert msg.startswith(f"cannot write {dsn}: permission denied: role '{role}' may not write this twin")
    assert "CREATE on schema" in msg and "INSERT, UPDATE and DELETE on twin_meta" in msg and "twin_rasters" in msg
    assert "nothing was changed. Connect as a role that may write" in msg
    assert msg.endswith("(checked before a flood run started: nothing was computed)")


def test_the_check_names_the_one_privilege_missing_and_passes_with_all(pg_twin):
    dsn, role, grant = pg_twin
    grant("GRANT CREATE ON SCHEMA {schema} TO {role}")
    grant("GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
    grant("REVOKE UPDATE ON {schema}.twin_rasters FROM {role}")
    with Twin.open(dsn) as twin:
        with pytest.raises(StoreError, match=r"it lacks UPDATE on twin_rasters\);"):
            claim_run(twin.store, None, "r1", "traffic")
        grant("GRANT UPDATE ON {schema}.twin_rasters TO {role}")
        twin.store.check_writable()
        assert claim_run(twin.store, None, "r1", "traffic") == "r1"


def test_a_read_only_session_is_refused(pg_twin):
    dsn, role, grant = pg_twin
    grant("GRANT CREATE ON SCHEMA {schema} TO {role}")
    grant("GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}")
    grant("ALTER ROLE {role} SET default_transaction_read_only = on")  # as on a standby: every write refused
    with Twin.open(dsn) as twin, pytest.raises(StoreError, match=r"cannot write .*the session is read-only.*"
                                                                 r"nothing was changed"):
        claim_run(twin.store, None, "r1", "access")


def test_the_owner_passes_without_a_trace(pg_dsn):
    with Twin.create(pg_dsn, name="rw") as twin:
        meta = twin.store.get_meta()
        twin.store.check_writable()
        with twin.store.transaction():
            twin.store.check_writable()
        assert claim_run(twin.store, None, "r1", "simulation.flood") == "r1"
        assert twin.store.get_meta() == meta
