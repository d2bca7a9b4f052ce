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
    """Print ``data`` as JSON (``--json``) or ``human`` text."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        typer.echo(human if human is not None else json.dumps(data, indent=2, default=str))
