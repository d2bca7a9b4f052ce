"""``twin token``: bearer tokens for the map server (roles viewer, planner, regulator, admin)."""

from __future__ import annotations

import typer

from twin_core.cli._common import JSON_OPT, STORE_ARG, emit


def register(app: typer.Typer) -> None:
    tok = typer.Typer(help="Access tokens of the map server (stored hashed in the twin).", no_args_is_help=True)
    app.add_typer(tok, name="token")

    @tok.command("create")
    def create(
        store: str = STORE_ARG,
        role: str = typer.Option(..., "--role", help="viewer (read), planner (scenarios, simulations), "
                                                     "regulator (BIM checks) or admin."),
        name: str = typer.Option("", "--name", help="Who or what the token is for."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Create a token and print it once (only its hash is kept)."""
        from cim.store import is_dsn, open_store
        from viewer.auth import check_role, create_token

        check_role(role)
        with open_store(store) as st:
            token = create_token(st, role, name=name)
        tid = token.split("_", 2)[1]  # rt_<id>_<secret>
        emit({"token": token, "id": tid, "role": role, "name": name}, as_json,
             f"{token}\n(id {tid}, role {role}; send it as 'Authorization: Bearer <token>'; it is not shown again; "
             f"revoke it with `twin token revoke {'DSN' if is_dsn(store) else store} {tid}`)")

    @tok.command("list")
    def list_(store: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
        """List tokens (id, role, name, created); never the secrets."""
        from cim.store import open_store
        from viewer.auth import list_tokens

        with open_store(store) as st:
            rows = list_tokens(st)
        emit(rows, as_json, "\n".join(f"{r['id']}  {r['role']:<9}  {r['created']}  {r['name']}" for r in rows)
             or "no tokens")

    @tok.command("revoke")
    def revoke(store: str = STORE_ARG, token_id: str = typer.Argument(..., help="The id from `twin token list`."),
               as_json: bool = JSON_OPT) -> None:
        """Revoke a token by id."""
        from cim.store import open_store
        from viewer.auth import revoke_token

        with open_store(store) as st:
            revoke_token(st, token_id)
        emit({"revoked": token_id}, as_json, f"revoked {token_id}")
