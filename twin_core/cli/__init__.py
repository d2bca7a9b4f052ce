"""The ``twin`` command.

One command group; each subcommand lives in its own module of this package
and exposes ``register(app)``. Heavy imports happen inside the commands, so
``twin --help`` is fast. Shared options (``--json``, ``--quiet``) are in
:mod:`twin_core.cli._common`.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="twin",
    help="RongTwin: a city information model and digital twin (GeoPackage or PostGIS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Subcommand modules, in help order. Each defines register(app).
_MODULES = ("build", "info", "layers", "runs", "compare", "scenario", "bim", "flood", "traffic", "crowd", "analysis", "serve", "sensors",
            "token", "demo")
_registered = False


def _register_all() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for name in _MODULES:
        try:
            mod = importlib.import_module(f"twin_core.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"twin_core.cli.{name}":
                continue
            raise
        mod.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``twin`` console script."""
    import warnings

    from twin_core.errors import TwinError, TwinWarning

    show = warnings.showwarning

    def _show(message, category, filename, lineno, file=None, line=None):
        # our own warnings are for the user: one plain line, no source file and line
        if issubclass(category, TwinWarning):
            typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = _show
    _register_all()
    # the CLI's PostGIS connections, as pg_stat_activity shows them (libpq's variable; a DSN's
    # ?application_name= or one set before wins)
    os.environ.setdefault("PGAPPNAME", "rongtwin-cli")
    try:
        app(args=argv, standalone_mode=True)
    except TwinError as exc:  # clear message, no stack trace
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except OSError as exc:  # a path given on the command line that cannot be read or written
        if exc.filename is None:
            raise
        where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        typer.secho(f"error: cannot use {where}: {exc.strerror or exc}; check the path (that its folder exists "
                    "and is a folder) and that you may read and write there", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except Exception as exc:  # a twin file that cannot be written (read-only file or folder, full disk)
        msg = _store_write_refused(exc) or _database_lost(exc)
        if msg is None:
            raise
        typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
        sys.exit(2)


def _database_lost(exc: BaseException) -> str | None:
    """The one-line message for a PostGIS connection that failed under code that used it directly (the store's own
    calls say it as a StoreConnectionError), or None for any other error."""
    try:
        import psycopg
    except ImportError:
        return None
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg.errors.LockNotAvailable):
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return (f"the database connection failed ({first}); the command did not finish (a write in a transaction was "
                "rolled back). Check that the database server runs, then run the command again")
    return None


def _store_write_refused(exc: BaseException) -> str | None:
    """The one-line message for SQLite refusing to write the twin's GeoPackage, or None for any other error."""
    from cim.store.gpkg import write_refused

    return write_refused(exc, "the twin")


def get_app() -> typer.Typer:
    """The fully registered app (for tests with typer.testing.CliRunner)."""
    _register_all()
    return app
