"""Settings of the map server: one validated object, passed explicitly.

Tests build their own :class:`Settings` and hand it to
:func:`viewer.app.create_app`; the command line builds one from its options.
Environment variables (``TWIN_STORE``, ``TWIN_HOST`` ...) are read only by
:meth:`Settings.from_env`, never at import time.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from twin_core.net import is_loopback

__all__ = ["Settings", "ROLES", "is_loopback"]

#: roles: viewer reads; planner also edits scenarios and runs simulations; regulator
#: also runs BIM checks; sensor (a feed, not a person) only sends readings, and
#: reads nothing; admin does everything (tokens included).
ROLES = ("viewer", "planner", "regulator", "sensor", "admin")




class Settings(BaseModel):
    """What the server needs to know.

    Parameters
    ----------
    store : str
        A ``.gpkg`` path or a ``postgresql://`` DSN.
    host, port : where to bind (loopback by default).
    auth : ``"auto"`` (tokens required when any exist in the store or when bound
        beyond loopback), ``"required"`` or ``"off"`` (loopback only).
    max_upload_mb : upload size limit (IFC files, rule sets).
    tile_cache : how many encoded vector tiles and PNGs to keep in memory.
    simulated_sensors : fill in a simulated reading for sensors without one.
    prewarm : encode the buildings' tiles at zooms 14-15 in the background at start.
    """

    store: str
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    auth: Literal["auto", "required", "off"] = "auto"
    max_upload_mb: float = Field(50.0, gt=0, le=2048)
    tile_cache: int = Field(4096, ge=0)
    simulated_sensors: bool = True
    job_workers: int = Field(1, ge=1, le=8)
    prewarm: bool = True

    @field_validator("store")
    @classmethod
    def _store_given(cls, v: str) -> str:
        if not v or not str(v).strip():
            raise ValueError("store is empty: give a .gpkg file or a postgresql:// DSN")
        return str(v)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Settings from ``TWIN_STORE``, ``TWIN_HOST``, ``TWIN_PORT``, ``TWIN_AUTH`` plus overrides."""
        env = {
            "store": os.environ.get("TWIN_STORE"),
            "host": os.environ.get("TWIN_HOST"),
            "port": os.environ.get("TWIN_PORT"),
            "auth": os.environ.get("TWIN_AUTH"),
        }
        values = {k: v for k, v in env.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
