"""One request-body size limit for the routers that take a body (sensor readings, BIM uploads).

:func:`limited_body_route` makes an :class:`~fastapi.routing.APIRoute` class (a router's ``route_class``) whose
requests' bodies are counted as they arrive and refused (413) once over the limit, whether or not they say
their length: a declared ``Content-Length`` over it is refused before any of the body is read, and a body sent
in chunks (no ``Content-Length``) once the bytes that came pass it. FastAPI reads and parses a body whole (a form's
files to temporary files) before the endpoint runs, so a check in the endpoint, or one on ``Content-Length``
alone, comes after the whole body was taken in. Nothing is held here: the ASGI ``receive`` is wrapped, and
FastAPI's parser reads the counted stream as it would the plain one. Before any of the body is read, the caller
is checked too: its token (401) and the route's right (403), found among the route's dependencies (its
``require(...)``), so a caller who may not use the route has none of its body read. A body of at least
:data:`RECHECK_BYTES`, or one that took :data:`RECHECK_S` or more to arrive, has its caller's token looked up
again once it is all in (:func:`viewer.dependencies.recheck_principal`): a token revoked or expired while a large
upload streamed is refused (401) then, before the route runs; a small, quick body is not looked up again.

Examples
--------
>>> from fastapi import APIRouter, HTTPException
>>> route = limited_body_route(lambda request: 1024, lambda size, request: HTTPException(413, f"{size} B: too large"))
>>> router = APIRouter(route_class=route)
"""

from __future__ import annotations

import time
from typing import Callable

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

__all__ = ["limited_body_route", "LIMITED_METHODS", "DEFAULT_BODY", "LimitedRoute", "RECHECK_BYTES", "RECHECK_S"]

#: the methods whose body is counted (the others carry none the routes read)
LIMITED_METHODS = ("POST", "PUT", "PATCH")
#: the most a body may carry where a router sets no limit of its own: a scenario edit, a bookmark or a job
#: request is a few kB of JSON (a drawn polygon of 10,000 vertices is about 400 kB)
DEFAULT_BODY = 1 << 20
#: a body at least this large (1 MiB: a BIM model, a batch of thousands of readings; the edits, bookmarks and jobs
#: stay under it) has its caller's token looked up again once it is all in, so a token revoked while it streamed
#: does not go on to run the route ...
RECHECK_BYTES = 1 << 20
#: ... and so has one that took this long (seconds) to arrive, however small: the early check's tokens are read
#: again after :data:`viewer.dependencies.TOKEN_CACHE_S` (2 s) anyway, so a quicker body gains nothing from a
#: second look
RECHECK_S = 2.0


def _required_rights(dependant: Dependant) -> list[str]:
    """The rights a route's dependencies require (its own, its router's and its parameters', at any depth): the
    ``required_right`` of each :func:`~viewer.dependencies.require` among them."""
    out = []
    for sub in dependant.dependencies:
        right = getattr(sub.call, "required_right", None)
        if right is not None:
            out.append(right)
        out += _required_rights(sub)
    return out


def _rechecked(request: Request, rights: list[str]) -> None:
    """The caller's token looked up again, in the store, once a large or slow body is all in (401 if it was
    revoked or expired meanwhile); its rights checked again (a token keeps its role, so they hold)."""
    state = getattr(request.app.state, "twin_state", None)
    if state is not None:
        from viewer.dependencies import check_right, recheck_principal

        caller = recheck_principal(request, state)
        for right in rights:
            check_right(caller, right)


def _authenticated(request: Request, rights: list[str]) -> None:
    """The caller's token and right checked before a byte of the body is read: 401 for no token or a bad one,
    403 for a role without one of the route's ``rights`` (:func:`_required_rights`, e.g. its
    ``require("ingest")``). FastAPI reads and parses a body before it runs a route's dependencies, so an
    anonymous caller's 8 MB of JSON, or a viewer's, was parsed (and an upload spooled) only to be refused. The
    route's dependencies still run as before, after the body."""
    state = getattr(request.app.state, "twin_state", None)
    if state is not None:
        from viewer.dependencies import PRINCIPAL_KEY, check_right, current_principal

        caller = current_principal(request, state)
        setattr(request.state, PRINCIPAL_KEY, caller)  # the route's own dependencies take it from there
        for right in rights:
            check_right(caller, right)


def limited_body_route(limit: Callable[[Request], int | None], too_large: Callable[[int, Request], HTTPException],
                       *, request_class: type[Request] = Request) -> type[APIRoute]:
    """An ``APIRoute`` class whose request bodies may carry at most ``limit(request)`` bytes.

    Parameters
    ----------
    limit : callable
        ``limit(request)``: the most bytes the body of ``request`` may carry (None: no limit), asked once per
        request, before its body is read (so it may depend on the server's settings).
    too_large : callable
        ``too_large(size, request)``: the :class:`~fastapi.HTTPException` (413, with what to do) for a body of at
        least ``size`` bytes: the declared length, or the bytes counted so far when the body passed the limit.
    request_class : type, optional
        The :class:`~starlette.requests.Request` subclass the route's handler gets (e.g. one whose ``json()``
        parses more strictly); default: Starlette's.
    """

    class LimitedBodyRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()
            rights = _required_rights(self.dependant)  # found once per route, checked once per request

            async def limited(request: Request):
                if request.method not in LIMITED_METHODS:
                    return await handler(request if isinstance(request, request_class)
                                         else request_class(request.scope, request.receive))
                # in a worker thread: it may wait for the store's lock
                await run_in_threadpool(_authenticated, request, rights)
                checked_at = time.monotonic()
                most = limit(request)
                clen = request.headers.get("content-length")
                if most is not None and clen and clen.isdigit() and int(clen) > most:
                    raise too_large(int(clen), request)
                receive, seen, done = request.receive, 0, False

                async def counted():
                    nonlocal seen, done
                    message = await receive()
                    if message["type"] == "http.request" and not done:
                        seen += len(message.get("body", b""))
                        if most is not None and seen > most:
                            raise too_large(seen, request)
                        if not message.get("more_body", False):
                            done = True  # the whole body is in: was it large, or slow, enough to look again?
                            if seen >= RECHECK_BYTES or time.monotonic() - checked_at >= RECHECK_S:
                                await run_in_threadpool(_rechecked, request, rights)
                    return message

                return await handler(request_class(request.scope, counted))

            return limited

    return LimitedBodyRoute


def _default_too_large(size: int, request: Request) -> HTTPException:
    return HTTPException(413, f"the body is {size // 1024} kB, over the limit of {DEFAULT_BODY // 1024} kB for "
                              f"{request.method} {request.url.path}; send less (a simpler shape, fewer features)")


#: the route class of every router whose routes take a body and set no limit of their own (scenario edits,
#: bookmarks, jobs): at most :data:`DEFAULT_BODY`, the caller's token and right checked first
LimitedRoute = limited_body_route(lambda request: DEFAULT_BODY, _default_too_large)
