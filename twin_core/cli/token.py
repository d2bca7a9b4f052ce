"""``twin token``: bearer tokens for the map server (roles viewer, planner, regulator, sensor, admin)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Optional

import typer

from twin_core.cli._common import JSON_OPT, STORE_ARG, emit, store_arg

_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# "min" as well as "m": the engines' durations ("30min") are written that way too
_DURATION = re.compile(r"\s*(\d+)\s*(min|[mhdw])\s*\Z")
_FORMS = ("a whole number and a unit: 90m or 90min (minutes), 12h (hours), 30d (days) or 2w (weeks), at most "
          "10 years")
_TEN_YEARS_S = 3653 * 86400  # viewer.auth.MAX_EXPIRES_IN (not imported: `twin --help` stays light)


def parse_expires(text: Optional[str]) -> Optional[timedelta]:
    """``--expires`` as a timedelta (None: the token never expires); a usage error naming the forms otherwise.

    >>> parse_expires("90m"), parse_expires("90min"), parse_expires("2w")
    (datetime.timedelta(seconds=5400), datetime.timedelta(seconds=5400), datetime.timedelta(days=14))
    """
    if text is None:
        return None
    m = _DURATION.match(text)
    if not m:
        why = ("a token cannot expire in the past" if text.strip().startswith("-")
               else f"{text!r} is not a duration")
        raise typer.BadParameter(f"{why}; give {_FORMS} (or leave --expires out for a token that never expires)")
    seconds = int(m[1]) * _UNITS[m[2]]
    if seconds == 0:
        raise typer.BadParameter(f"{text!r} would expire at once; give a duration above zero: {_FORMS}")
    if seconds > _TEN_YEARS_S:
        raise typer.BadParameter(f"{text!r} is more than 10 years (3653 days); give {_FORMS}, or leave --expires "
                                 "out for a token that never expires")
    return timedelta(seconds=seconds)


def register(app: typer.Typer) -> None:
    tok = typer.Typer(help="Access tokens of the map server (stored hashed in the twin).", no_args_is_help=True)
    app.add_typer(tok, name="token")

    @tok.command("create")
    def create(
        store: str = STORE_ARG,
        role: str = typer.Option(..., "--role", help="viewer (read), planner (scenarios, simulations), "
                                                     "regulator (BIM checks), sensor (a feed: only sends "
                                                     "readings) or admin."),
        name: str = typer.Option("", "--name", help="Who or what the token is for."),
        expires: Optional[str] = typer.Option(None, "--expires", callback=parse_expires, metavar="DURATION",
                                              help="Expire after 90m, 12h, 30d, 2w ... (at most 10 years; "
                                                   "default: never)."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Create a token and print it once (only its hash is kept), with the command that revokes it: the store
        as typed (a DSN's password as ***), quoted for the shell."""
        from cim.store import open_store
        from viewer.auth import check_role, create_token, list_tokens

        check_role(role)
        with open_store(store) as st:
            token = create_token(st, role, name=name, expires_in=expires)  # a timedelta: parse_expires ran
            tid = token.split("_", 2)[1]  # rt_<id>_<secret>
            until = next(t["expires"] for t in list_tokens(st) if t["id"] == tid)
            typed = store_arg(st, store)  # a DSN without its password, quoted for the shell
        emit({"token": token, "id": tid, "role": role, "name": name, "expires": until}, as_json,
             f"{token}\n(id {tid}, role {role}, {f'expires {until}' if until else 'never expires'}; send it as "
             f"'Authorization: Bearer <token>'; it is not shown again; revoke it with "
             f"`twin token revoke {typed} {tid}`)")

    @tok.command("list")
    def list_(store: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
        """List tokens (id, role, created, expiry, name); never the secrets."""
        from cim.store import open_store
        from viewer.auth import list_tokens

        with open_store(store) as st:
            rows = list_tokens(st)

        def expiry(r: dict) -> str:
            return "never expires" if r["expires"] is None else \
                f"{'expired' if r['expired'] else 'expires'} {r['expires']}"

        lines = [f"{r['id']}  {r['role']:<9}  {r['created']}  {expiry(r):<33}  {r['name']}".rstrip() for r in rows]
        emit(rows, as_json, "\n".join(lines) or "no tokens")

    @tok.command("revoke")
    def revoke(store: str = STORE_ARG, token_id: str = typer.Argument(..., help="The id from `twin token list`."),
               as_json: bool = JSON_OPT) -> None:
        """Revoke a token by id."""
        from cim.store import open_store
        from viewer.auth import revoke_token

        from viewer.auth import list_tokens

        with open_store(store) as st:
            revoke_token(st, token_id)
            left = len(list_tokens(st))
        human = f"revoked {token_id}"
        if not left:
            human += ("; no token is left: the map server now refuses every request until you create one (`twin "
                      "token create`), or serve it with --auth off on loopback")
        emit({"revoked": token_id, "tokens_left": left}, as_json, human)

    @tok.command("prune")
    def prune(store: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
        """Remove the expired tokens and say how many went."""
        from cim.store import open_store
        from viewer.auth import list_tokens, prune_tokens

        with open_store(store) as st:
            gone = sorted(prune_tokens(st))
            left = len(list_tokens(st))
        human = (f"removed {len(gone)} expired token{'' if len(gone) == 1 else 's'} ({', '.join(gone)})" if gone
                 else "no expired tokens")
        if gone and not left:
            human += ("; no token is left: a map server on this twin now lets everyone on this machine in as "
                      "admin (--auth auto on 127.0.0.1) and refuses to serve beyond it; create one with "
                      "`twin token create --role ROLE STORE`")
        emit({"removed": len(gone), "ids": gone, "left": left}, as_json, human)
