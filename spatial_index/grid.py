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
    vals = np.broadcast_to(np.asarray(values, dtype=np.float64), (idx.n,))
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
    p = as_points(xy) if len(xy) else np.zeros((0, 2))
    out = np.empty(p.shape[0])
    K.sample_grid(np.ascontiguousarray(arr, dtype=np.float64), p, x0, dx, y0, dy, out)
    if nodata is not None and not np.isnan(nodata):
        out[out == nodata] = np.nan
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
    t = np.atleast_2d(np.asarray(targets, dtype=np.float64))
    o = np.atleast_2d(np.asarray(origins, dtype=np.float64))
    for name, a in (("origins", o), ("targets", t)):
        if a.ndim != 2 or a.shape[1] != 3:
            raise ValueError(f"{name} must have shape (n, 3) as (x, y, z), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has NaN or infinite coordinates; drop them first")
    if o.shape[0] == 1:
        o = np.repeat(o, t.shape[0], axis=0)
    if o.shape[0] != t.shape[0]:
        raise ValueError(f"origins has {o.shape[0]} rows but targets has {t.shape[0]}; give one or one per target")
    st = 0.5 * min(dx, -dy) if step is None else float(step)
    if not st > 0:
        raise ValueError(f"step must be > 0, got {step!r}")
    out = np.empty(t.shape[0], dtype=np.bool_)
    K.terrain_los(np.ascontiguousarray(arr), x0, dx, y0, dy, np.ascontiguousarray(o), np.ascontiguousarray(t), st,
                  out)
    return out
