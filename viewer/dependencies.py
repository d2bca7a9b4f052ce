"""Shared things the routers depend on: the app state, settings, the caller's role.

Tests override :func:`get_settings` / :func:`get_state` through
``app.dependency_overrides`` like any FastAPI dependency.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from pydantic import AfterValidator

from cim.scenario import normalise_scenario_name
from viewer.auth import ISSUED_KEY, role_allows, token_key, token_status
from viewer.settings import ROLES, Settings
from viewer.state import AppState

__all__ = ["get_state", "get_settings", "Principal", "current_principal", "recheck_principal", "require",
           "ScenarioQuery", "TOKEN_CACHE_S", "TOKEN_MISS_RELOAD_S"]

#: ``?scenario=`` of a request (default ``"base"``), in Unicode NFC like the stored names: one name typed two
#: ways reads one scenario and shares its cached tiles and images (which an edit then clears). Names have at
#: most 63 characters; a decomposed spelling of one may have more.
ScenarioQuery = Annotated[str, Query(max_length=255, description="a scenario name, or 'base' (the city)"),
                          AfterValidator(normalise_scenario_name)]


def get_state(request: Request) -> AppState:
    state = getattr(request.app.state, "twin_state", None)
    if state is None:  # pragma: no cover - only if the lifespan did not run
        raise HTTPException(503, "the server is still starting; try again in a moment")
    return state


def get_settings(state: AppState = Depends(get_state)) -> Settings:
    return state.settings


@dataclass(frozen=True)
class Principal:
    role: str
    name: str = ""
    token_id: str | None = None

    def can(self, right: str) -> bool:
        return role_allows(self.role, right)


_ANON_ADMIN = Principal("admin", "local (no tokens configured)")


#: how long (seconds) the tokens read from the store are used before they are read again: a token revoked or
#: expired is refused at most this long after
TOKEN_CACHE_S = 2.0
#: a token not among those read (one made since, e.g. by `twin token create` a moment ago) has the tokens read
#: again before it is refused, but at most once this often (seconds): a flood of made-up tokens costs the store at
#: most 1 / TOKEN_MISS_RELOAD_S reads a second on top of those of TOKEN_CACHE_S
TOKEN_MISS_RELOAD_S = 0.25


def _token_meta(state: AppState, fresh: bool = False) -> dict:
    """The ``token:*`` metadata, read again once :data:`TOKEN_CACHE_S` old (or at once when ``fresh``)."""
    cached = getattr(state, "_token_cache", None)
    now = time.monotonic()
    if fresh or cached is None or now - cached[0] > TOKEN_CACHE_S:
        meta = {k: v for k, v in state.store.get_meta().items() if k.startswith("token:") or k == ISSUED_KEY}
        cached = (now, meta)
        state._token_cache = cached  # type: ignore[attr-defined]
    return cached[1]


def _token_meta_on_miss(state: AppState, token: str) -> dict | None:
    """The tokens read again for ``token``, which has the form of a token but whose id is not among the tokens
    read (made after they were read), unless a miss had them read less than :data:`TOKEN_MISS_RELOAD_S` ago
    (None then: refused; it is looked up at the next miss or after :data:`TOKEN_CACHE_S`). A token whose id is
    there with another secret (mistyped, guessed) is refused without a read: reading again would not change it."""
    key = token_key(token)
    cached = getattr(state, "_token_cache", None)
    if key is None or (cached is not None and key in cached[1]):
        return None
    with vars(state).setdefault("_token_miss_lock", threading.Lock()):  # setdefault: one lock, whoever comes first
        now = time.monotonic()
        last = getattr(state, "_token_miss_at", None)
        if last is not None and now - last < TOKEN_MISS_RELOAD_S:
            return None
        state._token_miss_at = now  # type: ignore[attr-defined]
    return _token_meta(state, fresh=True)


def auth_needed(state: AppState) -> bool:
    s = state.settings
    if s.auth == "off":
        return False
    if s.auth == "required" or not s.local_only:  # beyond loopback, or answering to other names (a proxy's)
        return True
    return bool(_token_meta(state))  # a token, or once there was one (ISSUED_KEY: revoking the last keeps them needed)


#: where :mod:`viewer.limits` keeps the caller it checked, on the request's state (server-side only)
PRINCIPAL_KEY = "rongtwin_principal"


def current_principal(request: Request, state: AppState = Depends(get_state)) -> Principal:
    """The caller, from ``Authorization: Bearer <token>`` (or ``?access_token=`` for EventSource); the one
    :mod:`viewer.limits` found before the request's body was read, when it did (the token checked once)."""
    return _principal(request, state)


def _principal(request: Request, state: AppState, fresh: bool = False) -> Principal:
    """:func:`current_principal`; ``fresh`` (for :func:`recheck_principal`) looks the token up again in the
    store, past the caller kept on the request and past the tokens read in the last :data:`TOKEN_CACHE_S`."""
    if not auth_needed(state):
        return _ANON_ADMIN
    known = getattr(request.state, PRINCIPAL_KEY, None)
    if isinstance(known, Principal) and not fresh:
        return known
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    if token is None and "access_token" in request.query_params:
        # a token in the URL is for what a page loads by URL (images, meshes, job streams): reads only
        if request.method not in ("GET", "HEAD"):
            raise HTTPException(401, f"a {request.method} request must carry its token in the header "
                                     "'Authorization: Bearer <token>', not in the URL",
                                headers={"WWW-Authenticate": "Bearer"})
        token = request.query_params.get("access_token")
    if not token:
        raise HTTPException(401, "this server needs a bearer token: send 'Authorization: Bearer <token>' "
                                 "(create one with `twin token create --role viewer STORE`)",
                            headers={"WWW-Authenticate": "Bearer"})
    status, rec = token_status(state.store, token, meta=_token_meta(state, fresh=fresh))
    if status == "unknown" and not fresh:  # made since the tokens were read? (a fresh read has it already)
        meta = _token_meta_on_miss(state, token)
        if meta is not None:
            status, rec = token_status(state.store, token, meta=meta)
    if status == "expired":  # said only to whoever holds the token's secret: a guess gets the answer below
        raise HTTPException(401, f"the bearer token {rec['id']} has expired (at {rec['expires']}); ask an admin "
                                 "for a new one (`twin token create --role ROLE --expires 30d STORE`)",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                                                         'error_description="the token has expired"'})
    if status != "valid":
        raise HTTPException(401, "the bearer token is not valid (unknown, revoked or mistyped); "
                                 "create a new one with `twin token create`", headers={"WWW-Authenticate": "Bearer"})
    return Principal(rec["role"], rec["name"], rec["id"])


def recheck_principal(request: Request, state: AppState) -> Principal:
    """The caller checked again against the store's tokens as they are now (:func:`current_principal` with
    ``fresh``): once a large or slow body has been read (:mod:`viewer.limits`), a token revoked or expired while
    it came is refused (401) before the route runs. The caller found is kept on the request again."""
    caller = _principal(request, state, fresh=True)
    setattr(request.state, PRINCIPAL_KEY, caller)
    return caller


def check_right(p: Principal, right: str) -> Principal:
    """``p`` if its role has ``right``, else a 403 that names every role that has it (from the role table)."""
    if not p.can(right):
        roles = [r for r in ROLES if role_allows(r, right)]
        need = (f"one of the roles {', '.join(roles[:-1])} or {roles[-1]}" if len(roles) > 1
                else f"the role {roles[0]}" if roles else "a role that has it (none has)")
        raise HTTPException(403, f"the role {p.role!r} may not do this ({right}); it needs {need}")
    return p


def require(right: str):
    """A dependency that lets through callers whose role has ``right`` (kept as its ``required_right``, which
    :mod:`viewer.limits` checks before a request's body is read)."""

    def dep(p: Principal = Depends(current_principal)) -> Principal:
        return check_right(p, right)

    dep.required_right = right
    return dep
