"""The FastAPI application: :func:`create_app` builds it from :class:`Settings`.

The twin is opened once in the lifespan and closed at shutdown; every router
reaches it through :mod:`viewer.dependencies`. Errors become JSON
``{"detail": ..., "error": ...}`` with a fitting status, never a stack trace.
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import asynccontextmanager
from importlib import resources
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from viewer.settings import Settings

__all__ = ["create_app", "open_state"]

log = logging.getLogger("viewer")

STATIC_DIR = resources.files("viewer") / "static"


def open_state(settings: Settings):
    """Open the twin behind a lock and build the state the routers share."""
    from twin_core.twin import Twin

    from viewer.jobs import JobManager
    from viewer.state import AppState, LockedStore
    from viewer.tiles import TileSource

    try:
        from cim.store.postgis import application_name
    except ImportError:  # no psycopg in this build
        from contextlib import nullcontext as application_name

    with application_name("rongtwin-serve"):  # the server's connections, as pg_stat_activity shows them
        twin = Twin.open(settings.store)
    lock = threading.RLock()
    locked = LockedStore(twin.store, lock)
    twin.store = locked
    twin.scenarios.store = locked
    state = AppState(settings, twin, locked)
    state.tile_source = TileSource(state)
    state.jobs = JobManager(state, workers=settings.job_workers)
    why = read_only_reason(locked)
    if why:
        log.warning("the twin cannot be written, so the map can be viewed but every change through the API "
                    "(scenarios, jobs, sensor readings, BIM checks) will be refused with a 503: %s", why)
    return state


def read_only_reason(store) -> str | None:
    """Why the server cannot write ``store`` (a read-only GeoPackage or folder, a PostGIS role that may only read,
    a read-only server), from the store's own :meth:`~cim.store.base.Store.check_writable` (cheap: a catalogue
    query, or one row written and rolled back); None when it may write or the check cannot tell."""
    from twin_core.errors import StoreError

    try:
        store.check_writable()
    except StoreError as exc:
        return str(exc)
    except Exception:  # a check that cannot run only costs the warning
        log.debug("could not tell whether the twin is writable", exc_info=True)
    return None


def write_refused(exc: BaseException) -> str | None:
    """The message for a write the store refused (a read-only twin, a role that may only read), or None.

    The stores say it as a :class:`~twin_core.errors.StoreError` "cannot write ...; nothing was changed. Connect as
    a role that may write ..." (the CLI's message); a driver error that reached here unwrapped gets the same
    advice."""
    from twin_core.errors import StoreConnectionError, StoreError

    text = str(exc)
    if isinstance(exc, StoreError) and not isinstance(exc, StoreConnectionError):
        return text if text.startswith("cannot write") and "nothing was changed" in text else None
    refusals: tuple = ()
    try:
        from cim.store.postgis import _write_refusals

        refusals = _write_refusals()
    except ImportError:  # no psycopg in this build
        pass
    import sqlite3

    if isinstance(exc, refusals) or (isinstance(exc, sqlite3.OperationalError)
                                     and ("readonly" in text or "read-only" in text)):
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        if not isinstance(exc, sqlite3.Error):  # PostGIS: a read refused too (no SELECT on a table made later)
            return (f"the database refused the server's role ({first}); nothing was changed. Grant the role what it "
                    "lacks on the twin's schema (to read: GRANT SELECT ON ALL TABLES IN SCHEMA s TO role and "
                    "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO role; to write: INSERT, UPDATE, "
                    "DELETE and CREATE), then try again")
        return (f"cannot write the twin: the store refused the write ({first}). Make the GeoPackage and its folder "
                "writable, then try again")
    return None


def _connection_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is the PostGIS driver's error for a connection that broke (the store's next call reconnects)."""
    try:
        import psycopg
    except ImportError:  # no psycopg in this build
        return False
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg.errors.LockNotAvailable) and (
        "connection" in str(exc).lower() or isinstance(exc, psycopg.errors.AdminShutdown))


def _status_for(exc: Exception) -> int:
    from twin_core import errors as E

    from viewer.jobs import InvalidParameter, UnknownJob

    if isinstance(exc, (E.LayerNotFoundError, UnknownJob)):
        return 404
    if isinstance(exc, InvalidParameter):  # a value the engine cannot read, refused before the job queued
        return 422
    if isinstance(exc, E.AuthError):
        return 403
    if isinstance(exc, E.ScenarioError) and str(exc).startswith("no scenario"):
        return 404
    if isinstance(exc, (E.StoreConnectionError, E.StorePermissionError, E.StoreLockError)) or write_refused(exc):
        return 503  # the database cannot be reached, refuses the server's role, or another session holds a lock
    if _connection_failed(exc):  # a driver error from code that uses the connection itself (tiles, sensors)
        return 503
    if isinstance(exc, (ValueError, E.ImportFormatError, E.RuleError, E.GeoreferenceError, E.SchemaError,
                        E.ScenarioError, E.GeometryError, E.RasterError)):
        return 400
    if isinstance(exc, E.JobError):
        return 409
    return 500


def create_app(settings: Settings, *, state=None) -> FastAPI:
    """The map server. ``state`` (from :func:`open_state`) may be given by tests that share one."""
    from viewer.routers import ROUTERS

    if settings.auth == "off" and not settings.local_only:
        from twin_core.errors import AuthError

        if settings.loopback:
            raise AuthError(f"refusing to serve with auth off under other host names ({', '.join(settings.allow_hosts)}): "
                            "requests through them may come from beyond loopback (a reverse proxy), so a token is "
                            "required; use --auth auto / required, or leave out --allow-host")
        raise AuthError(f"refusing to serve on {settings.host} with auth off: outside loopback a token is "
                        "required; bind 127.0.0.1 or use --auth auto / required")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = state is None
        st = open_state(settings) if own else state
        app.state.twin_state = st
        if own and settings.prewarm:
            from viewer.tiles import prewarm

            def warm():
                try:
                    prewarm(st)
                except Exception:  # a warm-up failure only costs speed
                    log.exception("tile warm-up failed")

            threading.Thread(target=warm, name="twin-prewarm", daemon=True).start()
        try:
            yield
        finally:
            st.closing = True
            if own:
                st.jobs.shutdown()
                with st.lock:
                    st.twin.store.raw.close()

    app = FastAPI(
        title="RongTwin one map",
        version="0.1.0",
        description="The city twin as an API: layers, vector tiles, rasters, meshes, scenarios, "
                    "simulation jobs, BIM checks and sensors. Bearer tokens carry roles "
                    "(viewer, planner, regulator, sensor, admin).",
        lifespan=lifespan,
    )
    app.add_middleware(GZipMiddleware, minimum_size=800)
    # a web page elsewhere may not change the twin through the operator's browser (CSRF): without tokens on loopback
    # a cross-site form post would otherwise act as admin; with tokens it is a second line of defence
    app.add_middleware(_OriginCheck, settings=settings)
    if settings.loopback:
        # on loopback the server may run without tokens (everybody local is admin): only requests addressed
        # to a loopback name may reach it, so a web page cannot drive it through DNS rebinding
        app.add_middleware(_HostCheck, hosts=_loopback_hosts(settings.host), settings=settings,
                           allowed=settings.allow_hosts)
    _redact_tokens_in_access_log()
    if state is not None:  # usable even by clients that do not run the lifespan
        app.state.twin_state = state

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": exc.detail, "error": _reason(exc.status_code)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        msgs = []
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        for e in exc.errors():
            loc, kind = tuple(e.get("loc", ())), e.get("type", "")
            if kind == "json_invalid":  # "1: JSON decode error": say where and what
                why = (e.get("ctx") or {}).get("error", "not JSON")
                at = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
                msgs.append(f"the request body is not valid JSON ({why}{at}); send JSON with Content-Type: "
                            "application/json")
                continue
            if loc == ("body",) and ctype not in ("application/json", "") and not ctype.endswith("+json"):
                # a JSON body sent as text/plain or a form is not read as JSON: "Input should be a valid dictionary"
                msgs.append(f"the request body was sent as Content-Type {ctype!r}, which the server does not read "
                            "as JSON; send JSON with Content-Type: application/json")
                continue
            where = ".".join(str(p) for p in loc if p not in ("body",))
            msgs.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return JSONResponse({"detail": "; ".join(msgs) or "invalid request", "error": "invalid request"},
                            status_code=422)

    from twin_core import errors as E
    from twin_core.errors import TwinError

    @app.exception_handler(TwinError)
    async def twin_error(request: Request, exc: TwinError):
        return await any_error(request, exc)

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception):
        status = _status_for(exc)
        refused = write_refused(exc)
        if refused:  # the twin is read-only to the server: a state, not a bug (no stack trace)
            log.warning("%s %s: %s", request.method, request.url.path, refused)
            msg = refused
        elif isinstance(exc, (E.StoreConnectionError, E.StorePermissionError, E.StoreLockError)):
            log.warning("%s %s: %s", request.method, request.url.path, exc)  # the database's state, not a bug
            msg = str(exc)
        elif _connection_failed(exc):
            log.warning("%s %s: the database connection failed: %s", request.method, request.url.path, exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = (f"the database connection failed ({first}); try again: the server reconnects at its next request "
                   "(GET /api/health says whether the database can be reached)")
        elif status >= 500:
            log.exception("error serving %s", request.url.path)
            msg = (f"the server failed on this request ({type(exc).__name__}); the server log has the details"
                   if status == 500 else str(exc))
        else:
            msg = str(exc)
        return JSONResponse({"detail": msg, "error": type(exc).__name__}, status_code=status)

    for r in ROUTERS:
        app.include_router(r)

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(str(STATIC_DIR / "index.html"), media_type="text/html")

    return app


#: Host names a loopback server answers to. No single-label name but localhost: a name such as
#: Starlette's default "testserver" can be made to resolve to 127.0.0.1 on a local network (LLMNR, a DNS
#: search domain), which would let a web page past this check.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def _loopback_hosts(bound: str) -> list[str]:
    """:data:`LOOPBACK_HOSTS` and the loopback address the server is bound to (127.0.0.2, an IPv6 form ...),
    as a Host header names it (IPv6 in brackets)."""
    host = bound.lower()
    return [*LOOPBACK_HOSTS, host, f"[{host}]"] if ":" in host else [*LOOPBACK_HOSTS, host]


def _host_name(header: str | None) -> str | None:
    """The host name of a ``Host`` header, its port left out (``[::1]:8765`` -> ``[::1]``), in lower case; a header
    with anything else after the name (``[::1]x``, ``localhost:80x``) is returned whole, to match no name."""
    h = (header or "").strip().lower()
    if not h:
        return None
    end = h.find("]") + 1 if h.startswith("[") else (h.rfind(":") if h.count(":") == 1 else len(h))
    port = h[end:]
    return h[:end] if end > 0 and (not port or (port[0] == ":" and port[1:].isdigit())) else h


class _HostCheck:
    """Lets through only requests addressed (``Host``) to one of ``hosts`` or of the ``allowed`` names (the
    server's ``--allow-host``: names, or wildcards ``*.example.org``, from
    :func:`viewer.settings.check_allowed_host`); any other gets a JSON 400, like every other error, that names the
    names it answers to and how to serve under another (Starlette's TrustedHostMiddleware said only "Invalid host
    header", in plain text)."""

    def __init__(self, app, hosts: list[str], settings: Settings, allowed: list[str] = ()) -> None:
        self.app, self.hosts, self.settings = app, {h.lower() for h in hosts}, settings
        self.allowed = list(allowed)
        self.names = list(dict.fromkeys([*hosts, *self.allowed]))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            from starlette.datastructures import Headers

            from viewer.settings import host_allowed

            given = Headers(scope=scope).get("host")
            name = _host_name(given)
            if name not in self.hosts and not host_allowed(name, self.allowed):
                s = self.settings
                said = f"to {given[:100]!r}" if given else "with no Host header"
                shown = name if name and _plain_name(name) else "NAME"  # the name asked for, if fit for a shell
                detail = (f"this server answers only to the host names {', '.join(self.names)}; the request was "
                          f"addressed {said}. It is bound to the loopback address {s.host}"
                          f"{'' if self.allowed else ', where it may run without tokens'}, so it answers to no other "
                          "name unless told (a web page could otherwise reach it through DNS rebinding): open "
                          f"http://127.0.0.1:{s.port}/. Behind a reverse proxy or under a name of the local network, "
                          "create a token (`twin token create STORE --role viewer`) and allow the name: "
                          f"`twin serve STORE --allow-host {shown}` (repeat --allow-host for more names; "
                          "*.example.org allows every name under example.org; or set TWIN_ALLOW_HOSTS). To serve it "
                          f"on another address, start it there: `twin serve STORE --host ADDRESS --port {s.port}`")
                await JSONResponse({"detail": detail, "error": "invalid host"}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: methods that only read: any origin may send them (the answer is for the page only if CORS allows, and it does not)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _origin_host(origin: str) -> tuple[str, str] | None:
    """(host name, port or "") of an ``Origin`` header such as ``http://127.0.0.1:8765``, the scheme's own default
    port left out (80 for http, 443 for https: ``http://127.0.0.1:443`` is another origin than a server reached
    as ``127.0.0.1``); None for an origin that names no http(s) host (``null``: a sandboxed page or a local file)."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(origin.strip().lower())
        port = u.port
    except ValueError:
        return None
    if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/"):
        return None
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return host, "" if port is None or port == {"http": 80, "https": 443}[u.scheme] else str(port)


def _host_port(header: str | None) -> tuple[str, str] | None:
    """(host name, port or "") of a ``Host`` header, default ports left out (as :func:`_origin_host`)."""
    name = _host_name(header)
    if not name:
        return None
    port = (header or "").strip().lower()[len(name):].lstrip(":")
    return name, "" if port in ("", "80", "443") else port


class _OriginCheck:
    """Refuses (JSON 403) a request that would change the twin (any method but GET, HEAD, OPTIONS) when a browser
    says it comes from another site: an ``Origin`` that is not the server's own (the host and port of the ``Host``
    header, or a name of ``--allow-host``), or ``Sec-Fetch-Site: cross-site``.

    A web page can send a "simple" cross-site request (a form post, multipart included) with no CORS preflight; on
    a loopback server without tokens it would act as admin, so any page the operator opens could record a BIM check
    or edit a scenario. Requests with no ``Origin`` (curl, scripts, sensor bridges) and the map's own requests (its
    origin is the server's) pass. The scheme is not compared: behind a TLS reverse proxy the page is https and the
    server sees http."""

    def __init__(self, app, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("method", "GET").upper() not in SAFE_METHODS:
            from starlette.datastructures import Headers

            from viewer.settings import host_allowed

            headers = Headers(scope=scope)
            origin, site = headers.get("origin"), (headers.get("sec-fetch-site") or "").strip().lower()
            why = None
            if site == "cross-site":
                why = "the browser marked it as sent by a page of another site (Sec-Fetch-Site: cross-site)"
            elif origin is not None:
                own, theirs = _host_port(headers.get("host")), _origin_host(origin)
                if theirs is None or not (theirs == own or host_allowed(theirs[0], self.settings.allow_hosts)):
                    why = f"it comes from a page at {origin[:100]!r}, not from this server's own page"
            if why:
                s = self.settings
                own = (headers.get("host") or "")[:100] or (f"[{s.host}]" if ":" in s.host else s.host) + f":{s.port}"
                detail = (f"refusing a {scope['method']} from another web site: {why}. A web page elsewhere may not "
                          "change the twin through your browser (cross-site request forgery). Use the map at "
                          f"http://{own}/ itself, or call the API "
                          "from a script or a server (they send no Origin header); a page served under another name "
                          "of this server needs that name allowed: `twin serve STORE --allow-host NAME`")
                await JSONResponse({"detail": detail, "error": "cross-site request refused"},
                                   status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _plain_name(name: str) -> bool:
    """Whether ``name`` is safe to quote in a command line of the 400's message (letters, digits, '.', '-')."""
    return bool(re.fullmatch(r"[a-z0-9.-]{1,100}", name))


class _RedactTokens(logging.Filter):
    """Hide ``access_token=`` values (query tokens of images, meshes and job streams) in the access log.

    The log shows the raw query, while the server decodes its keys: ``access%5Ftoken=`` is a token too.
    """

    _PAIR = re.compile(r"([?&])([^&=\s\"]+)=([^&\s\"]*)")

    @classmethod
    def _sub(cls, text: str) -> str:
        return cls._PAIR.sub(lambda m: f"{m[1]}{m[2]}=***" if unquote_plus(m[2]) == "access_token" else m[0], text)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._sub(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self._sub(record.msg)
        return True


def _redact_tokens_in_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactTokens) for f in logger.filters):
        logger.addFilter(_RedactTokens())


def _reason(code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(code).phrase.lower()
    except ValueError:
        return "error"
