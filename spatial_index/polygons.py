"""Polygons with holes in the GeoArrow layout, with exact predicates."""

from __future__ import annotations

import numpy as np

from spatial_index import _kernels as K
from spatial_index.rtree import (PackedRTree, _nearest, _one_pass, _sorted_pairs, as_boxes, as_points,
                                 spatial_order)

__all__ = ["PolygonIndex", "ragged_geometries"]

_POINT_PREDICATES = ("within", "intersects")
_GEOM_PREDICATES = (None, "intersects")
_POINT_KEEP = 2  # hits per point kept by the counting pass (a point is rarely in more than two polygons)


def _check_offsets(off: np.ndarray, n_child: int, name: str) -> np.ndarray:
    raw = np.asarray(off)
    if raw.size and not (np.issubdtype(raw.dtype, np.integer)
                         or (raw.dtype.kind == "f" and np.isfinite(raw).all() and (raw == np.round(raw)).all())):
        raise TypeError(f"{name} must hold integer offsets, got dtype {raw.dtype} ({raw.ravel()[:6].tolist()}...)")
    off = np.ascontiguousarray(raw.astype(np.intp))
    if off.ndim != 1 or off.shape[0] < 1 or off[0] != 0 or off[-1] != n_child or (np.diff(off) < 0).any():
        raise ValueError(f"{name} must be a non-decreasing 1-D array from 0 to {n_child}, got {off!r}")
    return off


def _bounds_of(x, y, ring_off, part_off, geom_off) -> np.ndarray:
    """(n, 4) bounds per geometry; empty geometries get (inf, inf, -inf, -inf)."""
    ng = geom_off.shape[0] - 1
    cstart = ring_off[part_off[geom_off[:-1]]]
    cend = ring_off[part_off[geom_off[1:]]]
    out = np.empty((ng, 4))
    out[:, :2] = np.inf
    out[:, 2:] = -np.inf
    ne = cend > cstart
    if ne.any():
        # empty geometries own no coordinates, so the non-empty segments are contiguous
        s = cstart[ne]
        out[ne, 0] = np.minimum.reduceat(x, s)
        out[ne, 1] = np.minimum.reduceat(y, s)
        out[ne, 2] = np.maximum.reduceat(x, s)
        out[ne, 3] = np.maximum.reduceat(y, s)
    return out


def ragged_geometries(geometries):
    """Convert shapely geometries into GeoArrow-style arrays, one group per kind.

    Returns a list of ``(indices, kind, x, y, ring_off, part_off, geom_off)``
    with ``kind`` 0 points, 1 lines, 2 polygons; ``indices`` are positions in
    the input. Missing (None) and empty geometries are left out (no group
    lists their positions): they match nothing.
    """
    import shapely

    geoms = _as_geometry_array(geometries)
    tid = shapely.get_type_id(geoms)
    empty = shapely.is_empty(geoms) | (tid == -1)  # empty ones match nothing and are left out
    groups = []
    bad = ~np.isin(tid, [-1, 0, 1, 2, 3, 4, 5, 6])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TypeError(f"geometry {i} is a {geoms[i].geom_type}; only (multi)points, (multi)lines and "
                        "(multi)polygons are supported: explode collections first (shapely.get_parts)")
    for types, kind in (((0, 4), K.KIND_POINT), ((1, 2, 5), K.KIND_LINE), ((3, 6), K.KIND_POLYGON)):
        sel = np.flatnonzero(np.isin(tid, types) & ~empty)
        if sel.shape[0] == 0:
            continue
        sub = geoms[sel].copy()
        if kind == K.KIND_LINE:
            sub = np.array([shapely.LineString(g.coords) if g.geom_type == "LinearRing" else g for g in sub],
                           dtype=object) if (tid[sel] == 2).any() else sub
        gtype, coords, offsets = shapely.to_ragged_array(sub)
        coords = np.asarray(coords, dtype=np.float64)
        n = sub.shape[0]
        name = gtype.name
        if name == "POINT":
            keep = np.isfinite(coords).all(axis=1)  # empty points come as NaN
            coords = coords[keep]
            ring_off = np.arange(coords.shape[0] + 1)
            part_off = np.arange(coords.shape[0] + 1)
            geom_off = np.zeros(n + 1, np.intp)
            np.cumsum(keep, out=geom_off[1:])
        elif name == "MULTIPOINT":
            npt = coords.shape[0]
            ring_off = np.arange(npt + 1)
            part_off = np.arange(npt + 1)
            geom_off = offsets[0]
        elif name == "LINESTRING":
            ring_off, part_off, geom_off = offsets[0], np.arange(n + 1), np.arange(n + 1)
        elif name == "MULTILINESTRING":
            ring_off, part_off, geom_off = offsets[0], np.arange(offsets[1][-1] + 1), offsets[1]
        elif name == "POLYGON":
            ring_off, part_off, geom_off = offsets[0], offsets[1], np.arange(n + 1)
        else:  # MULTIPOLYGON
            ring_off, part_off, geom_off = offsets
        if not np.isfinite(coords).all():
            bad_c = int(np.flatnonzero(~np.isfinite(coords).all(axis=1))[0])
            g = int(np.searchsorted(np.asarray(ring_off)[np.asarray(part_off)[np.asarray(geom_off)]], bad_c,
                                    side="right") - 1)
            raise ValueError(f"geometry {int(sel[min(g, n - 1)])} has a NaN or infinite coordinate; "
                             "fix or drop it (shapely.is_valid_input / dropna)")
        groups.append((sel, kind, np.ascontiguousarray(coords[:, 0]), np.ascontiguousarray(coords[:, 1]),
                       np.ascontiguousarray(np.asarray(ring_off, np.intp)),
                       np.ascontiguousarray(np.asarray(part_off, np.intp)),
                       np.ascontiguousarray(np.asarray(geom_off, np.intp))))
    return groups


def _rank_in_group(idx: np.ndarray) -> np.ndarray:
    """0, 1, 2 ... within each run of equal values of the sorted array idx."""
    return np.arange(idx.shape[0]) - np.searchsorted(idx, idx)


def _polygon_arrays(geoms: np.ndarray):
    """GeoArrow arrays of non-empty shapely (multi)polygons, faster than ``shapely.to_ragged_array``.

    Per-polygon ring and coordinate counts (shapely's vectorised functions, in threads over chunks) give
    the offsets; the rings of polygons with holes are found in their coordinates (each ring is closed: it
    ends where its first coordinate comes back), with shapely.get_rings only where that scan does not
    match the ring count. shapely.get_coordinates holds the GIL: it is most of the time left.
    """
    import shapely

    parts, part_off, geom_off, ncoord = _polygon_parts(geoms)
    coords = shapely.get_coordinates(geoms)
    if coords.shape[0] != ncoord.sum():  # pragma: no cover - defensive
        raise ValueError("inconsistent polygon coordinates; check the geometries with shapely.is_valid")
    x = np.ascontiguousarray(coords[:, 0])
    y = np.ascontiguousarray(coords[:, 1])
    sizes, bad = K.ring_sizes(x, y, ncoord, np.diff(part_off))
    if bad.shape[0]:
        rings, ridx = shapely.get_rings(parts[bad], return_index=True)
        sizes[part_off[bad[ridx]] + _rank_in_group(ridx)] = shapely.get_num_coordinates(rings)
    ring_off = np.zeros(sizes.shape[0] + 1, np.intp)
    np.cumsum(sizes, out=ring_off[1:])
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        bad_c = int(np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))[0])
        g = int(np.searchsorted(ring_off[part_off[geom_off]], bad_c, side="right") - 1)
        raise ValueError(f"polygon {g} has a NaN or infinite coordinate; fix or drop it")
    return x, y, ring_off, part_off, geom_off


def _polygon_parts(geoms: np.ndarray):
    """(parts, part_off, geom_off, coordinates per part) of non-empty shapely (multi)polygons."""
    import shapely

    n = geoms.shape[0]
    tid, nint, ncoord = _in_threads(_part_counts, geoms)
    multi = tid == 6
    if multi.any():
        nparts = np.ones(n, np.intp)
        nparts[multi] = shapely.get_num_geometries(geoms[multi])
        geom_off = np.zeros(n + 1, np.intp)
        np.cumsum(nparts, out=geom_off[1:])
        parts = np.empty(geom_off[-1], dtype=object)
        parts[geom_off[:-1][~multi]] = geoms[~multi]
        mparts, midx = shapely.get_parts(geoms[multi], return_index=True)
        parts[geom_off[np.flatnonzero(multi)[midx]] + _rank_in_group(midx)] = mparts
        _, nint, ncoord = _part_counts(parts)
    else:
        parts = geoms
        geom_off = np.arange(n + 1, dtype=np.intp)
    part_off = np.zeros(parts.shape[0] + 1, np.intp)
    np.cumsum(1 + nint, out=part_off[1:])
    return parts, part_off, geom_off, ncoord.astype(np.intp)


def _part_counts(geoms: np.ndarray):
    import shapely

    return shapely.get_type_id(geoms), shapely.get_num_interior_rings(geoms), shapely.get_num_coordinates(geoms)


def _concurrently(background, foreground, threaded: bool = True):
    """(background(), foreground()), the first run in a new thread: worth it when one of them is made of
    shapely's vectorised functions, which release the GIL (shapely.get_coordinates does not), and both
    are long enough to pay for a thread (``threaded=False``: one after the other, here)."""
    import threading

    if not threaded:
        return background(), foreground()
    res = []

    def work():
        try:
            res.append((True, background()))
        except BaseException as exc:  # re-raised in the caller's thread
            res.append((False, exc))

    t = threading.Thread(target=work)
    t.start()
    try:
        fg = foreground()
    finally:
        t.join()
    ok, bg = res[0]
    if not ok:
        raise bg
    return bg, fg


def _in_threads(fn, geoms: np.ndarray, min_size: int = 20_000):
    """fn(chunk) -> tuple of arrays, run on contiguous chunks of geoms in threads (shapely's vectorised
    functions release the GIL), results concatenated; one call in this thread for small inputs."""
    import threading

    from numba import get_num_threads

    n = geoms.shape[0]
    nt = min(get_num_threads(), max(1, n // min_size))
    if nt <= 1:
        return fn(geoms)
    cuts = np.linspace(0, n, nt + 1).astype(np.intp)
    res = [None] * nt
    err = []

    def work(i):
        try:
            res[i] = fn(geoms[cuts[i]:cuts[i + 1]])
        except BaseException as exc:  # re-raised in the caller's thread
            err.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, nt)]
    for t in threads:
        t.start()
    work(0)
    for t in threads:
        t.join()
    if err:
        raise err[0]
    return tuple(np.concatenate([r[k] for r in res]) for k in range(len(res[0])))


def _bounds(geoms: np.ndarray):
    import shapely

    return (shapely.bounds(geoms),)


def _as_geometry_array(geometries, check: bool = True) -> np.ndarray:
    import shapely

    if hasattr(geometries, "geometry") and hasattr(geometries, "crs") and not hasattr(geometries, "values"):
        geometries = geometries.geometry
    if hasattr(geometries, "geometry") and hasattr(geometries, "columns"):  # GeoDataFrame
        geometries = geometries.geometry
    if hasattr(geometries, "values") and hasattr(geometries, "crs"):  # GeoSeries
        geometries = np.asarray(geometries.values, dtype=object)
    if isinstance(geometries, shapely.Geometry):
        geometries = [geometries]
    arr = np.asarray(geometries, dtype=object)
    if arr.ndim != 1:
        arr = arr.ravel()
    if not check:
        return arr
    ok = shapely.is_geometry(arr) | shapely.is_missing(arr)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise TypeError(f"geometries must be shapely geometries (or None); item {i} is {type(arr[i]).__name__}")
    return arr


class PolygonIndex:
    """Polygons and multipolygons with holes, indexed for exact spatial queries.

    Built from shapely geometries (array, list or GeoSeries) with
    :meth:`from_shapely`, or from GeoArrow-style arrays with :meth:`from_arrays`.
    Coordinates are held flat (``x``, ``y``) with ring, part and geometry
    offsets; an STR-packed R-tree over the polygon bounds finds candidates and
    exact kernels (robust orientation tests, GEOS ray-crossing rules) decide.

    ``from_shapely`` builds from the polygons' bounds alone and reads their
    coordinates out of shapely at the first query that needs them (see its
    ``lazy`` argument), as ``shapely.STRtree`` builds at its first query.

    Point and box queries go through a uniform grid over the polygon bounds
    (``grid=True``, the default; cells about one polygon wide, CSR lists),
    built at the first batch of queries that makes it worth building
    (:meth:`PackedRTree.build_grid` with ``lazy=True``), through the tree
    before that; nearest queries always go through the tree. Either gives
    the same pairs.

    Boundary semantics follow shapely/GEOS: a point on an edge or vertex of a
    polygon (shell or hole) ``intersects`` it but is not ``within`` it; a
    point inside a hole is outside. Empty and missing polygons are never
    returned, like ``shapely.STRtree``.

    Examples
    --------
    >>> import shapely
    >>> sq = shapely.box(0, 0, 10, 10).difference(shapely.box(4, 4, 6, 6))
    >>> idx = PolygonIndex.from_shapely([sq, shapely.box(10, 0, 20, 10)])
    >>> idx.query_points([[5, 5], [2, 2], [10, 5]], predicate="within").tolist()
    [[1], [0]]
    >>> idx.query_points([[5, 5], [2, 2], [10, 5]], predicate="intersects").tolist()
    [[1, 2, 2], [0, 0, 1]]
    >>> idx.query([shapely.box(3, 3, 3.5, 3.5), shapely.LineString([(5, 5), (5.5, 5.5)])]).tolist()
    [[0], [0]]
    """

    def __init__(self, x, y, ring_off, part_off, geom_off, node_size: int = 16, grid: bool = True) -> None:
        x = np.ascontiguousarray(x, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        ring_off, part_off, geom_off = (np.ascontiguousarray(o, dtype=np.intp) for o in (ring_off, part_off, geom_off))
        self._set_index(_bounds_of(x, y, ring_off, part_off, geom_off), node_size, grid)
        self._arrays = (x, y, ring_off, part_off, geom_off)
        self._geoms = None
        # the kernels read the polygons by tree slot: a copy in that (spatial) order keeps them in cache
        self._slot_polys = K.gather_geoms(self.tree.item_ids, x, y, ring_off, part_off, geom_off)

    def _set_index(self, bounds: np.ndarray, node_size: int, grid: bool) -> None:
        """Tree (and grid) over the polygon bounds; empty ones, with bounds (inf, inf, -inf, -inf), are left out."""
        self.n = bounds.shape[0]
        self.bounds_array = bounds
        self._partly_read = 0  # polygons read for single queries by a lazy index (see _few_points)
        valid = bounds[:, 0] <= bounds[:, 2]
        if valid.all():  # no empties: the tree numbers the items as they are
            self.tree = PackedRTree._from_valid(np.ascontiguousarray(bounds), None, self.n, node_size)
        else:
            ne = np.flatnonzero(valid)
            self.tree = PackedRTree._from_valid(np.ascontiguousarray(bounds[ne]), ne, self.n, node_size)
        if grid:
            self.tree.build_grid(lazy=True)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_shapely(cls, geometries, node_size: int = 16, lazy: bool = True) -> "PolygonIndex":
        """Index shapely Polygons/MultiPolygons (array, list or GeoSeries; None and empty allowed).

        Parameters
        ----------
        geometries : polygons and multipolygons; None and empty ones match nothing.
        node_size : children per tree node.
        lazy : bool, default True
            Build the index from the polygons' bounds only and read their
            coordinates out of shapely at the first query that needs them
            (an exact predicate, nearest, or the ``x``/``y``/offset arrays),
            as ``shapely.STRtree`` prepares its geometries only when queried.
            A point query with few candidates (under an eighth of the
            polygons) reads only theirs, and leaves the rest unread.
            A NaN coordinate is then reported by the first exact query
            that reads it;
            ``lazy=False`` reads (and checks) everything now. The geometries
            are kept referenced until then.
        """
        import shapely

        geoms = _as_geometry_array(geometries, check=False)
        try:
            (bounds,) = _in_threads(_bounds, geoms)
        except TypeError:
            _as_geometry_array(geoms)  # names the first item that is not a geometry
            raise
        # NaN for empty and missing ones only: GEOS starts an envelope at a ring's first coordinate, which
        # is finite in a closed ring, and skips NaN ones after it; those are reported when read (lazily)
        if np.isinf(bounds).any():
            i = int(np.flatnonzero(np.isinf(bounds).any(axis=1))[0])
            raise ValueError(f"polygon {i} has an infinite coordinate; fix or drop it")
        nan = np.isnan(bounds[:, 0])
        bounds[nan, :2] = np.inf
        bounds[nan, 2:] = -np.inf
        self = cls.__new__(cls)
        # the type check (shapely, GIL released) runs beside the tree and grid build (numba, nogil)
        tid, _ = _concurrently(lambda: shapely.get_type_id(geoms), lambda: self._set_index(bounds, node_size, True),
                               threaded=geoms.shape[0] >= 50_000)
        bad = ~np.isin(tid, [-1, 3, 6])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TypeError(f"PolygonIndex holds polygons; geometry {i} is a {geoms[i].geom_type}")
        self._geoms = geoms
        self._arrays = None
        self._slot_polys = None
        if not lazy:
            self._polys()
        return self

    def _polys(self):
        """Polygon arrays in tree-slot order (read out of shapely at the first call for a lazy index)."""
        if self._slot_polys is None:
            self._slot_polys = self._read_slot_polys()
        return self._slot_polys

    def _read_slot_polys(self):
        ids = self.tree.item_ids
        if ids.shape[0] == 0:
            z = np.zeros(1, np.intp)
            return np.zeros(0), np.zeros(0), z, z, z
        return self._read(ids)

    def _read(self, ids: np.ndarray):
        """GeoArrow arrays of the (non-empty) polygons ids, read out of shapely; errors name the caller's row."""
        try:
            return _polygon_arrays(self._geoms[ids])
        except ValueError as exc:
            msg = str(exc)
            if msg.startswith("polygon "):
                i = int(msg.split()[1])
                msg = f"polygon {int(ids[i])}" + msg[len(f"polygon {i}"):]
            raise ValueError(msg) from None

    def _few_points(self, p: np.ndarray, interior_only: bool):
        """Pairs of a point query on a lazy index whose coordinates are not read, reading only the
        candidates' (as STRtree prepares only the geometries it tests); None when the candidates are
        many (over an eighth of the polygons, or over all of them counting earlier such reads): then
        everything is read once, as for a large query."""
        if self._slot_polys is not None or p.shape[0] * 8 > self.n:
            return None
        cand = self.tree._query(np.ascontiguousarray(np.hstack([p, p])))
        if cand.shape[1] == 0:
            return cand
        ids, local = np.unique(cand[1], return_inverse=True)
        self._partly_read += ids.shape[0]
        if ids.shape[0] * 8 > self.n or self._partly_read > self.n:
            return None
        keep = K.locate_pairs(p, cand[0], local.astype(np.intp).ravel(), interior_only, *self._read(ids))
        return np.ascontiguousarray(cand[:, keep])

    def _input_arrays(self):
        """The GeoArrow arrays in input order (empty geometries own no parts)."""
        if self._arrays is None:
            sx, sy, sro, spo, sgo = self._polys()
            ids = self.tree.item_ids
            by_input = np.argsort(ids).astype(np.intp)  # the slots of the non-empty polygons, in input order
            x, y, ring_off, part_off, go = K.gather_geoms(by_input, sx, sy, sro, spo, sgo)
            nparts = np.zeros(self.n, np.intp)
            nparts[np.sort(ids)] = np.diff(go)
            geom_off = np.zeros(self.n + 1, np.intp)
            np.cumsum(nparts, out=geom_off[1:])
            self._arrays = (x, y, ring_off, part_off, geom_off)
        return self._arrays

    @property
    def x(self) -> np.ndarray:
        """x of every coordinate (GeoArrow layout, input order)."""
        return self._input_arrays()[0]

    @property
    def y(self) -> np.ndarray:
        """y of every coordinate."""
        return self._input_arrays()[1]

    @property
    def ring_off(self) -> np.ndarray:
        """Ring r owns coordinates ring_off[r]:ring_off[r + 1]."""
        return self._input_arrays()[2]

    @property
    def part_off(self) -> np.ndarray:
        """Polygon p owns rings part_off[p]:part_off[p + 1], the shell first."""
        return self._input_arrays()[3]

    @property
    def geom_off(self) -> np.ndarray:
        """Geometry g owns polygons geom_off[g]:geom_off[g + 1] (none when empty)."""
        return self._input_arrays()[4]

    @classmethod
    def from_arrays(cls, coords, ring_offsets, part_offsets, geom_offsets=None, node_size: int = 16):
        """Index polygons given as GeoArrow arrays.

        Parameters
        ----------
        coords : (n, 2) float array; every ring closed (first == last), at least 4 coordinates.
        ring_offsets : (r + 1,) ring r owns coords[ring_offsets[r]:ring_offsets[r + 1]].
        part_offsets : (p + 1,) polygon p owns rings part_offsets[p]:...; the first is the shell.
        geom_offsets : (g + 1,) optional; multipolygon g owns polygons geom_offsets[g]:...
            Default: one polygon per geometry.
        """
        c = as_points(coords, "coords") if len(coords) else np.zeros((0, 2))
        ring_off = _check_offsets(ring_offsets, c.shape[0], "ring_offsets")
        part_off = _check_offsets(part_offsets, ring_off.shape[0] - 1, "part_offsets")
        if geom_offsets is None:
            geom_off = np.arange(part_off.shape[0], dtype=np.intp)
        else:
            geom_off = _check_offsets(geom_offsets, part_off.shape[0] - 1, "geom_offsets")
        s, e = ring_off[:-1], ring_off[1:]
        short = (e - s) < 4
        if short.any():
            r = int(np.flatnonzero(short)[0])
            raise ValueError(f"ring {r} has {int(e[r] - s[r])} coordinates; a ring needs at least 4 "
                             "(closed: the first coordinate repeated at the end)")
        unclosed = (c[s] != c[e - 1]).any(axis=1)
        if unclosed.any():
            r = int(np.flatnonzero(unclosed)[0])
            raise ValueError(f"ring {r} is not closed: first {c[s[r]].tolist()} != last {c[e[r] - 1].tolist()}; "
                             "repeat the first coordinate at the end")
        return cls(c[:, 0], c[:, 1], ring_off, part_off, geom_off, node_size)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        if self._slot_polys is None:
            return f"PolygonIndex(n={self.n}, coordinates not read yet)"
        sx, _, sro = self._slot_polys[:3]
        return f"PolygonIndex(n={self.n}, coords={sx.shape[0]}, rings={sro.shape[0] - 1})"

    # ---------------------------------------------------------------- queries
    def query_points(self, xy, predicate: str = "within") -> np.ndarray:
        """Polygons related to each point by ``predicate``.

        Parameters
        ----------
        xy : (m, 2) array of finite coordinates, or shapely points.
        predicate : {"within", "intersects"}
            ``within``: the point lies in the polygon's interior;
            ``intersects``: interior or boundary.

        Returns
        -------
        ndarray of intp, shape (2, k): point index, polygon index (sorted).
        """
        if predicate not in _POINT_PREDICATES:
            raise ValueError(f"predicate must be one of {_POINT_PREDICATES}, got {predicate!r}")
        p = self._xy(xy)
        interior_only = predicate == "within"
        few = self._few_points(p, interior_only)
        if few is not None:
            return few
        targs = self.tree._tree_args(p.shape[0])
        polys = self._polys()

        def run(ps, *protocol):
            K.poly_query_points(ps, interior_only, *targs, *polys, *protocol)

        return _sorted_pairs(p, self.tree, run, keep=_POINT_KEEP)

    @staticmethod
    def _xy(xy) -> np.ndarray:
        import shapely

        arr = np.asarray(xy) if not hasattr(xy, "crs") else np.asarray(xy.values, dtype=object)
        if arr.dtype == object:
            geoms = _as_geometry_array(arr)
            tid = shapely.get_type_id(geoms)
            if not (tid == 0).all():
                i = int(np.flatnonzero(tid != 0)[0])
                what = "missing (None)" if tid[i] == -1 else f"a {geoms[i].geom_type}"
                raise TypeError(f"query_points takes an (m, 2) array or shapely Points; point {i} is {what}: use "
                                "query() for other geometries (it skips missing ones)")
            if shapely.is_empty(geoms).any():
                raise ValueError("query_points got empty points; drop them first (use query() which skips them)")
            arr = shapely.get_coordinates(geoms)
        return as_points(arr)

    def query(self, geometries, predicate: str | None = "intersects") -> np.ndarray:
        """Polygons that each query geometry intersects (exactly).

        Parameters
        ----------
        geometries : shapely geometries (points, lines, polygons and their
            multi-forms; array, list or GeoSeries) or an (m, 4) array (or list)
            of boxes.
        predicate : {"intersects", None}
            None returns bounding-box candidates only.

        Returns
        -------
        ndarray of intp, shape (2, k): query index, polygon index (sorted).
        Empty and missing query geometries match nothing.
        """
        if predicate not in _GEOM_PREDICATES:
            raise ValueError(f"predicate must be one of {_GEOM_PREDICATES}, got {predicate!r}")
        if isinstance(geometries, (list, tuple)) and len(geometries):
            first = geometries[0][0] if isinstance(geometries[0], (list, tuple, np.ndarray)) and len(geometries[0]) \
                else geometries[0]
            if isinstance(first, (int, float, np.number)):  # boxes given as a list (of lists)
                geometries = as_boxes(geometries, "geometries (boxes)")
        if isinstance(geometries, np.ndarray) and geometries.dtype != object:
            b = as_boxes(geometries, "geometries (boxes)")
            if predicate is None:
                return self.tree._query(b)
            targs = self.tree._tree_args(b.shape[0])
            polys = self._polys()

            def run_boxes(qs, *protocol):
                K.poly_query_boxes(qs, *targs, *polys, *protocol)

            return _sorted_pairs(b, self.tree, run_boxes)
        else:
            groups = ragged_geometries(geometries)
        out = []
        # (bounding-box queries count themselves in tree._query)
        targs = self.tree._tree_args(sum(g[0].shape[0] for g in groups)) if predicate is not None else None
        for sel, kind, qx, qy, qring, qpart, qgeom in groups:
            qbox = _bounds_of(qx, qy, qring, qpart, qgeom)
            if predicate is None:
                ne = qbox[:, 0] <= qbox[:, 2]
                pairs = self.tree._query(np.ascontiguousarray(qbox[ne]))
                pairs[0] = np.flatnonzero(ne)[pairs[0]]
            else:
                qa = (kind, qx, qy, qring, qpart, qgeom, qbox)
                ne = qbox[:, 0] <= qbox[:, 2]
                cx = np.where(ne, qbox[:, 0] + qbox[:, 2], 0.0)
                cy = np.where(ne, qbox[:, 1] + qbox[:, 3], 0.0)
                order = spatial_order(cx, cy, self.tree)

                def run(*protocol, qa=qa, order=order):
                    K.poly_query_geoms(*qa, *targs, *self._polys(), order, *protocol)

                pairs = _one_pass(qbox.shape[0], run, order)
            pairs[0] = sel[pairs[0]]
            out.append(pairs)
        if not out:
            return np.zeros((2, 0), np.intp)
        res = np.hstack(out)
        if len(out) > 1:
            res = res[:, np.lexsort((res[1], res[0]))]
        return res

    def nearest(self, xy, k: int = 1, max_distance: float | None = None, all_matches: bool = True):
        """Nearest polygons of each point, by exact distance (0 inside or on the boundary).

        Same result as ``shapely.STRtree.query_nearest(points, return_distance=True)``
        (all ties with ``k == 1``), sorted by point then polygon.
        """
        p = self._xy(xy)
        return _nearest(p, k, max_distance, all_matches, self.tree._tree_args(), self._polys())
