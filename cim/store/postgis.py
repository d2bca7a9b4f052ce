"""PostGIS store (psycopg 3): the twin in a PostgreSQL schema.

- vector layers: one table each, ``fid bigserial`` key, typed columns and a
  ``geom geometry(Geometry, srid)`` column with a GiST index; bulk loads use
  binary ``COPY`` with EWKB geometries; a large replace loads a hidden staging
  table, builds its GiST and primary-key indexes at once on two connections and
  renames it into place in one short transaction (see ``_write_staged``);
- rasters: ``twin_rasters`` (grid, CRS, nodata) and ``twin_raster_tiles``
  (256 x 256 float32 tiles as bytea), so windows read only the tiles they need;
- tables: ordinary tables; blobs in ``twin_blobs`` (bytea); metadata in
  ``twin_meta`` (jsonb), with the layout of these tables as ``format_version``
  (:data:`cim.store.base.FORMAT_VERSION`): stamped when the twin is made, and on
  a twin without it (an older one, layout 1) when first opened by a role that may
  write it; a twin of a newer version is refused, naming both versions.

Every value is a bound parameter and every identifier is composed with
:mod:`psycopg.sql`. Each public write runs in a transaction; nested
:meth:`PostGISStore.transaction` blocks become savepoints.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import numpy as np
import pandas as pd

from cim.raster import Raster, Window
from cim.store.base import (FORMAT_KEY, FORMAT_VERSION, NUL_TEXT, Store, Where, _has_nul, meta_rows, append_geometry_type, check_append_dims, check_blob, check_bbox,
                            check_delete_filter, check_index_columns, cast_for_append, check_mode, check_name,
                            check_paging, column_from_values, duplicate_values_error, feature_values, geometry_type_of, index_name,
                            normalise_where, check_format, repeated_values_error,
                            prepare_frame, prepare_table, raster_window, value_kind)
from twin_core.errors import (
    LayerNotFoundError,
    RasterError,
    SchemaError,
    StoreConnectionError,
    StoreError,
    StoreLockError,
    StorePermissionError,
)

__all__ = ["PostGISStore", "application_name"]

TILE = 256
#: the table that keeps when each layer and raster was last written (PostGISStore.layer_written, raster_written),
#: stamped in the writing transaction: a layer under its name, a raster under ``raster:<name>`` (no layer name
#: has a colon). Made by the first write that finds it missing, not by _init_schema, so a twin made before it
#: still opens without DDL (a role that may only read can open it)
_LAYER_WRITTEN = "twin_layer_written"
#: the key of a raster's meta (in twin_rasters) where rasters written before 2026-12-05 (and before the table kept
#: rasters too) kept when they were written: read as a fallback, dropped when the raster is written again
_WRITTEN = "twin:written"

#: the store's own tables, made by _init_schema
_INTERNAL_TABLES = ("twin_meta", "twin_objects", "twin_blobs", "twin_rasters", "twin_raster_tiles")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")


def _written_key(kind: str, name: str) -> str:
    """A layer's or raster's key in ``twin_layer_written``: its name, or ``raster:<name>``."""
    return name if kind == "layer" else f"{kind}:{name}"


def _split_dsn(dsn: str) -> tuple[str, str | None]:
    """(libpq conninfo, schema) of a DSN: ``?schema=`` and the store's own ``?lock_timeout=`` left out of the
    conninfo (libpq knows neither; see :func:`_dsn_lock_timeout`)."""
    parts = urlsplit(dsn)
    q = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    rest = []
    for k, v in q:
        if k == "schema":
            schema = v
        elif k != "lock_timeout":
            rest.append((k, v))
    query = urlencode(rest, quote_via=quote)  # %20, not '+': libpq reads '+' as itself (options=-c%20x=y)
    # not urlunsplit: it drops the '//' of an empty host, and libpq then read 'postgresql:/db?host=...'
    # (the documented form for a Unix socket or a host given as a parameter) as a bad keyword list
    out = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
    return out + (f"#{parts.fragment}" if parts.fragment else ""), schema


def _dsn_lock_timeout(dsn: str) -> float | None:
    """The DSN's ``?lock_timeout=`` in seconds (``10``, ``10s``, ``500ms``, ``0`` for none), or None if not given."""
    for k, v in parse_qsl(urlsplit(dsn).query, keep_blank_values=True):
        if k == "lock_timeout":
            m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|min)?\s*", v)
            if m is None:
                raise StoreConnectionError(
                    f"lock_timeout={v!r} in the DSN is not a duration; give seconds such as ?lock_timeout=10 "
                    "(or 10s, 500ms, 1min; 0 waits for ever)")
            return float(m[1]) * {"ms": 0.001, "s": 1.0, "min": 60.0, None: 1.0}[m[2]]
    return None


#: the ``application_name`` the store's connections show in ``pg_stat_activity`` when the DSN names none
#: (the map server sets "rongtwin-serve"): see :func:`application_name`. Unset, libpq's ``PGAPPNAME`` (the CLI
#: sets "rongtwin-cli") and then "rongtwin-python" apply
_APPLICATION_NAME: ContextVar[str | None] = ContextVar("rongtwin_application_name", default=None)


@contextmanager
def application_name(name: str) -> Iterator[None]:
    """Stores opened inside this block name their connections ``name`` in ``pg_stat_activity`` (unless the DSN
    gives ``?application_name=``), so that a DBA can tell the map server, the CLI and notebooks apart.

    >>> with application_name("rongtwin-cli"):
    ...     _APPLICATION_NAME.get()
    'rongtwin-cli'
    """
    token = _APPLICATION_NAME.set(str(name))
    try:
        yield
    finally:
        _APPLICATION_NAME.reset(token)


def _connect(conninfo: str, connect_timeout: int, application_name: str | None = None):
    """An autocommit connection that never prepares statements on the server.

    psycopg prepares a query after it ran five times; the plan of ``SELECT ... FROM layer`` then
    keeps the layer's column types, and once the layer is replaced with other types (by this
    store or by any other session) every read of it failed with "cached plan must not change
    result type" until the connection closed.
    """
    import psycopg

    kw = {} if application_name is None else {"application_name": application_name}
    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=connect_timeout, **kw)
    conn.prepare_threshold = None
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _conn_dead(conn) -> bool:
    """Whether an idle connection is gone: closed, broken, or the server hung up (``pg_terminate_backend``, a
    restart: its farewell is waiting on the socket). A non-blocking look, no round trip."""
    import select

    if conn is None or conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except Exception:  # noqa: BLE001 - no socket to look at: gone
        return True
    # an idle session is sent nothing (the store never LISTENs) but the server's farewell: its error, then end of
    # file. Anything else (a rare notice) costs one needless reconnect
    return bool(readable)


def _redact(dsn: str) -> str:
    """``dsn`` without its password, in the user part (``user:pw@``) or as a parameter (``?password=pw``)."""
    dsn = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", dsn)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", dsn, flags=re.IGNORECASE)


def _write_refusals() -> tuple:
    """The server's errors for a write it refuses (a role that may only read, a read-only server)."""
    import psycopg

    return psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction


def _write_refused(exc: BaseException, uri: str) -> str:
    """The one-line message for the server refusing a write (a role that may only read, a read-only server),
    as the GeoPackage store says it for a read-only file."""
    text = str(exc).strip().splitlines()[0]
    return _refused(f"the server refused the write ({text})", uri)


def _refused(why: str, uri: str) -> str:
    """The message of a write the server refuses or would refuse (``why``), with what to do."""
    return (f"cannot write {uri}: {why}; nothing was changed. Connect as a role "
            "that may write this twin's schema (its owner, or one granted INSERT, UPDATE, DELETE and CREATE on it), "
            "or work on a copy, then try again")


class PostGISStore(Store):
    """A twin held in a PostGIS schema.

    Parameters
    ----------
    dsn : str
        ``postgresql://user@host:port/db``; ``?schema=name`` selects the schema.
    create : bool
        Create the schema (and the PostGIS extension, if allowed) when missing.
    crs : str, optional
        The CRS recorded on creation.
    schema : str, optional
        Schema name (overrides ``?schema=``), default ``public``.
    """

    kind = "postgis"

    def reopen_args(self) -> tuple[str, str | None]:
        return self._dsn, self.schema

    #: how long a write waits for a lock another session holds (seconds) before it fails naming that session
    #: (:class:`~twin_core.errors.StoreLockError`); ``lock_timeout=`` or the DSN's ``?lock_timeout=`` set it,
    #: 0 waits for ever. A session that set its own ``lock_timeout`` keeps it.
    default_lock_timeout = 10.0

    def __init__(self, dsn: str, *, create: bool = False, crs: str | None = None, schema: str | None = None,
                 connect_timeout: int = 5, lock_timeout: float | None = None,
                 application_name: str | None = None) -> None:
        conninfo, dsn_schema = _split_dsn(dsn)
        self.schema = schema or dsn_schema or "public"
        if not _SCHEMA_RE.match(self.schema):
            raise StoreConnectionError(f"schema name {self.schema!r} is not valid: use lower-case letters, digits, '_'")
        self.uri = _redact(dsn)
        self._dsn = dsn  # with its password, for reopen_args (never printed: messages use uri)
        if lock_timeout is None:
            lock_timeout = _dsn_lock_timeout(dsn)
        self.lock_timeout = self.default_lock_timeout if lock_timeout is None else float(lock_timeout)
        if not self.lock_timeout >= 0:
            raise StoreConnectionError(f"lock_timeout={lock_timeout!r} must be a number of seconds >= 0 (0: no limit)")
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        given = any(k == "application_name" for k, _ in parse_qsl(urlsplit(dsn).query))
        self.application_name = None if given else (application_name or _APPLICATION_NAME.get()
                                                     or os.environ.get("PGAPPNAME") or "rongtwin-python")
        self._postgis_schema: str | None = None  # the extension's schema, added to the search path when not on it
        self._conn = None
        self._closed = False  # closed by its owner (close()): never revived (_revive)
        self._txn_depth = 0
        self._calls = 0  # public calls under way (see _guarded): the connection is checked at the first
        self._pinned = 0  # steps that must stay on one session (a staged load's advisory lock)
        self._lock_timeout_set = False  # whether the open transaction runs under the store's lock_timeout
        self._aux_conn = None  # second connection for large loads, see _aux()
        self._srid_cache: tuple[str | None, int] | None = None  # (crs, its EPSG code): see srid
        self._conn = self._open_conn()
        try:
            self._init_schema(create)
            if crs is not None and self.crs is None:  # read once and kept (Store.crs)
                from pyproj import CRS

                self.set_meta({"crs": CRS.from_user_input(crs).to_string()})
        except BaseException:  # no schema, no permission, a newer twin: the connection is not left open
            self.close()
            raise

    # -- the connection ---------------------------------------------------------
    @property
    def conn(self):
        """The store's connection: outside a transaction one the server has dropped (``pg_terminate_backend``, a
        restart) is replaced first (:meth:`_revive`), so that a map server or a notebook goes on after the database
        came back."""
        self._revive()
        return self._conn

    @conn.setter
    def conn(self, value) -> None:
        self._conn = value

    def _open_conn(self):
        """A new connection, set up as the store's (the PostGIS schema on its search path)."""
        import psycopg

        try:
            conn = _connect(self._conninfo, self._connect_timeout, self.application_name)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:  # Programming: a malformed DSN
            raise StoreConnectionError(
                f"cannot connect to PostGIS at {self.uri}: {_redact(_first_line(exc))}. "
                "Check that the server runs and the DSN (host, port, database, user) is right, "
                "or use a .gpkg file instead"
            ) from exc
        try:
            self._setup_session(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _setup_session(self, conn) -> None:
        """Put the PostGIS extension's schema on the session's search path when the role's path lacks it
        (PostGIS installed in its own schema, such as ``postgis``): the store's SQL names ``geometry`` and
        ``ST_*`` unqualified. The first connection finds the schema (:meth:`_find_postgis`)."""
        if self._postgis_schema is None:
            return
        with conn.cursor() as cur:
            cur.execute("SELECT %(s)s = ANY(current_schemas(false)), has_schema_privilege(%(s)s, 'USAGE'), current_user",
                        {"s": self._postgis_schema})
            on_path, usable, role = cur.fetchone()
            if on_path:
                return
            if not usable:
                from psycopg import sql

                schema = sql.Identifier(self._postgis_schema).as_string(None)
                raise StoreConnectionError(
                    f"PostGIS is installed in schema {self._postgis_schema!r} of {self.uri}, which role {role!r} may not "
                    f"use; as that schema's owner run GRANT USAGE ON SCHEMA {schema} TO {sql.Identifier(role).as_string(None)} "
                    f"(and ALTER ROLE ... SET search_path = \"$user\", public, {schema} to find it in other tools too)")
            cur.execute("SELECT set_config('search_path', current_setting('search_path') || ', ' || quote_ident(%s), "
                        "false)", (self._postgis_schema,))

    def _find_postgis(self, cur) -> bool:
        """Whether PostGIS is installed; its schema is put on this session's search path if missing there."""
        cur.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                    "WHERE e.extname = 'postgis'")
        row = cur.fetchone()
        if row is None:
            return False
        self._postgis_schema = row[0]
        self._setup_session(self._conn)
        return True

    def _revive(self) -> None:
        """Replace a connection the server dropped, at the start of an operation outside a transaction: the one
        place that decides it, for a public method (:func:`_guarded`, before its work) and for code that uses
        :attr:`conn` itself (tiles, sensors, :meth:`transaction`). Inside a method, a transaction or a step pinned
        to one session, the operation fails instead (:meth:`_lost`); a store its owner closed stays closed."""
        if self._calls or self._txn_depth or self._pinned or self._conn is None or self._closed:
            return
        if self._conn.closed or self._conn.broken or self._conn.info.transaction_status == 0:
            if not _conn_dead(self._conn):
                return
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is gone already
                pass
            self._conn = self._open_conn()
            self._forget_crs()  # read again on the new session (the same twin: nothing kept outlives a reconnection)
            if self._aux_conn is not None:
                try:
                    self._aux_conn.close()
                except Exception:  # noqa: BLE001
                    pass
                self._aux_conn = None

    def ping(self) -> None:
        """Run ``SELECT 1`` (reconnecting first if the server dropped the connection); a
        :class:`~twin_core.errors.StoreConnectionError` says why the database cannot be reached."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def _lost(self, exc: BaseException) -> StoreConnectionError:
        """The error for a connection that broke during an operation (``exc``, the driver's)."""
        why = _redact(_first_line(exc))
        if self._txn_depth:
            return StoreConnectionError(
                f"the connection to {self.uri} was lost in the middle of a transaction ({why}); the server rolled the "
                "transaction back, so nothing of it was kept. Run the whole transaction again once the database is "
                "up: the store reconnects at its next call outside a transaction")
        return StoreConnectionError(
            f"the connection to {self.uri} was lost ({why}); this call did not finish and nothing of a write was kept. "
            "Try again: the store reconnects at its next call (check that the database server runs if it fails again)")

    def _read_refused(self, exc: BaseException) -> StorePermissionError:
        """The error for the server refusing a read (a role without SELECT on a table made after its GRANT)."""
        text = _first_line(exc)
        m = re.search(r"permission denied for (table|relation|view|sequence|schema) (\S+)", text)
        kind, table = (m[1], m[2]) if m else (None, None)
        role = "the role"
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT current_user")
                role = cur.fetchone()[0]
        except Exception:  # noqa: BLE001 - the message names a placeholder then
            pass
        from psycopg import sql

        ident = lambda *p: sql.Identifier(*p).as_string(None)  # noqa: E731 - quoted as SQL names them
        if kind == "schema":
            return StorePermissionError(
                f"cannot read {self.uri}: the server refused the read ({text}); role {role!r} may not use schema "
                f"{table!r}. As its owner run GRANT USAGE ON SCHEMA {ident(table)} TO {ident(role)} (and GRANT SELECT ON "
                f"ALL TABLES IN SCHEMA {ident(table)} TO {ident(role)}), then try again")
        on = f"{ident(self.schema, table)}" if table else f"ALL TABLES IN SCHEMA {ident(self.schema)}"
        return StorePermissionError(
            f"cannot read {self.uri}: the server refused the read ({text}); role {role!r} may not read "
            f"{'table ' + table if table else 'this twin'} in schema {self.schema!r}. As the twin's owner run "
            f"GRANT SELECT ON {on} TO {ident(role)}; and, so that tables made later (new runs' results) are readable "
            f"too, ALTER DEFAULT PRIVILEGES IN SCHEMA {ident(self.schema)} GRANT SELECT ON TABLES TO {ident(role)} "
            "(as the role that writes the twin); then try again")

    def _lock_refused(self) -> StoreLockError:
        """The error for a write that waited :attr:`lock_timeout` for a lock: who holds locks in the schema."""
        rows = []
        try:
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT DISTINCT a.pid, a.application_name, a.usename, a.state, "
                    "to_char(coalesce(a.xact_start, a.state_change) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "
                    "c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.granted AND n.nspname = %s AND l.pid <> pg_backend_pid() AND c.relkind IN ('r', 'p') "
                    "ORDER BY 1, 6", (self.schema,))
                rows = cur.fetchall()
        except Exception:  # noqa: BLE001 - the message then names none
            pass
        by_pid: dict[int, list] = {}
        for pid, app, user, state, since, rel in rows:
            by_pid.setdefault(pid, [app, user, state, since, []])[4].append(rel)
        said = "; ".join(f"pid {pid} (application_name {app or ''!r}, user {user}, {state}, since {since} UTC, "
                         f"holding {', '.join(rels[:5])}{' ...' if len(rels) > 5 else ''})"
                         for pid, (app, user, state, since, rels) in by_pid.items())
        who = (f"blocked by {said}" if said else
               f"no other session holds a table of schema {self.schema!r} now: it may have ended since")
        return StoreLockError(
            f"cannot write {self.uri}: waited {self.lock_timeout:g} s for a table another session holds ({who}); "
            "nothing was changed. End that session's transaction (COMMIT or ROLLBACK in its notebook; a DBA may run "
            "SELECT pg_terminate_backend(pid)), then try again; or wait longer: lock_timeout= (seconds) in the DSN")

    def _translate(self, exc: BaseException) -> BaseException | None:
        """The project's error for a driver error (a lost connection, a refused read), or None to keep it."""
        import psycopg

        if isinstance(exc, psycopg.OperationalError) and (self._conn is None or self._conn.closed or self._conn.broken):
            return self._lost(exc)
        if isinstance(exc, psycopg.errors.InsufficientPrivilege) and not self._txn_depth:
            return self._read_refused(exc)
        return None

    # -- schema ----------------------------------------------------------------
    def _q(self, *parts: str):
        from psycopg import sql

        return sql.Identifier(self.schema, *parts)

    def _init_schema(self, create: bool) -> None:
        from psycopg import errors, sql

        with self.conn.cursor() as cur:
            if not self._find_postgis(cur):
                try:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                except errors.Error as exc:
                    raise StoreConnectionError(
                        f"PostGIS is not installed in {self.uri}: {exc}. As a superuser run "
                        "'CREATE EXTENSION postgis' (package postgresql-15-postgis-3), or run `make test` which does it"
                    ) from exc
                self._find_postgis(cur)
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            exists = cur.fetchone() is not None
            if not exists:
                if not create:
                    raise StoreConnectionError(
                        f"schema {self.schema!r} does not exist in {self.uri}; check the DSN's ?schema=, or make a twin "
                        f"there: `twin build {self.uri}` (the sample city) or Twin.create(dsn, crs=...) (an empty one)"
                    )
            elif not create:
                cur.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'twin_meta'", (self.schema,))
                if cur.fetchone() is None:  # a schema of something else: leave it as it is
                    raise StoreConnectionError(
                        f"schema {self.schema!r} in {self.uri} holds no twin (no twin_meta table); name the twin's "
                        "schema (?schema=NAME in the DSN), or open with create=True / `twin build` to make one there"
                    )
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
                        (self.schema, list(_INTERNAL_TABLES)))
            have = {r[0] for r in cur.fetchall()}
            stamp = "twin_meta" in have and self._check_format(cur)
            if exists and have >= set(_INTERNAL_TABLES):  # a complete twin: open it without DDL, so that a
                if stamp:                                 # role that may only read can open it too
                    self._stamp_format(cur)
                self._drop_orphan_stages(cur)
                return
            with self.conn.transaction():
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value jsonb NOT NULL)").format(self._q("twin_meta")))
                cur.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, kind text NOT NULL, geometry_type text, srid integer)"
                ).format(self._q("twin_objects")))
                cur.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, data bytea NOT NULL, mime text, layer text, "
                    "feature_id text, size bigint, created timestamptz DEFAULT now())"
                ).format(self._q("twin_blobs")))
                cur.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, width integer NOT NULL, height integer NOT NULL, "
                    "transform float8[] NOT NULL, crs text, nodata float8, unit text, meta jsonb, tile integer NOT NULL)"
                ).format(self._q("twin_rasters")))
                cur.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (name text NOT NULL REFERENCES {} (name) ON DELETE CASCADE, "
                    "row0 integer NOT NULL, col0 integer NOT NULL, h integer NOT NULL, w integer NOT NULL, data bytea NOT NULL, "
                    "PRIMARY KEY (name, row0, col0))"
                ).format(self._q("twin_raster_tiles"), self._q("twin_rasters")))
                if "twin_meta" not in have:  # a new twin (also in an existing schema such as public), stamped
                    from datetime import datetime, timezone  # as the GeoPackage stamps it (ISO 8601, UTC)

                    cur.execute(sql.SQL("INSERT INTO {} (key, value) VALUES ('created', %s::jsonb) "
                                        "ON CONFLICT DO NOTHING").format(self._q("twin_meta")),
                                (json.dumps(datetime.now(timezone.utc).isoformat()),))
                cur.execute(sql.SQL("INSERT INTO {} (key, value) VALUES (%s, %s::jsonb) ON CONFLICT DO NOTHING").format(
                    self._q("twin_meta")), (FORMAT_KEY, json.dumps(FORMAT_VERSION)))
            if exists:
                self._drop_orphan_stages(cur)

    def _check_format(self, cur) -> bool:
        """Refuse a twin of a newer format version (:func:`~cim.store.base.check_format`); whether it has none
        yet and this session may stamp it (INSERT on ``twin_meta``, not read-only). A role that may not read
        ``twin_meta`` is not asked: its first read says why (:meth:`_read_refused`)."""
        from psycopg import sql

        cur.execute("SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'), "
                    "has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'INSERT') "
                    "AND current_setting('transaction_read_only') = 'off' "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = 'twin_meta'", (self.schema,))
        readable, writable = cur.fetchone()
        if not readable:
            return False
        cur.execute(sql.SQL("SELECT value FROM {} WHERE key = %s").format(self._q("twin_meta")), (FORMAT_KEY,))
        row = cur.fetchone()
        if row is not None:
            check_format(row[0], self.uri)
            return False
        return bool(writable)

    def _stamp_format(self, cur) -> None:
        """Stamp :data:`~cim.store.base.FORMAT_VERSION` on a twin without one (layout 1, written before the key
        existed), nothing else; a lock held on ``twin_meta`` or a refusal leaves it to a later open."""
        import psycopg
        from psycopg import sql

        try:
            with self._conn.transaction():
                self._set_lock_timeout(self._conn)
                cur.execute(sql.SQL("INSERT INTO {} (key, value) VALUES (%s, %s::jsonb) ON CONFLICT DO NOTHING").format(
                    self._q("twin_meta")), (FORMAT_KEY, json.dumps(FORMAT_VERSION)))
        except (psycopg.errors.LockNotAvailable, *_write_refusals()):
            pass

    def close(self) -> None:
        self._closed = True  # closed by its owner: not revived by the next call (_revive), which fails as before
        self._forget_crs()  # a closed store says so, as before, rather than a CRS kept
        for conn in (getattr(self, "_aux_conn", None), getattr(self, "_conn", None)):
            if conn is not None and not conn.closed:
                conn.close()

    @property
    def srid(self) -> int:
        """The EPSG code of :attr:`crs` (0 when it has none), worked out once for each CRS."""
        crs = self.crs
        if self._srid_cache is None or self._srid_cache[0] != crs:
            from pyproj import CRS

            epsg = CRS.from_user_input(crs).to_epsg() if crs else None
            self._srid_cache = (crs, int(epsg or 0))
        return self._srid_cache[1]

    @contextmanager
    def transaction(self) -> Iterator["PostGISStore"]:
        import psycopg

        conn = self.conn  # a dropped connection is replaced here, before the transaction begins
        self._txn_depth += 1
        try:
            with conn.transaction():
                if self._txn_depth == 1:
                    self._set_lock_timeout(conn)
                yield self
        except _write_refusals() as exc:
            if self._txn_depth > 1:
                raise
            raise StoreError(_write_refused(exc, self.uri)) from None
        except psycopg.errors.LockNotAvailable as exc:
            if self._txn_depth > 1 or getattr(exc, "_rongtwin_run_lock", False):
                raise
            raise self._lock_refused() from None
        except psycopg.OperationalError as exc:
            if self._txn_depth > 1 or self._calls or not (conn.closed or conn.broken):
                raise  # an outer transaction, or the store's method that opened this one (_guarded), says it
            raise self._lost(exc) from None
        except BaseException as exc:
            if self._txn_depth == 1 and hasattr(exc, "add_note"):
                exc.add_note(f"RongTwin: the store {self.uri} was rolled back; nothing of this write was kept")
            raise
        finally:
            self._txn_depth -= 1

    def check_writable(self, before: str | None = None) -> None:
        """:meth:`Store.check_writable` from the server's catalogue, writing nothing and taking no lock: a
        read-only session (``default_transaction_read_only``, a standby), and the privileges a run's save needs:
        CREATE on the schema (a result layer or table is a new table) and INSERT, UPDATE and DELETE on the
        twin's own tables (the results index in ``twin_meta``, rasters and blobs)."""
        from psycopg import sql

        with self.conn.cursor() as cur:
            cur.execute(sql.SQL(
                "SELECT current_user, current_setting('transaction_read_only') = 'on', "
                "has_schema_privilege(%(s)s, 'CREATE'), "
                "ARRAY(SELECT ARRAY[p, t] FROM unnest(%(t)s::text[]) AS t, "
                "unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) AS p "
                "WHERE NOT has_table_privilege(quote_ident(%(s)s) || '.' || quote_ident(t), p))"),
                {"s": self.schema, "t": list(_INTERNAL_TABLES)})
            role, read_only, create, lacking = cur.fetchone()
        if read_only:
            why = "the session is read-only (default_transaction_read_only is on, or the server is a standby)"
        elif not create or lacking:
            by_table: dict[str, list[str]] = {}
            for priv, table in lacking or []:
                by_table.setdefault(table, []).append(priv)
            groups: dict[tuple, list[str]] = {}
            for table, privs in by_table.items():
                groups.setdefault(tuple(privs), []).append(table)
            what = [f"CREATE on schema {self.schema}"] if not create else []
            for privs, tables in groups.items():  # "INSERT, UPDATE and DELETE on twin_meta, twin_blobs"
                said = f"{', '.join(privs[:-1])} and {privs[-1]}" if len(privs) > 1 else privs[0]
                what.append(f"{said} on {', '.join(tables)}")
            why = f"permission denied: role {role!r} may not write this twin (it lacks {'; '.join(what)})"
        else:
            return
        raise StoreError(_refused(why, self.uri) + self._checked_before(before))

    @contextmanager
    def run_lock(self, key: str) -> Iterator["PostGISStore"]:
        """:meth:`transaction` (joining one already open) holding a transaction-scoped advisory lock on ``key``
        in this twin's schema (a 64-bit hash of both, made here): another session's ``run_lock`` of the same
        key waits for the outermost transaction to end, and then reads (at READ COMMITTED) what it wrote."""
        import hashlib

        import psycopg

        digest = hashlib.blake2b(f"rongtwin-run:{self.schema}:{key}".encode(), digest_size=8).digest()
        with self.transaction():
            with self.conn.cursor() as cur:
                # the same run's save waits for the other one to end, however long: not the store's lock_timeout
                # (a lock_timeout the session set itself still applies, and fails with the server's error)
                mine = self._lock_timeout_set
                if mine:
                    cur.execute("SELECT set_config('lock_timeout', '0', true)")
                try:
                    cur.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (int.from_bytes(digest, "big", signed=True),))
                except psycopg.errors.LockNotAvailable as exc:
                    exc._rongtwin_run_lock = True
                    raise
                if mine:
                    self._set_lock_timeout(self.conn)
            yield self

    def _set_lock_timeout(self, conn) -> None:
        """``SET LOCAL lock_timeout`` to :attr:`lock_timeout` in the transaction just begun, unless the session set
        its own: a write then fails, naming the session in its way, rather than stall every other request."""
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, true) FROM (SELECT 1) s "
                        "WHERE current_setting('lock_timeout') = '0'", (f"{int(round(self.lock_timeout * 1000))}ms",))
            self._lock_timeout_set = cur.fetchone() is not None

    @contextmanager
    def lock_table(self, name: str) -> Iterator["PostGISStore"]:
        """:meth:`Store.lock_table`: :meth:`transaction` holding the advisory write lock :meth:`write_table`
        takes on ``name`` (:meth:`_lock_name`) until the outermost transaction ends."""
        check_name(name, "table")
        with self.transaction():
            with self.conn.cursor() as cur:
                self._lock_name(cur, name, "table")
            yield self

    def _objects(self, kind: str) -> list[str]:
        from psycopg import sql

        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT name FROM {} WHERE kind = %s ORDER BY name").format(self._q("twin_objects")), (kind,))
            return [r[0] for r in cur.fetchall()]

    def _kind_of(self, name: str) -> str | None:
        from psycopg import sql

        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT kind FROM {} WHERE name = %s").format(self._q("twin_objects")), (name,))
            r = cur.fetchone()
        return r[0] if r else None

    # -- metadata ------------------------------------------------------------------
    def get_meta(self) -> dict[str, Any]:
        from psycopg import sql

        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT key, value FROM {}").format(self._q("twin_meta")))
            return {k: v for k, v in cur.fetchall()}

    def set_meta(self, values: Mapping[str, Any]) -> None:
        from psycopg import sql

        q = sql.SQL("INSERT INTO {} (key, value) VALUES (%s, %s::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value").format(self._q("twin_meta"))
        rows = meta_rows(values)
        if self._touches_crs(values):
            self._forget_crs()  # before the write: a failed one leaves nothing kept (srid follows crs)
        with self.transaction(), self.conn.cursor() as cur:
            cur.executemany(q, rows)

    def delete_meta(self, keys: Sequence[str]) -> None:
        from psycopg import sql

        if self._touches_crs(keys):
            self._forget_crs()
        with self.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE key = ANY(%s)").format(self._q("twin_meta")), (list(keys),))

    # -- vector layers ----------------------------------------------------------------
    def list_layers(self) -> list[str]:
        return self._objects("layer")

    def list_rasters(self) -> list[str]:
        return self._objects("raster")

    def list_tables(self) -> list[str]:
        return self._objects("table")

    def _create_table(self, cur, name: str, df: pd.DataFrame, geometry: bool) -> None:
        """Create the table without its primary key: :meth:`_finish_table` adds it after the bulk load
        (one btree build after COPY costs 0.07 s for 135k rows, keeping it up to date during COPY 0.25 s)."""
        from psycopg import sql

        cols = [sql.SQL("fid bigserial NOT NULL")]
        for c in df.columns:
            if geometry and c == "geometry":
                continue
            cols.append(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(df[c]))))
        if geometry:  # a layer is 2D or 3D (prepare_frame refuses a mix)
            kind = "GeometryZ" if df.attrs["has_z"] else "Geometry"
            cols.append(sql.SQL("geom geometry({}, {})").format(sql.SQL(kind), sql.Literal(self.srid)))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(self._q(name), sql.SQL(", ").join(cols)))

    def _finish_table(self, cur, name: str, geometry: bool) -> None:
        """Indexes of a freshly loaded table: the fid primary key and, for a layer, the GiST index on geom."""
        from psycopg import sql

        if geometry:
            self._index_geom(cur, name)
        cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (fid)").format(
            self._q(name), sql.Identifier(f"{name}_pkey")))

    def _index_geom(self, cur, name: str) -> None:
        """The GiST index on geom of a loaded layer: a sorted build (PostGIS sortsupport), only possible on a
        filled table, faster than keeping the index up to date row by row during the load."""
        from psycopg import sql

        cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gist (geom)").format(
            sql.Identifier(f"{name}_geom_gist"), self._q(name)))

    def _copy_rows(self, cur, name: str, df: pd.DataFrame, geometry: bool, *, fresh: bool = False,
                   chunk: int = 4096) -> None:
        """Binary COPY of a frame (geometry as EWKB), encoded column-wise with NumPy/numba.

        Columns NumPy or Arrow hold are encoded once for the whole frame; rows
        then go out in chunks through a writer thread, so the server ingests
        one chunk while the next is encoded (two cores: client and server work
        overlap). Per chunk the geometries go to WKB and the object columns
        (Python strings, bytes) to bytes, so that work too hides behind the
        server's (the two object columns of the sample city's buildings took
        15 ms before the first row went out).

        ``fresh`` is for a table created in this transaction: the rows are
        written frozen (``COPY FREEZE``) and numbered 1..n here, the fid
        sequence then set to n once, instead of one ``nextval`` per row on the
        server (8 % of the server's load time).
        """
        import psycopg
        from psycopg import sql
        from psycopg.copy import QueuedLibpqWriter

        from cim.store._pgcopy import HEADER, TRAILER, RowEncoder, encode_series

        names = [c for c in df.columns if not (geometry and c == "geometry")]
        target = [sql.Identifier(c) for c in names] + ([sql.Identifier("geom")] if geometry else [])
        if not target:
            return
        kinds = {c: _pg_type(df[c]) for c in names}
        # whole columns now, except object ones (chunk by chunk below); None marks those
        whole = [None if df[c].dtype == object else encode_series(df[c], kinds[c]) for c in names]
        if fresh:
            target.insert(0, sql.Identifier("fid"))
            fid = encode_series(pd.Series(np.arange(1, len(df) + 1, dtype=np.int64)), "bigint")
        opts = sql.SQL("FORMAT BINARY, FREEZE") if fresh else sql.SQL("FORMAT BINARY")
        stmt = sql.SQL("COPY {} ({}) FROM STDIN ({})").format(self._q(name), sql.SQL(", ").join(target), opts)
        geoms = np.asarray(df.geometry.values, dtype=object) if geometry else None
        srid = self.srid  # not in rows(): no query may run on this connection once the COPY has begun

        def rows(i: int, j: int) -> np.ndarray:
            cols = [col.rows(i, j) if col is not None else encode_series(df[c].iloc[i:j], kinds[c])
                    for c, col in zip(names, whole)]
            if fresh:
                cols.insert(0, fid.rows(i, j))
            return RowEncoder(cols, geoms[i:j] if geometry else None, srid).encode(0, j - i)

        # a writer thread sends while this thread encodes the next chunk (the numba kernel releases the GIL)
        try:
            with cur.copy(stmt, writer=QueuedLibpqWriter(cur)) as cp:
                cp.write(HEADER)
                for i in range(0, len(df), chunk):
                    cp.write(memoryview(rows(i, min(i + chunk, len(df)))))
                cp.write(TRAILER)
        except psycopg.errors.CharacterNotInRepertoire as exc:  # the server's check for NUL in text
            if "0x00" not in str(exc):
                raise
            col = next((c for c in names if value_kind(df[c]) == "str" and df[c].astype(str).str.contains("\x00", regex=False).any()), "?")
            raise SchemaError(f"column {col!r} {NUL_TEXT}") from None
        if fresh:  # the next default fid is n + 1 (1 for an empty table)
            cur.execute("SELECT setval(pg_get_serial_sequence(%s, 'fid'), %s, %s)",
                        (self._q(name).as_string(cur), max(len(df), 1), len(df) > 0))

    def write_layer(self, name: str, gdf, mode: str = "replace") -> int:
        from psycopg import sql

        check_name(name)
        check_mode(mode)
        self._check_crs(gdf, name)
        other = self._kind_of(name)
        if other not in (None, "layer"):
            raise StoreError(f"{name!r} already names a {other} in {self.uri}; pick another layer name")
        df = prepare_frame(gdf)
        exists = other == "layer"
        gtype = geometry_type_of(df)
        if mode == "replace" and self._txn_depth == 0 and len(df) >= self.staged_min_rows and self._aux() is not None:
            self._write_staged(name, df, gtype)  # an existing layer of the same columns is refilled in the swap
            return len(df)
        with self.transaction(), self.conn.cursor() as cur:
            # bulk-load settings for this transaction only: more memory for the GiST build, and the
            # commit does not wait for the WAL flush (a crash can lose this load, never corrupt the table)
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
            cur.execute("SET LOCAL synchronous_commit = off")
            exists = self._lock_name(cur, name, "layer")
            if exists and mode == "append":
                types = self._table_columns(cur, name)
                have = set(types) - {"fid", "geom"}
                new = set(df.columns) - {"geometry"}
                if not new <= have:
                    raise SchemaError(f"cannot append to {name!r}: columns {sorted(new - have)} are not in the layer ({sorted(have)})")
                df = cast_for_append(df, {c: _pg_dtype_name(t) for c, t in types.items() if c in new}, name)
                cur.execute("SELECT coord_dimension FROM geometry_columns WHERE f_table_schema = %s AND "
                            "f_table_name = %s AND f_geometry_column = 'geom'", (self.schema, name))
                row = cur.fetchone()
                check_append_dims(name, bool(row and row[0] >= 3), df)
                cur.execute(sql.SQL("SELECT geometry_type FROM {} WHERE name = %s").format(self._q("twin_objects")),
                            (name,))
                row = cur.fetchone()
                gtype, df = append_geometry_type(row[0] if row else None, df)
            elif not (exists and self._empty_for_replace(cur, name, self._columns_wanted(df, True), "layer")):
                self._create_table(cur, name, df, geometry=True)
                exists = False
            self._copy_rows(cur, name, df, geometry=True, fresh=not (exists and mode == "append"))
            if not exists:
                self._finish_table(cur, name, geometry=True)
            elif mode == "replace":  # refilled in place: its indexes were dropped for the load
                self._refilled(cur, name, geometry=True)
            self._register_layer(cur, name, gtype)
        return len(df)

    def _lock_name(self, cur, name: str, kind: str) -> bool:
        """Serialise writers of ``name`` until this transaction ends, then whether it exists (as ``kind``):
        two sessions creating the same new layer or table at once then replace one after the other
        (the second saw a cryptic unique violation on the fid sequence before)."""
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"rongtwin-write:{self.schema}.{name}",))
        other = self._kind_of(name)
        if other not in (None, kind):
            raise StoreError(f"{name!r} already names a {other} in {self.uri}; pick another {kind} name")
        return other == kind

    def _columns_wanted(self, df: pd.DataFrame, geometry: bool) -> list[tuple[str, str]]:
        """The columns (name, ``format_type`` of the catalogue) :meth:`_create_table` gives ``df``, in order."""
        cols = [("fid", "bigint")]
        for c in df.columns:
            if not (geometry and c == "geometry"):
                cols.append((c, {"timestamptz": "timestamp with time zone"}.get(_pg_type(df[c]), _pg_type(df[c]))))
        if geometry:
            cols.append(("geom", f"geometry({'GeometryZ' if df.attrs['has_z'] else 'Geometry'},{self.srid})"))
        return cols

    def _columns_now(self, cur, name: str) -> list[tuple[str, str]]:
        """The columns (name, ``format_type``) of the table ``name`` in the schema, in order."""
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum", (self.schema, name))
        return [(c, t) for c, t in cur.fetchall()]

    def _empty_for_replace(self, cur, name: str, wanted: list[tuple[str, str]], kind: str) -> bool:
        """Make way for a replace of the layer or table ``name`` (locked by :meth:`_lock_name`): True when its
        columns are ``wanted`` (names, types, order) and it was emptied in place (TRUNCATE, in the caller's
        transaction: the views on it, its grants, comments, triggers and the user's indexes stay); False when it
        was dropped, to be created again: its columns change, or it has indexes of the store's own
        (:meth:`create_index`), which a replaced table does not keep (and which the scenarios' edit log tells
        apart by the table's OID). Objects that depend on a table to be dropped block the drop: a
        :class:`StoreError` naming them, and nothing is changed."""
        import psycopg
        from psycopg import sql

        now = self._columns_now(cur, name)
        cur.execute("SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace "
                    "WHERE s.nspname = %s AND t.relname = %s AND NOT x.indisprimary "
                    "AND (i.relname LIKE 'twin\\_ix\\_%%' OR i.relname LIKE 'twin\\_ux\\_%%') ORDER BY 1",
                    (self.schema, name))
        own = [r[0] for r in cur.fetchall()]
        if now == wanted and not own:
            try:
                cur.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(self._q(name)))
            except psycopg.errors.FeatureNotSupported as exc:  # another table's foreign key references it
                raise StoreError(
                    f"cannot replace the {kind} {name!r} in {self.uri}: {str(exc).strip().splitlines()[0]} "
                    f"({exc.diag.message_detail or 'a foreign key'}); nothing was changed. Drop that foreign key "
                    "first (ALTER TABLE ... DROP CONSTRAINT), or import into a scenario or under another name"
                ) from None
            # the store's own indexes go for the load and are built again after it (_refilled), not row by row
            if kind == "layer":
                cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(self._q(f"{name}_geom_gist")))
            try:
                with cur.connection.transaction():  # a savepoint: a view may depend on the key (GROUP BY fid)
                    cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                        self._q(name), sql.Identifier(f"{name}_pkey")))
            except psycopg.errors.DependentObjectsStillExist:
                pass  # kept, and kept up to date during the load
            return True
        why = (f"its columns change ({_column_change(now, wanted)})" if now != wanted else
               f"it has the store's indexes {own} (create_index), which a replaced {kind} does not keep")
        self._drop_table(cur, name, kind, why=why)
        return False

    def _refilled(self, cur, name: str, geometry: bool) -> None:
        """After the load of a table emptied in place (:meth:`_empty_for_replace`): its GiST index (a layer's)
        and its fid primary key built again, where they are not there."""
        from psycopg import sql

        if geometry:
            self._index_geom(cur, name)
        cur.execute("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
                    (self._q(name).as_string(cur),))
        if not cur.fetchone()[0]:
            cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (fid)").format(
                self._q(name), sql.Identifier(f"{name}_pkey")))

    def _drop_table(self, cur, name: str, kind: str, *, why: str | None = None) -> None:
        """DROP TABLE ``name`` (if it exists); views or other objects that depend on it: a StoreError that
        names them and what to do, instead of the driver's DependentObjectsStillExist (the transaction, the
        caller's, rolls back)."""
        import psycopg
        from psycopg import sql

        try:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._q(name)))
        except psycopg.errors.DependentObjectsStillExist as exc:
            deps = "; ".join((exc.diag.message_detail or "").split("\n")) or str(exc).strip().splitlines()[0]
            if why is None:
                raise StoreError(
                    f"cannot delete the {kind} {name!r} in {self.uri}: other objects depend on its table ({deps}); "
                    f"nothing was changed. Drop them first (DROP VIEW ...), then delete the {kind}") from None
            raise StoreError(
                f"cannot replace the {kind} {name!r} in {self.uri}: {why}, so its table must be dropped and made "
                f"again, and other objects depend on it ({deps}); nothing was changed. Drop those "
                f"views (or objects) and make them again after the import, give the new data the {kind}'s columns "
                "(then it is replaced in place and they stay), or import it into a scenario or under another name"
            ) from None

    def _register_layer(self, cur, name: str, gtype: str) -> None:
        from psycopg import sql

        cur.execute(sql.SQL(
            "INSERT INTO {} (name, kind, geometry_type, srid) VALUES (%s, 'layer', %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET geometry_type = EXCLUDED.geometry_type"
        ).format(self._q("twin_objects")), (name, gtype, self.srid))
        self._stamp(cur, "layer", name)

    def _stamp(self, cur, kind: str, name: str) -> None:
        """Keep when layer or raster (``kind``) ``name`` was written (now, in the writing transaction), making the
        table on first use (one maker at a time: two first writers would otherwise race on CREATE TABLE)."""
        from psycopg import sql

        if not self._has_written_table(cur):
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"rongtwin-ddl:{self.schema}.{_LAYER_WRITTEN}",))
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, written_at timestamptz NOT NULL)").format(
                self._q(_LAYER_WRITTEN)))
        # clock_timestamp, not now(): now() is when the transaction began, which may be before a run it replaces under
        cur.execute(sql.SQL("INSERT INTO {} (name, written_at) VALUES (%s, clock_timestamp()) "
                            "ON CONFLICT (name) DO UPDATE SET written_at = EXCLUDED.written_at").format(
            self._q(_LAYER_WRITTEN)), (_written_key(kind, name),))

    def _unstamp(self, cur, kind: str, name: str) -> None:
        """Forget when ``name`` was written (it is being dropped), in the dropping transaction."""
        from psycopg import sql

        if self._has_written_table(cur):
            cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(self._q(_LAYER_WRITTEN)),
                        (_written_key(kind, name),))

    def _written(self, cur, kind: str, name: str):
        """The time kept for ``name`` in ``twin_layer_written`` (a datetime), or None."""
        from psycopg import sql

        if not self._has_written_table(cur):
            return None
        cur.execute(sql.SQL("SELECT written_at FROM {} WHERE name = %s").format(self._q(_LAYER_WRITTEN)),
                    (_written_key(kind, name),))
        row = cur.fetchone()
        return None if row is None else row[0]

    def _has_written_table(self, cur) -> bool:
        """Whether ``twin_layer_written`` exists; remembered once seen outside a transaction (inside one, the
        table may be this transaction's own, gone again if it rolls back)."""
        if getattr(self, "_written_table_seen", False):
            return True
        cur.execute("SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s", (self.schema, _LAYER_WRITTEN))
        seen = cur.fetchone() is not None
        if seen and self.conn.info.transaction_status == 0:  # idle: committed, it stays
            self._written_table_seen = True
        return seen

    def layer_written(self, name: str) -> pd.Timestamp | None:
        """When layer ``name`` was last written (replaced, appended to or features deleted): kept in
        ``twin_layer_written`` since 2026-12-05; None for a layer written before (unknown)."""
        with self.conn.cursor() as cur:
            when = self._written(cur, "layer", name)
        if when is None:
            self._require_layer(name)  # an unknown layer is named; a layer written before the table: unknown
            return None
        return pd.Timestamp(when).tz_convert("UTC")

    # -- staged bulk load (large replaces) ------------------------------------------------------
    #: A replace of at least this many rows loads through a staging table so the GiST and the
    #: primary-key builds run at once on two connections (135k buildings: 0.79 -> 0.74 s median of 10,
    #: interleaved with the one-transaction path; the fid index build, ~0.07 s, hides behind the GiST build).
    staged_min_rows = 50_000

    def _aux(self):
        """A second connection for index builds, opened on first use (None, with a warning, if refused)."""
        import psycopg

        if self._aux_conn is None or self._aux_conn.closed:
            try:
                self._aux_conn = _connect(self._conninfo, self._connect_timeout, self.application_name)
                self._setup_session(self._aux_conn)
            except psycopg.OperationalError as exc:
                import warnings

                warnings.warn(f"RongTwin: a second connection to {self.uri} was refused "
                              f"({str(exc).strip().splitlines()[0]}); large loads run in one transaction, "
                              "with the indexes built one after the other", stacklevel=3)
                self._aux_conn = None
        return self._aux_conn

    def _stage_lock(self, cur, stage: str, op: str) -> bool:
        """Session advisory lock that marks a staging table as in use ('lock', 'try' or 'unlock')."""
        fn = {"lock": "pg_advisory_lock", "try": "pg_try_advisory_lock", "unlock": "pg_advisory_unlock"}[op]
        cur.execute(f"SELECT {fn}(hashtextextended(%s, 0))", (f"rongtwin:{self.schema}.{stage}",))
        r = cur.fetchone()[0]
        return True if r is None else bool(r)

    def _write_staged(self, name: str, df: pd.DataFrame, gtype: str) -> None:
        """Replace a layer through a hidden staging table, in three steps.

        1. one transaction creates ``twin_stage_<random>``, loads it (COPY FREEZE) and commits;
        2. the GiST index (this connection) and the fid unique index (the second one) build at once;
        3. one short transaction takes the layer's write lock (:meth:`_lock_name`, as every other write of
           it does: a concurrent write of the layer waits for the swap, or the swap for it), drops the old
           layer, renames the staging table, its indexes and sequence into place and registers the layer; an
           old layer of the same columns is refilled from the staging table instead (TRUNCATE, INSERT ...
           SELECT: :meth:`_empty_for_replace`), so the views on it, its grants and comments stay.

        Until step 3 commits the layer is untouched; a failure drops the staging table. A load
        killed outright leaves a staging table whose advisory lock is free: the next open drops it. A server
        that refuses the write (a role that may only read) is the :class:`StoreError` a smaller replace
        gives (:meth:`transaction`), not the raw privilege error.
        """
        import secrets

        import psycopg

        stage = f"twin_stage_{secrets.token_hex(6)}"
        with self.conn.cursor() as cur:
            self._stage_lock(cur, stage, "lock")
        self._pinned += 1  # one session to the end: its advisory lock marks the staging table as in use
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.execute("SET LOCAL synchronous_commit = off")
                self._create_table(cur, stage, df, geometry=True)
                self._copy_rows(cur, stage, df, geometry=True, fresh=True)
            self._index_stage(stage)
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.execute("SET LOCAL synchronous_commit = off")
                self._set_lock_timeout(self.conn)  # the swap drops the layer readers may hold
                self._lock_name(cur, name, "layer")  # the write lock a smaller replace or an append takes
                self._swap_stage(cur, stage, name, gtype)
        except _write_refusals() as exc:
            self._drop_stage(stage)  # a role that may only read: the same one-line error as a small replace
            raise StoreError(_write_refused(exc, self.uri)) from None
        except psycopg.errors.LockNotAvailable:
            self._drop_stage(stage)
            raise self._lock_refused() from None
        except BaseException as exc:
            self._drop_stage(stage)
            if hasattr(exc, "add_note"):
                exc.add_note(f"RongTwin: the store {self.uri} was rolled back; nothing of this write was kept")
            raise
        finally:
            self._pinned -= 1
            try:
                with self.conn.cursor() as cur:
                    self._stage_lock(cur, stage, "unlock")
            except Exception:  # noqa: BLE001 - a lost session has released its locks already
                pass

    def _index_stage(self, stage: str) -> None:
        """GiST on geom here and the unique fid index on the second connection, at the same time."""
        import threading

        from psycopg import sql

        failed: list[BaseException] = []

        def unique_fid() -> None:
            try:
                with self._aux_conn.transaction(), self._aux_conn.cursor() as cur:
                    cur.execute("SET LOCAL synchronous_commit = off")
                    cur.execute(sql.SQL("CREATE UNIQUE INDEX {} ON {} (fid)").format(
                        sql.Identifier(f"{stage}_pkey"), self._q(stage)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                failed.append(exc)

        worker = threading.Thread(target=unique_fid, name="rongtwin-fid-index")
        worker.start()
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
                cur.execute("SET LOCAL synchronous_commit = off")
                cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
                    sql.Identifier(f"{stage}_geom_gist"), self._q(stage)))
        finally:
            worker.join()
        if failed:
            raise failed[0]

    def _swap_stage(self, cur, stage: str, name: str, gtype: str) -> None:
        from psycopg import sql

        cols = self._columns_now(cur, stage)
        if self._kind_of(name) == "layer":
            if self._empty_for_replace(cur, name, cols, "layer"):  # the same columns: refilled in place
                names = sql.SQL(", ").join(sql.Identifier(c) for c, _ in cols)
                cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                    self._q(name), names, names, self._q(stage)))
                n = cur.rowcount
                cur.execute("SELECT setval(pg_get_serial_sequence(%s, 'fid'), %s, %s)",
                            (self._q(name).as_string(cur), max(n, 1), n > 0))
                cur.execute(sql.SQL("DROP TABLE {}").format(self._q(stage)))
                self._refilled(cur, name, geometry=True)
                self._register_layer(cur, name, gtype)
                return
        else:
            self._drop_table(cur, name, "layer")
        cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._q(stage), sql.Identifier(name)))
        cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
            self._q(f"{stage}_geom_gist"), sql.Identifier(f"{name}_geom_gist")))
        cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}").format(
            self._q(name), sql.Identifier(f"{name}_pkey"), sql.Identifier(f"{stage}_pkey")))
        cur.execute(sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(
            self._q(f"{stage}_fid_seq"), sql.Identifier(f"{name}_fid_seq")))
        self._register_layer(cur, name, gtype)

    def _drop_stage(self, stage: str) -> None:
        """Best effort: drop a staging table after a failed load (the next open catches what this misses)."""
        from psycopg import sql

        for conn in (self.conn, self._aux_conn):
            if conn is None or conn.closed:
                continue
            try:
                if conn.info.transaction_status != 0:  # not idle: an aborted transaction of ours
                    conn.rollback()
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._q(stage)))
                return
            except Exception:  # noqa: BLE001 - try the other connection, then leave it to the next open
                continue

    def _drop_orphan_stages(self, cur) -> None:
        """Drop staging tables of loads that died (their advisory lock is free)."""
        import psycopg
        from psycopg import sql

        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE 'twin\\_stage\\_%%'", (self.schema,))
        for (stage,) in cur.fetchall():
            if self._stage_lock(cur, stage, "try"):
                try:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._q(stage)))
                except psycopg.errors.InsufficientPrivilege:  # a reader: the next writer to open drops it
                    pass
                finally:
                    self._stage_lock(cur, stage, "unlock")

    def _table_columns(self, cur, name: str) -> dict[str, str]:
        # the catalogue, not information_schema: its view costs ~2 ms a call on a database with many schemas,
        # and every read and write asks (the same names: pg_type.typname is information_schema's udt_name)
        cur.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum",
            (self.schema, name),
        )
        return {c: t for c, t in cur.fetchall()}

    def _where(self, name: str, bbox, where, types: Mapping[str, str]):
        """WHERE clauses and their parameters; ``types`` maps the columns one may filter on to their types.
        Text compares byte-wise (``COLLATE "C"``), as SQLite compares it in the GeoPackage, whatever the
        database's collation ('B' < 'a' in both stores; en_US put 'a' first)."""
        from psycopg import sql

        colnames = list(types)

        clauses = []
        params: list[Any] = []
        if bbox is not None:
            xmin, ymin, xmax, ymax = check_bbox(bbox)
            clauses.append(sql.SQL("geom && ST_MakeEnvelope(%s, %s, %s, %s, %s)"))
            params += [xmin, ymin, xmax, ymax, self.srid]
        for col, op, val in normalise_where(where, colnames, name):
            ident = sql.Identifier(col)
            # PostgreSQL text cannot hold NUL, so no stored value equals a filter value with one; the query
            # finds nothing for it, as in the GeoPackage (the server refused the whole query before)
            if op == "in":
                clauses.append(sql.SQL("{} = ANY(%s)").format(ident))
                params.append([v for v in val if not _has_nul(v)])
            elif _has_nul(val) and op == "=":
                clauses.append(sql.SQL("FALSE"))
            elif _has_nul(val) and op == "!=":
                clauses.append(sql.SQL("{} IS NOT NULL").format(ident))
            elif _has_nul(val):
                raise SchemaError(f"cannot filter {name!r} on {col} {op} {val!r}: the value {NUL_TEXT}")
            elif val is None and op in ("=", "!="):
                clauses.append(sql.SQL("{} IS {}NULL").format(ident, sql.SQL("NOT " if op == "!=" else "")))
            else:
                collate = sql.SQL(' COLLATE "C"' if types[col] == "text" and op not in ("=", "!=") else "")
                clauses.append(sql.SQL("{}{} " + op + " %s").format(ident, collate))
                params.append(val)
        return clauses, params

    def read_layer(self, name: str, *, bbox=None, where: Where | None = None, columns: Sequence[str] | None = None,
                   limit: int | None = None, offset: int | None = None):
        import geopandas as gpd
        import shapely
        from psycopg import sql

        self._require_layer(name)
        with self.conn.cursor() as cur:
            types = self._table_columns(cur, name)
            colnames = [c for c in types if c not in ("fid", "geom")]
            if columns is not None:
                unknown = [c for c in columns if c not in colnames]
                if unknown:
                    raise SchemaError(f"layer {name!r} has no column(s) {unknown}; it has {colnames}")
                colnames = [c for c in colnames if c in columns]
            clauses, params = self._where(name, bbox, where, {c: t for c, t in types.items() if c not in ("fid", "geom")})
            q = sql.SQL("SELECT {}ST_AsBinary(geom) FROM {}").format(
                sql.SQL("").join(sql.SQL("{}, ").format(sql.Identifier(c)) for c in colnames), self._q(name))
            if clauses:
                q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
            q = q + sql.SQL(" ORDER BY fid")
            if limit is not None:
                q = q + sql.SQL(" LIMIT %s")
                params.append(int(limit))
            if offset:
                q = q + sql.SQL(" OFFSET %s")
                params.append(int(offset))
            cur.execute(q, params)
            rows = cur.fetchall()
        data = {c: _from_pg([r[i] for r in rows], types[c]) for i, c in enumerate(colnames)}
        geoms = shapely.from_wkb(np.array([None if r[-1] is None else bytes(r[-1]) for r in rows], dtype=object))
        return gpd.GeoDataFrame(pd.DataFrame(data, index=pd.RangeIndex(len(rows))), geometry=geoms, crs=self.crs)

    def layer_info(self, name: str) -> dict[str, Any]:
        from psycopg import sql

        self._require_layer(name)
        with self.conn.cursor() as cur:
            types = self._table_columns(cur, name)
            cur.execute(sql.SQL("SELECT (SELECT count(*) FROM {t}), ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                                "FROM (SELECT ST_Extent(geom) AS e FROM {t}) s").format(t=self._q(name)))
            count, *b = cur.fetchone()
            cur.execute(sql.SQL("SELECT geometry_type FROM {} WHERE name = %s").format(self._q("twin_objects")), (name,))
            gtype = cur.fetchone()[0]
        cols = {c: _pg_dtype_name(t) for c, t in types.items() if c not in ("fid", "geom")}
        return {"name": name, "count": count, "bounds": None if b[0] is None else [float(v) for v in b],
                "geometry_type": gtype, "columns": cols, "crs": self.crs}

    def delete_layer(self, name: str) -> None:
        self._require_layer(name)
        self._drop(name)

    def delete_features(self, name: str, column: str, values) -> int:
        """:meth:`Store.delete_features`: one ``DELETE ... WHERE column = ANY(values)`` (the values one array
        parameter), under the layer's write lock (:meth:`_lock_name`), with the layer's time stamped in the same
        transaction when rows went. The GiST index follows the table, and the extent is the rows' own."""
        from psycopg import sql

        self._require_layer(name)
        with self.transaction(), self.conn.cursor() as cur:
            if not self._lock_name(cur, name, "layer"):  # dropped by another writer since the check above
                self._require_layer(name)
            types = {c: t for c, t in self._table_columns(cur, name).items() if c not in ("fid", "geom")}
            vals = feature_values(name, column, values, {c: _pg_dtype_name(t) for c, t in types.items()})
            if not vals:
                return 0
            clauses, params = self._where(name, None, {column: vals}, types)
            cur.execute(sql.SQL("DELETE FROM {} WHERE ").format(self._q(name)) + sql.SQL(" AND ").join(clauses), params)
            gone = cur.rowcount
            if gone:
                self._stamp(cur, "layer", name)
        return gone

    def _drop(self, name: str) -> None:
        from psycopg import sql

        with self.transaction(), self.conn.cursor() as cur:
            self._drop_table(cur, name, self._kind_of(name) or "layer")
            cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(self._q("twin_objects")), (name,))
            self._unstamp(cur, "layer", name)

    # -- rasters ----------------------------------------------------------------------------
    def write_raster(self, name: str, raster: Raster) -> None:
        from psycopg import sql

        check_name(name, "raster")
        other = self._kind_of(name)
        if other not in (None, "raster"):
            raise StoreError(f"{name!r} already names a {other} in {self.uri}; pick another raster name")
        data = np.asarray(raster.data)
        if not np.issubdtype(data.dtype, np.number):
            raise RasterError(f"raster {name!r} must hold numbers, got dtype {data.dtype}")
        data = np.ascontiguousarray(data, dtype="<f4")
        rows, cols = data.shape
        with self.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(self._q("twin_rasters")), (name,))
            meta = {k: v for k, v in (raster.meta or {}).items() if k != _WRITTEN}  # the store's key, not the data's
            cur.execute(sql.SQL(
                "INSERT INTO {} (name, width, height, transform, crs, nodata, unit, meta, tile) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)").format(self._q("twin_rasters")),
                (name, cols, rows, [float(v) for v in tuple(raster.transform)[:6]], raster.crs or self.crs,
                 None if raster.nodata is None else float(raster.nodata), raster.unit,
                 json.dumps(meta, default=str), TILE))
            stmt = sql.SQL("COPY {} (name, row0, col0, h, w, data) FROM STDIN (FORMAT BINARY)").format(self._q("twin_raster_tiles"))
            with cur.copy(stmt) as cp:
                cp.set_types(["text", "int4", "int4", "int4", "int4", "bytea"])
                for r0 in range(0, rows, TILE):
                    for c0 in range(0, cols, TILE):
                        block = data[r0:r0 + TILE, c0:c0 + TILE]
                        cp.write_row((name, r0, c0, block.shape[0], block.shape[1], np.ascontiguousarray(block).tobytes()))
            cur.execute(sql.SQL("INSERT INTO {} (name, kind) VALUES (%s, 'raster') ON CONFLICT (name) DO NOTHING").format(
                self._q("twin_objects")), (name,))
            self._stamp(cur, "raster", name)  # when it was written: see raster_written

    def _raster_row(self, name: str, *, written: bool = False):
        """The raster's row (width, height, transform, crs, nodata, unit, meta, tile), its meta without the time
        it was written (with ``written``: that time, an ISO text or None, after the row)."""
        from psycopg import sql

        self._require_raster(name)
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT width, height, transform, crs, nodata, unit, meta, tile FROM {} WHERE name = %s").format(
                self._q("twin_rasters")), (name,))
            row = list(cur.fetchone())
        meta = row[6]
        when = meta.pop(_WRITTEN, None) if isinstance(meta, dict) else None
        return (*row, when) if written else tuple(row)

    def raster_written(self, name: str) -> pd.Timestamp | None:
        """When raster ``name`` was last written: kept in ``twin_layer_written`` (as ``raster:<name>``), or, for
        a raster written before it kept rasters, in the raster's meta (``twin:written``, kept since
        2026-12-05); None for one written before that (unknown)."""
        with self.conn.cursor() as cur:
            when = self._written(cur, "raster", name)
        if when is not None:
            return pd.Timestamp(when).tz_convert("UTC")
        when = pd.to_datetime(self._raster_row(name, written=True)[-1], utc=True, errors="coerce")
        return None if pd.isna(when) else when

    def read_raster(self, name: str, *, window: Window | None = None, bounds=None) -> Raster:
        from affine import Affine
        from psycopg import sql

        width, height, transform, crs, nodata, unit, meta, tile = self._raster_row(name)
        t = Affine(*transform)
        w = raster_window((height, width), t, window, bounds)
        out = np.empty((w.height, w.width), dtype="float32")
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL(
                "SELECT row0, col0, h, w, data FROM {} WHERE name = %s AND row0 < %s AND row0 + h > %s "
                "AND col0 < %s AND col0 + w > %s").format(self._q("twin_raster_tiles")),
                (name, w.row_off + w.height, w.row_off, w.col_off + w.width, w.col_off))
            for r0, c0, h, wd, blob in cur:
                block = np.frombuffer(blob, dtype="<f4").reshape(h, wd)
                rs, re_ = max(r0, w.row_off), min(r0 + h, w.row_off + w.height)
                cs, ce = max(c0, w.col_off), min(c0 + wd, w.col_off + w.width)
                out[rs - w.row_off:re_ - w.row_off, cs - w.col_off:ce - w.col_off] = block[rs - r0:re_ - r0, cs - c0:ce - c0]
        return Raster(out, t @ Affine.translation(w.col_off, w.row_off), crs, nodata, unit, meta or {})

    def raster_info(self, name: str) -> dict[str, Any]:
        from affine import Affine

        width, height, transform, crs, nodata, unit, meta, tile = self._raster_row(name)
        r = Raster(np.empty((height, width), dtype="uint8"), Affine(*transform), crs)
        return {"name": name, "width": width, "height": height, "transform": list(transform), "crs": crs,
                "nodata": nodata, "unit": unit, "bounds": list(r.bounds)}

    def delete_raster(self, name: str) -> None:
        from psycopg import sql

        self._require_raster(name)
        with self.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(self._q("twin_rasters")), (name,))
            cur.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(self._q("twin_objects")), (name,))
            self._unstamp(cur, "raster", name)

    # -- tables ----------------------------------------------------------------------------------
    def write_table(self, name: str, df: pd.DataFrame, mode: str = "replace") -> int:
        import psycopg
        from psycopg import sql

        check_name(name, "table")
        check_mode(mode)
        other = self._kind_of(name)
        if other not in (None, "table"):
            raise StoreError(f"{name!r} already names a {other} in {self.uri}; pick another table name")
        df = prepare_table(df)
        if len(df.columns) == 0:
            raise SchemaError(f"table {name!r} has no columns; nothing to store")
        with self.transaction(), self.conn.cursor() as cur:
            exists = self._lock_name(cur, name, "table")
            if exists and mode == "append":
                types = self._table_columns(cur, name)
                have = set(types) - {"fid"}
                if not set(df.columns) <= have:
                    raise SchemaError(f"cannot append to table {name!r}: columns {sorted(set(df.columns) - have)} are not in it")
                df = cast_for_append(df, {c: _pg_dtype_name(t) for c, t in types.items() if c in df.columns}, name)
            elif not (exists and self._empty_for_replace(cur, name, self._columns_wanted(df, False), "table")):
                self._create_table(cur, name, df, geometry=False)
                exists = False
            try:
                self._copy_rows(cur, name, df, geometry=False, fresh=not (exists and mode == "append"))
            except psycopg.errors.UniqueViolation as exc:  # a unique index (the edit log's seq): which one, not raw
                raise repeated_values_error(name, exc.diag.message_detail, exc.diag.constraint_name) from None
            if not exists:
                self._finish_table(cur, name, geometry=False)
            elif mode == "replace":  # refilled in place: its key was dropped for the load
                self._refilled(cur, name, geometry=False)
            cur.execute(sql.SQL("INSERT INTO {} (name, kind) VALUES (%s, 'table') ON CONFLICT (name) DO NOTHING").format(
                self._q("twin_objects")), (name,))
        return len(df)

    def read_table(self, name: str, *, where: Where | None = None, columns: Sequence[str] | None = None,
                   order_by: str | Sequence[str] | None = None, descending: bool = False,
                   limit: int | None = None, offset: int | None = None) -> pd.DataFrame:
        from psycopg import sql

        self._require_table(name)
        with self.conn.cursor() as cur:
            types = self._table_columns(cur, name)
            colnames = [c for c in types if c != "fid"]
            keys, limit, offset = check_paging(colnames, name, order_by, limit, offset)
            if columns is not None:
                unknown = [c for c in columns if c not in colnames]
                if unknown:
                    raise SchemaError(f"table {name!r} has no column(s) {unknown}; it has {colnames}")
                colnames = [c for c in colnames if c in columns]
            clauses, params = self._where(name, None, where, {c: t for c, t in types.items() if c != "fid"})
            q = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(sql.Identifier(c) for c in colnames), self._q(name))
            if clauses:
                q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
            way = sql.SQL(" DESC" if descending else "")
            # as SQLite sorts: NULL before every value (PostgreSQL puts it last by default), text byte-wise
            nulls = sql.SQL(" DESC NULLS LAST" if descending else " NULLS FIRST")
            q = q + sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
                [sql.SQL("{}{}{}").format(sql.Identifier(k), sql.SQL(' COLLATE "C"' if types[k] == "text" else ""),
                                          nulls) for k in keys] + [sql.SQL("fid{}").format(way)])
            if limit is not None:
                q, params = q + sql.SQL(" LIMIT %s"), [*params, limit]
            if offset:
                q, params = q + sql.SQL(" OFFSET %s"), [*params, offset]
            cur.execute(q, params)
            rows = cur.fetchall()
        return pd.DataFrame({c: _from_pg([r[i] for r in rows], types[c]) for i, c in enumerate(colnames)},
                            index=pd.RangeIndex(len(rows)))

    def count_rows(self, name: str, *, where: Where | None = None) -> int:
        from psycopg import sql

        self._require_table(name)
        with self.conn.cursor() as cur:
            clauses, params = self._where(name, None, where, {c: t for c, t in self._table_columns(cur, name).items()
                                                               if c != "fid"})
            q = sql.SQL("SELECT count(*) FROM {}").format(self._q(name))
            if clauses:
                q = q + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
            cur.execute(q, params)
            return int(cur.fetchone()[0])

    def delete_rows(self, name: str, where: Where) -> int:
        from psycopg import sql

        self._require_table(name)
        check_delete_filter(where, name)
        with self.transaction(), self.conn.cursor() as cur:
            clauses, params = self._where(name, None, where, {c: t for c, t in self._table_columns(cur, name).items()
                                                               if c != "fid"})
            cur.execute(sql.SQL("DELETE FROM {} WHERE ").format(self._q(name)) + sql.SQL(" AND ").join(clauses), params)
            return cur.rowcount

    def delete_table(self, name: str) -> None:
        self._require_table(name)
        self._drop(name)

    def create_index(self, name: str, columns: str | Sequence[str], *, unique: bool = False) -> str:
        from psycopg import sql

        check_name(name, "table")
        with self.transaction(), self.conn.cursor() as cur:
            self._require_index_table(name)
            self._lock_name(cur, name, "table")  # one writer of the table at a time, index builders included
            cols = check_index_columns(columns, [c for c in self._table_columns(cur, name) if c != "fid"], name)
            uniques = self._unique_indexes(cur, name)
            for have, on in self._indexes(cur, name).items():
                if on == cols and (have in uniques or not unique):
                    return have
            ix = index_name(name, cols, unique)
            on = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            if unique:  # counted first: the server's refusal names one value, not how many rows repeat
                cur.execute(sql.SQL("SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {} WHERE {} "
                                    "GROUP BY {} HAVING count(*) > 1) AS d").format(
                    self._q(name), sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in cols),
                    on))
                n = int(cur.fetchone()[0])
                if n:
                    raise duplicate_values_error(name, cols, n)
            cur.execute(sql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.SQL("UNIQUE " if unique else ""), sql.Identifier(ix), self._q(name), on))
            if self._indexes(cur, name).get(ix) != cols or (unique and ix not in self._unique_indexes(cur, name)):
                raise StoreError(f"cannot index table {name!r} on {cols}: the name {ix!r} is taken in {self.uri}")
        return ix

    def list_indexes(self, name: str) -> dict[str, list[str]]:
        self._require_table(name)
        with self.conn.cursor() as cur:
            return self._indexes(cur, name)

    def _unique_indexes(self, cur, name: str) -> set[str]:
        """The names of the unique indexes on table ``name`` (its primary key left out)."""
        cur.execute("SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                    "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace "
                    "WHERE s.nspname = %s AND t.relname = %s AND x.indisunique AND NOT x.indisprimary", (self.schema, name))
        return {r[0] for r in cur.fetchall()}

    def _indexes(self, cur, name: str) -> dict[str, list[str]]:
        cur.execute(
            "SELECT i.relname, array(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum WHERE k.n <= x.indnkeyatts "
            "ORDER BY k.n), "
            "0 = ANY(x.indkey::int2[]) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace s ON s.oid = t.relnamespace "
            "WHERE s.nspname = %s AND t.relname = %s AND NOT x.indisprimary AND x.indpred IS NULL ORDER BY 1",
            (self.schema, name))
        return {ix: list(cols) for ix, cols, expr in cur.fetchall() if not expr}

    # -- blobs ---------------------------------------------------------------------------------------
    def put_blob(self, key, data, *, mime="application/octet-stream", layer=None, feature_id=None) -> None:
        from psycopg import sql

        check_blob(key, data)
        with self.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL(
                "INSERT INTO {} (key, data, mime, layer, feature_id, size) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, mime = EXCLUDED.mime, layer = EXCLUDED.layer, "
                "feature_id = EXCLUDED.feature_id, size = EXCLUDED.size, created = now()").format(self._q("twin_blobs")),
                (key, bytes(data), mime, layer, None if feature_id is None else str(feature_id), len(data)))

    def get_blob(self, key: str) -> bytes:
        from psycopg import sql

        with self.conn.cursor() as cur:
            row = None
            if not _has_nul(key):  # no key holds one (put_blob refuses it); the server refused the query
                cur.execute(sql.SQL("SELECT data FROM {} WHERE key = %s").format(self._q("twin_blobs")), (key,))
                row = cur.fetchone()
        if row is None:
            raise LayerNotFoundError(f"no blob {key!r} in {self.uri}; list them with store.list_blobs()")
        return bytes(row[0])

    def list_blobs(self, prefix: str = "") -> pd.DataFrame:
        from psycopg import sql

        with self.conn.cursor() as cur:
            cur.execute(sql.SQL('SELECT key, mime, layer, feature_id, size FROM {} WHERE left(key, %s) = %s '
                                'ORDER BY key COLLATE "C"').format(
                self._q("twin_blobs")), (len(prefix), prefix))
            rows = cur.fetchall()
        return pd.DataFrame(rows, columns=["key", "mime", "layer", "feature_id", "size"])

    def delete_blob(self, key: str) -> None:
        from psycopg import sql

        with self.transaction(), self.conn.cursor() as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE key = %s").format(self._q("twin_blobs")), (key,))

    # -- maintenance -------------------------------------------------------------------------------------
    def drop_schema(self) -> None:
        """Drop the whole schema (every layer, raster and result). Irreversible."""
        from psycopg import sql

        if self.schema == "public":
            raise StoreError("refusing to drop the public schema; drop the twin's objects one by one")
        with self.transaction(), self.conn.cursor() as cur:  # a role that may not: the one-line write refusal
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))


def _guarded(fn):
    """``fn`` (a public method of :class:`PostGISStore`) as an operation: its connection is checked (and replaced if
    the server dropped it) once at its start, and a lost connection or a refused read becomes the project's
    error (:meth:`PostGISStore._translate`) rather than the driver's."""
    import functools

    @functools.wraps(fn)
    def op(self, *args, **kwargs):
        import psycopg

        self._revive()  # the operation starts: checked once here, not again inside it (_calls)
        self._calls += 1
        try:
            return fn(self, *args, **kwargs)
        except psycopg.Error as exc:
            if self._calls > 1:  # the outermost call says it
                raise
            new = self._translate(exc)
            if new is None:
                raise
            raise new from None
        finally:
            self._calls -= 1

    return op


def _guard_public_methods(cls) -> None:
    for name, fn in list(vars(cls).items()):
        if (name.startswith("_") or not callable(fn) or isinstance(fn, (property, staticmethod, classmethod))
                or hasattr(fn, "__wrapped__") or name in ("close", "reopen_args", "transaction")):
            continue  # context managers (transaction, run_lock, ...) check and translate in transaction()
        setattr(cls, name, _guarded(fn))


_guard_public_methods(PostGISStore)


# -- type mapping -------------------------------------------------------------------------------------------


def _column_change(now: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> str:
    """How a table's columns ``now`` differ from ``wanted`` (name, type pairs), in a few words."""
    old, new = dict(now), dict(wanted)
    parts = []
    if set(new) - set(old):
        parts.append(f"new columns {sorted(set(new) - set(old))}")
    if set(old) - set(new):
        parts.append(f"columns {sorted(set(old) - set(new))} gone")
    changed = sorted(c for c in set(old) & set(new) if old[c] != new[c])
    if changed:
        parts.append("types of " + ", ".join(f"{c!r} {old[c]} -> {new[c]}" for c in changed))
    return "; ".join(parts) or "the columns' order"


def _pg_type(s: pd.Series) -> str:
    return {"bool": "boolean", "int64": "bigint", "float64": "double precision", "datetime": "timestamptz",
            "bytes": "bytea", "str": "text"}[value_kind(s)]


def _pg_dtype_name(udt: str) -> str:
    return {"int8": "int64", "int4": "int64", "int2": "int64", "float8": "float64", "float4": "float64",
            "bool": "bool", "timestamptz": "datetime", "timestamp": "datetime", "bytea": "bytes"}.get(udt, "str")


def _from_pg(values: list, udt: str):
    kind = _pg_dtype_name(udt)
    if kind == "datetime":  # psycopg gives datetime objects already
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return column_from_values(values, kind)
