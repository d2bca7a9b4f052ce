"""Twin.extent and Twin.summary count the rasters' bounds as twin info does (one definition); the CLI says when
a layer import drops features a scenario edit refers to, and when a scenario read finds such an edit."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

CRS = "EPSG:4544"
# a 10 x 10 grid of 10 m cells from (500000, 3390000) to (500100, 3390100)
DEM_T = (10.0, 0.0, 500000.0, 0.0, -10.0, 3390100.0)
DEM_BOUNDS = [500000.0, 3390000.0, 500100.0, 3390100.0]


def _cli(*args):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    return CliRunner().invoke(get_app(), [str(a) for a in args])


def _main(*args):
    """Run the `twin` console entry point in process, as a user types it: (exit code, stdout, stderr), the
    warnings printed as the command prints them ("warning: ...")."""
    import contextlib
    import io
    import warnings

    from twin_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.raises(SystemExit) as ex:
        warnings.simplefilter("always")
        main([str(a) for a in args])
    return ex.value.code, out.getvalue(), err.getvalue()


def _dem(store, transform=DEM_T, name="dem"):
    from cim.raster import Raster

    store.write_raster(name, Raster(np.full((10, 10), 500.0, dtype="float32"), transform, CRS, unit="m"))


def test_a_twin_holding_only_a_dem_has_the_dem_extent(store):
    from twin_core.twin import Twin

    _dem(store)
    twin = Twin(store)
    assert store.get_meta().get("extent") is None  # no metadata extent: it is worked out
    assert twin.extent == pytest.approx(DEM_BOUNDS)
    assert twin.summary()["extent"] == pytest.approx(DEM_BOUNDS)


def test_the_extent_is_the_union_of_layers_and_rasters_but_not_results(store):
    from cim.schema import conform
    from twin_core.twin import Twin

    pois = conform(gpd.GeoDataFrame({"poi_id": ["p"], "kind": ["shelter"]},
                                    geometry=[shapely.Point(500300.0, 3390050.0)], crs=CRS), "pois")
    store.write_layer("pois", pois)
    _dem(store)
    # a result raster far off is no part of the city's extent (as twin info left it out)
    _dem(store, (10.0, 0.0, 510000.0, 0.0, -10.0, 3400100.0), name="res_0123456789abcdef")
    twin = Twin(store)
    assert twin.extent == pytest.approx([500000.0, 3390000.0, 500300.0, 3390100.0])


def test_twin_info_shows_the_same_extent_as_python(tmp_path):
    from cim.store import open_store
    from twin_core.twin import Twin

    target = str(tmp_path / "dem.gpkg")
    with open_store(target, create=True, crs=CRS) as st:
        _dem(st)
    res = _cli("info", target, "--json")
    assert res.exit_code == 0, res.output
    with Twin.open(target) as twin:
        assert json.loads(res.stdout)["extent"] == pytest.approx(twin.extent)
        assert twin.extent == pytest.approx(DEM_BOUNDS)


def test_cli_import_and_scenario_diff_say_an_edit_lost_its_roads(tmp_path):
    from cim.schema import conform
    from cim.store import open_store

    x0, y0 = 409_900.0, 3_391_000.0
    ids = ["a", "b", "c"]

    def links(keep):
        gdf = gpd.GeoDataFrame(
            {"link_id": keep, "from_node": [f"n{i}" for i in keep], "to_node": [f"m{i}" for i in keep],
             "lanes": [2] * len(keep), "speed_limit_kmh": [50.0] * len(keep)},
            geometry=[shapely.LineString([(x0, y0 + 50 * ids.index(i)), (x0 + 100, y0 + 50 * ids.index(i))])
                      for i in keep], crs=CRS)
        return conform(gdf, "road_links")

    target = str(tmp_path / "g.gpkg")
    with open_store(target, create=True, crs=CRS) as st:
        st.write_layer("road_links", links(ids))
    assert _cli("scenario", "create", target, "works").exit_code == 0
    res = _cli("scenario", "close-roads", target, "works", "--bbox", f"{x0 - 10},{y0 - 10},{x0 + 50},{y0 + 60}")
    assert res.exit_code == 0 and "closed 2 links" in res.output, res.output
    path = tmp_path / "roads.geojson"
    links(["c"]).to_file(path)
    code, out, err = _main("import", target, path, "--class", "road_links")
    assert code in (0, None), err
    assert "imported 1 features" in out
    assert "warning: replacing layer 'road_links' drops features that scenario edits refer to" in err
    assert "2 of its 2 features gone ('a', 'b')" in err and "twin scenario undo STORE works" in err
    code, out, err = _main("scenario", "diff", target, "base", "works")
    assert code in (0, None), err
    assert "(no differences)" in out
    assert "warning: reading scenario 'works': edits of layer 'road_links' refer to features no longer in the base" \
        in err
