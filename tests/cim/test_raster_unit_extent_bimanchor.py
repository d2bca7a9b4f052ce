"""A raster's unit survives export and import (the GeoTIFF band's unit), and a twin that holds only a DEM has
an extent that a vector import far from it is checked against."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from cim.io.raster import export_raster, import_raster
from cim.io.vector import import_vector
from cim.raster import Raster
from twin_core.errors import RasterError, TwinWarning

CRS = "EPSG:4544"
# a 40 x 50 grid of 5 m cells from (409300, 3391200) to (409550, 3391400): central Chengdu
T = (5.0, 0.0, 409300.0, 0.0, -5.0, 3391400.0)


def _grid(unit):
    return Raster(np.linspace(480.0, 520.0, 2000, dtype="float32").reshape(40, 50), T, CRS, unit=unit)


@pytest.mark.parametrize("name,unit", [("dem", "m"), ("rain_rate", "mm/h")])
def test_export_then_import_keeps_the_unit(store, tmp_path, name, unit):
    from cim.store import open_store

    store.write_raster(name, _grid(unit))
    out = export_raster(store, name, tmp_path / f"{name}.tif")
    with rasterio.open(out) as ds:
        assert ds.units[0] == unit  # the file said no unit
    with open_store(str(tmp_path / "other.gpkg"), create=True, crs=CRS) as other:
        import_raster(other, out, name)
        assert other.raster_info(name)["unit"] == unit
        assert other.read_raster(name).unit == unit
    # a Raster exported on its own keeps its unit too; one without a unit writes none
    with rasterio.open(export_raster(_grid(unit), tmp_path / "own.tif")) as ds:
        assert ds.units[0] == unit
    with rasterio.open(export_raster(_grid(None), tmp_path / "none.tif")) as ds:
        assert not ds.units[0]


def test_an_exported_raster_in_feet_is_not_taken_for_a_dem_in_metres(store, tmp_path):
    store.write_raster("elev_ft", _grid("ft"))
    out = export_raster(store, "elev_ft", tmp_path / "elev_ft.tif")
    with pytest.raises(RasterError, match=r"raster 'dem' holds .* in m, but elev_ft.tif gives its values in 'ft'"):
        import_raster(store, out, "dem")
    assert not store.has_raster("dem")


def _pois(path, x, y):
    gpd.GeoDataFrame({"poi_id": ["p1"], "kind": ["shelter"]}, geometry=[shapely.Point(x, y)],
                     crs=CRS).to_file(path)
    return path


def test_a_first_layer_far_from_the_only_dem_warns(store, tmp_path):
    store.write_raster("dem", _grid("m"))
    assert not store.list_layers() and not store.get_meta().get("extent")  # the DEM is all the twin holds
    far = _pois(tmp_path / "far.geojson", 409400.0 + 100_000.0, 3391300.0)  # 100 km east of the DEM
    with pytest.warns(TwinWarning, match=r"the 1 feature\(s\) for 'pois' lie 99\.\d km from the twin's extent "
                                         r".*check the source CRS"):
        assert import_vector(store, far, "pois") == 1
    near = _pois(tmp_path / "near.geojson", 409400.0, 3391000.0)  # 200 m south of the DEM: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwinWarning)
        import_vector(store, near, "pois")
