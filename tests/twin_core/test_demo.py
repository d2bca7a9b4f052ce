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
        assert set(twin.results(scenario="base")["run"]) >= {"demo-flood", "demo-traffic"}
    again = run.invoke(app, ["demo", target, "--size", "small", "--no-serve", "--quiet"])
    assert again.exit_code == 0 and "storm at rush hour: results already in the twin" in again.output
