"""`twin demo` (the main job) on the small city without serving: every demo step runs once and leaves its
results where the map looks for them, the storm-at-rush-hour cascade included."""

from __future__ import annotations

import warnings

import pytest
from typer.testing import CliRunner

from twin_core.twin import Twin

pytestmark = pytest.mark.slow


def test_demo_runs_each_step_once_including_the_storm_at_rush_hour(tmp_path):
    from twin_core.cli import get_app

    app = get_app()

    target = str(tmp_path / "demo.gpkg")
    run = CliRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run.invoke(app, ["demo", target, "--size", "small", "--no-serve", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "storm at rush hour: run demo-storm-traffic" in r.output
    with Twin.open(target) as twin:
        assert "storm_rush" in twin.scenarios.names()
        s = twin.load_result("storm_rush", "demo-storm-traffic", "summary")
        assert s["flooded_by"] == "demo-storm" and s["flood_timing"] == "timed" and s["flood_closed_links"]
        loads = twin.load_result("storm_rush", "demo-storm-traffic", "link_loads")
        assert loads["closed_from_s"].notna().any()  # what the map draws blue while it is closed
        assert set(twin.results(scenario="base")["run"]) >= {"demo-flood", "demo-traffic", "demo-crowd"}
        crowd = twin.load_result("base", "demo-crowd", "summary")
        assert crowd["agents"] == 2000 and crowd["status"] == "evacuated"  # the map shows them walking out
        acc = twin.load_result("storm_rush", "demo-access", "summary")
        assert acc["flooded_by"] == "demo-storm" and acc["within_s"] == 600 and acc["buildings"] > 0
    again = run.invoke(app, ["demo", target, "--size", "small", "--no-serve", "--quiet"])
    assert again.exit_code == 0 and "storm at rush hour: results already in the twin" in again.output


@pytest.mark.postgis
def test_demo_on_postgis_builds_once(pg_dsn, monkeypatch):
    """A DSN is no file, so `twin demo DSN` rebuilt the whole city (and ran every step again) on each run."""
    import twin_core.cli.build
    import twin_core.cli.demo
    from twin_core.cli import get_app

    real = twin_core.cli.build.build_city
    builds = []

    def counting(*a, **k):
        builds.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(twin_core.cli.build, "build_city", counting)
    app, run = get_app(), CliRunner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = run.invoke(app, ["demo", pg_dsn, "--size", "small", "--no-serve", "--quiet"])
        second = run.invoke(app, ["demo", pg_dsn, "--size", "small", "--no-serve", "--quiet"])
    assert first.exit_code == 0 and second.exit_code == 0, (first.output, second.output)
    assert len(builds) == 1
    assert "storm at rush hour: results already in the twin" in second.output
