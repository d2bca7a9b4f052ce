"""``twin backup`` / :func:`cim.store.gpkg.backup`: a GeoPackage twin copied while another connection writes it
is the twin at one moment (every transaction in it whole, or not at all) and opens as a twin. A plain file copy
during a write is not safe (the GeoPackage keeps SQLite's rollback journal: the file holds half-written pages
until the transaction ends)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from cim.store.gpkg import backup
from twin_core.cli import get_app
from twin_core.errors import StoreError, TwinError
from twin_core.twin import Twin

BATCH = 200  # rows each writer transaction adds: a consistent copy holds every batch whole


@pytest.fixture
def twin_file(tmp_path):
    path = tmp_path / "live.gpkg"
    with Twin.create(path, name="live") as t:
        t.store.write_table("log", pd.DataFrame({"batch": [0] * BATCH, "i": range(BATCH)}))
    return path


def _check_copy(path) -> int:
    """The copy's batches are all whole; returns how many it holds."""
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = con.execute("SELECT batch, count(*) FROM log GROUP BY batch").fetchall()
    finally:
        con.close()
    assert counts and all(n == BATCH for _, n in counts), counts
    with Twin.open(path) as t:  # it opens as a twin, reads as one
        assert t.store.get_meta()["crs"] == "EPSG:4544"
        assert len(t.store.read_table("log")) == BATCH * len(counts)
    return len(counts)


def test_a_backup_taken_while_another_connection_writes_is_consistent(twin_file, tmp_path):
    stop = threading.Event()
    written = []
    errors: list[BaseException] = []

    def writer():
        con = sqlite3.connect(twin_file, timeout=30, isolation_level=None)
        try:
            k = 1
            while not stop.is_set():
                con.execute("BEGIN IMMEDIATE")
                for i in range(BATCH):  # one row at a time: the transaction stays open a while
                    con.execute("INSERT INTO log (batch, i) VALUES (?, ?)", (k, i))
                con.execute("COMMIT")
                written.append(k)
                k += 1
                time.sleep(0.002)  # as a server writes: in bursts, not holding the file every instant
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)
        finally:
            con.close()

    th = threading.Thread(target=writer)
    th.start()
    try:
        seen = []
        deadline = time.monotonic() + 20
        while len(seen) < 5 and time.monotonic() < deadline:
            if not written:
                time.sleep(0.01)
                continue
            copy = backup(twin_file, tmp_path / f"copy{len(seen)}.gpkg")
            seen.append(_check_copy(copy))
    finally:
        stop.set()
        th.join(60)
    assert not errors, errors
    assert len(seen) == 5 and len(written) >= 1
    assert seen == sorted(seen) and seen[-1] > 1  # copies of later moments hold more batches, whole


def test_backup_refuses_what_would_lose_data(twin_file, tmp_path):
    dest = tmp_path / "b.gpkg"
    backup(twin_file, dest)
    with pytest.raises(StoreError, match="exists; give another file, or replace it"):
        backup(twin_file, dest)
    backup(twin_file, dest, force=True)
    with pytest.raises(StoreError, match="is the twin itself"):
        backup(twin_file, twin_file, force=True)
    with pytest.raises(StoreError, match="needs a '.gpkg' name"):
        backup(twin_file, tmp_path / "b.sqlite")
    not_a_twin = tmp_path / "junk.gpkg"
    not_a_twin.write_bytes(b"not sqlite")
    with pytest.raises(TwinError, match="not a GeoPackage"):
        backup(not_a_twin, tmp_path / "c.gpkg")
    assert not (tmp_path / "c.gpkg").exists()


def test_the_cli_backs_up_and_points_postgis_to_pg_dump(twin_file, tmp_path):
    dest = tmp_path / "cli.gpkg"
    res = CliRunner().invoke(get_app(), ["backup", str(twin_file), str(dest)])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"backed up {twin_file} to {dest}")
    assert _check_copy(dest) == 1
    res = CliRunner().invoke(get_app(), ["backup", str(twin_file), str(dest), "-q", "--force"])
    assert res.exit_code == 0 and res.stdout == ""
    res = CliRunner().invoke(get_app(), ["backup", "postgresql://u:secret@db/x?schema=city", str(dest)])
    assert res.exit_code != 0 and "pg_dump --schema=city" in str(res.exception)
    assert "secret" not in str(res.exception)


def test_a_twin_busy_with_a_long_write_is_waited_for_not_called_damaged(twin_file):
    """Opening a twin while another connection held the file's exclusive lock for more than 5 s (SQLite's
    default wait) said "a damaged SQLite/GeoPackage file (database is locked); restore it from a backup"."""
    locked, release = threading.Event(), threading.Event()

    def holder():
        con = sqlite3.connect(twin_file, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")  # readers wait, as while a large write commits
            locked.set()
            release.wait(30)
            con.execute("COMMIT")
        finally:
            con.close()

    th = threading.Thread(target=holder)
    th.start()
    try:
        assert locked.wait(10)
        threading.Timer(6.0, release.set).start()
        t0 = time.monotonic()
        with Twin.open(twin_file) as t:
            assert len(t.store.read_table("log")) == BATCH
        assert time.monotonic() - t0 >= 5.5
    finally:
        release.set()
        th.join(30)
