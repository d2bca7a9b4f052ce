"""The IFC upload's size limit holds for a body that does not say its length (chunked): the server answers 413
once the body passes the limit, without taking in the rest of it (before, FastAPI parsed the whole form, the
file spooled to a temporary file, and only then was its size looked at)."""

from __future__ import annotations

import pytest

MB = 1024 * 1024
BOUNDARY = "----rongtwin-test-boundary"


@pytest.fixture
def small_limit_client(city):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city, max_upload_mb=1)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        yield c


def _multipart(parts: int, pulled: dict, ruleset: str | None = None):
    """A multipart body in pieces: an IFC file of ``parts`` MiB sent a MiB at a time, counting in ``pulled``
    how many of its MiB the server asked for."""
    if ruleset is not None:
        yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="ruleset"\r\n\r\n{ruleset}\r\n').encode()
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="ifc"; filename="big.ifc"\r\n'
           "Content-Type: application/octet-stream\r\n\r\nISO-10303-21;\n").encode()
    for _ in range(parts):
        pulled["n"] += 1
        yield b"/" * MB
    pulled["done"] = True
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _post(client, body, headers: dict) -> tuple[int, dict]:
    """POST /api/bim/checks straight to the app (ASGI), the body's pieces handed over only as the app asks for
    them, as a server does with a chunked body."""
    import json

    from tests.viewer.conftest import asgi_post

    body = iter(body)

    async def receive():
        chunk = next(body, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    status, out = asgi_post(client.app, "/api/bim/checks", headers, receive)
    return status, json.loads(out or b"{}")


HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def test_a_chunked_ifc_upload_over_the_limit_is_413_before_it_is_read_whole(small_limit_client):
    pulled = {"n": 0, "done": False}
    status, body = _post(small_limit_client, _multipart(40, pulled), HEADERS)
    assert status == 413, body
    assert "limit of 1 MB" in body["detail"] and "--max-upload-mb" in body["detail"]
    # refused once past 1 MB + the margin (a rules file and the form's fields, viewer.routers.bim.BODY_MARGIN):
    # 3 of the 40 MB were read, not all of it
    assert not pulled["done"] and pulled["n"] <= 4, pulled


def test_a_declared_length_over_the_limit_is_413_before_any_of_it_is_read(small_limit_client):
    pulled = {"n": 0, "done": False}
    status, body = _post(small_limit_client, _multipart(40, pulled), {**HEADERS, "Content-Length": str(40 * MB + 300)})
    assert status == 413, body
    assert pulled["n"] == 0, pulled


def test_a_chunked_upload_under_the_limit_is_read_as_before(small_limit_client):
    pulled = {"n": 0, "done": False}
    status, body = _post(small_limit_client, _multipart(0, pulled, ruleset="nope"), HEADERS)
    assert status == 400 and "no shipped rule set" in body["detail"], body  # the form got through
    assert pulled["done"]
    # and through the TestClient (a generator, no Content-Length) as well
    r = small_limit_client.post("/api/bim/checks", content=_multipart(0, {"n": 0}, ruleset="nope"), headers=HEADERS)
    assert r.status_code == 400 and "no shipped rule set" in r.json()["detail"], r.text
