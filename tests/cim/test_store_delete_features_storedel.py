"""Store.delete_features: deleting some features of a layer without rewriting it, on both stores: only the
matching rows go, the spatial index, feature count and extent follow, the layer's time moves on (stale marking),
it is one transaction, and bad input is a clear error."""

from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from twin_core.errors import LayerNotFoundError, SchemaError

CRS = "EPSG:4544"
X0, Y0 = 500000.123, 3390000.456  # real magnitudes, so the R-tree's float32 boxes are rounded


def _grid(n: int = 5) -> gpd.GeoDataFrame:
    """n x n boxes of 10 m on a 30 m pitch from (X0, Y0); ids B<row>_<col>, ``k`` = 10 row + col."""
    rows, ids, ks = [], [], []
    for r in range(n):
        for c in range(n):
            rows.append(shapely.box(X0 + 30 * c, Y0 + 30 * r, X0 + 30 * c + 10.25, Y0 + 30 * r + 10.75))
            ids.append(f"B{r}_{c}")
            ks.append(10 * r + c)
    return gpd.GeoDataFrame({"building_id": ids, "k": ks, "height_m": np.linspace(3, 60, n * n),
                             "built": pd.to_datetime(["2020-01-01"] * (n * n), utc=True)}, geometry=rows, crs=CRS)


def _pause() -> None:
    time.sleep(0.02)  # a GeoPackage keeps last_change to the millisecond


def _fresh_bounds(store, gdf) -> list[float]:
    """The bounds the store reports for a layer freshly written with ``gdf``: what a delete must leave."""
    store.write_layer("reference", gdf.reset_index(drop=True))
    try:
        return store.layer_info("reference")["bounds"]
    finally:
        store.delete_layer("reference")


def test_only_the_matching_features_go_and_index_count_extent_and_time_follow(store):
    gdf = _grid()
    store.write_layer("buildings", gdf)
    full = store.layer_info("buildings")["bounds"]
    t0 = store.layer_written("buildings")
    _pause()
    # an inner building: the extent stays, the rest of the layer is as it was, in its order
    assert store.delete_features("buildings", "building_id", ["B2_2"]) == 1
    t1 = store.layer_written("buildings")
    assert t1 > t0
    left = store.read_layer("buildings")
    assert left["building_id"].tolist() == [b for b in gdf["building_id"] if b != "B2_2"]
    assert left.geometry.equals(gdf[gdf["building_id"] != "B2_2"].geometry.reset_index(drop=True))
    assert store.layer_info("buildings")["count"] == 24 and store.layer_info("buildings")["bounds"] == full
    hole = gdf.geometry[gdf["building_id"] == "B2_2"].iloc[0].bounds
    assert len(store.read_layer("buildings", bbox=hole)) == 0  # the spatial index no longer has it
    near = shapely.box(*hole).buffer(25).bounds
    assert sorted(store.read_layer("buildings", bbox=near)["building_id"]) == ["B1_1", "B1_2", "B1_3", "B2_1",
                                                                                "B2_3", "B3_1", "B3_2", "B3_3"]
    # the whole north row and east column: the extent shrinks to the rest's, as a fresh layer of it has
    _pause()
    gone = [f"B4_{c}" for c in range(5)] + [f"B{r}_4" for r in range(4)]
    assert store.delete_features("buildings", "building_id", gone) == 9
    assert store.layer_written("buildings") > t1
    rest = gdf[~gdf["building_id"].isin(gone + ["B2_2"])]
    after = store.layer_info("buildings")
    assert after["count"] == 15
    assert after["bounds"] == _fresh_bounds(store, rest)
    assert after["bounds"] == list(rest.total_bounds)
    # nothing matches: 0, and the layer's time stays (nothing was written)
    t2 = store.layer_written("buildings")
    _pause()
    assert store.delete_features("buildings", "building_id", ["B9_9"]) == 0
    assert store.delete_features("buildings", "building_id", []) == 0
    assert store.layer_written("buildings") == t2
    # the last ones: an empty layer, no extent
    assert store.delete_features("buildings", "building_id", rest["building_id"].tolist()) == 15
    assert store.layer_info("buildings")["count"] == 0 and store.layer_info("buildings")["bounds"] is None
    store.write_layer("buildings", gdf.iloc[:2], mode="append")  # still a layer to write into
    assert store.read_layer("buildings")["building_id"].tolist() == ["B0_0", "B0_1"]


def test_gpkg_r_tree_feature_count_and_extent_stay_the_files_own(tmp_path):
    """What GDAL and other readers see in the file after a delete: the R-tree holds the features left, the
    feature count and gpkg_contents' extent are theirs (as GDAL writes them for a fresh layer)."""
    import sqlite3

    import pyogrio

    from cim.store import open_store

    path = tmp_path / "d.gpkg"
    gdf = _grid(6)
    with open_store(path, create=True, crs=CRS) as s:
        s.write_layer("buildings", gdf)
        gone = [f"B0_{c}" for c in range(6)] + ["B3_3", "B5_5"]  # the south row (the extent's edge), two more
        assert s.delete_features("buildings", "building_id", gone) == 8
        rest = gdf[~gdf["building_id"].isin(gone)].reset_index(drop=True)
        s.write_layer("reference", rest)
    con = sqlite3.connect(path)
    try:
        fids = {r[0] for r in con.execute("SELECT fid FROM buildings")}
        assert {r[0] for r in con.execute("SELECT id FROM rtree_buildings_geom")} == fids and len(fids) == 28
        assert con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = 'buildings'").fetchone()[0] == 28
        ext = {t: con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = ?", (t,)).fetchone()
               for t in ("buildings", "reference")}
    finally:
        con.close()
    assert ext["buildings"] == ext["reference"] == tuple(rest.total_bounds)
    info = pyogrio.read_info(path, layer="buildings")
    assert info["features"] == 28 and tuple(info["total_bounds"]) == tuple(rest.total_bounds)
    assert sorted(pyogrio.read_dataframe(path, layer="buildings")["building_id"]) == sorted(rest["building_id"])


def test_many_values_and_values_of_the_columns_type(store):
    n = 40  # 1600 features, more values than one SQLite statement binds at once in the GeoPackage store
    gdf = _grid(n)
    store.write_layer("buildings", gdf)
    odd = gdf["building_id"][gdf["k"] % 2 == 1].tolist()
    assert len(odd) == 800
    assert store.delete_features("buildings", "building_id", odd + ["B9999_0"]) == 800
    assert store.layer_info("buildings")["count"] == 800
    # values are taken as the column's type: text for an integer column, numbers for a text one
    assert store.delete_features("buildings", "k", ["0", np.int64(2)]) == 2
    store.write_layer("codes", gpd.GeoDataFrame({"code": ["5", "6", "x"]}, geometry=[shapely.Point(X0, Y0)] * 3,
                                                crs=CRS))
    assert store.delete_features("codes", "code", 5) == 1  # one value, not a list
    assert store.delete_features("codes", "code", (6.0,)) == 1  # a whole float as its integer text
    assert store.read_layer("codes")["code"].tolist() == ["x"]


def test_a_delete_is_one_transaction_with_the_callers(store):
    gdf = _grid()
    store.write_layer("buildings", gdf)
    t0 = store.layer_written("buildings")
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        assert store.delete_features("buildings", "building_id", ["B0_0", "B4_4"]) == 2
        assert store.layer_info("buildings")["count"] == 23
        raise RuntimeError("boom")
    assert store.layer_info("buildings")["count"] == 25
    assert store.read_layer("buildings")["building_id"].tolist() == gdf["building_id"].tolist()
    assert store.layer_written("buildings") == t0
    assert store.layer_info("buildings")["bounds"] == _fresh_bounds(store, gdf)


def test_bad_input_is_named_and_changes_nothing(store):
    gdf = _grid(3)
    store.write_layer("buildings", gdf)
    store.write_table("notes", pd.DataFrame({"building_id": ["B0_0"]}))
    t0 = store.layer_written("buildings")
    with pytest.raises(LayerNotFoundError, match=r"no layer 'biuldings'.*buildings"):
        store.delete_features("biuldings", "building_id", ["B0_0"])
    with pytest.raises(LayerNotFoundError, match="no layer 'notes'"):  # a table is not a layer
        store.delete_features("notes", "building_id", ["B0_0"])
    with pytest.raises(SchemaError, match=r"no attribute column 'buildingid'.*'building_id', 'k'.*did you mean "
                                          r"'building_id'"):
        store.delete_features("buildings", "buildingid", ["B0_0"])
    for own in ("fid", "geom", "geometry"):
        with pytest.raises(SchemaError, match="store's own key and the geometry are not attribute columns"):
            store.delete_features("buildings", own, [1])
    with pytest.raises(SchemaError, match=r"'tall' does not fit column 'k', which holds int64 values"):
        store.delete_features("buildings", "k", [1, "tall"])
    with pytest.raises(SchemaError, match=r"2.5 does not fit column 'k'"):
        store.delete_features("buildings", "k", [2.5])
    with pytest.raises(SchemaError, match="hold a null"):
        store.delete_features("buildings", "building_id", ["B0_0", None])
    with pytest.raises(SchemaError, match="hold a null"):
        store.delete_features("buildings", "height_m", [float("nan")])
    with pytest.raises(SchemaError, match=r"column 'built': it holds datetime values.*\['building_id', 'k'\]"):
        store.delete_features("buildings", "built", [pd.Timestamp("2020-01-01", tz="UTC")])
    for bad in (None, {"building_id": "B0_0"}, object()):
        with pytest.raises(SchemaError, match="needs a value of 'building_id' or a sequence of them"):
            store.delete_features("buildings", "building_id", bad)
    assert store.layer_info("buildings")["count"] == 9 and store.layer_written("buildings") == t0


def test_a_store_that_may_not_be_written_refuses_a_delete_in_its_one_line(tmp_path, pg_dsn, pg_server):
    """A read-only GeoPackage (immutable file) and a PostGIS role that may only read: the StoreError every
    refused write gives, nothing deleted."""
    import shutil
    import subprocess
    import uuid
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    from cim.store import open_store
    from twin_core.errors import StoreError

    gdf = _grid(3)
    with open_store(pg_dsn, create=True, crs=CRS) as s:
        s.write_layer("buildings", gdf)
        schema = s.schema
    role = "storedel_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(role)))
    parts = urlsplit(pg_dsn)
    try:
        with open_store(f"postgresql://{role}@{parts.netloc.rsplit('@', 1)[-1]}{parts.path}?{parts.query}") as s:
            with pytest.raises(StoreError, match=r"cannot write .*the server refused the write.*nothing was changed"):
                s.delete_features("buildings", "building_id", ["B0_0"])
            assert s.layer_info("buildings")["count"] == 9
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    path = tmp_path / "frozen.gpkg"
    with open_store(path, create=True, crs=CRS) as s:
        s.write_layer("buildings", gdf)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not allowed here (the PostGIS half ran)")
    try:
        with open_store(path) as s:
            with pytest.raises(StoreError, match=r"cannot write .*read-only.*nothing was changed"):
                s.delete_features("buildings", "building_id", ["B0_0"])
            assert s.layer_info("buildings")["count"] == 9
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_append_widens_the_extent_and_a_delete_narrows_it_again(store):
    """The GeoPackage kept the extent of the rows a layer was replaced with: features appended outside it were
    left out of layer_info's bounds (a BIM building imported beside the city)."""
    gdf = _grid(3)
    store.write_layer("buildings", gdf)
    beside = gpd.GeoDataFrame({"building_id": ["BIM"], "k": [99], "height_m": [30.0],
                               "built": pd.to_datetime(["2026-01-01"], utc=True)},
                              geometry=[shapely.box(X0 - 500.5, Y0 - 200.25, X0 - 480, Y0 - 190)], crs=CRS)
    store.write_layer("buildings", beside, mode="append")
    both = pd.concat([gdf, beside], ignore_index=True)
    assert store.layer_info("buildings")["bounds"] == list(both.total_bounds) == _fresh_bounds(store, both)
    assert store.delete_features("buildings", "building_id", "BIM") == 1
    assert store.layer_info("buildings")["bounds"] == list(gdf.total_bounds)
