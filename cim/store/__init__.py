"""Stores: one contract (:class:`Store`), two implementations.

>>> from cim.store import open_store  # doctest: +SKIP
>>> store = open_store("city.gpkg")                         # GeoPackage file
>>> store = open_store("postgresql://127.0.0.1/twin?schema=chengdu")  # PostGIS
"""

from __future__ import annotations

import os
from typing import Any

from cim.store.base import Store, check_name

__all__ = ["Store", "open_store", "check_name", "is_dsn"]


def is_dsn(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_store(target: "str | os.PathLike | Store", *, create: bool = False, crs: str | None = None,
               schema: str | None = None) -> Store:
    """Open a store from a ``.gpkg`` path or a PostGIS DSN.

    Parameters
    ----------
    target : str, Path or Store
        ``city.gpkg`` or ``postgresql://host[:port]/db[?schema=name]``. A Store is returned as is.
    create : bool
        Create the file / schema if missing.
    crs : str, optional
        The twin CRS to record on creation (e.g. ``"EPSG:4544"``).
    schema : str, optional
        PostGIS schema (default ``public``, or ``?schema=`` in the DSN).
    """
    if isinstance(target, Store):
        return target
    if is_dsn(target):
        from cim.store.postgis import PostGISStore

        return PostGISStore(str(target), create=create, crs=crs, schema=schema)
    path = os.fspath(target)
    if not str(path).lower().endswith(".gpkg"):
        from twin_core.errors import StoreConnectionError

        raise StoreConnectionError(
            f"cannot tell which store {path!r} is: give a '.gpkg' file or a 'postgresql://host/db' DSN"
        )
    from cim.store.gpkg import GeoPackageStore

    return GeoPackageStore(path, create=create, crs=crs)
