"""Numba kernels of the crowd engine (flat float64 / intp arrays only).

Validation and casting happen in the public classes; these functions trust
their inputs. Everything runs with ``NUMBA_DISABLE_JIT=1`` too.

Conventions
-----------
- agents: ``x, y, vx, vy, r, v0`` float64 arrays of length n; ``act`` the intp
  indices of the active agents; ``ex`` the target field per agent: an exit
  ``e < n_exit`` or a waypoint ``n_exit + w`` (its field follows the exits').
- walls: ``seg`` float64 (n_seg, 4) as x1, y1, x2, y2.
- wall lookup grid: cell ``c`` holds ``wall_idx[wall_start[c]:wall_start[c+1]]``.
- agent cell list: ``cell_start`` / ``cell_items`` (counting sort of ``act``).
- floor fields: ``ff`` float64 (n_exit, ny, nx), inf outside; grid origin
  ``gx0, gy0`` (lower-left corner) and spacing ``gh``.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numba import njit, prange

INF = np.inf
# CSM: an agent whose spacing ahead is below this (m; its speed s / T then under ~1.4 cm/s) is blocked
# and tries a random direction (see _csm_one)
BLOCKED_SPACING = 0.01
# a second, independent stream of _hash_noise draws for the blocked agents' step direction
SHUFFLE_STREAM = 1 << 40


# --------------------------------------------------------------------------- geometry helpers


@njit(cache=True, inline="always")
def _closest_on_seg(px, py, x1, y1, x2, y2):
    dx = x2 - x1
    dy = y2 - y1
    L2 = dx * dx + dy * dy
    t = 0.0
    if L2 > 0.0:
        t = ((px - x1) * dx + (py - y1) * dy) / L2
        if t < 0.0:
            t = 0.0
        elif t > 1.0:
            t = 1.0
    return x1 + t * dx, y1 + t * dy


@njit(cache=True, inline="always")
def _wall_point(px, py, seg, s):
    """The point of wall segment ``s`` nearest to ``(px, py)`` and its weight (1 or 0) in the wall force.

    A wall's force must not depend on how its outline is cut into segments: at a vertex two segments
    share, both find the vertex nearest for an agent beyond both their ends (round a door jamb or a
    corridor's mouth), and a sum over segments would count that wall twice (2x the force at every
    convex corner and at every vertex on a straight wall). Columns 4-9 of ``seg`` (from
    ``wall_vertex_table``) say, for the start and the end vertex, whether it is free (0: counted), owned
    by this segment (1: counted unless the agent is beside the other segment at it, whose direction away
    from the vertex is given) or owned by another segment (2: not counted here).
    """
    x1 = seg[s, 0]
    y1 = seg[s, 1]
    dx = seg[s, 2] - x1
    dy = seg[s, 3] - y1
    L2 = dx * dx + dy * dy
    t = 0.0
    if L2 > 0.0:
        t = ((px - x1) * dx + (py - y1) * dy) / L2
    if 0.0 < t < 1.0:
        return x1 + t * dx, y1 + t * dy, 1.0
    c = 4
    vx_ = x1
    vy_ = y1
    if t >= 1.0:
        c = 7
        vx_ = seg[s, 2]
        vy_ = seg[s, 3]
    mode = seg[s, c]
    if mode == 0.0:
        return vx_, vy_, 1.0
    if mode == 2.0 or (px - vx_) * seg[s, c + 1] + (py - vy_) * seg[s, c + 2] > 0.0:
        return vx_, vy_, 0.0
    return vx_, vy_, 1.0


@njit(cache=True, inline="always")
def _orient(ax, ay, bx, by, cx, cy):
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


@njit(cache=True, inline="always")
def _segments_cross(ax, ay, bx, by, cx, cy, dx, dy):
    """True when segment ab meets segment cd (touching counts)."""
    o1 = _orient(ax, ay, bx, by, cx, cy)
    o2 = _orient(ax, ay, bx, by, dx, dy)
    o3 = _orient(cx, cy, dx, dy, ax, ay)
    o4 = _orient(cx, cy, dx, dy, bx, by)
    if ((o1 > 0.0 and o2 < 0.0) or (o1 < 0.0 and o2 > 0.0)) and ((o3 > 0.0 and o4 < 0.0) or (o3 < 0.0 and o4 > 0.0)):
        return True
    # touching / collinear cases: an endpoint on the other segment
    eps = 1e-12
    if abs(o3) <= eps and min(cx, dx) - eps <= ax <= max(cx, dx) + eps and min(cy, dy) - eps <= ay <= max(cy, dy) + eps:
        return False  # starting on the line is not a crossing (the walker was already there)
    if abs(o4) <= eps and min(cx, dx) - eps <= bx <= max(cx, dx) + eps and min(cy, dy) - eps <= by <= max(cy, dy) + eps:
        return True
    return False


@njit(cache=True, inline="always")
def _crossing_param(ax, ay, bx, by, cx, cy, dx, dy):
    """Fraction along ab where it meets line cd (0..1), assuming they cross."""
    den = (bx - ax) * (dy - cy) - (by - ay) * (dx - cx)
    if den == 0.0:
        return 1.0
    t = ((cx - ax) * (dy - cy) - (cy - ay) * (dx - cx)) / den
    if t < 0.0:
        return 0.0
    if t > 1.0:
        return 1.0
    return t


# --------------------------------------------------------------------------- static wall grid


@njit(cache=True)
def build_wall_grid(seg, x0, y0, cs, ncx, ncy, reach):
    """Bucket wall segments into square cells (size ``cs``) expanded by ``reach``."""
    n = seg.shape[0]
    counts = np.zeros(ncx * ncy + 1, dtype=np.intp)
    for pass_ in range(2):
        if pass_ == 1:
            start = np.zeros(ncx * ncy + 1, dtype=np.intp)
            for c in range(ncx * ncy):
                start[c + 1] = start[c] + counts[c]
            items = np.empty(start[ncx * ncy], dtype=np.intp)
            fill = start[:-1].copy()
        for s in range(n):
            x1, y1, x2, y2 = seg[s, 0], seg[s, 1], seg[s, 2], seg[s, 3]
            i0 = max(int(math.floor((min(x1, x2) - reach - x0) / cs)), 0)
            i1 = min(int(math.floor((max(x1, x2) + reach - x0) / cs)), ncx - 1)
            j0 = max(int(math.floor((min(y1, y2) - reach - y0) / cs)), 0)
            j1 = min(int(math.floor((max(y1, y2) + reach - y0) / cs)), ncy - 1)
            for j in range(j0, j1 + 1):
                for i in range(i0, i1 + 1):
                    # distance from the cell's centre to the segment, against half-diagonal + reach
                    cx = x0 + (i + 0.5) * cs
                    cy = y0 + (j + 0.5) * cs
                    qx, qy = _closest_on_seg(cx, cy, x1, y1, x2, y2)
                    if math.hypot(cx - qx, cy - qy) > 0.7072 * cs + reach:
                        continue
                    c = j * ncx + i
                    if pass_ == 0:
                        counts[c] += 1
                    else:
                        items[fill[c]] = s
                        fill[c] += 1
    return start, items


# --------------------------------------------------------------------------- agent cell list


@njit(cache=True, inline="always")
def _cell_index(ii, jj, cnx, cny, period):
    """Index of cell (ii, jj) of the agent grid, or -1 off it (x wraps when ``period`` > 0)."""
    if jj < 0 or jj >= cny:
        return -1
    if period > 0.0:
        ii = (ii + cnx) % cnx
    elif ii < 0 or ii >= cnx:
        return -1
    return jj * cnx + ii


@njit(cache=True)
def build_cells(x, y, r, act, x0, y0, cs, ncx, ncy, cell_start, cell_items, cell_of, sxyr):
    """Counting sort of the active agents into cells (clamped to the grid).

    ``sxyr[q]`` holds (x, y, r) of agent ``cell_items[q]``: neighbour loops read
    one contiguous row per candidate instead of three scattered ones.
    """
    ncell = ncx * ncy
    for c in range(ncell + 1):
        cell_start[c] = 0
    for k in range(act.shape[0]):
        i = act[k]
        ci = int(math.floor((x[i] - x0) / cs))
        cj = int(math.floor((y[i] - y0) / cs))
        ci = min(max(ci, 0), ncx - 1)
        cj = min(max(cj, 0), ncy - 1)
        c = cj * ncx + ci
        cell_of[i] = c
        cell_start[c + 1] += 1
    for c in range(ncell):
        cell_start[c + 1] += cell_start[c]
    fill = cell_start[:-1].copy()
    for k in range(act.shape[0]):
        i = act[k]
        c = cell_of[i]
        q = fill[c]
        cell_items[q] = i
        sxyr[q, 0] = x[i]
        sxyr[q, 1] = y[i]
        sxyr[q, 2] = r[i]
        fill[c] += 1


# --------------------------------------------------------------------------- desired direction


@njit(cache=True, inline="always")
def _ff_at(ff, e, gx0, gy0, gh, px, py):
    ny = ff.shape[1]
    nx = ff.shape[2]
    i = int(math.floor((px - gx0) / gh))
    j = int(math.floor((py - gy0) / gh))
    if i < 0 or j < 0 or i >= nx or j >= ny:
        return INF
    v = ff[e, j, i]
    if v < INF:
        return v
    # a cell hugging a wall is not on the grid's walkable set: use the best neighbour ring
    for rad in range(1, 3):
        best = INF
        for dj in range(-rad, rad + 1):
            for di in range(-rad, rad + 1):
                ii = i + di
                jj = j + dj
                if ii < 0 or jj < 0 or ii >= nx or jj >= ny:
                    continue
                w = ff[e, jj, ii] + gh * math.hypot(di, dj)
                if w < best:
                    best = w
        if best < INF:
            return best
    return INF


@njit(cache=True, inline="always")
def _ff_dir(ff, e, gx0, gy0, gh, px, py):
    """Unit vector of steepest descent of floor field ``e`` at (px, py), or (0, 0)."""
    ny = ff.shape[1]
    nx = ff.shape[2]
    i = int(math.floor((px - gx0) / gh))
    j = int(math.floor((py - gy0) / gh))
    if i < 0 or j < 0 or i >= nx or j >= ny:
        return 0.0, 0.0
    c = ff[e, j, i]
    if not c < INF:
        # the agent's cell is not walkable on the grid: look for the best finite neighbour
        best = INF
        bx = 0.0
        by = 0.0
        for dj in range(-1, 2):
            for di in range(-1, 2):
                ii = i + di
                jj = j + dj
                if ii < 0 or jj < 0 or ii >= nx or jj >= ny or (di == 0 and dj == 0):
                    continue
                v = ff[e, jj, ii]
                if v < best:
                    best = v
                    bx = gx0 + (ii + 0.5) * gh - px
                    by = gy0 + (jj + 0.5) * gh - py
        n = math.hypot(bx, by)
        if n > 0.0:
            return bx / n, by / n
        return 0.0, 0.0
    l = ff[e, j, i - 1] if i > 0 else INF
    r = ff[e, j, i + 1] if i < nx - 1 else INF
    d = ff[e, j - 1, i] if j > 0 else INF
    u = ff[e, j + 1, i] if j < ny - 1 else INF
    if l < INF and r < INF:
        gx = (r - l) * 0.5
    elif r < INF:
        gx = r - c
    elif l < INF:
        gx = c - l
    else:
        gx = 0.0
    if d < INF and u < INF:
        gy = (u - d) * 0.5
    elif u < INF:
        gy = u - c
    elif d < INF:
        gy = c - d
    else:
        gy = 0.0
    n = math.hypot(gx, gy)
    if n == 0.0:
        return 0.0, 0.0
    return -gx / n, -gy / n


@njit(cache=True, inline="always")
def _desired_dir(i, x, y, r, ex, ff, gx0, gy0, gh, exits, exit_normal, near, door_margin, fixed_dx, fixed_dy):
    """Desired direction of agent ``i``: fixed, floor field, or straight through a near door."""
    if ex[i] < 0:
        return fixed_dx, fixed_dy
    e = ex[i]
    px = x[i]
    py = y[i]
    if e >= exits.shape[0]:
        # heading for a waypoint (fields after the exits' ones): follow its floor field
        return _ff_dir(ff, e, gx0, gy0, gh, px, py)
    x1, y1, x2, y2 = exits[e, 0], exits[e, 1], exits[e, 2], exits[e, 3]
    # aim at the door's inner part (shrunk by the radius) once close to it
    L = math.hypot(x2 - x1, y2 - y1)
    qx, qy = _closest_on_seg(px, py, x1, y1, x2, y2)
    dq = math.hypot(px - qx, py - qy)
    if dq < near and L > 0.0:
        s = min(max(r[i] * 1.2, door_margin), 0.5 * L) / L
        ax = x1 + s * (x2 - x1)
        ay = y1 + s * (y2 - y1)
        bx = x2 - s * (x2 - x1)
        by = y2 - s * (y2 - y1)
        tx, ty = _closest_on_seg(px, py, ax, ay, bx, by)
        tx += exit_normal[e, 0] * 0.5
        ty += exit_normal[e, 1] * 0.5
        # ... unless the door is in a thick wall (exits[e, 4]: a jamb's reveal runs back into the room) and
        # the straight line there would graze a jamb: the line then runs through the reveal's corner, whose
        # repulsion points straight back along it, and the agent stood there for good (three people beside
        # FZK-Haus's 1 m door); it follows the floor field round the corner instead. (Beside a gap in a thin
        # wall nothing stands in the way: the straight aim as before, on which the doors were calibrated)
        clear = True
        if exits[e, 4] > 0.0:
            c1x, c1y = _closest_on_seg(x1, y1, px, py, tx, ty)
            c2x, c2y = _closest_on_seg(x2, y2, px, py, tx, ty)
            clear = min(math.hypot(c1x - x1, c1y - y1), math.hypot(c2x - x2, c2y - y2)) >= r[i]
        dx = tx - px
        dy = ty - py
        n = math.hypot(dx, dy)
        if n > 0.0 and clear:
            return dx / n, dy / n
    dx, dy = _ff_dir(ff, e, gx0, gy0, gh, px, py)
    if dx == 0.0 and dy == 0.0:
        dx = qx - px
        dy = qy - py
        n = math.hypot(dx, dy)
        if n > 0.0:
            return dx / n, dy / n
    return dx, dy


# --------------------------------------------------------------------------- wall constraint and exits


@njit(cache=True, inline="always")
def _constrain(ox, oy, px, py, ri, seg, wall_start, wall_idx, wc):
    """Keep an agent ``ri`` away from walls and never let its move ``o -> p`` cross one."""
    a = wall_start[wc]
    b = wall_start[wc + 1]
    for _it in range(4):
        moved = False
        for k in range(a, b):
            s = wall_idx[k]
            x1, y1, x2, y2 = seg[s, 0], seg[s, 1], seg[s, 2], seg[s, 3]
            qx, qy = _closest_on_seg(px, py, x1, y1, x2, y2)
            dx = px - qx
            dy = py - qy
            d = math.hypot(dx, dy)
            if d < ri:
                if d > 1e-12:
                    px = qx + dx / d * ri
                    py = qy + dy / d * ri
                else:  # on the wall line: push to the side the agent came from
                    nx_ = -(y2 - y1)
                    ny_ = x2 - x1
                    nn = math.hypot(nx_, ny_)
                    if nn == 0.0:
                        continue
                    nx_ /= nn
                    ny_ /= nn
                    if (ox - qx) * nx_ + (oy - qy) * ny_ < 0.0:
                        nx_ = -nx_
                        ny_ = -ny_
                    px = qx + nx_ * ri
                    py = qy + ny_ * ri
                moved = True
        if not moved:
            break
    for k in range(a, b):
        s = wall_idx[k]
        if _segments_cross(ox, oy, px, py, seg[s, 0], seg[s, 1], seg[s, 2], seg[s, 3]):
            return ox, oy
    return px, py


@njit(cache=True, inline="always")
def _wall_cell(px, py, wx0, wy0, wcs, wnx, wny):
    i = int(math.floor((px - wx0) / wcs))
    j = int(math.floor((py - wy0) / wcs))
    i = min(max(i, 0), wnx - 1)
    j = min(max(j, 0), wny - 1)
    return j * wnx + i


@njit(cache=True, inline="always")
def _finish_move(i, ox, oy, px, py, r, seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
                 exits, exit_open, period, px0, nxo, nyo, out_exit, out_frac):
    wc = _wall_cell(ox, oy, wx0, wy0, wcs, wnx, wny)
    px, py = _constrain(ox, oy, px, py, r[i], seg, wall_start, wall_idx, wc)
    out_exit[i] = -1
    out_frac[i] = 1.0
    for e in range(exits.shape[0]):
        if exit_open[e] == 0:
            continue
        if _segments_cross(ox, oy, px, py, exits[e, 0], exits[e, 1], exits[e, 2], exits[e, 3]):
            out_exit[i] = e
            out_frac[i] = _crossing_param(ox, oy, px, py, exits[e, 0], exits[e, 1], exits[e, 2], exits[e, 3])
            break
    if period > 0.0:
        while px >= px0 + period:
            px -= period
        while px < px0:
            px += period
    nxo[i] = px
    nyo[i] = py


# --------------------------------------------------------------------------- collision-free speed model


@njit(cache=True, inline="always")
def _hash_noise(i, step_no):
    """Two uniform numbers in [-1, 1) from (agent, step): splitmix64, so runs repeat exactly."""
    z = np.uint64(i) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(step_no) * np.uint64(0xBF58476D1CE4E5B9)
    out = np.empty(2)
    for k in range(2):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        y = z
        y = (y ^ (y >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        y = (y ^ (y >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        y = y ^ (y >> np.uint64(31))
        out[k] = (y >> np.uint64(11)) * (1.0 / 9007199254740992.0) * 2.0 - 1.0
    return out[0], out[1]


@njit(cache=True, inline="always")
def _csm_spacing(i, px, py, ri, dirx, diry, ci, cj, cell_start, cell_items, sxyr, cnx, cny, period):
    """Smallest free spacing ``|x_j - x_i| - (r_i + r_j)`` to a neighbour ahead along (dirx, diry)
    within the corridor of width ``r_i + r_j`` (Tordeux, Chraibi & Seyfried 2016), or INF."""
    smin = INF
    for dj in range(-1, 2):  # the agent's cell and its 8 neighbours
        for di in range(-1, 2):
            cc = _cell_index(ci + di, cj + dj, cnx, cny, period)
            if cc < 0:
                continue
            for q in range(cell_start[cc], cell_start[cc + 1]):
                j = cell_items[q]
                if j == i:
                    continue
                dx = sxyr[q, 0] - px
                dy = sxyr[q, 1] - py
                if period > 0.0:
                    dx -= period * np.floor(dx / period + 0.5)
                along = dirx * dx + diry * dy
                if along < 0.0:
                    continue
                l = ri + sxyr[q, 2]
                if abs(dirx * dy - diry * dx) > l:
                    continue
                s_ = math.sqrt(dx * dx + dy * dy) - l
                if s_ < smin:
                    smin = s_
    return smin


@njit(cache=True)
def _csm_one(k, x, y, vx, vy, r, v0, ex, act, dt,
             time_gap, a_n, d_n, a_w, d_w, dir_noise, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, out_exit, out_frac):
    """One step of the collision-free speed model (Tordeux, Chraibi & Seyfried 2016).

    Direction: desired direction plus exponential neighbour and wall
    repulsion, normalised, plus ``dir_noise`` times a random vector;
    speed: ``min(v0, max(0, s / T))`` with ``s`` the smallest free spacing
    to a neighbour in the walking direction. A blocked agent (``s`` under
    ``BLOCKED_SPACING``) steps towards a random direction instead when the
    speed along it is higher (only with ``dir_noise > 0``).
    """
    if True:
        i = act[k]
        px = x[i]
        py = y[i]
        ri = r[i]
        edx, edy = _desired_dir(i, x, y, r, ex, ff, gx0, gy0, gh, exits, exit_normal, near, door_margin, fixed_dx, fixed_dy)
        rx = 0.0
        ry = 0.0
        rep_reach = 12.0 * d_n  # a_n exp(-12) is below 1e-4 of the unit desired direction
        c = cell_of[i]
        ci = c % cnx
        cj = c // cnx
        # neighbour repulsion
        for dj in range(-1, 2):  # the agent's cell and its 8 neighbours
            for di in range(-1, 2):
                cc = _cell_index(ci + di, cj + dj, cnx, cny, period)
                if cc < 0:
                    continue
                for q in range(cell_start[cc], cell_start[cc + 1]):
                    j = cell_items[q]
                    if j == i:
                        continue
                    dx = sxyr[q, 0] - px
                    dy = sxyr[q, 1] - py
                    if period > 0.0:
                        dx -= period * np.floor(dx / period + 0.5)
                    d2 = dx * dx + dy * dy
                    rj = sxyr[q, 2]
                    lrep = ri + rj + rep_reach
                    if d2 > lrep * lrep or d2 <= 1e-24:
                        continue
                    d = math.sqrt(d2)
                    w = a_n * math.exp((ri + rj - d) / d_n)
                    rx -= w * dx / d
                    ry -= w * dy / d
        # wall repulsion
        wc = _wall_cell(px, py, wx0, wy0, wcs, wnx, wny)
        for q in range(wall_start[wc], wall_start[wc + 1]):
            s = wall_idx[q]
            qx, qy, wt = _wall_point(px, py, seg, s)
            dx = px - qx
            dy = py - qy
            d = math.hypot(dx, dy)
            if wt == 0.0 or d <= 1e-12 or d > cutoff:
                continue
            w = a_w * math.exp((ri - d) / d_w)
            rx += w * dx / d
            ry += w * dy / d
        dirx = edx + rx
        diry = edy + ry
        n = math.hypot(dirx, diry)
        if n > 0.0:
            dirx /= n
            diry /= n
        if dir_noise > 0.0:  # a small wobble of the unit direction (normalised first: the sum of
            # repulsions is ~10 long in a crowd and would swallow a noise added before)
            n1, n2 = _hash_noise(i, step_no)
            dirx += dir_noise * n1
            diry += dir_noise * n2
            n = math.hypot(dirx, diry)
            if n > 0.0:
                dirx /= n
                diry /= n
        smin = _csm_spacing(i, px, py, ri, dirx, diry, ci, cj, cell_start, cell_items, sxyr, cnx, cny, period)
        v = v0[i]
        if smin < INF:
            v = min(v, max(smin / time_gap, 0.0))
        if dir_noise > 0.0 and smin < BLOCKED_SPACING:
            # blocked: a neighbour touches it within 90 degrees of its walking direction, so V(s) = 0
            # for any small turn of that direction, and an agent held so on every side never moves
            # again (the arches of 3-4 agents at a 1 m door or corridor mouth stood for good). As a
            # pressed pedestrian turns and shuffles into whatever room there is, it tries a random
            # direction and takes it if the model's speed V(s) along it is higher; s is the spacing
            # along the direction it then moves in, so it avoids collisions as the model does
            # (JuPedSim PR #1516, 2025, adds randomness to its CSM-type speed functions for the same
            # frozen agents)
            n1, n2 = _hash_noise(i + SHUFFLE_STREAM, step_no)
            ang = math.pi * n1
            sx_ = math.cos(ang)
            sy_ = math.sin(ang)
            s2 = _csm_spacing(i, px, py, ri, sx_, sy_, ci, cj, cell_start, cell_items, sxyr, cnx, cny, period)
            v2 = min(v0[i], max(s2 / time_gap, 0.0)) if s2 < INF else v0[i]
            if v2 > v:
                dirx = sx_
                diry = sy_
                v = v2
        vx[i] = v * dirx
        vy[i] = v * diry
        _finish_move(i, px, py, px + v * dirx * dt, py + v * diry * dt, r, seg, wall_start, wall_idx,
                     wx0, wy0, wcs, wnx, wny, exits, exit_open, period, cx0, nxo, nyo, out_exit, out_frac)


@njit(cache=True, parallel=True)
def csm_step_par(x, y, vx, vy, r, v0, ex, act, dt,
             time_gap, a_n, d_n, a_w, d_w, dir_noise, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, out_exit, out_frac):
    """:func:`csm_step` in parallel over agents (prange)."""
    for k in prange(act.shape[0]):
        _csm_one(k, x, y, vx, vy, r, v0, ex, act, dt,
             time_gap, a_n, d_n, a_w, d_w, dir_noise, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, out_exit, out_frac)


@njit(cache=True)
def csm_step(x, y, vx, vy, r, v0, ex, act, dt,
             time_gap, a_n, d_n, a_w, d_w, dir_noise, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, out_exit, out_frac):
    """One step of the collision-free speed model for every active agent (serial)."""
    for k in range(act.shape[0]):
        _csm_one(k, x, y, vx, vy, r, v0, ex, act, dt,
             time_gap, a_n, d_n, a_w, d_w, dir_noise, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, out_exit, out_frac)


# --------------------------------------------------------------------------- social force model


@njit(cache=True)
def _sfm_one(kk, x, y, vx, vy, r, v0, ex, act, dt,
             tau, mass, A, B, k_body, kappa, lam, A_w, B_w, vmax_factor, social_cap, noise, no_back, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, nvx, nvy, out_exit, out_frac):
    """One step of the social force model (Helbing, Farkas & Vicsek 2000).

    ``m dv/dt = m (v0 e - v) / tau + sum_j f_ij + sum_W f_iW`` with
    ``f_ij = (A w(phi) exp((r_ij - d_ij) / B) + k g(r_ij - d_ij)) n_ij + kappa g(r_ij - d_ij) dv_t t_ij``
    and the field-of-view weight ``w = lam + (1 - lam)(1 + cos phi) / 2``
    (Helbing & Molnar 1995). Semi-implicit Euler; speed capped at
    ``vmax_factor * v0``.
    """
    if True:
        i = act[kk]
        px = x[i]
        py = y[i]
        ri = r[i]
        uxi = vx[i]
        uyi = vy[i]
        edx, edy = _desired_dir(i, x, y, r, ex, ff, gx0, gy0, gh, exits, exit_normal, near, door_margin, fixed_dx, fixed_dy)
        fx = 0.0
        fy = 0.0
        sx = 0.0  # social (non-contact) force from neighbours
        sy = 0.0
        c = cell_of[i]
        ci = c % cnx
        cj = c // cnx
        for dj in range(-1, 2):  # the agent's cell and its 8 neighbours
            for di in range(-1, 2):
                cc = _cell_index(ci + di, cj + dj, cnx, cny, period)
                if cc < 0:
                    continue
                for q in range(cell_start[cc], cell_start[cc + 1]):
                    j = cell_items[q]
                    if j == i:
                        continue
                    dx = px - sxyr[q, 0]
                    dy = py - sxyr[q, 1]
                    if period > 0.0:
                        dx -= period * np.floor(dx / period + 0.5)
                    d = math.hypot(dx, dy)
                    if d > cutoff or d <= 1e-12:
                        continue
                    nx_ = dx / d
                    ny_ = dy / d
                    rij = ri + sxyr[q, 2]
                    ov = rij - d
                    cosphi = -(nx_ * edx + ny_ * edy)
                    w = lam + (1.0 - lam) * 0.5 * (1.0 + cosphi)
                    f = A * w * math.exp(ov / B)
                    sx += f * nx_
                    sy += f * ny_
                    f = 0.0
                    if ov > 0.0:
                        f = k_body * ov
                        tx = -ny_
                        ty = nx_
                        dvt = (vx[j] - uxi) * tx + (vy[j] - uyi) * ty
                        fx += kappa * ov * dvt * tx
                        fy += kappa * ov * dvt * ty
                    fx += f * nx_
                    fy += f * ny_
        # the social push against the walking direction is capped: only bodies in
        # contact can stop a pedestrian completely
        drive = mass * v0[i] / tau
        back = -(sx * edx + sy * edy)
        if back > social_cap * drive:
            sx += (back - social_cap * drive) * edx
            sy += (back - social_cap * drive) * edy
        fx += sx + mass * (v0[i] * edx - uxi) / tau
        fy += sy + mass * (v0[i] * edy - uyi) / tau
        if noise > 0.0:  # fluctuation force (Helbing, Farkas & Vicsek 2000), deterministic per agent and step
            n1, n2 = _hash_noise(i, step_no)
            fx += noise * drive * n1
            fy += noise * drive * n2
        wc = _wall_cell(px, py, wx0, wy0, wcs, wnx, wny)
        for q in range(wall_start[wc], wall_start[wc + 1]):
            s = wall_idx[q]
            qx, qy, wt = _wall_point(px, py, seg, s)
            dx = px - qx
            dy = py - qy
            d = math.hypot(dx, dy)
            if wt == 0.0 or d <= 1e-12 or d > cutoff:
                continue
            nx_ = dx / d
            ny_ = dy / d
            ov = ri - d
            f = A_w * math.exp(ov / B_w)
            if ov > 0.0:
                f += k_body * ov
                tx = -ny_
                ty = nx_
                vt = uxi * tx + uyi * ty
                fx -= kappa * ov * vt * tx
                fy -= kappa * ov * vt * ty
            fx += f * nx_
            fy += f * ny_
        ux = uxi + fx / mass * dt
        uy = uyi + fy / mass * dt
        # optional (no_back): velocity never points against the desired direction. Off by
        # default: it let 2-3 agents wedge at a 1 m door's jambs for good (they could not
        # back off), and a single-file stream into a door queued
        back = ux * edx + uy * edy
        if no_back > 0.0 and back < 0.0:
            ux -= back * edx
            uy -= back * edy
        sp = math.hypot(ux, uy)
        vmax = vmax_factor * v0[i]
        if sp > vmax:
            ux *= vmax / sp
            uy *= vmax / sp
        nvx[i] = ux
        nvy[i] = uy
        _finish_move(i, px, py, px + ux * dt, py + uy * dt, r, seg, wall_start, wall_idx,
                     wx0, wy0, wcs, wnx, wny, exits, exit_open, period, cx0, nxo, nyo, out_exit, out_frac)


@njit(cache=True, parallel=True)
def sfm_step_par(x, y, vx, vy, r, v0, ex, act, dt,
             tau, mass, A, B, k_body, kappa, lam, A_w, B_w, vmax_factor, social_cap, noise, no_back, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, nvx, nvy, out_exit, out_frac):
    """:func:`sfm_step` in parallel over agents (prange)."""
    for k in prange(act.shape[0]):
        _sfm_one(k, x, y, vx, vy, r, v0, ex, act, dt,
             tau, mass, A, B, k_body, kappa, lam, A_w, B_w, vmax_factor, social_cap, noise, no_back, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, nvx, nvy, out_exit, out_frac)


@njit(cache=True)
def sfm_step(x, y, vx, vy, r, v0, ex, act, dt,
             tau, mass, A, B, k_body, kappa, lam, A_w, B_w, vmax_factor, social_cap, noise, no_back, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, nvx, nvy, out_exit, out_frac):
    """One social-force step for every active agent (serial)."""
    for k in range(act.shape[0]):
        _sfm_one(k, x, y, vx, vy, r, v0, ex, act, dt,
             tau, mass, A, B, k_body, kappa, lam, A_w, B_w, vmax_factor, social_cap, noise, no_back, step_no, cutoff,
             cell_start, cell_items, cell_of, sxyr, cx0, cy0, ccs, cnx, cny, period,
             seg, wall_start, wall_idx, wx0, wy0, wcs, wnx, wny,
             ff, gx0, gy0, gh, exits, exit_normal, exit_open, near, door_margin, fixed_dx, fixed_dy,
             nxo, nyo, nvx, nvy, out_exit, out_frac)


# --------------------------------------------------------------------------- floor field


@njit(cache=True)
def scanline_fill(ring_xy, ring_off, gx0, gy0, gh, nx, ny):
    """Cells whose centre lies inside the rings (even-odd rule, so holes are holes)."""
    inside = np.zeros((ny, nx), dtype=np.uint8)
    nring = ring_off.shape[0] - 1
    xs = np.empty(ring_xy.shape[0] + 2, dtype=np.float64)
    for j in range(ny):
        yc = gy0 + (j + 0.5) * gh
        m = 0
        for rg in range(nring):
            a = ring_off[rg]
            b = ring_off[rg + 1]
            for p in range(a, b - 1):
                x1 = ring_xy[p, 0]
                y1 = ring_xy[p, 1]
                x2 = ring_xy[p + 1, 0]
                y2 = ring_xy[p + 1, 1]
                if (y1 <= yc < y2) or (y2 <= yc < y1):
                    xs[m] = x1 + (yc - y1) * (x2 - x1) / (y2 - y1)
                    m += 1
        xx = np.sort(xs[:m])
        for q in range(0, m - 1, 2):
            i0 = int(math.ceil((xx[q] - gx0) / gh - 0.5))
            i1 = int(math.floor((xx[q + 1] - gx0) / gh - 0.5))
            i0 = max(i0, 0)
            i1 = min(i1, nx - 1)
            for i in range(i0, i1 + 1):
                inside[j, i] = 1
    return inside


@njit(cache=True)
def wall_distance(seg, gx0, gy0, gh, nx, ny, reach):
    """Distance from each cell centre to the nearest wall segment, capped at ``reach``."""
    dist = np.full((ny, nx), reach)
    for s in range(seg.shape[0]):
        x1, y1, x2, y2 = seg[s, 0], seg[s, 1], seg[s, 2], seg[s, 3]
        i0 = max(int(math.floor((min(x1, x2) - reach - gx0) / gh)), 0)
        i1 = min(int(math.floor((max(x1, x2) + reach - gx0) / gh)), nx - 1)
        j0 = max(int(math.floor((min(y1, y2) - reach - gy0) / gh)), 0)
        j1 = min(int(math.floor((max(y1, y2) + reach - gy0) / gh)), ny - 1)
        for j in range(j0, j1 + 1):
            cy = gy0 + (j + 0.5) * gh
            for i in range(i0, i1 + 1):
                cx = gx0 + (i + 0.5) * gh
                qx, qy = _closest_on_seg(cx, cy, x1, y1, x2, y2)
                d = math.hypot(cx - qx, cy - qy)
                if d < dist[j, i]:
                    dist[j, i] = d
    return dist


@njit(cache=True)
def exit_seeds(passable, ex, gx0, gy0, gh, band):
    """Passable cells within ``band`` of the exit segment, with their exact distance."""
    ny, nx = passable.shape
    x1, y1, x2, y2 = ex[0], ex[1], ex[2], ex[3]
    i0 = max(int(math.floor((min(x1, x2) - band - gx0) / gh)), 0)
    i1 = min(int(math.floor((max(x1, x2) + band - gx0) / gh)), nx - 1)
    j0 = max(int(math.floor((min(y1, y2) - band - gy0) / gh)), 0)
    j1 = min(int(math.floor((max(y1, y2) + band - gy0) / gh)), ny - 1)
    cnt = 0
    idx = np.empty(max((i1 - i0 + 1) * (j1 - j0 + 1), 0), dtype=np.intp)
    val = np.empty(idx.shape[0], dtype=np.float64)
    for j in range(j0, j1 + 1):
        cy = gy0 + (j + 0.5) * gh
        for i in range(i0, i1 + 1):
            if passable[j, i] == 0:
                continue
            cx = gx0 + (i + 0.5) * gh
            qx, qy = _closest_on_seg(cx, cy, x1, y1, x2, y2)
            d = math.hypot(cx - qx, cy - qy)
            if d <= band:
                idx[cnt] = j * nx + i
                val[cnt] = d
                cnt += 1
    return idx[:cnt], val[:cnt]


@njit(cache=True)
def dijkstra_field(slowness, seeds, seed_val, gh):
    """Travel distance on a 16-neighbour grid (no corner cutting) from the seed cells.

    ``slowness`` (ny, nx) is 1 in the open, larger near walls, inf where not
    walkable. The 16-neighbour stencil keeps the metric error near 1 %.
    """
    ny, nx = slowness.shape
    D = np.full(ny * nx, INF)
    sl = slowness.ravel()
    heap = [(0.0, 0)]
    heap.pop()
    for k in range(seeds.shape[0]):
        s = seeds[k]
        if seed_val[k] < D[s]:
            D[s] = seed_val[k]
            heapq.heappush(heap, (seed_val[k], s))
    di = np.array([1, -1, 0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 1, 1, -1, -1])
    dj = np.array([0, 0, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 2, -2, 2, -2])
    while len(heap) > 0:
        d, c = heapq.heappop(heap)
        if d > D[c]:
            continue
        ci = c % nx
        cj = c // nx
        for m in range(16):
            ii = ci + di[m]
            jj = cj + dj[m]
            if ii < 0 or jj < 0 or ii >= nx or jj >= ny:
                continue
            nb = jj * nx + ii
            if not sl[nb] < INF:
                continue
            # no corner cutting: the cells the move passes must be walkable
            if m >= 4:
                sx = 1 if di[m] > 0 else -1
                sy = 1 if dj[m] > 0 else -1
                if not sl[cj * nx + ci + sx] < INF or not sl[(cj + sy) * nx + ci] < INF:
                    continue
                if m >= 8:
                    # knight move: also the diagonal cell it passes
                    if abs(di[m]) == 2:
                        if not sl[(cj + sy) * nx + ci + sx] < INF:
                            continue
                    else:
                        if not sl[(cj + sy) * nx + ci + sx] < INF:
                            continue
            step = math.hypot(di[m], dj[m]) * gh * 0.5 * (sl[c] + sl[nb])
            nd = d + step
            if nd < D[nb]:
                D[nb] = nd
                heapq.heappush(heap, (nd, nb))
    return D.reshape((ny, nx))


# --------------------------------------------------------------------------- bookkeeping


@njit(cache=True)
def sample_field(ff, gx0, gy0, gh, x, y, idx):
    """Floor-field values (n_exit, len(idx)) at the agents ``idx``."""
    ne = ff.shape[0]
    out = np.empty((ne, idx.shape[0]))
    for k in range(idx.shape[0]):
        i = idx[k]
        for e in range(ne):
            out[e, k] = _ff_at(ff, e, gx0, gy0, gh, x[i], y[i])
    return out


@njit(cache=True)
def _rechoice_move(k, b, vals, walk, queue, cost, cur, counted, cap):
    """Agent ``k`` leaves its exit's queue (the agents behind it there move up) and joins exit ``b``'s."""
    m = vals.shape[1]
    a = cur[k]
    if a >= 0 and counted[k] and math.isfinite(vals[a, k]):
        for j in range(m):
            if vals[a, j] > vals[a, k]:
                queue[a, j] -= 1.0 / cap[a]
                cost[a, j] = walk[a, j] + queue[a, j]
    for j in range(m):
        if vals[b, j] > vals[b, k]:
            queue[b, j] += 1.0 / cap[b]
            cost[b, j] = walk[b, j] + queue[b, j]
    cur[k] = b
    counted[k] = True


@njit(cache=True)
def rechoose_exits(vals, walk, queue, cur, counted, forced, movable, cap, rel, gain_s):
    """Sequential congestion-aware exit re-choice (updates ``cur``, ``queue`` in place).

    ``vals`` (n_exit, m) floor-field distances, ``walk`` / ``queue`` (n_exit, m) walking and
    queueing times (s); ``cur`` the current exits (intp); ``counted`` whether an agent counts in
    its exit's queue already. First every ``forced`` agent takes its best exit; then, one at a
    time, the ``movable`` agent with the largest gain switches to its best other exit, if it gains
    more than ``rel`` of its current time and more than ``gain_s`` seconds, each agent at most once.
    Every switch updates the queues the others see.
    """
    ne, m = vals.shape
    cost = walk + queue
    for k in range(m):
        if forced[k]:
            b = 0
            for e in range(1, ne):
                if cost[e, k] < cost[b, k]:
                    b = e
            if math.isfinite(cost[b, k]):
                _rechoice_move(k, b, vals, walk, queue, cost, cur, counted, cap)
    for _ in range(m):
        best_k = -1
        best_b = -1
        best_g = 0.0
        for k in range(m):
            if not movable[k]:
                continue
            a = cur[k]
            ca = cost[a, k]
            bb = -1
            cb = INF
            for e in range(ne):
                if e != a and cost[e, k] < cb:
                    cb = cost[e, k]
                    bb = e
            if bb < 0 or not math.isfinite(ca) or not math.isfinite(cb):
                continue
            g = ca - cb
            if g > rel * ca and g > gain_s and g > best_g:
                best_g = g
                best_k = k
                best_b = bb
        if best_k < 0:
            break
        _rechoice_move(best_k, best_b, vals, walk, queue, cost, cur, counted, cap)
        movable[best_k] = False
    return cur


@njit(cache=True)
def advance_routes(ff, gx0, gy0, gh, x, y, act, tgt, leg, rid, route_wp, route_off, n_exit, reach, ex):
    """Agents within ``reach`` of their waypoint's area move on to the next one (or to their exit ``ex``).

    ``tgt`` is the field each agent follows (``n_exit + w`` for waypoint ``w``),
    ``leg`` its position in its route ``route_wp[route_off[rid]:route_off[rid + 1]]``.
    Returns the agents that advanced this time.
    """
    out = np.empty(act.shape[0], dtype=np.intp)
    m = 0
    for k in range(act.shape[0]):
        i = act[k]
        if tgt[i] < n_exit:
            continue
        if _ff_at(ff, tgt[i], gx0, gy0, gh, x[i], y[i]) <= reach:
            leg[i] += 1
            a = route_off[rid[i]] + leg[i]
            tgt[i] = n_exit + route_wp[a] if a < route_off[rid[i] + 1] else ex[i]
            out[m] = i
            m += 1
    return out[:m]


@njit(cache=True)
def release_ok(cand, x, y, r, cell_start, cell_items, cx0, cy0, ccs, cnx, cny, period):
    """For each candidate agent, in the order given: 1 when it overlaps neither an active agent
    nor a candidate accepted before it (agents released in one step enter one after another).

    Candidates are compared with each other on the same cell grid as the active agents
    (cells of ``ccs`` >= twice the largest radius, so the 3 x 3 neighbourhood suffices);
    overlapping among candidates allows the relative slack of 1e-6 that start positions get.
    """
    m = cand.shape[0]
    out = np.zeros(m, dtype=np.uint8)
    # the candidates' cells, and the candidates sorted by cell (ranges found by binary search)
    ccell = np.empty(m, dtype=np.intp)
    for k in range(m):
        i = cand[k]
        ci = min(max(int(math.floor((x[i] - cx0) / ccs)), 0), cnx - 1)
        cj = min(max(int(math.floor((y[i] - cy0) / ccs)), 0), cny - 1)
        ccell[k] = cj * cnx + ci
    order = np.argsort(ccell, kind="mergesort")
    sorted_cell = ccell[order]
    for k in range(m):
        i = cand[k]
        c = ccell[k]
        ci = c % cnx
        cj = c // cnx
        free = True
        for dj in range(-1, 2):  # the agent's cell and its 8 neighbours
            for di in range(-1, 2):
                cc = _cell_index(ci + di, cj + dj, cnx, cny, period)
                if cc < 0 or not free:
                    continue
                for q in range(cell_start[cc], cell_start[cc + 1]):
                    j = cell_items[q]
                    dx = x[j] - x[i]
                    if period > 0.0:
                        dx -= period * np.floor(dx / period + 0.5)
                    if math.hypot(dx, y[j] - y[i]) < r[i] + r[j]:
                        free = False
                        break
                if not free:
                    continue
                a = np.searchsorted(sorted_cell, cc)
                for q in range(a, m):
                    if sorted_cell[q] != cc:
                        break
                    kk = order[q]
                    if out[kk] == 0:  # only candidates already let in
                        continue
                    j = cand[kk]
                    dx = x[j] - x[i]
                    if period > 0.0:
                        dx -= period * np.floor(dx / period + 0.5)
                    if math.hypot(dx, y[j] - y[i]) < (r[i] + r[j]) * (1.0 - 1e-6):
                        free = False
                        break
        if free:
            out[k] = 1
    return out


@njit(cache=True)
def density_count(x, y, idx, gx0, gy0, gh, nx, ny):
    """Agents per cell (ny, nx) for the agents ``idx``."""
    out = np.zeros((ny, nx), dtype=np.float64)
    for k in range(idx.shape[0]):
        i = idx[k]
        ii = int(math.floor((x[i] - gx0) / gh))
        jj = int(math.floor((y[i] - gy0) / gh))
        if 0 <= ii < nx and 0 <= jj < ny:
            out[jj, ii] += 1.0
    return out


@njit(cache=True)
def line_crossings(ox, oy, px, py, idx, lines, period):
    """(agent, line, sign) for each move o -> p of agent idx[k] that crosses a measurement line.

    With ``period`` > 0 (a periodic corridor along x) ``p`` may have wrapped round: the move is
    unwrapped to ``o -> o + d`` (``|d_x| < period / 2``) and tested together with its copies one
    period to the left and right, so the wrap itself is no crossing and a line near either
    end still counts once.
    """
    cap = 16
    res = np.empty((cap, 3), dtype=np.intp)
    n = 0
    nshift = 3 if period > 0.0 else 1
    for k in range(idx.shape[0]):
        i = idx[k]
        ex = px[i]
        if period > 0.0:
            dx = px[i] - ox[i]
            ex = ox[i] + dx - period * np.floor(dx / period + 0.5)  # the unwrapped end
        for m in range(lines.shape[0]):
            x1, y1, x2, y2 = lines[m, 0], lines[m, 1], lines[m, 2], lines[m, 3]
            sign = 0
            for sh in range(nshift):
                s = 0.0 if sh == 0 else (-period if sh == 1 else period)
                ax = ox[i] + s
                bx = ex + s
                o1 = _orient(x1, y1, x2, y2, ax, oy[i])
                o2 = _orient(x1, y1, x2, y2, bx, py[i])
                if (o1 > 0.0) == (o2 > 0.0):
                    continue
                o3 = _orient(ax, oy[i], bx, py[i], x1, y1)
                o4 = _orient(ax, oy[i], bx, py[i], x2, y2)
                if (o3 > 0.0) == (o4 > 0.0):
                    continue
                sign = 1 if o2 > 0.0 else -1
                break
            if sign == 0:
                continue
            if n == cap:
                cap *= 2
                nr = np.empty((cap, 3), dtype=np.intp)
                nr[:n] = res[:n]
                res = nr
            res[n, 0] = i
            res[n, 1] = m
            res[n, 2] = sign
            n += 1
    return res[:n]
