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

        data = finite_or_none(data)
        # names in any script as themselves ("暴雨50年", not "\u66b4\u96e850\u5e74"); \u escapes, the same
        # JSON, only where the output's encoding cannot hold them (a Windows pipe in cp1252, LANG=C)
        text = json.dumps(data, indent=2, default=str, allow_nan=False, ensure_ascii=False)
        try:
            text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
        except (UnicodeEncodeError, LookupError):
            text = json.dumps(data, indent=2, default=str, allow_nan=False)
        sys.stdout.write(text + "\n")
    else:
        typer.echo(human if human is not None else json.dumps(data, indent=2, default=str))


def check_output_path(what: str, path: str | None) -> None:
    """Refuse, before any work, an output ``path`` that is a folder, whose folder does not exist (or is a file)
    or that may not be written; ``what`` starts the message (``"--html r.html"``)."""
    import os

    from twin_core.errors import TwinError

    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise TwinError(f"{what} is a folder; give the path of the file to write")
    if not os.path.isdir(folder):
        raise TwinError(f"{what}: its folder {folder} "
                        + ("is a file, not a folder" if os.path.exists(folder) else "does not exist")
                        + "; give a path in an existing folder")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise TwinError(f"{what}: you may not write there; give a path you may write")


def store_arg(store, typed: str | None = None) -> str:
    """The store as a ``twin ...`` command takes it, quoted for the shell: the path as the user typed it (else
    the store's), or a DSN without its password (``store.uri``)."""
    import shlex

    from cim.store import is_dsn

    return shlex.quote(store.uri if typed is None or is_dsn(typed) else str(typed))
