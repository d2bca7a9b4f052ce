"""A token made after the server read its tokens (``twin token create`` while the map server runs) works at its
first request: the server reads the tokens again for a token it does not know before refusing it, at most once
every TOKEN_MISS_RELOAD_S, so a flood of made-up tokens does not hammer the store. Before, the server used the
tokens it had read for TOKEN_CACHE_S (2 s) and answered the new token 401."""

from __future__ import annotations

import secrets
import time

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import viewer.dependencies as deps
from twin_core.cli import get_app
from twin_core.twin import Twin
from viewer.app import create_app
from viewer.auth import create_token
from viewer.settings import Settings


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A running server on a twin with one token, its tokens read (and, unless a test says, not read again
    for an hour by age), and a counter of its reads of the store's metadata."""
    monkeypatch.setattr(deps, "TOKEN_CACHE_S", 3600.0)  # the age limit out of the way: only a miss reads again
    path = tmp_path / "t.gpkg"
    Twin.create(path, name="t").close()
    with Twin.open(path) as twin:
        first = create_token(twin.store, "viewer", name="first")
    with TestClient(create_app(Settings(store=str(path), auth="required")), base_url="http://127.0.0.1") as c:
        assert c.get("/api/layers", headers=_bearer(first)).status_code == 200  # the tokens are read now
        store = c.app.state.twin_state.store
        reads: list[float] = []
        real = store.get_meta
        monkeypatch.setattr(store, "get_meta", lambda *a, **kw: reads.append(time.monotonic()) or real(*a, **kw),
                            raising=False)
        yield c, path, first, reads


def test_a_token_made_while_the_server_runs_works_at_once(served):
    c, path, _, reads = served
    res = CliRunner().invoke(get_app(), ["token", "create", "--role", "viewer", str(path)])
    assert res.exit_code == 0, res.output
    token = next(w for w in res.output.split() if w.startswith("rt_"))
    assert c.get("/api/layers", headers=_bearer(token)).status_code == 200
    assert len(reads) == 1  # one read of the tokens for it
    assert c.get("/api/layers", headers=_bearer(token)).status_code == 200 and len(reads) == 1  # known now


def test_a_flood_of_made_up_tokens_reads_the_store_at_most_once_a_window(served, monkeypatch):
    c, path, first, reads = served
    monkeypatch.setattr(deps, "TOKEN_MISS_RELOAD_S", 3600.0)
    made_up = [f"rt_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}" for _ in range(30)]
    assert {c.get("/api/layers", headers=_bearer(t)).status_code for t in made_up} == {401}
    assert len(reads) == 1, reads  # the first miss read them again; the other 29 did not
    # a wrong secret for a known id, and text that is no token, never read them (reading again changes nothing)
    known_id = first.split("_")[1]
    monkeypatch.setattr(deps, "TOKEN_MISS_RELOAD_S", 0.0)
    for bad in (f"rt_{known_id}_{secrets.token_urlsafe(32)}", "hunter2", "rt_zz_short"):
        assert c.get("/api/layers", headers=_bearer(bad)).status_code == 401
    assert len(reads) == 1, reads
    assert c.get("/api/layers", headers=_bearer(first)).status_code == 200


def test_past_the_window_a_new_token_is_looked_up_again(served, monkeypatch):
    """Under a flood a token made less than TOKEN_MISS_RELOAD_S after the last miss's read may be refused once;
    the next request after the window finds it."""
    c, path, _, reads = served
    monkeypatch.setattr(deps, "TOKEN_MISS_RELOAD_S", 0.3)
    assert c.get("/api/layers", headers=_bearer(f"rt_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}")
                 ).status_code == 401
    with Twin.open(path) as twin:
        token = create_token(twin.store, "viewer")
    time.sleep(0.35)
    assert c.get("/api/layers", headers=_bearer(token)).status_code == 200
    assert len(reads) == 2
