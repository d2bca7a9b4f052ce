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
        if drop < 0.0:
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


@njit(cache=True, parallel=True, error_model="numpy")
def flux_step(z, h, n2, qx, qy, qxn, qyn, bcw, bce, bcn, bcs, stw, ste, stn, sts,
              dt, dx, dy, g, theta, hmin):
    """One momentum update: new face discharges ``qxn``, ``qyn`` from ``h``, ``qx``, ``qy``."""
    ny, nx = z.shape
    w = 0.5 * (1.0 - theta)
    for j in prange(ny):
        # west boundary face
        zc = z[j, 0]
        ec = zc + h[j, 0]
        enb = ec if nx == 1 else z[j, 1] + h[j, 1]
        qxn[j, 0] = _boundary_q(bcw[j], -1.0, h[j, 0], zc, ec, enb, stw[j], qx[j, 0], n2[j, 0], dx, dt, g, hmin)
        zl = zc
        el = ec
        for i in range(nx):
            zc = z[j, i]
            ec = zc + h[j, i]
            if i > 0:  # x face i between (j, i-1) and (j, i)
                hf = max(el, ec) - max(zl, zc)
                if hf > hmin:
                    q0 = qx[j, i]
                    qb = theta * q0 + w * (qx[j, i - 1] + qx[j, i + 1])
                    qxn[j, i] = _friction_q(qb, (ec - el) / dx, hf, q0, 0.5 * (n2[j, i - 1] + n2[j, i]), dt, g)
                else:
                    qxn[j, i] = 0.0
            if j > 0:  # y face j between (j-1, i) and (j, i)
                zu = z[j - 1, i]
                eu = zu + h[j - 1, i]
                hf = max(eu, ec) - max(zu, zc)
                if hf > hmin:
                    q0 = qy[j, i]
                    qb = theta * q0 + w * (qy[j - 1, i] + qy[j + 1, i])
                    qyn[j, i] = _friction_q(qb, (ec - eu) / dy, hf, q0, 0.5 * (n2[j - 1, i] + n2[j, i]), dt, g)
                else:
                    qyn[j, i] = 0.0
            else:  # north boundary face
                enb = ec if ny == 1 else z[1, i] + h[1, i]
                qyn[0, i] = _boundary_q(bcn[i], -1.0, h[0, i], zc, ec, enb, stn[i], qy[0, i], n2[0, i], dy, dt, g, hmin)
            if j == ny - 1:  # south boundary face
                enb = ec if ny == 1 else z[j - 1, i] + h[j - 1, i]
                qyn[ny, i] = _boundary_q(bcs[i], 1.0, h[j, i], zc, ec, enb, sts[i], qy[ny, i], n2[j, i], dy, dt, g, hmin)
            zl = zc
            el = ec
        # east boundary face
        zc = z[j, nx - 1]
        ec = zc + h[j, nx - 1]
        enb = ec if nx == 1 else z[j, nx - 2] + h[j, nx - 2]
        qxn[j, nx] = _boundary_q(bce[j], 1.0, h[j, nx - 1], zc, ec, enb, ste[j], qx[j, nx], n2[j, nx - 1], dx, dt, g, hmin)


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
def repair_negative(hn, qx, qy, dt, rdx, rdy, max_sweeps):
    """Scale down the outgoing fluxes of cells whose depth went negative.

    Each reduction moves the same volume (in depth units) from the receiving
    neighbour back to the cell, so total storage is unchanged, except across a
    boundary face, where the outflow shrinks. Returns ``(boundary_gain, clamp)``
    in depth units (multiply by the cell area): the storage gained from reduced
    boundary outflow and the water added by clamping left-over negatives.
    """
    ny, nx = hn.shape
    gain = 0.0
    for _ in range(max_sweeps):
        found = False
        for j in range(ny):
            for i in range(nx):
                hv = hn[j, i]
                if hv >= 0.0:
                    continue
                found = True
                # outgoing volumes (depth units) through the four faces
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
                    d = ow * cut
                    qx[j, i] = qx[j, i] * f
                    hn[j, i] += d
                    if i > 0:
                        hn[j, i - 1] -= d
                    else:
                        gain += d
                if oe > 0.0:
                    d = oe * cut
                    qx[j, i + 1] = qx[j, i + 1] * f
                    hn[j, i] += d
                    if i < nx - 1:
                        hn[j, i + 1] -= d
                    else:
                        gain += d
                if on > 0.0:
                    d = on * cut
                    qy[j, i] = qy[j, i] * f
                    hn[j, i] += d
                    if j > 0:
                        hn[j - 1, i] -= d
                    else:
                        gain += d
                if os_ > 0.0:
                    d = os_ * cut
                    qy[j + 1, i] = qy[j + 1, i] * f
                    hn[j, i] += d
                    if j < ny - 1:
                        hn[j + 1, i] -= d
                    else:
                        gain += d
        if not found:
            break
    clamp = 0.0
    for j in range(ny):
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
