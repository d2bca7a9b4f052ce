"""Numba kernels of the line index: distances from points to polylines, and where along them.

Flat, contiguous float64 / intp arrays that :class:`spatial_index.lines.LineIndex` has validated; no
Python objects, no error handling. Set ``NUMBA_DISABLE_JIT=1`` to run these as plain Python.

Line layout (GeoArrow LINESTRING)
---------------------------------
``x, y``      coordinates
``line_off``  line l owns coordinates line_off[l]:line_off[l+1] (none: an empty line)
``seg_a``     segment s runs from coordinate seg_a[s] to seg_a[s] + 1 ...
``seg_line``  ... of line seg_line[s]

Grid (CSR cell lists of segments, from :func:`spatial_index._kernels.grid_build` over the segment boxes)
--------------------------------------------------------------------------------------------------------
``gx0, gy0, inv, nx, ny``  origin, 1 / cell size, cells across and up (cell (cx, cy) is cy * nx + cx)
``cell_off, cell_items, cell_boxes``  segments per cell, and a copy of each one's box

Distances and measures follow GEOS operation for operation (``Distance::pointToSegment``,
``LengthIndexOfPoint``, ``Length::ofLine``), so that they equal ``shapely.distance`` and
``shapely.line_locate_point(..., normalized=True)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spatial_index._kernels import _cell, _pt_dist, cell_range, point_segment_distance


@njit(cache=True)
def segments_of(line_off):
    """(seg_a, seg_line): the first coordinate and the line of every segment."""
    nl = line_off.shape[0] - 1
    ns = 0
    for l in range(nl):
        if line_off[l + 1] - line_off[l] > 1:
            ns += line_off[l + 1] - line_off[l] - 1
    seg_a = np.empty(ns, np.intp)
    seg_line = np.empty(ns, np.intp)
    s = 0
    for l in range(nl):
        for j in range(line_off[l], line_off[l + 1] - 1):
            seg_a[s] = j
            seg_line[s] = l
            s += 1
    return seg_a, seg_line


@njit(cache=True, parallel=True)
def segment_boxes(x, y, seg_a):
    """(n_segments, 4) boxes of the segments."""
    ns = seg_a.shape[0]
    out = np.empty((ns, 4))
    for s in prange(ns):
        j = seg_a[s]
        out[s, 0] = min(x[j], x[j + 1])
        out[s, 1] = min(y[j], y[j + 1])
        out[s, 2] = max(x[j], x[j + 1])
        out[s, 3] = max(y[j], y[j + 1])
    return out


@njit(cache=True, inline="always")
def _nearest_measure(px, py, ax, ay, bx, by, start, seg_len):
    """GEOS LengthIndexOfPoint::segmentNearestMeasure (LineSegment::projectionFactor)."""
    if px == ax and py == ay:
        return start
    if px == bx and py == by:
        return start + seg_len
    dx = bx - ax
    dy = by - ay
    len2 = dx * dx + dy * dy
    if len2 <= 0.0:  # GEOS: NaN, which falls through to the segment's end
        return start + seg_len
    f = ((px - ax) * dx + (py - ay) * dy) / len2
    if f <= 0.0:
        return start
    if f <= 1.0:
        return start + f * seg_len
    return start + seg_len


@njit(cache=True, inline="always")
def _scan_cell(px, py, c, x, y, seg_a, seg_line, cell_off, cell_items, best, bl):
    for t in range(cell_off[c], cell_off[c + 1]):
        s = cell_items[t]
        j = seg_a[s]
        d = point_segment_distance(px, py, x[j], y[j], x[j + 1], y[j + 1])
        if d < best or (d == best and seg_line[s] < bl):
            best = d
            bl = seg_line[s]
    return best, bl


@njit(cache=True, parallel=True)
def nearest_lines(xy, x, y, seg_a, seg_line, gx0, gy0, inv, nx, ny, cell_off, cell_items, out_d, out_i):
    """Distance to the nearest line of each point (inf without segments) and that line (the lowest index of
    the equally near ones; -1 without segments): squares of cells around the point's cell, ring by ring,
    until every cell not yet read is farther than the best distance found."""
    size = 1.0 / inv
    slack = 1e-9 * size
    for i in prange(xy.shape[0]):
        px = xy[i, 0]
        py = xy[i, 1]
        ci = _cell(px, gx0, inv, nx)
        cj = _cell(py, gy0, inv, ny)
        best = np.inf
        bl = -1
        if cell_items.shape[0] == 0:
            out_d[i] = best
            out_i[i] = bl
            continue
        r = 0
        while True:
            y0 = max(cj - r, 0)
            y1 = min(cj + r, ny - 1)
            x0 = max(ci - r, 0)
            x1 = min(ci + r, nx - 1)
            for cy in range(y0, y1 + 1):
                if cy == cj - r or cy == cj + r:  # the square's bottom and top rows: every cell
                    for cx in range(x0, x1 + 1):
                        best, bl = _scan_cell(px, py, cy * nx + cx, x, y, seg_a, seg_line, cell_off, cell_items,
                                              best, bl)
                else:  # between them: the left and right cells
                    if ci - r >= 0:
                        best, bl = _scan_cell(px, py, cy * nx + ci - r, x, y, seg_a, seg_line, cell_off,
                                              cell_items, best, bl)
                    if r > 0 and ci + r <= nx - 1:
                        best, bl = _scan_cell(px, py, cy * nx + ci + r, x, y, seg_a, seg_line, cell_off,
                                              cell_items, best, bl)
            # every cell not read yet lies beyond one side of the square that still has cells outside it
            lb = np.inf
            if ci + r + 1 <= nx - 1:
                lb = min(lb, gx0 + (ci + r + 1) * size - px)
            if ci - r - 1 >= 0:
                lb = min(lb, px - (gx0 + (ci - r) * size))
            if cj + r + 1 <= ny - 1:
                lb = min(lb, gy0 + (cj + r + 1) * size - py)
            if cj - r - 1 >= 0:
                lb = min(lb, py - (gy0 + (cj - r) * size))
            if lb == np.inf or best < lb - slack:
                break
            r += 1
        out_d[i] = best
        out_i[i] = bl


@njit(cache=True)
def segment_measures(x, y, line_off, seg_a, seg_line):
    """(seg_start, line_len): the length of each segment's line before it, and each line's length, summed
    in order as GEOS sums them (``Length::ofLine``, ``LengthIndexOfPoint``)."""
    seg_start = np.empty(seg_a.shape[0])
    line_len = np.zeros(line_off.shape[0] - 1)
    for s in range(seg_a.shape[0]):
        l = seg_line[s]
        j = seg_a[s]
        if j == line_off[l]:
            line_len[l] = 0.0
        seg_start[s] = line_len[l]
        line_len[l] += _pt_dist(x[j], y[j], x[j + 1], y[j + 1])
    return seg_start, line_len


@njit(cache=True)
def _segs_near(px, py, rad, x, y, seg_a, gx0, gy0, inv, nx, ny, cell_off, cell_items, cell_boxes, sbuf, dbuf):
    """The segments within rad of the point and their distances, by segment (so by line, then along it), in
    sbuf[:k], dbuf[:k]; returns (k, sbuf, dbuf) (the buffers grown when full)."""
    k = 0
    qx0 = px - rad
    qx1 = px + rad
    qy0 = py - rad
    qy1 = py + rad
    cx0, cx1, cy0, cy1 = cell_range(qx0, qy0, qx1, qy1, gx0, gy0, inv, nx, ny)
    for cy in range(cy0, cy1 + 1):
        for cx in range(cx0, cx1 + 1):
            c = cy * nx + cx
            for t in range(cell_off[c], cell_off[c + 1]):
                if (cell_boxes[t, 0] > qx1 or cell_boxes[t, 2] < qx0 or cell_boxes[t, 1] > qy1
                        or cell_boxes[t, 3] < qy0):
                    continue
                # a segment is read in the first cell of the overlap of its cell range and the query's
                if cx != cx0 and _cell(cell_boxes[t, 0], gx0, inv, nx) != cx:
                    continue
                if cy != cy0 and _cell(cell_boxes[t, 1], gy0, inv, ny) != cy:
                    continue
                s = cell_items[t]
                j = seg_a[s]
                d = point_segment_distance(px, py, x[j], y[j], x[j + 1], y[j + 1])
                if d <= rad:
                    if k == sbuf.shape[0]:
                        ns = np.empty(2 * k, np.intp)
                        ns[:k] = sbuf
                        sbuf = ns
                        nd = np.empty(2 * k)
                        nd[:k] = dbuf
                        dbuf = nd
                    # insertion by segment index (a point has few)
                    m = k
                    while m > 0 and sbuf[m - 1] > s:
                        sbuf[m] = sbuf[m - 1]
                        dbuf[m] = dbuf[m - 1]
                        m -= 1
                    sbuf[m] = s
                    dbuf[m] = d
                    k += 1
    return k, sbuf, dbuf


@njit(cache=True, parallel=True)
def lines_within(xy, rad, x, y, seg_a, seg_line, seg_start, line_len, gx0, gy0, inv, nx, ny, cell_off, cell_items,
                 cell_boxes, per, chunks, base, cap, chunk_n, out_p, out_l, out_d, out_f):
    """For each chunk chunks[c] of per points: rows base[c]:base[c] + cap[c] of the output (point, line,
    distance, normalized measure of the line's point nearest to the point), one per line within rad of the
    point, by point then line; chunk_n[c] = the chunk's number of rows (more than cap[c]: run it again with
    room for all)."""
    n = xy.shape[0]
    for c in prange(chunks.shape[0]):
        ch = chunks[c]
        sbuf = np.empty(64, np.intp)
        dbuf = np.empty(64)
        o = 0
        b = base[c]
        room = cap[c]
        for i in range(ch * per, min(n, (ch + 1) * per)):
            px = xy[i, 0]
            py = xy[i, 1]
            k, sbuf, dbuf = _segs_near(px, py, rad[i], x, y, seg_a, gx0, gy0, inv, nx, ny, cell_off, cell_items,
                                       cell_boxes, sbuf, dbuf)
            t = 0
            while t < k:
                l = seg_line[sbuf[t]]
                bs = sbuf[t]
                bd = dbuf[t]
                t += 1
                while t < k and seg_line[sbuf[t]] == l:
                    if dbuf[t] < bd:  # GEOS: the first segment of the smallest distance
                        bd = dbuf[t]
                        bs = sbuf[t]
                    t += 1
                if o < room:
                    j = seg_a[bs]
                    ax = x[j]
                    ay = y[j]
                    bx = x[j + 1]
                    by = y[j + 1]
                    m = _nearest_measure(px, py, ax, ay, bx, by, seg_start[bs], _pt_dist(ax, ay, bx, by))
                    out_p[b + o] = i
                    out_l[b + o] = l
                    out_d[b + o] = bd
                    out_f[b + o] = m / line_len[l] if line_len[l] != 0.0 else 0.0  # zero length: GEOS gives 0
                o += 1
        chunk_n[c] = o


@njit(cache=True)
def rows_by_point(order, w, n):
    """The permutation that puts rows by point: row r is of point order[w[r]] (w: its index in the visiting
    order); each point's rows stay in their order (a counting sort)."""
    k = w.shape[0]
    start = np.zeros(n + 1, np.intp)
    for r in range(k):
        start[order[w[r]] + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    perm = np.empty(k, np.intp)
    for r in range(k):
        p = order[w[r]]
        perm[start[p]] = r
        start[p] += 1
    return perm
