"""The `twin` command: store, import/export and scenario subcommands."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.twin import Twin

runner = CliRunner()


@pytest.fixture
def city(tmp_path):
    path = str(tmp_path / "c.gpkg")
    with Twin.create(path, name="cli-test") as t:
        links = gpd.GeoDataFrame(
            {"link_id": ["a", "b"], "from_node": ["1", "2"], "to_node": ["2", "3"], "lanes": [2, 3],
             "speed_limit_kmh": [50.0, 60.0], "capacity_vph": [1800.0, 2700.0]},
            geometry=[shapely.LineString([(410000, 3395000), (410100, 3395000)]),
                      shapely.LineString([(410100, 3395000), (410100, 3395200)])], crs="EPSG:4544")
        t.store.write_layer("road_links", links)
    return path


def run(*args):
    res = runner.invoke(get_app(), list(args))
    return res


def test_info_layers_json(city):
    res = run("info", city, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["crs"] == "EPSG:4544" and info["layers"] == {"road_links": 2}
    res = run("layers", city, "--json")
    assert json.loads(res.stdout)[0]["geometry_type"] == "LINESTRING"


def test_import_export_and_scenarios(city, tmp_path):
    src = tmp_path / "s.geojson"
    gpd.GeoDataFrame({"ID": ["s1"], "KIND": ["shelter"]}, geometry=[shapely.Point(104.06, 30.66)],
                     crs="EPSG:4326").to_file(src)
    res = run("import", city, str(src), "--class", "pois", "--map", "ID=poi_id", "--map", "KIND=kind", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"layer": "pois", "features": 1}
    out = tmp_path / "links.geojson"
    assert run("export", city, "road_links", str(out)).exit_code == 0
    assert len(gpd.read_file(out)) == 2
    assert run("scenario", "create", city, "works", "-d", "road works").exit_code == 0
    res = run("scenario", "close-roads", city, "works", "--bbox", "410050,3394990,410060,3395010", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["closed"] == ["a"]
    res = run("scenario", "diff", city, "base", "works", "--json")
    diff = json.loads(res.stdout)
    assert diff == [{"target": "road_links", "feature_id": "a", "change": "modified", "fields": "capacity_vph"}]
    res = run("scenario", "list", city, "--json")
    assert json.loads(res.stdout)[0]["edits"] == 1
    with Twin.open(city) as t:  # the base is unchanged
        assert t.layer("road_links")["capacity_vph"].tolist() == [1800.0, 2700.0]


def test_errors_are_one_clear_line(city, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "info", str(tmp_path / "missing.gpkg")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "import", city, str(tmp_path / "nope.shp"),
                           "--class", "pois"], capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "scenario", "close-roads", city, "x", "--bbox", "1,2"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "xmin,ymin,xmax,ymax" in proc.stderr


def test_warnings_are_one_plain_line(city, tmp_path):
    # the far-away-data warning came out in Python's format, with the source file, line number
    # and the code of the line that warned
    import subprocess
    import sys

    with Twin.open(city) as t:
        t.store.set_meta({"extent": [409000.0, 3390000.0, 411000.0, 3392000.0]})
    src = tmp_path / "cq.geojson"  # Chongqing, ~270 km away
    gpd.GeoDataFrame({"poi_id": ["cq"], "kind": ["shelter"]}, geometry=[shapely.Point(106.55, 29.56)],
                     crs="EPSG:4326").to_file(src)
    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "import", city, str(src), "--class", "pois"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("warning: the 1 feature(s) for 'pois' lie "), proc.stderr
    assert "TwinWarning" not in proc.stderr and ".py:" not in proc.stderr and "warnings.warn" not in proc.stderr


def test_twin_facade_runs_engines(small_city_gpkg):
    """The notebook API: one Twin, engines and the BIM import/check through it, results in the store."""
    with Twin.open(small_city_gpkg) as twin:
        fr = twin.flood(run="facade", storm="10y", duration="5min")
        assert fr.summary["mass_balance_relative_error"] < 1e-9
        assert "max_depth" in set(twin.results(run="facade")["name"])
        deck = twin.view()
        import pydeck

        assert isinstance(deck, pydeck.Deck)


def test_twin_facade_traffic(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        out = twin.traffic(run="facade-traffic", mode="assign")
        assert out.run == "facade-traffic"
        assert "link_flows" in set(twin.results(run="facade-traffic")["name"])
