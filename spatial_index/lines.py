"""Polylines (GeoArrow LINESTRING layout): each point's nearest line, and every line within a distance
of it with where along the line it comes closest."""

from __future__ import annotations

import numpy as np

from spatial_index import _kernels as K
from spatial_index import _line_kernels as LK
from spatial_index.polygons import _as_geometry_array, _check_offsets
from spatial_index.rtree import _run_chunks, _threads_for, as_points, grid_layout

__all__ = ["LineIndex"]

_KEEP = 8  # rows a point kept by the first run of a within query (a building opens onto a few streets)


def _radii(distance, n: int) -> np.ndarray:
    """Validate and cast a distance (a number, or one per point) into n radii."""
    try:
        r = np.asarray(distance, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"distance must be a number >= 0 or an array of one per point, got {distance!r}") from None
    if r.ndim == 0:
        r = np.full(n, float(r))
    elif r.shape != (n,):
        raise ValueError(f"distance must be a number or have shape ({n},) (one per point), got shape {r.shape}")
    bad = ~(r >= 0)  # NaN too
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"distance must be >= 0 (inf: every line); point {i} has {float(r[i])!r}")
    return np.ascontiguousarray(r)


def _within_rows(n: int, run):
    """The rows (point, line, distance, fraction) of a within query over n points, by point.

    ``run(chunks, per, base, cap, chunk_n, out_p, out_l, out_d, out_f)`` runs the kernel
    (:func:`spatial_index._line_kernels.lines_within`) over the given chunks of per points.
    """
    base, chunk_n, out, obase, oout = _run_chunks(n, run, _KEEP, (np.intp, np.intp, np.float64, np.float64))
    # each chunk's rows, in chunk order: from the first run, or from the second for the chunks run again
    first = np.zeros(chunk_n.shape[0], np.intp)
    np.cumsum(chunk_n[:-1], out=first[1:])
    at = np.arange(int(chunk_n.sum()))
    again = np.repeat(obase >= 0, chunk_n)
    src = np.repeat(np.where(obase >= 0, obase, base) - first, chunk_n) + at
    res = []
    for a, b in zip(out, oout):
        r = np.empty(at.shape[0], a.dtype)
        r[~again] = a[src[~again]]
        r[again] = b[src[again]]
        res.append(r)
    return res


class LineIndex:
    """Polylines indexed for point-to-line distance queries, equal to shapely's results.

    Built from shapely LineStrings (array, list or GeoSeries) with
    :meth:`from_shapely`, or from GeoArrow-style arrays (``x``, ``y`` and
    ``line_off``: line ``l`` owns coordinates ``line_off[l]:line_off[l+1]``).
    A uniform grid over the segments' boxes (CSR cell lists) finds the
    candidate segments; distances and positions along a line are computed
    the way GEOS computes them, so they equal ``shapely.distance`` and
    ``shapely.line_locate_point(line, point, normalized=True)``.

    Empty and missing lines are never returned, like ``shapely.STRtree``.

    Examples
    --------
    >>> import shapely
    >>> roads = [shapely.LineString([(0, 0), (10, 0)]), shapely.LineString([(0, 5), (0, 10), (10, 10)])]
    >>> idx = LineIndex.from_shapely(roads)
    >>> idx.nearest_distance([[4, 1], [2, 9]]).tolist()
    [1.0, 1.0]
    >>> pairs, dist, frac = idx.query_within([[4, 1], [2, 9]], [2.0, 20.0])
    >>> pairs.tolist(), dist.tolist(), frac.tolist()
    ([[0, 1, 1], [0, 0, 1]], [1.0, 9.0, 1.0], [0.4, 0.2, 0.4666666666666667])
    """

    def __init__(self, x, y, line_off) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 1 or y.shape != x.shape:
            raise ValueError(f"x and y must be 1-D arrays of the same length, got shapes {x.shape} and {y.shape}")
        off = _check_offsets(line_off, x.shape[0], "line_off")
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.all():
            c = int(np.flatnonzero(~ok)[0])
            line = int(np.searchsorted(off, c, side="right") - 1)
            raise ValueError(f"line {line} has a NaN or infinite coordinate ({x[c]}, {y[c]}); fix or drop it")
        if (np.diff(off) == 1).any():
            line = int(np.flatnonzero(np.diff(off) == 1)[0])
            raise ValueError(f"line {line} has a single coordinate; a line needs none (empty) or at least two")
        self.x = np.ascontiguousarray(x)
        self.y = np.ascontiguousarray(y)
        self.line_off = off
        self.n = off.shape[0] - 1
        self.seg_a, self.seg_line = LK.segments_of(off)
        self._seg_start, self._line_len = LK.segment_measures(self.x, self.y, off, self.seg_a, self.seg_line)
        boxes = LK.segment_boxes(self.x, self.y, self.seg_a)
        if boxes.shape[0]:
            x0, y0, inv, nx, ny = grid_layout(boxes)
            self.cell_offsets, self.cell_items, self.cell_boxes = K.grid_build(
                boxes, np.arange(boxes.shape[0], dtype=np.intp), x0, y0, inv, nx, ny)
        else:
            x0, y0, inv, nx, ny = 0.0, 0.0, 1.0, 1, 1
            self.cell_offsets, self.cell_items, self.cell_boxes = np.zeros(2, np.intp), np.zeros(0, np.intp), \
                np.zeros((0, 4))
        self._grid = (x0, y0, inv, nx, ny)

    @classmethod
    def from_shapely(cls, geometries) -> "LineIndex":
        """Index shapely LineStrings (or LinearRings; array, list or GeoSeries; None and empty allowed).

        MultiLineStrings are refused: explode them first (``shapely.get_parts``) and map the parts back.
        """
        import shapely

        geoms = _as_geometry_array(geometries)
        tid = shapely.get_type_id(geoms)
        bad = ~np.isin(tid, [-1, 1, 2])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TypeError(f"LineIndex holds LineStrings; geometry {i} is a {geoms[i].geom_type} (explode "
                            "multi-part lines with shapely.get_parts, take polygons' shapely.boundary)")
        counts = shapely.get_num_coordinates(geoms)
        off = np.zeros(geoms.shape[0] + 1, np.intp)
        np.cumsum(counts, out=off[1:])
        xy = shapely.get_coordinates(geoms)
        return cls(xy[:, 0], xy[:, 1], off)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"LineIndex(n={self.n}, segments={self.seg_a.shape[0]})"

    def nearest_distance(self, xy, return_index: bool = False):
        """Distance from each point to its nearest line (``shapely.distance``; inf when no line has a segment).

        Parameters
        ----------
        xy : array_like, shape (n, 2)
        return_index : bool, default False
            Also return the nearest line of each point (the lowest index of
            equally near ones; -1 when there is none).

        Returns
        -------
        distance : ndarray of float64, shape (n,)
        index : ndarray of intp, shape (n,), with ``return_index``
        """
        p = as_points(xy)
        order, ps = self._visiting_order(p)
        d = np.empty(p.shape[0])
        i = np.empty(p.shape[0], np.intp)
        with _threads_for(p.shape[0]):
            LK.nearest_lines(ps, self.x, self.y, self.seg_a, self.seg_line, *self._grid, self.cell_offsets,
                             self.cell_items, d, i)
        if order is not None:  # back to the points' order
            d_vis, i_vis = d, i
            d, i = np.empty_like(d_vis), np.empty_like(i_vis)
            d[order], i[order] = d_vis, i_vis
        return (d, i) if return_index else d

    def _visiting_order(self, p: np.ndarray):
        """(order, p[order]): a large batch of points by grid cell, so that neighbours share the index data in
        cache ((None, p): a small batch, as it is)."""
        if p.shape[0] < 2048 or self.cell_items.shape[0] == 0:
            return None, p
        return K.grid_sort_rows(p, *self._grid)

    def query_within(self, xy, distance):
        """Every line within ``distance`` of each point, and where along it the point comes closest.

        Parameters
        ----------
        xy : array_like, shape (n, 2)
        distance : float or array_like, shape (n,)
            The radius, one for all points or one per point; >= 0 (0: the
            lines through the point; inf: every line).

        Returns
        -------
        pairs : ndarray of intp, shape (2, k)
            Point index and line index, one column per (point, line) pair with
            ``shapely.distance(line, point) <= distance``, sorted by point then
            line (as ``shapely.STRtree.query(..., predicate="dwithin")``).
        distance : ndarray of float64, shape (k,)
            ``shapely.distance(line, point)``.
        fraction : ndarray of float64, shape (k,)
            ``shapely.line_locate_point(line, point, normalized=True)``: the
            share of the line's length before its point nearest to the point.
        """
        p = as_points(xy)
        n = p.shape[0]
        r = _radii(distance, n)
        order, ps = self._visiting_order(p)
        args = (ps, r if order is None else r[order], self.x, self.y, self.seg_a, self.seg_line, self._seg_start,
                self._line_len, *self._grid, self.cell_offsets, self.cell_items, self.cell_boxes)
        out_p, out_l, out_d, out_f = _within_rows(
            n, lambda chunks, per, *rest: LK.lines_within(*args, per, chunks, *rest))
        if order is not None:  # rows by point again (out_p: the visiting order's index)
            perm = LK.rows_by_point(order, out_p, n)
            out_p, out_l, out_d, out_f = order[out_p[perm]], out_l[perm], out_d[perm], out_f[perm]
        return np.vstack([out_p, out_l]), out_d, out_f

