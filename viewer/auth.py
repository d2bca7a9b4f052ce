"""Bearer tokens and roles.

A token is ``rt_<id>_<secret>``; the store keeps only the SHA-256 of the
secret, under the metadata key ``token:<id>`` with its role and, for a token
made with ``expires_in``, the instant it expires (``expires``, ISO-8601 UTC).
``twin token create --role planner --expires 30d city.gpkg`` prints a new
token once; ``twin token prune city.gpkg`` removes the expired ones. A token
without ``expires`` (all tokens made before expiry existed) never expires.

Examples
--------
>>> import tempfile, os
>>> from datetime import timedelta
>>> from cim.store import open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "t.gpkg"), create=True, crs="EPSG:4544")
>>> tok = create_token(store, "planner", name="alice", expires_in=timedelta(days=30))
>>> verify_token(store, tok)["role"]
'planner'
>>> verify_token(store, tok + "x") is None
True
>>> [t["expired"] for t in list_tokens(store)]
[False]
>>> store.close()
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from twin_core.errors import AuthError

from viewer.settings import ROLES

__all__ = ["create_token", "verify_token", "token_status", "token_key", "list_tokens", "revoke_token",
           "prune_tokens", "role_allows", "ROLES", "MAX_EXPIRES_IN"]

_TOKEN = re.compile(r"^rt_([0-9a-f]{8})_([A-Za-z0-9_\-]{20,100})\Z")
_PREFIX = "token:"
#: set with a twin's first token and kept: a loopback server with ``--auth auto`` asks for tokens from then on,
#: also once every token is revoked or pruned (revoking a leaked last token must not open the map to anyone)
ISSUED_KEY = "auth:tokens_issued"
#: the longest a token may live: ten years (leap days included)
MAX_EXPIRES_IN = timedelta(days=3653)

#: what each role may do: every role of a person reads; a sensor feed only sends readings ("ingest")
_RIGHTS = {
    "viewer": {"read"},
    "planner": {"read", "scenarios", "simulate"},
    "regulator": {"read", "bim"},
    "sensor": {"ingest"},
    "admin": {"read", "scenarios", "simulate", "bim", "ingest", "admin"},
}


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; choose one of {list(ROLES)}")
    return role


def role_allows(role: str, right: str) -> bool:
    return right in _RIGHTS.get(role, set())


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    """The current instant (UTC): the clock expiries are read against (tests replace it to move time)."""
    return datetime.now(timezone.utc)


def _expires(expires_in: timedelta | None, now: datetime) -> str | None:
    """The ``expires`` instant of a token made ``now`` that lives ``expires_in``: whole seconds, rounded up
    (never sooner than asked)."""
    if expires_in is None:
        return None
    if not isinstance(expires_in, timedelta):
        raise TypeError(f"expires_in must be a datetime.timedelta (or None: the token never expires), "
                        f"got {type(expires_in).__name__} {expires_in!r}")
    if not timedelta(0) < expires_in <= MAX_EXPIRES_IN:
        raise AuthError(f"expires_in must be more than 0 and at most 10 years ({MAX_EXPIRES_IN.days} days), "
                        f"got {expires_in}; give e.g. timedelta(days=30), or None for a token that never expires")
    at = now + expires_in
    if at.microsecond:
        at = at.replace(microsecond=0) + timedelta(seconds=1)
    return at.isoformat()


def _expired(rec: dict, now: datetime) -> bool:
    """Whether the token record has expired at ``now``. No ``expires``: never; one that cannot be read
    (edited by hand) counts as expired, so a mistake locks out rather than lets in."""
    text = rec.get("expires")
    if text is None:
        return False
    try:
        at = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return True
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return now >= at


def create_token(store, role: str, *, name: str = "", expires_in: timedelta | None = None) -> str:
    """Create a token with ``role``; returns the token (it is not stored, only its hash).

    ``expires_in`` (a :class:`~datetime.timedelta` up to :data:`MAX_EXPIRES_IN`) makes the token stop
    working that long from now; None (the default) makes one that never expires.
    """
    check_role(role)
    now = _now()
    expires = _expires(expires_in, now)
    tid = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    rec = {"role": role, "name": name, "hash": _hash(secret), "created": now.isoformat(timespec="seconds")}
    if expires is not None:
        rec["expires"] = expires
    store.set_meta({f"{_PREFIX}{tid}": rec, ISSUED_KEY: True})
    return f"rt_{tid}_{secret}"


def token_key(token: str | None) -> str | None:
    """The metadata key a token's record is kept under (``token:<id>``), or None where ``token`` does not have
    the form of one (``rt_<8 hex digits>_<secret>``).

    Examples
    --------
    >>> token_key("rt_0123abcd_" + "x" * 43), token_key("hunter2")
    ('token:0123abcd', None)
    """
    m = _TOKEN.match(token.strip()) if isinstance(token, str) else None
    return f"{_PREFIX}{m.group(1)}" if m else None


def token_status(store, token: str | None, meta: dict | None = None) -> tuple[str, dict[str, Any] | None]:
    """``("valid", record)``, ``("expired", record)`` or ``("unknown", None)`` for ``token``.

    The record is ``id``, ``role``, ``name`` and ``expires`` (None: never). A token is "expired" only when
    its secret matches, so whoever guesses an id learns nothing about it.
    """
    if not token:
        return "unknown", None
    m = _TOKEN.match(token.strip())
    if not m:
        return "unknown", None
    tid, secret = m.groups()
    rec = (meta if meta is not None else store.get_meta()).get(f"{_PREFIX}{tid}")
    if not rec or not hmac.compare_digest(rec.get("hash", ""), _hash(secret)):
        return "unknown", None
    out = {"id": tid, "role": rec["role"], "name": rec.get("name", ""), "expires": rec.get("expires")}
    return ("expired" if _expired(rec, _now()) else "valid"), out


def verify_token(store, token: str | None, meta: dict | None = None) -> dict[str, Any] | None:
    """The token's record (``id``, ``role``, ``name``, ``expires``) or None if unknown, malformed or expired."""
    status, rec = token_status(store, token, meta)
    return rec if status == "valid" else None


def list_tokens(store, meta: dict | None = None) -> list[dict[str, Any]]:
    """Tokens (id, role, name, created, expires (None: never), expired); never the hashes."""
    meta = meta if meta is not None else store.get_meta()
    now = _now()
    return [
        {"id": k[len(_PREFIX):], "role": v.get("role"), "name": v.get("name", ""), "created": v.get("created"),
         "expires": v.get("expires"), "expired": _expired(v, now)}
        for k, v in sorted(meta.items()) if k.startswith(_PREFIX)
    ]


def prune_tokens(store) -> list[str]:
    """Remove the expired tokens; returns their ids."""
    gone = [t["id"] for t in list_tokens(store) if t["expired"]]
    if gone:
        with store.transaction():
            store.set_meta({ISSUED_KEY: True})  # tokens stay needed (a store from before the key had none)
            store.delete_meta([f"{_PREFIX}{tid}" for tid in gone])
    return gone


def revoke_token(store, token_id: str) -> None:
    key = f"{_PREFIX}{token_id}"
    if key not in store.get_meta():
        from twin_core.cli._common import store_arg

        raise AuthError(f"no token with id {token_id!r} in {store.uri}; `twin token list {store_arg(store)}` "
                        "lists the ids")
    with store.transaction():
        store.set_meta({ISSUED_KEY: True})  # tokens stay needed (a store from before the key had none)
        store.delete_meta([key])
