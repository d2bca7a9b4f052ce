"""Options and helpers shared by every ``twin`` subcommand."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import typer

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
QUIET_OPT = typer.Option(False, "--quiet", "-q", help="No progress bars or chatter.")
STORE_ARG = typer.Argument(..., help="A .gpkg file or a PostGIS DSN (postgresql://host/db).")


def finite_or_none(v: Any) -> Any:
    """``v`` with every NaN / infinity (no evacuation time, no flow through an unused exit ...) as None,
    so ``--json`` prints strict JSON (``null``; ``NaN`` is refused by jq and JSON.parse)."""
    if isinstance(v, dict):
        return {k: finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_or_none(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print ``data`` as strict JSON (``--json``) or ``human`` text."""
    if as_json:
        sys.stdout.write(json.dumps(finite_or_none(data), indent=2, default=str, allow_nan=False) + "\n")
    else:
        typer.echo(human if human is not None else json.dumps(data, indent=2, default=str))
