"""Run the map server: ``serve("city.gpkg")`` (what ``twin serve`` and ``twin demo`` call)."""

from __future__ import annotations

from twin_core.errors import AuthError

from viewer.settings import Settings

__all__ = ["serve", "check_bind"]


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
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
