"""Emergency access in a flood at a time after the flood run ended, and the errors of a flood or traffic run
under another scenario (user review items 5 and 6): on the hand-made street grid of test_access.py."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from tests.twin_core import test_access
from tests.twin_core.test_access import _at_the_limits  # noqa: F401 - autouse: the exact times are at the limits
from twin_core.errors import ParameterError, TwinWarning

X0, Y0 = test_access.X0, test_access.Y0
twin = test_access.twin  # the street grid fixture

CELL = 10.0
TRANSFORM = Affine(CELL, 0.0, X0 - 50.0, 0.0, -CELL, Y0 + 350.0)  # 40 x 40 cells over the grid and around it


def _flood(twin, scenario, run, times=(0.0, 900.0, 1800.0)):
    """A flood run of 30 min (snapshots at 0, 15 and 30 min) that puts 0.5 m on the street n00-n10 (y = Y0,
    X0 .. X0 + 100) from 15 min on, still there when the run ended."""
    snaps = np.zeros((len(times), 40, 40))
    row = int((TRANSFORM.f - Y0) // CELL)
    c0, c1 = int((X0 + 20 - TRANSFORM.c) // CELL), int((X0 + 80 - TRANSFORM.c) // CELL)
    for k, t in enumerate(times):
        if t >= 900.0:
            snaps[k, row, c0:c1 + 1] = 0.5
    twin.save_result(scenario, run, "depth_snapshots", snaps,
                     meta={"engine": "simulation.flood", "snapshot_times_s": list(times),
                           "transform": list(TRANSFORM)[:6], "crs": "EPSG:4544"})
    twin.save_result(scenario, run, "exposure_road_links", pd.DataFrame(
        {"link_id": ["n00-n10"], "max_depth_m": [0.5], "time_of_arrival_s": [900.0], "flooded_fraction": [1.0]}),
        meta={"engine": "simulation.flood", "threshold_m": 0.15})
    twin.save_result(scenario, run, "summary", {"engine": "flood"}, meta={"engine": "simulation.flood"})


def test_access_at_a_time_after_the_flood_ended_warns_as_the_crowd_does(twin):
    """`--flood-time 5h` on a 30-min flood closed the roads still wet at 1800 s without a word."""
    from twin_core.adapters.access import run_access

    _flood(twin, None, "storm50")
    with pytest.warns(TwinWarning) as caught:
        late = run_access(twin, "fire_station", flooded_by="storm50", flood_time="5h", save=False)
    said = [str(w.message) for w in caught if "after flood run" in str(w.message)]
    assert said == ["flood_time 18000 s is after flood run 'storm50' ended (1800 s); the roads still under water "
                    "when it ended are taken as closed"]
    assert late.summary["flooded_links"] == 2  # n00-n10, both ways: still closed at 5 h, as the warning says
    # within the run: no warning; before the water came (0.3 m crossed at 540 s) no road is closed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        early = run_access(twin, "fire_station", flooded_by="storm50", flood_time="5min", save=False)
        at_end = run_access(twin, "fire_station", flooded_by="storm50", flood_time="30min", save=False)
    assert early.summary["flooded_links"] == 0 and at_end.summary["flooded_links"] == 2


def test_the_crowd_and_access_share_the_warning():
    """One helper says it for both (the crowd's wording is kept)."""
    from twin_core.adapters.flood import warn_after_flood_end

    with pytest.warns(TwinWarning, match=r"^flood_time 2700 s is after flood run 's' ended \(1800 s\); its last "
                                         r"depths are used$"):
        warn_after_flood_end(2700.0, "s", 1800.0, "its last depths are used")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_after_flood_end(1800.0, "s", 1800.0, "its last depths are used")


def test_a_run_under_another_scenario_is_named_for_the_access_analysis(twin):
    """"(it is under ['levee']: run the traffic on that scenario)" for an access run; and --speeds-from a run of
    another scenario said only "no traffic simulate run ... under scenario 'works'"."""
    from twin_core.adapters.access import run_access

    twin.scenarios.create("levee")
    twin.scenarios.create("works")
    _flood(twin, "levee", "storm50-levee")
    with pytest.raises(ParameterError) as info:
        run_access(twin, flooded_by="storm50-levee", save=False)
    assert str(info.value) == ("no flood run 'storm50-levee' under scenario 'base' (it is under ['levee']: run the "
                               "access analysis on that scenario)")
    with pytest.raises(ParameterError, match=r"\(it is under \['levee'\]: run the access analysis on that "):
        run_access(twin, flooded_by="storm50-levee", flood_time="10min", save=False)
    twin.save_result("base", "peak", "link_loads", pd.DataFrame({"link_id": ["n00-n10"], "mean_speed_kmh": [18.0]}),
                     meta={"engine": "simulation.traffic"})
    with pytest.raises(ParameterError) as info:
        run_access(twin, scenario="works", speeds_from="peak", save=False)
    assert str(info.value) == ("no traffic simulate run 'peak' under scenario 'works' (it is under ['base']: run "
                               "the access analysis on that scenario); or run `twin traffic simulate --scenario "
                               "works` and give its run id")
    with pytest.raises(ParameterError, match=r"'storm50-levee' under scenario 'levee' \(its results hold no "
                                             r"link_loads\); run `twin traffic simulate` first"):
        run_access(twin, scenario="levee", speeds_from="storm50-levee", save=False)
    with pytest.raises(ParameterError, match=r"'nope' under scenario 'base' \(no run has that id\)"):
        run_access(twin, speeds_from="nope", save=False)
    # the traffic engine's own wording stays its own
    from twin_core.adapters.traffic import flooded_links

    with pytest.raises(ParameterError, match=r"\(it is under \['levee'\]: run the traffic run on that scenario\)"):
        flooded_links(twin, None, "storm50-levee")


def test_access_records_the_traffic_run_it_drove_at(twin):
    """By id, so that replacing or deleting that run names the access run (cim.results.runs_using)."""
    from cim.results import runs_using
    from twin_core.adapters.access import run_access

    twin.save_result("base", "peak", "link_loads", pd.DataFrame({"link_id": ["n00-n10"], "mean_speed_kmh": [18.0]}),
                     meta={"engine": "simulation.traffic"})
    out = run_access(twin, speeds_from="peak", run="amb")
    assert out.summary["speeds_from"] == "peak" and twin.load_result("base", "amb", "summary")["speeds_from"] == "peak"
    assert runs_using(twin.store, "base", "peak") == [("base", "amb", "access")]
