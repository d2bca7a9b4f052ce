"""Scenarios and results on both stores: edits never change the base."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine

import geopandas as gpd
from cim.raster import Raster, Window
from cim.results import list_results, load_result, save_result
from twin_core.errors import LayerNotFoundError, ScenarioError
from twin_core.twin import Twin

from .test_store_contract import X0, Y0, synthetic_layer


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="test")
    t.store.write_layer("buildings", synthetic_layer("buildings", n=20))
    links = synthetic_layer("road_links", n=15, seed=4)
    t.store.write_layer("road_links", links)
    dem = np.linspace(500, 490, 100 * 120, dtype="float32").reshape(100, 120)
    t.store.write_raster("dem", Raster(dem, Affine(5, 0, X0, 0, -5, Y0 + 2000), "EPSG:4544", unit="m"))
    yield t
    t.close()


def snapshot(twin):
    s = twin.store
    return (s.read_layer("buildings").to_wkb(), s.read_layer("road_links").to_wkb(), s.read_raster("dem").data.copy())


def assert_base_unchanged(twin, before):
    after = snapshot(twin)
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])
    np.testing.assert_array_equal(before[2], after[2])


def test_scenario_edits_never_change_the_base(twin):
    before = snapshot(twin)
    s = twin.scenarios.create("tower", "a new tower and a levee")
    base_b = twin.layer("buildings")
    tower = gpd.GeoDataFrame(
        {"building_id": ["new_tower"], "height_m": [180.0], "storeys": [45], "use": ["office"]},
        geometry=[shapely.MultiPolygon([shapely.box(X0 + 100, Y0 + 100, X0 + 140, Y0 + 140)])], crs="EPSG:4544")
    s.add_features("buildings", tower)
    s.remove_features("buildings", [base_b["building_id"].iloc[0]])
    s.modify_features("buildings", pd.DataFrame({"building_id": [base_b["building_id"].iloc[1]], "height_m": [99.5]}))
    levee = shapely.box(X0 + 50, Y0 + 1500, X0 + 300, Y0 + 1520)
    s.patch_raster("dem", levee, delta=2.0)
    s.set_param("storm_return_period_a", 50)
    closed = s.close_roads(shapely.box(X0, Y0, X0 + 2100, Y0 + 2100))
    assert closed

    got = twin.layer("buildings", scenario="tower")
    assert "new_tower" in set(got["building_id"])
    assert base_b["building_id"].iloc[0] not in set(got["building_id"])
    assert got.loc[got["building_id"] == base_b["building_id"].iloc[1], "height_m"].item() == 99.5
    assert len(got) == len(base_b)
    dem_s, dem_b = twin.raster("dem", scenario="tower"), twin.raster("dem")
    changed = dem_s.data != dem_b.data
    assert changed.sum() == 50 * 4  # 250 m x 20 m of 5 m cells whose centres lie inside
    np.testing.assert_allclose(dem_s.data[changed] - dem_b.data[changed], 2.0, atol=1e-4)
    assert (twin.layer("road_links", scenario="tower")["capacity_vph"] == 0).sum() == len(closed)
    assert twin.scenario("tower").params() == {"storm_return_period_a": 50}
    # a bbox read as of the scenario sees the new tower
    near = twin.layer("buildings", scenario="tower", bbox=(X0 + 90, Y0 + 90, X0 + 150, Y0 + 150))
    assert "new_tower" in set(near["building_id"])

    assert_base_unchanged(twin, before)

    d = twin.scenarios.diff("base", "tower")
    assert set(d.loc[d["target"] == "buildings", "change"]) == {"added", "removed", "modified"}
    assert d.loc[d["change"] == "modified", "fields"].str.contains("height_m").any()
    assert (d["change"] == "raster").sum() == 1 and (d["change"] == "param").sum() == 1
    assert twin.scenarios.diff("tower", "tower").empty


def test_child_scenario_and_delete(twin):
    before = snapshot(twin)
    a = twin.scenarios.create("a")
    a.remove_features("buildings", [twin.layer("buildings")["building_id"].iloc[0]])
    b = twin.scenarios.create("b", parent="a")
    b.patch_raster("dem", Window(0, 0, 2, 2), values=0.0)
    assert len(twin.layer("buildings", scenario="b")) == len(twin.layer("buildings")) - 1
    assert twin.raster("dem", scenario="b").data[:2, :2].max() == 0
    with pytest.raises(ScenarioError, match="parent"):
        twin.scenarios.delete("a")
    c = twin.scenarios.create("c")
    c.patch_raster("dem", Window(1, 1, 2, 2), values=1.0)
    twin.scenarios.delete("b")
    assert twin.raster("dem", scenario="c").data[1:3, 1:3].max() == 1.0  # the other scenarios' edits stay
    assert len(twin.layer("buildings", scenario="a")) == len(twin.layer("buildings")) - 1
    c.patch_raster("dem", Window(0, 0, 1, 1), values=2.0)  # numbering goes on after a delete
    assert twin.raster("dem", scenario="c").data[0, 0] == 2.0 and twin.raster("dem", scenario="c").data[1, 1] == 1.0
    twin.scenarios.delete("a")
    twin.scenarios.delete("c")
    assert twin.scenarios.names() == []
    assert twin.store.list_blobs("scenario/").empty
    assert_base_unchanged(twin, before)


def test_scenario_bad_input(twin):
    with pytest.raises(ScenarioError, match="not valid"):
        twin.scenarios.create("no spaces please")
    s = twin.scenarios.create("x")
    with pytest.raises(ScenarioError, match="exists"):
        twin.scenarios.create("x")
    with pytest.raises(ScenarioError, match="no scenario"):
        twin.layer("buildings", scenario="nope")
    with pytest.raises(ScenarioError, match="not in"):
        s.remove_features("buildings", ["ghost"])
    with pytest.raises(ScenarioError, match="no field"):
        s.modify_features("buildings", pd.DataFrame({"building_id": [twin.layer("buildings")["building_id"][0]],
                                                     "colour": ["red"]}))
    with pytest.raises(ScenarioError, match="crosses no link"):
        s.close_roads(shapely.box(0, 0, 1, 1))
    with pytest.raises(ScenarioError, match="base is never edited"):
        twin.scenario("base").set_param("k", 1)
    with pytest.raises(ScenarioError, match="exactly one"):
        s.patch_raster("dem", Window(0, 0, 1, 1))


def test_edit_values_are_typed_or_refused(twin):
    # an edit whose value is not of its field's type is refused when recorded (before, it was stored
    # and broke every later read of the layer in that scenario); values that are the type are cast
    s = twin.scenarios.create("typed")
    fid = twin.layer("buildings")["building_id"][0]
    n_edits = len(s.edits())
    with pytest.raises(ScenarioError, match="'height_m'.*finite number.*'very tall'"):
        s.modify_features("buildings", pd.DataFrame({"building_id": [fid], "height_m": ["very tall"]}))
    with pytest.raises(ScenarioError, match="'storeys'.*integer"):
        s.modify_features("buildings", pd.DataFrame({"building_id": [fid], "storeys": [2.5]}))
    with pytest.raises(ScenarioError, match="finite number"):
        s.modify_features("buildings", pd.DataFrame({"building_id": [fid], "height_m": [float("inf")]}))
    new = gpd.GeoDataFrame({"building_id": ["n1"], "height_m": ["tall"]},
                           geometry=[shapely.box(X0, Y0, X0 + 5, Y0 + 5)], crs="EPSG:4544")
    with pytest.raises(ScenarioError, match="height_m"):
        s.add_features("buildings", new)
    with pytest.raises(ScenarioError, match="no field"):
        s.add_features("buildings", new.assign(height_m=3.0, colour="red"))
    # wrong geometry kind, no geometry, coordinates that are not numbers
    with pytest.raises(ScenarioError, match="multipolygon geometries.*Point"):
        s.add_features("buildings", new.assign(height_m=3.0).set_geometry([shapely.Point(X0, Y0)]))
    with pytest.raises(ScenarioError, match="need a geometry"):
        s.add_features("buildings", new.assign(height_m=3.0).set_geometry([None]))
    with pytest.raises(ScenarioError, match="not finite"):
        s.add_features("buildings", new.assign(height_m=3.0).set_geometry([shapely.box(X0, Y0, np.inf, Y0 + 1)]))
    bow_tie = shapely.Polygon([(X0, Y0), (X0 + 5, Y0 + 5), (X0 + 5, Y0), (X0, Y0 + 5)])
    with pytest.raises(ScenarioError, match="feature 'n1' for 'buildings' has an invalid geometry: Self-intersection"):
        s.add_features("buildings", new.assign(height_m=3.0).set_geometry([bow_tie]))
    with pytest.raises(ScenarioError, match="NaN or infinity"):
        s.set_param("k", float("nan"))
    assert len(s.edits()) == n_edits  # nothing was recorded
    # castable values are stored as the field's type: "12" -> 12.0, 3.0 -> 3, and reads work
    s.modify_features("buildings", pd.DataFrame({"building_id": [fid], "height_m": ["12"], "storeys": [3.0]}))
    s.add_features("buildings", new.assign(height_m=7))  # a Polygon in a MultiPolygon layer is fine
    got = twin.layer("buildings", scenario="typed").set_index("building_id")
    assert got.loc[fid, "height_m"] == 12.0 and got.loc[fid, "storeys"] == 3 and got.loc["n1", "height_m"] == 7.0
    assert len(twin.layer("buildings", scenario="typed", where={"height_m": (">=", 7.0)}))


def test_scenario_reads_page_and_filter_after_the_edits(twin):
    # limit/offset/columns apply to the layer as of the scenario (edits first, then filters, paging, columns)
    s = twin.scenarios.create("paged")
    base = twin.layer("buildings")
    s.add_features("buildings", gpd.GeoDataFrame(
        {"building_id": ["zz_new"], "height_m": [300.0], "use": [base["use"][0]]},
        geometry=[shapely.box(X0, Y0, X0 + 5, Y0 + 5)], crs="EPSG:4544"))
    s.remove_features("buildings", [base["building_id"][1]])
    whole = twin.layer("buildings", scenario="paged")
    assert len(whole) == len(base)  # one added, one removed
    pages = [twin.layer("buildings", scenario="paged", limit=6, offset=o) for o in range(0, len(whole) + 6, 6)]
    assert [len(p) for p in pages if len(p)] == [6, 6, 6, 2]
    assert list(pd.concat(pages)["building_id"]) == list(whole["building_id"])  # every feature once, in order
    same_use = twin.layer("buildings", scenario="paged", where={"use": base["use"][0]}, limit=1000)
    assert "zz_new" in set(same_use["building_id"]) and len(same_use) == (whole["use"] == base["use"][0]).sum()
    # filter on a field that is not among the columns asked for
    tall = twin.layer("buildings", scenario="paged", where={"height_m": (">=", 299.0)}, columns=["building_id"])
    assert list(tall.columns) == ["building_id", tall.geometry.name] and list(tall["building_id"]) == ["zz_new"]
    with pytest.raises(Exception, match="no column"):
        twin.layer("buildings", scenario="paged", columns=["colour"])


def test_raising_ground_keeps_nodata_and_needs_a_finite_delta(twin):
    # a levee drawn over the edge of the DEM must not turn nodata (-9999) into ground at -9997
    dem = np.full((20, 20), 500.0, dtype="float32")
    dem[:, :10] = -9999.0
    twin.store.write_raster("dem2", Raster(dem, Affine(5, 0, X0, 0, -5, Y0 + 100), "EPSG:4544", nodata=-9999.0, unit="m"))
    s = twin.scenarios.create("levee2")
    s.patch_raster("dem2", Window(0, 0, 20, 20), delta=2.0)
    out = twin.raster("dem2", scenario="levee2").data
    assert (out[:, :10] == -9999.0).all() and (out[:, 10:] == 502.0).all()
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ScenarioError, match="finite"):
            s.patch_raster("dem2", Window(0, 0, 2, 2), delta=bad)
    with pytest.raises(ScenarioError, match="finite"):
        s.patch_raster("dem2", Window(0, 0, 2, 2), values=np.nan)



@pytest.mark.parametrize("kw", [{"delta": 1e308}, {"values": 1e39}, {"values": -1e39}])
def test_raising_ground_beyond_float32_is_refused_not_made_infinite(twin, kw):
    dem = np.full((4, 4), 500.0, dtype="float32")
    twin.store.write_raster("dem2", Raster(dem, Affine(5, 0, X0, 0, -5, Y0 + 20), "EPSG:4544", unit="m"))
    s = twin.scenarios.create("huge")
    with pytest.raises(ScenarioError, match=r"would give 4 cell\(s\) of 'dem2' values beyond the float32 range.*\(m\)"):
        s.patch_raster("dem2", Window(0, 0, 2, 2), **kw)
    assert s.edits().empty and np.isfinite(twin.raster("dem2", scenario="huge").data).all()

def test_a_raised_ground_edit_keeps_its_height(twin):
    # the map showed a levee's height only in the browser that drew it: the store kept the cells, not the delta
    import json

    dem = np.full((20, 20), 500.0, dtype="float32")
    twin.store.write_raster("dem3", Raster(dem, Affine(5, 0, X0, 0, -5, Y0 + 100), "EPSG:4544", unit="m"))
    s = twin.scenarios.create("levee3")
    s.patch_raster("dem3", Window(0, 0, 4, 4), delta=1.5)
    s.patch_raster("dem3", Window(5, 5, 2, 2), values=510.0)
    rows = s.edits()
    attrs = [json.loads(a) for a in rows.loc[rows["op"] == "patch_raster", "attrs"]]
    # the keys the map reads (the height), beside the edit's kind and the grid it was drawn on
    assert [{k: a[k] for k in ("delta", "values", "kind") if k in a} for a in attrs] == [
        {"delta": 1.5, "kind": "delta"}, {"values": "given", "kind": "values"}]
    assert all(a["grid"]["shape"] == [20, 20] and a["grid"]["unit"] == "m" for a in attrs)
    assert twin.raster("dem3", scenario="levee3").data[0, 0] == 501.5


def test_an_edit_to_a_deleted_scenario_is_refused(twin):
    # the Scenario object outlives its scenario: recording through it must not leave orphaned edits
    # that a new scenario of the same name would inherit
    s = twin.scenarios.create("gone")
    twin.scenarios.delete("gone")
    with pytest.raises(ScenarioError, match="no longer exist"):
        s.set_param("k", 1)
    assert len(twin.scenarios.create("gone").edits()) == 0


def test_results_by_scenario_and_run(twin):
    r = Raster(np.ones((10, 10), "float32"), Affine(5, 0, X0, 0, -5, Y0), "EPSG:4544", unit="m")
    save_result(twin.store, "base", "run1", "max_depth", r)
    save_result(twin.store, "base", "run1", "snapshots", np.arange(24, dtype="float32").reshape(2, 3, 4))
    save_result(twin.store, "base", "run1", "gauges", pd.DataFrame({"t": [0.0, 60.0], "h": [0.0, 0.2]}))
    save_result(twin.store, "base", "run1", "exposure", twin.layer("buildings").iloc[:3])
    save_result(twin.store, "base", "run2", "summary", {"tstt": 1.5})
    assert load_result(twin.store, "base", "run1", "max_depth").data.sum() == 100
    assert load_result(twin.store, "base", "run1", "snapshots").shape == (2, 3, 4)
    assert load_result(twin.store, "base", "run1", "gauges")["h"].tolist() == [0.0, 0.2]
    assert len(load_result(twin.store, "base", "run1", "exposure")) == 3
    assert load_result(twin.store, "base", "run2", "summary") == {"tstt": 1.5}
    assert list_results(twin.store, run="run1")["name"].tolist() == ["exposure", "gauges", "max_depth", "snapshots"]
    save_result(twin.store, "base", "run1", "max_depth", Raster(r.data * 3, r.transform, r.crs))  # replace
    assert load_result(twin.store, "base", "run1", "max_depth").data.sum() == 300
    with pytest.raises(LayerNotFoundError, match="no result"):
        load_result(twin.store, "base", "run9", "max_depth")
    with pytest.raises(TypeError, match="cannot store"):
        save_result(twin.store, "base", "run1", "bad", object())
    # result layers do not show up as city layers in the summary
    assert set(twin.summary()["layers"]) == {"buildings", "road_links"}


def test_array_results_are_stored_compressed_and_old_plain_ones_still_read(twin):
    # a crowd run's density maps over time (mostly zeros) took 27 MB of the demo file, raw float32
    import io

    from cim.results import result_ref

    dens = np.zeros((50, 200, 200), "float32")
    dens[:, 90:110, 90:110] = np.random.default_rng(0).random((50, 20, 20), dtype="float32")
    save_result(twin.store, "base", "c1", "density", dens)
    blob = twin.store.get_blob(f"results/{result_ref('base', 'c1', 'density')}.npy")
    assert len(blob) < 0.2 * dens.nbytes  # 8 MB of which 1 % is not zero
    np.testing.assert_array_equal(load_result(twin.store, "base", "c1", "density"), dens)
    noise = np.random.default_rng(1).random((64, 64))  # nothing to gain: stored plain
    save_result(twin.store, "base", "c1", "noise", noise)
    assert twin.store.get_blob(f"results/{result_ref('base', 'c1', 'noise')}.npy").startswith(b"\x93NUMPY")
    np.testing.assert_array_equal(load_result(twin.store, "base", "c1", "noise"), noise)
    # a result stored before compression (a plain .npy blob) reads as before
    buf = io.BytesIO()
    np.save(buf, dens[:2], allow_pickle=False)
    twin.store.put_blob(f"results/{result_ref('base', 'c1', 'density')}.npy", buf.getvalue(), mime="application/x-npy")
    np.testing.assert_array_equal(load_result(twin.store, "base", "c1", "density"), dens[:2])


def test_reserved_names_are_refused_in_any_case(store_target):
    """'base' (the city) and 'diff' (the API route) are not scenario names, whatever their case; deleting the base
    is refused instead of reporting success."""
    with Twin.create(store_target, name="test") as t:
        sc = t.scenarios
        for name in ("base", "Base", "BASE", "diff", "Diff"):
            with pytest.raises(ScenarioError, match="is reserved.*choose another name"):
                sc.create(name)
        assert sc.names() == []
        with pytest.raises(ScenarioError, match="city itself.*cannot be deleted"):
            sc.delete("base")
        sc.create("plan")
        for name in ("base", "Base"):
            with pytest.raises(ScenarioError, match="city itself.*cannot be deleted"):
                sc.delete(name)
        assert sc.names() == ["plan"] and sc.get("base").name == "base"


def test_undo_takes_back_the_latest_edit_whole(twin):
    # a planner who closed the wrong area had to delete the whole scenario: undo takes back one edit, all the
    # roads one close_roads closed together, and the raster cells a patch stored
    import time

    before = snapshot(twin)
    s = twin.scenarios.create("oops")
    with pytest.raises(ScenarioError, match="'oops' has no edits of its own to undo"):
        s.undo()  # nothing to take back: most likely an undo too many, said as the CLI says it
    assert s.undo(missing_ok=True).empty
    s.patch_raster("dem", Window(0, 0, 3, 3), delta=2.0)
    after_levee = twin.raster("dem", scenario="oops").data.copy()
    t_levee = s.last_edited()
    time.sleep(0.01)
    closed = s.close_roads(shapely.box(X0, Y0, X0 + 2100, Y0 + 2100))
    assert len(closed) > 1 and (twin.layer("road_links", scenario="oops")["capacity_vph"] == 0).sum() == len(closed)
    assert s.edits()["created"].iloc[-len(closed):].nunique() == 1  # the rows of one edit share its time

    gone = s.undo()
    assert len(gone) == len(closed) and set(gone["op"]) == {"modify"}
    assert sorted(gone["feature_id"].astype(str)) == sorted(closed)
    assert (twin.layer("road_links", scenario="oops")["capacity_vph"] == 0).sum() == 0
    np.testing.assert_array_equal(twin.raster("dem", scenario="oops").data, after_levee)  # the levee stays
    # the undo is a change: a run made between the closure and the undo is not this scenario's answer
    assert s.last_edited() > t_levee
    assert twin.scenarios.list().set_index("name").loc["oops", "last_edited"] == s.last_edited().isoformat()

    blobs = len(twin.store.list_blobs("scenario/"))
    gone = s.undo()
    assert list(gone["op"]) == ["patch_raster"]
    assert len(twin.store.list_blobs("scenario/")) == blobs - 1  # the patch's cells go with it
    np.testing.assert_array_equal(twin.raster("dem", scenario="oops").data, before[2])
    assert s.edits().empty and s.undo(missing_ok=True).empty
    assert_base_unchanged(twin, before)


def test_undo_leaves_the_parent_and_other_scenarios_alone(twin):
    a = twin.scenarios.create("pa")
    a.set_param("k", 1)
    b = twin.scenarios.create("ch", parent="pa")
    b.set_param("k", 2)
    other = twin.scenarios.create("other")
    other.set_param("k", 3)
    assert b.params() == {"k": 2}
    b.undo()
    assert b.params() == {"k": 1}  # the parent's value shows again
    with pytest.raises(ScenarioError, match="from its parent 'pa' are undone on 'pa'"):
        b.undo()  # the parent's edits are undone on the parent
    assert a.params() == {"k": 1} and other.params() == {"k": 3}
    a.set_param("k", 4)  # numbering goes on after an undo
    assert b.params() == {"k": 4}
    with pytest.raises(ScenarioError, match="base is never edited"):
        twin.scenario("base").undo()
    gone = twin.scenarios.get("other")
    twin.scenarios.delete("other")
    with pytest.raises(ScenarioError, match="no longer exists"):
        gone.undo()
