"""Point inflows through the twin: ``twin.flood(inflows=...)`` and ``twin flood --inflow``. The river of the
small sample city fed at its upstream end gains what the inflow brought (the mass balance), a hydrograph
CSV reads in seconds or minutes, bad specs and places are refused saying what to do, and the run's summary
and label (``twin runs``) say it was fed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from simulation.flood import Inflow
from twin_core.adapters.flood import inflow_volume, parse_inflows, read_hydrograph
from twin_core.cli import get_app
from twin_core.errors import ParameterError
from twin_core.twin import Twin

#: the upstream end of the sample river (the 'water' layer enters at the west edge, its bed falls to the
#: south-east): inside the DEM, on an open cell of the river (row 29, col 6 of the 5 m grid)
X, Y = 409250.0, 3391330.0
Q = 40.0  # m3/s
T = 300.0  # s: a 5-minute storm, simulated to its end
#: the engine's own mass balance tolerance (relative error, as run_flood's doctest and the river tests hold it)
BALANCE_RTOL = 1e-9


@pytest.fixture(scope="module")
def city(tmp_path_factory, small_city):
    import sample_city

    path = str(tmp_path_factory.mktemp("inflow") / "c.gpkg")
    sample_city.build_into(path, city=small_city)
    return path


@pytest.fixture(scope="module")
def runs(city):
    """The same short storm with closed edges (nothing leaves, no losses): without and with the river fed
    with a constant Q at its upstream end (both saved), and with a triangular pulse given as an engine Inflow
    at row/col (not saved)."""
    with Twin.open(city) as twin:
        plain = twin.flood(storm="10y", duration="5min", boundary="closed", run="plain")
        fed = twin.flood(storm="10y", duration="5min", boundary="closed", run="fed",
                         inflows=[{"name": "jin", "x": X, "y": Y, "q": Q}])
        pulse = twin.flood(storm="10y", duration="5min", boundary="closed", save=False,
                           inflows=[Inflow([0.0, 150.0, 300.0], [0.0, 60.0, 0.0], row=29, col=6)])
        runs = twin.runs()
        stored = twin.load_result("base", "fed", "summary")
        table = twin.load_result("base", "fed", "mass_balance")
    return plain, fed, pulse, runs, stored, table


def test_inflow_raises_the_water_by_q_times_the_duration(runs):
    plain, fed, pulse, *_ = runs
    s0, s1 = plain.summary, fed.summary
    # the engine counts what it put in: Q * T (float64 steps that add up to T: rounding only)
    assert s1["inflow_m3"] == pytest.approx(Q * T, rel=1e-12)
    assert s0["inflow_m3"] == 0.0 and s0["inflows"] == []
    # closed edges, no drainage or infiltration, the same storm: the water on the grid at the end is higher by
    # exactly the inflow's volume, within the engine's balance tolerance (1e-9 of the storage)
    assert s1["rain_m3"] == pytest.approx(s0["rain_m3"], rel=1e-12) and s1["outflow_m3"] == s0["outflow_m3"] == 0.0
    assert abs((s1["storage_m3"] - s0["storage_m3"]) - Q * T) <= BALANCE_RTOL * s1["storage_m3"]
    assert abs(s1["mass_balance_relative_error"]) < BALANCE_RTOL
    # it went into the river: the point is in the water layer, and the river rose more than without it
    (rec,) = s1["inflows"]
    assert rec["in_water"] and (rec["row"], rec["col"]) == (29, 6) and rec["source"] == "constant"
    assert rec["volume_m3"] == pytest.approx(s1["inflow_m3"], rel=1e-12)
    assert s1["water_bodies"]["max_rise_m"] > s0["water_bodies"]["max_rise_m"]
    # a hydrograph as an engine Inflow at row/col: linear between samples, the triangle's area
    assert pulse.summary["inflow_m3"] == pytest.approx(0.5 * 60.0 * T, rel=1e-12)
    assert pulse.summary["inflows"][0]["name"] == "inflow1"
    assert (pulse.summary["inflows"][0]["x"], pulse.summary["inflows"][0]["y"]) == (409252.5, 3391327.5)


def test_the_run_is_labelled_and_stored_as_fed(runs):
    plain, fed, _, listing, stored, table = runs
    about = listing.set_index("run")["about"]
    assert "inflow 'jin' 40 m3/s" in about["fed"] and "inflow" not in about["plain"]
    assert stored["inflow_m3"] == pytest.approx(Q * T, rel=1e-12)
    assert stored["inflows"][0]["name"] == "jin" and stored["inflows"][0]["flows_m3_s"] == [Q]
    row = table.set_index("quantity").loc["inflow"]
    assert row["value"] == pytest.approx(Q * T, rel=1e-12) and "inflow" in row["note"]


def _csv(path, text):
    path.write_text(text)
    return str(path)


def test_a_hydrograph_csv_in_seconds_or_minutes(tmp_path):
    secs = _csv(tmp_path / "s.csv", "time_s,flow_m3_s\n0,10\n600,70\n1800,20\n")
    mins = _csv(tmp_path / "m.csv", "# upstream gauge, 50-year flood\nTime_min, flow_m3_s, note\n0,10,a\n\n"
                                    "10,70,peak\n30,20,b\n")
    t1, q1 = read_hydrograph(secs)
    t2, q2 = read_hydrograph(mins)
    np.testing.assert_array_equal(t1, [0.0, 600.0, 1800.0])
    np.testing.assert_array_equal(t2, t1)
    np.testing.assert_array_equal(q1, [10.0, 70.0, 20.0])
    np.testing.assert_array_equal(q2, q1)
    (inf, src), = parse_inflows({"x": X, "y": Y, "hydrograph": mins, "name": "up"})
    assert inf.name == "up" and src == str(tmp_path / "m.csv")
    # the volume as the engine applies it: trapezoids, the last flow held after the last row
    assert inflow_volume(t1, q1, 2400.0) == pytest.approx(0.5 * 80 * 600 + 0.5 * 90 * 1200 + 20 * 600)


@pytest.mark.parametrize("spec, match", [
    ("409250,3391330", "cannot read it; write \\[NAME@\\]X,Y=Q"),
    ("jin@409250=5", "cannot read it"),
    ("@409250,3391330=5", "cannot read it"),
    ("a,b=5", "'a,b' is not two numbers"),
    ("409250,3391330=-5", "must be a finite number >= 0"),
    ("409250,3391330=50m3/s", "does not exist.*bare number of m3/s \\(e.g. =50\\)"),
    ("409250,3391330=missing.csv", "'missing.csv' does not exist; give the path of a CSV"),
])
def test_bad_specs_are_refused(spec, match):
    with pytest.raises(ParameterError, match=match):
        parse_inflows([spec], what="--inflow")


@pytest.mark.parametrize("text, match", [
    ("t,flow_m3_s\n0,1\n", "needs a time column \\(time_s, time_min or time_h\\)"),
    ("time_s,q\n0,1\n", "needs the flow column flow_m3_s"),
    ("time_s,time_min,flow_m3_s\n0,0,1\n", "one time column"),
    ("time_s,flow_m3_s\n0,1\n60,lots\n", "line 3: flow_m3_s 'lots' is not a number"),
    ("time_s,flow_m3_s\n0,1\n60\n", "line 3: flow_m3_s is empty"),
    ("time_min,flow_m3_s\n0,1\n10,2\n10,3\n", "line 4: time_min 10 is not after the row before's"),
    ("time_s,flow_m3_s\n0,1\n60,-2\n", "line 3: flow_m3_s -2 is negative"),
    ("time_s,flow_m3_s\n-60,1\n", "before the start of the run"),
    ("time_s,flow_m3_s\n", "no rows"),
    ("", "is empty"),
])
def test_bad_hydrograph_files_are_refused(tmp_path, text, match):
    path = _csv(tmp_path / "h.csv", text)
    with pytest.raises(ParameterError, match=match):
        parse_inflows([f"up@{X},{Y}={path}"], what="--inflow")


@pytest.mark.parametrize("value, match", [
    ({"x": X, "y": Y}, "needs its flow as exactly one of: q"),
    ({"x": X, "q": 5}, "needs x and y"),
    ({"x": X, "y": Y, "q": 5, "flow": 1}, "keys \\['flow'\\]"),
    ({"x": X, "y": Y, "q": -1}, "q must be a finite flow >= 0"),
    ({"x": X, "y": Y, "times": [0, 60], "flows": [5, -1]}, "flows must be >= 0"),
    ({"x": X, "y": Y, "times": [0, 60, 30], "flows": [5, 1, 1]}, "times must increase"),
    ([{"x": X, "y": Y, "q": 1, "name": "a"}, f"a@{X},{Y}=2"], "the names \\['a'\\]"),
    (42, "must be a list of inflows"),
])
def test_bad_python_inflows_are_refused(value, match):
    with pytest.raises(ParameterError, match=match):
        parse_inflows(value)


def test_a_place_off_the_dem_or_on_a_building_is_refused(city, runs):
    fed = runs[1]
    blocked = fed.setup.blocked & np.isfinite(fed.setup.ground)  # a building, not nodata
    r, c = np.argwhere(blocked)[0]
    tr = fed.setup.transform
    bx, by = tr.c + tr.a * (c + 0.5), tr.f + tr.e * (r + 0.5)
    with Twin.open(city) as twin:
        before = set(twin.runs()["run"])
        with pytest.raises(ParameterError, match="is off the DEM, which covers x 409220 to 410220, y 3390475 to "
                                                 "3391475 in the twin's CRS EPSG:4544"):
            twin.flood(duration="5min", save=False, inflows=[{"x": 400000, "y": Y, "q": 5}])
        with pytest.raises(ParameterError, match="look like longitude/latitude.*give it in metres"):
            twin.flood(duration="5min", save=False, inflows=["104.06,30.64=5"])
        with pytest.raises(ParameterError, match="falls on a building.*move it onto an open cell, e.g. the "
                                                 "nearest one, centred at"):
            twin.flood(duration="5min", save=False, inflows=[{"name": "culvert", "x": bx, "y": by, "q": 5}])
        assert set(twin.runs()["run"]) == before  # nothing saved by the refused runs


def test_cli_inflow_with_a_hydrograph(city, tmp_path):
    csv = _csv(tmp_path / "jin.csv", "time_min,flow_m3_s\n0,0\n5,30\n")
    runner = CliRunner()
    r = runner.invoke(get_app(), ["flood", city, "--storm", "10y", "--duration", "5min", "--boundary", "closed",
                                  "--inflow", f"jin@{X:.0f},{Y:.0f}={csv}", "--run", "cli-fed", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["inflow_m3"] == pytest.approx(0.5 * 30 * T, rel=1e-12)  # the ramp from 0 to 30 m3/s over 5 min
    assert s["inflows"][0]["source"] == csv and not s["inflows"][0]["constant"]
    r = runner.invoke(get_app(), ["runs", city])
    assert r.exit_code == 0 and "inflow 'jin' peak 30 m3/s" in r.output
    r = runner.invoke(get_app(), ["flood", city, "--duration", "5min", "--inflow", f"{X},{Y}", "--quiet"])
    assert r.exit_code != 0 and isinstance(r.exception, ParameterError) and "--inflow" in str(r.exception)


@pytest.mark.filterwarnings("ignore:the run stops at 300 s")  # cut short on purpose
def test_the_readme_inflow_commands_run_on_the_sample_city(small_city_gpkg, tmp_path, monkeypatch):
    """The README's --inflow lines, its hydrograph file written from its csv block, on the sample city (cut
    to 5 minutes: the place and the file are what is checked here)."""
    import re
    import shlex
    import shutil
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (csv,) = re.findall(r"```csv\n(.*?)```", text, flags=re.S)
    lines = [shlex.split(ln) for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
             for ln in block.splitlines() if ln.startswith("twin flood") and "--inflow" in ln]
    assert len(lines) == 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jin_50y.csv").write_text(csv)
    shutil.copyfile(small_city_gpkg, tmp_path / "city.gpkg")
    for argv in lines:
        res = CliRunner().invoke(get_app(), argv[1:] + ["--until", "5min", "--json"])
        assert res.exit_code == 0, (argv, res.output, res.exception)
        s = json.loads(res.stdout)
        assert s["inflows"][0]["name"] == "jin" and s["inflows"][0]["in_water"] and s["inflow_m3"] > 0


def test_a_river_inflow_enters_across_the_channel(city):
    # A point in the river spreads its flow over the water within the channel's half-width (a flow line
    # across the channel, as HEC-RAS's flow hydrograph boundary), not onto one cell: the same 80 m3/s given as
    # an engine Inflow (a point, entered at its one cell as given) mounds up there. Measured on the small
    # sample city (2026-12-05): highest rise 2.18 m at one cell, 1.19 m spread, 1.14 m deep a few widths
    # downstream either way.
    q_in = 80.0
    with Twin.open(city) as twin:
        # the river's entry edge left free in both (an engine Inflow never closes it), the spreading alone differs
        spread = twin.flood(storm="2y", duration="10min", save=False, inflow_edge="free",
                            inflows=[{"name": "jin", "x": X, "y": Y, "q": q_in}])
        point = twin.flood(storm="2y", duration="10min", save=False, inflow_edge="free",
                           inflows=[Inflow([0.0], [q_in], x=X, y=Y, name="jin")])
    (rec,) = spread.summary["inflows"]
    (one,) = point.summary["inflows"]
    assert rec["cells"] > 20 and 5.0 <= rec["spread_m"] <= 25.0  # across the 40 m river, not one cell
    assert one["cells"] == 1 and one["source"] == "Inflow"
    assert spread.summary["inflow_m3"] == pytest.approx(point.summary["inflow_m3"], rel=1e-12)
    r, c = rec["row"], rec["col"]
    d_spread, d_point = spread.result.max_depth[r, c], point.result.max_depth[r, c]
    assert d_point > d_spread + 0.5, (d_point, d_spread)  # the one-cell mound
    assert spread.summary["water_bodies"]["max_rise_m"] < point.summary["water_bodies"]["max_rise_m"] - 0.5


def test_compare_names_the_inflow_as_a_difference(city, runs):
    # `twin compare` of a storm alone and the same storm with the river fed: the inflow is a run parameter
    with Twin.open(city) as twin:
        cmp = twin.compare("plain", "fed")
    assert "inflows" in cmp.differences, cmp.differences
    a, b = cmp.differences["inflows"]
    assert a == [] and b[0]["name"] == "jin"


def test_the_rivers_entry_edge_is_closed_at_its_inflow(city):
    # With free edges the river fed 30 m from the west edge flowed back out over it (a user review, 2026-12-05:
    # over 60 % of 80 m3/s left upstream, the flood downstream understated). By default the water body's cells
    # on the edge nearest the inflow are closed: it enters there and goes down the river.
    kw = dict(storm="2y", duration="10min", save=False, inflows=[{"name": "jin", "x": X, "y": Y, "q": 80.0}])
    with Twin.open(city) as twin:
        closed = twin.flood(**kw)
        free = twin.flood(inflow_edge="free", **kw)
        with pytest.raises(ParameterError, match="inflow_edge must be 'closed'.*or 'free', got 'open'"):
            twin.flood(inflow_edge="open", **kw)
    (rec,) = closed.summary["inflows"]
    assert rec["closed_edge"] == "west" and 5 <= rec["closed_cells"] <= 12  # the 40 m river's cells, 5 m each
    assert free.summary["inflows"][0]["closed_edge"] is None
    vol = closed.summary["inflow_m3"]
    assert vol == pytest.approx(free.summary["inflow_m3"], rel=1e-12)
    # what the free edge let out upstream stays on the grid: the storage differs by that much (both balance)
    kept = closed.summary["storage_m3"] - free.summary["storage_m3"]
    let_out = free.summary["outflow_m3"] - closed.summary["outflow_m3"]
    assert kept == pytest.approx(let_out, rel=1e-6) and let_out > 0.3 * vol, (let_out, vol)


def test_compare_says_the_inflow_in_words(city, runs):
    # the note names each run's inflows by name and flow, not as a raw dict
    with Twin.open(city) as twin:
        lines = "\n".join(twin.compare("plain", "fed").lines())
    assert "the runs differ in inflows besides the scenario: none and 'jin' 40 m3/s" in lines, lines
    assert "{" not in lines.split("inflows besides the scenario:")[1].splitlines()[0]


def test_the_finer_messages(tmp_path, city):
    # a CSV separated by semicolons says so; a dict with two flows says which; a place is written in metres
    f = tmp_path / "semi.csv"
    f.write_text("time_min;flow_m3_s\n0;10\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="separated by ';' or tabs: separate them by commas"):
        read_hydrograph(str(f))
    with pytest.raises(ParameterError, match="exactly one of.*; it gives q and hydrograph"):
        parse_inflows([{"x": X, "y": Y, "q": 10.0, "hydrograph": str(f)}])
    with Twin.open(city) as twin, pytest.raises(ParameterError, match=r"at \(409000\.0, 3391330\.0\) is off the DEM"):
        twin.flood(storm="2y", duration="5min", save=False, inflows=[{"x": 409000.0, "y": Y, "q": 1.0}])


def test_compare_reports_the_river_and_its_depth_threshold(city, runs):
    # the land figures leave the water bodies out: the comparison also says how far the river rose in each run
    # and what the inflows brought, and the depth step behind "deeper" / "shallower"
    plain, fed, *_ = runs
    with Twin.open(city) as twin:
        cmp = twin.compare("plain", "fed")
    s = cmp.summary
    assert s["water_max_rise_m_a"] == pytest.approx(plain.summary["water_bodies"]["max_rise_m"])
    assert s["water_max_rise_m_b"] == pytest.approx(fed.summary["water_bodies"]["max_rise_m"])
    assert s["water_max_rise_m_change"] > 0
    assert s["inflow_m3_a"] == 0.0 and s["inflow_m3_b"] == pytest.approx(Q * T)
    assert s["same_depth_m"] == 0.05
    assert any(line.strip().startswith("water_max_rise_m:") for line in cmp.lines())


#: a point of the small sample city's DEM in degrees (Chengdu), as a web map gives it
LON, LAT = 104.06, 30.64


def _in_metres(lon: float, lat: float) -> str:
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:4544", always_xy=True).transform(lon, lat)
    return f"{x:.1f},{y:.1f} in EPSG:4544"


def test_a_place_in_degrees_lon_lat_is_refused_with_the_point_in_metres(city):
    with Twin.open(city) as twin, pytest.raises(ParameterError) as ei:
        twin.flood(duration="5min", save=False, inflows=[f"{LON},{LAT}=5"])
    msg = str(ei.value)
    assert "is off the DEM" in msg and f"({LON:g}, {LAT:g}) look like longitude/latitude" in msg, msg
    assert f"as lon/lat that is {_in_metres(LON, LAT)} (inside the DEM); give it in metres" in msg, msg


def test_a_place_in_degrees_lat_lon_swapped_is_refused_with_the_point_in_metres(city):
    # latitude first, as a web map's "copy coordinates" gives it: read as x = 30.64 m, y = 104.06 m
    with Twin.open(city) as twin, pytest.raises(ParameterError) as ei:
        twin.flood(duration="5min", save=False, inflows=[{"name": "jin", "x": LAT, "y": LON, "q": 5}])
    msg = str(ei.value)
    assert "inflow 'jin'" in msg and "is off the DEM" in msg, msg
    assert f"({LAT:g}, {LON:g}) look like latitude/longitude (latitude first)" in msg, msg
    assert f"as lat/lon that is {_in_metres(LON, LAT)} (inside the DEM); give it in metres" in msg, msg


def test_cli_inflow_in_lat_lon_says_where_that_is(city):
    r = CliRunner().invoke(get_app(), ["flood", city, "--duration", "5min", "--run", "latlon",
                                       "--inflow", f"jin@{LAT},{LON}=5"])
    assert isinstance(r.exception, ParameterError), r.output  # main() prints it as one "error: ..." line
    said = str(r.exception)
    assert "look like latitude/longitude" in said and f"as lat/lon that is {_in_metres(LON, LAT)}" in said, said
    with Twin.open(city) as twin:
        assert "latlon" not in set(twin.runs()["run"])  # refused before anything was saved


def test_numbers_that_are_plausibly_metres_get_no_degrees_hint():
    from twin_core.adapters.flood import _degrees_hint

    city = (409220.0, 3390475.0, 410220.0, 3391475.0)  # the small sample city's DEM
    assert "as lat/lon that is" in _degrees_hint(LAT, LON, "EPSG:4544", city)
    assert "as lon/lat that is" in _degrees_hint(LON, LAT, "EPSG:4544", city)
    # a local grid whose DEM starts at 0, 0: (-150, 30) and (30, -60) are metres just off it, not degrees
    local = (0.0, 0.0, 1000.0, 1000.0)
    assert _degrees_hint(-150.0, 30.0, "EPSG:4544", local) == ""
    assert _degrees_hint(30.0, -60.0, "EPSG:4544", local) == ""
    # degree-sized numbers that as degrees are farther from the city than as metres: no guess either way
    assert _degrees_hint(-5.0, 30.0, "EPSG:4544", city) == ""
    assert _degrees_hint(400000.0, 3391330.0, "EPSG:4544", city) == ""  # metres, off the DEM
    assert _degrees_hint(LAT, LON, None, city) == ""
