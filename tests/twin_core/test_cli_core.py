"""The `twin` command: store, import/export and scenario subcommands."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.twin import Twin

runner = CliRunner()


@pytest.fixture
def city(tmp_path, two_roads):
    path = str(tmp_path / "c.gpkg")
    with Twin.create(path, name="cli-test") as t:
        links = two_roads
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


def test_layers_leave_out_result_tables_unless_asked(city, two_roads):
    # a crowd run's exits table (res_<hash>) was listed among the city's layers under its opaque name
    with Twin.open(city) as t:
        t.store.write_layer("res_a3fb34e53509f01f", two_roads)
    res = run("layers", city)
    assert res.exit_code == 0, res.output
    assert "res_" not in res.output.split("(")[0] and "road_links" in res.output
    assert "1 table of stored results left out: --results lists them" in res.output
    assert [i["name"] for i in json.loads(run("layers", city, "--json").stdout)] == ["road_links"]
    listed = run("layers", city, "--results")
    assert "res_a3fb34e53509f01f" in listed.output and "left out" not in listed.output


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
    # the closure taken back: the scenario is as before it, and a second undo says there is nothing left
    res = run("scenario", "undo", city, "works", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"scenario": "works", "undone": {"op": "modify", "targets": "road_links", "rows": 1},
                                      "edits": 0}
    assert run("scenario", "diff", city, "base", "works", "--json").stdout.strip() == "[]"
    res = run("scenario", "undo", city, "works")
    assert res.exit_code != 0 and "no edits of its own" in str(res.exception)


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


def test_export_cityjson_and_tif_to_a_new_folder_in_the_asked_crs(small_city_gpkg, tmp_path):
    # CityJSON into a folder that did not exist was a raw FileNotFoundError, and --crs was silently
    # ignored for CityJSON and GeoTIFF (the files came out in the twin CRS)
    from cim.io.cityjson import validate_cityjson

    out = tmp_path / "new" / "deeper" / "b.city.json"
    res = run("export", small_city_gpkg, "buildings", str(out), "--crs", "EPSG:32648")
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["metadata"]["referenceSystem"].endswith("/EPSG/0/32648") and validate_cityjson(doc) == []
    res = run("export", small_city_gpkg, "buildings", str(tmp_path / "b.city.json"), "--crs", "EPSG:4326")
    assert res.exit_code != 0 and "projected CRS" in str(res.exception)
    import rasterio

    tif = tmp_path / "new2" / "dem.tif"
    assert run("export", small_city_gpkg, "dem", str(tif), "--crs", "EPSG:4326").exit_code == 0
    with rasterio.open(tif) as ds:
        assert ds.crs.to_epsg() == 4326 and 103 < ds.bounds.left < 105


def test_export_onto_the_store_itself_is_refused(city, tmp_path):
    # GDAL rewrote the store's own table: with --crs EPSG:4326 the layer held degrees labelled EPSG:4544
    from twin_core.errors import TwinError

    res = run("export", city, "road_links", city, "--crs", "EPSG:4326")
    assert isinstance(res.exception, TwinError) and "own store" in str(res.exception)
    with Twin.open(city) as t:
        assert t.layer("road_links").geometry.iloc[0].coords[0] == (410000.0, 3395000.0)


def test_export_to_a_folder_or_an_unwritable_place_is_one_clear_error(city, tmp_path):
    from twin_core.errors import TwinError

    (tmp_path / "dir.gpkg").mkdir()
    res = run("export", city, "road_links", str(tmp_path / "dir.gpkg"))
    assert isinstance(res.exception, TwinError) and "is a folder" in str(res.exception)  # was IsADirectoryError
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run("export", city, "road_links", str(blocker / "sub" / "l.geojson"))
    assert isinstance(res.exception, TwinError) and "cannot write" in str(res.exception)  # was a raw OSError


@pytest.mark.parametrize("bbox,match", [
    ("nan,3394990,410060,3395010", "finite"),  # was a raw ValueError (raise-ground) deep in cim.raster
    ("410060,3394990,410050,3395010", "inverted"),  # close-roads silently swapped it, raise-ground blamed the raster
    ("410050,3394990,410050,3395010", "empty"),
])
def test_scenario_bad_bbox(city, bbox, match):
    from twin_core.errors import ScenarioError

    res = run("scenario", "close-roads", city, "works", "--bbox", bbox)
    assert isinstance(res.exception, ScenarioError) and match in str(res.exception), res.output
    with Twin.open(city) as t:
        assert t.scenarios.names() == []


def test_failed_scenario_edit_leaves_no_new_scenario(city):
    # "created if missing": the scenario was created, then the edit failed, and an empty scenario stayed
    from twin_core.errors import ScenarioError

    res = run("scenario", "close-roads", city, "works", "--bbox", "0,0,1,1")
    assert isinstance(res.exception, ScenarioError) and "crosses no link" in str(res.exception)
    res = run("scenario", "set", city, "storm", "rain", "NaN")
    assert isinstance(res.exception, ScenarioError)
    with Twin.open(city) as t:
        assert t.scenarios.names() == []
    # an existing scenario keeps its earlier edits when a later one fails
    assert run("scenario", "set", city, "storm", "rain", "50").exit_code == 0
    assert isinstance(run("scenario", "close-roads", city, "storm", "--bbox", "0,0,1,1").exception, ScenarioError)
    with Twin.open(city) as t:
        assert t.scenarios.names() == ["storm"] and t.scenario("storm").params() == {"rain": 50}


def test_scenario_delete_base_is_refused(city):
    # with no scenarios it printed "deleted scenario base"; with some it said base "is the parent of" them
    from twin_core.errors import ScenarioError

    res = run("scenario", "delete", city, "base")
    assert isinstance(res.exception, ScenarioError) and "cannot be deleted" in str(res.exception)
    assert run("scenario", "create", city, "a").exit_code == 0
    res = run("scenario", "delete", city, "base")
    assert isinstance(res.exception, ScenarioError) and "cannot be deleted" in str(res.exception)


def test_build_force_checks_the_target_before_removing_it(tmp_path, monkeypatch):
    # --force removed the target first: a file that is no store (notes.txt) was deleted before the
    # "cannot tell which store" error, a folder gave a raw IsADirectoryError, and a failed rebuild
    # left no city at all
    import sample_city
    from twin_core.errors import StoreConnectionError, TwinError

    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    res = run("build", str(notes), "--force", "--quiet")
    assert isinstance(res.exception, StoreConnectionError) and notes.read_text() == "precious"
    (tmp_path / "dir.gpkg").mkdir()
    res = run("build", str(tmp_path / "dir.gpkg"), "--force", "--quiet")
    assert isinstance(res.exception, TwinError) and "is a directory" in str(res.exception)

    old = tmp_path / "old.gpkg"
    with Twin.create(str(old), name="keep me"):
        pass

    def boom(target, *args, **kwargs):
        with Twin.create(str(target), name="half built"):
            pass
        raise TwinError("simulated failure half way")

    monkeypatch.setattr(sample_city, "build_into", boom)
    res = run("build", str(old), "--force", "--quiet")
    assert "simulated failure" in str(res.exception)
    with Twin.open(str(old)) as t:
        assert t.name == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.gpkg", "notes.txt", "old.gpkg"]
    # a first build that fails leaves no half-built file (which would then need --force)
    res = run("build", str(tmp_path / "new.gpkg"), "--quiet")
    assert "simulated failure" in str(res.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.gpkg", "notes.txt", "old.gpkg"]


def test_info_on_a_geopackage_that_holds_no_twin_shows_its_layers_and_how_to_make_one(tmp_path):
    # a GeoPackage written by geopandas printed "(None, ...)" where the CRS goes, then a generic "holds no twin"
    from twin_core.errors import StoreConnectionError

    plain = tmp_path / "plain.gpkg"
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=[shapely.Point(104.06, 30.66), shapely.Point(104.07, 30.67)],
                     crs="EPSG:4326").to_file(plain, layer="shelters")
    res = run("info", str(plain))
    assert isinstance(res.exception, StoreConnectionError), res.output
    msg = str(res.exception)
    assert "holds no twin" in msg and "shelters (POINT, 2 features, EPSG:4326)" in msg and "None" not in msg
    assert "`twin build" in msg and f"`twin import CITY.gpkg {plain} --layer shelters --class" in msg
    # and the user's file is left as it was: opening it added the twin's empty tables to it
    import pyogrio
    import sqlite3

    with sqlite3.connect(plain) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not {t for t in tables if t.startswith("twin_")}, tables
    assert [n for n, _ in pyogrio.list_layers(plain)] == ["shelters"]


def test_open_a_twin_store_without_crs_names_what_to_check(tmp_path):
    # the advice named the PostGIS ?schema= syntax for a GeoPackage file too
    from cim.store import open_store
    from twin_core.errors import StoreConnectionError

    path = str(tmp_path / "nocrs.gpkg")
    with Twin.create(path, name="x"):
        pass
    store = open_store(path)
    store.delete_meta(["crs"])
    store.close()
    with pytest.raises(StoreConnectionError, match="no CRS recorded") as e:
        Twin.open(path)
    assert "check the path" in str(e.value) and "schema" not in str(e.value)


def _main(*args):
    """Run the `twin` console entry point in process: (exit code, stderr text)."""
    import contextlib
    import io

    from twin_core.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as ex:
        main(list(args))
    return ex.value.code, err.getvalue()


def test_a_twin_that_cannot_be_written_is_one_clear_error(city, monkeypatch):
    # a read-only twin file gave a sqlite3.OperationalError traceback from every command that writes
    import hashlib
    import sqlite3

    from cim.store.gpkg import GeoPackageStore

    def refuse(self, values):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(GeoPackageStore, "set_meta", refuse)
    before = hashlib.sha256(open(city, "rb").read()).hexdigest()
    code, err = _main("scenario", "create", city, "works")
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: cannot write the twin: the file (or its folder) is read-only") and "chmod" in err
    assert hashlib.sha256(open(city, "rb").read()).hexdigest() == before


def test_output_paths_that_cannot_be_written_are_one_clear_error(city, tmp_path):
    # `twin build FILE/c.gpkg`, `twin bim floorplan ... --out FILE/x.json` and `twin check-bim --html FILE/r.html`
    # ended in a FileExistsError / NotADirectoryError traceback; check-bim --save had recorded the check first
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _main("build", str(blocker / "c.gpkg"))
    assert code == 2 and "Traceback" not in err and "is a file, not a folder" in err
    code, err = _main("check-bim", str(tmp_path / "m.ifc"), "--rules", str(tmp_path / "r.yaml"), "--store", city,
                      "--save", "--html", str(blocker / "r.html"))
    assert code == 2 and "Traceback" not in err and "--html" in err and "is a file" in err
    with Twin.open(city) as t:
        assert "bim_checks" not in t.store.list_tables()
    code, err = _main("check-bim", str(tmp_path / "m.ifc"), "--rules", str(tmp_path / "r.yaml"),
                      "--out", str(tmp_path / "no" / "r.json"))
    assert code == 2 and "--out" in err and "does not exist" in err


def test_an_os_error_on_a_path_is_one_clear_error(monkeypatch, tmp_path):
    # the safety net under every command: an OSError about a path the user gave is a line, not a traceback
    def fail(cls, *a, **k):
        raise NotADirectoryError(20, "Not a directory", str(tmp_path / "file" / "x.json"))

    monkeypatch.setattr(Twin, "open", classmethod(fail))
    code, err = _main("info", str(tmp_path / "c.gpkg"))
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: cannot use ") and "x.json: Not a directory" in err


def test_scenario_set_warns_of_a_parameter_no_engine_reads(city):
    import warnings

    from twin_core.errors import TwinWarning

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = run("scenario", "set", city, "exits", "crowd_closed_exit", '["a:0"]')
    assert res.exit_code == 0, res.output  # recorded all the same
    msgs = [str(x.message) for x in w if issubclass(x.category, TwinWarning)]
    assert any("no engine reads scenario parameter 'crowd_closed_exit'" in m and "did you mean 'crowd_closed_exits'"
               in m for m in msgs), msgs
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        assert run("scenario", "set", city, "exits", "crowd_closed_exits", '["a:0"]').exit_code == 0


def test_check_bim_prints_ratios_without_unit_one_and_says_why_a_rule_fails(tmp_path):
    # "max_far: 1.333 (limit 1.2 1)": the unit of a ratio is "1"; and a failed rule gave no reason
    from bim_import.samples import BoxBuilding, write_box_building

    parcel = [[499980.0, 3389980.0], [500040.0, 3389980.0], [500040.0, 3390040.0], [499980.0, 3390040.0]]
    model = write_box_building(BoxBuilding(40, 30, 4, 3.0, 499990.0, 3389990.0, green=(0, -8, 40, -2)),
                               tmp_path / "dense.ifc")
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"rules": {"max_height_m": 24, "max_far": 1.2, "min_green_ratio": 0.9},
                                 "parcel": {"polygon": parcel}}))
    res = run("check-bim", str(model), "--rules", str(rules))
    assert res.exit_code == 1, res.output
    far = next(ln for ln in res.stdout.splitlines() if "max_far" in ln)
    assert "(limit 1.2) " in far and "1.2 1)" not in far, far
    assert "(limit 24.0 m)" in res.stdout
    lines = res.stdout.splitlines()
    green = next(i for i, ln in enumerate(lines) if "FAIL min_green_ratio" in ln)
    assert lines[green + 1].startswith("       ") and lines[green + 1].strip(), lines  # the rule's note


def test_import_that_replaces_a_layer_says_how_many_features_it_replaced(city, tmp_path):
    # `twin import city.gpkg shelters.geojson --class pois` (the README's line) put the shelters in place of every
    # POI the twin had, and said only "imported 1 features into pois"
    src = tmp_path / "s.geojson"
    gpd.GeoDataFrame({"ID": ["s1"], "KIND": ["shelter"]}, geometry=[shapely.Point(104.06, 30.66)],
                     crs="EPSG:4326").to_file(src)
    args = ["import", city, str(src), "--class", "pois", "--map", "ID=poi_id", "--map", "KIND=kind"]
    first = run(*args)
    assert first.exit_code == 0 and "replacing" not in first.stdout, first.output  # a new layer: nothing replaced
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert "replacing the 1 it had (--append adds to them instead)" in again.stdout


def test_scenario_delete_says_its_results_go_with_it(city):
    with Twin.open(city) as t:
        t.scenarios.create("w")
        t.save_result("w", "r1", "summary", {"a": 1})
        t.save_result("w", "r1", "t", pd.DataFrame({"a": [1]}))
    res = run("scenario", "delete", city, "w", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"deleted": "w", "results_deleted": 2}
    with Twin.open(city) as t:
        assert t.results().empty
    with Twin.open(city) as t:
        t.scenarios.create("v")
    res = run("scenario", "delete", city, "v")
    assert res.stdout.strip() == "deleted scenario v"


def test_export_of_the_bim_checks_register_says_how(city):
    # README names the bim_checks table; `twin export` said only "no layer or raster 'bim_checks'" (a user review)
    with Twin.open(city) as t:
        t.store.write_table("bim_checks", pd.DataFrame({"check_id": ["c1"], "passed": [True]}))
    from twin_core.errors import LayerNotFoundError

    res = run("export", city, "bim_checks", "checks.csv")
    assert isinstance(res.exception, LayerNotFoundError)
    msg = str(res.exception)
    assert "register of BIM compliance checks" in msg and f"twin bim checks {city} --json" in msg
