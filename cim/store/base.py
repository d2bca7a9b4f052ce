"""The one storage contract of the city information model.

Two implementations follow it: :class:`cim.store.gpkg.GeoPackageStore` (one
``.gpkg`` file, zero set-up) and :class:`cim.store.postgis.PostGISStore`
(PostgreSQL + PostGIS through psycopg 3). Nothing above the store knows which
one it has; the contract tests in ``tests/cim/test_store_contract.py`` run
against both.

Objects a store holds
---------------------
- vector layers: GeoDataFrames in the store's CRS (``write_layer``/``read_layer``);
- rasters: single-band float32 grids (:class:`cim.raster.Raster`);
- tables: plain DataFrames (results, scenario edits, sensor readings), with
  indexes on their columns where lookups need them (``create_index``);
- blobs: bytes with a MIME type, optionally tied to a feature (glTF meshes);
- metadata: a JSON key/value map (twin name, CRS, time zone, extent ...).

Names of layers, rasters and tables are lower-case identifiers
(``[a-z][a-z0-9_]*``, at most 60 characters); names starting with ``twin_``
are reserved for the store's own bookkeeping.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from contextlib import contextmanager
import json
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from cim.raster import Raster, Window
from cim.schema import as_text
from twin_core.errors import CRSError, LayerNotFoundError, SchemaError

__all__ = ["Store", "check_name", "Where", "index_name"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}\Z")

#: attribute filter: {column: value} for equality, {column: [v1, v2]} for IN,
#: {column: (op, value)} with op in =, !=, <, <=, >, >=.
Where = Mapping[str, Any]
_OPS = {"=", "!=", "<", "<=", ">", ">="}


def check_name(name: str, what: str = "layer", *, reserved_ok: bool = False) -> str:
    """Validate a layer/raster/table name and return it."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SchemaError(
            f"{what} name {name!r} is not valid: use lower-case letters, digits and '_', "
            "starting with a letter, at most 60 characters (e.g. 'buildings_2025')"
        )
    if name.startswith("twin_") and not reserved_ok:
        raise SchemaError(f"{what} name {name!r} is reserved (names starting with 'twin_' are the store's own)")
    if name.startswith(("gpkg_", "rtree_", "sqlite_")):
        raise SchemaError(f"{what} name {name!r} is reserved (names starting with 'gpkg_', 'rtree_' or 'sqlite_' "
                          "belong to the GeoPackage format); pick another")
    return name


def normalise_where(where: Where | None, columns: Sequence[str], layer: str) -> list[tuple[str, str, Any]]:
    """Turn a where mapping into (column, op, value) triples, checking columns."""
    out: list[tuple[str, str, Any]] = []
    if not where:
        return out
    for col, val in where.items():
        if col not in columns:
            raise SchemaError(f"{layer!r} has no column {col!r} to filter on; its columns are {list(columns)}")
        if isinstance(val, tuple) and len(val) == 2 and val[0] in _OPS:
            out.append((col, val[0], _py(val[1])))
        elif isinstance(val, (list, set, np.ndarray, pd.Series)):
            vals = [_py(v) for v in val]
            out.append((col, "in", vals))
        else:
            out.append((col, "=", _py(val)))
    return out


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


class Store(ABC):
    """Abstract store. Use :func:`cim.store.open_store` to get one."""

    #: "gpkg" or "postgis"
    kind: str = ""
    uri: str = ""

    # -- lifecycle -------------------------------------------------------
    @abstractmethod
    def reopen_args(self) -> tuple[str, str | None]:
        """``(target, schema)`` that :func:`cim.store.open_store` takes to open this store again elsewhere (a
        worker process of a sweep)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and file handles."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uri}>"

    # -- metadata --------------------------------------------------------
    @abstractmethod
    def get_meta(self) -> dict[str, Any]:
        """All metadata as a dict of JSON values."""

    @abstractmethod
    def set_meta(self, values: Mapping[str, Any]) -> None:
        """Insert or replace metadata keys (values must be JSON-serialisable)."""

    @abstractmethod
    def delete_meta(self, keys: Sequence[str]) -> None:
        """Remove metadata keys (missing keys are ignored)."""

    #: the CRS :attr:`crs` read, kept for this handle (None: not read yet, or forgotten by :meth:`_forget_crs`)
    _crs_kept: str | None = None
    #: moves on at each :meth:`_forget_crs`: a read that a write of the key overtook is not kept
    _crs_generation: int = 0

    @property
    def crs(self) -> str | None:
        """The twin's CRS (e.g. ``"EPSG:4544"``), from the metadata.

        Read once per handle and kept: every layer and raster read asks for it (``/api/scene`` did ~8 reads of
        the whole metadata table for it). The CRS of a twin is written when the store is made (``open_store(...,
        create=True, crs=...)``, :meth:`Twin.create <twin_core.twin.Twin.create>`, which refuses another CRS
        for an existing twin) and not changed after; every write of the key goes through :meth:`set_meta` or
        :meth:`delete_meta`, which forget the kept value on this handle. A value is kept only when read outside
        a transaction (one read inside may be rolled back) and not None (a twin without a CRS yet is read
        again, so one another handle gives it is seen); :meth:`close` and a PostGIS reconnection forget it.
        Another handle (process) changing an existing twin's CRS by hand (``set_meta({"crs": ...})``) is not
        seen by this one until it is opened again: layers written in the old CRS would be wrong anyway."""
        kept = self._crs_kept
        if kept is not None:
            return kept
        generation = self._crs_generation
        crs = self.get_meta().get("crs")
        if crs is not None and generation == self._crs_generation and self._crs_keepable():
            self._crs_kept = crs
        return crs

    def _crs_keepable(self) -> bool:
        """Whether a CRS read now may be kept (:attr:`crs`): outside a transaction (a rollback could take back what
        was read inside it)."""
        return not self.in_transaction

    def _forget_crs(self) -> None:
        """Drop the kept CRS (:attr:`crs`): on a write of the key (before it, so a failed write leaves nothing
        kept), on :meth:`close` and on a reconnection."""
        self._crs_kept = None
        self._crs_generation += 1

    @staticmethod
    def _touches_crs(keys) -> bool:
        """Whether the metadata keys written or deleted include ``"crs"``."""
        return any(str(k) == "crs" for k in keys)

    # -- vector layers ---------------------------------------------------
    @abstractmethod
    def list_layers(self) -> list[str]:
        """Names of the vector layers (user layers only)."""

    def has_layer(self, name: str) -> bool:
        return name in self.list_layers()

    @abstractmethod
    def write_layer(self, name: str, gdf, mode: str = "replace") -> int:
        """Write a GeoDataFrame; ``mode`` is ``"replace"`` or ``"append"``. Returns rows written."""

    @abstractmethod
    def read_layer(
        self,
        name: str,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ):
        """Read a layer (features whose envelope meets ``bbox``, matching ``where``)."""

    @abstractmethod
    def layer_info(self, name: str) -> dict[str, Any]:
        """``{"name", "count", "bounds", "geometry_type", "columns": {name: dtype}}``."""

    @abstractmethod
    def delete_layer(self, name: str) -> None:
        """Drop a layer."""

    @abstractmethod
    def delete_features(self, name: str, column: str, values: Any) -> int:
        """Delete the features of layer ``name`` whose ``column`` holds one of ``values`` (one value or a
        sequence of them), in one transaction (joining an open one), and return how many went.

        Only those rows go: the rest of the layer is not rewritten (its spatial index and feature count are
        kept up to date, as is its extent), so deleting one building of a city of 100k costs milliseconds.
        :meth:`layer_written` moves on when features went (not when none matched), so runs that read the
        layer before are marked stale. The features deleted are those ``read_layer(name, where={column:
        values})`` reads; each value is taken as a value of the column's type (``5`` matches the text
        ``'5'`` in a text column, ``'5'`` the number 5 in an integer one) or refused.

        Raises
        ------
        LayerNotFoundError
            There is no layer ``name`` (the message lists those there are).
        SchemaError
            ``column`` is not an attribute column of the layer (the message lists those it has), or holds
            date-times or bytes (not matched exactly alike in both stores), or a value is null or does not
            fit the column's type.

        Examples
        --------
        >>> import os, tempfile, geopandas as gpd, shapely
        >>> from cim.store import open_store
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "del.gpkg"), create=True, crs="EPSG:4544")
        >>> gdf = gpd.GeoDataFrame({"building_id": ["B1", "B2", "B3"]},
        ...                        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(3)], crs="EPSG:4544")
        >>> store.write_layer("buildings", gdf)
        3
        >>> store.delete_features("buildings", "building_id", ["B2"])
        1
        >>> store.read_layer("buildings")["building_id"].tolist()
        ['B1', 'B3']
        >>> store.close()
        """

    def layer_written(self, name: str) -> pd.Timestamp | None:
        """When layer ``name`` was last written (replaced, appended to or features deleted; UTC), or None where the
        store does not know: a GeoPackage knows it for every layer (``gpkg_contents.last_change``), PostGIS for
        those written since 2026-12-05 (older ones: None, i.e. unknown). The map marks a run made before a base
        layer it used was replaced as stale (:func:`viewer.routers.results.mark_stale`)."""
        return None

    # -- rasters ---------------------------------------------------------
    @abstractmethod
    def list_rasters(self) -> list[str]: ...

    def has_raster(self, name: str) -> bool:
        return name in self.list_rasters()

    @abstractmethod
    def write_raster(self, name: str, raster: Raster) -> None:
        """Store a single-band raster as float32 (replaces one of the same name)."""

    @abstractmethod
    def read_raster(self, name: str, *, window: Window | None = None, bounds=None) -> Raster:
        """Read a whole raster, a cell ``window``, or the cells covering ``bounds``."""

    @abstractmethod
    def raster_info(self, name: str) -> dict[str, Any]:
        """``{"name", "width", "height", "transform", "crs", "nodata", "unit", "bounds"}``."""

    @abstractmethod
    def delete_raster(self, name: str) -> None: ...

    def raster_written(self, name: str) -> pd.Timestamp | None:
        """When raster ``name`` was last written (UTC), or None where the store does not know: a GeoPackage
        knows it for every raster (``gpkg_contents.last_change``), PostGIS for those written since 2026-12-05.
        Scenario edits recorded before they kept their grid check with it whether the raster was replaced
        since (:meth:`cim.scenario.Scenario.raster`)."""
        return None

    # -- tables ----------------------------------------------------------
    @abstractmethod
    def list_tables(self) -> list[str]: ...

    def has_table(self, name: str) -> bool:
        return name in self.list_tables()

    @abstractmethod
    def write_table(self, name: str, df: pd.DataFrame, mode: str = "replace") -> int: ...

    @abstractmethod
    def read_table(self, name: str, *, where: Where | None = None, columns: Sequence[str] | None = None,
                   order_by: str | Sequence[str] | None = None, descending: bool = False,
                   limit: int | None = None, offset: int | None = None) -> pd.DataFrame:
        """Rows of a table matching ``where``, in insertion order or by ``order_by`` (ties in insertion
        order, reversed with ``descending``), ``limit`` rows from ``offset``."""

    @abstractmethod
    def count_rows(self, name: str, *, where: Where | None = None) -> int:
        """How many rows of table ``name`` match ``where``."""

    @abstractmethod
    def delete_rows(self, name: str, where: Where) -> int:
        """Delete the rows of table ``name`` matching ``where`` (required: an empty filter is refused,
        drop a whole table with :meth:`delete_table`). Returns how many went."""

    @abstractmethod
    def delete_table(self, name: str) -> None: ...

    @abstractmethod
    def create_index(self, name: str, columns: str | Sequence[str], *, unique: bool = False) -> str:
        """Create an index on ``columns`` (in that order) of table ``name`` unless it has one on exactly these
        columns already; returns the index's name. Idempotent, in one transaction (joining an open one).
        ``unique=True``: a unique index (an existing plain index on the columns does not count); rows that
        repeat a value already are a :class:`SchemaError` that says how many, and nothing is created.

        Lookups by the leading columns (``where={"sensor_id": ...}``, then ``order_by="time"``) use it. An index
        lives with its table: replacing the table (``write_table(..., mode="replace")``) drops it; appends keep it.

        Raises
        ------
        LayerNotFoundError
            There is no table ``name`` (layers carry their own spatial index).
        SchemaError
            ``name`` is not a valid table name, ``columns`` is empty, repeats a column or names one the table
            does not have (the message lists those it has).

        Examples
        --------
        >>> import os, tempfile, pandas as pd
        >>> from cim.store import open_store
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "ix.gpkg"), create=True, crs="EPSG:4544")
        >>> store.write_table("readings", pd.DataFrame({"sensor_id": ["RG01"], "time": ["2026-07-01T00:00:00Z"]}))
        1
        >>> name = store.create_index("readings", ["sensor_id", "time"])
        >>> store.create_index("readings", ["sensor_id", "time"]) == name  # idempotent
        True
        >>> store.list_indexes("readings") == {name: ["sensor_id", "time"]}
        True
        >>> store.close()
        """

    @abstractmethod
    def list_indexes(self, name: str) -> dict[str, list[str]]:
        """The indexes on columns of table ``name``: ``{index name: [columns, in order]}``, those made by
        :meth:`create_index` or by hand (the store's own key on ``fid`` and indexes on expressions are left out)."""

    # -- blobs -----------------------------------------------------------
    @abstractmethod
    def put_blob(
        self,
        key: str,
        data: bytes,
        *,
        mime: str = "application/octet-stream",
        layer: str | None = None,
        feature_id: str | None = None,
    ) -> None: ...

    @abstractmethod
    def get_blob(self, key: str) -> bytes: ...

    @abstractmethod
    def list_blobs(self, prefix: str = "") -> pd.DataFrame:
        """DataFrame with columns key, mime, layer, feature_id, size."""

    @abstractmethod
    def delete_blob(self, key: str) -> None: ...

    # -- transactions ----------------------------------------------------
    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator["Store"]:
        """Everything inside commits together or not at all.

        On an exception the store is returned to its state before the block
        and the exception propagates (with a note saying it was rolled back).
        Nested blocks join the outer one.
        """

    def check_writable(self, before: str | None = None) -> None:
        """Raise a :class:`~twin_core.errors.StoreError` when this handle may not write the twin (a read-only
        file or folder, a role that may only read, a read-only server), in the words a refused write has; pass
        when it may. Every engine and analysis that saves its run checks this before it computes anything
        (:func:`cim.results.claim_run`): a refusal found only when the results were saved cost the whole run
        (minutes of a city's storm). Writes nothing.

        ``before``: what was about to start (``"a flood run"``), said in the message. A store that cannot
        tell without writing passes (the write then says it)."""

    @staticmethod
    def _checked_before(before: str | None) -> str:
        """The end of :meth:`check_writable`'s message: checked before ``before`` started."""
        return f" (checked before {before} started: nothing was computed)" if before else ""

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` block is open on this handle (a write now commits with it, later)."""
        return getattr(self, "_txn_depth", 0) > 0

    @contextmanager
    def run_lock(self, key: str) -> Iterator["Store"]:
        """A :meth:`transaction` (joining one already open) that no other store handle's ``run_lock`` of the
        same ``key`` (a run's scenario and id) runs beside until the outermost transaction ends, so that what
        is read in it (a run id found free) still holds when its writes commit. A GeoPackage's transaction is
        that already: it takes the file's write lock as it begins (``BEGIN IMMEDIATE``), before anything is
        read. PostGIS adds a transaction-scoped advisory lock on ``key``."""
        with self.transaction():
            yield self

    @contextmanager
    def lock_table(self, name: str) -> Iterator["Store"]:
        """A :meth:`transaction` (joining one already open) holding table ``name``'s write lock until the
        outermost transaction ends: no other store handle writes the table (nor creates it, if it is missing)
        meanwhile, so what is read in the block (the highest sequence number, whether the table exists) still
        holds when the block's writes commit. A GeoPackage's transaction is that already (``BEGIN IMMEDIATE``
        takes the file's write lock before anything is read); PostGIS takes the table's advisory write lock,
        the one :meth:`write_table` takes. The table need not exist."""
        with self.transaction():
            yield self

    # -- shared helpers --------------------------------------------------
    def _check_crs(self, gdf, name: str) -> None:
        store_crs = self.crs
        if gdf.crs is None:
            raise CRSError(
                f"cannot write layer {name!r}: the GeoDataFrame has no CRS. "
                f"Set it with gdf.set_crs('EPSG:xxxx') (the store uses {store_crs or 'no CRS yet'})"
            )
        if store_crs is not None:
            from pyproj import CRS

            if not CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(store_crs)):
                raise CRSError(
                    f"cannot write layer {name!r} in {gdf.crs.to_string()} into a store in {store_crs}: "
                    f"reproject first (gdf.to_crs({store_crs!r})) or import with cim.io which reprojects"
                )

    def _require_layer(self, name: str) -> None:
        if not self.has_layer(name):
            raise LayerNotFoundError(f"no layer {name!r} in {self.uri}; "
                                     f"{_named_here('layers', name, self.list_layers())}")

    def _require_raster(self, name: str) -> None:
        if not self.has_raster(name):
            raise LayerNotFoundError(f"no raster {name!r} in {self.uri}; "
                                     f"{_named_here('rasters', name, self.list_rasters())}")

    def _require_index_table(self, name: str) -> None:
        if not self.has_table(name) and self.has_layer(name):
            raise LayerNotFoundError(f"{name!r} is a layer in {self.uri}, not a table: create_index takes tables (a "
                                     f"layer has its spatial index already); tables here: {self.list_tables()}")
        self._require_table(name)

    def _require_table(self, name: str) -> None:
        if not self.has_table(name):
            raise LayerNotFoundError(f"no table {name!r} in {self.uri}; tables here: {self.list_tables()}")


def check_paging(columns: Sequence[str], table: str, order_by, limit, offset) -> tuple[list[str], int | None, int]:
    """Validate ``order_by`` (column names of the table), ``limit`` and ``offset`` (non-negative integers)."""
    keys = [] if order_by is None else [order_by] if isinstance(order_by, str) else list(order_by)
    unknown = [k for k in keys if k not in columns]
    if unknown:
        raise SchemaError(f"cannot order table {table!r} by {unknown}: it has columns {list(columns)}")
    for what, v in (("limit", limit), ("offset", offset)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise ValueError(f"{what} must be a non-negative integer, got {v!r}")
    return keys, None if limit is None else int(limit), int(offset or 0)


def check_index_columns(columns, have: Sequence[str], table: str) -> list[str]:
    """``columns`` (one name or a sequence) as a list, checked against the table's columns ``have``."""
    cols = [columns] if isinstance(columns, str) else columns
    if not isinstance(cols, (list, tuple)) or not cols:
        raise SchemaError(f"an index on table {table!r} needs one column name or a non-empty list of them, got "
                          f"{columns!r} (e.g. ['sensor_id', 'time'])")
    cols = list(cols)
    bad = [c for c in cols if not isinstance(c, str)]
    if bad:
        raise SchemaError(f"index columns of table {table!r} must be column names (text), got {bad!r}")
    dup = sorted({c for c in cols if cols.count(c) > 1})
    if dup:
        raise SchemaError(f"an index on table {table!r} names column(s) {dup} more than once")
    if "fid" in cols:
        raise SchemaError(f"'fid' is the store's own key of table {table!r}, indexed already; index other columns "
                          f"({list(have)})")
    unknown = [c for c in cols if c not in have]
    if unknown:
        raise SchemaError(f"table {table!r} has no column(s) {unknown} to index; it has {list(have)}")
    return cols


#: the layout of the store's own tables this code writes, kept under :data:`FORMAT_KEY` in ``twin_meta``: stamped
#: when a store is made, and on a store without it (written before the key existed: layout 1) when it is first
#: opened by a session that may write it. A store stamped with a higher number is refused (:func:`check_format`)
FORMAT_VERSION = 1
FORMAT_KEY = "format_version"


def check_format(version: Any, uri: str) -> None:
    """Refuse a store whose ``twin_meta`` says it was written in a newer layout than :data:`FORMAT_VERSION`
    (``version`` None: no key, an older store of layout 1)."""
    from twin_core.errors import StoreConnectionError

    if version is None:
        return
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StoreConnectionError(f"{uri} says its store format version is {version!r} (twin_meta key "
                                   f"{FORMAT_KEY!r}), which is not a version number; this RongTwin reads version "
                                   f"{FORMAT_VERSION}. Restore the key or the store from a backup")
    if version > FORMAT_VERSION:
        raise StoreConnectionError(
            f"{uri} is a store of format version {version}, written by a newer RongTwin; this RongTwin reads "
            f"format version {FORMAT_VERSION} and older only, so it does not open it (it might misread or damage "
            "it). Upgrade RongTwin to the version that wrote it or a newer one, then open it again")


def index_name(table: str, columns: Sequence[str], unique: bool = False) -> str:
    """The name :meth:`Store.create_index` gives an index: ``twin_ix_<table>_<hash>`` (``twin_ux_`` for a unique
    one; the ``twin_`` prefix is the store's own, so no table can take it; the hash of table and columns keeps two
    indexes apart; at most 63 characters, PostgreSQL's limit)."""
    import hashlib

    digest = hashlib.sha1("\x00".join([table, *columns]).encode()).hexdigest()[:10]
    return f"twin_{'ux' if unique else 'ix'}_{table[:44]}_{digest}"


def duplicate_values_error(table: str, columns: Sequence[str], n: int) -> SchemaError:
    """What :meth:`Store.create_index` with ``unique=True`` says when rows repeat a value already."""
    return SchemaError(f"cannot make a unique index on {list(columns)} of table {table!r}: {n} row(s) repeat a value "
                       "another row has; remove or renumber them first (nothing was created)")


def repeated_values_error(table: str, detail: str | None, index: str | None = None) -> SchemaError:
    """What an append into a table says when its rows repeat a value a unique index on the table holds already
    (the server's or SQLite's refusal, ``detail`` such as ``Key (seq)=(2) already exists.`` or ``UNIQUE
    constraint failed: scenario_edits.seq``): the table, the column(s) and what to do, not the raw IntegrityError."""
    m = re.search(r"Key \((.*?)\)=\((.*?)\) already exists", detail or "")
    if m:
        cols, said = [c.strip().strip('"') for c in m[1].split(",")], f" (the value {m[2]} is there already)"
    else:
        m = re.search(r"UNIQUE constraint failed: (.*)", detail or "")
        cols = [c.strip().split(".", 1)[-1] for c in m[1].split(",")] if m else ["?"]
        said = ""
    return SchemaError(
        f"cannot append to table {table!r}: a row repeats a value of column(s) {cols} that another row has"
        f"{said}, and the table has a unique index on {cols}{f' ({index})' if index else ''}; nothing was written. "
        f"Give the rows values no row of {table!r} has (for the scenario edit log, record edits through "
        "Scenarios, not by appending rows by hand), or delete the rows that repeat them first")


def check_delete_filter(where, table: str) -> None:
    if not where:
        raise ValueError(f"delete_rows on {table!r} needs a non-empty where filter; "
                         "to remove every row, delete the table with delete_table")


def feature_values(layer: str, column: Any, values: Any, kinds: Mapping[str, str]) -> list:
    """The ``values`` of :meth:`Store.delete_features` as a list of plain Python values of the type of
    ``column`` (``kinds``: the layer's attribute columns -> bool, int64, float64, datetime, bytes or str),
    cast as :func:`cim.schema.cast_value` casts them, or a :class:`SchemaError` saying what is wrong."""
    from cim.schema import cast_value

    if not isinstance(column, str) or column not in kinds:
        from cim.scenario import did_you_mean

        own = (" (the store's own key and the geometry are not attribute columns)"
               if column in ("fid", "geom", "geometry") else "")
        raise SchemaError(f"layer {layer!r} has no attribute column {column!r} to delete features by{own}; its "
                          f"columns are {list(kinds)}"
                          + (did_you_mean(column, list(kinds)) if isinstance(column, str) else ""))
    kind = kinds[column]
    if kind not in ("str", "int64", "float64", "bool"):
        keys = [c for c, k in kinds.items() if k in ("str", "int64")]
        raise SchemaError(f"cannot delete features of {layer!r} by column {column!r}: it holds {kind} values, which "
                          f"the stores do not match alike; delete by a text or integer column (here: {keys})")
    if values is None or isinstance(values, Mapping):
        raise SchemaError(f"delete_features on {layer!r} needs a value of {column!r} or a sequence of them (e.g. "
                          f"['B1', 'B2']), got {values!r}")
    if isinstance(values, (str, bytes, int, float, bool, np.generic)):
        values = [values]
    try:
        vals = list(values)
    except TypeError:
        raise SchemaError(f"delete_features on {layer!r} needs a value of {column!r} or a sequence of them (e.g. "
                          f"['B1', 'B2']), got {type(values).__name__} {values!r}") from None
    out = []
    for v in vals:
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and v != v):
            raise SchemaError(f"delete_features on {layer!r}: the values of {column!r} hold a null ({v!r}), which "
                              "equals no feature's value; remove it from the values")
        try:
            out.append(cast_value(v, kind))
        except (TypeError, ValueError):
            raise SchemaError(f"delete_features on {layer!r}: {v!r} does not fit column {column!r}, which holds "
                              f"{kind} values; pass values of that type") from None
    return out


def check_mode(mode: str) -> str:
    if mode not in ("replace", "append"):
        raise ValueError(f"mode must be 'replace' or 'append', got {mode!r}")
    return mode


def raster_window(info_shape: tuple[int, int], transform, window: Window | None, bounds) -> Window:
    """Resolve a window or bounds against a raster grid (whole raster if neither)."""
    from twin_core.errors import RasterError

    rows, cols = info_shape
    if window is not None and bounds is not None:
        raise ValueError("give either window or bounds, not both")
    if bounds is not None:
        dummy = Raster(np.empty((rows, cols), dtype="uint8"), transform, "")
        return dummy.window_from_bounds(tuple(bounds))
    if window is None:
        return Window(0, 0, rows, cols)
    if window.row_off < 0 or window.col_off < 0 or window.height <= 0 or window.width <= 0 or \
            window.row_off + window.height > rows or window.col_off + window.width > cols:
        raise RasterError(f"window {window} lies outside the raster of {rows} x {cols} cells")
    return window


def value_kind(series: pd.Series) -> str:
    """The store-neutral kind of a column: bool, int64, float64, datetime, bytes or str."""
    dt = series.dtype
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_integer_dtype(dt):
        return "int64"
    if pd.api.types.is_float_dtype(dt):
        return "float64"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
    if isinstance(dt, pd.StringDtype):  # holds only strings and nulls
        return "str"
    # the first non-null value decides: looked for in the first rows, the whole column only when they are all null
    sample = series.iloc[:64].dropna()
    if not len(sample):
        sample = series.dropna()
    if len(sample) and isinstance(sample.iloc[0], (bytes, bytearray, memoryview)):
        return "bytes"
    return "str"


def cast_for_append(df: pd.DataFrame, kinds: dict[str, str], name: str) -> pd.DataFrame:
    """``df``'s columns cast to the kinds of the columns they are appended to (``kinds``: column -> bool,
    int64, float64, datetime, bytes or str), or a clear SchemaError; nulls stay null.

    Integers go into float columns, integral numbers into integer ones, numbers into text ones
    (``3.0`` as ``'3'``), numeric text into numeric columns; anything else is refused, since
    appending it would store nonsense (binary COPY) or change its meaning.
    """
    out = df.copy()
    for c, want in kinds.items():
        if c not in out.columns or c == "geometry":
            continue
        s = out[c]
        have = value_kind(s)
        notna = s.notna().to_numpy()
        if have == want or not notna.any():  # an all-null column is null in any type
            continue
        try:
            out[c] = _cast_kind(s, notna, have, want)
            continue
        except (TypeError, ValueError, OverflowError):
            pass
        raise SchemaError(f"cannot append to {name!r}: column {c!r} holds {want} values, the new rows give {have} "
                          f"(e.g. {s[notna].iloc[0]!r}); convert the column to {want} first (or write a new layer)")
    return out


def _cast_kind(s: pd.Series, notna: np.ndarray, have: str, want: str):
    """One column cast from kind ``have`` to ``want`` (ValueError where that would change values)."""
    vals = s[notna]
    if want == "float64" and have in ("int64", "str"):
        return pd.to_numeric(s, errors="raise").astype("float64")
    if want == "int64" and have in ("float64", "str"):
        f = pd.to_numeric(vals, errors="raise").astype("float64").to_numpy()
        if not (np.isfinite(f) & (f % 1 == 0)).all():
            raise ValueError("not integral")
        if notna.all():
            return f.astype("int64")
        arr = pd.array([pd.NA] * len(s), dtype="Int64")
        arr[notna] = f.astype("int64")
        return arr
    if want == "str" and have in ("int64", "float64", "bool"):
        col = pd.Series([None] * len(s), index=s.index, dtype=object)
        col[notna] = [as_text(v) for v in vals.tolist()]
        return col
    raise ValueError(f"{have} -> {want}")


def column_from_values(values: list, kind: str):
    """Database values of one column back to a pandas/NumPy column of ``kind`` (nulls kept)."""
    has_null = any(v is None for v in values)
    if kind == "int64":
        return pd.array(values, dtype="Int64") if has_null else np.array(values, dtype="int64")
    if kind == "float64":
        return np.array([np.nan if v is None else v for v in values], dtype="float64")
    if kind == "bool":
        if has_null:
            return pd.array([None if v is None else bool(v) for v in values], dtype="boolean")
        return np.array(values, dtype=bool)
    if kind == "datetime":
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
    if kind == "bytes":
        return pd.Series([None if v is None else bytes(v) for v in values], dtype=object)
    return pd.Series(values, dtype=object if has_null else None)


def index_as_columns(df):
    """``df`` with its index as column(s) when it carries data (named, a MultiIndex, or not integers: e.g.
    time stamps or gauge ids), as geopandas' ``to_file`` writes it; a plain or filtered integer index is
    dropped. (Every index was dropped, silently losing e.g. the time axis of a hydrograph.)"""
    idx = df.index
    keep = isinstance(idx, pd.MultiIndex) or any(n is not None for n in idx.names) or not (
        pd.api.types.is_integer_dtype(idx.dtype))
    if not keep:
        return df.reset_index(drop=True)
    names = [n if n is not None else ("index" if idx.nlevels == 1 else f"level_{k}") for k, n in enumerate(idx.names)]
    clash = sorted(set(map(str, names)) & set(map(str, df.columns)))
    if clash:
        raise SchemaError(f"the frame's index {names} would be stored as column(s) {clash}, which the frame already "
                          "has; rename the index (df.rename_axis('new_name')) or drop it (df.reset_index(drop=True))")
    return df.reset_index()


_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


def prepare_frame(gdf):
    import geopandas as gpd

    if not isinstance(gdf, gpd.GeoDataFrame):
        raise TypeError("write_layer needs a GeoDataFrame; use write_table for plain tables")
    # pandas >= 3 copies on write: a shallow copy is a copy (and skips copying every column, 6 ms for 135k rows)
    out = index_as_columns(gdf.copy(deep=not _COPY_ON_WRITE))
    bad = [c for c in out.columns if c.lower() in ("fid", "geom") and c != out.geometry.name]
    if bad:
        raise SchemaError(f"columns {bad} are reserved by the store; rename them")
    if out.geometry.name != "geometry":
        out = out.rename_geometry("geometry")
    out["geometry"] = promote_to_multi(out.geometry.values)
    for c in out.columns:
        if c == "geometry":
            continue
        check_col_name(c)
    check_columns(out)
    out = normalise_columns(out)
    out.attrs["has_z"] = frame_has_z(out)  # refuses a layer that mixes 2D and 3D geometries
    return out


def frame_has_z(gdf) -> bool | None:
    """Whether a frame's non-empty geometries carry Z (``None`` when it has none).

    A layer is either 2D or 3D in both stores (PostGIS types the column, GeoPackage records
    it in ``gpkg_geometry_columns.z``); a frame that mixes the two is refused.
    """
    import shapely

    geoms = np.asarray(gdf.geometry.values, dtype=object)
    z = shapely.has_z(geoms)  # False for a missing geometry
    uniform = bool(z.all()) or not z.any()
    if uniform:  # 2D or 3D as z says, when any geometry is live: the first rows settle that for a usual layer
        head = geoms[:64]
        live_head = ~(shapely.is_missing(head) | shapely.is_empty(head))
        if live_head.any() or (~(shapely.is_missing(geoms) | shapely.is_empty(geoms))).any():
            return bool(z.all())
        return None
    live = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not live.any():
        return None
    z = z[live]
    if z.all():
        return True
    if not z.any():
        return False
    raise SchemaError(
        f"the geometries mix 2D and 3D ({int(z.sum())} with Z, {int((~z).sum())} without); a layer is one or the "
        "other: make them uniform with gdf.geometry = shapely.force_3d(gdf.geometry.values) (z = 0) or "
        "shapely.force_2d(...) before writing"
    )


def check_append_dims(name: str, layer_has_z: bool, gdf) -> None:
    """Refuse appending 3D geometries to a 2D layer or 2D ones to a 3D layer (``gdf`` from prepare_frame)."""
    has_z = gdf.attrs["has_z"]
    if has_z is not None and has_z != layer_has_z:
        want = "3D (with Z)" if layer_has_z else "2D"
        fix = "shapely.force_3d" if layer_has_z else "shapely.force_2d"
        raise SchemaError(
            f"cannot append to {name!r}: the layer is {want} and the new geometries are not; convert them with "
            f"{fix}(gdf.geometry.values) or write them to a layer of their own"
        )


_TYPE_NAMES = {0: "POINT", 1: "LINESTRING", 3: "POLYGON", 4: "MULTIPOINT", 5: "MULTILINESTRING", 6: "MULTIPOLYGON",
               7: "GEOMETRYCOLLECTION"}


def geometry_type_of(gdf) -> str:
    """The layer geometry type a frame's geometries call for (``GEOMETRY`` when they are of several kinds
    or there are none; a single/multi mix of one kind is its multi type, see :func:`promote_to_multi`)."""
    import shapely

    ids = shapely.get_type_id(np.asarray(gdf.geometry.values, dtype=object))  # -1 for a missing geometry
    kinds = [int(k) - 1 for k in np.flatnonzero(np.bincount(ids + 1, minlength=1)) if k > 0]  # sorted, present
    if not kinds:
        return "GEOMETRY"
    if len(kinds) == 1:
        return _TYPE_NAMES.get(kinds[0], "GEOMETRY")
    for family in ({3, 6}, {1, 5}, {0, 4}):
        if set(kinds) <= family:
            return _TYPE_NAMES[max(family)]
    return "GEOMETRY"


def append_geometry_type(layer_type: str | None, gdf):
    """The layer's geometry type once ``gdf`` (from prepare_frame) is appended, and ``gdf`` itself.

    Single parts appended to a multi-part layer of their kind become multi parts (as a replace with the
    same mix would make them); any other new kind widens the layer to ``GEOMETRY``. The type recorded
    stayed the layer's own in the GeoPackage (a POINT layer holding polygons) and became the new rows'
    type in PostGIS (a POLYGON layer holding points), so scenario edits were checked against a wrong type.
    """
    import shapely

    have = (layer_type or "GEOMETRY").upper()
    new = geometry_type_of(gdf)
    live = ~(shapely.is_missing(gdf.geometry.values) | shapely.is_empty(gdf.geometry.values))
    if not live.any() or have == new or have == "GEOMETRY":
        return have, gdf
    single = {"MULTIPOINT": "POINT", "MULTILINESTRING": "LINESTRING", "MULTIPOLYGON": "POLYGON"}.get(have)
    if single is not None and new in (single, have):
        geoms = np.asarray(gdf.geometry.values, dtype=object)
        ids = shapely.get_type_id(geoms)
        one = {"POINT": 0, "LINESTRING": 1, "POLYGON": 3}[single]
        ctor = {"POINT": shapely.multipoints, "LINESTRING": shapely.multilinestrings,
                "POLYGON": shapely.multipolygons}[single]
        idx = np.nonzero(ids == one)[0]
        geoms = geoms.copy()
        geoms[idx] = [ctor([g]) for g in geoms[idx]]
        out = gdf.copy()
        out["geometry"] = geoms
        out.attrs.update(gdf.attrs)
        return have, out
    return "GEOMETRY", gdf


def promote_to_multi(geoms):
    """If a column mixes single and multi parts of one family, make them all multi."""
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    ids = shapely.get_type_id(geoms)
    for single, multi, ctor in ((3, 6, shapely.multipolygons), (1, 5, shapely.multilinestrings), (0, 4, shapely.multipoints)):
        if (ids == multi).any() and (ids == single).any():
            idx = np.nonzero(ids == single)[0]
            geoms = geoms.copy()
            geoms[idx] = [ctor([g]) for g in geoms[idx]]
    return geoms


def prepare_table(df: pd.DataFrame) -> pd.DataFrame:
    out = index_as_columns(df.copy())
    if "fid" in out.columns:
        raise SchemaError("column 'fid' is reserved by the store; rename it")
    for c in out.columns:
        check_col_name(c)
    check_columns(out)
    return normalise_columns(out)


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Give object columns that hold only booleans, or only date-times, their proper dtype (nulls kept),
    and refuse durations, so both stores keep the same values.

    ``[True, None, False]`` is an object column in pandas; it went in as the text 'True'/'False'
    (the GeoPackage table as '1'), so a filter ``{"flag": True}`` missed it and ``'False'`` read
    back truthy. An object column of Timestamps became a datetime in the GeoPackage layer but text
    in PostGIS. A timedelta column was refused by GDAL with an internal error and stored as text
    (``'NaT'`` for a null in a GeoPackage table) elsewhere.
    """
    out = df
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_timedelta64_dtype(s.dtype):
            kind = "timedelta"
        elif s.dtype == object:  # pandas' C type inference, nulls skipped: no Python loop over the rows
            head = s.iloc[:64].dropna()
            if len(head) and isinstance(head.iloc[0], str):  # text first: not all booleans, date-times, durations
                continue
            kind = pd.api.types.infer_dtype(s, skipna=True)
        else:
            continue
        if kind in ("timedelta", "timedelta64"):
            raise SchemaError(f"column {c!r} holds durations (timedelta), which the stores cannot keep; store them "
                              f"as numbers, e.g. df[{c!r}] = df[{c!r}].dt.total_seconds() (seconds)")
        if kind not in ("boolean", "datetime", "datetime64"):
            continue
        if out is df:
            out = df.copy()
        out[c] = s.astype("boolean") if kind == "boolean" else pd.to_datetime(s, utc=True)
    return out


def check_columns(df: pd.DataFrame) -> None:
    """Column names that differ only in case (one column to GeoPackage and to SQL), and unsigned
    integers beyond the signed 64-bit range (stored as int64), are refused."""
    seen: dict[str, str] = {}
    for c in df.columns:
        k = str(c).lower()
        if k in seen:
            raise SchemaError(f"columns {seen[k]!r} and {c!r} differ only in case, which the stores cannot keep "
                              "apart; rename one")
        seen[k] = c
    for c in df.columns:
        if pd.api.types.is_unsigned_integer_dtype(df[c].dtype) and len(df[c]) and int(df[c].max()) >= 2 ** 63:
            raise SchemaError(f"column {c!r} holds unsigned integers up to {int(df[c].max())}, beyond the 64-bit "
                              "signed range the stores keep; store them as text or float")


def _has_nul(v: Any) -> bool:
    return isinstance(v, str) and "\x00" in v


def _nul_in(v: Any) -> bool:
    """Whether a JSON-able value holds a NUL character in any text or key (jsonb refuses it)."""
    if isinstance(v, dict):
        return any(_has_nul(str(k)) or _nul_in(x) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return any(_nul_in(x) for x in v)
    return _has_nul(v)


def meta_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, JSON text)`` rows for ``set_meta``, the same in both stores: NaN or infinity, or a NUL character
    in a key or a text, is refused with the key named (PostgreSQL's jsonb refuses them; the GeoPackage kept
    NaN, which JSON readers other than Python's then choke on)."""
    rows = []
    for k, v in values.items():
        if _has_nul(str(k)):
            raise SchemaError(f"metadata key {str(k)!r} {NUL_TEXT}")
        try:
            text = json.dumps(v, default=str, allow_nan=False)
        except ValueError:
            raise SchemaError(f"metadata {str(k)!r} holds NaN or an infinite number, which JSON (and "
                              f"PostgreSQL's jsonb) cannot keep; store None or a finite number") from None
        if _nul_in(v):
            raise SchemaError(f"metadata {str(k)!r} {NUL_TEXT}")
        rows.append((str(k), text))
    return rows


NUL_TEXT = ("holds text with a NUL character (\\x00), which GeoPackage would cut off there and PostgreSQL "
            "refuses; remove it from the values")


def check_no_nul(df: pd.DataFrame) -> None:
    """Refuse text with a NUL character (GeoPackage would silently cut it there). ~7 ms per 100k values,
    so the PostGIS store leaves the check to the server, which refuses such text in the COPY."""
    for c in df.columns:
        if c != "geometry" and value_kind(df[c]) == "str" and "\x00" in "".join(
                v for v in df[c].tolist() if isinstance(v, str)):
            raise SchemaError(f"column {c!r} {NUL_TEXT}")


def check_col_name(c: Any) -> None:
    import re

    if not isinstance(c, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", c):
        raise SchemaError(f"column name {c!r} is not valid: use letters, digits and '_' (at most 63 characters)")


def check_bbox(bbox) -> tuple[float, float, float, float]:
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise SchemaError(f"bbox must be (xmin, ymin, xmax, ymax) numbers, got {bbox!r}") from None
    if not all(np.isfinite([xmin, ymin, xmax, ymax])) or xmin > xmax or ymin > ymax:
        raise SchemaError(f"bbox {bbox!r} is not a box: need finite xmin <= xmax and ymin <= ymax")
    return xmin, ymin, xmax, ymax


def check_blob(key: str, data: bytes) -> None:
    if not isinstance(key, str) or not key or len(key) > 512:
        raise ValueError(f"blob key must be a non-empty string of at most 512 characters, got {key!r}")
    if _has_nul(key):  # PostgreSQL's text refuses it (a raw DataError), SQLite kept it: refused in both
        raise ValueError(f"blob key {key!r} holds a NUL character (\\x00); remove it from the key")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"blob data must be bytes, got {type(data).__name__}")


def _named_here(what: str, name: str, names) -> str:
    """"layers here: [...]" for a not-found message: the data's own names, without the stored results'
    (``res_<hash>``, read with load_result), and the close match."""
    from cim.scenario import did_you_mean

    own = [n for n in names if not str(n).startswith("res_")]
    return f"{what} here: {own}" + did_you_mean(name, own)
