"""A GeoPackage twin whose last write was killed before its commit (``kill -9`` mid-import) keeps SQLite's hot
rollback journal beside it. The store checked the file on a read-only connection, which may not roll the journal
back, and called the twin "a damaged SQLite/GeoPackage file (attempt to write a readonly database)" in every
command although its data was intact. It is now rolled back on open (with a warning saying so) and the twin is
as it was before that write; where the file may not be written, the error says that and what to do.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cim.store import open_store
from cim.store.gpkg import backup
from twin_core.cli import get_app
from twin_core.errors import CorruptStoreError, StorePermissionError
from twin_core.twin import Twin

_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")


def _kill_mid_write(path: Path) -> Path:
    """A child process begins a write transaction on ``path``, deletes every building, adds rows (a small page
    cache, so changed pages reach the file before the commit, as in a large import) and is killed with
    SIGKILL before it commits. Returns the journal it leaves."""
    child = textwrap.dedent(f"""
        import sqlite3, time
        con = sqlite3.connect({str(path)!r}, isolation_level=None)
        con.execute("PRAGMA cache_size = 5")
        con.execute("BEGIN IMMEDIATE")
        con.execute("DELETE FROM buildings")
        con.execute("INSERT OR REPLACE INTO twin_meta (key, value) VALUES ('half', '1')")
        con.execute("CREATE TABLE half_import (a BLOB)")
        con.executemany("INSERT INTO half_import VALUES (?)", [(b'x' * 4000,) for _ in range(400)])
        print("writing", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
    journal = path.with_name(path.name + "-journal")
    # a hot journal: there, its header synced (SQLite writes the magic before changing the file)
    assert journal.exists() and journal.read_bytes()[:8] == _JOURNAL_MAGIC
    return journal


@pytest.fixture
def killed(small_city_gpkg, tmp_path):
    path = tmp_path / "j.gpkg"
    shutil.copyfile(small_city_gpkg, path)
    with Twin.open(path) as twin:
        before = twin.layer("buildings")
        layers = twin.store.list_layers()
    journal = _kill_mid_write(path)
    return path, journal, before, layers


def test_a_write_killed_before_its_commit_is_rolled_back_on_open(killed):
    path, journal, before, layers = killed
    with pytest.warns(Warning, match=r"rolled back an interrupted write \(journal file .*j\.gpkg-journal\); the "
                                     r"twin is as it was before that write"):
        twin = Twin.open(path)
    with twin:
        assert twin.store.list_layers() == layers
        after = twin.layer("buildings")
        assert len(after) == len(before) > 0
        assert sorted(after.columns) == sorted(before.columns)
        assert "half" not in twin.store.get_meta()
    assert not journal.exists()
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_import'").fetchone()[0] == 0
    finally:
        con.close()


def test_the_cli_and_backup_read_the_twin_after_the_kill(killed, tmp_path):
    path, journal, before, layers = killed
    with pytest.warns(Warning, match="rolled back an interrupted write"):
        res = CliRunner().invoke(get_app(), ["layers", str(path)])
    assert res.exit_code == 0, res.output
    assert "damaged" not in res.output and "buildings" in res.output
    dest = backup(path, tmp_path / "copy.gpkg")
    s = open_store(dest)
    try:
        assert len(s.read_layer("buildings")) == len(before)
    finally:
        s.close()


def test_a_killed_write_on_a_file_that_may_not_be_written_says_so(killed):
    """The rollback needs the file written: an immutable file (chattr +i, which binds root too) is refused
    with what to do, not called damaged; made writable again, it opens with its data."""
    path, journal, before, layers = killed
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                         capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed here")
    try:
        with pytest.raises(StorePermissionError, match=r"j\.gpkg holds an interrupted write \(journal file "
                                                      r".*j\.gpkg-journal\) .*read-only.*chmod u\+w.*copy j\.gpkg "
                                                      r"together with its j\.gpkg-journal file") as info:
            Twin.open(path)
        assert "damaged" not in str(info.value)
        assert journal.exists()
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    with pytest.warns(Warning, match="rolled back an interrupted write"):
        twin = Twin.open(path)
    with twin:
        assert len(twin.layer("buildings")) == len(before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_killed_write_in_a_read_only_folder_says_so(killed):
    path, journal, before, layers = killed
    os.chmod(path.parent, 0o555)
    try:
        with pytest.raises(StorePermissionError, match=r"interrupted write .*read-only.*together with its "
                                                      r"j\.gpkg-journal file"):
            Twin.open(path)
    finally:
        os.chmod(path.parent, 0o755)
    assert journal.exists()


def test_a_really_damaged_file_is_still_called_damaged(small_city_gpkg, tmp_path):
    path = tmp_path / "bad.gpkg"
    data = bytearray(Path(small_city_gpkg).read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[2 * page:len(data) - page] = b"\xa5" * (len(data) - 3 * page)  # every page but the first and last
    path.write_bytes(bytes(data))
    path.with_name(path.name + "-journal").write_bytes(b"")  # a journal left, not hot
    with pytest.raises(CorruptStoreError, match="damaged SQLite/GeoPackage file"):
        open_store(path)
