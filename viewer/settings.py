"""Settings of the map server: one validated object, passed explicitly.

Tests build their own :class:`Settings` and hand it to
:func:`viewer.app.create_app`; the command line builds one from its options.
Environment variables (``TWIN_STORE``, ``TWIN_HOST`` ...) are read only by
:meth:`Settings.from_env`, never at import time.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from twin_core.net import is_loopback

__all__ = ["Settings", "ROLES", "is_loopback", "check_allowed_host", "host_allowed"]

#: roles: viewer reads; planner also edits scenarios and runs simulations; regulator
#: also runs BIM checks; sensor (a feed, not a person) only sends readings, and
#: reads nothing; admin does everything (tokens included).
ROLES = ("viewer", "planner", "regulator", "sensor", "admin")

#: one label of a DNS name (RFC 1123): letters, digits and '-', not at either end, at most 63 characters
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def check_allowed_host(name: str) -> str:
    """``name`` (a host name or address the server may also answer to) as a ``Host`` header names it: in lower
    case, an IPv6 address in brackets. A wildcard ``*.example.org`` stands for every name under
    ``example.org`` (not ``example.org`` itself) and must name at least two labels after the ``*.``.

    Raises ``ValueError`` (with what to give instead) for anything else: a port, a scheme or path, a space, an
    empty label, ``*`` alone or inside a name, ``*.org``.

    Examples
    --------
    >>> check_allowed_host("Twin-Map.CD.gov.cn."), check_allowed_host("::1"), check_allowed_host("*.example.org")
    ('twin-map.cd.gov.cn', '[::1]', '*.example.org')
    >>> check_allowed_host("twin-map.cd.gov.cn:8765")
    Traceback (most recent call last):
    ...
    ValueError: allowed host 'twin-map.cd.gov.cn:8765' is not a host name: give the name alone, without a scheme, port or path (e.g. twin-map.cd.gov.cn), or an IP address
    """
    if not isinstance(name, str):
        raise ValueError(f"allowed host {name!r} is not text: give a host name such as twin-map.cd.gov.cn")
    given = name
    h = name.strip().lower()
    bare = h[1:-1] if h.startswith("[") and h.endswith("]") else h
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        ip = None
    if ip is not None:
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]  # the fully qualified form of the name (a Host header may carry it either way)
    if not h.isascii():
        try:  # a name in Chinese characters travels in a Host header as its IDNA (punycode) form
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # refused below
    wild = h.startswith("*.")
    rest = h[2:] if wild else h
    labels = rest.split(".")
    if not rest or len(rest) > 253 or not all(_LABEL.match(lb) for lb in labels):
        if "*" in h:
            why = ("a wildcard may only stand for the labels in front of a name, as in *.example.org (every name "
                   "under example.org)")
        else:
            why = ("give the name alone, without a scheme, port or path (e.g. twin-map.cd.gov.cn), or an IP "
                   "address")
        raise ValueError(f"allowed host {given!r} is not a host name: {why}")
    if wild and len(labels) < 2:
        raise ValueError(f"allowed host {given!r} would let in every name under the top-level domain {rest!r}: name "
                         f"the domain the server is served under, e.g. '*.example.{rest}', or list the names one by one")
    return h


def host_allowed(name: str | None, allowed) -> bool:
    """Whether the host ``name`` (lower case, as :func:`viewer.app._host_name` gives it) is one of ``allowed``
    (names from :func:`check_allowed_host`; ``*.example.org`` matches any name that ends in ``.example.org``).

    Examples
    --------
    >>> [host_allowed(n, ["*.example.org"]) for n in ("a.example.org", "a.b.example.org", "example.org", "aexample.org")]
    [True, True, False, False]
    """
    if not name:
        return False
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    for a in allowed:
        if a.startswith("*."):
            front = name[:-len(a) + 1] if name.endswith(a[1:]) else ""
            if front and all(_LABEL.match(lb) for lb in front.split(".")):  # real labels only in front
                return True
        elif name == a:
            return True
    return False


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
    allow_hosts : more host names (or addresses) a server bound to loopback answers to, e.g. the name a
        reverse proxy forwards (``twin-map.cd.gov.cn``) or ``*.example.org``; a server with any is reachable from
        beyond loopback, so it needs tokens like one bound there (``auth`` off is refused). A server bound beyond
        loopback answers to every name already.
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
    allow_hosts: list[str] = Field(default_factory=list)

    @field_validator("allow_hosts", mode="before")
    @classmethod
    def _hosts_given(cls, v):
        if v is None:
            return []
        if isinstance(v, str):  # TWIN_ALLOW_HOSTS: names separated by commas
            v = [h for h in v.split(",") if h.strip()]
        if not isinstance(v, (list, tuple, set, frozenset)):
            raise ValueError(f"allow_hosts must be a list of host names, got {type(v).__name__}")
        return list(dict.fromkeys(check_allowed_host(h) for h in v))

    @field_validator("store")
    @classmethod
    def _store_given(cls, v: str) -> str:
        if not v or not str(v).strip():
            raise ValueError("store is empty: give a .gpkg file or a postgresql:// DSN")
        return str(v)

    @property
    def loopback(self) -> bool:
        """Whether the server is bound to a loopback address."""
        return is_loopback(self.host)

    @property
    def local_only(self) -> bool:
        """Whether only this machine reaches the server: bound to loopback and answering to no other name
        (:attr:`allow_hosts`). Only such a server may run without tokens."""
        return self.loopback and not self.allow_hosts

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Settings from ``TWIN_STORE``, ``TWIN_HOST``, ``TWIN_PORT``, ``TWIN_AUTH`` and ``TWIN_ALLOW_HOSTS`` (names
        separated by commas) plus overrides."""
        env = {
            "store": os.environ.get("TWIN_STORE"),
            "host": os.environ.get("TWIN_HOST"),
            "port": os.environ.get("TWIN_PORT"),
            "auth": os.environ.get("TWIN_AUTH"),
            "allow_hosts": os.environ.get("TWIN_ALLOW_HOSTS"),
        }
        values = {k: v for k, v in env.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
