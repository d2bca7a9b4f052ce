"""Numba kernels of the triangle BVH: build (binned SAH) and ray traversal.

Node layout: ``bmin``/``bmax`` (m, 3) boxes; ``left`` child index (the right
child is ``left + 1``) or -1 for a leaf; ``start``/``count`` the triangle
slots of a leaf in ``perm`` order. Triangles are stored by slot as
``v0``, ``e1`` (v1 - v0), ``e2`` (v2 - v0), each (n, 3).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_NBINS = 16


@njit(cache=True)
def build_bvh(tmin, tmax, cen, leaf_size):
    """Top-down binned-SAH build. Returns (perm, bmin, bmax, left, start, count, n_nodes, depth)."""
    n = cen.shape[0]
    perm = np.arange(n)
    mcap = max(2 * n, 1)
    bmin = np.empty((mcap, 3))
    bmax = np.empty((mcap, 3))
    left = np.full(mcap, -1, np.intp)
    start = np.zeros(mcap, np.intp)
    count = np.zeros(mcap, np.intp)
    if n == 0:
        return perm, bmin[:0], bmax[:0], left[:0], start[:0], count[:0], 0, 0
    st_node = np.empty(128, np.intp)
    st_lo = np.empty(128, np.intp)
    st_hi = np.empty(128, np.intp)
    st_d = np.empty(128, np.intp)
    top = 1
    st_node[0] = 0
    st_lo[0] = 0
    st_hi[0] = n
    st_d[0] = 1
    nnodes = 1
    maxdepth = 1
    binb_min = np.empty((_NBINS, 3))
    binb_max = np.empty((_NBINS, 3))
    bincnt = np.zeros(_NBINS, np.intp)
    rarea = np.empty(_NBINS)
    rcnt = np.empty(_NBINS, np.intp)
    keys = np.empty(n)
    tmp = np.empty(n, np.intp)
    while top > 0:
        top -= 1
        nd = st_node[top]
        lo = st_lo[top]
        hi = st_hi[top]
        d = st_d[top]
        if d > maxdepth:
            maxdepth = d
        # bounds of the node and of its centroids
        cmin = np.full(3, np.inf)
        cmax = np.full(3, -np.inf)
        for a in range(3):
            bmin[nd, a] = np.inf
            bmax[nd, a] = -np.inf
        for i in range(lo, hi):
            t = perm[i]
            for a in range(3):
                if tmin[t, a] < bmin[nd, a]:
                    bmin[nd, a] = tmin[t, a]
                if tmax[t, a] > bmax[nd, a]:
                    bmax[nd, a] = tmax[t, a]
                if cen[t, a] < cmin[a]:
                    cmin[a] = cen[t, a]
                if cen[t, a] > cmax[a]:
                    cmax[a] = cen[t, a]
        cnt = hi - lo
        start[nd] = lo
        count[nd] = cnt
        if cnt <= leaf_size or d >= 60:
            continue
        # binned SAH over the three axes
        best_cost = np.inf
        best_axis = -1
        best_split = -1
        for a in range(3):
            ext = cmax[a] - cmin[a]
            if ext <= 0.0:
                continue
            for b in range(_NBINS):
                bincnt[b] = 0
                for k in range(3):
                    binb_min[b, k] = np.inf
                    binb_max[b, k] = -np.inf
            scale = _NBINS / ext
            for i in range(lo, hi):
                t = perm[i]
                b = int((cen[t, a] - cmin[a]) * scale)
                if b >= _NBINS:
                    b = _NBINS - 1
                bincnt[b] += 1
                for k in range(3):
                    if tmin[t, k] < binb_min[b, k]:
                        binb_min[b, k] = tmin[t, k]
                    if tmax[t, k] > binb_max[b, k]:
                        binb_max[b, k] = tmax[t, k]
            # sweep from the right
            rx0 = np.inf
            ry0 = np.inf
            rz0 = np.inf
            rx1 = -np.inf
            ry1 = -np.inf
            rz1 = -np.inf
            c = 0
            for b in range(_NBINS - 1, 0, -1):
                c += bincnt[b]
                rx0 = min(rx0, binb_min[b, 0])
                ry0 = min(ry0, binb_min[b, 1])
                rz0 = min(rz0, binb_min[b, 2])
                rx1 = max(rx1, binb_max[b, 0])
                ry1 = max(ry1, binb_max[b, 1])
                rz1 = max(rz1, binb_max[b, 2])
                rcnt[b] = c
                if c > 0:
                    dx = rx1 - rx0
                    dy = ry1 - ry0
                    dz = rz1 - rz0
                    rarea[b] = dx * dy + dy * dz + dz * dx
                else:
                    rarea[b] = 0.0
            lx0 = np.inf
            ly0 = np.inf
            lz0 = np.inf
            lx1 = -np.inf
            ly1 = -np.inf
            lz1 = -np.inf
            c = 0
            for b in range(0, _NBINS - 1):
                c += bincnt[b]
                lx0 = min(lx0, binb_min[b, 0])
                ly0 = min(ly0, binb_min[b, 1])
                lz0 = min(lz0, binb_min[b, 2])
                lx1 = max(lx1, binb_max[b, 0])
                ly1 = max(ly1, binb_max[b, 1])
                lz1 = max(lz1, binb_max[b, 2])
                if c == 0 or rcnt[b + 1] == 0:
                    continue
                dx = lx1 - lx0
                dy = ly1 - ly0
                dz = lz1 - lz0
                cost = (dx * dy + dy * dz + dz * dx) * c + rarea[b + 1] * rcnt[b + 1]
                if cost < best_cost:
                    best_cost = cost
                    best_axis = a
                    best_split = b + 1
        mid = -1
        if best_axis >= 0:
            a = best_axis
            scale = _NBINS / (cmax[a] - cmin[a])
            # stable partition by bin
            nl = 0
            for i in range(lo, hi):
                t = perm[i]
                b = int((cen[t, a] - cmin[a]) * scale)
                if b >= _NBINS:
                    b = _NBINS - 1
                if b < best_split:
                    tmp[lo + nl] = t
                    nl += 1
            nr = 0
            for i in range(lo, hi):
                t = perm[i]
                b = int((cen[t, a] - cmin[a]) * scale)
                if b >= _NBINS:
                    b = _NBINS - 1
                if b >= best_split:
                    tmp[lo + nl + nr] = t
                    nr += 1
            for i in range(lo, hi):
                perm[i] = tmp[i]
            mid = lo + nl
        if mid <= lo or mid >= hi:
            # all centroids coincide along every axis: median split on the longest box axis
            a = 0
            for k in range(1, 3):
                if cmax[k] - cmin[k] > cmax[a] - cmin[a]:
                    a = k
            for i in range(lo, hi):
                keys[i] = cen[perm[i], a]
            o = np.argsort(keys[lo:hi], kind="mergesort")
            for i in range(hi - lo):
                tmp[lo + i] = perm[lo + o[i]]
            for i in range(lo, hi):
                perm[i] = tmp[i]
            mid = (lo + hi) // 2
        l = nnodes
        nnodes += 2
        left[nd] = l
        if top + 2 > st_node.shape[0]:
            st_node = np.concatenate((st_node, np.empty(st_node.shape[0], np.intp)))
            st_lo = np.concatenate((st_lo, np.empty(st_lo.shape[0], np.intp)))
            st_hi = np.concatenate((st_hi, np.empty(st_hi.shape[0], np.intp)))
            st_d = np.concatenate((st_d, np.empty(st_d.shape[0], np.intp)))
        st_node[top] = l + 1
        st_lo[top] = mid
        st_hi[top] = hi
        st_d[top] = d + 1
        top += 1
        st_node[top] = l
        st_lo[top] = lo
        st_hi[top] = mid
        st_d[top] = d + 1
        top += 1
    return perm, bmin[:nnodes], bmax[:nnodes], left[:nnodes], start[:nnodes], count[:nnodes], nnodes, maxdepth


@njit(cache=True, inline="always")
def _slab_axis(o, i, lo, hi, tn, tf):
    # comparisons that are false for NaN keep tn / tf: (lo - o) * inf is NaN when a ray that runs parallel
    # to this axis' planes starts on one of them, and such a ray lies in the slab for every t
    a = (lo - o) * i
    b = (hi - o) * i
    if a > b:
        a, b = b, a
    if a > tn:
        tn = a
    if b < tf:
        tf = b
    return tn, tf


@njit(cache=True, inline="always")
def _slab(ox, oy, oz, ix, iy, iz, bmin, bmax, nd, tmax_):
    """Distance along the ray to the (closed) box of node nd, 0 from inside, inf when missed or beyond tmax_."""
    tn, tf = _slab_axis(ox, ix, bmin[nd, 0], bmax[nd, 0], 0.0, tmax_)
    tn, tf = _slab_axis(oy, iy, bmin[nd, 1], bmax[nd, 1], tn, tf)
    tn, tf = _slab_axis(oz, iz, bmin[nd, 2], bmax[nd, 2], tn, tf)
    if tf < tn:
        return np.inf
    return tn


@njit(cache=True, inline="always")
def _moller_trumbore(ox, oy, oz, dx, dy, dz, v0, e1, e2, t):
    """Distance along the ray to triangle slot t, or inf (no culling of back faces)."""
    e1x = e1[t, 0]
    e1y = e1[t, 1]
    e1z = e1[t, 2]
    e2x = e2[t, 0]
    e2y = e2[t, 1]
    e2z = e2[t, 2]
    px = dy * e2z - dz * e2y
    py = dz * e2x - dx * e2z
    pz = dx * e2y - dy * e2x
    det = e1x * px + e1y * py + e1z * pz
    if det == 0.0:
        return np.inf
    inv = 1.0 / det
    sx = ox - v0[t, 0]
    sy = oy - v0[t, 1]
    sz = oz - v0[t, 2]
    u = (sx * px + sy * py + sz * pz) * inv
    if u < 0.0 or u > 1.0:
        return np.inf
    qx = sy * e1z - sz * e1y
    qy = sz * e1x - sx * e1z
    qz = sx * e1y - sy * e1x
    v = (dx * qx + dy * qy + dz * qz) * inv
    if v < 0.0 or u + v > 1.0:
        return np.inf
    return (e2x * qx + e2y * qy + e2z * qz) * inv


@njit(cache=True)
def _trace(ox, oy, oz, dx, dy, dz, tmin_, tmax_, any_hit, bmin, bmax, left, start, count, perm, v0, e1, e2,
           stack, sdist):
    ix = 1.0 / dx if dx != 0.0 else np.inf
    iy = 1.0 / dy if dy != 0.0 else np.inf
    iz = 1.0 / dz if dz != 0.0 else np.inf
    best = tmax_
    hit = -1
    if bmin.shape[0] == 0:
        return best, hit
    d0 = _slab(ox, oy, oz, ix, iy, iz, bmin, bmax, 0, best)
    if d0 == np.inf:
        return best, hit
    stack[0] = 0
    sdist[0] = d0
    top = 1
    while top > 0:
        top -= 1
        nd = stack[top]
        if sdist[top] > best:
            continue
        l = left[nd]
        if l < 0:
            for s in range(start[nd], start[nd] + count[nd]):
                t = _moller_trumbore(ox, oy, oz, dx, dy, dz, v0, e1, e2, s)
                if tmin_ < t <= best and t != np.inf:
                    if t < best or hit < 0 or perm[s] < hit:
                        best = t
                        hit = perm[s]
                    if any_hit:
                        return best, hit
            continue
        da = _slab(ox, oy, oz, ix, iy, iz, bmin, bmax, l, best)
        db = _slab(ox, oy, oz, ix, iy, iz, bmin, bmax, l + 1, best)
        if da <= db:
            if db != np.inf:
                stack[top] = l + 1
                sdist[top] = db
                top += 1
            if da != np.inf:
                stack[top] = l
                sdist[top] = da
                top += 1
        else:
            if da != np.inf:
                stack[top] = l
                sdist[top] = da
                top += 1
            stack[top] = l + 1
            sdist[top] = db
            top += 1
    return best, hit


@njit(cache=True, parallel=True)
def intersect_rays(orig, dirs, tmin_, tmax_arr, any_hit, bmin, bmax, left, start, count, perm, v0, e1, e2, depth,
                   out_t, out_id):
    """First hit (or any hit) of every ray; out_t = inf and out_id = -1 when missed."""
    n = orig.shape[0]
    nch = min(max(n, 1), 512)
    per = (n + nch - 1) // nch
    for c in prange(nch):
        stack = np.empty(2 * depth + 8, np.intp)
        sdist = np.empty(2 * depth + 8)
        for r in range(c * per, min(n, (c + 1) * per)):
            t, h = _trace(orig[r, 0], orig[r, 1], orig[r, 2], dirs[r, 0], dirs[r, 1], dirs[r, 2], tmin_,
                          tmax_arr[r], any_hit, bmin, bmax, left, start, count, perm, v0, e1, e2, stack, sdist)
            out_id[r] = h
            out_t[r] = t if h >= 0 else np.inf
