"""`twin demo --allow-host NAME` (and TWIN_ALLOW_HOSTS), as `twin serve` has it: the names are checked the same
way (twin_core.cli.serve.allowed_hosts), before any building or simulating; tokens are then required; the map
server is started answering to them."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app


@pytest.fixture
def quick_demo(monkeypatch):
    """`twin demo` with the city build, the simulations and the server replaced by recorders: (app, runner,
    the build targets, the keyword arguments of each serve)."""
    import twin_core.cli.build
    import twin_core.cli.demo
    import viewer.server

    built, served = [], []

    def build(target, *a, **k):
        from twin_core.twin import Twin

        built.append(target)
        Twin.create(target).close()
        return {}

    monkeypatch.delenv("TWIN_ALLOW_HOSTS", raising=False)
    monkeypatch.setattr(twin_core.cli.build, "build_city", build)
    monkeypatch.setattr(twin_core.cli.build, "format_summary", lambda s: "built")
    monkeypatch.setattr(twin_core.cli.demo, "run_demo_steps", lambda twin, quiet: [])
    monkeypatch.setattr(viewer.server, "serve", lambda target, **k: served.append(k))
    return get_app(), CliRunner(), built, served


def test_bad_names_are_usage_errors_before_any_work(quick_demo, tmp_path):
    app, run, built, served = quick_demo
    target = str(tmp_path / "demo.gpkg")
    for junk, said in (("twin-map.cd.gov.cn:8765", "without a scheme, port or path"),
                       ("*.org", "top-level domain")):
        r = run.invoke(app, ["demo", target, "--allow-host", junk, "--quiet"])
        assert r.exit_code == 2 and "--allow-host" in r.output and said in r.output, (r.output, r.exception)
    assert not built and not served and not os.path.exists(target)


def test_a_fresh_city_is_not_served_under_other_names(quick_demo, tmp_path):
    """A freshly built city has no token: refused before it is built, with what to do."""
    from twin_core.errors import AuthError

    app, run, built, served = quick_demo
    target = str(tmp_path / "demo.gpkg")
    r = run.invoke(app, ["demo", target, "--allow-host", "twin-map.cd.gov.cn", "--quiet"])
    assert isinstance(r.exception, AuthError), (r.output, r.exception)
    msg = str(r.exception)
    assert "under the host names twin-map.cd.gov.cn" in msg and "twin token create" in msg
    assert "leave out --allow-host" in msg
    assert not built and not served and not os.path.exists(target)
    r = run.invoke(app, ["demo", target, "--quiet"])  # loopback alone: no token needed, as before
    assert r.exit_code == 0 and served == [{"host": "127.0.0.1", "port": 8765, "allow_hosts": []}], r.output


def test_names_are_passed_on_once_a_token_exists(quick_demo, tmp_path):
    from twin_core.errors import AuthError
    from twin_core.twin import Twin
    from viewer.auth import create_token

    app, run, built, served = quick_demo
    target = str(tmp_path / "demo.gpkg")
    Twin.create(target).close()
    r = run.invoke(app, ["demo", target, "--allow-host", "twin-map.cd.gov.cn", "--quiet"])
    assert isinstance(r.exception, AuthError) and "no access token" in str(r.exception), (r.output, r.exception)
    assert not served
    with Twin.open(target) as t:
        create_token(t.store, "viewer", name="duty")
    r = run.invoke(app, ["demo", target, "--allow-host", "Twin-Map.cd.gov.cn", "--allow-host", "*.example.org",
                         "--quiet"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert served[-1]["allow_hosts"] == ["twin-map.cd.gov.cn", "*.example.org"]
    assert "also as twin-map.cd.gov.cn, *.example.org" in r.output
    assert not built  # the city there was kept


def test_the_names_come_from_the_environment_too(quick_demo, tmp_path, monkeypatch):
    from twin_core.errors import AuthError
    from twin_core.twin import Twin
    from viewer.auth import create_token

    app, run, built, served = quick_demo
    monkeypatch.setenv("TWIN_ALLOW_HOSTS", "lan-name.local.example, *.example.org")
    fresh = str(tmp_path / "fresh.gpkg")
    r = run.invoke(app, ["demo", fresh, "--quiet"])
    assert isinstance(r.exception, AuthError) and "unset TWIN_ALLOW_HOSTS" in str(r.exception), r.output
    assert not os.path.exists(fresh)
    target = str(tmp_path / "demo.gpkg")
    Twin.create(target).close()
    with Twin.open(target) as t:
        create_token(t.store, "viewer", name="duty")
    r = run.invoke(app, ["demo", target, "--quiet"])
    assert r.exit_code == 0 and served[-1]["allow_hosts"] == ["lan-name.local.example", "*.example.org"], r.output
