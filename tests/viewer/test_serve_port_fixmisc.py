"""``twin serve`` on a port already in use: refused before "serving ..." is printed, with what to do (before:
the announcement, then uvicorn's bare "[Errno 98] ... address already in use" and exit 3)."""

from __future__ import annotations

import socket

import pytest

from typer.testing import CliRunner

from twin_core.cli import get_app


@pytest.fixture
def taken_port():
    """A port on 127.0.0.1 held by a listening socket for the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _no_uvicorn(monkeypatch) -> list:
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(k.get("port")))
    return started


def test_serve_refuses_a_port_in_use_before_announcing(city, taken_port, monkeypatch):
    from viewer.server import PortInUseError

    started = _no_uvicorn(monkeypatch)
    r = CliRunner().invoke(get_app(), ["serve", city, "--port", str(taken_port)])
    assert isinstance(r.exception, PortInUseError), (r.output, r.exception)
    msg = str(r.exception)
    assert f"port {taken_port} on 127.0.0.1 is already in use" in msg and "twin serve" in msg
    assert "--port" in msg
    assert "serving" not in r.output and started == []


def test_serve_names_a_free_port_and_starts_on_a_free_one(city, taken_port, monkeypatch):
    import re

    from viewer.server import PortInUseError, check_port

    with pytest.raises(PortInUseError) as err:
        check_port("127.0.0.1", taken_port)
    suggested = re.search(r"--port (\d+)", str(err.value))
    if suggested:  # the port named is one the server can listen on
        check_port("127.0.0.1", int(suggested.group(1)))
    started = _no_uvicorn(monkeypatch)
    with socket.socket() as s:  # a port free now: the server starts (uvicorn stubbed out)
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    r = CliRunner().invoke(get_app(), ["serve", city, "--port", str(free)])
    assert r.exit_code == 0 and f"serving {city} on http://127.0.0.1:{free}/" in r.output, (r.output, r.exception)
    assert started == [free]


def test_library_serve_refuses_a_port_in_use(city, taken_port, monkeypatch):
    """viewer.server.serve (what `twin demo` calls after building) refuses too, instead of uvicorn's exit 3."""
    from viewer.server import PortInUseError, serve

    started = _no_uvicorn(monkeypatch)
    with pytest.raises(PortInUseError, match="already in use"):
        serve(city, port=taken_port)
    assert started == []
