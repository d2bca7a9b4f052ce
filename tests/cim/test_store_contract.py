"""The store contract, run on both stores (GeoPackage and PostGIS)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine

import geopandas as gpd
from cim.raster import Raster, Window
from cim.schema import FEATURE_CLASSES, conform
from cim.store import open_store
from twin_core.errors import CRSError, LayerNotFoundError, SchemaError, TwinError

X0, Y0 = 410_000.0, 3_395_000.0  # central Chengdu in EPSG:4544


def _into_range(v, f):
    """A drawn value, wrapped into the field's declared range where it falls outside (50.3 -> 0.3 for 0..1)."""
    lo = f.minimum if f.minimum is not None else -1e12
    hi = f.maximum if f.maximum is not None else 1e12
    if lo <= v <= hi:
        return v
    return int(lo + v % (hi - lo + 1)) if f.dtype == "int64" else lo + v % (hi - lo)


def synthetic_layer(fc_name: str, n: int = 25, seed: int = 0) -> gpd.GeoDataFrame:
    """Features of a declared class with every field filled (some optional ones null)."""
    rng = np.random.default_rng(seed)
    fc = FEATURE_CLASSES[fc_name]
    data: dict[str, object] = {}
    for f in fc.fields:
        if f.choices:
            vals = list(rng.choice(list(f.choices), n))
        elif f.dtype == "int64":
            vals = rng.integers(0, 100, n).tolist()
        elif f.dtype == "float64":
            vals = rng.normal(50, 20, n).tolist()
        elif f.dtype == "bool":
            vals = rng.integers(0, 2, n).astype(bool).tolist()
        else:
            vals = [f"{f.name}_{i}" for i in range(n)]
        if f.has_range:  # the field's plausible range (conform refuses others); in-range draws are kept as drawn
            vals = [_into_range(v, f) for v in vals]
        if not f.required and f.dtype in ("float64", "str"):
            vals[1] = None if f.dtype == "str" else np.nan
        data[f.name] = vals
    xs = X0 + rng.uniform(0, 2000, n)
    ys = Y0 + rng.uniform(0, 2000, n)
    if fc.geometry_type == "Point":
        geoms = shapely.points(xs, ys)
    elif fc.geometry_type == "LineString":
        geoms = [shapely.LineString([(x, y), (x + 37.123456, y + 11.5), (x + 80.5, y - 3.25)]) for x, y in zip(xs, ys)]
    else:
        geoms = []
        for i, (x, y) in enumerate(zip(xs, ys)):
            outer = shapely.box(x, y, x + 30.25, y + 20.125)
            if i % 3 == 0:  # a courtyard
                outer = outer.difference(shapely.box(x + 10, y + 5, x + 20, y + 15))
            parts = [outer] if i % 4 else [outer, shapely.box(x + 40, y, x + 45.5, y + 5.5)]
            geoms.append(shapely.MultiPolygon(parts))
    gdf = gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4544")
    return conform(gdf, fc)


def assert_frames_equal(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for c in a.columns:
        if c == a.geometry.name:
            continue
        va, vb = a[c].tolist(), b[c].tolist()
        for x, y in zip(va, vb):
            if (x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x))):
                assert y is None or y is pd.NA or (isinstance(y, float) and np.isnan(y)), (c, x, y)
            elif isinstance(x, float):
                assert y == pytest.approx(x, rel=0, abs=1e-12), c
            else:
                assert x == y, (c, x, y)
    # geometries equal within 1e-6 m (issue 2: round trip "unchanged")
    assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=1e-6).all()


@pytest.mark.parametrize("fc_name", sorted(FEATURE_CLASSES))
def test_every_feature_class_round_trips(store, fc_name):
    gdf = synthetic_layer(fc_name)
    assert store.write_layer(fc_name, gdf) == len(gdf)
    back = store.read_layer(fc_name)
    assert_frames_equal(gdf.reset_index(drop=True), conform(back, fc_name))
    info = store.layer_info(fc_name)
    assert info["count"] == len(gdf)
    np.testing.assert_allclose(info["bounds"], gdf.total_bounds, atol=1e-6)


def test_raster_round_trip_and_windows(store):
    rng = np.random.default_rng(1)
    data = (500 + rng.normal(0, 3, (333, 517))).astype("float32")
    data[5, 7] = -9999.0
    r = Raster(data, Affine(5.0, 0, X0, 0, -5.0, Y0 + 2000), "EPSG:4544", nodata=-9999.0, unit="m")
    store.write_raster("dem", r)
    back = store.read_raster("dem")
    np.testing.assert_array_equal(back.data, data)
    assert tuple(back.transform) == tuple(r.transform)
    assert back.nodata == -9999.0 and back.unit == "m"
    w = Window(250, 300, 83, 217)
    part = store.read_raster("dem", window=w)
    np.testing.assert_array_equal(part.data, data[250:333, 300:517])
    assert part.transform.c == X0 + 300 * 5.0
    b = store.read_raster("dem", bounds=(X0 + 100, Y0 + 1000, X0 + 200, Y0 + 1100))
    assert b.shape == (20, 20)
    info = store.raster_info("dem")
    assert (info["height"], info["width"]) == (333, 517)
    store.write_raster("dem", Raster(data * 0 + 1, r.transform, r.crs))
    assert store.read_raster("dem").data.max() == 1
    assert store.list_rasters() == ["dem"]
    store.delete_raster("dem")
    assert store.list_rasters() == []


@pytest.mark.parametrize("nodata", [np.nan, None, 0.0])
def test_raster_nodata_round_trips(store, nodata):
    # a NaN nodata came back from the GeoPackage as None (SQLite stores a REAL NaN as NULL)
    data = np.arange(12, dtype="float32").reshape(3, 4)
    data[1, 1] = np.nan
    store.write_raster("dem", Raster(data, Affine(5.0, 0, X0, 0, -5.0, Y0), "EPSG:4544", nodata=nodata))
    back = store.read_raster("dem")
    if nodata is None:
        assert back.nodata is None
    else:
        assert back.nodata == nodata or (np.isnan(nodata) and np.isnan(back.nodata))
    info_nodata = store.raster_info("dem")["nodata"]
    assert (info_nodata is None) == (nodata is None)
    missing = back.data[1, 1]
    assert np.isnan(missing) or missing == back.nodata
    assert back.data[0, 1] == 1.0 and back.data[2, 3] == 11.0


def test_a_mistyped_raster_or_layer_names_the_close_match_not_the_stored_results(store):
    r = Raster(np.ones((10, 10), "float32"), Affine(5.0, 0, X0, 0, -5.0, Y0), "EPSG:4544")
    store.write_raster("dem", r)
    store.write_raster("res_0123456789abcdef", r)  # a stored result raster (read with load_result)
    store.write_layer("pois", synthetic_layer("pois", 3))
    with pytest.raises(LayerNotFoundError, match=r"rasters here: \['dem'\]; did you mean 'dem'\?") as e:
        store.read_raster("dme")
    assert "res_" not in str(e.value)
    with pytest.raises(LayerNotFoundError, match=r"layers here: \['pois'\]; did you mean 'pois'\?"):
        store.read_layer("pios")


def test_bbox_where_paging(store):
    gdf = synthetic_layer("buildings", n=60)
    store.write_layer("buildings", gdf)
    bbox = (X0 + 500, Y0 + 500, X0 + 1200, Y0 + 1500)
    got = store.read_layer("buildings", bbox=bbox)
    env = gdf.geometry.envelope
    expected = gdf[env.intersects(shapely.box(*bbox))]
    assert sorted(got["building_id"]) == sorted(expected["building_id"])
    res = store.read_layer("buildings", where={"use": "school"})
    assert sorted(res["building_id"]) == sorted(gdf.loc[gdf["use"] == "school", "building_id"])
    tall = store.read_layer("buildings", where={"height_m": (">", 60.0)}, columns=["building_id", "height_m"])
    assert list(tall.columns) == ["building_id", "height_m", "geometry"]
    assert (tall["height_m"] > 60).all() and len(tall) == int((gdf["height_m"] > 60).sum())
    some = store.read_layer("buildings", where={"building_id": ["building_id_3", "building_id_5"]})
    assert sorted(some["building_id"]) == ["building_id_3", "building_id_5"]
    pages = [store.read_layer("buildings", limit=25, offset=o) for o in (0, 25, 50)]
    assert [len(p) for p in pages] == [25, 25, 10]
    assert pd.concat(pages)["building_id"].tolist() == gdf["building_id"].tolist()


def test_append_tables_blobs_meta(store):
    gdf = synthetic_layer("pois", n=10)
    store.write_layer("pois", gdf.iloc[:4])
    store.write_layer("pois", gdf.iloc[4:], mode="append")
    assert store.read_layer("pois")["poi_id"].tolist() == gdf["poi_id"].tolist()
    df = pd.DataFrame({"t": np.arange(5, dtype="int64"), "depth": np.linspace(0, 1, 5), "gauge": list("abcde")})
    store.write_table("gauges", df)
    store.write_table("gauges", df.iloc[:2], mode="append")
    back = store.read_table("gauges")
    assert len(back) == 7 and back["depth"].tolist()[:5] == df["depth"].tolist()
    assert store.read_table("gauges", where={"gauge": "c"})["t"].tolist() == [2]
    payload = bytes(range(256)) * 100
    store.put_blob("mesh/b1.glb", payload, mime="model/gltf-binary", layer="buildings", feature_id="b1")
    assert store.get_blob("mesh/b1.glb") == payload
    lst = store.list_blobs("mesh/")
    assert lst["key"].tolist() == ["mesh/b1.glb"] and lst["size"].tolist() == [len(payload)]
    store.set_meta({"name": "成都", "extent": [1.0, 2.0, 3.0, 4.0]})
    assert store.get_meta()["name"] == "成都" and store.get_meta()["extent"] == [1.0, 2.0, 3.0, 4.0]
    store.delete_blob("mesh/b1.glb")
    with pytest.raises(LayerNotFoundError):
        store.get_blob("mesh/b1.glb")


def test_failed_write_commits_nothing(store):
    good = synthetic_layer("buildings", n=5)
    store.write_layer("buildings", good)
    with pytest.raises(RuntimeError, match="disk on fire") as info:
        with store.transaction():
            store.write_layer("buildings", synthetic_layer("buildings", n=9, seed=3))
            store.write_table("half", pd.DataFrame({"a": [1]}))
            store.put_blob("x", b"y")
            raise RuntimeError("disk on fire")
    assert any("rolled back" in n for n in info.value.__notes__)
    assert store.read_layer("buildings")["building_id"].tolist() == good["building_id"].tolist()
    assert not store.has_table("half")
    assert store.list_blobs().empty


def test_half_written_layer_leaves_store_as_it_was(store, monkeypatch):
    """A load that dies half-way (disk full after half the rows) keeps the old layer."""
    good = synthetic_layer("sensors", n=5)
    store.write_layer("sensors", good)
    new = synthetic_layer("sensors", n=6, seed=9)
    if store.kind == "gpkg":
        import pyogrio

        real = pyogrio.write_dataframe

        def half_then_fail(df, *args, **kwargs):
            real(df.iloc[: len(df) // 2], *args, **kwargs)
            raise OSError("No space left on device")

        monkeypatch.setattr(pyogrio, "write_dataframe", half_then_fail)
    else:
        from cim.store.postgis import PostGISStore

        real = PostGISStore._copy_rows

        def half_then_fail(self, cur, name, df, geometry, **kw):
            real(self, cur, name, df.iloc[: len(df) // 2], geometry, **kw)
            raise OSError("No space left on device")

        monkeypatch.setattr(PostGISStore, "_copy_rows", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        store.write_layer("sensors", new)
    monkeypatch.undo()
    assert store.read_layer("sensors")["sensor_id"].tolist() == good["sensor_id"].tolist()
    assert store.list_layers() == ["sensors"]


def test_append_casts_to_the_layer_types_or_refuses(store):
    # binary COPY used to encode appended columns by the new frame's dtype: ints appended to a float
    # column read back as 1.5e-322 on PostGIS. Values are cast to the column's type, or refused.
    pt = shapely.Point(X0, Y0)
    a = gpd.GeoDataFrame({"height_m": [10.5, 20.25], "label": ["x", "y"], "n": [1, 2]}, geometry=[pt, pt],
                         crs="EPSG:4544")
    store.write_layer("blds", a)
    b = gpd.GeoDataFrame({"height_m": [30, 40], "label": [7, 8.0], "n": [3.0, None]}, geometry=[pt, pt], crs="EPSG:4544")
    store.write_layer("blds", b, mode="append")
    back = store.read_layer("blds")
    assert back["height_m"].tolist() == [10.5, 20.25, 30.0, 40.0]
    assert back["label"].tolist() == ["x", "y", "7", "8"]
    assert back["n"].tolist()[:3] == [1, 2, 3] and pd.isna(back["n"].iloc[3])
    for bad in ({"n": [2.5]}, {"height_m": ["tall"]}):
        c = gpd.GeoDataFrame(bad, geometry=[pt], crs="EPSG:4544")
        with pytest.raises(SchemaError, match="cannot append"):
            store.write_layer("blds", c, mode="append")
    assert len(store.read_layer("blds")) == 4  # nothing of a refused append was kept
    store.write_table("t", pd.DataFrame({"v": [1.5]}))
    store.write_table("t", pd.DataFrame({"v": [2]}), mode="append")
    assert store.read_table("t")["v"].tolist() == [1.5, 2.0]
    with pytest.raises(SchemaError, match="cannot append"):
        store.write_table("t", pd.DataFrame({"v": ["x"]}), mode="append")


def test_two_writers_creating_one_layer_replace_one_after_the_other(store_target, store):
    # each writer has its own connection; before, the loser got a raw R-tree or unique-violation error
    from concurrent.futures import ThreadPoolExecutor

    def write(tag):
        n = 3000
        g = gpd.GeoDataFrame({"tag": [tag] * n, "v": np.arange(n)},
                             geometry=shapely.points(np.full(n, X0) + np.arange(n), np.full(n, Y0)), crs="EPSG:4544")
        s = open_store(store_target)
        try:
            s.write_layer("conc", g)
        finally:
            s.close()
        return tag

    with ThreadPoolExecutor(2) as ex:
        assert sorted(ex.map(write, ["a", "b"])) == ["a", "b"]
    back = store.read_layer("conc")
    assert len(back) == 3000 and back["tag"].nunique() == 1 and store.layer_info("conc")["count"] == 3000


def test_names_and_columns_the_stores_cannot_keep_are_refused(store):
    gdf = synthetic_layer("pois", n=3)
    for name in ("rtree_pois_geom", "gpkg_contents", "sqlite_sequence"):
        with pytest.raises(SchemaError, match="reserved"):
            store.write_layer(name, gdf)
    with pytest.raises(SchemaError, match="differ only in case"):
        store.write_layer("pois", gdf.assign(Name=gdf["name"]))
    with pytest.raises(SchemaError, match="64-bit"):
        store.write_table("big", pd.DataFrame({"u": np.array([2 ** 63 + 5], dtype="uint64")}))
    with pytest.raises(SchemaError, match="NUL"):  # GeoPackage cut "a\x00b" to "a" silently
        store.write_layer("pois", gdf.assign(name=["a\x00b", "c", None]))
    with pytest.raises(SchemaError, match="NUL"):
        store.write_table("notes", pd.DataFrame({"t": ["x\x00"]}))
    assert not store.has_layer("pois") and "big" not in store.list_tables() and "notes" not in store.list_tables()


def test_bad_input_errors(store, tmp_path):
    gdf = synthetic_layer("pois", n=3)
    with pytest.raises(CRSError, match="no CRS"):
        store.write_layer("pois", gdf.set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="reproject"):
        store.write_layer("pois", gdf.to_crs("EPSG:4326"))
    for bad in ("Bad Name;--", "pois\n", "pois\x00"):  # "$" in a regex would let the newline through
        with pytest.raises(SchemaError, match="not valid"):
            store.write_layer(bad, gdf)
    with pytest.raises(SchemaError, match="reserved"):
        store.write_layer("twin_meta", gdf)
    with pytest.raises(LayerNotFoundError, match="layers here"):
        store.read_layer("nothing")
    store.write_layer("pois", gdf)
    with pytest.raises(SchemaError, match="no column"):
        store.read_layer("pois", where={"nope": 1})
    with pytest.raises(SchemaError, match="bbox"):
        store.read_layer("pois", bbox=(1, 2, 0, 1))
    # hostile values are bound parameters, never SQL
    assert store.read_layer("pois", where={"name": "x'; DROP TABLE pois; --"}).empty
    assert store.has_layer("pois")
    with pytest.raises(TwinError):
        store.read_raster("dem")


def test_gpkg_corrupt_and_missing(tmp_path):
    from twin_core.errors import CorruptStoreError, StoreConnectionError

    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptStoreError, match="not a GeoPackage"):
        open_store(junk)
    truncated = tmp_path / "trunc.gpkg"
    s = open_store(truncated, create=True, crs="EPSG:4544")
    s.write_layer("pois", synthetic_layer("pois", n=50))
    s.close()
    raw = truncated.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(CorruptStoreError):
        open_store(truncated)
    with pytest.raises(StoreConnectionError, match="does not exist"):
        open_store(tmp_path / "missing.gpkg")
    with pytest.raises(StoreConnectionError, match="gpkg"):
        open_store(tmp_path / "city.sqlite")


def test_gpkg_process_killed_inside_a_transaction_loses_nothing(tmp_path):
    """A process killed half-way through a transaction (layer, raster and table written, not committed)
    leaves SQLite's hot journal; the next open rolls it back: the store is as it was, and sound."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "k.gpkg"
    s = open_store(path, create=True, crs="EPSG:4544")
    s.write_layer("pois", synthetic_layer("pois", n=3))
    s.close()
    script = textwrap.dedent(f"""
        import os, numpy as np
        from affine import Affine
        from cim.raster import Raster
        from cim.store import open_store
        from tests.cim.test_store_contract import synthetic_layer
        s = open_store({str(path)!r})
        with s.transaction():
            s.write_layer("water", synthetic_layer("water", n=4))
            s.write_layer("pois", synthetic_layer("pois", n=7, seed=5))
            s.write_raster("dem", Raster(np.ones((40, 30), "float32"), Affine(5, 0, {X0}, 0, -5, {Y0}), "EPSG:4544"))
            print("inside", flush=True)
            os._exit(9)  # killed: no commit, no rollback, no close
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert proc.returncode == 9 and "inside" in proc.stdout, proc.stderr
    assert (tmp_path / "k.gpkg-journal").exists()  # the hot journal the kill left
    s = open_store(path)
    assert s.list_layers() == ["pois"] and s.list_rasters() == []
    assert s.read_layer("pois")["poi_id"].tolist() == synthetic_layer("pois", n=3)["poi_id"].tolist()
    s.close()
    import sqlite3

    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")} >= {"pois"}
    assert not {"water", "dem"} & {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()


def test_gpkg_crash_mid_transaction_is_recovered(tmp_path):
    """An earlier version copied the file to <file>.txn before each write: a copy a killed process
    left is restored the next time the store is opened."""
    import shutil

    import pyogrio

    path = tmp_path / "c.gpkg"
    s = open_store(path, create=True, crs="EPSG:4544")
    s.write_layer("pois", synthetic_layer("pois", n=3))
    s.close()
    shutil.copyfile(path, str(path) + ".txn")  # the snapshot taken before the write
    pyogrio.write_dataframe(synthetic_layer("water", n=2), path, layer="water", driver="GPKG")  # half a write
    with pytest.warns(Warning, match="unfinished transaction"):
        s = open_store(path)
    assert s.list_layers() == ["pois"]
    s.close()
    assert not (tmp_path / "c.gpkg.txn").exists()


def test_unreachable_dsn():
    from twin_core.errors import StoreConnectionError

    with pytest.raises(StoreConnectionError, match="cannot connect to PostGIS"):
        open_store("postgresql://nobody@127.0.0.1:1/nowhere")


def test_gpkg_readable_by_other_tools(tmp_path):
    """The produced file opens in GDAL tools (ogrinfo when installed) and rasterio reads the DEM."""
    import shutil
    import subprocess

    import pyogrio
    import rasterio

    path = tmp_path / "o.gpkg"
    s = open_store(path, create=True, crs="EPSG:4544")
    s.write_layer("buildings", synthetic_layer("buildings"))
    s.write_raster("dem", Raster(np.full((40, 50), 500.0, "float32"), Affine(5, 0, X0, 0, -5, Y0), "EPSG:4544"))
    s.close()
    layers = dict(pyogrio.list_layers(path))
    assert "buildings" in layers
    with rasterio.open(f"GPKG:{path}:dem") as ds:
        assert ds.read(1).shape == (40, 50) and float(ds.read(1).mean()) == 500.0
        assert ds.crs.to_epsg() == 4544
    if shutil.which("ogrinfo"):
        out = subprocess.run(["ogrinfo", "-ro", "-q", str(path)], capture_output=True, text=True, check=True).stdout
        assert "buildings" in out


def test_gpkg_writes_are_sound_geopackage(tmp_path):
    """Layers and rasters are written by GDAL into a side file and merged into the store: standalone
    (attached, INSERT ... SELECT) and inside a transaction (rows streamed); either way the R-tree passes
    SQLite's rtreecheck, GDAL's own bbox filter (which uses the R-tree) agrees with ours, appends keep
    the R-tree and feature count up to date, and rasters/CRS rows are whole."""
    import sqlite3

    import pyogrio
    import rasterio

    path = tmp_path / "m.gpkg"
    s = open_store(path, create=True, crs="EPSG:4544")
    big = synthetic_layer("buildings", n=3000, seed=2)
    s.write_layer("b_alone", big)
    with s.transaction():
        s.write_layer("b_txn", big)
        s.write_raster("dem_txn", Raster(np.arange(1200, dtype="float32").reshape(30, 40), Affine(5, 0, X0, 0, -5, Y0),
                                         "EPSG:4544"))
    s.write_raster("dem", Raster(np.full((600, 700), 2.0, "float32"), Affine(5, 0, X0, 0, -5, Y0), "EPSG:4544"))
    s.write_layer("b_alone", big.iloc[:50], mode="append")
    s.write_layer("b_txn", big.iloc[:70], mode="replace")
    s.close()
    con = sqlite3.connect(path)
    for name in ("b_alone", "b_txn"):
        assert con.execute(f"SELECT rtreecheck('rtree_{name}_geom')").fetchone()[0] == "ok"
    assert con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = 'b_alone'").fetchone()[0] == 3050
    assert con.execute("SELECT count(*) FROM rtree_b_txn_geom").fetchone()[0] == 70
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM gpkg_spatial_ref_sys WHERE organization_coordsys_id = 4544").fetchone()[0] == 1
    con.close()
    s = open_store(path)
    x0, y0 = big.total_bounds[:2]
    box = (x0 + 100, y0 + 100, x0 + 900, y0 + 700)
    for name, n in (("b_alone", 3050), ("b_txn", 70)):
        ours = s.read_layer(name, bbox=box)
        gdal = pyogrio.read_dataframe(path, layer=name, bbox=box)
        assert len(s.read_layer(name)) == n and sorted(ours["building_id"]) == sorted(gdal["building_id"])
    with rasterio.open(f"GPKG:{path}:dem_txn") as ds:
        assert np.array_equal(ds.read(1), np.arange(1200, dtype="float32").reshape(30, 40))
    assert float(s.read_raster("dem").data.mean()) == 2.0 and s.read_raster("dem").data.shape == (600, 700)
    s.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM gpkg_extensions WHERE table_name = 'gpkg_2d_gridded_tile_ancillary'"
                       ).fetchone()[0] == 1
    con.close()


def test_gpkg_custom_crs_without_epsg_code(tmp_path):
    """GDAL numbers a CRS without an EPSG code from 100000 in each file: merged layers and rasters
    share one row for it and read back in that CRS."""
    import pyogrio
    import rasterio
    from pyproj import CRS

    local = CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=104.1 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs")
    path = tmp_path / "c.gpkg"
    s = open_store(path, create=True, crs=local.to_wkt())
    gdf = synthetic_layer("pois", n=5).set_crs(local, allow_override=True)
    s.write_layer("a", gdf)
    with s.transaction():
        s.write_layer("b", gdf)
    s.write_raster("r", Raster(np.ones((10, 10), "float32"), Affine(5, 0, X0, 0, -5, Y0), local.to_wkt()))
    s.close()
    for name in ("a", "b"):
        assert CRS(pyogrio.read_info(path, layer=name)["crs"]).equals(local)
    with rasterio.open(f"GPKG:{path}:r") as ds:
        assert CRS(ds.crs.to_wkt()).equals(local)
    import sqlite3

    con = sqlite3.connect(path)
    ids = dict(con.execute("SELECT table_name, srs_id FROM gpkg_contents WHERE table_name IN ('a', 'b', 'r')"))
    n_srs = con.execute("SELECT count(*) FROM gpkg_spatial_ref_sys WHERE srs_id >= 100000").fetchone()[0]
    con.close()
    # both side files called it 100000; the second maps onto the first (same definition); the raster's
    # definition, written by another GDAL driver, differs in text and got an id of its own
    assert ids["a"] == ids["b"] == 100000 and n_srs == len(set(ids.values()))


def test_3d_layers_round_trip_and_mixed_dimensions_refused(store):
    """A layer is 2D or 3D in both stores: Z survives, a 2D/3D mix or a mismatched append is refused."""
    rng = np.random.default_rng(4)
    xyz = np.column_stack([X0 + rng.uniform(0, 500, 6), Y0 + rng.uniform(0, 500, 6), rng.uniform(480, 520, 6)])
    pts = gpd.GeoDataFrame({"k": np.arange(6)}, geometry=shapely.points(xyz), crs="EPSG:4544")
    ring = shapely.polygons(np.column_stack([[X0, X0 + 10, X0 + 10, X0], [Y0, Y0, Y0 + 10, Y0 + 10], [500.0] * 4]))
    poly = gpd.GeoDataFrame({"k": [1]}, geometry=[ring], crs="EPSG:4544")
    store.write_layer("gauges_3d", pts)
    store.write_layer("slab_3d", poly)
    back = store.read_layer("gauges_3d")
    assert back.geometry.has_z.all()
    np.testing.assert_allclose(shapely.get_coordinates(back.geometry.values, include_z=True), xyz, atol=1e-6)
    assert shapely.equals_exact(store.read_layer("slab_3d").geometry.values[0], ring, tolerance=1e-6)
    flat = pts.copy()
    flat["geometry"] = shapely.force_2d(pts.geometry.values)
    with pytest.raises(SchemaError, match="layer is 3D"):
        store.write_layer("gauges_3d", flat, mode="append")
    store.write_layer("gauges_2d", flat)
    with pytest.raises(SchemaError, match="layer is 2D"):
        store.write_layer("gauges_2d", pts, mode="append")
    mixed = pd.concat([pts.iloc[:3], flat.iloc[3:]])
    with pytest.raises(SchemaError, match="mix 2D and 3D"):
        store.write_layer("gauges_mixed", mixed)
    assert not store.has_layer("gauges_mixed")
    assert len(store.read_layer("gauges_3d")) == 6 and len(store.read_layer("gauges_2d")) == 6
    store.write_layer("gauges_3d", pts.iloc[:2], mode="append")
    assert store.read_layer("gauges_3d").geometry.has_z.all()


def test_longest_layer_names_are_distinct(store):
    """60-character names (the limit) sharing a long prefix stay distinct layers with their own indexes
    (PostgreSQL truncates identifiers at 63 bytes: index and sequence names must not collide)."""
    gdf = synthetic_layer("pois", n=4)
    a, b = "p" * 54 + "_one_1", "p" * 54 + "_one_2"
    store.write_layer(a, gdf)
    store.write_layer(b, gdf.iloc[:2])
    store.write_layer(a, gdf.iloc[:1], mode="append")
    assert (len(store.read_layer(a)), len(store.read_layer(b))) == (5, 2)
    assert len(store.read_layer(a, bbox=tuple(gdf.total_bounds))) == 5
    store.delete_layer(a)
    assert store.list_layers() == [b] and len(store.read_layer(b)) == 2
    with pytest.raises(SchemaError, match="at most 60"):
        store.write_layer("p" * 61, gdf)


def test_table_paging_count_and_row_deletes(store):
    """Tables page in the store (order_by, descending, limit/offset: ties keep insertion order), count and
    delete rows by filter; bad paging and an empty delete filter are refused."""
    df = pd.DataFrame({"k": [3, 1, 2, 1, 3], "tag": list("abcde"), "v": np.arange(5.0)})
    store.write_table("log", df)
    assert store.read_table("log")["tag"].tolist() == list("abcde")
    assert store.read_table("log", order_by="k")["tag"].tolist() == list("bdcae")
    assert store.read_table("log", order_by="k", descending=True)["tag"].tolist() == list("eacdb")
    assert store.read_table("log", order_by=["k", "v"], limit=2, offset=1)["tag"].tolist() == list("dc")
    assert store.read_table("log", descending=True, limit=2, columns=["tag"])["tag"].tolist() == list("ed")
    assert store.read_table("log", where={"k": 1}, offset=1)["tag"].tolist() == ["d"]
    assert store.read_table("log", limit=0).empty and list(store.read_table("log", limit=0).columns) == ["k", "tag", "v"]
    assert store.count_rows("log") == 5 and store.count_rows("log", where={"k": [1, 3]}) == 4
    assert store.delete_rows("log", {"k": 3}) == 2
    assert store.read_table("log")["tag"].tolist() == list("bcd")
    assert store.delete_rows("log", {"tag": "x'; DROP TABLE log; --"}) == 0 and store.count_rows("log") == 3
    with pytest.raises(ValueError, match="non-empty where"):
        store.delete_rows("log", {})
    with pytest.raises(SchemaError, match="cannot order"):
        store.read_table("log", order_by="nope")
    with pytest.raises(ValueError, match="non-negative"):
        store.read_table("log", limit=-1)
    with pytest.raises(ValueError, match="non-negative"):
        store.read_table("log", offset="1; DROP TABLE log")
    with pytest.raises(LayerNotFoundError):
        store.count_rows("nothing")
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction():
            store.delete_rows("log", {"k": 1})
            raise RuntimeError("boom")
    assert store.count_rows("log") == 3


def test_create_index_is_idempotent_transactional_and_lives_with_its_table(store):
    from cim.store.base import index_name

    store.write_table("log", pd.DataFrame({"sensor_id": ["a", "b"], "Time": ["t1", "t2"], "v": [1.0, 2.0]}))
    assert store.list_indexes("log") == {}
    name = store.create_index("log", ["sensor_id", "Time"])  # a mixed-case column: quoted, not folded
    assert name == index_name("log", ["sensor_id", "Time"]) and name.startswith("twin_ix_log_") and len(name) <= 63
    assert store.create_index("log", ["sensor_id", "Time"]) == name  # again: nothing new
    assert store.create_index("log", "v") != name  # one column by its name
    assert store.list_indexes("log") == {name: ["sensor_id", "Time"], index_name("log", ["v"]): ["v"]}
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction():
            store.create_index("log", ["Time", "sensor_id"])  # another order is another index ...
            raise RuntimeError("boom")
    assert len(store.list_indexes("log")) == 2  # ... rolled back with its transaction
    store.write_table("log", pd.DataFrame({"sensor_id": ["c"], "Time": ["t3"], "v": [3.0]}), mode="append")
    assert name in store.list_indexes("log")  # appends keep it
    store.write_table("log", pd.DataFrame({"sensor_id": ["c"], "Time": ["t3"], "v": [3.0]}))
    assert store.list_indexes("log") == {}  # a replaced table is a new one
    long = "t" * 60  # the longest table name: the index name stays within PostgreSQL's 63 characters, distinct
    store.write_table(long, pd.DataFrame({"a": [1], "b": [2]}))
    made = {store.create_index(long, "a"), store.create_index(long, "b")}
    assert len(made) == 2 and set(store.list_indexes(long)) == made
    assert all(len(n) <= 63 for n in store.list_indexes(long))


@pytest.mark.parametrize("table, columns, error, words", [
    ("nothing", ["a"], LayerNotFoundError, "no table 'nothing'"),
    ("roads", ["a"], LayerNotFoundError, "'roads' is a layer"),
    ('log"; DROP TABLE log; --', ["a"], SchemaError, "is not valid"),
    ("twin_meta", ["key"], SchemaError, "is reserved"),
    ("log", [], SchemaError, "non-empty list"),
    ("log", None, SchemaError, "non-empty list"),
    ("log", ["nope"], SchemaError, "has no column(s) ['nope'] to index; it has ['a', 'b']"),
    ("log", ['a"); DROP TABLE log; --'], SchemaError, "has no column(s)"),
    ("log", ["A"], SchemaError, "has no column(s) ['A']"),  # names are exact
    ("log", ["a", "a"], SchemaError, "more than once"),
    ("log", ["fid"], SchemaError, "store's own key"),
    ("log", [1], SchemaError, "must be column names"),
])
def test_create_index_refuses_bad_input_and_changes_nothing(store, table, columns, error, words):
    store.write_table("log", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    store.write_layer("roads", gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(X0, Y0)], crs="EPSG:4544"))
    with pytest.raises(error) as exc:
        store.create_index(table, columns)
    assert words in str(exc.value)
    assert store.list_tables() == ["log"] and store.list_indexes("log") == {}
    assert store.read_table("log")["a"].tolist() == [1, 2]


def test_postgis_schema_of_something_else_is_left_alone(pg_dsn):
    # opening a schema that holds no twin (e.g. the DSN without ?schema=, i.e. 'public') created
    # the twin's tables in it
    import psycopg
    from psycopg import sql

    from twin_core.errors import StoreConnectionError

    server, schema = pg_dsn.split("?schema=")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {}.app_data (x int)").format(sql.Identifier(schema)))
    with pytest.raises(StoreConnectionError, match=r"holds no twin.*\?schema=NAME"):
        open_store(pg_dsn)
    with psycopg.connect(server) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)).fetchall()
    assert tables == [("app_data",)]
    store = open_store(pg_dsn, create=True, crs="EPSG:4544")  # asked for: a twin is made there
    store.close()
    open_store(pg_dsn).close()
