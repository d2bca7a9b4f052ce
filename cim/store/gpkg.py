"""GeoPackage store: the whole twin in one ``.gpkg`` file.

Vector layers are ordinary GeoPackage feature tables written by GDAL (through
pyogrio) with their R-tree index; rasters are GeoPackage 2D gridded coverages
(Float32, written by GDAL through rasterio), so ``ogrinfo`` and rasterio read
the file. Tables are GeoPackage attribute tables. Blobs and metadata live in
``twin_*`` tables. Reads go through SQLite directly with bound parameters.

Transactions are SQLite's own (rollback journal): every write, and every
:meth:`GeoPackageStore.transaction` block, is one SQLite transaction on the
store's connection, so its cost is that of the rows written, not of the file,
and a crash mid-write is rolled back by SQLite the next time the file is
opened. GDAL commits on its own connection, so layers and rasters are first
written by GDAL into a fresh side GeoPackage in a temporary folder, then
copied, tables, R-tree, triggers and ``gpkg_*`` rows, into the store inside
the transaction (:meth:`GeoPackageStore._merge_side`).

The layout of the store's own tables is ``format_version`` in ``twin_meta``
(:data:`cim.store.base.FORMAT_VERSION`): stamped when the file is made, and on a
twin without it (an older one, layout 1) when it is first opened where it may be
written; a file of a newer version is refused, naming both versions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import struct
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from cim.raster import Raster, Window
from cim.store.base import (FORMAT_KEY, FORMAT_VERSION, Store, Where, check_format, meta_rows, append_geometry_type, check_append_dims, check_blob, check_bbox,
                            check_delete_filter, check_index_columns, cast_for_append, check_mode, check_no_nul,
                            duplicate_values_error,
                            check_name, check_paging, column_from_values, feature_values, index_name, normalise_where,
                            repeated_values_error,
                            prepare_frame, prepare_table, raster_window, value_kind)
from twin_core.errors import (
    CorruptStoreError,
    LayerNotFoundError,
    RasterError,
    StoreConnectionError,
    StorePermissionError,
    SchemaError,
    StoreError,
    TwinWarning,
    twin_warn,
)

__all__ = ["GeoPackageStore", "backup"]

_GPKG_APP_ID = 0x47504B47  # 'GPKG'
_ENV_LEN = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}

#: GeoPackage tables whose rows carry an autoincrement ``id`` of their own (renumbered on merge)
_META_ONLY_NEW_ID = frozenset({"gpkg_2d_gridded_tile_ancillary", "gpkg_2d_gridded_coverage_ancillary"})

_INTERNAL_DDL = [
    "CREATE TABLE IF NOT EXISTS twin_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS twin_blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL, mime TEXT, "
    "layer TEXT, feature_id TEXT, size INTEGER, created TEXT)",
    "CREATE TABLE IF NOT EXISTS twin_rasters (name TEXT PRIMARY KEY, nodata REAL, unit TEXT, meta TEXT)",
]


def _qi(name: str) -> str:
    """Quote an SQLite identifier (names are validated before they get here)."""
    return '"' + name.replace('"', '""') + '"'


def _decode_gpkg_geoms(blobs: Sequence[bytes | None]):
    import shapely

    wkbs: list[bytes | None] = []
    for b in blobs:
        if b is None:
            wkbs.append(None)
            continue
        if b[:2] != b"GP":
            raise CorruptStoreError("a geometry blob is not GeoPackage binary (no 'GP' magic); the file is damaged")
        flags = b[3]
        wkbs.append(bytes(b[8 + _ENV_LEN.get((flags >> 1) & 7, 0):]))
    return shapely.from_wkb(np.array(wkbs, dtype=object))


class GeoPackageStore(Store):
    """A twin held in one GeoPackage file.

    Parameters
    ----------
    path : str or Path
        The ``.gpkg`` file.
    create : bool
        Create the file if it does not exist (otherwise a missing file is an error).
    crs : str, optional
        CRS to record when creating (e.g. ``"EPSG:4544"``).

    Examples
    --------
    >>> import tempfile, os, geopandas as gpd, shapely
    >>> from cim.store import open_store
    >>> path = os.path.join(tempfile.mkdtemp(), "doc.gpkg")
    >>> store = open_store(path, create=True, crs="EPSG:4544")
    >>> gdf = gpd.GeoDataFrame({"h": [10.0]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4544")
    >>> store.write_layer("blocks", gdf)
    1
    >>> store.read_layer("blocks")["h"].tolist()
    [10.0]
    >>> store.close()
    """

    kind = "gpkg"

    def __init__(self, path: str | os.PathLike, *, create: bool = False, crs: str | None = None) -> None:
        self.path = Path(path)
        self.uri = str(self.path)
        self._txn_depth = 0
        self._layers_cache: list[str] | None = None
        snap = self.path.with_name(self.path.name + ".txn")
        if snap.exists():  # the whole-file copy an earlier RongTwin version took before each write
            if self.path.exists():
                twin_warn(
                    f"{self.path} has an unfinished transaction from an earlier run; restoring the copy taken "
                    "before it, so the store is as it was before that write",
                    TwinWarning,
                    stacklevel=2,
                )
            os.replace(snap, self.path)
        if not self.path.exists():
            if not create:
                raise StoreConnectionError(_missing_file(self.path))
            self._create()
        self._check_file()
        if not create and not self._holds_twin():
            raise StoreConnectionError(_not_a_twin(self.path))
        self._con = self._connect()
        try:
            self._ensure_internal()
            self._check_format()
        except BaseException:
            self.close()
            raise
        if crs is not None and self.crs is None:  # read once and kept (Store.crs)
            from pyproj import CRS

            self.set_meta({"crs": CRS.from_user_input(crs).to_string()})

    # -- file handling -----------------------------------------------------
    def _create(self) -> None:
        import pyogrio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # GDAL writes the GeoPackage core tables; twin_meta starts life as an attributes table.
        df = pd.DataFrame({"created": [_now()]})
        try:
            pyogrio.write_dataframe(df, self.path, layer="twin_init", driver="GPKG")
        except Exception as exc:  # pragma: no cover - disk full, permissions
            raise StoreConnectionError(f"cannot create GeoPackage {self.path}: {exc}") from exc
        con = sqlite3.connect(self.path)
        try:
            con.execute("DROP TABLE twin_init")
            for meta in ("gpkg_contents", "gpkg_ogr_contents"):
                if _has_table(con, meta):
                    con.execute(f"DELETE FROM {meta} WHERE table_name = 'twin_init'")
            for ddl in _INTERNAL_DDL:
                con.execute(ddl)
            con.executemany("INSERT INTO twin_meta (key, value) VALUES (?, ?)",
                            [("created", json.dumps(_now())), (FORMAT_KEY, json.dumps(FORMAT_VERSION))])
            con.commit()
        finally:
            con.close()

    def _check_file(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(100)
        except OSError as exc:
            raise StoreConnectionError(f"cannot read {self.path}: {exc}") from exc
        if not head.startswith(b"SQLite format 3\x00"):
            raise CorruptStoreError(
                f"{self.path} is not a GeoPackage (not an SQLite database): it is damaged or another kind of file. "
                "Restore it from a backup or rebuild it with `twin build`."
            )
        try:
            try:
                app_id, ok = self._probe_file()
            except sqlite3.OperationalError as exc:
                side = self._leftover_journal()
                if side is None or not _needs_rollback(exc):
                    raise
                # a write killed before its commit left a hot journal (or WAL): a read-only open may not roll
                # it back and says "attempt to write a readonly database"; one read-write open does, then check
                self._roll_back_interrupted(side)
                app_id, ok = self._probe_file()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise CorruptStoreError(
                    f"{self.path} is a damaged SQLite/GeoPackage file ({exc}); restore it from a backup or rebuild it"
                ) from exc
            # a file that another connection kept writing for 30 s: busy, not damaged (it said "damaged")
            raise StoreConnectionError(f"cannot open {self.path}: another program has been writing it for 30 s "
                                       f"({exc}); try again when it is done") from exc
        except sqlite3.DatabaseError as exc:
            raise CorruptStoreError(
                f"{self.path} is a damaged SQLite/GeoPackage file ({exc}); restore it from a backup or rebuild it"
            ) from exc
        if app_id != _GPKG_APP_ID or not ok:
            raise CorruptStoreError(
                f"{self.path} is an SQLite database but not a GeoPackage (application_id {app_id:#x}, "
                "gpkg_contents missing); open a .gpkg made by RongTwin or GDAL"
            )

    def reopen_args(self) -> tuple[str, str | None]:
        return str(self.path), None

    def _probe_file(self) -> tuple[int, bool]:
        """The file's application id and whether it has the GeoPackage core tables, read on a read-only
        connection after ``PRAGMA quick_check`` (raises sqlite3's error for a damaged file)."""
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)  # a write's lock: wait
        try:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            ok = _has_table(con, "gpkg_contents") and _has_table(con, "gpkg_spatial_ref_sys")
            con.execute("PRAGMA quick_check").fetchone()
        finally:
            con.close()
        return app_id, ok

    def _leftover_journal(self) -> Path | None:
        """The rollback journal (``FILE-journal``) or write-ahead log (``FILE-wal``) beside the file, if any."""
        for suffix in ("-journal", "-wal"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                return side
        return None

    def _roll_back_interrupted(self, side: Path) -> None:
        """Let SQLite roll back the write a killed process left in ``side`` (its hot journal): one read-write
        open and read does it, under SQLite's own locks, and restores the file as it was before that write.
        Raises StorePermissionError when the file or its folder may not be written, so it cannot be done."""
        def refused(why: str) -> StorePermissionError:
            return StorePermissionError(
                f"{self.path} holds an interrupted write (journal file {side}) that SQLite must roll back before "
                f"the twin can be read, and it cannot: {why}. Make the file and its folder writable (chmod u+w "
                f"FILE and its folder) and open it again, or copy {self.path.name} together with its {side.name} "
                "file into a folder you may write and open the copy there; the data is intact")

        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not os.access(self.path, os.W_OK) or not os.access(folder, os.W_OK):
            raise refused("the file or its folder is read-only")
        try:
            con = sqlite3.connect(self.path, timeout=30)  # read-write: the first read rolls the journal back
            try:
                con.execute("PRAGMA schema_version").fetchone()
            finally:
                con.close()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if _needs_rollback(exc) or "disk I/O" in text or "unable to open" in text:
                raise refused(f"the file or its folder is read-only ({text})") from None
            raise  # busy for 30 s, or damaged: said as such by the caller
        twin_warn(f"{self.path}: rolled back an interrupted write (journal file {side}); the twin is as it was "
                  "before that write", TwinWarning, stacklevel=3)

    def _holds_twin(self) -> bool:
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return _has_table(con, "twin_meta")
        finally:
            con.close()

    def _connect(self) -> sqlite3.Connection:
        return _with_gpkg_functions(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                                    timeout=30))

    def _ensure_internal(self) -> None:
        for ddl in _INTERNAL_DDL:
            self._con.execute(ddl)

    def _check_format(self) -> None:
        """Refuse a twin of a newer format version (:func:`~cim.store.base.check_format`); stamp the version on a
        twin without one (layout 1), unless the file may not be written now (read-only, or another connection
        writing it: stamped at a later open). Nothing else is written."""
        con = self._con
        row = con.execute("SELECT value FROM twin_meta WHERE key = ?", (FORMAT_KEY,)).fetchone()
        if row is not None:
            try:
                version = json.loads(row[0])
            except ValueError:
                version = row[0]
            check_format(version, self.uri)
            return
        waited = con.execute("PRAGMA busy_timeout").fetchone()[0]
        con.execute("PRAGMA busy_timeout = 0")  # a file another process writes: not stamped now, no wait
        try:
            con.execute("INSERT OR IGNORE INTO twin_meta (key, value) VALUES (?, ?)",
                        (FORMAT_KEY, json.dumps(FORMAT_VERSION)))
        except sqlite3.OperationalError as exc:
            if write_refused(exc) is None and "locked" not in str(exc) and "busy" not in str(exc):
                raise
        finally:
            con.execute(f"PRAGMA busy_timeout = {int(waited)}")

    def close(self) -> None:
        self._forget_crs()  # a closed store says so (StoreError), as before, rather than a CRS kept
        con = getattr(self, "_con", None)
        if con is not None:
            con.close()
            self._con = None  # type: ignore[assignment]

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._live().execute(sql, params)

    def _live(self) -> sqlite3.Connection:
        if self._con is None:
            raise StoreError(f"the store {self.uri} is closed; open it again")
        return self._con

    def check_writable(self, before: str | None = None) -> None:
        """:meth:`Store.check_writable`: one row written into ``twin_meta`` and rolled back at once, which
        SQLite refuses for a file it opened read-only (permission bits, ``chattr +i``, a read-only mount) and
        for a folder it cannot make its journal in. Inside a caller's transaction it is a savepoint. A file
        another connection is writing (busy for the 30 s a write waits) passes: it can be written, in turn."""
        con = self._live()
        probe = "INSERT OR REPLACE INTO twin_meta (key, value) VALUES ('twin:write-check', 'null')"
        # no busy wait: a file another process is writing answers "locked" at once (and passes) instead of
        # after 30 s, while the caller (the map server's job submit) holds its store lock and every request waits
        waited = con.execute("PRAGMA busy_timeout").fetchone()[0]
        con.execute("PRAGMA busy_timeout = 0")
        try:
            if con.in_transaction:
                con.execute("SAVEPOINT twin_write_check")
                try:
                    con.execute(probe)
                finally:
                    con.execute("ROLLBACK TO twin_write_check")
                    con.execute("RELEASE twin_write_check")
            else:
                con.execute("BEGIN IMMEDIATE")
                try:
                    con.execute(probe)
                finally:
                    con.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            msg = write_refused(exc, self.uri)
            if msg is not None:
                raise StoreError(msg + self._checked_before(before)) from None
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        finally:
            con.execute(f"PRAGMA busy_timeout = {int(waited)}")

    # -- metadata ------------------------------------------------------------
    def get_meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._exec("SELECT key, value FROM twin_meta").fetchall()}

    def set_meta(self, values: Mapping[str, Any]) -> None:
        rows = meta_rows(values)  # NaN and NUL refused as in PostGIS
        if self._touches_crs(values):
            self._forget_crs()
        with self._sql_txn():
            self._con.executemany("INSERT OR REPLACE INTO twin_meta (key, value) VALUES (?, ?)", rows)

    def delete_meta(self, keys: Sequence[str]) -> None:
        if self._touches_crs(keys):
            self._forget_crs()
        with self._sql_txn():
            self._con.executemany("DELETE FROM twin_meta WHERE key = ?", [(k,) for k in keys])

    def _crs_keepable(self) -> bool:
        """:meth:`Store._crs_keepable`: also not inside an SQLite transaction opened outside :meth:`transaction`."""
        return self._txn_depth == 0 and self._con is not None and not self._con.in_transaction

    @contextmanager
    def _sql_txn(self) -> Iterator[None]:
        """One SQLite transaction, or a savepoint inside the one already open (so a failed step
        inside a caller's block that goes on undoes that step and only that step)."""
        if self._live().in_transaction:
            self._con.execute("SAVEPOINT twin_step")
            try:
                yield
            except BaseException:
                self._con.execute("ROLLBACK TO twin_step")
                self._con.execute("RELEASE twin_step")
                raise
            else:
                self._con.execute("RELEASE twin_step")
            return
        try:
            self._con.execute("BEGIN IMMEDIATE")  # the write lock now: no deadlock upgrading a read lock later
            try:
                yield
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            else:
                self._con.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            msg = write_refused(exc, self.uri)
            if msg is None:
                raise
            raise StoreError(msg) from exc

    @contextmanager
    def _side_file(self) -> Iterator[Path]:
        """A fresh GeoPackage path for GDAL to write into, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="rongtwin-side-") as tmp:
            yield Path(tmp) / "side.gpkg"

    @contextmanager
    def _attached(self, side: Path) -> Iterator[bool]:
        """ATTACH the side file when no transaction is open (SQLite cannot attach inside one), so the
        merge copies rows with ``INSERT ... SELECT`` inside SQLite; inside a caller's transaction the
        rows are streamed through Python instead. Yields whether it is attached."""
        if self._live().in_transaction:
            yield False
            return
        self._con.execute("ATTACH DATABASE ? AS twin_side", (str(side),))  # a plain path: URI support varies
        try:
            yield True
        finally:
            self._con.execute("DETACH DATABASE twin_side")

    @contextmanager
    def _side_reader(self, side: Path) -> Iterator[sqlite3.Connection]:
        src = sqlite3.connect(f"file:{side}?mode=ro", uri=True)
        try:
            yield src
        finally:
            src.close()

    def _copy_rows(self, src: sqlite3.Connection, attached: bool, table: str, cols: list[str], *,
                   verb: str = "INSERT", into: list[str] | None = None, remap=None) -> None:
        """Rows of the side file's ``table`` (columns ``cols``) into this store's table of that name (as
        columns ``into``): inside SQLite when the side file is attached, else streamed through Python
        (``remap`` rewrites each row on the way)."""
        names = ", ".join(_qi(c) for c in cols)
        target = ", ".join(_qi(c) for c in (into or cols))
        if attached and remap is None:
            self._con.execute(f"{verb} INTO main.{_qi(table)} ({target}) SELECT {names} FROM twin_side.{_qi(table)}")
            return
        rows = src.execute(f"SELECT {names} FROM {_qi(table)}")  # streamed: the cursor is an iterator
        self._con.executemany(f"{verb} INTO {_qi(table)} ({target}) VALUES ({', '.join('?' * len(cols))})",
                              rows if remap is None else map(remap, rows))

    def _merge_side(self, src: sqlite3.Connection, attached: bool) -> None:
        """Copy everything GDAL wrote into a fresh side GeoPackage into this store (inside the open
        transaction): the data tables with their rows (feature or tile table; an R-tree as its node
        tables, byte for byte, so it is not rebuilt row by row), then the ``gpkg_*`` rows that describe
        them, then their indexes and triggers (after the rows, so the R-tree and feature-count
        triggers do not fire on the copy)."""
        master = src.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        have = {r[0] for r in self._con.execute("SELECT name FROM sqlite_master")}
        virtual = [n for t, n, _, q in master if t == "table" and q.upper().startswith("CREATE VIRTUAL")]
        shadow = [f"{v}_{suffix}" for v in virtual for suffix in ("node", "parent", "rowid")]
        tables = [(n, q) for t, n, _, q in master if t == "table" and n not in shadow]
        for n, q in tables:  # gpkg_* tables this store lacks yet (a first raster ...) and the new objects
            if n not in have:
                self._con.execute(q)
        for n in shadow:  # the new R-tree's nodes as GDAL packed them
            self._con.execute(f"DELETE FROM {_qi(n)}")
        srs = self._srs_ids_for(src)
        for n in [n for n, _ in tables if n not in virtual] + shadow:
            if n == "gpkg_spatial_ref_sys":
                continue  # done by _srs_ids_for
            here = {r[1] for r in self._con.execute(f"PRAGMA table_info({_qi(n)})")}
            cols = [r[1] for r in src.execute(f"PRAGMA table_info({_qi(n)})") if r[1] in here]
            if n in _META_ONLY_NEW_ID:  # its own autoincrement id: new ones here
                cols = [c for c in cols if c != "id"]
            if n == "gpkg_extensions":  # rows shared by objects (NULL columns: no UNIQUE conflict to lean on)
                self._merge_extensions(src, cols)
                continue
            remap = None
            if "srs_id" in cols and any(a != b for a, b in srs.items()):
                k = cols.index("srs_id")
                remap = lambda r, k=k: r[:k] + (srs.get(r[k], r[k]),) + r[k + 1:]  # noqa: E731
            # gpkg_* rows describe the new objects; a new object's own table: the old one was dropped before
            self._copy_rows(src, attached, n, cols, verb="INSERT OR REPLACE" if n.startswith("gpkg_") else "INSERT",
                            remap=remap)
        for t, n, _, q in master:
            if t in ("index", "trigger") and n not in have:
                self._con.execute(q)

    # -- contents --------------------------------------------------------------
    def _contents(self, data_type: str) -> list[str]:
        rows = self._exec(
            "SELECT table_name FROM gpkg_contents WHERE data_type = ? ORDER BY table_name", (data_type,)
        ).fetchall()
        return [r[0] for r in rows if not r[0].startswith("twin_")]

    def list_layers(self) -> list[str]:
        return self._contents("features")

    def list_rasters(self) -> list[str]:
        coverages = self._contents("2d-gridded-coverage")
        return coverages + [n for n in self._contents("tiles") if n not in coverages]

    def list_tables(self) -> list[str]:
        return self._contents("attributes")

    def _columns(self, name: str) -> list[tuple[str, str]]:
        return [(r[1], (r[2] or "").upper()) for r in self._exec(f"PRAGMA table_info({_qi(name)})").fetchall()]

    def _geom_column(self, name: str) -> str:
        row = self._exec("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (name,)).fetchone()
        if row is None:
            raise LayerNotFoundError(f"no layer {name!r} in {self.uri}; layers here: {self.list_layers()}")
        return row[0]

    # -- vector layers -----------------------------------------------------------
    def write_layer(self, name: str, gdf, mode: str = "replace") -> int:
        import pyogrio

        check_name(name)
        check_mode(mode)
        self._check_crs(gdf, name)
        if name in self.list_rasters() or name in self.list_tables():
            raise StoreError(f"{name!r} already names a raster or table in {self.uri}; pick another layer name")
        gdf = prepare_frame(gdf)
        check_no_nul(gdf)
        exists = name in self.list_layers()
        if mode == "append" and exists:
            cols = dict(self._columns(name))
            have = set(cols) - {"fid", self._geom_column(name)}
            new = set(c for c in gdf.columns if c != gdf.geometry.name)
            if not new <= have:
                raise SchemaError(f"cannot append to {name!r}: columns {sorted(new - have)} are not in the layer ({sorted(have)})")
            row = self._con.execute("SELECT z, geometry_type_name FROM gpkg_geometry_columns WHERE table_name = ?",
                                    (name,)).fetchone()
            check_append_dims(name, bool(row and row[0] == 1), gdf)
            gtype, gdf = append_geometry_type(row[1] if row else None, gdf)
            gdf = cast_for_append(gdf, {c: _dtype_name(cols[c]) for c in new}, name)
        with self._side_file() as side:
            pyogrio.write_dataframe(gdf, side, layer=name, driver="GPKG",
                                    layer_options={"FID": "fid", "GEOMETRY_NAME": "geom"})
            _patch_side_values(side, name, gdf)
            with self._attached(side) as attached, self._sql_txn(), self._side_reader(side) as src:
                if (name in self.list_layers()) != exists:  # another writer created or dropped it meanwhile
                    if mode == "append":
                        raise StoreError(f"layer {name!r} was {'dropped' if exists else 'created'} by another writer "
                                         "while this append was prepared; nothing was written: run it again")
                    exists = not exists
                if mode == "append" and exists:
                    self._append_side(src, attached, name)
                    self._con.execute("UPDATE gpkg_geometry_columns SET geometry_type_name = ? WHERE table_name = ? "
                                      "AND geometry_type_name != ?", (gtype, name, gtype))
                    # GDAL stamps last_change as it writes the side file: a replace brings the new stamp along,
                    # an append copies rows only, so the layer's is set here (see layer_written)
                    self._con.execute("UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                                      "WHERE lower(table_name) = lower(?)", (name,))
                    self._grow_extent(src, name)
                else:
                    if exists:
                        self._drop_feature_table(name)
                    self._merge_side(src, attached)
        return len(gdf)

    def _merge_extensions(self, src: sqlite3.Connection, cols: list[str]) -> None:
        key = [cols.index(c) for c in ("table_name", "column_name", "extension_name")]
        names = ", ".join(_qi(c) for c in cols)
        seen = {tuple(r[k] for k in key) for r in self._con.execute(f"SELECT {names} FROM gpkg_extensions")}
        new = [r for r in src.execute(f"SELECT {names} FROM gpkg_extensions") if tuple(r[k] for k in key) not in seen]
        self._con.executemany(f"INSERT INTO gpkg_extensions ({names}) VALUES ({', '.join('?' * len(cols))})", new)

    def _srs_ids_for(self, src: sqlite3.Connection) -> dict[int, int]:
        """Map the side file's spatial reference ids to this store's, adding the ones it lacks (GDAL numbers
        a CRS without an EPSG code from 100000 in each file, so equal ids may name different CRSs)."""
        here = {r[1] for r in self._con.execute("PRAGMA table_info(gpkg_spatial_ref_sys)")}
        cols = [r[1] for r in src.execute("PRAGMA table_info(gpkg_spatial_ref_sys)") if r[1] in here]
        k_id, k_def = cols.index("srs_id"), cols.index("definition")
        k_org, k_code = cols.index("organization"), cols.index("organization_coordsys_id")
        mine, by_def, by_code = {}, {}, {}
        for i, d, org, code in self._con.execute(
                "SELECT srs_id, definition, organization, organization_coordsys_id FROM gpkg_spatial_ref_sys"):
            mine[i], by_def[d] = d, i
            if (org or "").upper() == "EPSG":
                by_code[code] = i
        out: dict[int, int] = {}
        for row in src.execute(f"SELECT {', '.join(_qi(c) for c in cols)} FROM gpkg_spatial_ref_sys"):
            sid, definition = row[k_id], row[k_def]
            code = row[k_code] if (row[k_org] or "").upper() == "EPSG" else None
            if mine.get(sid) == definition:
                out[sid] = sid
            elif code is not None and code in by_code:  # the same EPSG CRS (its WKT may differ by GDAL version)
                out[sid] = by_code[code]
            elif definition in by_def:
                out[sid] = by_def[definition]
            else:
                new = sid if sid not in mine else max(max(mine), 99_999) + 1
                row = row[:k_id] + (new,) + row[k_id + 1:]
                self._con.execute(f"INSERT INTO gpkg_spatial_ref_sys ({', '.join(_qi(c) for c in cols)}) "
                                  f"VALUES ({', '.join('?' * len(cols))})", row)
                mine[new], by_def[definition], out[sid] = definition, new, new
        return out

    def _append_side(self, src: sqlite3.Connection, attached: bool, name: str) -> None:
        """Append the rows of the side file's layer (new fids here; the R-tree and feature-count triggers
        of the layer keep its index and count up to date)."""
        geom = self._geom_column(name)
        cols = [r[1] for r in src.execute(f"PRAGMA table_info({_qi(name)})") if r[1] != "fid"]
        self._copy_rows(src, attached, name, cols, into=[geom if c == "geom" else c for c in cols])

    def _grow_extent(self, src: sqlite3.Connection, name: str) -> None:
        """Widen layer ``name``'s extent in ``gpkg_contents`` to take in the rows just appended from the side file
        ``src`` (GDAL wrote their extent there). An append copied rows only, so the extent stayed the old rows'
        and ``layer_info`` gave bounds without the new ones. A layer without an extent (empty, or written by a
        tool that left none) gets its exact one."""
        new = src.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE lower(table_name) = lower(?)",
                          (name,)).fetchone()
        have = self._con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE lower(table_name) = "
                                 "lower(?)", (name,)).fetchone()
        if new is None or None in new:  # no live geometry appended
            return
        if have is None or None in have:
            box = self._exact_extent(name, self._geom_column(name))
        else:
            box = (min(have[0], new[0]), min(have[1], new[1]), max(have[2], new[2]), max(have[3], new[3]))
        self._con.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE lower(table_name) "
                          "= lower(?)", (*box, name))

    def _drop_feature_table(self, name: str) -> None:
        geom = self._geom_column(name)
        with self._sql_txn():
            for t in (f"rtree_{name}_{geom}",):
                self._con.execute(f"DROP TABLE IF EXISTS {_qi(t)}")
            self._con.execute(f"DROP TABLE IF EXISTS {_qi(name)}")
            for meta in ("gpkg_geometry_columns", "gpkg_contents", "gpkg_ogr_contents", "gpkg_extensions", "gpkg_data_columns"):
                if _has_table(self._con, meta):
                    self._con.execute(f"DELETE FROM {meta} WHERE lower(table_name) = lower(?)", (name,))

    def read_layer(
        self,
        name: str,
        *,
        bbox=None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ):
        import geopandas as gpd

        self._require_layer(name)
        geom = self._geom_column(name)
        cols = [(c, t) for c, t in self._columns(name) if c not in ("fid", geom)]
        colnames = [c for c, _ in cols]
        if columns is not None:
            unknown = [c for c in columns if c not in colnames]
            if unknown:
                raise SchemaError(f"layer {name!r} has no column(s) {unknown}; it has {colnames}")
            cols = [(c, t) for c, t in cols if c in columns]
        sel = ", ".join(_qi(c) for c, _ in cols)
        sql = f"SELECT {sel + ', ' if sel else ''}{_qi(geom)} FROM {_qi(name)}"
        clauses, params = self._where_sql(name, geom, bbox, where, colnames)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY fid"
        if limit is not None or offset is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [int(limit) if limit is not None else -1, int(offset or 0)]
        rows = self._exec(sql, params).fetchall()
        data = {}
        for i, (c, t) in enumerate(cols):
            data[c] = _column([r[i] for r in rows], t)
        geoms = _decode_gpkg_geoms([r[-1] for r in rows])
        return gpd.GeoDataFrame(pd.DataFrame(data, index=pd.RangeIndex(len(rows))), geometry=geoms, crs=self.crs)

    def _where_sql(self, name, geom, bbox, where, colnames) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if bbox is not None:
            xmin, ymin, xmax, ymax = check_bbox(bbox)
            rtree = f"rtree_{name}_{geom}"
            if _has_table(self._con, rtree):
                clauses.append(
                    f"fid IN (SELECT id FROM {_qi(rtree)} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)"
                )
                params += [xmax, xmin, ymax, ymin]
            else:  # no index: filter envelopes in SQL via registered functions
                clauses.append(f"ST_MinX({_qi(geom)}) <= ? AND ST_MaxX({_qi(geom)}) >= ? AND ST_MinY({_qi(geom)}) <= ? AND ST_MaxY({_qi(geom)}) >= ?")
                params += [xmax, xmin, ymax, ymin]
        for col, op, val in normalise_where(where, colnames, name):
            if op == "in":
                if not val:
                    clauses.append("0")
                    continue
                clauses.append(f"{_qi(col)} IN ({', '.join('?' * len(val))})")
                params += list(val)
            elif val is None and op in ("=", "!="):
                clauses.append(f"{_qi(col)} IS {'NOT ' if op == '!=' else ''}NULL")
            else:
                clauses.append(f"{_qi(col)} {op} ?")
                params.append(val)
        return clauses, params

    def layer_info(self, name: str) -> dict[str, Any]:
        self._require_layer(name)
        geom = self._geom_column(name)
        gtype = self._exec("SELECT geometry_type_name FROM gpkg_geometry_columns WHERE table_name = ?", (name,)).fetchone()[0]
        count = self._exec(f"SELECT count(*) FROM {_qi(name)}").fetchone()[0]
        rtree = f"rtree_{name}_{geom}"
        bounds = None
        if count:
            b = self._exec("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = ?", (name,)).fetchone()
            if (b is None or b[0] is None) and _has_table(self._con, rtree):  # R-tree boxes are float32, rounded out
                b = self._exec(f"SELECT min(minx), min(miny), max(maxx), max(maxy) FROM {_qi(rtree)}").fetchone()
            bounds = list(b) if b and b[0] is not None else None
        cols = {c: _dtype_name(t) for c, t in self._columns(name) if c not in ("fid", geom)}
        return {"name": name, "count": count, "bounds": bounds, "geometry_type": gtype, "columns": cols, "crs": self.crs}

    def delete_layer(self, name: str) -> None:
        self._require_layer(name)
        self._drop_feature_table(name)

    #: values per DELETE statement (SQLite caps the bound parameters of one statement)
    _delete_chunk = 500

    def delete_features(self, name: str, column: str, values) -> int:
        """:meth:`Store.delete_features`: one ``DELETE`` of the matching rows in one SQLite transaction. GDAL's
        triggers on the feature table take them out of the R-tree and ``gpkg_ogr_contents``'s count; the
        layer's extent in ``gpkg_contents`` is computed again only when a deleted feature touched it (from
        the R-tree's candidates, :meth:`_exact_extent`), and its ``last_change`` is set (see layer_written)."""
        with self._sql_txn():  # BEGIN IMMEDIATE: the layer and its columns are as checked until the delete ends
            self._require_layer(name)
            geom = self._geom_column(name)
            kinds = {c: _dtype_name(t) for c, t in self._columns(name) if c not in ("fid", geom)}
            vals = feature_values(name, column, values, kinds)
            ext = self._con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE lower(table_name) = "
                                    "lower(?)", (name,)).fetchone()
            known = ext is not None and None not in ext
            gone, touched = 0, False
            for i in range(0, len(vals), self._delete_chunk):
                clauses, params = self._where_sql(name, None, None, {column: vals[i:i + self._delete_chunk]},
                                                  list(kinds))
                where = " AND ".join(clauses)
                if known and not touched:  # the deleted features' box, from their blobs' envelopes
                    g = _qi(geom)
                    box = self._con.execute(f"SELECT min(ST_MinX({g})), min(ST_MinY({g})), max(ST_MaxX({g})), "
                                            f"max(ST_MaxY({g})) FROM {_qi(name)} WHERE {where}", params).fetchone()
                    touched = box[0] is not None and (box[0] <= ext[0] or box[1] <= ext[1] or box[2] >= ext[2]
                                                      or box[3] >= ext[3])
                gone += self._con.execute(f"DELETE FROM {_qi(name)} WHERE {where}", params).rowcount
            if gone:
                if touched:
                    self._con.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? "
                                      "WHERE lower(table_name) = lower(?)", (*self._exact_extent(name, geom), name))
                self._con.execute("UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                                  "WHERE lower(table_name) = lower(?)", (name,))
        return gone

    def _exact_extent(self, name: str, geom: str) -> tuple:
        """The exact (min_x, min_y, max_x, max_y) of layer ``name``'s geometries, as GDAL writes it in
        ``gpkg_contents`` (all None for a layer without one). The R-tree's boxes are float32, rounded outwards,
        so only the features whose box lies within a few float32 steps of the R-tree's own bound on a side can
        hold the exact bound there: their envelopes are read, not every feature's (the whole table without an
        R-tree)."""
        g, t = _qi(geom), _qi(name)
        rtree = f"rtree_{name}_{geom}"
        if not _has_table(self._con, rtree):
            row = self._con.execute(f"SELECT min(ST_MinX({g})), min(ST_MinY({g})), max(ST_MaxX({g})), "
                                    f"max(ST_MaxY({g})) FROM {t}").fetchone()
            return tuple(row)
        r = _qi(rtree)
        bound = self._con.execute(f"SELECT min(minx), min(miny), max(maxx), max(maxy) FROM {r}").fetchone()
        if bound[0] is None:
            return (None, None, None, None)
        out = []
        for k, (fn, side, agg, sign) in enumerate((("ST_MinX", "minx", "min", 1), ("ST_MinY", "miny", "min", 1),
                                                   ("ST_MaxX", "maxx", "max", -1), ("ST_MaxY", "maxy", "max", -1))):
            b = float(bound[k])
            slack = 1e-6 * abs(b) + 1e-9  # ~16 float32 steps; SQLite rounds each box outwards by one or two
            cut = b + slack if sign > 0 else b - slack
            op = "<=" if sign > 0 else ">="
            out.append(self._con.execute(f"SELECT {agg}({fn}({g})) FROM {t} WHERE fid IN "
                                         f"(SELECT id FROM {r} WHERE {side} {op} ?)", (cut,)).fetchone()[0])
        return tuple(out)

    def layer_written(self, name: str) -> pd.Timestamp | None:
        """When layer ``name`` was last written (replaced, appended to or features deleted): its
        ``gpkg_contents.last_change``."""
        self._require_layer(name)
        return self._last_change(name)

    def _last_change(self, name: str) -> pd.Timestamp | None:
        row = self._exec("SELECT last_change FROM gpkg_contents WHERE lower(table_name) = lower(?)", (name,)).fetchone()
        try:  # ISO 8601 as the spec has it ('2026-12-05T08:01:02.345Z'); pd.Timestamp, not to_datetime, which
            when = pd.Timestamp(row[0])  # guesses the format (~2 ms a call: mark_stale asks on every /api/results)
        except (TypeError, ValueError):
            return None
        if pd.isna(when):
            return None
        return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")

    # -- rasters --------------------------------------------------------------------
    def write_raster(self, name: str, raster: Raster) -> None:
        import rasterio

        check_name(name, "raster")
        if name in self.list_layers() or name in self.list_tables():
            raise StoreError(f"{name!r} already names a layer or table in {self.uri}; pick another raster name")
        data = np.asarray(raster.data)
        if not np.issubdtype(data.dtype, np.number):
            raise RasterError(f"raster {name!r} must hold numbers, got dtype {data.dtype}")
        data = data.astype("float32")  # a copy (the caller's grid is left as it is): nodata is set in place
        nodata = raster.nodata
        if nodata is not None and not np.isnan(nodata):
            data[data == np.float32(nodata)] = np.nan
        rows, cols = data.shape
        with self._side_file() as side:
            with rasterio.open(
                side, "w", driver="GPKG", width=cols, height=rows, count=1, dtype="float32",
                crs=raster.crs or self.crs, transform=raster.transform,
                RASTER_TABLE=name, TILE_FORMAT="TIFF", BLOCKSIZE=512,
            ) as ds:
                ds.write(data, 1)
            with self._attached(side) as attached, self._sql_txn(), self._side_reader(side) as src:
                if name in self.list_rasters():
                    self._drop_raster(name)
                self._merge_side(src, attached)
                self._con.execute(
                    "INSERT OR REPLACE INTO twin_rasters (name, nodata, unit, meta) VALUES (?, ?, ?, ?)",
                    (name, _nodata_sql(nodata), raster.unit, json.dumps(raster.meta, default=str)),
                )

    def _drop_raster(self, name: str) -> None:
        with self._sql_txn():
            self._con.execute(f"DROP TABLE IF EXISTS {_qi(name)}")
            for meta, col in (
                ("gpkg_contents", "table_name"),
                ("gpkg_tile_matrix_set", "table_name"),
                ("gpkg_tile_matrix", "table_name"),
                ("gpkg_2d_gridded_coverage_ancillary", "tile_matrix_set_name"),
                ("gpkg_2d_gridded_tile_ancillary", "tpudt_name"),
                ("gpkg_extensions", "table_name"),
            ):
                if _has_table(self._con, meta):
                    self._con.execute(f"DELETE FROM {meta} WHERE lower({col}) = lower(?)", (name,))
            self._con.execute("DELETE FROM twin_rasters WHERE name = ?", (name,))

    def raster_written(self, name: str) -> pd.Timestamp | None:
        """When raster ``name`` was last written: its ``gpkg_contents.last_change`` (set by GDAL as it writes)."""
        self._require_raster(name)
        return self._last_change(name)

    def _raster_extra(self, name: str) -> tuple[float | None, str | None, dict]:
        row = self._exec("SELECT nodata, unit, meta FROM twin_rasters WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None, None, {}
        nodata = float(row[0]) if row[0] is not None else None  # 'nan' is stored as text (see _nodata_sql)
        return nodata, row[1], json.loads(row[2] or "{}")

    def read_raster(self, name: str, *, window: Window | None = None, bounds=None) -> Raster:
        import rasterio
        from affine import Affine
        from rasterio.windows import Window as RioWindow

        self._require_raster(name)
        nodata, unit, meta = self._raster_extra(name)
        try:
            with rasterio.open(f"GPKG:{self.path}:{name}") as ds:
                w = raster_window((ds.height, ds.width), ds.transform, window, bounds)
                data = ds.read(1, window=RioWindow(w.col_off, w.row_off, w.width, w.height))
                # the window's transform, composed with `@` (rasterio's window_transform uses `*`, which affine
                # deprecates: a PendingDeprecationWarning on every read, four per flood run in a notebook)
                transform = ds.transform @ Affine.translation(w.col_off, w.row_off)
                crs = ds.crs.to_string() if ds.crs else self.crs
        except rasterio.errors.RasterioIOError as exc:
            raise CorruptStoreError(f"raster {name!r} in {self.uri} cannot be read: {exc}") from exc
        if nodata is not None and not np.isnan(nodata):
            data = np.where(np.isnan(data), np.float32(nodata), data)
        return Raster(data, transform, crs, nodata if nodata is not None else None, unit, meta)

    def raster_info(self, name: str) -> dict[str, Any]:
        import rasterio

        self._require_raster(name)
        nodata, unit, _ = self._raster_extra(name)
        with rasterio.open(f"GPKG:{self.path}:{name}") as ds:
            return {
                "name": name, "width": ds.width, "height": ds.height, "transform": list(ds.transform)[:6],
                "crs": ds.crs.to_string() if ds.crs else self.crs, "nodata": nodata, "unit": unit,
                "bounds": list(ds.bounds),
            }

    def delete_raster(self, name: str) -> None:
        self._require_raster(name)
        self._drop_raster(name)

    # -- tables ------------------------------------------------------------------------
    def write_table(self, name: str, df: pd.DataFrame, mode: str = "replace") -> int:
        check_name(name, "table")
        check_mode(mode)
        if name in self.list_layers() or name in self.list_rasters():
            raise StoreError(f"{name!r} already names a layer or raster in {self.uri}; pick another table name")
        df = prepare_table(df)
        check_no_nul(df)
        if len(df.columns) == 0:
            raise SchemaError(f"table {name!r} has no columns; nothing to store")
        decls = {c: _sql_decl(df[c]) for c in df.columns}
        with self._sql_txn():  # BEGIN IMMEDIATE: another writer's table is there now, or will not be
            exists = name in self.list_tables()
            if exists and mode == "append":
                cols = dict(self._columns(name))
                have = set(cols) - {"fid"}
                if not set(df.columns) <= have:
                    raise SchemaError(f"cannot append to table {name!r}: columns {sorted(set(df.columns) - have)} "
                                       f"are not in it ({sorted(have)})")
                df = cast_for_append(df, {c: _dtype_name(cols[c]) for c in df.columns}, name)
            else:
                if exists:
                    self._con.execute(f"DROP TABLE {_qi(name)}")
                    self._con.execute("DELETE FROM gpkg_contents WHERE table_name = ?", (name,))
                decl = ", ".join(f"{_qi(c)} {d}" for c, d in decls.items())
                self._con.execute(f"CREATE TABLE {_qi(name)} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, {decl})")
                self._con.execute(
                    "INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change) "
                    "VALUES (?, 'attributes', ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                    (name, name),
                )
            rows = _table_rows(df)
            ins = f"INSERT INTO {_qi(name)} ({', '.join(_qi(c) for c in df.columns)}) VALUES ({', '.join('?' * len(df.columns))})"
            try:
                self._con.executemany(ins, rows)
            except sqlite3.IntegrityError as exc:  # a unique index (the edit log's seq): say which, not SQLite
                if "UNIQUE constraint failed" not in str(exc):
                    raise
                raise repeated_values_error(name, str(exc)) from None
        return len(df)

    def read_table(self, name: str, *, where: Where | None = None, columns: Sequence[str] | None = None,
                   order_by: str | Sequence[str] | None = None, descending: bool = False,
                   limit: int | None = None, offset: int | None = None) -> pd.DataFrame:
        self._require_table(name)
        cols = [(c, t) for c, t in self._columns(name) if c != "fid"]
        colnames = [c for c, _ in cols]
        if columns is not None:
            unknown = [c for c in columns if c not in colnames]
            if unknown:
                raise SchemaError(f"table {name!r} has no column(s) {unknown}; it has {colnames}")
            cols = [(c, t) for c, t in cols if c in columns]
        keys, limit, offset = check_paging(colnames, name, order_by, limit, offset)
        sql = f"SELECT {', '.join(_qi(c) for c, _ in cols)} FROM {_qi(name)}"
        clauses, params = self._where_sql(name, None, None, where, colnames)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        way = " DESC" if descending else ""
        sql += " ORDER BY " + ", ".join([f"{_qi(k)}{way}" for k in keys] + [f"fid{way}"])
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, -1 if limit is None else limit, offset]
        rows = self._exec(sql, params).fetchall()
        return pd.DataFrame({c: _column([r[i] for r in rows], t) for i, (c, t) in enumerate(cols)},
                            index=pd.RangeIndex(len(rows)))

    def count_rows(self, name: str, *, where: Where | None = None) -> int:
        self._require_table(name)
        clauses, params = self._where_sql(name, None, None, where, [c for c, _ in self._columns(name) if c != "fid"])
        sql = f"SELECT count(*) FROM {_qi(name)}" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        return int(self._exec(sql, params).fetchone()[0])

    def delete_rows(self, name: str, where: Where) -> int:
        self._require_table(name)
        check_delete_filter(where, name)
        clauses, params = self._where_sql(name, None, None, where, [c for c, _ in self._columns(name) if c != "fid"])
        with self._sql_txn():
            return self._con.execute(f"DELETE FROM {_qi(name)} WHERE " + " AND ".join(clauses), params).rowcount

    def delete_table(self, name: str) -> None:
        self._require_table(name)
        with self._sql_txn():
            self._con.execute(f"DROP TABLE IF EXISTS {_qi(name)}")
            for meta in ("gpkg_contents", "gpkg_ogr_contents", "gpkg_extensions"):
                if _has_table(self._con, meta):
                    self._con.execute(f"DELETE FROM {meta} WHERE lower(table_name) = lower(?)", (name,))

    def create_index(self, name: str, columns: str | Sequence[str], *, unique: bool = False) -> str:
        check_name(name, "table")
        with self._sql_txn():  # BEGIN IMMEDIATE: the table cannot change between the checks and the index
            self._require_index_table(name)
            cols = check_index_columns(columns, [c for c, _ in self._columns(name) if c != "fid"], name)
            for have, (on, is_unique) in self._index_list(name).items():
                if on == cols and (is_unique or not unique):
                    return have
            ix = index_name(name, cols, unique)
            on = ", ".join(_qi(c) for c in cols)
            if unique:  # counted first: SQLite's refusal names one value, not how many rows repeat
                n = self._con.execute(
                    f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {_qi(name)} WHERE "
                    + " AND ".join(f"{_qi(c)} IS NOT NULL" for c in cols)
                    + f" GROUP BY {on} HAVING count(*) > 1)").fetchone()[0]
                if n:
                    raise duplicate_values_error(name, cols, int(n))
            self._con.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {_qi(ix)} ON {_qi(name)} ({on})")
            if self._index_list(name).get(ix) != (cols, unique):  # the name was taken by something else (by hand)
                raise StoreError(f"cannot index table {name!r} on {cols}: the name {ix!r} is taken in {self.uri}")
        return ix

    def list_indexes(self, name: str) -> dict[str, list[str]]:
        self._require_table(name)
        return {ix: cols for ix, (cols, _) in self._index_list(name).items()}

    def _index_list(self, name: str) -> dict[str, tuple[list[str], bool]]:
        """:meth:`list_indexes` with whether each index is unique."""
        out = {}
        for _, ix, unique, origin, partial in self._exec(f"PRAGMA index_list({_qi(name)})").fetchall():
            if origin == "pk" or partial:
                continue
            cols = [r[2] for r in self._exec(f"PRAGMA index_info({_qi(ix)})").fetchall()]
            if cols and None not in cols:  # None: an expression
                out[ix] = (cols, bool(unique))
        return dict(sorted(out.items()))

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, key, data, *, mime="application/octet-stream", layer=None, feature_id=None) -> None:
        check_blob(key, data)
        with self._sql_txn():
            self._con.execute(
                "INSERT OR REPLACE INTO twin_blobs (key, data, mime, layer, feature_id, size, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, sqlite3.Binary(bytes(data)), mime, layer, None if feature_id is None else str(feature_id),
                 len(data), _now()),
            )

    def get_blob(self, key: str) -> bytes:
        row = self._exec("SELECT data FROM twin_blobs WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise LayerNotFoundError(f"no blob {key!r} in {self.uri}; list them with store.list_blobs()")
        return bytes(row[0])

    def list_blobs(self, prefix: str = "") -> pd.DataFrame:
        rows = self._exec(
            "SELECT key, mime, layer, feature_id, size FROM twin_blobs WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        ).fetchall()
        return pd.DataFrame(rows, columns=["key", "mime", "layer", "feature_id", "size"])

    def delete_blob(self, key: str) -> None:
        with self._sql_txn():
            self._con.execute("DELETE FROM twin_blobs WHERE key = ?", (key,))

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["GeoPackageStore"]:
        """One SQLite transaction around the block: all of it is kept, or none of it."""
        if self._txn_depth > 0:
            self._txn_depth += 1
            try:
                yield self
            finally:
                self._txn_depth -= 1
            return
        self._txn_depth = 1
        try:
            with self._sql_txn():
                yield self
        except BaseException as exc:
            if hasattr(exc, "add_note"):
                exc.add_note(f"RongTwin: the store {self.uri} was rolled back; nothing of this write was kept")
            raise
        finally:
            self._txn_depth = 0


# -- helpers -------------------------------------------------------------------------------


def _missing_file(path: Path) -> str:
    """Why a twin file is not there and what to do: the close names in its folder, how to make one."""
    import difflib

    folder = path.parent if str(path.parent) else Path(".")
    here = sorted(p.name for p in folder.glob("*.gpkg")) if folder.is_dir() else []
    stems = {Path(n).stem: n for n in here}  # names without .gpkg, or every short name looks alike
    close = [stems[c] for c in difflib.get_close_matches(path.stem, list(stems), n=1, cutoff=0.6)]
    where = (f"did you mean {str(folder / close[0])!r}? " if close else
             f"that folder holds {', '.join(here[:5])}{' ...' if len(here) > 5 else ''}; " if here else
             f"the folder {str(folder.resolve())!r} does not exist; " if not folder.is_dir() else "")
    return (f"GeoPackage {str(path)!r} does not exist; {where}check the path, or make a twin there: "
            f"`twin build {path}` (the sample city) or Twin.create(path, crs=...) (an empty one)")


def _needs_rollback(exc: BaseException) -> bool:
    """True for SQLite's refusal to read a file whose hot journal it may not roll back (a read-only
    connection or file: SQLITE_READONLY_ROLLBACK, and the other SQLITE_READONLY codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_READONLY
    return "readonly" in str(exc)


def write_refused(exc: BaseException, where: str = "the twin") -> str | None:
    """The one-line message for SQLite refusing to write a twin's GeoPackage (a read-only file or folder, a
    full disk), or None for any other error."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        why = "the file (or its folder) is read-only"
    elif "disk is full" in text:
        why = "the disk is full"
    else:
        return None
    return (f"cannot write {where}: {why} ({text}); nothing was changed. Make it writable (chmod u+w FILE and "
            "its folder) or work on a copy, then try again")


def backup(path: str | os.PathLike, dest: str | os.PathLike, *, force: bool = False) -> Path:
    """Copy the twin GeoPackage ``path`` to ``dest`` safely while it may be in use, with SQLite's online backup
    API (:meth:`sqlite3.Connection.backup`): the copy is the twin at one moment, whole, even while a map server
    or a run writes it. A plain file copy is not: a GeoPackage keeps SQLite's rollback journal ("delete"
    mode), so a copy taken during a write may hold half of it.

    The pages are copied in one step under a read lock, so a writer waits for the copy (its writes wait up to
    30 s; a large city copies in seconds), and the copy is checked (``PRAGMA quick_check``, opened as a twin)
    before it is moved into place: a failed backup leaves no file at ``dest``.

    Parameters
    ----------
    path : str or Path
        The twin's ``.gpkg`` file.
    dest : str or Path
        The ``.gpkg`` file to write; an existing one is replaced only with ``force``.
    force : bool
        Replace ``dest`` if it exists.

    Returns
    -------
    Path
        ``dest``.

    Examples
    --------
    >>> import tempfile, os
    >>> from cim.store import open_store
    >>> folder = tempfile.mkdtemp()
    >>> open_store(os.path.join(folder, "c.gpkg"), create=True, crs="EPSG:4544").close()
    >>> backup(os.path.join(folder, "c.gpkg"), os.path.join(folder, "copy.gpkg")).name
    'copy.gpkg'
    """
    src_path, dest = Path(path), Path(dest)
    if not src_path.exists():
        raise StoreConnectionError(_missing_file(src_path))
    if not str(dest).lower().endswith(".gpkg"):
        raise StoreError(f"the backup {str(dest)!r} needs a '.gpkg' name, so that it opens as a twin")
    if dest.exists() and src_path.resolve() == dest.resolve():
        raise StoreError(f"the backup {str(dest)!r} is the twin itself; give another file")
    if dest.is_dir():
        raise StoreError(f"the backup {str(dest)!r} is a folder; give the path of a .gpkg file")
    if dest.exists() and not force:
        raise StoreError(f"{str(dest)!r} exists; give another file, or replace it (force=True, CLI --force)")
    GeoPackageStore(src_path).close()  # a twin, not damaged: else the error says what it is instead
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.backup.gpkg")
    try:
        src = sqlite3.connect(src_path, timeout=30)
        try:
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)  # every page in one step: one consistent moment of the file
                bad = out.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                out.close()
        finally:
            src.close()
        if bad != "ok":  # pragma: no cover - the source was checked above
            raise CorruptStoreError(f"the backup of {src_path} failed its check ({bad}); nothing was written")
        GeoPackageStore(tmp).close()
        os.replace(tmp, dest)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot back up {src_path} to {dest}: {exc}; nothing was written. Check that you may "
                         "write the folder and that the disk has room, then try again") from exc
    finally:
        for leftover in (tmp, Path(str(tmp) + "-journal")):
            if leftover.exists():
                leftover.unlink()
    return dest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _not_a_twin(path: Path) -> str:
    """Why a GeoPackage written by other tools (no twin tables) is not opened as a store: what it holds,
    each layer in its own CRS, and how to make a twin of it. Opening it leaves the file untouched."""
    import pyogrio

    layers = []
    try:
        for name, gtype in pyogrio.list_layers(path):
            info = pyogrio.read_info(path, layer=name)
            n, crs = info["features"], info["crs"]
            layers.append(f"{name} ({gtype.upper() if gtype else 'no geometry'}, {n} feature{'' if n == 1 else 's'}, {crs or 'no CRS'})")
    except Exception:  # noqa: BLE001 - the listing is a courtesy
        layers = []
    held = f"layers {', '.join(layers)}" if layers else "no layers"
    src = f"{path} --layer {layers[0].split(' (')[0]}" if layers else "FILE"
    return (f"{path} holds no twin (it is a GeoPackage with {held}); it was left as it is. Make a twin with "
            "`twin build CITY.gpkg` (the sample city) or Twin.create('CITY.gpkg', crs=...) in Python, then import "
            f"data with `twin import CITY.gpkg {src} --class FEATURE_CLASS`")


def _patch_side_values(side: Path, name: str, gdf) -> None:
    """Put back in GDAL's side file what GDAL cannot write: bytes columns (GDAL stores ``str(b'..')``
    in a TEXT column; here a BLOB column with the bytes, as in tables and in PostGIS). The side file
    is fresh, so its feature ``i`` is row ``i`` of ``gdf`` (fid ``i + 1``)."""
    fixes = {c: [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else sqlite3.Binary(bytes(v))
                 for v in gdf[c].tolist()]
             for c in gdf.columns if c != "geometry" and value_kind(gdf[c]) == "bytes"}
    if not fixes:
        return
    con = sqlite3.connect(side, isolation_level=None)
    try:  # the declared type only (a documented use of writable_schema: nothing on disk changes)
        ddl = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()[0]
        for c in fixes:
            ddl = ddl.replace(f"{_qi(c)} TEXT", f"{_qi(c)} BLOB", 1)
        version = con.execute("PRAGMA schema_version").fetchone()[0]
        con.execute("PRAGMA writable_schema = ON")
        con.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (ddl, name))
        con.execute(f"PRAGMA schema_version = {int(version) + 1}")
        con.execute("PRAGMA writable_schema = OFF")
    finally:
        con.close()
    con = _with_gpkg_functions(sqlite3.connect(side, isolation_level=None))
    try:
        cols = list(fixes)
        con.execute("BEGIN")
        con.executemany(f"UPDATE {_qi(name)} SET {', '.join(f'{_qi(c)} = ?' for c in cols)} WHERE fid = ?",
                        [(*vals, i + 1) for i, vals in enumerate(zip(*(fixes[c] for c in cols)))])
        con.execute("COMMIT")
    finally:
        con.close()


def _nodata_sql(nodata) -> float | str | None:
    """A raster's nodata for ``twin_rasters``: SQLite stores a REAL NaN as NULL, which would
    read back as "no nodata", so NaN goes in as the text 'nan' (REAL affinity keeps it as text)."""
    if nodata is None:
        return None
    return "nan" if np.isnan(nodata) else float(nodata)


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE name = ? AND type IN ('table','view')", (name,)).fetchone() is not None


def _with_gpkg_functions(con: sqlite3.Connection) -> sqlite3.Connection:
    """``con`` with the SQL functions GDAL's R-tree triggers call registered, so our own writes work too."""
    con.create_function("ST_IsEmpty", 1, lambda b: None if b is None else int(bool(b[3] & 0x10)), deterministic=True)
    for fname, idx in (("ST_MinX", 0), ("ST_MaxX", 1), ("ST_MinY", 2), ("ST_MaxY", 3)):
        con.create_function(fname, 1, _env_fn(idx), deterministic=True)
    con.create_function("GPKG_IsAssignable", 2, lambda a, b: 1, deterministic=True)
    return con


def _env_fn(idx: int):
    def f(b):
        if b is None or len(b) < 8:
            return None
        flags = b[3]
        env = (flags >> 1) & 7
        le = flags & 1
        if env:
            minx, maxx, miny, maxy = struct.unpack(("<" if le else ">") + "4d", b[8:40])
            return (minx, maxx, miny, maxy)[idx]
        import shapely

        g = shapely.from_wkb(bytes(b[8:]))
        if g.is_empty:
            return None
        bx = g.bounds
        return (bx[0], bx[2], bx[1], bx[3])[idx]

    return f


def _dtype_name(decl: str) -> str:
    d = decl.upper()
    if d in ("INTEGER", "INT", "MEDIUMINT", "BIGINT", "SMALLINT", "TINYINT"):
        return "int64"
    if d in ("REAL", "DOUBLE", "FLOAT"):
        return "float64"
    if d == "BOOLEAN":
        return "bool"
    if d in ("DATETIME", "DATE"):
        return "datetime"
    if d == "BLOB":
        return "bytes"
    return "str"


def _column(values: list, decl: str):
    return column_from_values(values, _dtype_name(decl))


def _sql_decl(series: pd.Series) -> str:
    return {"bool": "BOOLEAN", "int64": "INTEGER", "float64": "REAL", "datetime": "DATETIME", "bytes": "BLOB",
            "str": "TEXT"}[value_kind(series)]


def _table_rows(df: pd.DataFrame) -> list[tuple]:
    cols = []
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            vals = [None if pd.isna(v) else pd.Timestamp(v).isoformat() for v in s]
        elif pd.api.types.is_float_dtype(s.dtype):
            vals = [None if v != v else float(v) for v in s.to_numpy(dtype="float64", na_value=np.nan)]
        elif pd.api.types.is_bool_dtype(s.dtype):
            vals = [None if pd.isna(v) else int(bool(v)) for v in s]
        elif pd.api.types.is_integer_dtype(s.dtype):
            vals = [None if pd.isna(v) else int(v) for v in s]
        else:
            vals = [None if (v is None or (isinstance(v, float) and v != v) or v is pd.NA) else
                    (bytes(v) if isinstance(v, (bytes, bytearray, memoryview)) else
                     (json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v) if not isinstance(v, (int, float)) else v))
                    for v in s]
        cols.append(vals)
    return list(zip(*cols)) if cols else []
