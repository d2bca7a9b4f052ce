"""Numba kernels of the 2-D index: packed R-tree traversal, exact predicates.

Everything here works on flat, contiguous float64 / intp arrays that the
public classes in :mod:`spatial_index.rtree` and :mod:`spatial_index.polygons`
have validated. No Python objects, no error handling beyond what the caller
guarantees. Set ``NUMBA_DISABLE_JIT=1`` to run these as plain Python.

Tree layout (shared by every kernel)
------------------------------------
``nb``      (m, 4) node bounds (xmin, ymin, xmax, ymax); the root is node m-1
``nstart``  (m,)   first child (a node index, or an item slot for leaf nodes)
``ncount``  (m,)   number of children
``nleaf``   (m,)   1 when the children are items
``ib``      (n, 4) item bounds in packed (slot) order
``iid``     (n,)   the caller's item index of each slot

Polygon layout (GeoArrow, three offset levels)
----------------------------------------------
``x, y``      coordinates; every ring is closed (first == last)
``ring_off``  ring r owns coordinates ring_off[r]:ring_off[r+1]
``part_off``  part p (one polygon) owns rings part_off[p]:part_off[p+1],
              the first being the shell, the others holes
``geom_off``  geometry g owns parts geom_off[g]:geom_off[g+1]

Locations: 0 exterior, 1 boundary, 2 interior.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Shewchuk's error bound for the orient2d floating-point filter.
_EPS = 1.1102230246251565e-16
_CCW_ERRBOUND_A = (3.0 + 16.0 * _EPS) * _EPS
_SPLITTER = 134217729.0  # 2**27 + 1

EXTERIOR = 0
BOUNDARY = 1
INTERIOR = 2

# kinds of query geometry
KIND_POINT = 0
KIND_LINE = 1
KIND_POLYGON = 2


# --------------------------------------------------------------------------
# exact orientation
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _two_sum(a, b):
    x = a + b
    bv = x - a
    av = x - bv
    return x, (a - av) + (b - bv)


@njit(cache=True, inline="always")
def _two_prod(a, b):
    x = a * b
    c = _SPLITTER * a
    ahi = c - (c - a)
    alo = a - ahi
    c = _SPLITTER * b
    bhi = c - (c - b)
    blo = b - bhi
    err = x - ahi * bhi - alo * bhi - ahi * blo
    return x, alo * blo - err


@njit(cache=True)
def _orient_exact(ax, ay, bx, by, cx, cy):
    # det = ax*by - ax*cy - cx*by - ay*bx + ay*cx + cy*bx, summed exactly
    terms = np.empty(12)
    terms[0], terms[1] = _two_prod(ax, by)
    terms[2], terms[3] = _two_prod(-ax, cy)
    terms[4], terms[5] = _two_prod(-cx, by)
    terms[6], terms[7] = _two_prod(-ay, bx)
    terms[8], terms[9] = _two_prod(ay, cx)
    terms[10], terms[11] = _two_prod(cy, bx)
    e = np.empty(16)
    elen = 0
    h = np.empty(16)
    for t in range(12):
        q = terms[t]
        hlen = 0
        for i in range(elen):
            q, hh = _two_sum(q, e[i])
            if hh != 0.0:
                h[hlen] = hh
                hlen += 1
        if q != 0.0 or hlen == 0:
            h[hlen] = q
            hlen += 1
        for i in range(hlen):
            e[i] = h[i]
        elen = hlen
    top = e[elen - 1]
    if top > 0.0:
        return 1
    if top < 0.0:
        return -1
    return 0


@njit(cache=True, inline="always")
def orient2d(ax, ay, bx, by, cx, cy):
    """Sign of the turn a -> b -> c: 1 counter-clockwise, -1 clockwise, 0 collinear (exact)."""
    detleft = (ax - cx) * (by - cy)
    detright = (ay - cy) * (bx - cx)
    det = detleft - detright
    errbound = _CCW_ERRBOUND_A * (abs(detleft) + abs(detright))
    if det > errbound:
        return 1
    if -det > errbound:
        return -1
    if detleft == 0.0 and detright == 0.0:
        return 0
    return _orient_exact(ax, ay, bx, by, cx, cy)


@njit(cache=True, inline="always")
def _in_seg_box(ax, ay, bx, by, px, py):
    return min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by)


@njit(cache=True, inline="always")
def segments_intersect(ax, ay, bx, by, cx, cy, dx, dy):
    """Closed segments ab and cd share a point (exact)."""
    if max(ax, bx) < min(cx, dx) or max(cx, dx) < min(ax, bx):
        return False
    if max(ay, by) < min(cy, dy) or max(cy, dy) < min(ay, by):
        return False
    o1 = orient2d(ax, ay, bx, by, cx, cy)
    o2 = orient2d(ax, ay, bx, by, dx, dy)
    o3 = orient2d(cx, cy, dx, dy, ax, ay)
    o4 = orient2d(cx, cy, dx, dy, bx, by)
    if o1 * o2 < 0 and o3 * o4 < 0:
        return True
    if o1 == 0 and _in_seg_box(ax, ay, bx, by, cx, cy):
        return True
    if o2 == 0 and _in_seg_box(ax, ay, bx, by, dx, dy):
        return True
    if o3 == 0 and _in_seg_box(cx, cy, dx, dy, ax, ay):
        return True
    if o4 == 0 and _in_seg_box(cx, cy, dx, dy, bx, by):
        return True
    return False


# --------------------------------------------------------------------------
# point location (GEOS RayCrossingCounter semantics)
# --------------------------------------------------------------------------
@njit(cache=True)
def ring_locate(px, py, x, y, s, e):
    """Location of (px, py) against the closed ring x[s:e], y[s:e]."""
    crossings = 0
    for i in range(s + 1, e):
        x1 = x[i - 1]
        y1 = y[i - 1]
        x2 = x[i]
        y2 = y[i]
        if x1 < px and x2 < px:
            continue
        if px == x2 and py == y2:
            return BOUNDARY
        if y1 == py and y2 == py:
            if min(x1, x2) <= px <= max(x1, x2):
                return BOUNDARY
            continue
        if (y1 > py and y2 <= py) or (y2 > py and y1 <= py):
            o = orient2d(x1, y1, x2, y2, px, py)
            if o == 0:
                return BOUNDARY
            if y2 < y1:
                o = -o
            if o > 0:
                crossings += 1
    if crossings % 2 == 1:
        return INTERIOR
    return EXTERIOR


@njit(cache=True)
def geom_locate(px, py, g, x, y, ring_off, part_off, geom_off):
    """Location of a point against polygon/multipolygon g."""
    res = EXTERIOR
    for p in range(geom_off[g], geom_off[g + 1]):
        r0 = part_off[p]
        r1 = part_off[p + 1]
        if r1 == r0:
            continue
        loc = ring_locate(px, py, x, y, ring_off[r0], ring_off[r0 + 1])
        if loc == BOUNDARY:
            res = BOUNDARY
            continue
        if loc == EXTERIOR:
            continue
        inside = True
        for r in range(r0 + 1, r1):
            hl = ring_locate(px, py, x, y, ring_off[r], ring_off[r + 1])
            if hl == BOUNDARY:
                res = BOUNDARY
                inside = False
                break
            if hl == INTERIOR:
                inside = False
                break
        if inside:
            return INTERIOR
    return res


@njit(cache=True, inline="always")
def _pt_dist(px, py, ax, ay):
    dx = px - ax
    dy = py - ay
    return np.sqrt(dx * dx + dy * dy)


@njit(cache=True)
def point_segment_distance(px, py, ax, ay, bx, by):
    """GEOS Distance::pointToSegment, operation for operation."""
    if ax == bx and ay == by:
        return _pt_dist(px, py, ax, ay)
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        return _pt_dist(px, py, ax, ay)
    if r >= 1.0:
        return _pt_dist(px, py, bx, by)
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return abs(s) * np.sqrt(len2)


@njit(cache=True)
def geom_point_distance(px, py, g, x, y, ring_off, part_off, geom_off):
    """Distance from a point to polygon g (0 inside or on the boundary)."""
    if geom_locate(px, py, g, x, y, ring_off, part_off, geom_off) != EXTERIOR:
        return 0.0
    best = np.inf
    for p in range(geom_off[g], geom_off[g + 1]):
        for r in range(part_off[p], part_off[p + 1]):
            for i in range(ring_off[r] + 1, ring_off[r + 1]):
                d = point_segment_distance(px, py, x[i - 1], y[i - 1], x[i], y[i])
                if d < best:
                    best = d
    return best


@njit(cache=True)
def geom_intersects(qkind, qg, qx, qy, qring, qpart, qgeom, g, x, y, ring_off, part_off, geom_off):
    """Exact 'intersects' between query geometry qg (points, lines or polygons) and polygon g."""
    # 1. one vertex of every query part inside or on g
    for p in range(qgeom[qg], qgeom[qg + 1]):
        r0 = qpart[p]
        if qpart[p + 1] == r0:
            continue
        s = qring[r0]
        if qring[r0 + 1] == s:
            continue
        if geom_locate(qx[s], qy[s], g, x, y, ring_off, part_off, geom_off) != EXTERIOR:
            return True
    if qkind == KIND_POINT:
        return False
    # 2. one vertex of every part of g inside the query polygon (the common 'contains' case, cheap)
    if qkind == KIND_POLYGON:
        for tp in range(geom_off[g], geom_off[g + 1]):
            r0 = part_off[tp]
            if part_off[tp + 1] == r0:
                continue
            s = ring_off[r0]
            if ring_off[r0 + 1] == s:
                continue
            if geom_locate(x[s], y[s], qg, qx, qy, qring, qpart, qgeom) != EXTERIOR:
                return True
    # 3. boundaries cross
    for p in range(qgeom[qg], qgeom[qg + 1]):
        for r in range(qpart[p], qpart[p + 1]):
            for i in range(qring[r] + 1, qring[r + 1]):
                ax = qx[i - 1]
                ay = qy[i - 1]
                bx = qx[i]
                by = qy[i]
                sxmin = min(ax, bx)
                sxmax = max(ax, bx)
                symin = min(ay, by)
                symax = max(ay, by)
                for tp in range(geom_off[g], geom_off[g + 1]):
                    for tr in range(part_off[tp], part_off[tp + 1]):
                        for j in range(ring_off[tr] + 1, ring_off[tr + 1]):
                            cx = x[j - 1]
                            cy = y[j - 1]
                            dx = x[j]
                            dy = y[j]
                            if max(cx, dx) < sxmin or min(cx, dx) > sxmax:
                                continue
                            if max(cy, dy) < symin or min(cy, dy) > symax:
                                continue
                            if segments_intersect(ax, ay, bx, by, cx, cy, dx, dy):
                                return True
    return False


# --------------------------------------------------------------------------
# tree traversal
# --------------------------------------------------------------------------
@njit(cache=True)
def tree_candidates(qx0, qy0, qx1, qy1, nb, nstart, ncount, nleaf, ib, iid, stack, buf):
    """Item slots whose (closed) box meets the query box go to buf (iid[slot] is the caller's index)."""
    m = nb.shape[0]
    if m == 0:
        return 0
    k = 0
    r = m - 1
    if nb[r, 0] > qx1 or nb[r, 2] < qx0 or nb[r, 1] > qy1 or nb[r, 3] < qy0:
        return 0
    stack[0] = r
    top = 1
    while top > 0:
        top -= 1
        nd = stack[top]
        s = nstart[nd]
        e = s + ncount[nd]
        # branch-free: always write, advance only on overlap (a third faster than skipping with `continue`)
        if nleaf[nd]:
            for j in range(s, e):
                buf[k] = j
                k += (ib[j, 0] <= qx1) & (ib[j, 2] >= qx0) & (ib[j, 1] <= qy1) & (ib[j, 3] >= qy0)
        else:
            for c in range(e - 1, s - 1, -1):
                stack[top] = c
                top += (nb[c, 0] <= qx1) & (nb[c, 2] >= qx0) & (nb[c, 1] <= qy1) & (nb[c, 3] >= qy0)
    return k


@njit(cache=True, inline="always")
def _cands(qx0, qy0, qx1, qy1, nb, nstart, ncount, nleaf, ib, iid, stack, buf, gx0, gy0, ginv, gnx, gny, cell_off,
           cell_items, cell_boxes):
    if gnx > 0:
        return grid_candidates(qx0, qy0, qx1, qy1, gx0, gy0, ginv, gnx, gny, cell_off, cell_items, cell_boxes, buf)
    return tree_candidates(qx0, qy0, qx1, qy1, nb, nstart, ncount, nleaf, ib, iid, stack, buf)


@njit(cache=True, parallel=True)
def morton_codes(cx, cy, x0, y0, sx, sy, out):
    """32-bit Morton (Z-order) code of each point on a 65536 x 65536 grid over the extent."""
    for i in prange(cx.shape[0]):
        fx = (cx[i] - x0) * sx
        fy = (cy[i] - y0) * sy
        ix = np.uint64(min(max(fx, 0.0), 65535.0))
        iy = np.uint64(min(max(fy, 0.0), 65535.0))
        code = np.uint64(0)
        for b in range(16):
            code |= ((ix >> np.uint64(b)) & np.uint64(1)) << np.uint64(2 * b)
            code |= ((iy >> np.uint64(b)) & np.uint64(1)) << np.uint64(2 * b + 1)
        out[i] = code


@njit(cache=True, inline="always")
def _chunks(n):
    nch = min(n, 256)
    if nch < 1:
        nch = 1
    return nch, (n + nch - 1) // nch


@njit(cache=True, inline="always")
def _sort_segment(out, a, b):
    # insertion sort of a short segment
    for i in range(a + 1, b):
        v = out[i]
        j = i - 1
        while j >= a and out[j] > v:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = v


# One-pass query protocol (every batch query kernel below)
# ------------------------------------------------------------
# The queries are cut into chunks of ``per`` consecutive queries (w = c * per ...); the kernel runs the chunks
# listed in ``chunks`` in parallel and writes the hits of chunks[i] as (w, item) into hit_w / hit_g from
# base[i], at most cap[i] of them, each query's items sorted; chunk_n[i] gets the chunk's true number of
# hits (a chunk with more than cap[i] is run again with room for all, see rtree._one_pass).
@njit(cache=True, inline="always")
def _emit(hit_w, hit_g, b, capc, nh, w, g):
    if nh < capc:
        hit_w[b + nh] = w
        hit_g[b + nh] = g
    return nh + 1


@njit(cache=True, inline="always")
def _end_query(hit_g, b, capc, h0, nh):
    if nh <= capc and nh - h0 > 1:
        _sort_segment(hit_g, b + h0, b + nh)


@njit(cache=True, parallel=True)
def rtree_query_boxes(qb, nb, nstart, ncount, nleaf, ib, iid, depth, gx0, gy0, ginv, gnx, gny, cell_off, cell_items,
                      cell_boxes, chunks, per, base, cap, chunk_n, hit_w, hit_g):
    """Items whose box meets each query box qb[w] (one-pass protocol)."""
    n = ib.shape[0]
    nq = qb.shape[0]
    for ci in prange(chunks.shape[0]):
        c = chunks[ci]
        stack = np.empty(depth * 64 + 64, np.intp)
        buf = np.empty(max(n, 1), np.intp)
        b = base[ci]
        capc = cap[ci]
        nh = 0
        for w in range(c * per, min(nq, (c + 1) * per)):
            k = _cands(qb[w, 0], qb[w, 1], qb[w, 2], qb[w, 3], nb, nstart, ncount, nleaf, ib, iid, stack, buf,
                       gx0, gy0, ginv, gnx, gny, cell_off, cell_items, cell_boxes)
            h0 = nh
            for j in range(k):
                nh = _emit(hit_w, hit_g, b, capc, nh, w, iid[buf[j]])
            _end_query(hit_g, b, capc, h0, nh)
        chunk_n[ci] = nh


@njit(cache=True, inline="always")
def _point_hit(px, py, s, interior_only, x, y, ring_off, part_off, geom_off):
    loc = geom_locate(px, py, s, x, y, ring_off, part_off, geom_off)
    return loc == INTERIOR or (loc == BOUNDARY and not interior_only)


@njit(cache=True, parallel=True)
def poly_query_points(xy, interior_only, nb, nstart, ncount, nleaf, ib, iid, depth, gx0, gy0, ginv, gnx, gny, cell_off,
                      cell_items, cell_boxes, x, y, ring_off, part_off, geom_off, chunks, per, base, cap, chunk_n,
                      hit_w, hit_g):
    """Polygons (stored by tree slot) related to each point xy[w] by the exact predicate (one-pass protocol).
    With a grid, a point reads its one cell's boxes in a sweep and locates itself in those that hold it."""
    n = ib.shape[0]
    nq = xy.shape[0]
    for ci in prange(chunks.shape[0]):
        c = chunks[ci]
        stack = np.empty(depth * 64 + 64, np.intp)
        buf = np.empty(1 if gnx > 0 else max(n, 1), np.intp)
        b = base[ci]
        capc = cap[ci]
        nh = 0
        for w in range(c * per, min(nq, (c + 1) * per)):
            px = xy[w, 0]
            py = xy[w, 1]
            h0 = nh
            if gnx > 0:
                cell = _cell(py, gy0, ginv, gny) * gnx + _cell(px, gx0, ginv, gnx)
                for t in range(cell_off[cell], cell_off[cell + 1]):
                    if (cell_boxes[t, 0] <= px and cell_boxes[t, 2] >= px and cell_boxes[t, 1] <= py
                            and cell_boxes[t, 3] >= py):
                        s = cell_items[t]
                        if _point_hit(px, py, s, interior_only, x, y, ring_off, part_off, geom_off):
                            nh = _emit(hit_w, hit_g, b, capc, nh, w, iid[s])
            else:
                k = tree_candidates(px, py, px, py, nb, nstart, ncount, nleaf, ib, iid, stack, buf)
                for j in range(k):
                    if _point_hit(px, py, buf[j], interior_only, x, y, ring_off, part_off, geom_off):
                        nh = _emit(hit_w, hit_g, b, capc, nh, w, iid[buf[j]])
            _end_query(hit_g, b, capc, h0, nh)
        chunk_n[ci] = nh


@njit(cache=True)
def locate_pairs(xy, qi, gi, interior_only, x, y, ring_off, part_off, geom_off):
    """For each pair k: point xy[qi[k]] is related to polygon gi[k] by the predicate."""
    out = np.empty(qi.shape[0], np.bool_)
    for k in range(qi.shape[0]):
        out[k] = _point_hit(xy[qi[k], 0], xy[qi[k], 1], gi[k], interior_only, x, y, ring_off, part_off, geom_off)
    return out


@njit(cache=True, parallel=True)
def poly_query_geoms(qkind, qx, qy, qring, qpart, qgeom, qbox, nb, nstart, ncount, nleaf, ib, iid, depth, gx0, gy0,
                     ginv, gnx, gny, cell_off, cell_items, cell_boxes, x, y, ring_off, part_off, geom_off, order, chunks,
                     per, base, cap, chunk_n, hit_w, hit_g):
    """'intersects' of query geometries of one kind, visited in the order ``order`` (query order[w] at w),
    against polygons (one-pass protocol)."""
    n = ib.shape[0]
    nq = order.shape[0]
    for ci in prange(chunks.shape[0]):
        c = chunks[ci]
        stack = np.empty(depth * 64 + 64, np.intp)
        buf = np.empty(max(n, 1), np.intp)
        b = base[ci]
        capc = cap[ci]
        nh = 0
        for w in range(c * per, min(nq, (c + 1) * per)):
            q = order[w]
            if qbox[q, 0] > qbox[q, 2]:  # empty query geometry
                continue
            k = _cands(qbox[q, 0], qbox[q, 1], qbox[q, 2], qbox[q, 3], nb, nstart, ncount, nleaf,
                       ib, iid, stack, buf, gx0, gy0, ginv, gnx, gny, cell_off, cell_items, cell_boxes)
            h0 = nh
            for j in range(k):
                if geom_intersects(qkind, q, qx, qy, qring, qpart, qgeom, buf[j], x, y, ring_off, part_off,
                                   geom_off):
                    nh = _emit(hit_w, hit_g, b, capc, nh, w, iid[buf[j]])
            _end_query(hit_g, b, capc, h0, nh)
        chunk_n[ci] = nh


@njit(cache=True)
def pairs_from_hits(order, nq, base, chunk_n, hit_w, hit_g, obase, o_w, o_g):
    """(2, k) pairs sorted by query then item from the hits of a one-pass run.

    Chunk c's hits are hit_w/hit_g[base[c]:base[c] + chunk_n[c]], or, where obase[c] >= 0 (a chunk run
    again with more room), o_w/o_g[obase[c]:...]; w is a position in the visiting order: query order[w]
    (order empty: w itself). A stable LSD radix sort by query (11 bits a pass) keeps each query's items
    sorted as the kernel wrote them.
    """
    nch = chunk_n.shape[0]
    total = chunk_n.sum()
    q = np.empty(total, np.intp)
    g = np.empty(total, np.intp)
    k = 0
    for c in range(nch):
        if obase[c] >= 0:
            for i in range(obase[c], obase[c] + chunk_n[c]):
                q[k] = o_w[i]
                g[k] = o_g[i]
                k += 1
        else:
            for i in range(base[c], base[c] + chunk_n[c]):
                q[k] = hit_w[i]
                g[k] = hit_g[i]
                k += 1
    pairs = np.empty((2, total), np.intp)
    if order.shape[0] == 0:  # visited in query order: already sorted
        pairs[0, :] = q
        pairs[1, :] = g
        return pairs
    for i in range(total):
        q[i] = order[q[i]]
    bits = 0
    while (1 << bits) < nq:
        bits += 1
    q2 = np.empty(total, np.intp)
    g2 = np.empty(total, np.intp)
    cnt = np.empty(2049, np.intp)
    shift = 0
    while shift < bits:
        cnt[:] = 0
        for i in range(total):
            cnt[((q[i] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            cnt[d + 1] += cnt[d]
        for i in range(total):
            d = (q[i] >> shift) & 2047
            t = cnt[d]
            q2[t] = q[i]
            g2[t] = g[i]
            cnt[d] = t + 1
        q, q2 = q2, q
        g, g2 = g2, g
        shift += 11
    pairs[0, :] = q
    pairs[1, :] = g
    return pairs


# --------------------------------------------------------------------------
# nearest neighbours
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _box_dist(px, py, x0, y0, x1, y1):
    dx = 0.0
    if px < x0:
        dx = x0 - px
    elif px > x1:
        dx = px - x1
    dy = 0.0
    if py < y0:
        dy = y0 - py
    elif py > y1:
        dy = py - y1
    return np.sqrt(dx * dx + dy * dy)


@njit(cache=True, parallel=True)
def tree_nearest(xy, k, max_dist, exact_polys, all_ties, nb, nstart, ncount, nleaf, ib, iid, depth, gx0, gy0, ginv, gnx, gny, cell_off, cell_items, cell_boxes,
                 x, y, ring_off, part_off, geom_off, out_idx, out_dist, out_n):
    """k nearest items of each point (box distance, or exact polygon distance).

    out_idx/out_dist have room for ``cap`` results per query; with all_ties
    (k == 1) every item at the best distance is kept up to cap, and out_n
    holds the true number of ties (the caller re-runs with more room).
    """
    nq = xy.shape[0]
    cap = out_idx.shape[1]
    m = nb.shape[0]
    nch, per = _chunks(nq)
    for c in prange(nch):
        stack = np.empty(depth * 64 + 64, np.intp)
        sdist = np.empty(depth * 64 + 64)
        cd = np.empty(64)
        ci = np.empty(64, np.intp)
        bi = np.empty(cap, np.intp)
        bd = np.empty(cap)
        for q in range(c * per, min(nq, (c + 1) * per)):
            px = xy[q, 0]
            py = xy[q, 1]
            nfound = 0  # results held (<= cap) ; with ties, true count in nties
            nties = 0
            kth = max_dist  # prune distance
            if m > 0:
                stack[0] = m - 1
                sdist[0] = _box_dist(px, py, nb[m - 1, 0], nb[m - 1, 1], nb[m - 1, 2], nb[m - 1, 3])
                top = 1
            else:
                top = 0
            while top > 0:
                top -= 1
                nd = stack[top]
                dnode = sdist[top]
                if dnode > kth:
                    continue
                s = nstart[nd]
                cnt = ncount[nd]
                if nleaf[nd]:
                    for j in range(s, s + cnt):
                        d = _box_dist(px, py, ib[j, 0], ib[j, 1], ib[j, 2], ib[j, 3])
                        if d > kth:
                            continue
                        gi = iid[j]
                        if exact_polys:  # polygon arrays are stored by slot
                            d = geom_point_distance(px, py, j, x, y, ring_off, part_off, geom_off)
                            if d > kth:
                                continue
                        if all_ties:
                            if nties > 0 and d < bd[0]:
                                nties = 0
                                nfound = 0
                            if nfound < cap:
                                bi[nfound] = gi
                                bd[nfound] = d
                                nfound += 1
                            nties += 1
                            kth = d
                        else:
                            # insert (d, gi) into the sorted top-k list
                            if nfound == k:
                                if d > bd[k - 1] or (d == bd[k - 1] and gi > bi[k - 1]):
                                    continue
                                pos = k - 1
                            else:
                                pos = nfound
                                nfound += 1
                            while pos > 0 and (bd[pos - 1] > d or (bd[pos - 1] == d and bi[pos - 1] > gi)):
                                bd[pos] = bd[pos - 1]
                                bi[pos] = bi[pos - 1]
                                pos -= 1
                            bd[pos] = d
                            bi[pos] = gi
                            if nfound == k:
                                kth = bd[k - 1]
                else:
                    # push children, farthest first so the nearest is popped next
                    for j in range(cnt):
                        ch = s + j
                        cd[j] = _box_dist(px, py, nb[ch, 0], nb[ch, 1], nb[ch, 2], nb[ch, 3])
                        ci[j] = ch
                    for a in range(1, cnt):
                        vd = cd[a]
                        vi = ci[a]
                        b = a - 1
                        while b >= 0 and cd[b] < vd:
                            cd[b + 1] = cd[b]
                            ci[b + 1] = ci[b]
                            b -= 1
                        cd[b + 1] = vd
                        ci[b + 1] = vi
                    for j in range(cnt):
                        if cd[j] <= kth:
                            stack[top] = ci[j]
                            sdist[top] = cd[j]
                            top += 1
            if all_ties:
                out_n[q] = nties
                # sort held ties by index
                for a in range(1, nfound):
                    vi = bi[a]
                    b = a - 1
                    while b >= 0 and bi[b] > vi:
                        bi[b + 1] = bi[b]
                        b -= 1
                    bi[b + 1] = vi
            else:
                out_n[q] = nfound
            for j in range(nfound):
                out_idx[q, j] = bi[j]
                out_dist[q, j] = bd[j] if not all_ties else bd[0]


# --------------------------------------------------------------------------
# grids (north-up: x = x0 + col * dx, y = y0 + row * dy with dy < 0)
# --------------------------------------------------------------------------
@njit(cache=True)
def burn_polygons(x, y, ring_off, part_off, geom_off, values, all_touched, x0, dx, y0, dy, out):
    """Burn polygons in order (later ones overwrite). Centre rule: a cell whose centre lies
    inside by the even-odd rule on a half-open scanline; all_touched adds every cell an edge touches."""
    nrows = out.shape[0]
    ncols = out.shape[1]
    ng = geom_off.shape[0] - 1
    xs = np.empty(max(x.shape[0], 2))
    for g in range(ng):
        c0 = ring_off[part_off[geom_off[g]]]
        c1 = ring_off[part_off[geom_off[g + 1]]]
        if c1 <= c0:
            continue
        gx0 = np.inf
        gx1 = -np.inf
        gy0 = np.inf
        gy1 = -np.inf
        for i in range(c0, c1):
            gx0 = min(gx0, x[i])
            gx1 = max(gx1, x[i])
            gy0 = min(gy0, y[i])
            gy1 = max(gy1, y[i])
        r_lo = max(int(np.floor((gy1 - y0) / dy)) - 1, 0)
        r_hi = min(int(np.floor((gy0 - y0) / dy)) + 1, nrows - 1)
        val = values[g]
        for r in range(r_lo, r_hi + 1):
            yc = y0 + (r + 0.5) * dy
            nx = 0
            for p in range(geom_off[g], geom_off[g + 1]):
                for rg in range(part_off[p], part_off[p + 1]):
                    for i in range(ring_off[rg] + 1, ring_off[rg + 1]):
                        xa = x[i - 1]
                        ya = y[i - 1]
                        xb = x[i]
                        yb = y[i]
                        if (ya <= yc < yb) or (yb <= yc < ya):
                            xs[nx] = xa + (yc - ya) * (xb - xa) / (yb - ya)
                            nx += 1
            if nx < 2:
                continue
            xs[:nx].sort()
            for k in range(0, nx - 1, 2):
                ca = max(int(np.ceil((xs[k] - x0) / dx - 0.5)), 0)
                cb = min(int(np.ceil((xs[k + 1] - x0) / dx - 0.5)), ncols)
                for cc in range(ca, cb):
                    out[r, cc] = val
        if not all_touched:
            continue
        for p in range(geom_off[g], geom_off[g + 1]):
            for rg in range(part_off[p], part_off[p + 1]):
                for i in range(ring_off[rg] + 1, ring_off[rg + 1]):
                    xa = x[i - 1]
                    ya = y[i - 1]
                    xb = x[i]
                    yb = y[i]
                    ra = max(int(np.floor((max(ya, yb) - y0) / dy)), 0)
                    rb = min(int(np.floor((min(ya, yb) - y0) / dy)), nrows - 1)
                    for r in range(ra, rb + 1):
                        top = y0 + r * dy
                        bot = top + dy
                        if ya == yb:
                            ta = 0.0
                            tb = 1.0
                        else:
                            ta = (top - ya) / (yb - ya)
                            tb = (bot - ya) / (yb - ya)
                            if ta > tb:
                                ta, tb = tb, ta
                            ta = max(ta, 0.0)
                            tb = min(tb, 1.0)
                            if ta > tb:
                                continue
                        xa_ = xa + ta * (xb - xa)
                        xb_ = xa + tb * (xb - xa)
                        ca = max(int(np.floor((min(xa_, xb_) - x0) / dx)), 0)
                        cb = min(int(np.floor((max(xa_, xb_) - x0) / dx)), ncols - 1)
                        for cc in range(ca, cb + 1):
                            out[r, cc] = val


@njit(cache=True, parallel=True)
def sample_grid(data, xy, x0, dx, y0, dy, out):
    """Value of the cell containing each point; NaN outside the grid."""
    nrows = data.shape[0]
    ncols = data.shape[1]
    for i in prange(xy.shape[0]):
        c = int(np.floor((xy[i, 0] - x0) / dx))
        r = int(np.floor((xy[i, 1] - y0) / dy))
        if 0 <= r < nrows and 0 <= c < ncols:
            out[i] = data[r, c]
        else:
            out[i] = np.nan


@njit(cache=True, parallel=True)
def terrain_los(dem, x0, dx, y0, dy, orig, targ, step, out):
    """True where the segment orig[i] -> targ[i] stays above the surface (cells sampled every step,
    end points excluded; NaN cells and samples outside the grid never block)."""
    nrows = dem.shape[0]
    ncols = dem.shape[1]
    for i in prange(orig.shape[0]):
        ox = orig[i, 0]
        oy = orig[i, 1]
        oz = orig[i, 2]
        vx = targ[i, 0] - ox
        vy = targ[i, 1] - oy
        vz = targ[i, 2] - oz
        length = np.sqrt(vx * vx + vy * vy)
        ns = int(np.ceil(length / step))
        ok = True
        for s in range(1, ns):
            f = s / ns
            c = int(np.floor((ox + f * vx - x0) / dx))
            r = int(np.floor((oy + f * vy - y0) / dy))
            if r < 0 or r >= nrows or c < 0 or c >= ncols:
                continue
            h = dem[r, c]
            if h > oz + f * vz:
                ok = False
                break
        out[i] = ok


# --------------------------------------------------------------------------
# uniform grid accelerator (for point and small-box queries)
# --------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _cell(v, g0, inv, n):
    # clamped as a float: int() of a value beyond the int64 range (a query box out to 1e300) is undefined;
    # in [0, n) int() truncates as floor does
    f = (v - g0) * inv
    if f < 0.0:
        return 0
    if f >= n:
        return n - 1
    return int(f)


@njit(cache=True, inline="always")
def cell_range(qx0, qy0, qx1, qy1, gx0, gy0, inv, nx, ny):
    """The grid cells (cx0, cx1, cy0, cy1) that the query box overlaps, clamped to the grid."""
    return _cell(qx0, gx0, inv, nx), _cell(qx1, gx0, inv, nx), _cell(qy0, gy0, inv, ny), _cell(qy1, gy0, inv, ny)


@njit(cache=True, nogil=True)
def grid_build(ib, iid, gx0, gy0, inv, nx, ny):
    """CSR lists of the items whose closed box overlaps each cell. Returns (cell_off, cell_items, cell_boxes):
    cell_boxes[t] is a copy of the box of item slot cell_items[t], so that a cell's candidates are read in one
    sequential sweep."""
    n = ib.shape[0]
    cnt = np.zeros(nx * ny + 1, np.intp)
    rng = np.empty((n, 4), np.int32)  # each item's cell range, computed once
    for j in range(n):
        cx0 = _cell(ib[j, 0], gx0, inv, nx)
        cx1 = _cell(ib[j, 2], gx0, inv, nx)
        cy0 = _cell(ib[j, 1], gy0, inv, ny)
        cy1 = _cell(ib[j, 3], gy0, inv, ny)
        rng[j, 0] = cx0
        rng[j, 1] = cx1
        rng[j, 2] = cy0
        rng[j, 3] = cy1
        for cy in range(cy0, cy1 + 1):
            for cx in range(cx0, cx1 + 1):
                cnt[cy * nx + cx + 1] += 1
    for c in range(nx * ny):
        cnt[c + 1] += cnt[c]
    pos = cnt[:-1].copy()
    items = np.empty(cnt[-1], np.intp)
    boxes = np.empty((cnt[-1], 4))
    for j in range(n):
        for cy in range(rng[j, 2], rng[j, 3] + 1):
            for cx in range(rng[j, 0], rng[j, 1] + 1):
                c = cy * nx + cx
                t = pos[c]
                items[t] = j
                for d in range(4):
                    boxes[t, d] = ib[j, d]
                pos[c] = t + 1
    return cnt, items, boxes


@njit(cache=True)
def grid_candidates(qx0, qy0, qx1, qy1, gx0, gy0, inv, nx, ny, cell_off, cell_items, cell_boxes, buf):
    """Item slots whose closed box meets the query box, each reported once."""
    k = 0
    cx0, cx1, cy0, cy1 = cell_range(qx0, qy0, qx1, qy1, gx0, gy0, inv, nx, ny)
    for cy in range(cy0, cy1 + 1):
        for cx in range(cx0, cx1 + 1):
            c = cy * nx + cx
            # an item is reported in the first cell of the overlap of its cell range and the query's
            fx = cx == cx0
            fy = cy == cy0
            for t in range(cell_off[c], cell_off[c + 1]):
                buf[k] = cell_items[t]
                k += ((cell_boxes[t, 0] <= qx1) & (cell_boxes[t, 2] >= qx0) & (cell_boxes[t, 1] <= qy1)
                      & (cell_boxes[t, 3] >= qy0)
                      & (fx | (_cell(cell_boxes[t, 0], gx0, inv, nx) == cx))
                      & (fy | (_cell(cell_boxes[t, 1], gy0, inv, ny) == cy)))
    return k


@njit(cache=True)
def grid_order(cx, cy, gx0, gy0, inv, nx, ny):
    """Counting sort of query points by grid cell (queries in one cell share their candidate list)."""
    n = cx.shape[0]
    cell = np.empty(n, np.intp)
    cnt = np.zeros(nx * ny + 1, np.intp)
    for i in range(n):
        c = _cell(cy[i], gy0, inv, ny) * nx + _cell(cx[i], gx0, inv, nx)
        cell[i] = c
        cnt[c + 1] += 1
    for c in range(nx * ny):
        cnt[c + 1] += cnt[c]
    order = np.empty(n, np.intp)
    for i in range(n):
        c = cell[i]
        order[cnt[c]] = i
        cnt[c] += 1
    return order


@njit(cache=True)
def gather_geoms(perm, x, y, ring_off, part_off, geom_off):
    """The geometries perm[0], perm[1], ... copied into new contiguous GeoArrow arrays."""
    ng = perm.shape[0]
    npart = 0
    nring = 0
    ncoord = 0
    for i in range(ng):
        g = perm[i]
        npart += geom_off[g + 1] - geom_off[g]
        r0 = part_off[geom_off[g]]
        r1 = part_off[geom_off[g + 1]]
        nring += r1 - r0
        ncoord += ring_off[r1] - ring_off[r0]
    nx = np.empty(ncoord)
    ny = np.empty(ncoord)
    nro = np.empty(nring + 1, np.intp)
    npo = np.empty(npart + 1, np.intp)
    ngo = np.empty(ng + 1, np.intp)
    c = 0
    r = 0
    p = 0
    nro[0] = 0
    npo[0] = 0
    ngo[0] = 0
    for i in range(ng):
        g = perm[i]
        for pp in range(geom_off[g], geom_off[g + 1]):
            for rr in range(part_off[pp], part_off[pp + 1]):
                for cc in range(ring_off[rr], ring_off[rr + 1]):
                    nx[c] = x[cc]
                    ny[c] = y[cc]
                    c += 1
                r += 1
                nro[r] = c
            p += 1
            npo[p] = r
        ngo[i + 1] = p
    return nx, ny, nro, npo, ngo


@njit(cache=True)
def box_intersects_geom(bx0, by0, bx1, by1, g, gxmin, gymin, gxmax, gymax, x, y, ring_off, part_off, geom_off):
    """Exact 'intersects' between the closed box [bx0, bx1] x [by0, by1] and polygon g (bounds given)."""
    if gxmax < bx0 or gxmin > bx1 or gymax < by0 or gymin > by1:
        return False
    if bx0 <= gxmin and gxmax <= bx1 and by0 <= gymin and gymax <= by1:
        return True  # the polygon lies in the box
    c0 = ring_off[part_off[geom_off[g]]]
    c1 = ring_off[part_off[geom_off[g + 1]]]
    for i in range(c0, c1):
        if bx0 <= x[i] <= bx1 and by0 <= y[i] <= by1:
            return True  # a vertex in the box
    # an edge through the box: separating axes are x, y (bounds) and the edge's normal
    for p in range(geom_off[g], geom_off[g + 1]):
        for r in range(part_off[p], part_off[p + 1]):
            for i in range(ring_off[r] + 1, ring_off[r + 1]):
                ax = x[i - 1]
                ay = y[i - 1]
                cx = x[i]
                cy = y[i]
                if max(ax, cx) < bx0 or min(ax, cx) > bx1 or max(ay, cy) < by0 or min(ay, cy) > by1:
                    continue
                o1 = orient2d(ax, ay, cx, cy, bx0, by0)
                o2 = orient2d(ax, ay, cx, cy, bx1, by0)
                o3 = orient2d(ax, ay, cx, cy, bx1, by1)
                o4 = orient2d(ax, ay, cx, cy, bx0, by1)
                if not ((o1 > 0 and o2 > 0 and o3 > 0 and o4 > 0) or (o1 < 0 and o2 < 0 and o3 < 0 and o4 < 0)):
                    return True
    # no vertex inside, no edge through: the box is inside the polygon, in a hole, or outside
    return geom_locate(bx0, by0, g, x, y, ring_off, part_off, geom_off) != EXTERIOR


@njit(cache=True, parallel=True)
def poly_query_boxes(qb, nb, nstart, ncount, nleaf, ib, iid, depth, gx0, gy0, ginv, gnx, gny, cell_off, cell_items,
                     cell_boxes, x, y, ring_off, part_off, geom_off, chunks, per, base, cap, chunk_n, hit_w, hit_g):
    """Exact 'intersects' of boxes qb[w] against polygons stored by slot (one-pass protocol)."""
    n = ib.shape[0]
    nq = qb.shape[0]
    for ci in prange(chunks.shape[0]):
        c = chunks[ci]
        stack = np.empty(depth * 64 + 64, np.intp)
        buf = np.empty(max(n, 1), np.intp)
        b = base[ci]
        capc = cap[ci]
        nh = 0
        for w in range(c * per, min(nq, (c + 1) * per)):
            k = _cands(qb[w, 0], qb[w, 1], qb[w, 2], qb[w, 3], nb, nstart, ncount, nleaf, ib, iid, stack, buf,
                       gx0, gy0, ginv, gnx, gny, cell_off, cell_items, cell_boxes)
            h0 = nh
            for j in range(k):
                s = buf[j]
                if box_intersects_geom(qb[w, 0], qb[w, 1], qb[w, 2], qb[w, 3], s, ib[s, 0], ib[s, 1], ib[s, 2],
                                       ib[s, 3], x, y, ring_off, part_off, geom_off):
                    nh = _emit(hit_w, hit_g, b, capc, nh, w, iid[s])
            _end_query(hit_g, b, capc, h0, nh)
        chunk_n[ci] = nh


@njit(cache=True)
def grid_sort_rows(q, gx0, gy0, inv, nx, ny):
    """Counting sort of query rows (points (n, 2) or boxes (n, 4), by their centre) by grid cell.

    Returns (order, q[order]): queries in one cell share their candidate list, and the sorted
    copy lets the query kernels read and write sequentially.
    """
    n = q.shape[0]
    m = q.shape[1]
    h = m - 2  # the opposite corner's column (0 for points)
    cell = np.empty(n, np.int32)
    for i in range(n):
        cx = 0.5 * (q[i, 0] + q[i, h])
        cy = 0.5 * (q[i, 1] + q[i, h + 1])
        cell[i] = _cell(cy, gy0, inv, ny) * nx + _cell(cx, gx0, inv, nx)
    cnt = np.zeros(nx * ny + 1, np.intp)
    for i in range(n):
        cnt[cell[i] + 1] += 1
    for c in range(nx * ny):
        cnt[c + 1] += cnt[c]
    order = np.empty(n, np.intp)
    qs = np.empty((n, m))
    for i in range(n):
        c = cell[i]
        w = cnt[c]
        order[w] = i
        for j in range(m):
            qs[w, j] = q[i, j]
        cnt[c] = w + 1
    return order, qs


@njit(cache=True, nogil=True)
def _radix_pass(key, shift, order, out, cnt):
    """Stable counting sort of order by the 16 bits of key[order] at shift, into out."""
    cnt[:] = 0
    n = order.shape[0]
    for i in range(n):
        cnt[((key[order[i]] >> shift) & 0xFFFF) + 1] += 1
    for d in range(65536):
        cnt[d + 1] += cnt[d]
    for i in range(n):
        d = (key[order[i]] >> shift) & 0xFFFF
        out[cnt[d]] = order[i]
        cnt[d] += 1


@njit(cache=True, nogil=True)
def _quantize(v):
    """v scaled to integers 0 .. 2**32 - 1 over its range (order kept, ties possible)."""
    lo = np.inf
    hi = -np.inf
    for i in range(v.shape[0]):
        lo = min(lo, v[i])
        hi = max(hi, v[i])
    s = 4294967295.0 / (hi - lo) if hi > lo else 0.0
    out = np.empty(v.shape[0], np.int64)
    for i in range(v.shape[0]):
        out[i] = min(int((v[i] - lo) * s), 4294967295)
    return out


@njit(cache=True, nogil=True)
def str_order(cx, cy, slice_size):
    """Sort-Tile-Recursive order of points: by x, cut into slices of slice_size, each slice by y.

    Stable LSD radix sorts on the coordinates quantized to 32 bits over their range (five 16-bit passes:
    x, then y, then the slice), so ties (closer than 2**-32 of the extent) keep the input order.
    """
    n = cx.shape[0]
    cnt = np.empty(65537, np.intp)
    a = np.arange(n)
    b = np.empty(n, np.intp)
    kx = _quantize(cx)
    _radix_pass(kx, 0, a, b, cnt)
    _radix_pass(kx, 16, b, a, cnt)
    slc = np.empty(n, np.int64)
    for r in range(n):
        slc[a[r]] = r // slice_size
    ky = _quantize(cy)
    _radix_pass(ky, 0, a, b, cnt)
    _radix_pass(ky, 16, b, a, cnt)
    _radix_pass(slc, 0, a, b, cnt)
    if (n - 1) // slice_size >= 65536:  # more than 65536 slices (over 6.9e10 items at node size 16)
        _radix_pass(slc, 16, b, a, cnt)
        return a
    return b


@njit(cache=True)
def ring_sizes(x, y, ncoord, nring):
    """Coordinates per ring of polygons laid out one after the other (ncoord[p] coordinates, nring[p]
    rings each): a ring ends at the first return to its first coordinate (at least 4 coordinates).

    Returns (sizes, bad): bad lists the polygons whose rings this scan cannot tell apart (a ring
    that touches its own first vertex, an empty ring); their sizes must come from elsewhere.
    """
    npoly = ncoord.shape[0]
    total = 0
    for p in range(npoly):
        total += nring[p]
    sizes = np.zeros(total, np.intp)
    bad = np.empty(npoly, np.intp)
    nbad = 0
    c = 0
    r = 0
    for p in range(npoly):
        end = c + ncoord[p]
        if nring[p] == 1:
            sizes[r] = ncoord[p]
        else:
            s = c
            k = 0
            while s < end and k < nring[p]:
                j = s + 3
                while j < end and not (x[j] == x[s] and y[j] == y[s]):
                    j += 1
                if j >= end:
                    break
                sizes[r + k] = j - s + 1
                k += 1
                s = j + 1
            if k != nring[p] or s != end:
                bad[nbad] = p
                nbad += 1
        c = end
        r += nring[p]
    return sizes, bad[:nbad].copy()

