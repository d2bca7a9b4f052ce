"""Revoking a twin's last token keeps tokens needed on a loopback server with ``--auth auto``.

Before, ``auth auto`` asked for tokens only while one existed, so an admin who revoked a leaked token, the
twin's only one, opened the map to every local caller as admin (found by a code review, 2026-12-05). The twin now
remembers that tokens were issued (``viewer.auth.ISSUED_KEY``, set by create, revoke and prune).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from twin_core.twin import Twin
from viewer.app import create_app
from viewer.auth import ISSUED_KEY, create_token, prune_tokens, revoke_token
from viewer.settings import Settings


def _client(path, **kw) -> TestClient:
    return TestClient(create_app(Settings(store=str(path), **kw)), base_url="http://127.0.0.1")


def test_revoking_the_last_token_keeps_the_map_closed(tmp_path, monkeypatch):
    import viewer.dependencies as deps

    monkeypatch.setattr(deps, "TOKEN_CACHE_S", 0.0)
    path = tmp_path / "t.gpkg"
    Twin.create(path, name="t").close()
    with _client(path) as c:
        assert c.get("/api/layers").status_code == 200  # no token was ever made: loopback is open
    with Twin.open(path) as twin:
        token = create_token(twin.store, "admin", name="leaked")
        revoke_token(twin.store, token.split("_")[1])
        assert twin.store.get_meta()[ISSUED_KEY] is True
    with _client(path) as c:
        assert c.get("/api/layers").status_code == 401
        assert c.get("/api/layers", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert c.get("/api/health").status_code == 200
    # --auth off still opens it, on purpose
    with _client(path, auth="off") as c:
        assert c.get("/api/layers").status_code == 200


def test_a_store_from_before_the_key_is_marked_by_revoke_and_prune(tmp_path, monkeypatch):
    import viewer.auth

    path = tmp_path / "old.gpkg"
    Twin.create(path, name="old").close()
    with Twin.open(path) as twin:
        create_token(twin.store, "viewer", expires_in=timedelta(minutes=5))
        t2 = create_token(twin.store, "viewer")
        twin.store.delete_meta([ISSUED_KEY])  # as a store whose tokens were made before 2026-12-05
        later = viewer.auth._now() + timedelta(hours=1)
        monkeypatch.setattr(viewer.auth, "_now", lambda: later)
        assert len(prune_tokens(twin.store)) == 1
        assert twin.store.get_meta()[ISSUED_KEY] is True
        twin.store.delete_meta([ISSUED_KEY])
        revoke_token(twin.store, t2.split("_")[1])
        assert twin.store.get_meta()[ISSUED_KEY] is True


def test_cli_revoke_says_when_no_token_is_left(tmp_path):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    path = tmp_path / "c.gpkg"
    Twin.create(path, name="c").close()
    with Twin.open(path) as twin:
        tid = create_token(twin.store, "viewer").split("_")[1]
    res = CliRunner().invoke(get_app(), ["token", "revoke", str(path), tid])
    assert res.exit_code == 0, res.output
    assert "no token is left" in res.output and "--auth off" in res.output
