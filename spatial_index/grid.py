"""Grid helpers: burn polygons into a raster, sample a raster, cells within a polygon.

A grid is described by its shape ``(rows, cols)`` and a north-up affine
transform ``(a, b, c, d, e, f)`` (GDAL/rasterio order, ``affine.Affine``
works): ``x = c + col * a``, ``y = f + row * e`` with ``b = d = 0``, ``e < 0``.
"""

from __future__ import annotations

import numpy as np

from spatial_index import _kernels as K
from spatial_index.polygons import PolygonIndex
from spatial_index.rtree import as_points

__all__ = ["rasterize", "sample", "cells_in_polygon", "line_of_sight"]

_MAX_SAMPLES = 1e9  # samples along one line-of-sight segment (beyond it a step is a mistake, and int64 overflows)


def _grid(shape, transform):
    try:
        rows, cols = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise TypeError(f"shape must be (rows, cols), got {shape!r}") from None
    if rows < 0 or cols < 0:
        raise ValueError(f"shape must be non-negative, got {shape!r}")
    try:
        a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    except (TypeError, ValueError):
        raise TypeError(f"transform must be 6 numbers (a, b, c, d, e, f) or an affine.Affine, got {transform!r}") \
            from None
    if b != 0 or d != 0 or not a > 0 or not e < 0:
        raise ValueError(f"transform must be north-up (a > 0, b = d = 0, e < 0), got {(a, b, c, d, e, f)}")
    return rows, cols, c, a, f, e


def _as_index(geometries) -> PolygonIndex:
    return geometries if isinstance(geometries, PolygonIndex) else PolygonIndex.from_shapely(geometries)


def rasterize(geometries, shape, transform, values=1.0, fill: float = 0.0, all_touched: bool = False,
              dtype="float64") -> np.ndarray:
    """Burn polygons into a new array, later polygons over earlier ones.

    Parameters
    ----------
    geometries : shapely (multi)polygons, a GeoSeries or a :class:`PolygonIndex`
    shape : (rows, cols)
    transform : north-up affine transform
    values : scalar or one value per polygon
    fill : value of cells no polygon burns
    all_touched : bool
        False: a cell is burnt when its centre is inside (even-odd rule on a
        half-open scanline, like GDAL). True: also every cell an edge touches.

    Examples
    --------
    >>> import shapely
    >>> rasterize([shapely.box(1, 1, 3, 2)], (3, 4), (1, 0, 0, 0, -1, 3)).astype(int).tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    rows, cols, x0, dx, y0, dy = _grid(shape, transform)
    idx = _as_index(geometries)
    try:
        vals = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"values must be numbers: a scalar or one per polygon, got {values!r}") from None
    if not (vals.ndim == 0 or (vals.ndim == 1 and vals.shape[0] in (1, idx.n))):
        raise ValueError(f"values must be a scalar or have shape ({idx.n},) (one per polygon), got shape {vals.shape}")
    vals = np.broadcast_to(vals, (idx.n,))
    out = np.full((rows, cols), float(fill))
    K.burn_polygons(idx.x, idx.y, idx.ring_off, idx.part_off, idx.geom_off, np.ascontiguousarray(vals),
                    bool(all_touched), x0, dx, y0, dy, out)
    return out.astype(dtype, copy=False)


def sample(data, transform, xy, nodata=None) -> np.ndarray:
    """Value of the cell under each point (float64; NaN outside the grid or on nodata).

    Examples
    --------
    >>> import numpy as np
    >>> sample(np.arange(6.0).reshape(2, 3), (1, 0, 0, 0, -1, 2), [[0.5, 1.5], [2.5, 0.2], [9, 9]]).tolist()
    [0.0, 5.0, nan]
    """
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"data must be a 2-D array (rows, cols), got shape {arr.shape}")
    rows, cols, x0, dx, y0, dy = _grid(arr.shape, transform)
    p = as_points(xy)
    try:
        nd = None if nodata is None else float(nodata)
    except (TypeError, ValueError):
        raise TypeError(f"nodata must be a number or None, got {nodata!r}") from None
    if np.ma.isMaskedArray(data):  # e.g. rasterio's read(masked=True): masked cells are nodata
        vals = np.ma.filled(data.astype(np.float64), np.nan)
    else:
        vals = np.ascontiguousarray(arr, dtype=np.float64)
    out = np.empty(p.shape[0])
    K.sample_grid(vals, p, x0, dx, y0, dy, out)
    if nd is not None and not np.isnan(nd):
        # compared in the data's own type: nodata -3.4e38 on float32 data means float32(-3.4e38), as in GDAL
        if arr.dtype.kind == "f":
            out[out.astype(arr.dtype) == np.asarray(nd, dtype=arr.dtype)] = np.nan
        else:
            out[out == nd] = np.nan
    return out


def cells_in_polygon(polygon, shape, transform, all_touched: bool = False):
    """(rows, cols) of the cells whose centre is inside ``polygon`` (or that it touches).

    Examples
    --------
    >>> import shapely
    >>> r, c = cells_in_polygon(shapely.box(0, 0, 2, 1), (2, 3), (1, 0, 0, 0, -1, 2))
    >>> r.tolist(), c.tolist()
    ([1, 1], [0, 1])
    """
    mask = rasterize([polygon], shape, transform, 1.0, 0.0, all_touched)
    return np.nonzero(mask)


def line_of_sight(data, transform, origins, targets, step: float | None = None) -> np.ndarray:
    """Whether each segment origin -> target clears a surface raster (a DEM).

    The surface is sampled cell by cell (nearest cell) every ``step`` along the
    segment (default: half the smaller cell size), end points excluded; a
    sample strictly above the segment blocks it. NaN cells never block.

    Parameters
    ----------
    data : (rows, cols) surface heights
    transform : north-up affine transform
    origins, targets : (n, 3) arrays (a single (3,) origin serves all targets)

    Examples
    --------
    >>> import numpy as np
    >>> dem = np.zeros((1, 10)); dem[0, 5] = 10.0  # a wall in the middle of a strip
    >>> line_of_sight(dem, (1, 0, 0, 0, -1, 1), [0.5, 0.5, 2], [[9.5, 0.5, 0], [4.5, 0.5, 0]]).tolist()
    [False, True]
    """
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"data must be a 2-D array (rows, cols), got shape {arr.shape}")
    rows, cols, x0, dx, y0, dy = _grid(arr.shape, transform)
    t, o = (np.asarray(a, dtype=np.float64) for a in (targets, origins))
    t, o = (a.reshape(0, 3) if a.ndim == 1 and a.shape[0] == 0 else np.atleast_2d(a) for a in (t, o))  # [] : none
    for name, a in (("origins", o), ("targets", t)):
        if a.ndim != 2 or a.shape[1] != 3:
            raise ValueError(f"{name} must have shape (n, 3) as (x, y, z), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has NaN or infinite coordinates; drop them first")
    if o.shape[0] == 1:
        o = np.repeat(o, t.shape[0], axis=0)
    if o.shape[0] != t.shape[0]:
        raise ValueError(f"origins has {o.shape[0]} rows but targets has {t.shape[0]}; give one or one per target")
    try:
        st = 0.5 * min(dx, -dy) if step is None else float(step)
    except (TypeError, ValueError):
        raise TypeError(f"step must be a number > 0 (a distance in the grid's units) or None, got {step!r}") from None
    if not (st > 0 and np.isfinite(st)):
        raise ValueError(f"step must be a finite number > 0 or None, got {step!r}")
    longest = float(np.hypot(t[:, 0] - o[:, 0], t[:, 1] - o[:, 1]).max()) if t.shape[0] else 0.0
    if longest / st > _MAX_SAMPLES:
        raise ValueError(f"step {st!r} would sample the longest segment ({longest:.6g}) {longest / st:.3g} times "
                         f"(at most {_MAX_SAMPLES:.0e}); give a step near the cell size ({dx!r}), or None")
    out = np.empty(t.shape[0], dtype=np.bool_)
    K.terrain_los(np.ascontiguousarray(arr), x0, dx, y0, dy, np.ascontiguousarray(o), np.ascontiguousarray(t), st,
                  out)
    return out
