"""Vector import/export: any file GDAL reads, into a feature class of the twin.

Examples
--------
>>> import tempfile, os, geopandas as gpd, shapely
>>> from cim.store import open_store
>>> d = tempfile.mkdtemp()
>>> src = gpd.GeoDataFrame({"ID": ["s1"], "KIND": ["shelter"]}, geometry=[shapely.Point(104.06, 30.66)], crs="EPSG:4326")
>>> src.to_file(os.path.join(d, "pois.geojson"))
>>> store = open_store(os.path.join(d, "t.gpkg"), create=True, crs="EPSG:4544")
>>> import_vector(store, os.path.join(d, "pois.geojson"), "pois", field_map={"ID": "poi_id", "KIND": "kind"})
1
>>> round(store.read_layer("pois").geometry.x[0])  # metres in CGCS2000 GK CM105E
409907
>>> store.close()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from cim.crs import resolve_crs, to_twin_crs
from cim.schema import FEATURE_CLASSES, conform, field_map_apply
from twin_core.errors import CRSError, ImportFormatError, SchemaError

__all__ = ["read_vector", "import_vector", "export_layer", "prepare_layer", "EXPORT_FORMATS"]

EXPORT_FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".parquet": "GeoParquet",
                  ".geoparquet": "GeoParquet", ".shp": "ESRI Shapefile", ".fgb": "FlatGeobuf"}


def read_vector(path: str | os.PathLike, layer: str | int | None = None):
    """Read a vector file (GeoJSON, Shapefile, GeoPackage, GeoParquet, FlatGeobuf ...)."""
    import geopandas as gpd
    import pyogrio

    p = Path(path)
    if not p.exists():
        raise ImportFormatError(f"{p} does not exist")
    try:
        if p.suffix.lower() in (".parquet", ".geoparquet"):
            return gpd.read_parquet(p)
        return pyogrio.read_dataframe(p, layer=layer)
    except Exception as exc:  # GDAL/arrow raise many types; all mean "cannot read"
        raise ImportFormatError(
            f"cannot read {p} as a vector file ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            "give a GeoJSON, Shapefile, GeoPackage or GeoParquet file that GDAL can open"
        ) from exc


def prepare_layer(gdf, feature_class: str | None, twin_crs: Any, *, field_map: Mapping[str, str] | None = None,
                  source_crs: Any = None, allow_extra: bool = False):
    """Map fields, reproject to the twin CRS and conform to the feature class."""
    import shapely

    gdf = field_map_apply(gdf, field_map)
    gdf = to_twin_crs(gdf, twin_crs, source_crs)
    if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
        n = int((gdf.geometry.isna() | gdf.geometry.is_empty).sum())
        raise SchemaError(f"{n} feature(s) have no geometry; remove them or fix the source")
    if feature_class is None:
        return gdf
    fc = FEATURE_CLASSES.get(feature_class)
    if fc is None:
        raise SchemaError(f"unknown feature class {feature_class!r}; choose one of {sorted(FEATURE_CLASSES)}")
    gdf = conform(gdf, fc, allow_extra=allow_extra)
    if fc.geometry_type.startswith("Multi"):
        single = fc.geometry_type[5:]
        geoms = gdf.geometry.values
        ids = shapely.get_type_id(geoms)
        want_single = {"Polygon": 3, "LineString": 1, "Point": 0}[single]
        ctor = {"Polygon": shapely.multipolygons, "LineString": shapely.multilinestrings, "Point": shapely.multipoints}[single]
        gdf = gdf.copy()
        gdf[gdf.geometry.name] = [ctor([g]) if t == want_single else g for g, t in zip(geoms, ids)]
    kinds = set(gdf.geometry.geom_type.unique())
    allowed = {fc.geometry_type, fc.geometry_type.replace("Multi", "")}
    if not kinds <= allowed:
        raise SchemaError(f"feature class {fc.name!r} holds {fc.geometry_type} geometries; the input has {sorted(kinds)}")
    return gdf


def import_vector(store, path: str | os.PathLike, feature_class: str, *, field_map: Mapping[str, str] | None = None,
                  crs: Any = None, layer: str | int | None = None, name: str | None = None, mode: str = "replace",
                  allow_extra: bool = False) -> int:
    """Import a vector file into the store as ``feature_class`` (layer ``name``, default the class name).

    The data is reprojected to the store's CRS; a file without a CRS needs
    ``crs=``. Returns the number of features written. Nothing is written if any
    step fails.
    """
    twin_crs = store.crs
    if twin_crs is None:
        raise CRSError(f"the store {store.uri} has no CRS; create it with crs='EPSG:4544'")
    gdf = read_vector(path, layer)
    fc = feature_class if feature_class in FEATURE_CLASSES else None
    if fc is None and name is None:
        raise SchemaError(f"unknown feature class {feature_class!r}; choose one of {sorted(FEATURE_CLASSES)}")
    gdf = prepare_layer(gdf, fc, twin_crs, field_map=field_map, source_crs=crs, allow_extra=allow_extra)
    with store.transaction():
        return store.write_layer(name or feature_class, gdf, mode=mode)


def export_layer(store, name: str, path: str | os.PathLike, *, crs: Any = None, scenario=None) -> Path:
    """Export a layer to GeoPackage, GeoJSON (WGS 84 by default, per RFC 7946), GeoParquet or Shapefile."""
    import pyogrio

    p = Path(path)
    driver = EXPORT_FORMATS.get(p.suffix.lower())
    if driver is None:
        raise ImportFormatError(f"cannot tell the format of {p.name}; use one of {sorted(EXPORT_FORMATS)}")
    gdf = scenario.layer(name) if scenario is not None else store.read_layer(name)
    if crs is None and driver == "GeoJSON":
        crs = "EPSG:4326"
    if crs is not None:
        gdf = gdf.to_crs(resolve_crs(crs))
    p.parent.mkdir(parents=True, exist_ok=True)
    if driver == "GeoParquet":
        gdf.to_parquet(p)
    else:
        pyogrio.write_dataframe(gdf, p, layer=name if driver == "GPKG" else None, driver=driver)
    return p
