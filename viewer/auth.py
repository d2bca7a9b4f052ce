"""Bearer tokens and roles.

A token is ``rt_<id>_<secret>``; the store keeps only the SHA-256 of the
secret, under the metadata key ``token:<id>`` with its role. ``twin token
create --role planner city.gpkg`` prints a new token once.

Examples
--------
>>> import tempfile, os
>>> from cim.store import open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "t.gpkg"), create=True, crs="EPSG:4544")
>>> tok = create_token(store, "planner", name="alice")
>>> verify_token(store, tok)["role"]
'planner'
>>> verify_token(store, tok + "x") is None
True
>>> store.close()
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from twin_core.errors import AuthError

from viewer.settings import ROLES

__all__ = ["create_token", "verify_token", "list_tokens", "revoke_token", "role_allows", "ROLES"]

_TOKEN = re.compile(r"^rt_([0-9a-f]{8})_([A-Za-z0-9_\-]{20,100})\Z")
_PREFIX = "token:"

#: what each role may do, beyond reading (everyone who holds a token may read)
_RIGHTS = {
    "viewer": {"read"},
    "planner": {"read", "scenarios", "simulate"},
    "regulator": {"read", "bim"},
    "admin": {"read", "scenarios", "simulate", "bim", "admin"},
}


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; choose one of {list(ROLES)}")
    return role


def role_allows(role: str, right: str) -> bool:
    return right in _RIGHTS.get(role, set())


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(store, role: str, *, name: str = "") -> str:
    """Create a token with ``role``; returns the token (it is not stored, only its hash)."""
    check_role(role)
    tid = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    store.set_meta({f"{_PREFIX}{tid}": {
        "role": role, "name": name, "hash": _hash(secret),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }})
    return f"rt_{tid}_{secret}"


def verify_token(store, token: str | None, meta: dict | None = None) -> dict[str, Any] | None:
    """The token's record (``id``, ``role``, ``name``) or None if unknown or malformed."""
    if not token:
        return None
    m = _TOKEN.match(token.strip())
    if not m:
        return None
    tid, secret = m.groups()
    rec = (meta if meta is not None else store.get_meta()).get(f"{_PREFIX}{tid}")
    if not rec or not hmac.compare_digest(rec.get("hash", ""), _hash(secret)):
        return None
    return {"id": tid, "role": rec["role"], "name": rec.get("name", "")}


def list_tokens(store, meta: dict | None = None) -> list[dict[str, Any]]:
    """Tokens (id, role, name, created); never the hashes."""
    meta = meta if meta is not None else store.get_meta()
    return [
        {"id": k[len(_PREFIX):], "role": v.get("role"), "name": v.get("name", ""), "created": v.get("created")}
        for k, v in sorted(meta.items()) if k.startswith(_PREFIX)
    ]


def revoke_token(store, token_id: str) -> None:
    key = f"{_PREFIX}{token_id}"
    if key not in store.get_meta():
        raise AuthError(f"no token with id {token_id!r}; see `twin token list`")
    store.delete_meta([key])
