"""A token revoked while a large (or slow) body streams in is refused once the body is in, before the route runs:
the early check (:mod:`viewer.limits`) kept the caller for the whole request before, so a BIM model uploaded on
a token revoked midway was still checked and recorded. A small, quick body is not looked up a second time."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from tests.viewer.conftest import asgi_post


@pytest.fixture
def app_and_tokens(city):
    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        tok = {role: create_token(st, role.rstrip("2"), name=role)
               for role in ("sensor", "sensor2", "regulator", "regulator2", "viewer")}
    with TestClient(create_app(Settings(store=city, prewarm=False)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        yield c, tok, city


def _revoke(city: str, token: str) -> None:
    """Revoke ``token`` from another connection to the store (as `twin token revoke` would)."""
    from cim.store import open_store
    from viewer.auth import revoke_token

    with open_store(city) as st:
        revoke_token(st, token.split("_")[1])


def _body(chunks: list[bytes], *, at: int | None = None, then=None, pause: float = 0.0):
    """An ASGI ``receive`` handing over ``chunks`` one at a time; ``then()`` runs before chunk ``at`` is handed
    over (e.g. a revocation midway), and each chunk waits ``pause`` seconds (a slow sender)."""
    state = {"i": 0}

    async def receive():
        i = state["i"]
        state["i"] += 1
        if i == at and then is not None:
            then()
        if pause:
            await asyncio.sleep(pause)
        return {"type": "http.request", "body": chunks[i] if i < len(chunks) else b"", "more_body": i < len(chunks) - 1}

    return receive, state


def _readings_body(size: int) -> list[bytes]:
    """An empty batch of readings padded with JSON whitespace to ``size`` bytes, in 64 kB chunks."""
    head, tail = b'{"readings": [', b"]}"
    raw = head + b" " * (size - len(head) - len(tail)) + tail
    return [raw[k:k + 65536] for k in range(0, len(raw), 65536)]


def test_a_token_revoked_while_a_large_batch_streams_is_refused(app_and_tokens):
    client, tok, city = app_and_tokens
    chunks = _readings_body(3 * 1024 * 1024)  # 3 MB: under the readings' 8 MB limit, over RECHECK_BYTES
    receive, sent = _body(chunks, at=len(chunks) // 2, then=lambda: _revoke(city, tok["sensor"]))
    status, body = asgi_post(client.app, "/api/sensors/readings",
                             {"authorization": f"Bearer {tok['sensor']}", "content-type": "application/json"}, receive)
    assert status == 401 and "not valid (unknown, revoked or mistyped)" in json.loads(body)["detail"], (status, body)
    assert sent["i"] >= len(chunks)  # refused once the body was in, not before
    # the same large body on a token still valid goes through
    receive, _ = _body(_readings_body(3 * 1024 * 1024))
    status, body = asgi_post(client.app, "/api/sensors/readings",
                             {"authorization": f"Bearer {tok['regulator']}", "content-type": "application/json"},
                             receive)
    assert status == 403  # a regulator may not send readings: the early check, unchanged
    fresh = tok["sensor2"]  # made with the others: a token made after the start is known within 2 s
    receive, _ = _body(_readings_body(3 * 1024 * 1024))
    status, body = asgi_post(client.app, "/api/sensors/readings",
                             {"authorization": f"Bearer {fresh}", "content-type": "application/json"}, receive)
    assert status == 201 and json.loads(body) == {"stored": 0, "already_stored": 0}, (status, body)


def test_a_token_revoked_while_a_bim_model_uploads_is_refused(app_and_tokens, ifc_path, monkeypatch):
    """The BIM check's upload (up to the upload limit): a regulator's token revoked midway; the check never runs.
    The same upload on a token still valid runs it (the body is a good one)."""
    import viewer.routers.bim as bim

    client, tok, city = app_and_tokens
    ran = []
    monkeypatch.setattr(bim, "_run_check", lambda *a, **k: ran.append(a[4]) or {"recorded": True})
    boundary = "rongtwinrecheck"
    with open(ifc_path, "rb") as fh:
        ifc = fh.read()
    pad = b"\n" * max(0, 2 * 1024 * 1024 - len(ifc))  # a 2 MB model (the IFC reader is not reached here)
    raw = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"ifc\"; filename=\"box.ifc\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n").encode() + ifc + pad + f"\r\n--{boundary}--\r\n".encode()
    chunks = [raw[k:k + 65536] for k in range(0, len(raw), 65536)]
    kind = {"content-type": f"multipart/form-data; boundary={boundary}"}
    receive, sent = _body(chunks, at=len(chunks) // 2, then=lambda: _revoke(city, tok["regulator"]))
    status, body = asgi_post(client.app, "/api/bim/checks", {"authorization": f"Bearer {tok['regulator']}", **kind},
                             receive)
    assert status == 401 and "revoked" in json.loads(body)["detail"], (status, body[:300])
    assert sent["i"] >= len(chunks) and not ran
    other = tok["regulator2"]
    receive, _ = _body(chunks)
    status, body = asgi_post(client.app, "/api/bim/checks", {"authorization": f"Bearer {other}", **kind}, receive)
    assert status == 201 and ran == ["residential_r2"], (status, body[:300])


def test_a_token_revoked_while_a_small_body_trickles_in_is_refused(app_and_tokens, monkeypatch):
    """A small body that takes long to arrive (over RECHECK_S) is looked up again too."""
    import viewer.limits as limits

    client, tok, city = app_and_tokens
    monkeypatch.setattr(limits, "RECHECK_S", 0.3, raising=False)  # the 2 s of the server, shortened for the test
    chunks = [b'{"readings": ', b"[", b"]}"]
    receive, _ = _body(chunks, at=1, then=lambda: _revoke(city, tok["sensor"]), pause=0.2)
    status, body = asgi_post(client.app, "/api/sensors/readings",
                             {"authorization": f"Bearer {tok['sensor']}", "content-type": "application/json"}, receive)
    assert status == 401, (status, body)


def test_a_small_quick_body_is_not_looked_up_again(app_and_tokens, monkeypatch):
    """Under RECHECK_BYTES and RECHECK_S the caller found before the body is kept: one token lookup per POST, and
    a revocation during it is seen by the next request (within the token cache's 2 s), as before."""
    import viewer.dependencies as deps

    client, tok, city = app_and_tokens
    calls = []
    real = deps.token_status
    monkeypatch.setattr(deps, "token_status", lambda *a, **k: calls.append(1) or real(*a, **k))
    receive, _ = _body([b'{"readings": ', b"[", b"]}"], at=1, then=lambda: _revoke(city, tok["sensor"]))
    status, body = asgi_post(client.app, "/api/sensors/readings",
                             {"authorization": f"Bearer {tok['sensor']}", "content-type": "application/json"}, receive)
    assert status == 201 and len(calls) == 1, (status, body, calls)
    calls.clear()
    fresh = tok["sensor2"]
    receive, _ = _body(_readings_body(2 * 1024 * 1024))  # large: looked up once more, once it is in
    status, body = asgi_post(client.app, "/api/sensors/readings",
                             {"authorization": f"Bearer {fresh}", "content-type": "application/json"}, receive)
    assert status == 201 and len(calls) == 2, (status, body, calls)
