"""Emergency access on a hand-made street grid: times from the nearest station, exact; roads closed by a scenario
or under a flood's water; bad input."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from twin_core.errors import LayerNotFoundError, ParameterError
from twin_core.twin import Twin

X0, Y0 = 409000.0, 3390000.0  # the sample city's area (EPSG:4544)
V = 36.0  # km/h on every road: 10 m/s, 100 m in 10 s
W = 20 / 3.6  # m/s from the street to a station or building


@pytest.fixture(autouse=True)
def _at_the_limits(monkeypatch):
    """The exact times here are at the grid's 36 km/h limit: run_access's default drive speed (30 km/h,
    ACCESS_DRIVE_KMH) set to None, the limits, in these tests; test_drive_speed checks the default itself."""
    monkeypatch.setattr("twin_core.adapters.access.ACCESS_DRIVE_KMH", None)


@pytest.fixture
def twin(tmp_path):
    """A 4 x 4 grid of two-way streets 100 m apart (junctions n<col><row>). The fire station stands 6 m south
    of the street n00-n10, 10 m east of n00; the hospital 6 m north of n23-n33, 10 m west of n33. A building
    stands on each east-west street 10 m east of each junction (west of it on the east edge)."""
    t = Twin.create(str(tmp_path / "grid.gpkg"), name="grid")
    rows = []
    for c in range(4):
        for r in range(4):
            for dc, dr in ((1, 0), (0, 1)):
                if c + dc < 4 and r + dr < 4:
                    a, b = f"n{c}{r}", f"n{c + dc}{r + dr}"
                    rows.append({"link_id": f"{a}-{b}", "from_node": a, "to_node": b, "lanes": 1,
                                 "speed_limit_kmh": V, "capacity_vph": 900.0, "oneway": False, "length_m": 100.0,
                                 "geometry": shapely.LineString([(X0 + 100 * c, Y0 + 100 * r),
                                                                 (X0 + 100 * (c + dc), Y0 + 100 * (r + dr))])})
    t.store.write_layer("road_links", gpd.GeoDataFrame(rows, crs="EPSG:4544"))
    t.store.write_layer("pois", gpd.GeoDataFrame(
        {"poi_id": ["F1", "H1"], "kind": ["fire_station", "hospital"]},
        geometry=[shapely.Point(X0 + 10, Y0 - 6), shapely.Point(X0 + 290, Y0 + 306)], crs="EPSG:4544"))
    b = []
    for c in range(4):
        for r in range(4):
            x = X0 + 100 * c + (10 if c < 3 else -10)
            b.append({"building_id": f"B{c}{r}", "height_m": 10.0,
                      "geometry": shapely.MultiPolygon([shapely.box(x - 2, Y0 + 100 * r - 2, x + 2, Y0 + 100 * r + 2)])})
    t.store.write_layer("buildings", gpd.GeoDataFrame(b, crs="EPSG:4544"))
    yield t
    t.close()


def _from_f1(c, r):
    # 6 m from the station to its street, 10 m east of n00: 1 s back to n00 or 9 s on to n10; then the grid at
    # 10 s a block; the building 1 s from its junction (its street's west end, the east end on the east edge).
    # B00 stands by the station on the same street: the 6 m only
    if (c, r) == (0, 0):
        return 6 / W
    if c == 3:  # 10 m west of n3r on the street from n2r: 9 s on from n2r beats 1 s back from n3r (10 s later)
        return 6 / W + 9.0 + 10.0 * (1 + r) + 9.0
    to_junction = 1.0 + 10.0 * r if c == 0 else 9.0 + 10.0 * (c - 1 + r)
    return 6 / W + to_junction + 1.0


def test_times_from_the_nearest_station_are_the_grid_distance(twin):
    from twin_core.adapters.access import run_access

    out = run_access(twin, "fire_station", save=False)
    t = out.result.set_index("building_id")["time_s"]
    for c in range(4):
        for r in range(4):
            assert t[f"B{c}{r}"] == pytest.approx(_from_f1(c, r), abs=1e-6), (c, r)
    # the fire standard (GB 51054-2014): 240 s on the road; every building here is within 63 s
    assert out.summary["within_s"] == 240.0 and out.summary["within"] == 16 and out.summary["unreachable"] == 0
    # 15 s keeps B00 (1.1 s), B10 (11.1 s) and B01 (13.1 s); B20 and B11 are 21.1 s away
    assert run_access(twin, "fire_station", within="15s", save=False).summary["within"] == 3
    # a second fire station where the hospital is: each building from the nearer one
    twin.store.write_layer("pois", gpd.GeoDataFrame(
        {"poi_id": ["F1", "F2"], "kind": ["fire_station", "fire_station"]},
        geometry=[shapely.Point(X0 + 10, Y0 - 6), shapely.Point(X0 + 290, Y0 + 306)], crs="EPSG:4544"))
    t = run_access(twin, save=False).result.set_index("building_id")["time_s"]
    # from F2: 6 m to its street n23-n33, 1 s on to n33 (9 s back to n23); B33 stands on that street 10 m
    # west of n33, right by F2: the 6 m only
    assert t["B33"] == pytest.approx(6 / W, abs=1e-6)
    assert t["B32"] == pytest.approx(6 / W + 1.0 + 10.0 + 1.0, abs=1e-6)  # n33, a block south, 1 s west
    assert t["B10"] == pytest.approx(_from_f1(1, 0), abs=1e-6)


def test_a_scenario_closure_and_a_flood_take_roads_away(twin):
    from twin_core.adapters.access import run_access

    # the street n10-n20 closed: B10 stands on it, 10 m east of n10; it is reached from the side street
    # n10-n11, 10 m away (ACCESS_REACH_M 30 m); B20 round by n11 and n21, 2 blocks more
    s = twin.scenarios.create("works")
    s.modify_features("road_links", pd.DataFrame({"link_id": ["n10-n20"], "capacity_vph": [0.0]}))
    out = run_access(twin, "fire_station", scenario="works", save=False)
    t = out.result.set_index("building_id")["time_s"]
    assert t["B10"] == pytest.approx(_from_f1(1, 0) - 1.0 + 10 / W, abs=1e-6) and out.summary["unreachable"] == 0
    assert t["B20"] == pytest.approx(_from_f1(2, 0) + 20.0, abs=1e-6)
    # a flood run that put 0.4 m on both streets within 30 m of the station: its engines cannot leave
    twin.save_result("works", "storm", "exposure_road_links", pd.DataFrame(
        {"link_id": ["n00-n10", "n00-n01"], "max_depth_m": [0.4, 0.35], "time_of_arrival_s": [600.0, 900.0],
         "flooded_fraction": [1.0, 1.0]}), meta={"threshold_m": 0.15})
    out = run_access(twin, "fire_station", scenario="works", run="a1", flooded_by="storm")
    s = out.summary
    assert s["flooded_links"] == 4 and s["unreachable"] == 16  # both ways of both streets
    assert s["within_dry"] == 16 and s["lost"] == 16 and s["cut_off"] == 16
    saved = twin.load_result("works", "a1", "access_buildings")
    assert saved["lost"].sum() == 16 and np.isnan(saved.set_index("building_id")["time_s"]["B11"])
    assert saved.set_index("building_id")["dry_time_s"]["B11"] == pytest.approx(_from_f1(1, 1), abs=1e-6)
    # below the impassable depth (0.3 m, Pregnolato et al. 2017) water closes nothing
    assert run_access(twin, "fire_station", scenario="works", flooded_by="storm", impassable_depth=0.5,
                      save=False).summary["lost"] == 0


def test_access_bad_input(twin):
    from twin_core.adapters.access import run_access

    with pytest.raises(ParameterError, match="no 'school' in the pois layer .*'fire_station', 'hospital'"):
        run_access(twin, "school", within="10min", save=False)
    with pytest.raises(ParameterError, match="give within= .* no response standard here for 'school'"):
        run_access(twin, "school", save=False)
    with pytest.raises(ParameterError, match="within must be a positive duration|finite time > 0"):
        run_access(twin, "hospital", within="0min", save=False)
    with pytest.raises(ParameterError, match="flood_time needs flooded_by"):
        run_access(twin, flood_time="30min", save=False)
    with pytest.raises(ParameterError, match="no flood run 'nope'"):
        run_access(twin, flooded_by="nope", save=False)
    with pytest.raises(Exception, match="no scenario 'ghost'"):
        run_access(twin, scenario="ghost", save=False)
    twin.store.delete_layer("pois")
    with pytest.raises(LayerNotFoundError, match="no 'pois' layer"):
        run_access(twin, save=False)


def test_cli_and_twin_access(twin):
    import json

    from typer.testing import CliRunner

    from twin_core.cli import get_app

    r = twin.access("fire_station", within="15s", run="py1")
    assert r.summary["within"] == 3 and len(twin.load_result("base", "py1", "access_buildings")) == 16
    with pytest.raises(Exception, match="Twin.access.. got an unexpected keyword|no keyword|did you mean"):
        twin.access(flodded_by="x")
    path = twin.store.uri
    twin.close()
    res = CliRunner().invoke(get_app(), ["analysis", "access", str(path), "--within", "15s", "--json", "--run", "c1",
                                          "--speed-limits"])  # the times above are at the limits
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["within"] == 3 and s["stations"] == 1 and s["unreachable"] == 0
    res = CliRunner().invoke(get_app(), ["analysis", "access", str(path), "--from", "hospital", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["within_s"] == 600  # ambulances: 5 km at 30 km/h


def test_speeds_from_a_traffic_run(twin):
    # rush hour on the street out of the station towards n10: its mean speed 18 km/h (5 m/s) doubles its 10 s;
    # a mean speed above the limit, or none, leaves the limit
    from twin_core.adapters.access import run_access

    twin.save_result("base", "peak", "link_loads", pd.DataFrame(
        {"link_id": ["n00-n10", "n00-n10:r", "n10-n20", "n01-n11"], "mean_speed_kmh": [18.0, 18.0, 90.0, np.nan]}))
    slow = run_access(twin, speeds_from="peak", save=False).result.set_index("building_id")["time_s"]
    assert slow["B10"] == pytest.approx(min(6 / W + 18.0 + 1.0, _from_f1(1, 0) + 10.0), abs=1e-6)
    # B01: back along the slow street to n00 now takes 6 m + 2 s; the side street n00-n01, 11.7 m from the
    # station (under the 30 m reach), is quicker: sqrt(10^2 + 6^2) m at 20 km/h, then a block and 1 s
    assert slow["B01"] == pytest.approx(np.hypot(10, 6) / W + 10.0 + 1.0, abs=1e-6)
    with pytest.raises(ParameterError, match="no traffic simulate run 'nope'"):
        run_access(twin, speeds_from="nope", save=False)


def test_a_bare_number_of_seconds_warns_and_prints_as_seconds(twin):
    """`--within 10` (meant: minutes) ran 10 s without a word and printed "within 0.166667 min"."""
    from typer.testing import CliRunner

    from twin_core.cli import get_app
    from twin_core.errors import TwinWarning

    from twin_core.adapters.access import run_access

    with pytest.warns(TwinWarning, match=r"within='10' is 10 s: a bare number is seconds; .* '10min'"):
        run_access(twin, "fire_station", within="10", save=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)  # a unit given: no warning
        run_access(twin, "fire_station", within="15s", save=False)
    path = twin.store.uri
    twin.close()
    res = CliRunner().invoke(get_app(), ["analysis", "access", str(path), "--within", "90s", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "within 1.5 min of a fire_station" in res.stdout
    res = CliRunner().invoke(get_app(), ["analysis", "access", str(path), "--within", "15s", "--quiet"])
    assert "within 15 s of a fire_station" in res.stdout and "0.25 min" not in res.stdout


def test_drive_speed(twin, monkeypatch):
    # by default the vehicles drive at 30 km/h (the speed both response standards assume), the 36 km/h roads
    # too: every street stretch takes 36/30 as long; roads slower than 30 km/h keep their limit
    from twin_core.adapters import access
    from twin_core.adapters.access import run_access

    monkeypatch.setattr(access, "ACCESS_DRIVE_KMH", 30.0)
    run = run_access(twin, save=False)
    t = run.result.set_index("building_id")["time_s"]
    assert t["B21"] == pytest.approx(6 / W + (_from_f1(2, 1) - 6 / W) * 36 / 30, abs=1e-6)
    assert run.summary["drive_kmh"] == 30.0 and run.summary["speeds"].startswith("30 km/h")
    limits = run_access(twin, drive_kmh=None, save=False)
    assert limits.result.set_index("building_id")["time_s"]["B21"] == pytest.approx(_from_f1(2, 1), abs=1e-6)
    assert limits.summary["speeds"] == "speed limit (free flow)"
    assert run_access(twin, drive_kmh=50.0, save=False).result.set_index("building_id")["time_s"]["B21"] == \
        pytest.approx(_from_f1(2, 1), abs=1e-6)  # faster than the 36 km/h limit: the limit
    for bad in (0, -30, float("nan"), "30", True):
        with pytest.raises(ParameterError, match="drive_kmh"):
            run_access(twin, drive_kmh=bad, save=False)
    # the CLI: 30 km/h unless --drive-kmh or --speed-limits, and says which
    import json

    from typer.testing import CliRunner

    from twin_core.cli import get_app

    path = twin.store.uri
    twin.close()
    out = CliRunner().invoke(get_app(), ["analysis", "access", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["drive_kmh"] == 30.0
    out = CliRunner().invoke(get_app(), ["analysis", "access", str(path), "--speed-limits"])
    assert out.exit_code == 0 and "roads driven at speed limit (free flow)" in out.output, out.output
