"""GeoTIFF import/export for DEM, roughness and result rasters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cim.crs import resolve_crs, source_crs_of
from cim.raster import Raster
from twin_core.errors import CRSError, ImportFormatError, RasterError

if TYPE_CHECKING:
    from twin_core.progress import ProgressCallback

__all__ = ["read_geotiff", "import_raster", "export_raster", "reproject_raster"]


def read_geotiff(path: str | os.PathLike, *, crs: Any = None, band: int = 1,
                 progress: "ProgressCallback | None" = None) -> Raster:
    """Read one band of a raster file GDAL opens (GeoTIFF, ASCII grid ...).

    The band's scale and offset are applied as GDAL's unscale does (value = stored * scale + offset): an
    int32 DEM stored in centimetres with scale 0.01 reads as metres. A scaled band reads as float32 when
    its stored type fits float32 exactly (8- and 16-bit integers, float32), else as float64, so no stored
    digit is lost; its nodata cells, matched on the stored values, become NaN (and ``nodata`` NaN).

    The band's unit (GDAL's unit type, e.g. ``ft``) is the raster's ``unit``, None when the file names
    none; ``meta`` holds ``band`` and ``bands`` (how many bands the file has). ``progress(done, total)``
    is called as the rows are read.
    """
    return _read_geotiff(path, crs=crs, band=band, progress=progress)


#: GDAL's block cache while a raster is read or written, in bytes (rasterio.Env hands GDAL_CACHEMAX to
#: GDALSetCacheMax64 as it is: a plain 64 would be 64 bytes, not MB)
_IO_CACHE_BYTES = 16 * 1024 * 1024


def _fits_float32(dtype: np.dtype) -> bool:
    """Whether float32 holds every value of ``dtype`` exactly (8/16-bit integers, float16/32)."""
    dtype = np.dtype(dtype)
    return (dtype.kind in "biu" and dtype.itemsize <= 2) or (dtype.kind == "f" and dtype.itemsize <= 4)


def _read_geotiff(path, *, crs: Any = None, band: int = 1, progress=None, check_header=None) -> Raster:
    """:func:`read_geotiff`; ``check_header(file name, band count, band unit)`` runs once the header is read,
    before the cells are (a refusal it raises costs no read of a large grid)."""
    import rasterio
    from rasterio.windows import Window as RioWindow

    p = Path(path)
    if not p.exists():
        raise ImportFormatError(f"{p} does not exist")
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)):
        raise RasterError(f"band must be a band number (1 for the first band), got {band!r}")
    try:
        # GDAL's block cache (5 % of the RAM by default) kept a second copy of the cells as they were read,
        # doubling the memory a read takes; each block is read once, so a small cache does as well
        with rasterio.Env(GDAL_CACHEMAX=_IO_CACHE_BYTES), rasterio.open(p) as ds:
            if band < 1 or band > ds.count:
                raise RasterError(f"{p.name} has {ds.count} band(s); band {band} does not exist")
            i = band - 1
            if ds.crs is not None and crs is not None:  # before the cells are read: a conflict costs no read
                # a file that states its CRS and a different --crs: refused as the vector import refuses it
                # (it was ignored without a word); the same CRS given again is fine
                source_crs_of(ds.crs.to_wkt(), crs)
            unit = (ds.units[i] or "").strip() or None
            if check_header is not None:
                check_header(p.name, ds.count, unit)
            scale, offset = float(ds.scales[i]), float(ds.offsets[i])
            if not (np.isfinite(scale) and np.isfinite(offset)) or scale == 0:
                raise RasterError(f"band {band} of {p.name} has scale {scale:g} and offset {offset:g}; a scale must be "
                                  "a finite number other than 0: correct them (gdal_edit.py -scale 1 -offset 0 FILE "
                                  "when the cells hold the values themselves) and import again")
            scaled = scale != 1.0 or offset != 0.0
            stored = np.dtype(ds.dtypes[i])
            dtype = stored if not scaled else np.dtype("float32" if _fits_float32(stored) else "float64")
            data = np.empty((ds.height, ds.width), dtype=dtype)
            # row blocks, so a large grid reports its progress; whole blocks of the file each time
            step = max(int(ds.block_shapes[i][0]), 1)
            step *= max(1, -(-ds.height // (16 * step)))
            for r0 in range(0, ds.height, step):
                n = min(step, ds.height - r0)
                ds.read(band, window=RioWindow(0, r0, ds.width, n), out=data[r0:r0 + n])
                if progress is not None:
                    progress(r0 + n, ds.height)
            src_crs = ds.crs
            transform, nodata = ds.transform, ds.nodatavals[i]
            count = ds.count
    except rasterio.errors.RasterioIOError as exc:
        if exc.__cause__ is not None:  # a failed read: the header opened, the cells did not (a cut-short file)
            raise ImportFormatError(
                f"cannot read the cells of {p} ({exc.__cause__}): the file is damaged or cut short; copy or "
                "export it again (gdalinfo -checksum FILE reads every cell) and import that"
            ) from exc
        raise ImportFormatError(f"cannot read {p} as a raster ({exc}); give a GeoTIFF") from exc
    if src_crs is not None and crs is not None:
        src_crs = source_crs_of(src_crs.to_wkt(), crs)  # the file's, or the user's lon/lat declaration (4326/4490)
    if src_crs is None:
        if crs is None:
            raise CRSError(f"{p.name} has no CRS: name it with crs='EPSG:4544' (CLI: --crs EPSG:4544), or the "
                           "grid's real CRS")
        src_crs = resolve_crs(crs)
    if transform.b != 0 or transform.d != 0:
        raise RasterError(f"{p.name} is a rotated grid; warp it to a north-up grid first "
                          "(gdalwarp -t_srs EPSG:4544 in.tif out.tif) and import that")
    if scaled:
        data, nodata = _unscale(data, nodata, scale, offset)
    data, transform = _north_up(data, transform)
    return Raster(data, transform, resolve_crs(src_crs).to_string(), nodata, unit, {"band": band, "bands": count})


def _unscale(data: np.ndarray, nodata, scale: float, offset: float):
    """``data * scale + offset`` in place (``data`` is float), its nodata cells (matched on the stored values,
    before scaling) NaN: (data, nodata)."""
    missing = None
    if nodata is not None and not np.isnan(nodata):
        missing = data == nodata
    if scale != 1.0:
        data *= scale
    if offset != 0.0:
        data += offset
    if missing is not None:
        data[missing] = np.nan
    return data, (np.nan if nodata is not None else None)


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


def reproject_raster(r: Raster, dst_crs: Any, *, resolution: float | tuple[float, float] | None = None,
                     resampling: str = "bilinear", progress: "ProgressCallback | None" = None) -> Raster:
    """Warp a raster into another CRS (bilinear by default), or onto another cell size.

    ``resolution`` is the new cell size in the units of ``dst_crs`` (m for the twin's CRS); without it the
    cell size follows from the source grid's. A raster already in ``dst_crs`` at that cell size is
    returned as it is. ``progress(done, total)`` is called as the rows of the new grid are filled.
    """
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    r = _fit_float32(r)
    res = _check_resolution(resolution)
    dst = resolve_crs(dst_crs)
    src = resolve_crs(r.crs)
    if src.equals(dst) and (res is None or np.allclose(r.res, res, rtol=0, atol=1e-9 * max(r.res))):
        return r
    rows, cols = r.shape
    left, bottom, right, top = r.bounds
    transform, width, height = calculate_default_transform(src, dst, cols, rows, left, bottom, right, top,
                                                           resolution=res)
    nodata = r.nodata if r.nodata is not None else np.nan
    # float32 cells are warped as they are: astype("float32") copied the whole grid first
    data = np.ascontiguousarray(r.data, dtype="float32")
    out = np.full((height, width), nodata, dtype="float32")
    # the new grid a band of rows at a time, so a large warp reports its progress, each from the source rows
    # it needs: rasterio copies the source array it is given, and a copy of the whole grid doubled the memory
    step = max(1, -(-height // 16))
    for r0 in range(0, height, step):
        n = min(step, height - r0)
        dst_t = transform @ Affine.translation(0, r0)
        s0, s1 = _source_rows(r, dst, dst_t, width, n)
        if s1 > s0:
            # GDAL sizes a kernel that samples down from each chunk's own cells-per-cell ratio, so bands of
            # rows gave other values than one warp (0.2 m on a 23 m grid from 5 m cells): the whole grid's
            # ratio, the one a single warp works out, holds for every band
            reproject(data[s0:s1], out[r0:r0 + n], src_transform=r.transform @ Affine.translation(0, s0),
                      src_crs=src, dst_transform=dst_t, dst_crs=dst, src_nodata=nodata, dst_nodata=nodata,
                      resampling=getattr(Resampling, resampling), XSCALE=width / cols, YSCALE=height / rows)
        if progress is not None:
            progress(r0 + n, height)
    return Raster(out, transform, dst.to_string(), nodata, r.unit, dict(r.meta))


def _source_rows(r: Raster, dst, dst_t, width: int, height: int, pad: int = 8) -> tuple[int, int]:
    """(first, end) rows of ``r`` a ``height`` x ``width`` grid at ``dst_t`` in ``dst`` is warped from: the rows
    its bounds cover in ``r``'s CRS (edges densified), ``pad`` more each side for the resampling kernel, widened
    when the warp samples down."""
    from rasterio.warp import transform_bounds

    left, top = dst_t.c, dst_t.f
    right, bottom = left + width * dst_t.a, top + height * dst_t.e
    try:
        _, ymin, _, ymax = transform_bounds(dst, resolve_crs(r.crs), left, bottom, right, top, densify_pts=51)
    except Exception:  # noqa: BLE001 - bounds that do not transform: the whole source, as GDAL would look at
        return 0, r.shape[0]
    if not (np.isfinite(ymin) and np.isfinite(ymax)):
        return 0, r.shape[0]
    # GDAL widens the kernel by the ratio of the cell sizes when it samples down (a 20 m cell from 1 m ones)
    pad += int(np.ceil(4 * (ymax - ymin) / -r.transform.e / height))
    first = int(np.floor((ymax - r.transform.f) / r.transform.e)) - pad
    end = int(np.ceil((ymin - r.transform.f) / r.transform.e)) + pad
    return max(first, 0), min(end, r.shape[0])


def _check_resolution(resolution) -> tuple[float, float] | None:
    """``resolution`` (one cell size, or x and y) as (x, y), refused unless positive and finite."""
    if resolution is None:
        return None
    try:
        res = tuple(float(v) for v in (resolution if isinstance(resolution, (tuple, list)) else (resolution,) * 2))
    except (TypeError, ValueError):
        res = ()
    if len(res) != 2 or not all(np.isfinite(v) and v > 0 for v in res):
        raise RasterError(f"resolution must be a cell size above 0 in the twin CRS's units (m), e.g. resolution=5 "
                          f"(CLI: --resolution 5), got {resolution!r}")
    return res


#: weights of the stages of an import in its progress (from timings of a 6000 x 6000 float32 grid: reading
#: took about a tenth of the time, warping and writing to the store about as long as each other)
_STAGES = {"read": 1.0, "warp": 6.0, "write": 6.0}


#: rasters a flood reads cell for cell on the DEM's grid: imported onto it by default (``match_dem``)
DEM_GRID_RASTERS = ("manning",)
#: rasters of classes (not measures): a warp takes the nearest cell's value, never a blend of two classes
_CATEGORICAL = ("manning",)


def import_raster(store, path: str | os.PathLike, name: str, *, crs: Any = None, unit: str | None = None,
                  resolution: float | None = None, band: int | None = None, match_dem: bool | None = None,
                  progress: "ProgressCallback | None" = None) -> Raster:
    """Import a GeoTIFF into the store, warped to the twin CRS if needed.

    Parameters
    ----------
    store, path, name
        The store, the file, and the raster name (``dem`` and ``manning`` are the rasters a flood reads).
    crs
        The file's CRS, when it names none.
    unit
        The unit of the values. Without it, the file's band unit (GDAL's unit type) is used; one that
        contradicts the file's is refused.
    resolution
        Cell size of the imported grid in the twin CRS's units (m); the grid is resampled (bilinear; nearest
        neighbour for ``manning``, whose n values are land-cover classes) to it, keeping the file's origin.
    match_dem
        Resample the file onto the twin DEM's grid (its cells, origin and extent; nearest neighbour: a cell
        takes the value of the file's cell its centre falls in, so land-cover n values are never blended;
        cells the file does not cover are nodata). None (default): for the rasters a flood reads on the DEM's
        grid (:data:`DEM_GRID_RASTERS`: ``manning``) when the twin has a DEM on another grid, and the
        returned raster's ``meta["matched_dem"]`` says so; True: for any raster (a per-cell drainage grid for
        ``twin flood --drainage NAME``); False: keep the file's grid (a flood then refuses it). Not with
        ``resolution``, nor for ``dem`` itself.
    band
        The band to import (1 for the first). Without it band 1 is imported, with a :class:`TwinWarning`
        when the file has more.
    progress
        ``progress(done, total)``, called as the import reads, warps and writes the grid.

    Refused: a unit other than a declared raster class's (``dem`` is in m), from the user or from the file;
    a unit the file contradicts; a grid outside the area of its CRS or of the twin's CRS; a damaged file;
    a ``manning`` grid with a value of 0 or below. A grid far from the twin's extent, one without nodata
    that holds a common nodata mark (-9999 ...), or a ``manning`` grid with values above
    :data:`MANNING_N_WARN` is imported with a :class:`TwinWarning`. The band's scale and offset are
    applied (see :func:`read_geotiff`).
    """
    from cim.crs import check_area_of_use, check_in_twin_area
    from cim.io.vector import _warn_if_far_bounds

    _check_unit(name, unit)
    if store.crs is None:
        raise CRSError(f"the store {store.uri} has no CRS; create it with crs='EPSG:4544'")
    _check_resolution(resolution)
    if match_dem not in (None, True, False):
        raise RasterError(f"match_dem must be True, False or None (default: for {list(DEM_GRID_RASTERS)}), "
                          f"got {match_dem!r}")
    if match_dem and name == "dem":
        raise RasterError("match_dem puts a raster on the DEM's grid; the DEM itself cannot be: leave it out")
    if match_dem and resolution is not None:
        raise RasterError("give resolution or match_dem, not both: match_dem takes the DEM's cells (CLI: "
                          "--resolution or --match-dem)")
    if match_dem and not store.has_raster("dem"):
        raise RasterError(f"match_dem puts {name!r} on the DEM's grid, but the twin has no 'dem' raster yet; import "
                          "the DEM first (twin import-raster CITY DEM.tif --name dem)")

    def check_header(file: str, bands: int, file_unit: str | None) -> None:
        _check_file_unit(name, file, unit, file_unit)
        if band is None and bands > 1:
            from twin_core.errors import TwinWarning, twin_warn

            twin_warn(f"{file} has {bands} bands; band 1 is imported as {name!r} and the other {bands - 1} left "
                      f"out. Name the band to import with band=N (CLI: --band N), band=1 for this one",
                      TwinWarning)

    stage = _Stages(progress)
    r = _read_geotiff(path, crs=crs, band=1 if band is None else band, progress=stage("read"),
                      check_header=check_header)
    _warn_undeclared_nodata(Path(path).name, r)
    if name == "manning":
        _check_manning(Path(path).name, r)
    # as for vector layers: a grid outside its own CRS's area or the twin's is refused (its CRS is wrong, or
    # it is another city's), one far from the twin's extent draws a warning
    src_crs = resolve_crs(r.crs)
    check_area_of_use(np.asarray(r.bounds, dtype="float64"), src_crs)
    check_in_twin_area(np.asarray(r.bounds, dtype="float64"), src_crs, resolve_crs(store.crs))
    dem = store.raster_info("dem") if name != "dem" and store.has_raster("dem") else None
    match = bool(match_dem) or (match_dem is None and name in DEM_GRID_RASTERS and resolution is None
                                and dem is not None and not _on_grid(r, dem, store.crs))
    if match:
        r = _onto_grid(r, dem, store.crs, Path(path).name, progress=stage("warp"))
    else:
        r = reproject_raster(r, store.crs, resolution=resolution, progress=stage("warp"),
                             resampling="nearest" if name in _CATEGORICAL else "bilinear")
    _warn_if_far_bounds(store, name, np.asarray(r.bounds, dtype="float64"), f"the {r.shape[0]} x {r.shape[1]} cells",
                        replacing=True)
    r.unit = unit or r.unit
    for k in ("band", "bands"):  # what read_geotiff notes of the file, not of the twin's raster
        r.meta.pop(k, None)
    _warn_if_grids_part(store, name, r)
    stage("write")(0, 1)
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=_IO_CACHE_BYTES):  # as in a read: GDAL's cache held a copy of the grid written
        store.write_raster(name, r)
    stage("write")(1, 1)
    return r


def _on_grid(r: Raster, info: dict, crs) -> bool:
    """Whether ``r`` is already on the grid ``info`` (a store's ``raster_info``) in ``crs``."""
    if not resolve_crs(r.crs).equals(resolve_crs(info.get("crs") or crs)):
        return False
    return tuple(r.shape) == (info["height"], info["width"]) and np.allclose(
        np.asarray(list(r.transform)[:6], dtype="float64"), np.asarray(info["transform"][:6], dtype="float64"),
        rtol=0, atol=1e-6)


def _onto_grid(r: Raster, info: dict, crs, file: str, progress=None) -> Raster:
    """``r`` resampled onto the grid ``info`` (the DEM's ``raster_info``) with nearest neighbour; the cells it
    does not cover are nodata. ``meta["matched_dem"]`` says what was done, for the caller to report."""
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    if _on_grid(r, info, crs):
        return r
    r = _fit_float32(r)
    dst = resolve_crs(info.get("crs") or crs)
    nodata = r.nodata if r.nodata is not None else np.nan
    out = np.full((info["height"], info["width"]), nodata, dtype="float32")
    reproject(np.ascontiguousarray(r.data, dtype="float32"), out, src_transform=r.transform,
              src_crs=resolve_crs(r.crs), dst_transform=Affine(*info["transform"][:6]), dst_crs=dst,
              src_nodata=nodata, dst_nodata=nodata, resampling=Resampling.nearest)
    if progress is not None:
        progress(1, 1)
    empty = ~np.isfinite(out) if np.isnan(nodata) else (out == nodata)
    what = (f"resampled {file} ({r.shape[0]} x {r.shape[1]} cells of {r.res[0]:g} m) onto the DEM's grid "
            f"({info['height']} x {info['width']} cells of {abs(info['transform'][0]):g} m) by nearest neighbour")
    if empty.any():
        what += f"; {int(empty.sum())} cells the file does not cover are nodata"
    meta = dict(r.meta)
    meta["matched_dem"] = what
    return Raster(out, Affine(*info["transform"][:6]), dst.to_string(), nodata, r.unit, meta)


class _Stages:
    """One ``progress(done, total)`` over the stages of an import: ``stages(name)`` is the callback of one stage,
    its share of the whole weighted by :data:`_STAGES` (a stage never reached, a warp not needed, is skipped)."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.order = list(_STAGES)
        self.total = sum(_STAGES.values())

    def __call__(self, name: str):
        if self.progress is None:
            from twin_core.progress import null_progress

            return null_progress
        before = sum(_STAGES[s] for s in self.order[:self.order.index(name)])

        def report(done: float, total: float) -> None:
            share = min(max(done / total, 0.0), 1.0) if total else 1.0
            self.progress(before + _STAGES[name] * share, self.total)

        return report


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


def _check_unit(name: str, unit: str | None, *, source: str = "the unit given is") -> None:
    """Refuse a unit other than the one a declared raster class (``dem`` in m ...) holds: the engines read
    the values in the declared unit, so a DEM in feet would be taken as metres. ``source`` says where the
    unit came from (the user, or the file)."""
    from cim.schema import RASTER_CLASSES

    rc = RASTER_CLASSES.get(name)
    if rc is None or not rc.unit or unit is None:
        return
    if _norm_unit(unit) in {_norm_unit(a) for a in _UNIT_ALIASES.get(rc.unit, {rc.unit})}:
        return
    raise RasterError(
        f"raster {name!r} holds {rc.description or name} in {rc.unit}, but {source} {unit!r}; convert the "
        f"values to {rc.unit} first (e.g. feet to metres: gdal_calc.py -A in.tif --calc='A*0.3048' --outfile out.tif) "
        f"and import with unit {rc.unit!r}, or import under another name"
    )


def _check_file_unit(name: str, file: str, unit: str | None, file_unit: str | None) -> None:
    """Check the file's band unit: refuse one the user's ``unit`` contradicts (which is right is for the user to
    say), and, when the user gave none, one other than the raster class's (a DEM in ft)."""
    if file_unit is None:
        return
    if unit is None:
        _check_unit(name, file_unit, source=f"{file} gives its values in")
        return
    if same_unit(unit, file_unit):
        return
    from cim.schema import RASTER_CLASSES

    rc = RASTER_CLASSES.get(name)
    if rc is not None and rc.unit and not same_unit(file_unit, rc.unit):
        if_file = (f"convert them to {rc.unit}, the unit raster {name!r} holds (e.g. feet to metres: gdal_calc.py "
                   f"-A in.tif --calc='A*0.3048' --outfile out.tif), and import that")
    else:
        if_file = f"import with unit {file_unit!r} (CLI: --unit {file_unit})"
    raise RasterError(
        f"{file} gives its values in {file_unit!r} (its band unit), but the unit given is {unit!r}: say which is "
        f"right. If the values are in {unit!r}, correct the file's unit (gdal_edit.py -units {unit} {file}) and "
        f"import again; if they are in {file_unit!r}, {if_file}"
    )


#: Manning's n above this draws a warning. Tabulated n for channels and floodplains runs from about 0.010
#: (smooth concrete, glass) to about 0.2 (floodplains with dense trees or brush): Chow, V.T. (1959),
#: Open-Channel Hydraulics, Table 5-6; Arcement, G.J. & Schneider, V.R. (1989), Guide for selecting Manning's
#: roughness coefficients for natural channels and flood plains, USGS Water-Supply Paper 2339. Urban flood
#: models put buildings or dense blocks at 0.1-0.3; 0.5 leaves room for those, not for a unit mix-up.
MANNING_N_WARN = 0.5


def _check_manning(file: str, r: Raster) -> None:
    """Refuse a Manning's n grid with a value of 0 or below, warn about values above :data:`MANNING_N_WARN`,
    naming how many cells (nodata and NaN cells aside)."""
    from twin_core.errors import TwinWarning, twin_warn

    a = r.data
    if a.dtype.kind not in "iuf":
        return
    valid = np.isfinite(a) if a.dtype.kind == "f" else np.ones(a.shape, dtype=bool)
    if r.nodata is not None and not np.isnan(r.nodata):
        valid &= a != r.nodata
    low = int(np.count_nonzero(valid & (a <= 0)))
    if low:
        worst = float(np.min(a, where=valid, initial=0))
        raise RasterError(
            f"{file}: a Manning's n must be above 0, but {low:,} cell(s) hold 0 or less (lowest {worst:g}); "
            f"plausible n runs from about 0.01 (concrete) to 0.2 (floodplain under trees) (Chow 1959; Arcement "
            f"& Schneider 1989). If those cells are missing data, declare their value as the file's nodata "
            f"(gdal_edit.py -a_nodata VALUE {file}); else correct them, and import again"
        )
    high = int(np.count_nonzero(valid & (a > MANNING_N_WARN)))
    if high:
        worst = float(np.max(a, where=valid, initial=0))
        twin_warn(
            f"{file}: {high:,} cell(s) hold a Manning's n above {MANNING_N_WARN:g} (highest {worst:g}), where "
            f"plausible n runs from about 0.01 (concrete) to 0.2 (floodplain under trees) (Chow 1959; Arcement & "
            f"Schneider 1989); a flood over them runs far too slowly. A grid of 10-100 most likely holds "
            f"Strickler's K (1/n): import 1/K (gdal_calc.py -A in.tif --calc='1.0/A' --outfile n.tif)",
            TwinWarning)


def export_raster(store_or_raster, name_or_path, path: str | os.PathLike | None = None) -> Path:
    """Write a stored raster (or a Raster) to a GeoTIFF (float32, deflate), its ``unit`` as the band's unit
    (GDAL's unit type), which :func:`import_raster` reads back."""
    import rasterio

    if isinstance(store_or_raster, Raster):
        r, p = store_or_raster, Path(name_or_path)
    else:
        r, p = store_or_raster.read_raster(name_or_path), Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(p, "w", driver="GTiff", width=r.shape[1], height=r.shape[0], count=1, dtype="float32",
                       crs=r.crs, transform=r.transform, nodata=r.nodata, compress="deflate", tiled=True) as ds:
        ds.write(r.data.astype("float32"), 1)
        if r.unit:  # the twin keeps a unit per raster (a dem in m); without it the file said none
            ds.set_band_unit(1, str(r.unit))
    return p
