"""``twin demo``: build the medium sample city, run a storm and the morning peak, serve the map."""

from __future__ import annotations

import importlib
import os

import typer

from twin_core.cli._common import QUIET_OPT


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        target: str = typer.Argument("city.gpkg", help="Where to build the sample city."),
        size: str = typer.Option("medium", help="Sample city size."),
        seed: int = typer.Option(0),
        port: int = typer.Option(8765, help="Port of the map server."),
        host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
        rebuild: bool = typer.Option(False, help="Rebuild even if the file exists."),
        serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the map after building."),
        quiet: bool = QUIET_OPT,
    ) -> None:
        """The main job: sample city -> city.gpkg (+ a short flood and the traffic peak) -> the one map."""
        from twin_core.cli.build import build_city, format_summary
        from twin_core.twin import Twin

        if rebuild or not os.path.exists(target):
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
            typer.echo(f"serving the one map on http://{host}:{port}/  (Ctrl-C to stop)")
            serve_map(target, host=host, port=port)


def run_demo_steps(twin, quiet: bool = False):
    """Run the demo simulations that this build has (flood storm, traffic peak), skipping done ones."""
    steps = [
        ("twin_core.adapters.flood", "demo_run", "flood"),
        ("twin_core.adapters.traffic", "demo_run", "traffic"),
    ]
    done = set(twin.results()["name"].tolist()) if len(twin.results()) else set()
    for module, func, label in steps:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        fn = getattr(mod, func, None)
        if fn is None:
            continue
        if any(n.startswith(f"demo_{label}") for n in done) or twin.store.get_meta().get(f"demo:{label}"):
            yield f"{label}: results already in the twin"
            continue
        yield f"{label}: {fn(twin, quiet=quiet)}"
        twin.store.set_meta({f"demo:{label}": True})
