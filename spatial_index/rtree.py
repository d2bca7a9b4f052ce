"""A static packed R-tree over axis-aligned boxes (STR packing, flat arrays)."""

from __future__ import annotations

import contextlib
import math

import numba
import numpy as np

from spatial_index import _kernels as K

__all__ = ["PackedRTree"]

_MAX_NODE_SIZE = 64


def as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Validate and cast an (n, 4) array of (xmin, ymin, xmax, ymax)."""
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric with shape (n, 4) as (xmin, ymin, xmax, ymax): {exc}") from None
    if arr.ndim == 1 and arr.shape[0] in (0, 4):  # one box, or none ([])
        arr = arr.reshape(-1, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (n, 4) as (xmin, ymin, xmax, ymax), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name} row {bad} has a NaN or infinite coordinate {arr[bad].tolist()}; "
                         "drop or fix such rows first")
    inv = (arr[:, 0] > arr[:, 2]) | (arr[:, 1] > arr[:, 3])
    if inv.any():
        bad = int(np.flatnonzero(inv)[0])
        raise ValueError(f"{name} row {bad} has xmin > xmax or ymin > ymax: {arr[bad].tolist()}")
    return np.ascontiguousarray(arr)


def as_points(xy, name: str = "xy") -> np.ndarray:
    """Validate and cast an (n, 2) array of finite coordinates."""
    try:
        arr = np.asarray(xy, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric with shape (n, 2): {exc}") from None
    if arr.ndim == 1 and arr.shape[0] in (0, 2):  # one point, or none ([])
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) as (x, y), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name} row {bad} has a NaN or infinite coordinate {arr[bad].tolist()}; "
                         "drop such points first (e.g. xy[np.isfinite(xy).all(axis=1)])")
    return np.ascontiguousarray(arr)


def _str_order(cx: np.ndarray, cy: np.ndarray, node_size: int) -> np.ndarray:
    """Sort-Tile-Recursive order: vertical slices by x, then y within each slice (radix sorts in numba)."""
    n = cx.shape[0]
    nleaves = math.ceil(n / node_size)
    nslices = max(1, math.ceil(math.sqrt(nleaves)))
    slice_size = nslices * node_size
    if n < 2048:  # upper levels: numpy is quicker than the radix passes over their buckets (measured)
        rank = np.empty(n, np.intp)
        rank[np.argsort(cx)] = np.arange(n)
        return np.lexsort((cy, rank // slice_size))
    return K.str_order(np.ascontiguousarray(cx), np.ascontiguousarray(cy), slice_size)


def _pack(bounds: np.ndarray, node_size: int):
    """Build node arrays bottom-up. Returns (item order, bounds[order], nb, nstart, ncount, nleaf, depth)."""
    n = bounds.shape[0]
    if n == 0:
        z = np.zeros(0, np.intp)
        return z, np.zeros((0, 4)), np.zeros((0, 4)), z, z, np.zeros(0, np.uint8), 0
    order = _str_order(0.5 * (bounds[:, 0] + bounds[:, 2]), 0.5 * (bounds[:, 1] + bounds[:, 3]), node_size)
    level_b = item_b = np.take(bounds, order, axis=0)
    levels = []  # (nb, nstart, ncount, leaf)
    child_start = None  # for upper levels, the global index of the child level's first node
    leaf = True
    total = 0
    while True:
        m = level_b.shape[0]
        starts = np.arange(0, m, node_size)
        counts = np.minimum(node_size, m - starts)
        nb = np.empty((starts.shape[0], 4))
        nb[:, 0] = np.minimum.reduceat(level_b[:, 0], starts)
        nb[:, 1] = np.minimum.reduceat(level_b[:, 1], starts)
        nb[:, 2] = np.maximum.reduceat(level_b[:, 2], starts)
        nb[:, 3] = np.maximum.reduceat(level_b[:, 3], starts)
        nstart = starts.astype(np.intp) + (0 if leaf else child_start)
        if nb.shape[0] > 1:  # re-tile this level so that its parents group neighbours
            o = _str_order(0.5 * (nb[:, 0] + nb[:, 2]), 0.5 * (nb[:, 1] + nb[:, 3]), node_size)
            nb, nstart, counts = nb[o], nstart[o], counts[o]
        levels.append((nb, nstart, counts.astype(np.intp), leaf))
        child_start = total
        total += nb.shape[0]
        if nb.shape[0] == 1:
            break
        level_b = nb
        leaf = False
    nb = np.ascontiguousarray(np.concatenate([lv[0] for lv in levels]))
    nstart = np.ascontiguousarray(np.concatenate([lv[1] for lv in levels]))
    ncount = np.ascontiguousarray(np.concatenate([lv[2] for lv in levels]))
    nleaf = np.concatenate([np.full(lv[0].shape[0], 1 if lv[3] else 0, np.uint8) for lv in levels])
    return order, item_b, nb, nstart, ncount, nleaf, len(levels)


def spatial_order(cx: np.ndarray, cy: np.ndarray, tree: "PackedRTree | None" = None) -> np.ndarray:
    """Permutation of queries (given by doubled centres) that keeps neighbours together (identity for small inputs): by grid cell
    when ``tree`` has a grid (a counting sort), else by Z-order (Morton code)."""
    n = cx.shape[0]
    if n < 2048:
        return np.arange(n, dtype=np.intp)
    if tree is not None and tree.grid_shape[0] > 0:
        # cx, cy are doubled centres (xmin + xmax)
        return K.grid_order(np.ascontiguousarray(cx), np.ascontiguousarray(cy), 2.0 * tree.grid_origin[0],
                            2.0 * tree.grid_origin[1], 0.5 * tree.grid_inv, tree.grid_shape[0], tree.grid_shape[1])
    x0, x1, y0, y1 = cx.min(), cx.max(), cy.min(), cy.max()
    codes = np.empty(n, np.uint64)
    K.morton_codes(np.ascontiguousarray(cx), np.ascontiguousarray(cy), x0, y0,
                   65535.0 / (x1 - x0) if x1 > x0 else 0.0, 65535.0 / (y1 - y0) if y1 > y0 else 0.0, codes)
    return np.argsort(codes).astype(np.intp)


def spatial_sort(q: np.ndarray, tree: "PackedRTree | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """(order, q[order]) for query rows q (points (n, 2) or boxes (n, 4)), neighbours together:
    by grid cell (one counting-sort kernel): the tree's grid when it has one, else a grid over the queries."""
    n = q.shape[0]
    if n < 2048:
        return np.arange(n, dtype=np.intp), q
    if tree is not None and tree.grid_shape[0] > 0:
        return K.grid_sort_rows(q, tree.grid_origin[0], tree.grid_origin[1], tree.grid_inv, tree.grid_shape[0],
                                tree.grid_shape[1])
    # no grid: bin the queries on their own grid, about 4 per cell (row-major cells keep neighbours close)
    h = q.shape[1] - 2  # the opposite corner's column (0 for points)
    x0, y0 = float(q[:, 0].min()), float(q[:, 1].min())
    w = max(float(q[:, h].max()) - x0, 1e-300)
    hh = max(float(q[:, h + 1].max()) - y0, 1e-300)
    size = max(np.sqrt(w * hh / (n / 4.0)), max(w, hh) / 4096.0)
    nx = min(int(w / size) + 1, 4096)
    ny = min(int(hh / size) + 1, 4096)
    return K.grid_sort_rows(q, x0, y0, 1.0 / size, nx, ny)


def grid_layout(b: np.ndarray, cells_per_item: float = 1.0) -> tuple[float, float, float, int, int]:
    """(x0, y0, 1 / cell size, nx, ny) of a uniform grid over the (n >= 1, 4) boxes b: about
    ``cells_per_item`` cells per box, cells no smaller than the median box, at most 4096 across, doubled in
    size until the boxes' cell lists hold at most 16 entries per box."""
    n = b.shape[0]
    x0, y0 = float(b[:, 0].min()), float(b[:, 1].min())
    w, h = float(b[:, 2].max()) - x0, float(b[:, 3].max()) - y0
    size = max(np.sqrt(max(w * h, 1e-300) / (n * cells_per_item)), float(np.median(np.maximum(
        b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))), max(w, h) / 4096.0, 1e-9)
    while True:
        inv = 1.0 / size
        nx = min(int(np.floor(w * inv)) + 1, 1 << 15)
        ny = min(int(np.floor(h * inv)) + 1, 1 << 15)
        cx = np.minimum(np.floor((b[:, 2] - x0) * inv), nx - 1) - np.floor((b[:, 0] - x0) * inv) + 1
        cy = np.minimum(np.floor((b[:, 3] - y0) * inv), ny - 1) - np.floor((b[:, 1] - y0) * inv) + 1
        if float((cx * cy).sum()) <= 16.0 * n + 64 and nx * ny <= 8 * n + 64:
            return x0, y0, inv, nx, ny
        size *= 2.0


_KEEP = 4  # room for hits per query in the first run of a one-pass kernel (virtual memory: pages never
#            written cost nothing); chunks that find more are run again with room for all


_SERIAL_MAX = 64  # batches of at most this many queries run on the calling thread alone


@contextlib.contextmanager
def _threads_for(nq: int):
    """numba's thread count for a batch of nq queries: one for a few queries (waking the pool's sleeping
    threads costs more than such a batch, milliseconds when other processes hold the cores)."""
    if nq > _SERIAL_MAX:
        yield
        return
    k = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(k)


def _run_chunks(nq: int, run, keep: int, dtypes):
    """Run a one-pass kernel (see _kernels' protocol) over nq queries in chunks, each with room for ``keep``
    hits a query (virtual memory: pages never written cost nothing), then again, in parallel and with exactly
    the room they need, the chunks that found more.

    ``run(chunks, per, base, cap, chunk_n, *outs)`` runs the kernel over the given chunks of ``per`` queries,
    writing one array of ``outs`` per dtype of ``dtypes``. Returns ``(base, chunk_n, outs, obase, oouts)``:
    chunk c's rows are ``outs[..][base[c]:base[c] + chunk_n[c]]``, or, where ``obase[c] >= 0`` (run again),
    ``oouts[..][obase[c]:obase[c] + chunk_n[c]]``.
    """
    nch = max(1, min(nq, 256))
    per = max(1, -(-nq // nch))
    room = per * keep
    chunks = np.arange(nch, dtype=np.intp)
    base = chunks * room
    cap = np.full(nch, room, np.intp)
    chunk_n = np.zeros(nch, np.intp)
    outs = [np.empty(nch * room, dt) for dt in dtypes]
    obase = np.full(nch, -1, np.intp)
    with _threads_for(nq):
        run(chunks, per, base, cap, chunk_n, *outs)
        over = np.flatnonzero(chunk_n > cap)
        if over.shape[0]:
            ocap = chunk_n[over]
            ob = np.zeros(over.shape[0], np.intp)
            np.cumsum(ocap[:-1], out=ob[1:])
            oouts = [np.empty(int(ocap.sum()), dt) for dt in dtypes]
            run(over, per, ob, ocap, np.zeros(over.shape[0], np.intp), *oouts)
            obase[over] = ob
        else:
            oouts = [np.zeros(0, dt) for dt in dtypes]
    return base, chunk_n, outs, obase, oouts


def _one_pass(nq: int, run, order: np.ndarray | None, keep: int = _KEEP) -> np.ndarray:
    """(2, k) pairs sorted by query then item from a one-pass kernel (see _kernels' protocol).

    ``run(chunks, per, base, cap, chunk_n, hit_w, hit_g)`` runs the kernel over the queries in its visiting
    order; ``order[w]`` is the query visited at w (None: the queries' own order). See :func:`_run_chunks`.
    """
    base, chunk_n, (hit_w, hit_g), obase, (o_w, o_g) = _run_chunks(nq, run, keep, (np.intp, np.intp))
    return K.pairs_from_hits(np.zeros(0, np.intp) if order is None else order, nq, base, chunk_n, hit_w, hit_g,
                             obase, o_w, o_g)


def _sorted_pairs(q: np.ndarray, tree: "PackedRTree", run, keep: int = _KEEP) -> np.ndarray:
    """(2, k) pairs (sorted) of the queries q (rows), run in a spatial order (see spatial_sort).

    ``run(qs, chunks, per, base, cap, chunk_n, hit_w, hit_g)`` is a one-pass kernel call over the rows qs.
    The queries are copied in spatial order first so that the kernel reads its inputs sequentially and
    finds the index data of neighbouring queries in cache (random access to 1M queries costs more than
    the queries themselves).
    """
    order, qs = spatial_sort(q, tree)
    return _one_pass(q.shape[0], lambda *a: run(qs, *a), order if qs is not q else None, keep)


class PackedRTree:
    """A static R-tree over boxes, packed with Sort-Tile-Recursive into flat arrays.

    Parameters
    ----------
    boxes : array_like, shape (n, 4)
        ``(xmin, ymin, xmax, ymax)`` per item; finite, with min <= max.
    node_size : int, default 16
        Children per node (2..64).

    Notes
    -----
    Boxes are closed: boxes that only touch are reported, as in
    ``shapely.STRtree.query`` without a predicate. Queries run in parallel
    (numba ``prange``); the tree pickles as plain arrays.

    Examples
    --------
    >>> import numpy as np
    >>> tree = PackedRTree(np.array([[0, 0, 1, 1], [2, 2, 3, 3], [0.5, 0.5, 2.5, 2.5]]))
    >>> tree.query(np.array([[0.9, 0.9, 1.0, 1.0]])).tolist()
    [[0, 0], [0, 2]]
    >>> tree.query_points(np.array([[3.0, 3.0]])).tolist()
    [[0], [1]]
    >>> idx, dist = tree.nearest(np.array([[4.0, 3.0]]))
    >>> idx.tolist(), dist.tolist()
    ([[0], [1]], [1.0])
    """

    def __init__(self, boxes, node_size: int = 16) -> None:
        if isinstance(node_size, bool) or not isinstance(node_size, (int, np.integer)):
            raise TypeError(f"node_size must be an int between 2 and {_MAX_NODE_SIZE}, got {node_size!r}")
        if not 2 <= int(node_size) <= _MAX_NODE_SIZE:
            raise ValueError(f"node_size must be between 2 and {_MAX_NODE_SIZE}, got {node_size}")
        self.node_size = int(node_size)
        b = as_boxes(boxes)
        self._set_tree(b)

    @classmethod
    def _from_valid(cls, b: np.ndarray, ids: np.ndarray | None, n: int, node_size: int = 16) -> "PackedRTree":
        # b: validated boxes of the items ids (a subset of range(n), e.g. without empties; None: all of them)
        self = cls.__new__(cls)
        self.node_size = node_size
        self._set_tree(b, ids, n)
        return self

    def _set_tree(self, b: np.ndarray, ids: np.ndarray | None = None, n: int | None = None) -> None:
        order, item_b, nb, nstart, ncount, nleaf, depth = _pack(b, self.node_size)
        self.n = b.shape[0] if n is None else n
        self.item_bounds = item_b
        self.item_ids = order if ids is None else np.ascontiguousarray(ids[order].astype(np.intp))
        self.node_bounds = nb
        self.node_start = nstart
        self.node_count = ncount
        self.node_leaf = nleaf
        self.depth = depth
        self._no_grid()

    def _no_grid(self) -> None:
        self._grid_lazy = None  # (cells_per_item, queries seen) while a grid is wanted but not built yet
        self.grid_origin = (0.0, 0.0)
        self.grid_inv = 1.0
        self.grid_shape = (0, 0)
        self.cell_offsets = np.zeros(1, np.intp)
        self.cell_items = np.zeros(0, np.intp)
        self.cell_boxes = np.zeros((0, 4))

    def build_grid(self, cells_per_item: float = 1.0, lazy: bool = False) -> "PackedRTree":
        """Add a uniform-grid accelerator (CSR cell lists) used by box/point queries instead of the tree.

        Worth it for many small queries over items of similar size (buildings, parcels); nearest
        queries keep using the tree. Both give the same pairs. With ``lazy=True`` the grid is built
        when the box/point queries asked so far reach a quarter of the items (a build costs about
        as much as querying that many boxes through the tree instead of the grid), so that an index
        built for a few queries never pays for it. Returns self.
        """
        if lazy:
            if self.grid_shape[0] == 0:
                self._grid_lazy = (float(cells_per_item), 0)
            return self
        self._grid_lazy = None
        b = self.item_bounds
        if b.shape[0] == 0:
            return self
        x0, y0, inv, nx, ny = grid_layout(b, cells_per_item)
        off, items, cboxes = K.grid_build(b, self.item_ids, x0, y0, inv, nx, ny)
        self.grid_origin = (x0, y0)
        self.grid_inv = inv
        self.grid_shape = (nx, ny)
        self.cell_offsets = off
        self.cell_items = items
        self.cell_boxes = cboxes
        return self

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"PackedRTree(n={self.n}, node_size={self.node_size}, depth={self.depth})"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Bounds of all items (NaN when empty)."""
        if self.node_bounds.shape[0] == 0:
            return (np.nan,) * 4
        return tuple(float(v) for v in self.node_bounds[-1])

    def _tree_args(self, nq: int = 0):
        """The kernels' tree (and grid) arrays for a batch of nq box/point queries (0: a query that does
        not use the grid, such as nearest); a lazy grid is built once enough queries have been asked."""
        if self._grid_lazy is not None and nq > 0:
            cells_per_item, seen = self._grid_lazy
            seen += nq
            self._grid_lazy = (cells_per_item, seen)
            if 4 * seen >= self.item_ids.shape[0]:
                self.build_grid(cells_per_item)
        return (self.node_bounds, self.node_start, self.node_count, self.node_leaf, self.item_bounds,
                self.item_ids, max(self.depth, 1), self.grid_origin[0], self.grid_origin[1], self.grid_inv,
                self.grid_shape[0], self.grid_shape[1], self.cell_offsets, self.cell_items, self.cell_boxes)

    def query(self, boxes) -> np.ndarray:
        """Items whose box meets each query box.

        Parameters
        ----------
        boxes : array_like, shape (m, 4)

        Returns
        -------
        ndarray of intp, shape (2, k)
            Row 0 the query index, row 1 the item index, sorted by both.
        """
        qb = as_boxes(boxes, "boxes")
        return self._query(qb)

    def _query(self, qb: np.ndarray) -> np.ndarray:
        args = self._tree_args(qb.shape[0])

        def run(qs, *protocol):
            K.rtree_query_boxes(qs, *args, *protocol)

        return _sorted_pairs(qb, self, run)

    def query_points(self, xy) -> np.ndarray:
        """Items whose (closed) box contains each point; (2, k) pairs like :meth:`query`."""
        p = as_points(xy)
        return self._query(np.ascontiguousarray(np.hstack([p, p])))

    def nearest(self, xy, k: int = 1, max_distance: float | None = None, all_matches: bool = True):
        """The nearest item boxes of each point.

        Parameters
        ----------
        xy : array_like, shape (m, 2)
        k : int, default 1
            Number of neighbours. With ``k == 1`` and ``all_matches`` every
            item at the smallest distance is returned (as
            ``shapely.STRtree.query_nearest``); with ``k > 1`` exactly the k
            nearest, ties broken by the lower item index.
        max_distance : float, optional
            Ignore items farther than this.

        Returns
        -------
        pairs : ndarray of intp, shape (2, r)
            Query index and item index, by query then distance then item.
        distances : ndarray of float64, shape (r,)
            Euclidean distance from the point to the item's box (0 inside).
        """
        p = as_points(xy)
        return _nearest(p, k, max_distance, all_matches, self._tree_args(), None)

    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)


def _nearest(p, k, max_distance, all_matches, targs, polys):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    ties = bool(all_matches) and k == 1
    k = min(int(k), max(targs[4].shape[0], 1))  # no more neighbours than items: k > n gives them all
    if max_distance is None:
        md = np.inf
    else:
        try:
            md = float(max_distance)
        except (TypeError, ValueError):
            raise TypeError(f"max_distance must be a number >= 0 or None, got {max_distance!r}") from None
        if not md >= 0:
            raise ValueError(f"max_distance must be a number >= 0 or None, got {max_distance!r}")
    cap = 4 if ties else k
    if polys is None:
        z = np.zeros(1, np.intp)
        polys_args = (np.zeros(0), np.zeros(0), z, z, z)
        exact = False
    else:
        polys_args = polys
        exact = True
    while True:
        idx = np.full((p.shape[0], cap), -1, np.intp)
        dist = np.full((p.shape[0], cap), np.nan)
        nout = np.zeros(p.shape[0], np.intp)
        with _threads_for(p.shape[0]):
            K.tree_nearest(p, k, md, exact, ties, *targs, *polys_args, idx, dist, nout)
        if not ties or p.shape[0] == 0 or nout.max() <= cap:
            break
        cap = int(nout.max())
    nout = np.minimum(nout, cap)
    mask = np.arange(cap)[None, :] < nout[:, None]
    qi = np.repeat(np.arange(p.shape[0], dtype=np.intp), nout)
    return np.vstack([qi, idx[mask]]), dist[mask]
