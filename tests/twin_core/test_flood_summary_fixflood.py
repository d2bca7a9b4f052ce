"""Flood adapter review fixes (fix_flood, items 2, 3, 4, 6) on the small sample city: depth snapshots kept when
``params=`` is given; loss rasters in another unit refused; infiltration in the summary and the volumes closing;
the water bodies' starting water drained said; an inflow's place in degrees shown to metres; a huge inflow
warned about."""

from __future__ import annotations

import warnings

import pytest


def _closes(s):
    ins = s["rain_m3"] + s["roof_runoff_m3"] + s["inflow_m3"] + s["initial_storage_m3"]
    outs = s["storage_m3"] + s["outflow_m3"] + s["drainage_m3"] + s["infiltration_m3"]
    return abs(ins - outs) <= 1e-6 * max(ins, 1.0)


def test_params_given_keeps_the_runs_depth_snapshots(small_city_gpkg):
    """``p = params or FloodParameters(snapshot_interval=...)`` ran params=FloodParameters(...) without
    snapshots (the engine's default None), while depth_snapshots was listed: traffic --flooded-by failed."""
    from cim.results import list_results
    from simulation.flood import FloodParameters
    from twin_core import Twin

    with Twin.open(small_city_gpkg) as twin:
        fr = twin.flood(None, storm="10y", duration="10min", run="p", params=FloodParameters(dtype="float32"),
                        snapshot_interval="5min")
        stack = twin.snapshots("p")
        assert list(stack.times_s) == [0.0, 300.0, 600.0]  # 0, 5 and 10 min
        assert fr.summary["snapshots"] == len(fr.result.snapshot_times) == 3
        # a params that sets its own interval keeps it (documented in run_flood)
        fr = twin.flood(None, storm="10y", duration="10min", run="own",
                        params=FloodParameters(snapshot_interval=120.0))
        assert fr.summary["snapshot_interval_s"] == 120.0 and fr.summary["snapshots"] == 6
        # none asked for: none saved, none listed
        fr = twin.flood(None, storm="10y", duration="10min", run="none", snapshot_interval=None)
        assert fr.summary["snapshots"] == 0
        assert "depth_snapshots" not in set(list_results(twin.store, run="none")["name"])
        assert "max_depth" in set(list_results(twin.store, run="none")["name"])


def test_a_loss_raster_in_another_unit_is_refused(small_city_gpkg):
    from twin_core import Twin
    from twin_core.errors import ParameterError

    with Twin.open(small_city_gpkg) as twin:
        with pytest.raises(ParameterError, match=r"raster 'dem' is in 'm', but infiltration_mm_h \(CLI "
                                                 r"--infiltration\) is a loss rate in mm/h"):
            twin.flood(None, storm="10y", duration="10min", infiltration_mm_h="dem")
        with pytest.raises(ParameterError, match=r"raster 'manning' is in 's/m\^\(1/3\)', but drainage_mm_h"):
            twin.flood(None, storm="10y", duration="10min", drainage_mm_h="manning")


def test_infiltration_is_in_the_summary_cli_and_sweep_and_the_volumes_close(small_city_gpkg):
    from typer.testing import CliRunner

    from twin_core import Twin
    from twin_core.cli import get_app

    with Twin.open(small_city_gpkg) as twin:
        fr = twin.flood(None, storm="10y", duration="10min", run="inf", infiltration_mm_h=20, drainage_mm_h=10)
        s = fr.summary
        assert s["infiltration_m3"] > 0 and s["drainage_m3"] > 0 and _closes(s)
        df = twin.sweep("flood", {"storm": ["10y"], "duration": ["10min"], "infiltration_mm_h": [20]})
        assert df["infiltration_m3"].iloc[0] == pytest.approx(s["infiltration_m3"])
    out = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--storm", "10y", "--duration", "10min",
                                         "--infiltration", "20", "--quiet"])
    assert out.exit_code == 0, out.output
    assert f"into the soil {s['infiltration_m3']:.0f} m3" in out.output


def test_the_water_bodies_starting_water_and_its_draining_are_said(small_city_gpkg):
    from twin_core import Twin
    from twin_core.adapters.flood import water_drained_note

    with Twin.open(small_city_gpkg) as twin:
        s = twin.flood(None, storm="50y", duration="20min", run="w").summary
        dry = twin.flood(None, storm="50y", duration="20min", run="dry", initial_water=False).summary
    w = s["water_bodies"]
    assert w["initial_volume_m3"] == pytest.approx(s["initial_storage_m3"]) and w["initial_volume_m3"] > 0
    assert 0 <= w["end_volume_m3"] and w["lost_m3"] == pytest.approx(max(w["initial_volume_m3"]
                                                                           - w["end_volume_m3"], 0.0))
    assert _closes(s) and _closes(dry)
    note = water_drained_note(s)
    assert w["lost_m3"] > 0.1 * w["initial_volume_m3"]  # the sample river drains (a flat level on a sloping bed)
    assert note and "starting level is flat over a sloping bed" in note and f"{w['end_volume_m3']:.0f}" in note
    assert water_drained_note(dry) is None
    assert water_drained_note({"water_bodies": {"initial_volume_m3": 100.0, "end_volume_m3": 95.0}}) is None
    assert "50% less" in water_drained_note({"water_bodies": {"initial_volume_m3": 100.0, "end_volume_m3": 50.0},
                                             "outflow_m3": 80.0})


def test_an_inflow_in_degrees_is_shown_to_metres_and_a_huge_one_warned(small_city_gpkg):
    from twin_core import Twin
    from twin_core.errors import ParameterError, TwinWarning

    with Twin.open(small_city_gpkg) as twin:
        with pytest.raises(ParameterError, match=r"at \(104\.05630, 30\.65720\) is off the DEM"):
            twin.flood(None, storm="10y", duration="10min", inflows="104.0563,30.6572=50")
        x0, y0, x1, y1 = twin.raster("dem").bounds
        x, y = (x0 + x1) / 2, (y0 + y1) / 2
        with pytest.warns(TwinWarning, match=r"inflow 'big' peaks at 100,000 m3/s, more than 50,000 m3/s"):
            twin.flood(None, storm="10y", duration="1min", inflows=f"big@{x},{y}=100000",
                       save=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", TwinWarning)
            twin.flood(None, storm="10y", duration="10min", inflows=f"ok@{x},{y}=80", save=False)
