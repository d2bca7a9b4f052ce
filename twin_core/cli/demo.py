"""``twin demo``: build the medium sample city, run a storm and the morning peak, serve the map."""

from __future__ import annotations

import importlib
import os

import typer

from twin_core.cli._common import QUIET_OPT
from twin_core.cli.serve import ALLOW_HOST_OPT


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        target: str = typer.Argument("city.gpkg", help="Where to build the sample city."),
        size: str = typer.Option("medium", help="Sample city size."),
        seed: int = typer.Option(0),
        port: int = typer.Option(8765, min=1, max=65535, help="Port of the map server."),
        host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
        rebuild: bool = typer.Option(False, help="Rebuild even if the file exists."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the map after building."),
        allow_host: list[str] = ALLOW_HOST_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """The main job: sample city -> city.gpkg (+ a short flood and the traffic peak) -> the one map."""
        from twin_core.cli.build import build_city, format_summary
        from twin_core.twin import Twin

        hosts: list[str] = []
        if serve:  # refuse bad names and an unsafe bind now, not after minutes of building and simulating
            hosts = _check_demo_bind(target, host, port, rebuild=rebuild, allow_host=allow_host)
        if rebuild or not _has_city(target):
            summary = build_city(target, size, seed, force=True, quiet=quiet)
        else:
            with Twin.open(target) as twin:
                summary = twin.summary()
        typer.echo(format_summary(summary))
        with Twin.open(target) as twin:
            for step in run_demo_steps(twin, quiet=quiet):
                typer.echo(step)
        if serve:
            try:
                from viewer.server import serve as serve_map
            except ImportError:
                typer.echo("the map viewer is not installed in this build; the city is in " + target)
                return
            also = f"  (also as {', '.join(hosts)})" if hosts else ""
            typer.echo(f"serving the one map on http://{host}:{port}/{also}  (Ctrl-C to stop)")
            serve_map(target, host=host, port=port, allow_hosts=hosts)


def _has_city(target: str) -> bool:
    """Whether ``target`` already holds a city (a GeoPackage file, or a PostGIS schema with layers): the
    demo builds only when it does not (a DSN is no file, so a PostGIS twin was rebuilt on every run)."""
    from cim.store import is_dsn, open_store

    if not is_dsn(target):
        return os.path.exists(target)
    try:
        with open_store(target) as st:
            return bool(st.list_layers())
    except Exception:  # noqa: BLE001 - no schema / no twin there yet: build it
        return False


def _check_demo_bind(target: str, host: str, port: int, *, rebuild: bool, allow_host=()) -> list[str]:
    """Refuse, before any work, to serve beyond loopback or under other host names (``--allow-host``, else
    ``TWIN_ALLOW_HOSTS``: checked as ``twin serve`` checks them, :func:`twin_core.cli.serve.allowed_hosts`)
    without a token, or on a port the server could not listen on (:func:`viewer.server.check_port`: in use, a
    privileged port, an address not of this machine); returns those names."""
    from cim.store import is_dsn
    from twin_core.errors import AuthError

    try:
        from viewer.settings import is_loopback
    except ImportError:  # no viewer in this build: nothing will be served
        return []
    from twin_core.cli.serve import allowed_hosts
    from viewer.server import check_port

    hosts = allowed_hosts(allow_host)
    check_port(host, port)  # a port in use (another demo still running) is said now, not after minutes of building
    if is_loopback(host) and not hosts:
        return hosts
    where, instead = ((f"under the host names {', '.join(hosts)}",
                       "leave out --allow-host" if allow_host else "unset TWIN_ALLOW_HOSTS") if is_loopback(host)
                      else (f"on {host}", "bind 127.0.0.1"))
    # a file is built anew (without tokens); a PostGIS twin is written over in place and keeps its tokens
    if not is_dsn(target) and (rebuild or not os.path.exists(target)):
        raise AuthError(f"refusing to serve the demo {where}: a freshly built city has no access token, so "
                        f"anyone on the network could use it. Build it first (`twin demo {target} --no-serve`), "
                        f"create a token (`twin token create --role viewer {target}`), then run the demo again "
                        f"without --rebuild (or {instead})")
    from viewer.server import check_bind
    from viewer.settings import Settings

    check_bind(Settings(store=target, host=host, port=port, allow_hosts=hosts))
    return hosts


DEMO_STEPS = (
    # (label, adapter module, function, keyword arguments): a short storm and the morning peak
    ("flood", "twin_core.adapters.flood", "run_flood", {"storm": "50y", "duration": "30min", "run": "demo-flood"}),
    ("traffic", "twin_core.adapters.traffic", "run_traffic_demo", {}),
    # the cascade, under scenario storm_rush: a 50-year storm at the start of the morning peak, its roads
    # closed while under water
    ("storm at rush hour", "twin_core.adapters.traffic", "run_storm_rush_demo", {}),
    # 2,000 people leave the sample plaza (about 6 s and 4 MB on the medium city)
    ("crowd", "twin_core.adapters.crowd", "run_crowd_demo", {}),
    # which buildings an ambulance still reaches in 10 min while the storm's water closes roads (under a second)
    ("emergency access in the storm", "twin_core.adapters.access", "run_access_demo", {}),
)


def run_demo_steps(twin, quiet: bool = False):
    """Run the demo simulations this build has (a short storm, the morning peak) once; yield one line each."""
    import time

    from twin_core.progress import progress_bar

    for label, module, func, kwargs in DEMO_STEPS:
        try:
            fn = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError):
            continue
        if twin.store.get_meta().get(f"demo:{label}"):
            yield f"{label}: results already in the twin (run {twin.store.get_meta()[f'demo:{label}']})"
            continue
        t0 = time.perf_counter()
        with progress_bar(f"demo {label}", None, quiet=quiet) as progress:
            out = fn(twin, progress=progress, **kwargs)
        run = getattr(out, "run", kwargs.get("run", "demo"))
        twin.store.set_meta({f"demo:{label}": run})
        summary = getattr(out, "summary", {}) or {}
        scalars = [(k, v) for k, v in summary.items() if isinstance(v, (int, float)) and k not in ("scenario", "run")]
        brief = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in scalars[:6])
        yield f"{label}: run {run} in {time.perf_counter() - t0:.0f} s  {brief}"
