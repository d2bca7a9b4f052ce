"""Run the map server: ``serve("city.gpkg")`` (what ``twin serve`` and ``twin demo`` call)."""

from __future__ import annotations

import errno
import socket

from twin_core.errors import AuthError, TwinError

from viewer.settings import Settings

__all__ = ["serve", "check_bind", "check_port", "PortInUseError"]


class PortInUseError(TwinError, OSError):
    """The port the map server is to listen on is taken (another ``twin serve`` or program holds it)."""


def _bind_error(host: str, port: int) -> OSError | None:
    """The error binding ``host``:``port`` gives now (None: it binds), as uvicorn binds it (SO_REUSEADDR set:
    a port left in TIME_WAIT by a server just stopped counts as free, as it does for uvicorn)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn picks the family
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def check_port(host: str, port: int) -> None:
    """Refuse, with what to do, a ``host``:``port`` the server could not listen on: a port in use (naming a
    free one close by), a privileged port, an address not of this machine; checked before anything is
    announced, so the user does not read "serving ..." and then uvicorn's bare errno."""
    exc = _bind_error(host, port)
    if exc is None:
        return
    if isinstance(exc, socket.gaierror):
        raise TwinError(f"cannot serve on {host}: no such host name or address ({exc.strerror or exc}); give an "
                        "address of this machine with --host, e.g. 127.0.0.1") from None
    if exc.errno == errno.EADDRINUSE:
        free = next((p for p in range(port + 1, min(port + 21, 65536)) if _bind_error(host, p) is None), None)
        raise PortInUseError(
            f"port {port} on {host} is already in use: another `twin serve` or `twin demo` may be running there "
            f"(stop it with Ctrl-C, or open http://{host}:{port}/ if it serves this twin), or another program "
            f"holds it; pick another port{f', e.g. --port {free}' if free else ' with --port'}") from None
    if exc.errno == errno.EACCES:
        raise TwinError(f"not allowed to listen on port {port} of {host} (ports below 1024 need administrator "
                        "rights); pick a port from 1024 up with --port, e.g. --port 8765") from None
    if exc.errno == errno.EADDRNOTAVAIL:
        raise TwinError(f"cannot serve on {host}: it is not an address of this machine; give one of its addresses "
                        "with --host (127.0.0.1 for this machine only, 0.0.0.0 for every address)") from None
    raise TwinError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; try another --port or --host") from None


def check_bind(settings: Settings) -> None:
    """Refuse to bind beyond loopback, or to answer to other host names (``allow_hosts``: a reverse proxy's),
    unless tokens protect the server."""
    if settings.local_only:
        return
    where = (f"under the host names {', '.join(settings.allow_hosts)}" if settings.loopback
             else f"on {settings.host}")
    if settings.auth == "off":
        if settings.loopback:
            raise AuthError(f"refusing to serve {where} with auth off: requests through them may come from beyond "
                            "loopback (a reverse proxy), so every request needs a token; use --auth auto / required, "
                            "or leave out --allow-host")
        raise AuthError(f"refusing to serve on {settings.host} with auth off: outside loopback every request needs "
                        "a token; bind 127.0.0.1 or use --auth auto / required")
    from cim.store import open_store

    from twin_core.cli._common import store_arg
    from viewer.auth import list_tokens

    with open_store(settings.store) as store:
        if not list_tokens(store):
            shown = store_arg(store, settings.store)  # a DSN's password hidden, quoted for the shell
            raise AuthError(f"refusing to serve {where}: no access token exists for {shown}, so "
                            "anyone on the network could use it. Create one first with "
                            f"`twin token create {shown} --role viewer` "
                            f"({'or leave out --allow-host' if settings.loopback else 'or bind 127.0.0.1'})")


def serve(store: str, *, host: str = "127.0.0.1", port: int = 8765, auth: str = "auto",
          max_upload_mb: float = 50.0, log_level: str = "warning", allow_hosts=()) -> None:
    """Serve the twin ``store`` until interrupted; ``allow_hosts``: more host names a loopback server answers to
    (a reverse proxy's, e.g. ``["twin-map.cd.gov.cn"]``; see :class:`~viewer.settings.Settings`)."""
    import uvicorn

    from viewer.app import create_app

    settings = Settings(store=str(store), host=host, port=port, auth=auth, max_upload_mb=max_upload_mb,
                        allow_hosts=list(allow_hosts or ()))
    check_bind(settings)
    check_port(host, port)  # a port in use: a clear refusal, not uvicorn's bare "[Errno 98]" and exit 3
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
