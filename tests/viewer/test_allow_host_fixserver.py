"""``twin serve --allow-host NAME``: a server bound to loopback also answers to the names a reverse proxy or the
local network gives it, and then needs tokens; junk names are refused clearly."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from twin_core.cli import get_app


@pytest.mark.parametrize("given, kept", [
    ("twin-map.cd.gov.cn", "twin-map.cd.gov.cn"),
    ("  Twin-Map.CD.gov.CN. ", "twin-map.cd.gov.cn"),  # case and the trailing dot of a fully qualified name
    ("*.Example.org", "*.example.org"),
    ("::1", "[::1]"), ("[0:0:0:0:0:0:0:1]", "[::1]"), ("192.168.1.20", "192.168.1.20"),
    ("成都.gov.cn", "xn--vnuo85h.gov.cn"),  # a Host header carries the IDNA form (as idna.encode gives it)
])
def test_allowed_names_are_kept_as_a_host_header_names_them(given, kept):
    from viewer.settings import Settings

    assert Settings(store="x.gpkg", allow_hosts=[given]).allow_hosts == [kept]


@pytest.mark.parametrize("junk, said", [
    ("twin-map.cd.gov.cn:8765", "without a scheme, port or path"),
    ("https://twin-map.cd.gov.cn", "without a scheme, port or path"),
    ("twin-map.cd.gov.cn/map", "without a scheme, port or path"),
    ("twin map", "without a scheme, port or path"),
    ("", "without a scheme, port or path"),
    ("-bad.example.org", "without a scheme, port or path"),
    ("a..example.org", "without a scheme, port or path"),
    ("*", "a wildcard may only stand for the labels in front"),
    ("a*.example.org", "a wildcard may only stand for the labels in front"),
    ("*.*.example.org", "a wildcard may only stand for the labels in front"),
    ("*.org", "every name under the top-level domain"),
])
def test_junk_names_are_refused_with_what_to_give(junk, said):
    from pydantic import ValidationError

    from viewer.settings import Settings

    with pytest.raises(ValidationError) as err:
        Settings(store="x.gpkg", allow_hosts=[junk])
    assert said in str(err.value) and repr(junk) in str(err.value)


def test_the_names_come_from_the_environment_too(monkeypatch):
    from viewer.settings import Settings

    monkeypatch.setenv("TWIN_STORE", "x.gpkg")
    monkeypatch.setenv("TWIN_ALLOW_HOSTS", "twin-map.cd.gov.cn, *.example.org")
    assert Settings.from_env().allow_hosts == ["twin-map.cd.gov.cn", "*.example.org"]


@pytest.fixture
def proxied(city):
    """The app bound to loopback, also answering to twin-map.cd.gov.cn and *.example.org, with a viewer token."""
    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    with open_store(city) as st:
        tok = create_token(st, "viewer", name="proxy")
    settings = Settings(store=city, port=8800, prewarm=False, allow_hosts=["twin-map.cd.gov.cn", "*.example.org"])
    with TestClient(create_app(settings), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c, {"Authorization": f"Bearer {tok}"}


def test_an_allowed_name_is_answered_and_needs_a_token(proxied):
    c, auth = proxied
    for host in ("twin-map.cd.gov.cn", "TWIN-MAP.cd.gov.cn:443", "twin-map.cd.gov.cn.", "a.example.org",
                 "a.b.example.org:8800", "127.0.0.1:8800", "[::1]:8800", "localhost"):
        r = c.get("/api/layers", headers={"Host": host, **auth})
        assert r.status_code == 200, (host, r.text)
    # a server that answers to a proxy's name is reached from beyond loopback: no token, no answer (the
    # loopback server without the option lets a local caller in without one)
    r = c.get("/api/layers", headers={"Host": "twin-map.cd.gov.cn"})
    assert r.status_code == 401, r.text
    for host in ("example.org", "evil-example.org", "a.example.org.evil.net", "x y.example.org", "a..example.org",
                 ".example.org", "twin-map.cd.gov.cn.evil.net",
                 "twin-map.cd.gov.cnx", "[::1]x", "localhost:80x", "testserver"):
        r = c.get("/api/layers", headers={"Host": host, **auth})
        assert r.status_code == 400 and r.json()["error"] == "invalid host", (host, r.text)


def test_the_400_names_the_option(city):
    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city, port=8800, prewarm=False)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        r = c.get("/api/layers", headers={"Host": "twin-map.cd.gov.cn:8800"})
        assert r.status_code == 400
        d = r.json()["detail"]
        assert "`twin serve STORE --allow-host twin-map.cd.gov.cn`" in d and "TWIN_ALLOW_HOSTS" in d, d
        assert "twin token create" in d
        # a name unfit for a command line is not quoted into one
        d = c.get("/api/layers", headers={"Host": "a$(b).example"}).json()["detail"]
        assert "`twin serve STORE --allow-host NAME`" in d and "--allow-host a$(b)" not in d, d


def test_allowed_names_need_tokens_as_beyond_loopback(city):
    from twin_core.errors import AuthError
    from viewer.app import create_app
    from viewer.server import check_bind
    from viewer.settings import Settings

    with pytest.raises(AuthError, match="auth off.*--allow-host"):
        create_app(Settings(store=city, auth="off", allow_hosts=["twin-map.cd.gov.cn"]))
    with pytest.raises(AuthError, match="under the host names twin-map.cd.gov.cn: no access token.*twin token create"):
        check_bind(Settings(store=city, allow_hosts=["twin-map.cd.gov.cn"]))
    check_bind(Settings(store=city))  # loopback alone: no token needed, as before


def test_cli_allow_host_is_repeatable_validated_and_passed_on(city, monkeypatch):
    import viewer.server
    from cim.store import open_store
    from twin_core.errors import AuthError
    from viewer.auth import create_token

    app, run = get_app(), CliRunner()
    r = run.invoke(app, ["serve", city, "--allow-host", "twin-map.cd.gov.cn:8765"])
    assert r.exit_code == 2 and "--allow-host" in r.output and "without a scheme, port or path" in r.output, r.output
    r = run.invoke(app, ["serve", city, "--allow-host", "*.org"])
    assert r.exit_code == 2 and "top-level domain" in r.output, r.output
    r = run.invoke(app, ["serve", city, "--allow-host", "twin-map.cd.gov.cn"])
    assert isinstance(r.exception, AuthError) and "--allow-host" in str(r.exception), r.output
    with open_store(city) as st:
        create_token(st, "viewer")
    seen = {}
    monkeypatch.setattr(viewer.server, "serve", lambda store, **kw: seen.update(kw))
    r = run.invoke(app, ["serve", city, "--allow-host", "Twin-Map.cd.gov.cn", "--allow-host", "*.example.org"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert seen["allow_hosts"] == ["twin-map.cd.gov.cn", "*.example.org"] and "also as twin-map.cd.gov.cn" in r.output
    monkeypatch.setenv("TWIN_ALLOW_HOSTS", "lan-name.local.example")
    r = run.invoke(app, ["serve", city])
    assert r.exit_code == 0 and seen["allow_hosts"] == ["lan-name.local.example"], r.output
