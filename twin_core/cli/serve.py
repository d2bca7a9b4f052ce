"""``twin serve``: the one map (FastAPI + deck.gl) on a twin."""

from __future__ import annotations

import typer

from twin_core.cli._common import STORE_ARG

#: the levels uvicorn knows (another name would end in a KeyError traceback inside uvicorn)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

#: ``--allow-host`` of ``twin serve`` and ``twin demo`` (:func:`allowed_hosts` checks it)
ALLOW_HOST_OPT = typer.Option(
    [], "--allow-host", metavar="NAME",
    help="Another host name (or address) a server bound to loopback answers to: the name a reverse proxy "
         "forwards, or a name on the local network, e.g. twin-map.cd.gov.cn; *.example.org allows every "
         "name under example.org. Repeat for more names (also TWIN_ALLOW_HOSTS, names separated by commas). "
         "Tokens are then required, as beyond loopback. A server bound beyond loopback answers to any name.")


def allowed_hosts(names: list[str]) -> list[str]:
    """The host names given with ``--allow-host`` (none: those of ``TWIN_ALLOW_HOSTS``, separated by commas),
    checked and written as a Host header names them (:func:`viewer.settings.check_allowed_host`); a bad one is a
    usage error that names the option."""
    import os

    from viewer.settings import check_allowed_host

    names = list(names) or [h for h in os.environ.get("TWIN_ALLOW_HOSTS", "").split(",") if h.strip()]
    hosts = []
    for name in names:
        try:
            hosts.append(check_allowed_host(name))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--allow-host") from None
    return hosts


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        store: str = STORE_ARG,
        host: str = typer.Option("127.0.0.1", help="Address to bind; beyond loopback a token must exist."),
        port: int = typer.Option(8765, min=1, max=65535, help="Port."),
        auth: str = typer.Option("auto", help="auto (tokens needed once a token was ever created for the twin, or off-loopback), required, off."),
        max_upload_mb: float = typer.Option(50.0, min=0.1, max=2048, help="Upload size limit (IFC files), in MB."),
        log_level: str = typer.Option("warning", help="uvicorn log level: " + ", ".join(LOG_LEVELS) + "."),
        allow_host: list[str] = ALLOW_HOST_OPT,
    ) -> None:
        """Serve the map of a twin at http://HOST:PORT/ (OpenAPI docs at /docs)."""
        if auth not in ("auto", "required", "off"):
            raise typer.BadParameter("--auth must be auto, required or off")
        if log_level.lower() not in LOG_LEVELS:
            raise typer.BadParameter(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        from viewer.server import check_bind, check_port, serve as run

        from twin_core.twin import Twin

        hosts = allowed_hosts(allow_host)
        from viewer.settings import Settings

        Twin.open(store).close()  # a missing file, unreachable DSN or store without a twin fails here, clearly
        check_bind(Settings(store=store, host=host, port=port, auth=auth, max_upload_mb=max_upload_mb,
                            allow_hosts=hosts))
        check_port(host, port)  # before "serving ...": a port in use is refused with what to do
        also = f"  (also as {', '.join(hosts)})" if hosts else ""
        typer.echo(f"serving {store} on http://{host}:{port}/{also}  (API docs /docs; Ctrl-C to stop)")
        run(store, host=host, port=port, auth=auth, max_upload_mb=max_upload_mb, log_level=log_level.lower(),
            allow_hosts=hosts)
