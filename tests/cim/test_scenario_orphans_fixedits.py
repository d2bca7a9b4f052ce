"""A layer replace that drops features scenario edits refer to, or buildings imported from IFC, says so; a
scenario whose edits refer to features no longer in the base says so when read; a road closure refuses a
self-crossing polygon as a raise-ground edit does (both stores)."""

from __future__ import annotations

import warnings

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from twin_core.errors import ScenarioError, TwinWarning

CRS = "EPSG:4544"
X0, Y0 = 409_900.0, 3_391_000.0  # central Chengdu, in the CRS's area of use
# four east-west links 100 m apart; the closure box crosses links a and b only
CLOSURE = shapely.box(X0 - 10, Y0 - 10, X0 + 200, Y0 + 110)


def _links(ids=("a", "b", "c", "d")):
    from cim.schema import conform

    rows = {"a": 0, "b": 100, "c": 300, "d": 400}
    gdf = gpd.GeoDataFrame(
        {"link_id": list(ids), "from_node": [f"n{i}" for i in ids], "to_node": [f"m{i}" for i in ids],
         "lanes": [2] * len(ids), "speed_limit_kmh": [50.0] * len(ids), "capacity_vph": [1800.0] * len(ids)},
        geometry=[shapely.LineString([(X0, Y0 + rows[i]), (X0 + 150, Y0 + rows[i])]) for i in ids], crs=CRS)
    return conform(gdf, "road_links")


def _file(tmp_path, gdf, name="roads.geojson"):
    path = tmp_path / name
    gdf.to_file(path)
    return str(path)


def _twin_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, TwinWarning)]


@pytest.fixture
def closed(store):
    """The store with links a-d and scenario 'works' closing a and b (one edit, two rows)."""
    from cim.scenario import Scenarios

    store.write_layer("road_links", _links())
    s = Scenarios(store).create("works")
    assert sorted(s.close_roads(CLOSURE)) == ["a", "b"]
    return store


def test_a_replace_dropping_closed_roads_warns_naming_the_edit(closed, tmp_path):
    from cim.io.vector import import_vector
    from cim.scenario import Scenarios

    path = _file(tmp_path, _links(("b", "c", "d")))  # without 'a', one of the two closed links
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert import_vector(closed, path, "road_links") == 3
    msgs = [m for m in _twin_warnings(rec) if "scenario edits refer to" in m]
    assert len(msgs) == 1, _twin_warnings(rec)
    msg = msgs[0]
    assert "replacing layer 'road_links'" in msg and "scenario 'works'" in msg
    assert "close roads (capacity_vph 0)" in msg and "1 of its 2 features gone ('a')" in msg
    assert "--append" in msg and "twin scenario undo STORE works" in msg
    # the layer is replaced all the same; the scenario still counts its edit
    assert sorted(closed.read_layer("road_links")["link_id"]) == ["b", "c", "d"]
    assert int(Scenarios(closed).list()["edits"].iloc[0]) == 1


def test_a_replace_keeping_the_edited_features_or_appending_says_nothing(closed, tmp_path):
    from cim.io.vector import import_vector

    keep = _file(tmp_path, _links(("a", "b", "c")), "keep.geojson")  # 'd' goes, but no edit refers to it
    more = _links(("a",)).assign(link_id=["e"])
    extra = _file(tmp_path, more, "more.geojson")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        import_vector(closed, keep, "road_links")
        import_vector(closed, extra, "road_links", mode="append")
    assert not [m for m in _twin_warnings(rec) if "scenario" in m], _twin_warnings(rec)


def test_reading_a_scenario_with_orphaned_edits_warns(closed, tmp_path):
    from cim.io.vector import import_vector
    from cim.scenario import Scenarios

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import_vector(closed, _file(tmp_path, _links(("c", "d"))), "road_links")  # both closed links gone
    sc = Scenarios(closed)
    with pytest.warns(TwinWarning, match=r"reading scenario 'works': edits of layer 'road_links' refer to features "
                                         r"no longer in the base layer") as rec:
        d = sc.diff("base", "works")
    assert len(d) == 0  # nothing left to differ: which is why it must be said
    msg = next(m for m in _twin_warnings(rec) if "reading scenario" in m)
    assert "2 of its 2 features gone ('a', 'b')" in msg and "twin scenario undo STORE works" in msg
    # a child scenario reading its parent's orphaned edit names the parent's edit
    child = sc.create("works_night", parent="works")
    child.set_param("demand_scale", 0.5)
    with pytest.warns(TwinWarning, match="scenario 'works', its edit recorded"):
        assert sorted(child.layer("road_links")["link_id"]) == ["c", "d"]
    # an edit whose features are all there reads without a word
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import_vector(closed, _file(tmp_path, _links(), "all.geojson"), "road_links")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        lay = sc.get("works").layer("road_links")
    assert not [m for m in _twin_warnings(rec) if "scenario" in m]
    assert lay.set_index("link_id").loc[["a", "b"], "capacity_vph"].tolist() == [0.0, 0.0]


def test_a_replace_of_buildings_dropping_ifc_buildings_warns(store, tmp_path):
    from cim.io.vector import import_vector
    from cim.schema import conform

    def buildings(ids):
        geoms = [shapely.box(X0 + 30 * i, Y0, X0 + 30 * i + 20, Y0 + 20) for i in range(len(ids))]
        return conform(gpd.GeoDataFrame({"building_id": ids, "height_m": [10.0] * len(ids)}, geometry=geoms,
                                        crs=CRS), "buildings")

    store.write_layer("buildings", buildings(["C0", "bim-2hQBAVPOr5VxhS3Jl0O47h", "bim-other"]))
    # what bim_import writes beside the layer, as far as this check reads it: the table by name
    bim = pd.DataFrame({"building_id": ["bim-2hQBAVPOr5VxhS3Jl0O47h", "bim-other", "bim-stale"],
                        "file": ["a.ifc", "b.ifc", "c.ifc"]})
    store.write_table("bim_buildings", bim)
    with pytest.warns(TwinWarning, match=r"the new buildings layer drops 2 building\(s\) imported from IFC "
                                         r"\(bim-2hQBAVPOr5VxhS3Jl0O47h, bim-other\)") as rec:
        import_vector(store, _file(tmp_path, buildings(["C0", "C1"]), "b.geojson"), "buildings")
    msg = next(m for m in _twin_warnings(rec) if "imported from IFC" in m)
    assert "bim-stale" not in msg  # not in the layer before: this import does not drop it
    for hint in ("stale records", "twin bim import STORE MODEL.ifc --replace", "twin bim delete STORE ID",
                 "--append"):
        assert hint in msg
    # a layer that keeps them, or an append, says nothing
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        import_vector(store, _file(tmp_path, buildings(["bim-2hQBAVPOr5VxhS3Jl0O47h", "bim-other"]), "k.geojson"),
                      "buildings")
        import_vector(store, _file(tmp_path, buildings(["C9"]), "c9.geojson"), "buildings", mode="append")
    assert not [m for m in _twin_warnings(rec) if "IFC" in m]


def test_close_roads_refuses_a_bow_tie(closed):
    from cim.scenario import Scenarios

    s = Scenarios(closed).get("works")
    # the corners of CLOSURE with two swapped: its outline crosses itself
    (x0, y0, x1, y1) = CLOSURE.bounds
    bow = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    assert not bow.is_valid
    before = len(s.edits())
    with pytest.raises(ScenarioError, match=r"the polygon for the road closure of 'road_links' is not valid: "
                                            r"self-intersection at .*bow-tie"):
        s.close_roads(bow)
    with pytest.raises(ScenarioError, match="road closure of 'road_links' needs a non-empty Polygon"):
        s.close_roads(shapely.Point(X0, Y0))
    assert len(s.edits()) == before  # nothing recorded


def test_a_sumo_network_replacing_the_roads_warns_too(closed):
    """``twin import city net.xml`` goes through :func:`cim.io.sumo.import_sumo_net`, not import_vector: its
    replace warns the same way (the links a and b the scenario closes are not in the Chengdu network)."""
    from pathlib import Path

    from cim.io.sumo import import_sumo_net

    net = Path(__file__).resolve().parents[3] / "shared" / "data" / "chengdu" / "chengdu.net.xml"
    if not net.exists():
        pytest.skip("the Chengdu SUMO network of ../shared/data is not here")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        import_sumo_net(closed, net)
    said = " ".join(_twin_warnings(rec))
    assert "works" in said and "2 of its 2 features gone" in said, said
