"""Options and helpers shared by every ``twin`` subcommand."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
QUIET_OPT = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter.")
STORE_ARG = typer.Argument(..., help="A .gpkg file or a PostGIS DSN (postgresql://host/db).")


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print ``data`` as strict JSON (``--json``) or ``human`` text."""
    if as_json:
        from cim.results import finite_or_none  # NaN as null: strict JSON (lazy: the CLI starts without pandas)

        sys.stdout.write(json.dumps(finite_or_none(data), indent=2, default=str, allow_nan=False) + "\n")
    else:
        typer.echo(human if human is not None else json.dumps(data, indent=2, default=str))
