"""Numba kernels of the local-inertial flood engine.

Grid layout (all arrays C-contiguous, row 0 = north):

- cells ``(ny, nx)``: ``z`` bed elevation (blocked cells carry :data:`WALL`),
  ``h`` water depth, ``n2`` Manning n squared, ``act`` 1 for active cells;
- x faces ``qx`` ``(ny, nx + 1)``: face ``i`` lies between cells ``i - 1`` and
  ``i``; faces 0 and ``nx`` are the west and east boundaries;
- y faces ``qy`` ``(ny + 1, nx)``: face ``j`` lies between rows ``j - 1`` and
  ``j``; faces 0 and ``ny`` are the north and south boundaries.

Unit discharges ``q`` are in m2/s, positive towards +x (east) and +y (south,
increasing row index).

Scheme: Bates et al. (2010) local inertial with the de Almeida et al. (2012)
theta weighting and semi-implicit Manning friction::

    q' = (theta q + (1 - theta)/2 (q_left + q_right) - g h_f dt deta/dx)
         / (1 + g dt n^2 |q| / h_f^(7/3))

with ``h_f = max(eta_l, eta_r) - max(z_l, z_r)`` and ``q' = 0`` where
``h_f <= hmin``. Boundary codes: 0 closed, 1 free outflow (the water-surface
slope of the adjacent interior face is continued outwards; outflow only),
2 fixed stage (a ghost cell at the given water level over the same bed),
3 imposed inflow per unit width (m2/s, into the domain).

Positivity: where the outflow of a cell in one step exceeds its water, the
outgoing face fluxes of that cell are scaled down (:func:`repair_negative`),
which moves water between cells and so conserves mass exactly; whatever
rounding-level negative depth is left is clamped to zero and *counted* as
clamp volume in the mass balance.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

WALL = 1.0e9  # bed elevation given to blocked cells: h_f there is always 0

CLOSED, FREE, STAGE, FLUX = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _friction_q(qb, grad, hf, q0, n2, dt, g):
    # semi-implicit Manning friction; hf^(7/3) as hf^2 * cbrt(hf)
    return (qb - g * hf * dt * grad) / (1.0 + g * dt * n2 * abs(q0) / (hf * hf * np.cbrt(hf)))


@njit(cache=True, inline="always")
def _boundary_q(code, outward, h_in, z_in, eta_in, eta_nb, stage, q0, n2, d, dt, g, hmin):
    """New flux on a boundary face; ``outward`` is -1 (west/north) or +1 (east/south)."""
    if code == 1:  # free outflow: continue the interior water-surface slope outwards
        hf = h_in
        if hf <= hmin:
            return 0.0
        drop = eta_nb - eta_in
        if drop < 0.0 or eta_nb >= 0.5 * WALL:  # no slope to continue from a blocked neighbour
            drop = 0.0
        qo = outward * q0
        qn = _friction_q(qo, -drop / d, hf, q0, n2, dt, g)
        if qn < 0.0:
            qn = 0.0
        return outward * qn
    elif code == 2:  # fixed stage in a ghost cell over the same bed
        hf = max(eta_in, stage) - z_in
        if hf <= hmin:
            return 0.0
        qo = outward * q0
        qn = _friction_q(qo, (stage - eta_in) / d, hf, q0, n2, dt, g)
        return outward * qn
    elif code == 3:  # imposed inflow per unit width (m2/s), carried in `stage`
        return -outward * stage
    return 0.0


@njit(cache=True, inline="always")
def _cbrt(x):
    """Cube root of x > 0 by four Halley steps from x^(1/4): branch-free, so face loops vectorise
    (libm cbrt does not, and cost 4x more); relative error < 1e-15 for 1e-4 <= x <= 1e3."""
    y = math.sqrt(math.sqrt(x))
    y3 = y * y * y
    y = y * (y3 + 2.0 * x) / (2.0 * y3 + x)
    y3 = y * y * y
    y = y * (y3 + 2.0 * x) / (2.0 * y3 + x)
    y3 = y * y * y
    y = y * (y3 + 2.0 * x) / (2.0 * y3 + x)
    y3 = y * y * y
    y = y * (y3 + 2.0 * x) / (2.0 * y3 + x)
    return y


@njit(cache=True, inline="always")
def _face(za, ha, zb, hb, q0, qm, qp, n2a, n2b, d, dt, g, theta, w, hmin):
    """New discharge on the face from cell a to cell b (branch-free select on h_f > hmin); ``d`` = 1 / spacing."""
    ea = za + ha
    eb = zb + hb
    em = ea if ea > eb else eb
    zm = za if za > zb else zb
    hf = em - zm
    wet = hf > hmin
    hs = hf if wet else 1.0
    qb = theta * q0 + w * (qm + qp)
    # (qb - g h dt deta/dx) / (1 + g dt n2 |q| / h^(7/3)) with one division
    h73 = hs * hs * _cbrt(hs)
    qn = (qb - g * hs * dt * (eb - ea) * d) * h73 / (h73 + g * dt * 0.5 * (n2a + n2b) * abs(q0))
    return qn if wet else 0.0 * qn


@njit(cache=True, parallel=True, error_model="numpy")
def flux_step(z, h, n2, qx, qy, qxn, qyn, bcw, bce, bcn, bcs, stw, ste, stn, sts,
              dt, dx, dy, g, theta, hmin):
    """One momentum update: new face discharges ``qxn``, ``qyn`` from ``h``, ``qx``, ``qy``."""
    ny, nx = z.shape
    w = 0.5 * (1.0 - theta)
    rdx = 1.0 / dx
    rdy = 1.0 / dy
    for j in prange(ny):
        zr = z[j]
        hr = h[j]
        nr = n2[j]
        qr = qx[j]
        qo = qxn[j]
        for i in range(1, nx):  # x face i between (j, i-1) and (j, i)
            qo[i] = _face(zr[i - 1], hr[i - 1], zr[i], hr[i], qr[i], qr[i - 1], qr[i + 1], nr[i - 1], nr[i],
                          rdx, dt, g, theta, w, hmin)
        enb = zr[0] + hr[0] if nx == 1 else zr[1] + hr[1]
        qo[0] = _boundary_q(bcw[j], -1.0, hr[0], zr[0], zr[0] + hr[0], enb, stw[j], qr[0], nr[0], dx, dt, g, hmin)
        k = nx - 1
        enb = zr[k] + hr[k] if nx == 1 else zr[k - 1] + hr[k - 1]
        qo[nx] = _boundary_q(bce[j], 1.0, hr[k], zr[k], zr[k] + hr[k], enb, ste[j], qr[nx], nr[k], dx, dt, g, hmin)
        if j > 0:  # y face j between (j-1, i) and (j, i)
            zu = z[j - 1]
            hu = h[j - 1]
            nu = n2[j - 1]
            qc = qy[j]
            qa = qy[j - 1]
            qb = qy[j + 1]
            qyo = qyn[j]
            for i in range(nx):
                qyo[i] = _face(zu[i], hu[i], zr[i], hr[i], qc[i], qa[i], qb[i], nu[i], nr[i], rdy, dt, g, theta, w, hmin)
        else:  # north boundary
            for i in range(nx):
                enb = zr[i] + hr[i] if ny == 1 else z[1, i] + h[1, i]
                qyn[0, i] = _boundary_q(bcn[i], -1.0, hr[i], zr[i], zr[i] + hr[i], enb, stn[i], qy[0, i], nr[i],
                                        dy, dt, g, hmin)
        if j == ny - 1:  # south boundary
            for i in range(nx):
                enb = zr[i] + hr[i] if ny == 1 else z[j - 1, i] + h[j - 1, i]
                qyn[ny, i] = _boundary_q(bcs[i], 1.0, hr[i], zr[i], zr[i] + hr[i], enb, sts[i], qy[ny, i], nr[i],
                                         dy, dt, g, hmin)


@njit(cache=True, parallel=True, error_model="numpy")
def continuity_step(h, hn, qx, qy, act, rain_g, rain_u, drain_g, drain_u, inf_g, inf_u,
                    dt, rdx, rdy, t_end, hmin, wet_thr, track, hmax, vmax, twet, hazmax, stats):
    """Mass update ``hn`` from ``h`` and the new discharges, with rain and losses.

    Rates are in m/s; ``*_g`` grids are used when their shape is ``h.shape``
    (otherwise pass a ``(1, 1)`` dummy). ``stats[j]`` receives, in depth units
    summed over row ``j`` (float64): storage, rain, drainage, infiltration,
    number of negative depths, row maximum depth.
    """
    ny, nx = h.shape
    grid_rain = rain_g.shape[0] == ny and rain_g.shape[1] == nx
    grid_drain = drain_g.shape[0] == ny and drain_g.shape[1] == nx
    grid_inf = inf_g.shape[0] == ny and inf_g.shape[1] == nx
    for j in prange(ny):
        s_store = 0.0
        s_rain = 0.0
        s_drain = 0.0
        s_inf = 0.0
        n_neg = 0.0
        rowmax = 0.0
        for i in range(nx):
            if act[j, i] == 0:
                hn[j, i] = 0.0
                continue
            r = rain_u
            if grid_rain:
                r = r + rain_g[j, i]
            rd = r * dt
            hv = h[j, i] + dt * ((qx[j, i] - qx[j, i + 1]) * rdx + (qy[j, i] - qy[j + 1, i]) * rdy) + rd
            s_rain += rd
            if hv < 0.0:
                n_neg += 1.0
            else:
                ld = drain_u
                if grid_drain:
                    ld = ld + drain_g[j, i]
                li = inf_u
                if grid_inf:
                    li = li + inf_g[j, i]
                ld = ld * dt
                li = li * dt
                tot = ld + li
                if tot > 0.0:
                    if tot >= hv:  # cannot lose more than is there
                        ld = hv * (ld / tot)
                        li = hv - ld
                        hv = hv * 0.0
                    else:
                        hv = hv - ld - li
                    s_drain += ld
                    s_inf += li
            hn[j, i] = hv
            s_store += hv
            if hv > rowmax:
                rowmax = hv
            if track:
                if hv > hmax[j, i]:
                    hmax[j, i] = hv
                if hv > hmin:
                    u = 0.5 * (qx[j, i] + qx[j, i + 1]) / hv
                    v = 0.5 * (qy[j, i] + qy[j + 1, i]) / hv
                    sp = math.sqrt(u * u + v * v)
                    if sp > vmax[j, i]:
                        vmax[j, i] = sp
                    hz = hv * (sp + 0.5)
                    if hz > hazmax[j, i]:
                        hazmax[j, i] = hz
                if hv > wet_thr and math.isnan(twet[j, i]):
                    twet[j, i] = t_end
        stats[j, 0] = s_store
        stats[j, 1] = s_rain
        stats[j, 2] = s_drain
        stats[j, 3] = s_inf
        stats[j, 4] = n_neg
        stats[j, 5] = rowmax


@njit(cache=True, error_model="numpy")
def _take_back(hn, j, i, d, nj, ni, ny, nx, dirty):
    """Move ``d`` (depth units) back from neighbour (nj, ni) to (j, i); returns the boundary gain."""
    hn[j, i] += d
    if 0 <= nj < ny and 0 <= ni < nx:
        hn[nj, ni] -= d
        if hn[nj, ni] < 0.0:
            dirty[nj] = 1
        return 0.0
    return d


@njit(cache=True, error_model="numpy")
def repair_negative(hn, qx, qy, dt, rdx, rdy, max_sweeps, row_neg):
    """Scale down the outgoing fluxes of cells whose depth went negative.

    Each reduction moves the same volume (in depth units) from the receiving
    neighbour back to the cell, so total storage is unchanged, except across a
    boundary face, where the outflow shrinks. Only rows flagged in ``row_neg``
    (and rows a repair pushes negative) are visited. Returns
    ``(boundary_gain, clamp)`` in depth units (multiply by the cell area): the
    storage gained from reduced boundary outflow and the water added by
    clamping left-over (rounding-level) negatives.
    """
    ny, nx = hn.shape
    dirty = np.zeros(ny, dtype=np.uint8)
    touched = np.zeros(ny, dtype=np.uint8)
    for j in range(ny):
        if row_neg[j] > 0:
            dirty[j] = 1
    gain = 0.0
    for _ in range(max_sweeps):
        found = False
        for j in range(ny):
            if dirty[j] == 0:
                continue
            dirty[j] = 0
            touched[j] = 1
            for i in range(nx):
                hv = hn[j, i]
                if hv >= 0.0:
                    continue
                found = True
                ow = -qx[j, i] * dt * rdx if qx[j, i] < 0.0 else 0.0
                oe = qx[j, i + 1] * dt * rdx if qx[j, i + 1] > 0.0 else 0.0
                on = -qy[j, i] * dt * rdy if qy[j, i] < 0.0 else 0.0
                os_ = qy[j + 1, i] * dt * rdy if qy[j + 1, i] > 0.0 else 0.0
                out = ow + oe + on + os_
                if out <= 0.0:
                    continue
                f = 1.0 + hv / out  # fraction of the outflow that the water allows
                if f < 0.0:
                    f = 0.0
                cut = 1.0 - f
                if ow > 0.0:
                    qx[j, i] = qx[j, i] * f
                    gain += _take_back(hn, j, i, ow * cut, j, i - 1, ny, nx, dirty)
                if oe > 0.0:
                    qx[j, i + 1] = qx[j, i + 1] * f
                    gain += _take_back(hn, j, i, oe * cut, j, i + 1, ny, nx, dirty)
                if on > 0.0:
                    qy[j, i] = qy[j, i] * f
                    gain += _take_back(hn, j, i, on * cut, j - 1, i, ny, nx, dirty)
                if os_ > 0.0:
                    qy[j + 1, i] = qy[j + 1, i] * f
                    gain += _take_back(hn, j, i, os_ * cut, j + 1, i, ny, nx, dirty)
        if not found:
            break
    clamp = 0.0
    for j in range(ny):
        if touched[j] == 0 and dirty[j] == 0:
            continue
        for i in range(nx):
            if hn[j, i] < 0.0:
                clamp -= hn[j, i]
                hn[j, i] = 0.0
    return gain, clamp


@njit(cache=True, error_model="numpy")
def boundary_volume(qx, qy, dt, dx, dy):
    """Net volume (m3) entering through the domain edges in one step, and the outgoing part."""
    ny = qx.shape[0]
    nx = qy.shape[1]
    vin = 0.0
    vout = 0.0
    for j in range(ny):
        a = qx[j, 0] * dt * dy  # west face: +x flux enters
        b = -qx[j, nx] * dt * dy  # east face: -x flux enters
        if a >= 0.0:
            vin += a
        else:
            vout -= a
        if b >= 0.0:
            vin += b
        else:
            vout -= b
    for i in range(nx):
        a = qy[0, i] * dt * dx
        b = -qy[ny, i] * dt * dx
        if a >= 0.0:
            vin += a
        else:
            vout -= a
        if b >= 0.0:
            vin += b
        else:
            vout -= b
    return vin, vout


@njit(cache=True, parallel=True)
def triad(a, b, c, s):
    """STREAM triad ``a = b + s * c`` (for the bandwidth bound in the benchmark)."""
    for k in prange(a.shape[0]):
        a[k] = b[k] + s * c[k]
