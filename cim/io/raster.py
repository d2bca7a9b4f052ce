"""GeoTIFF import/export for DEM, roughness and result rasters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cim.crs import resolve_crs
from cim.raster import Raster
from twin_core.errors import CRSError, ImportFormatError, RasterError

__all__ = ["read_geotiff", "import_raster", "export_raster", "reproject_raster"]


def read_geotiff(path: str | os.PathLike, *, crs: Any = None, band: int = 1) -> Raster:
    """Read one band of a raster file GDAL opens (GeoTIFF, ASCII grid ...)."""
    import rasterio

    p = Path(path)
    if not p.exists():
        raise ImportFormatError(f"{p} does not exist")
    try:
        with rasterio.open(p) as ds:
            if band < 1 or band > ds.count:
                raise RasterError(f"{p.name} has {ds.count} band(s); band {band} does not exist")
            data = ds.read(band)
            src_crs = ds.crs
            transform, nodata = ds.transform, ds.nodata
    except rasterio.errors.RasterioIOError as exc:
        if exc.__cause__ is not None:  # a failed read: the header opened, the cells did not (a cut-short file)
            raise ImportFormatError(
                f"cannot read the cells of {p} ({exc.__cause__}): the file is damaged or cut short; copy or "
                "export it again (gdalinfo -checksum FILE reads every cell) and import that"
            ) from exc
        raise ImportFormatError(f"cannot read {p} as a raster ({exc}); give a GeoTIFF") from exc
    if src_crs is None:
        if crs is None:
            raise CRSError(f"{p.name} has no CRS: name it with crs='EPSG:4544' (CLI: --crs EPSG:4544), or the "
                           "grid's real CRS")
        src_crs = resolve_crs(crs)
    if transform.b != 0 or transform.d != 0:
        raise RasterError(f"{p.name} is a rotated grid; warp it to a north-up grid first "
                          "(gdalwarp -t_srs EPSG:4544 in.tif out.tif) and import that")
    data, transform = _north_up(data, transform)
    return Raster(data, transform, resolve_crs(src_crs).to_string(), nodata)


def _north_up(data: np.ndarray, transform):
    """The same grid stored north-up, west to east (south-up files, e.g. from netCDF, have e > 0)."""
    from affine import Affine

    rows, cols = data.shape
    a, _, c, _, e, f = transform[:6]
    if a == 0 or e == 0:
        raise RasterError(f"the raster's transform has a zero cell size ({transform}); the file's georeference is broken")
    if e > 0:
        data, f, e = data[::-1], f + rows * e, -e
    if a < 0:
        data, c, a = data[:, ::-1], c + cols * a, -a
    return np.ascontiguousarray(data), Affine(a, 0.0, c, 0.0, e, f)


_F32_MAX = float(np.finfo("float32").max)


def _fit_float32(r: Raster) -> Raster:
    """The raster ready for the float32 grids the twin stores and warps.

    A nodata value float32 cannot hold exactly (ArcGIS's float64 default -1.797e308 would become
    -inf) is turned into NaN, cells and all, so nodata stays nodata. Other values beyond the
    float32 range are refused: they would become +-inf.
    """
    data, nodata = r.data, r.nodata
    if nodata is not None and not np.isnan(nodata) and (abs(nodata) > _F32_MAX or float(np.float32(nodata)) != nodata):
        data = np.where(data == nodata, np.nan, data.astype("float64"))
        nodata = np.nan
    if np.issubdtype(data.dtype, np.floating) and data.dtype.itemsize > 4:
        big = np.isfinite(data) & (np.abs(data) > _F32_MAX)
        if big.any():
            row, col = (int(v[0]) for v in np.nonzero(big))
            raise RasterError(
                f"{int(big.sum())} cell(s) hold values beyond the float32 range the twin stores rasters in, e.g. "
                f"{float(data[row, col])!r} at row {row}, col {col}; if they mark missing data, declare that value as "
                "the file's nodata (gdal_edit.py -a_nodata VALUE file.tif) and import again"
            )
    if data is r.data:
        return r
    return Raster(data, r.transform, r.crs, nodata, r.unit, dict(r.meta))


def reproject_raster(r: Raster, dst_crs: Any, *, resolution: float | None = None, resampling: str = "bilinear") -> Raster:
    """Warp a raster into another CRS (bilinear by default)."""
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    r = _fit_float32(r)
    dst = resolve_crs(dst_crs)
    src = resolve_crs(r.crs)
    if src.equals(dst):
        return r
    rows, cols = r.shape
    left, bottom, right, top = r.bounds
    transform, width, height = calculate_default_transform(src, dst, cols, rows, left, bottom, right, top,
                                                           resolution=resolution)
    nodata = r.nodata if r.nodata is not None else np.nan
    out = np.full((height, width), nodata, dtype="float32")
    reproject(r.data.astype("float32"), out, src_transform=r.transform, src_crs=src, dst_transform=transform,
              dst_crs=dst, src_nodata=nodata, dst_nodata=nodata, resampling=getattr(Resampling, resampling))
    return Raster(out, transform, dst.to_string(), nodata, r.unit, dict(r.meta))


def import_raster(store, path: str | os.PathLike, name: str, *, crs: Any = None, unit: str | None = None,
                  resolution: float | None = None) -> Raster:
    """Import a GeoTIFF into the store, warped to the twin CRS if needed.

    Refused: a unit other than a declared raster class's (``dem`` is in m), a grid outside the area of
    its CRS or of the twin's CRS, a damaged file. A grid far from the twin's extent, or one without
    nodata that holds a common nodata mark (-9999 ...), is imported with a :class:`TwinWarning`.
    """
    from cim.crs import check_area_of_use, check_in_twin_area
    from cim.io.vector import _warn_if_far_bounds

    _check_unit(name, unit)
    r = read_geotiff(path, crs=crs)
    if store.crs is None:
        raise CRSError(f"the store {store.uri} has no CRS; create it with crs='EPSG:4544'")
    _warn_undeclared_nodata(Path(path).name, r)
    # as for vector layers: a grid outside its own CRS's area or the twin's is refused (its CRS is wrong, or
    # it is another city's), one far from the twin's extent draws a warning
    src_crs = resolve_crs(r.crs)
    check_area_of_use(np.asarray(r.bounds, dtype="float64"), src_crs)
    check_in_twin_area(np.asarray(r.bounds, dtype="float64"), src_crs, resolve_crs(store.crs))
    r = reproject_raster(r, store.crs, resolution=resolution)
    _warn_if_far_bounds(store, name, np.asarray(r.bounds, dtype="float64"), f"the {r.shape[0]} x {r.shape[1]} cells",
                        replacing=True)
    r.unit = unit or r.unit
    _warn_if_grids_part(store, name, r)
    store.write_raster(name, r)
    return r


def _warn_if_grids_part(store, name: str, r: Raster) -> None:
    """Warn when ``r`` replaces the DEM (or the Manning grid) on another grid than the one the other still has:
    a flood needs them on one grid, and refuses to run until they are."""
    from cim.schema import RASTER_CLASSES
    from twin_core.errors import TwinWarning, twin_warn

    if name not in RASTER_CLASSES or not store.has_raster(name):
        return
    old = store.raster_info(name)

    def grid(info) -> tuple:
        return (info["height"], info["width"], *np.round(np.asarray(info["transform"][:6], dtype="float64"), 6))

    new = grid({"height": r.shape[0], "width": r.shape[1], "transform": list(r.transform)[:6]})
    if grid(old) == new:
        return
    left = [n for n in RASTER_CLASSES if n != name and store.has_raster(n) and grid(store.raster_info(n)) == grid(old)]
    if left:
        twin_warn(f"{name!r} is now a {r.shape[0]} x {r.shape[1]} grid, but {', '.join(map(repr, left))} stays on "
                  f"the {old['height']} x {old['width']} grid {name!r} had, and a flood needs them on one grid: "
                  f"import {' and '.join(left)} on the new grid too, or {name} on the old one", TwinWarning)


#: values GIS tools write for missing cells; a grid holding one with no nodata declared most likely means it
_NODATA_MARKERS = (-9999.0, -99999.0, -32768.0, -32767.0, float(np.finfo("float32").min))


def _warn_undeclared_nodata(file: str, r: Raster) -> None:
    """Warn when a raster declares no nodata but holds a common nodata marker (-9999 ...): imported as values,
    those cells become 9999 m pits in a DEM."""
    from twin_core.errors import TwinWarning, twin_warn

    if r.nodata is not None or not np.issubdtype(r.data.dtype, np.number):
        return
    if not np.isin(r.data, _NODATA_MARKERS).any():  # one pass over the grid; which marker only on a hit
        return
    for v in _NODATA_MARKERS:
        n = int(np.count_nonzero(r.data == v))
        if n:
            twin_warn(f"{file} declares no nodata value, but {n} cell(s) hold {v:.9g}, a common mark for missing "
                      f"data; they are imported as values. If they are missing data, declare it (gdal_edit.py "
                      f"-a_nodata {v:.9g} {file}) and import again", TwinWarning)
            return


_UNIT_ALIASES = {"m": {"m", "metre", "metres", "meter", "meters"}}


def _norm_unit(u: str) -> str:
    return "".join(ch for ch in u.lower() if ch not in " ()")


def same_unit(a: str, b: str) -> bool:
    """Whether two unit spellings name one unit (``m`` and ``metre``; case, spaces and brackets aside).

    >>> same_unit("m", "Metres"), same_unit("m", "ft")
    (True, False)
    """
    def canon(u: str) -> str:
        n = _norm_unit(u)
        return next((k for k, names in _UNIT_ALIASES.items() if n in {_norm_unit(x) for x in names}), n)

    return canon(a) == canon(b)


def _check_unit(name: str, unit: str | None) -> None:
    """Refuse a unit other than the one a declared raster class (``dem`` in m ...) holds: the engines read
    the values in the declared unit, so a DEM in feet would be taken as metres."""
    from cim.schema import RASTER_CLASSES

    rc = RASTER_CLASSES.get(name)
    if rc is None or not rc.unit or unit is None:
        return
    if _norm_unit(unit) in {_norm_unit(a) for a in _UNIT_ALIASES.get(rc.unit, {rc.unit})}:
        return
    raise RasterError(
        f"raster {name!r} holds {rc.description or name} in {rc.unit}, but the unit given is {unit!r}; convert the "
        f"values to {rc.unit} first (e.g. feet to metres: gdal_calc.py -A in.tif --calc='A*0.3048' --outfile out.tif) "
        f"and import with unit {rc.unit!r}, or import under another name"
    )


def export_raster(store_or_raster, name_or_path, path: str | os.PathLike | None = None) -> Path:
    """Write a stored raster (or a Raster) to a GeoTIFF (float32, deflate)."""
    import rasterio

    if isinstance(store_or_raster, Raster):
        r, p = store_or_raster, Path(name_or_path)
    else:
        r, p = store_or_raster.read_raster(name_or_path), Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(p, "w", driver="GTiff", width=r.shape[1], height=r.shape[0], count=1, dtype="float32",
                       crs=r.crs, transform=r.transform, nodata=r.nodata, compress="deflate", tiled=True) as ds:
        ds.write(r.data.astype("float32"), 1)
    return p
