"""``twin token`` and ``twin serve`` (refusals before anything binds)."""

from __future__ import annotations

import json

import pytest

from typer.testing import CliRunner

from twin_core.cli import get_app


def test_token_create_list_revoke(city):
    from cim.store import open_store
    from viewer.auth import verify_token

    app, run = get_app(), CliRunner()
    r = run.invoke(app, ["token", "create", city, "--role", "planner", "--name", "alice", "--json"])
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    tok = created["token"]
    with open_store(city) as st:
        assert verify_token(st, tok)["role"] == "planner"
    rows = json.loads(run.invoke(app, ["token", "list", city, "--json"]).stdout)
    assert [(x["role"], x["name"]) for x in rows] == [("planner", "alice")] and "hash" not in rows[0]
    assert created["id"] == rows[0]["id"]  # the id `twin token revoke` takes is given at creation
    assert run.invoke(app, ["token", "revoke", city, rows[0]["id"]]).exit_code == 0
    with open_store(city) as st:
        assert verify_token(st, tok) is None


def test_token_bad_role_and_serve_refusals(city, tmp_path):
    from twin_core.errors import AuthError, StoreConnectionError

    app, run = get_app(), CliRunner()
    r = run.invoke(app, ["token", "create", city, "--role", "god"])
    assert isinstance(r.exception, AuthError) and "viewer" in str(r.exception)
    r = run.invoke(app, ["serve", city, "--host", "0.0.0.0"])
    assert isinstance(r.exception, AuthError) and "twin token create" in str(r.exception)
    r = run.invoke(app, ["serve", str(tmp_path / "missing.gpkg")])
    assert isinstance(r.exception, StoreConnectionError)
    r = run.invoke(app, ["serve", city, "--auth", "maybe"])
    assert r.exit_code == 2 and "auth" in r.output


def test_serve_and_demo_refuse_bad_options_before_any_work(city, tmp_path):
    """Bad --log-level / --max-upload-mb are usage errors (not a traceback from uvicorn or pydantic), and
    `twin demo --host 0.0.0.0` refuses before building a city that would have no token."""
    import os

    from twin_core.errors import AuthError

    app, run = get_app(), CliRunner()
    r = run.invoke(app, ["serve", city, "--log-level", "loud"])
    assert r.exit_code == 2 and "log-level" in r.output, (r.output, r.exception)
    r = run.invoke(app, ["serve", city, "--max-upload-mb", "5000"])
    assert r.exit_code == 2 and "max-upload-mb" in r.output, (r.output, r.exception)
    target = str(tmp_path / "demo.gpkg")
    r = run.invoke(app, ["demo", target, "--size", "small", "--host", "0.0.0.0", "--quiet"])
    assert isinstance(r.exception, AuthError) and "twin token create" in str(r.exception)
    assert not os.path.exists(target)


def test_demo_on_postgis_with_a_token_may_bind_beyond_loopback(pg_dsn, monkeypatch):
    """A PostGIS twin is rebuilt in place and keeps its tokens: `twin demo DSN --host 0.0.0.0` was refused as a
    "freshly built city" every time (a DSN is no existing file), whatever tokens it had, and the advice
    (build, create a token, run again) refused again."""
    import twin_core.cli.build
    import twin_core.cli.demo
    import viewer.server
    from twin_core.errors import AuthError
    from twin_core.twin import Twin
    from viewer.auth import create_token

    served = []
    monkeypatch.setattr(twin_core.cli.build, "build_city", lambda *a, **k: {})
    monkeypatch.setattr(twin_core.cli.build, "format_summary", lambda s: "built")
    monkeypatch.setattr(twin_core.cli.demo, "run_demo_steps", lambda twin, quiet: [])
    monkeypatch.setattr(viewer.server, "serve", lambda target, **k: served.append(k["host"]))
    Twin.create(pg_dsn).close()
    app, run = get_app(), CliRunner()
    r = run.invoke(app, ["demo", pg_dsn, "--host", "0.0.0.0", "--quiet"])
    assert isinstance(r.exception, AuthError) and "no access token" in str(r.exception), (r.output, r.exception)
    with Twin.open(pg_dsn) as t:
        create_token(t.store, "viewer", name="duty")
    r = run.invoke(app, ["demo", pg_dsn, "--host", "0.0.0.0", "--quiet"])
    assert r.exit_code == 0 and served == ["0.0.0.0"], (r.output, r.exception)


def test_token_create_names_the_store_as_typed_in_its_revoke_hint(city, pg_dsn):
    """The hint names the store the user typed, a file or a DSN alike (before: the file, but the word 'DSN'),
    quoted for the shell (a DSN's ?schema=), a DSN's password never printed."""
    import shlex

    from cim.store import open_store

    open_store(pg_dsn, create=True, crs="EPSG:4544").close()
    app, run = get_app(), CliRunner()
    for target in (city, pg_dsn):
        r = run.invoke(app, ["token", "create", target, "--role", "viewer"])
        assert r.exit_code == 0, r.output
        tid = r.stdout.split("(id ", 1)[1].split(",", 1)[0]
        assert f"`twin token revoke {shlex.quote(target)} {tid}`" in r.stdout, r.stdout
    user = pg_dsn.split("://", 1)[1].split("@", 1)[0] if "@" in pg_dsn else ""
    if user and ":" not in user:  # the test server's DSN carries no password: add one (a trusting server ignores it)
        secret = "pw-not-shown"
        r = run.invoke(app, ["token", "create", pg_dsn.replace(f"{user}@", f"{user}:{secret}@", 1), "--role", "viewer"])
        assert secret not in r.stdout + str(r.exception or "")
        if r.exit_code == 0:
            assert f"revoke '{pg_dsn.replace(f'{user}@', f'{user}:***@', 1)}' " in r.stdout, r.stdout


def test_revoking_an_unknown_id_names_the_list_command_for_that_store(city):
    import shlex

    from twin_core.errors import AuthError

    r = CliRunner().invoke(get_app(), ["token", "revoke", city, "nope"])
    assert isinstance(r.exception, AuthError), r.output
    assert "no token with id 'nope'" in str(r.exception)
    assert f"`twin token list {shlex.quote(city)}`" in str(r.exception)  # before: `twin token list`, no store


def test_serve_beyond_loopback_without_tokens_hides_the_dsn_password(pg_dsn):
    from cim.store import open_store
    from twin_core.errors import AuthError

    open_store(pg_dsn, create=True, crs="EPSG:4544").close()
    user = pg_dsn.split("://", 1)[1].split("@", 1)[0] if "@" in pg_dsn else ""
    if not user or ":" in user:
        pytest.skip("the test DSN names no user, or has a password already")
    secret = "pw-not-shown"
    dsn = pg_dsn.replace(f"{user}@", f"{user}:{secret}@", 1)  # a trusting server ignores the password
    r = CliRunner().invoke(get_app(), ["serve", dsn, "--host", "0.0.0.0"])
    assert isinstance(r.exception, AuthError) and "no access token exists" in str(r.exception), r.output
    assert secret not in str(r.exception) and f"{user}:***@" in str(r.exception)  # before: the password, printed
    import shlex

    # and quoted for the shell, as the token commands' hints are (a DSN's ?schema=...&... broke when pasted)
    assert f"`twin token create {shlex.quote(dsn.replace(secret, '***'))} --role viewer`" in str(r.exception)
