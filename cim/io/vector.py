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
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from cim.crs import (check_area_of_use, check_in_twin_area, fmt_box, is_undefined_crs, resolve_crs, source_crs_of,
                      to_twin_crs)
from cim.schema import FEATURE_CLASSES, FeatureClass, conform, field_map_apply
from twin_core.errors import CRSError, ImportFormatError, SchemaError, StoreError, TwinWarning, twin_warn

__all__ = ["read_vector", "import_vector", "is_sumo_net", "export_layer", "write_frame", "prepare_layer",
           "EXPORT_FORMATS"]

EXPORT_FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".parquet": "GeoParquet",
                  ".geoparquet": "GeoParquet", ".shp": "ESRI Shapefile", ".fgb": "FlatGeobuf"}


def read_vector(path: str | os.PathLike, layer: str | int | None = None):
    """Read a vector file (GeoJSON, Shapefile, GeoPackage, GeoParquet, FlatGeobuf ...)."""
    import geopandas as gpd
    import pyogrio

    p = Path(path)
    if not p.exists():
        raise ImportFormatError(f"{p} does not exist")
    _refuse_other_formats(p)
    if p.is_dir() and p.suffix.lower() != ".gdb":  # GDAL would read the first Shapefile in it, whichever that is
        raise ImportFormatError(f"{p} is a folder; give the file to import, e.g. {p / 'roads.shp'} (a File "
                                "Geodatabase folder, *.gdb, is read as one dataset)")
    try:
        if p.suffix.lower() in (".parquet", ".geoparquet"):
            return gpd.read_parquet(p)
        if layer is None:
            layer = _only_layer(p)
        gdf = pyogrio.read_dataframe(p, layer=layer)
    except _ManyLayers:
        raise
    except UnicodeDecodeError as exc:
        raise ImportFormatError(
            f"cannot read {p}: its text is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8 (GeoJSON must be UTF-8), e.g. iconv -f GBK -t UTF-8 in.geojson > out.geojson"
        ) from exc
    except Exception as exc:  # GDAL/arrow raise many types; all mean "cannot read"
        _refuse_unknown_layer(p, layer)
        raise ImportFormatError(
            f"cannot read {p} as a vector file ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            "give a GeoJSON, Shapefile, GeoPackage or GeoParquet file that GDAL can open"
        ) from exc
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise ImportFormatError(
            f"{p.name} has no geometry (GDAL read {len(gdf.columns)} plain column(s): {list(gdf.columns)[:10]}); "
            "give a file with geometries, e.g. make a GeoJSON or GeoPackage from a table of coordinates with "
            "ogr2ogr out.gpkg in.csv -oo X_POSSIBLE_NAMES=lon -oo Y_POSSIBLE_NAMES=lat -a_srs EPSG:4326"
        )
    if gdf.crs is not None and is_undefined_crs(gdf.crs):  # a GeoPackage's srs_id 0 or -1: no CRS stated
        gdf = gdf.set_crs(None, allow_override=True)
    elif not p.is_dir() and p.suffix.lower() in (".geojson", ".json", ".geojsonl", ".geojsons") \
            and _driver(p, layer) in ("GeoJSON", "GeoJSONSeq") and not _geojson_states_crs(p):
        gdf.attrs[CRS_DEFAULT_ATTR] = True
    if p.suffix.lower() == ".shp":
        _refuse_missing_dbf(p, [p.with_suffix(e).name for e in (".dbf", ".DBF") if p.with_suffix(e).exists()],
                            p.with_suffix(".dbf").name, "beside it")
        _check_shapefile_encoding(p, gdf)
        gdf = _exact_wide_numbers(p, gdf)
    elif p.suffix.lower() in (".zip", ".shz"):
        _check_zipped_shapefile_encoding(p, layer, gdf)
    return gdf


#: ``gdf.attrs`` key :func:`read_vector` sets where the frame's CRS is GDAL's default, not the file's word: a
#: GeoJSON without a ``crs`` member (EPSG:4326 by RFC 7946), which ``--crs`` may then name
CRS_DEFAULT_ATTR = "crs_not_stated"


def _driver(p: Path, layer) -> str | None:
    """The GDAL driver that reads ``p`` (a .json may be Esri JSON or TopoJSON, which state their CRS otherwise)."""
    import pyogrio

    try:
        return pyogrio.read_info(p, layer=layer).get("driver")
    except Exception:  # noqa: BLE001 - it was read already; nothing to add
        return None


def _geojson_states_crs(p: Path) -> bool:
    """Whether a GeoJSON file has a top-level ``crs`` member (the pre-RFC 7946 way to state a CRS)."""
    import json

    try:
        raw = p.read_bytes()
    except OSError:
        return True  # unreadable here: keep GDAL's reading
    if b'"crs"' not in raw:
        return False
    try:
        doc = json.loads(raw)
    except ValueError:  # GeoJSON sequence or other text GDAL read: a crs member anywhere counts
        return True
    return isinstance(doc, dict) and "crs" in doc


def is_sumo_net(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a SUMO road network (``*.net.xml`` or ``*.net.xml.gz``)."""
    return str(path).lower().endswith((".net.xml", ".net.xml.gz"))


def _refuse_other_formats(p: Path) -> None:
    """Files GDAL cannot read as a layer but that RongTwin knows: a SUMO network has its own importer, and
    CityJSON is written (``twin export ... b.city.json``) but not read (GDAL said only 'not recognized')."""
    if is_sumo_net(p):
        raise ImportFormatError(
            f"{p.name} is a SUMO road network: import it with `twin import TWIN {p.name} --class road_links` "
            "(which writes road_links and road_nodes) or, in Python, cim.io.sumo.import_sumo_net(store, path)")
    if p.name.lower().endswith((".city.json", ".cityjson", ".city.jsonl", ".cityjsonl")):
        raise ImportFormatError(
            f"{p.name} is CityJSON, which RongTwin writes (twin export) but cannot import; import the buildings "
            "as footprints with heights instead: a GeoPackage, Shapefile or GeoJSON exported from the data the "
            "CityJSON was made from (`twin import TWIN footprints.gpkg --class buildings`)")

def _refuse_missing_dbf(shp: Path, found: list[str], dbf: str, where: str) -> None:
    """Refuse a Shapefile without its .dbf: GDAL reads its geometries alone, and the import then said only
    that the field map names fields 'the input lacks; it has ['geometry']'."""
    if found:
        return
    raise ImportFormatError(
        f"{shp.name if shp.suffix else shp} has no {dbf} (the file of its attributes: ids, names, kinds ...), so "
        f"only its geometries could be read; put {dbf} {where} (a Shapefile is .shp, .shx, .dbf and .prj, "
        "with the .cpg where there is one) and import again")


def _refuse_unknown_layer(p: Path, layer) -> None:
    """Refuse a layer the file does not have, listing the ones it has (GDAL said 'could not be opened')."""
    import pyogrio

    if layer is None or isinstance(layer, (int, np.integer)):
        return
    try:
        names = [str(n) for n, _ in pyogrio.list_layers(p)]
    except Exception:  # noqa: BLE001 - not readable at all: the caller says why
        return
    if str(layer) not in names:
        raise ImportFormatError(
            f"{p.name} has no layer {str(layer)!r}; its layers are {names[:20]}{' ...' if len(names) > 20 else ''}: "
            "name one of them with --layer NAME (layer=...)")

class _ManyLayers(ImportFormatError):
    pass


def _only_layer(p: Path):
    """The layer to read from a file when none is named: its one layer, or its one layer with geometries.
    A file of several layers with geometries is refused: GDAL would read the first, whichever that is."""
    import pyogrio

    try:
        layers = pyogrio.list_layers(p)
    except Exception:  # noqa: BLE001 - not readable: read_dataframe says why
        return None
    if len(layers) <= 1:
        return None
    spatial = [str(n) for n, g in layers if g is not None]
    if len(spatial) == 1:
        return spatial[0]
    names = spatial or [str(n) for n, _ in layers]
    raise _ManyLayers(
        f"{p.name} holds {len(names)} layers {names[:10]}{' ...' if len(names) > 10 else ''}; name the one to "
        "import with --layer NAME (layer=...)"
    )


#: 2**53: the first whole number a float64 cannot tell from its neighbour (9007199254740993 reads as ...992)
_EXACT_FLOAT = 2.0**53


def _exact_wide_numbers(p: Path, gdf):
    """Read again, as text from the .dbf, the whole numbers GDAL rounded: a dBASE number field (N or F) of
    19 or more digits and no decimals (OpenStreetMap ids, parcel codes ...) comes out of GDAL as float64,
    which turns 9007199254740993 into 9007199254740992. Such a column holding a value of 2**53 or more is
    replaced by its exact values (Int64, or text where one does not fit in 64 bits)."""
    dbf = next((p.with_suffix(ext) for ext in (".dbf", ".DBF") if p.with_suffix(ext).exists()), None)
    if dbf is None:
        return gdf
    wide = [c for c in gdf.columns if c != gdf.geometry.name and pd.api.types.is_float_dtype(gdf[c].dtype)
            and (np.abs(gdf[c].to_numpy(dtype="float64", na_value=np.nan)) >= _EXACT_FLOAT).any()]
    if not wide:
        return gdf
    try:
        with open(dbf, "rb") as fh:
            raw = fh.read()
        n_rec, head_len, rec_len = int.from_bytes(raw[4:8], "little"), int.from_bytes(raw[8:10], "little"), \
            int.from_bytes(raw[10:12], "little")
        fields, off, pos = {}, 32, 1
        while off + 32 <= head_len and raw[off] != 0x0D:
            fname = raw[off:off + 11].split(b"\0")[0].decode("latin-1")
            ftype, width, dec = chr(raw[off + 11]), raw[off + 16], raw[off + 17]
            fields[fname.lower()] = (ftype, pos, width, dec)
            pos += width
            off += 32
        recs = [raw[head_len + i * rec_len: head_len + (i + 1) * rec_len] for i in range(n_rec)]
        recs = [r for r in recs if r[:1] != b"*"]  # deleted records, which GDAL skips too
    except (OSError, IndexError, ValueError):
        return gdf  # the values stay as read; conform refuses those a float cannot hold
    if len(recs) != len(gdf):
        return gdf
    gdf = gdf.copy()
    for col in wide:
        f = fields.get(str(col).lower())
        if f is None or f[0] not in "NF" or f[3] != 0:
            continue
        _, pos, width = f[:3]
        vals = []
        for r in recs:
            t = r[pos:pos + width].strip().decode("ascii", errors="replace")
            try:
                vals.append(int(t) if t and not t.startswith("*") else None)  # '*' fills a number that overflowed
            except ValueError:
                vals = None
                break
        if vals is None:
            continue
        if all(v is None or -2**63 <= v < 2**63 for v in vals):
            gdf[col] = pd.array(vals, dtype="Int64")
        else:
            gdf[col] = pd.Series([None if v is None else str(v) for v in vals], index=gdf.index, dtype=object)
    return gdf

def _check_shapefile_encoding(p: Path, gdf) -> None:
    """Refuse a Shapefile whose text is not ASCII and whose encoding nothing declares (no .cpg file, no
    language driver id in the .dbf): GDAL then reads it as Latin-1, which turns GBK or UTF-8 Chinese text
    into mojibake ('避难所' in GBK becomes '±ÜÄÑËù') without a word."""
    if any(p.with_suffix(ext).exists() for ext in (".cpg", ".CPG")):
        return
    dbf = next((p.with_suffix(ext) for ext in (".dbf", ".DBF") if p.with_suffix(ext).exists()), None)
    if dbf is None:
        return
    with open(dbf, "rb") as fh:
        head = fh.read(32)
    _refuse_undeclared_text(head, gdf, p.name, p.with_suffix(".cpg").name, "")


def _check_zipped_shapefile_encoding(p: Path, layer, gdf) -> None:
    """:func:`_check_shapefile_encoding` for a Shapefile read from a .zip (GDAL reads the Shapefiles at the
    zip's root, one layer each, named by the file's stem): the .cpg and .dbf are looked up inside the zip."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            shps = [n for n in names if "/" not in n and n.lower().endswith(".shp")]
            if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
                import pyogrio

                layer = str(pyogrio.list_layers(p)[int(layer)][0])
            if layer is not None:
                shps = [n for n in shps if n[:-4] == str(layer)] or [n for n in shps
                                                                      if n[:-4].lower() == str(layer).lower()]
            if len(shps) != 1:
                return  # no Shapefile (a zipped GeoJSON or GeoPackage), or none that is this layer
            stem = shps[0][:-4]
            by_lower = {n.lower(): n for n in names}
            _refuse_missing_dbf(Path(f"{p.name}: {shps[0]}"), [n for n in names if n.lower() == f"{stem}.dbf".lower()],
                                f"{stem}.dbf", f"inside {p.name}, beside {shps[0]}")
            if by_lower.get(f"{stem}.cpg".lower()) is not None:
                return
            dbf = by_lower.get(f"{stem}.dbf".lower())
            if dbf is None:
                return
            with zf.open(dbf) as fh:
                head = fh.read(32)
    except (zipfile.BadZipFile, OSError, IndexError, KeyError):
        return  # GDAL read it, so not a plain zip of Shapefiles; nothing to look up
    _refuse_undeclared_text(head, gdf, f"{p.name}: {stem}.shp", f"{stem}.cpg", f" inside {p.name}")


def _refuse_undeclared_text(dbf_head: bytes, gdf, what: str, cpg: str, where: str) -> None:
    """The refusal of :func:`_check_shapefile_encoding`, given the first 32 bytes of the .dbf of a Shapefile
    without a .cpg (``what``: the Shapefile, ``cpg``: the .cpg it lacks, ``where``: where that belongs)."""
    if len(dbf_head) < 32 or dbf_head[29] != 0:  # byte 29: the language driver id, which names a code page
        return
    for col in gdf.columns:
        if col == gdf.geometry.name or not (pd.api.types.is_string_dtype(gdf[col]) or gdf[col].dtype == object):
            continue
        for v in gdf[col]:
            if isinstance(v, str) and not v.isascii():
                raw = v.encode("latin-1", errors="replace")
                reads = []
                for enc in ("utf-8", "gbk"):
                    try:
                        reads.append(f"{raw.decode(enc)!r} in {enc.upper()}")
                    except UnicodeDecodeError:
                        pass
                as_ = f" (it reads as {' or '.join(reads)})" if reads else ""
                raise ImportFormatError(
                    f"{what} does not say how its text is encoded (no {cpg} file{where}) and its "
                    f"field {col!r} holds non-ASCII text such as {v!r} as read in Latin-1{as_}; write the encoding "
                    f"into {cpg}{where} (e.g. GBK, UTF-8 or ISO-8859-1, one line) and import again"
                )


def prepare_layer(gdf, feature_class: str | None, twin_crs: Any, *, field_map: Mapping[str, str] | None = None,
                  source_crs: Any = None, allow_extra: bool = False, drop: Iterable[str] | None = None,
                  crs_stated: bool = True):
    """Drop and map fields, reproject to the twin CRS and conform to the feature class.

    Coordinates that lie outside the area of the source CRS, or that are not finite in the twin
    CRS, are refused: they mean the source CRS (``source_crs`` / the file's own) is wrong.
    ``crs_stated=False``: the frame's CRS is the reader's default, not the file's word (a GeoJSON without a
    ``crs`` member, read as lon/lat WGS 84 by RFC 7946), so ``source_crs`` may name another.
    """
    import shapely

    gdf = field_map_apply(gdf, field_map, drop=drop)
    src = gdf
    src_crs = source_crs_of(src.crs, source_crs, stated=crs_stated)
    gdf = to_twin_crs(gdf, twin_crs, source_crs, stated=crs_stated)
    if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
        n = int((gdf.geometry.isna() | gdf.geometry.is_empty).sum())
        raise SchemaError(f"{n} feature(s) have no geometry; remove them or fix the source")
    try:
        check_area_of_use(src.total_bounds, src_crs)
        check_in_twin_area(src.total_bounds, src_crs, resolve_crs(twin_crs))
    except CRSError as exc:
        hint = _coordinate_mixup(src.total_bounds, src_crs, resolve_crs(twin_crs))
        if hint:
            raise CRSError(hint) from exc
        if not crs_stated and source_crs is None:
            raise CRSError(
                f"the input states no CRS (a GeoJSON without a crs member, read as lon/lat WGS 84, EPSG:4326, as "
                f"RFC 7946 says), but its bounds {fmt_box(src.total_bounds)} are not lon/lat: pass the CRS its "
                "coordinates are in with --crs (crs=...), e.g. --crs EPSG:4544 for metres in Chengdu's "
                "Gauss-Kruger zone (CGCS2000 CM 105E) or EPSG:32648 for UTM 48N") from exc
        raise
    _check_finite(gdf, src_crs)
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
    else:
        gdf = _single_parts(gdf, fc)
    kinds = set(gdf.geometry.geom_type.unique())
    allowed = {fc.geometry_type, fc.geometry_type.replace("Multi", "")}
    if not kinds <= allowed:
        raise SchemaError(f"feature class {fc.name!r} holds {fc.geometry_type} geometries; the input has {sorted(kinds)}")
    _check_valid(gdf, fc)
    return gdf


def _coordinate_mixup(bounds, src_crs, twin_crs) -> str | None:
    """Why coordinates refused as outside their CRS's area are so, where it is one of two common slips: latitude
    and longitude swapped (30.657, 104.065), or Gauss-Krueger eastings that carry their zone number in front
    (35409907: zone 35) read in the CRS without it (EPSG:4544). None where it is neither."""
    from pyproj import CRS

    from cim.crs import in_area_of_use, meets_area

    b = [float(v) for v in bounds]
    if not np.all(np.isfinite(b)):
        return None
    if src_crs.is_geographic:
        swapped = [b[1], b[0], b[3], b[2]]
        area = (twin_crs.area_of_use if twin_crs is not None else None) or src_crs.area_of_use
        if (all(abs(v) <= 180 for v in swapped[::2]) and all(abs(v) <= 90 for v in swapped[1::2])
                and area is not None and meets_area(swapped, area)):
            return (f"the data's bounds {fmt_box(b)} read as longitude, latitude lie outside the twin's area, but "
                    f"as latitude, longitude they lie in it (lon/lat {fmt_box(swapped)}): the file has latitude "
                    "first. Write x = longitude and y = latitude (GeoJSON, Shapefile and GeoPackage keep longitude "
                    "first; for a CSV, swap the X_POSSIBLE_NAMES / Y_POSSIBLE_NAMES columns) and import again")
        return None
    if not (1e7 <= b[0] and b[2] < 1e8):
        return None
    zone = int(b[0] // 1e6)
    if int(b[2] // 1e6) != zone:
        return None
    code = 4513 + zone - 25 if 25 <= zone <= 45 else 4491 + zone - 13 if 13 <= zone <= 23 else None
    what = (f"x coordinates such as {b[0]:.0f} carry the Gauss-Krueger zone number {zone} in front "
            "(x = zone * 1,000,000 + easting)")
    if code is not None and (src_crs.name or "").startswith("CGCS2000"):
        zcrs = CRS.from_epsg(code)
        if in_area_of_use([b], zcrs)[0]:
            return (f"{what}, so they are in EPSG:{code} ({zcrs.name}), not in {src_crs.to_string()} "
                    f"({src_crs.name}), which has no zone number; import with --crs EPSG:{code} (crs='EPSG:{code}'), "
                    "or set that CRS in the file's .prj")
    return (f"{what}, which {src_crs.to_string()} ({src_crs.name}) does not have; give the CRS of that zone with "
            "the zone number (its false easting is the zone number followed by 500000) with --crs (crs=...)")

def _single_parts(gdf, fc: FeatureClass):
    """For a class of single geometries (road links, POIs ...): a MultiLineString or MultiPoint of one part
    (as QGIS and ArcGIS write them) becomes that part; one of several parts is refused, naming the feature
    and how to split them (a road link is one line: its ends are the network's nodes)."""
    import shapely

    multi = "Multi" + fc.geometry_type
    geoms = gdf.geometry.values
    is_multi = np.asarray(gdf.geometry.geom_type == multi)
    if not is_multi.any():
        return gdf
    parts = shapely.get_num_geometries(geoms)
    many = np.flatnonzero(is_multi & (parts > 1))
    if len(many):
        i = int(many[0])
        where = _feature_where(gdf, fc, i)
        raise SchemaError(
            f"feature class {fc.name!r} holds {fc.geometry_type} geometries, one per feature; {len(many)} "
            f"feature(s) of the input are {multi}s of several parts, e.g. {where} with {int(parts[i])} parts. "
            f"Split them into one feature per part and import again: ogr2ogr -explodecollections out.gpkg IN "
            "(QGIS: Multipart to Singleparts; GeoPandas: gdf.explode()), then give each part its own id")
    gdf = gdf.copy()
    one = shapely.get_geometry(geoms, 0)
    gdf[gdf.geometry.name] = np.where(is_multi, one, geoms)
    return gdf

def _feature_where(gdf, fc: FeatureClass, i: int) -> str:
    """Which feature of the input row ``i`` is, for a message: its number, and its id where it has one."""
    where = f"feature {i + 1} of {len(gdf)}"
    if fc.id_field in gdf.columns and not pd.isna(gdf[fc.id_field].iloc[i]):
        where += f" ({fc.id_field} {gdf[fc.id_field].iloc[i]!r})"
    return where


def _check_valid(gdf, fc: FeatureClass) -> None:
    """Refuse invalid geometries (self-intersecting polygons, lines of one point ...): areas, overlays and the
    engines' rasterising go wrong on them, far from the import that let them in."""
    import shapely

    geoms = gdf.geometry.values
    bad = np.flatnonzero(~shapely.is_valid(geoms))
    if not len(bad):
        return
    i = int(bad[0])
    where = _feature_where(gdf, fc, i)
    raise SchemaError(
        f"layer {fc.name!r}: {len(bad)} feature(s) have invalid geometry, e.g. {where}: "
        f"{shapely.is_valid_reason(geoms[i])}. Fix them in the source (QGIS: Fix Geometries; PostGIS: "
        "ST_MakeValid; Python: shapely.make_valid) and import again"
    )


def import_vector(store, path: str | os.PathLike, feature_class: str, *, field_map: Mapping[str, str] | None = None,
                  crs: Any = None, layer: str | int | None = None, name: str | None = None, mode: str = "replace",
                  allow_extra: bool = False, drop: Iterable[str] | None = None) -> int:
    """Import a vector file into the store as ``feature_class`` (layer ``name``, default the class name).

    The data is reprojected to the store's CRS; a file without a CRS needs
    ``crs=``. Source fields named in ``drop`` are left out, then ``field_map``
    renames source fields to the class's. With ``mode="append"`` features whose
    id is already in the layer are refused. Data far from the twin's extent is
    imported with a :class:`TwinWarning`, and so is a replace that drops features scenario edits refer to
    (:func:`cim.scenario.replaced_layer_orphans`) or, for ``buildings``, buildings imported from IFC. A file
    without features (it would
    empty the layer), of several layers with none named, or with invalid
    geometries is refused. Returns the number of features written. Nothing
    is written if any step fails.
    """
    twin_crs = store.crs
    if twin_crs is None:
        raise CRSError(f"the store {store.uri} has no CRS; create it with crs='EPSG:4544'")
    gdf = read_vector(path, layer)
    stated = not gdf.attrs.get(CRS_DEFAULT_ATTR)
    if not stated and crs is not None and not resolve_crs(crs).is_geographic:
        twin_warn(f"{Path(path).name} has no crs member, so by RFC 7946 its coordinates would be lon/lat WGS 84; "
                  f"they are read in {resolve_crs(crs).to_string()}, as --crs (crs=) says", TwinWarning, stacklevel=2)
    fc = feature_class if feature_class in FEATURE_CLASSES else None
    if fc is None and name is None:
        raise SchemaError(f"unknown feature class {feature_class!r}; choose one of {sorted(FEATURE_CLASSES)}")
    if not len(gdf):
        raise ImportFormatError(
            f"{Path(path).name} holds no features{f' in layer {layer!r}' if layer is not None else ''}; nothing "
            f"was imported and {name or feature_class!r} is left as it was. Check the file (or --layer), or "
            "delete the layer on purpose (store.delete_layer) rather than importing an empty file over it"
        )
    gdf = prepare_layer(gdf, fc, twin_crs, field_map=field_map, source_crs=crs, allow_extra=allow_extra, drop=drop,
                        crs_stated=stated)
    target = name or feature_class
    _warn_if_far(store, target, gdf, replacing=mode == "replace")
    with store.transaction():
        if mode == "append" and fc is not None:
            _check_new_ids(store, target, gdf, FEATURE_CLASSES[fc])
        # what a replace takes from what refers to the layer, read before it is written, said once it is
        lost = _replace_losses(store, target, gdf) if mode == "replace" else []
        n = store.write_layer(target, gdf, mode=mode)
        if mode == "replace" and target == "road_links":
            lost += _drop_stale_turns(store, gdf)
    for message in lost:
        twin_warn(message, TwinWarning, stacklevel=2)
    return n


def _drop_stale_turns(store, links) -> list[str]:
    """Drop the network's turn rules (``road_turns``, written by the SUMO import: :data:`cim.io.sumo.TURNS_TABLE`)
    when a GIS import replaced road_links (``links``, which brings no turns) and the rules name links it no longer
    holds: they were kept without a word, and ``twin traffic assign`` then failed on them with no CLI way to drop
    them. Called inside the import's transaction; returns the warning to give."""
    from cim.io.sumo import TURNS_TABLE

    if not store.has_table(TURNS_TABLE):
        return []
    turns = store.read_table(TURNS_TABLE)
    ids = set(links["link_id"].dropna().astype(str)) if "link_id" in links.columns else set()
    known = ids | {i + ":r" for i in ids}  # the reverse of a two-way link, as the traffic adapter names it
    named = set()
    for col in ("from_link", "to_link"):
        if col in turns.columns:
            named |= set(turns[col].dropna().astype(str))
    if named <= known:
        return []
    store.delete_table(TURNS_TABLE)
    return [f"the network's turn rules ({TURNS_TABLE}, {len(turns):,} turns) named links this import replaced; "
            "dropped: routes may turn anywhere until a network with turns is imported "
            "(twin import TWIN NET.net.xml --class road_links)"]


#: the table of the buildings imported from IFC (bim_import.importer.SUMMARY_TABLE; read here by name: cim
#: does not import bim_import)
_BIM_BUILDINGS = "bim_buildings"


def _replace_losses(store, name: str, gdf) -> list[str]:
    """Warnings for what replacing layer ``name`` with ``gdf`` leaves without its features: scenario edits of
    features the new layer lacks (:func:`cim.scenario.replaced_layer_orphans`), and, for ``buildings``, the
    buildings imported from IFC that it drops (:func:`_dropped_ifc_buildings`)."""
    from cim.scenario import id_field_of, replaced_layer_orphans
    from twin_core.errors import ScenarioError

    if not store.has_layer(name):
        return []
    try:
        idf = id_field_of(name, gdf)
    except ScenarioError:
        return []
    new_ids = gdf[idf].dropna().astype(str).tolist() if idf in gdf.columns else []
    out = [replaced_layer_orphans(store, name, new_ids)]
    if name == "buildings":
        out.append(_dropped_ifc_buildings(store, set(new_ids)))
    return [m for m in out if m]


def _dropped_ifc_buildings(store, new_ids: set[str]) -> str | None:
    """A warning when a new ``buildings`` layer (ids ``new_ids``) drops buildings imported from IFC that the
    layer holds now (rows of ``bim_buildings``): their element rows and glTF models would stay behind as stale
    records, and the twin's 3D view and BIM checks would lose them without a word."""
    if not store.has_table(_BIM_BUILDINGS) or "building_id" not in store.layer_info("buildings")["columns"]:
        return None
    bim = set(store.read_table(_BIM_BUILDINGS, columns=["building_id"])["building_id"].dropna().astype(str))
    if not bim:
        return None
    now = set(store.read_layer("buildings", columns=["building_id"])["building_id"].dropna().astype(str))
    dropped = sorted((bim & now) - new_ids)
    if not dropped:
        return None
    named = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
    return (f"the new buildings layer drops {len(dropped)} building(s) imported from IFC ({named}); their element "
            "rows and 3D models stay in bim_elements/bim_buildings as stale records. Bring them back with twin bim "
            "import STORE MODEL.ifc --replace, remove them with twin bim delete STORE ID (Python: "
            "bim_import.delete_building), or import with --append (mode='append') to keep them")


#: data further than this (or than the twin's extent is wide) from the extent draws a warning
_FAR_M = 10_000.0


def _check_finite(gdf, src_crs) -> None:
    """Refuse geometries with coordinates that are not finite (inf/NaN) in the twin CRS."""
    import shapely

    xy, idx = shapely.get_coordinates(gdf.geometry.values, return_index=True)
    bad = ~np.isfinite(xy).all(axis=1)
    if not bad.any():
        return
    rows = np.unique(idx[bad])
    raise CRSError(
        f"{len(rows)} feature(s) have coordinates that are not finite (inf or NaN) in the twin CRS "
        f"{gdf.crs.to_string()} after reprojection from {src_crs.to_string()}, e.g. feature {rows[0] + 1}; the "
        "source CRS is probably wrong (check --crs / crs= or the file's .prj), or the data lies outside the area "
        "the twin CRS covers"
    )


def _twin_extent(store, skip: str | None):
    """The twin's extent: its metadata, else the union of its layers' and rasters' bounds (less those named
    ``skip``, the one being replaced; a twin that holds only a DEM has its extent); None if empty."""
    ext = store.get_meta().get("extent")
    if ext:
        return [float(v) for v in ext]
    boxes = [store.layer_info(n)["bounds"] for n in store.list_layers() if n != skip]
    boxes += [store.raster_info(n).get("bounds") for n in store.list_rasters() if n != skip]
    boxes = [b for b in boxes if b]
    if not boxes:
        return None
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _warn_if_far(store, name: str, gdf, *, replacing: bool) -> None:
    """Warn (:class:`TwinWarning`) when the data lies further from the twin's extent than the extent is wide
    (at least 10 km): valid coordinates, but probably the wrong area or a wrong source CRS."""
    if len(gdf):
        _warn_if_far_bounds(store, name, gdf.total_bounds, f"the {len(gdf)} feature(s)", replacing=replacing)


def _warn_if_far_bounds(store, name: str, b, what: str, *, replacing: bool) -> None:
    """:func:`_warn_if_far` for bounds ``b`` in the twin CRS (``what``: the data, for the message)."""
    ext = _twin_extent(store, name if replacing else None)
    if ext is None:
        return
    dx = max(ext[0] - b[2], b[0] - ext[2], 0.0)
    dy = max(ext[1] - b[3], b[1] - ext[3], 0.0)
    gap = float(np.hypot(dx, dy))
    if gap > max(ext[2] - ext[0], ext[3] - ext[1], _FAR_M):
        twin_warn(
            f"{what} for {name!r} lie {gap / 1000:.1f} km from the twin's extent "
            f"{fmt_box(ext)} (their bounds: {fmt_box(b)} in {store.crs}); if they should be inside it, check "
            "the source CRS (--crs / crs= or the file's .prj)",
            TwinWarning, stacklevel=3,
        )


def _check_new_ids(store, name: str, gdf, fc: FeatureClass) -> None:
    """Refuse appending features whose ids (``fc.id_field``) the layer already holds."""
    if fc.id_field not in gdf.columns or not store.has_layer(name):
        return
    if fc.id_field not in store.layer_info(name)["columns"]:
        return
    old = store.read_layer(name, columns=[fc.id_field])[fc.id_field].dropna().astype(str)
    new = gdf[fc.id_field].dropna().astype(str)
    clash = sorted(set(new) & set(old))
    if clash:
        raise SchemaError(
            f"cannot append to {name!r}: {len(clash)} new feature(s) have a {fc.id_field} the layer already "
            f"holds, e.g. {clash[:5]}; ids must stay unique. Give them new ids, leave them out of the file, "
            "or import without --append (mode='replace') to replace the whole layer"
        )


def _shapefile_field_names(gdf) -> dict[str, str]:
    """The renames a Shapefile needs: dBASE field names are at most 10 characters and case-insensitive.

    Returns ``{old: new}`` for the names that are too long; raises :class:`SchemaError` when two
    fields would share a name (GDAL would silently call one of them ``name_1``).
    """
    names = [str(c) for c in gdf.columns if c != gdf.geometry.name]
    short = {n: n[:10] for n in names}  # store column names are ASCII (check_col_name)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(short[n].upper(), []).append(n)
    clash = [g for g in groups.values() if len(g) > 1]
    if clash:
        raise SchemaError(
            "Shapefile field names are at most 10 characters, case-insensitive, so these fields would "
            f"collide: {'; '.join(' and '.join(repr(n) for n in g) + f' -> {short[g[0]]!r}' for g in clash)}. "
            "Rename them so they differ in their first 10 characters, or export to .gpkg or .geojson, "
            "which keep full names")
    return {n: short[n] for n in names if short[n] != n}


#: the most bytes a dBASE text field holds (GDAL cuts longer values of a Shapefile to this)
_DBF_TEXT_BYTES = 254


def _warn_cut_text(gdf, file: str) -> None:
    """Warn, in the tool's words, when a Shapefile's text fields will be cut to 254 bytes (GDAL's own warning named
    one value of one field and then fell silent for the layer)."""
    cut = {}
    for col in gdf.columns:
        if col == gdf.geometry.name or not (pd.api.types.is_string_dtype(gdf[col]) or gdf[col].dtype == object):
            continue
        n = sum(1 for v in gdf[col] if isinstance(v, str) and len(v.encode("utf-8")) > _DBF_TEXT_BYTES)
        if n:
            cut[str(col)] = n
    if cut:
        twin_warn(f"{file}: a Shapefile's text fields hold at most {_DBF_TEXT_BYTES} bytes, so values are cut: "
                  f"{', '.join(f'{c} ({n} value(s))' for c, n in cut.items())}; export to .gpkg (GeoPackage) or "
                  ".geojson to keep them whole", TwinWarning, stacklevel=3)


def export_layer(store, name: str, path: str | os.PathLike, *, crs: Any = None, scenario=None) -> Path:
    """Export a layer to a file; the extension picks the format.

    ``.gpkg`` (GeoPackage), ``.geojson`` / ``.json`` (GeoJSON, WGS 84 by default, per RFC 7946),
    ``.parquet`` / ``.geoparquet`` (GeoParquet), ``.fgb`` (FlatGeobuf) or ``.shp`` (Shapefile: field
    names longer than 10 characters are shortened, with a :class:`TwinWarning` listing the renames;
    prefer GeoPackage or GeoJSON to keep full names). Parent folders are created.
    """
    p = Path(path)
    if p.suffix.lower() not in EXPORT_FORMATS:
        raise ImportFormatError(f"cannot tell the format of {p.name}; use one of {sorted(EXPORT_FORMATS)}")
    if p.is_dir():
        raise ImportFormatError(f"{p} is a folder; give the path of the file to write, e.g. {p / name}{p.suffix}")
    gdf = scenario.layer(name) if scenario is not None else store.read_layer(name)
    return write_frame(gdf, p, layer=name, crs=crs)


def write_frame(gdf, path: str | os.PathLike, *, layer: str, crs: Any = None) -> Path:
    """Write a GeoDataFrame to a file as :func:`export_layer` does (the extension picks the format; GeoJSON
    in WGS 84 unless ``crs``; Shapefile field names shortened with a warning); ``layer`` names it in a
    GeoPackage."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    p = Path(path)
    driver = EXPORT_FORMATS.get(p.suffix.lower())
    if driver is None:
        raise ImportFormatError(f"cannot tell the format of {p.name}; use one of {sorted(EXPORT_FORMATS)}")
    if driver == "ESRI Shapefile":
        renames = _shapefile_field_names(gdf)
        if renames:
            twin_warn(
                f"{p.name}: Shapefile field names are at most 10 characters, so these fields are renamed: "
                f"{', '.join(f'{o} -> {n}' for o, n in renames.items())}; export to .gpkg or .geojson "
                "to keep the full names", TwinWarning, stacklevel=2)
            gdf = gdf.rename(columns=renames)
        _warn_cut_text(gdf, p.name)
    if crs is None and driver == "GeoJSON":
        crs = "EPSG:4326"
    if crs is not None:
        gdf = gdf.to_crs(resolve_crs(crs))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if driver == "GeoParquet":
            gdf.to_parquet(p)
        else:
            with warnings.catch_warnings():  # GDAL's 'truncated to 254 characters': _warn_cut_text said it
                warnings.filterwarnings("ignore", message=r"(?s).*has been truncated to 254", category=RuntimeWarning)
                pyogrio.write_dataframe(gdf, p, layer=layer if driver == "GPKG" else None, driver=driver)
    except (OSError, DataSourceError, DataLayerError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip()
        raise StoreError(f"cannot write {p}: {why}; check that its folder exists or can be created, "
                         "and that you may write there") from exc
    return p
