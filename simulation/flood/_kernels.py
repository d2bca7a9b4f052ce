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
theta weighting and Manning friction implicit in the new discharge::

    b  = theta q + (1 - theta)/2 (q_left + q_right) - g h_f dt deta/dx
    q' (1 + a (k + |q'|)) = b,   a = g dt n^2 / h_f^(7/3),   k = sqrt(q^2 + q_t^2) - |q| >= 0
    q' = 2 b / ((1 + a k) + sqrt((1 + a k)^2 + 4 a |b|))

with ``h_f = max(eta_l, eta_r) - max(z_l, z_r)`` and ``q' = 0`` where
``h_f <= hmin``. Bates et al. and de Almeida et al. put the *old* ``|q|`` in
the denominator (semi-implicit); its amplification of a discharge error,
``(1 - K)/(1 + K)`` with ``K = g dt S / u``, tends to -1 for thin fast sheet
flow on steep slopes, which then broke into cells emptying and refilling every
step (11 m/s instead of Manning's 0.6 m/s on a 15 % plane at dt = 2 s). The
root of the quadratic (friction made implicit and solved in closed form, as in
Hou et al. 2018, J. Hydrol. 564, 357-366, for shallow overland flow) has the
same steady state (Manning) and the monotone amplification ``1/(1 + 2K)``.

Isotropy: Manning's friction acts on the discharge *vector*, ``a |q_vec| q``.
With each face's own ``|q|`` only, uniform flow at an angle ``alpha`` to the
grid carried ``(|cos alpha| + |sin alpha|)^(1/2)`` times Manning's discharge
(2^(1/4) at 45 deg). As in itzi (``q_norm`` in partial_inertia_q.pyx), the
transverse discharge at a face, ``q_t``, is the mean of the four old faces
across it (boundary faces: the edge cell's two). The magnitude
``sqrt(q'^2 + q_t^2)`` is taken as ``|q'| + k`` with ``k`` from the old
discharges (exact where ``q' = q``, and the slope-1 bound of the square root
otherwise), which keeps the closed-form root: for uniform steady flow in any
direction ``q' = q`` solves ``q (1 + a |q_vec|) = b``, Manning's normal flow
exactly; ``k = 0`` along the axes gives the form above bit for bit; and as
``k >= 0`` only adds friction, ``|q'|`` never exceeds the along-axis root, which
keeps its sign and its monotone, unconditional stability. The
engine scales ``1 - theta`` to the CFL step and puts the face velocity into
the Courant number (``FloodModel.stable_dt``). Boundary codes: 0 closed, 1 free outflow (the water-surface
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
from llvmlite import ir as llvm_ir
from numba import config as numba_config
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

WALL = 1.0e9  # bed elevation given to blocked cells: h_f there is always 0

CLOSED, FREE, STAGE, FLUX = 0, 1, 2, 3

TILE = 256  # columns per tile of the row sums (fixed on the grid: see _cont_row)


@njit(cache=True, inline="always")
def _friction_q(qb, grad, hf, q0, qt, n2, dt, g):
    # Manning friction implicit in the new discharge with the transverse discharge ``qt`` held (see the module
    # docstring): q' (1 + a (k + |q'|)) = b, k = sqrt(q0^2 + qt^2) - |q0|; hf^(7/3) as hf^2 * cbrt(hf)
    bq = qb - g * hf * dt * grad
    a = g * dt * n2 / (hf * hf * np.cbrt(hf))
    dn = 1.0 + a * (np.sqrt(q0 * q0 + qt * qt) - abs(q0))
    return 2.0 * bq / (dn + np.sqrt(dn * dn + 4.0 * a * abs(bq)))


@njit(cache=True, inline="always")
def _boundary_q(code, outward, h_in, z_in, eta_in, eta_nb, stage, q0, qt, n2, d, dt, g, hmin):
    """New flux on a boundary face, and its velocity ``q' / h_f`` (signed as ``q'``; 0 where ``h_f <= 10 hmin``,
    as on interior faces; an imposed inflow counts with the depth of its cell); ``outward`` is -1 (west/north)
    or +1 (east/south); ``qt`` the old transverse discharge at the face (the mean of the edge cell's two faces
    across it), for the friction term as on interior faces."""
    if code == 1:  # free outflow: continue the interior water-surface slope outwards
        hf = h_in
        if hf <= hmin:
            return 0.0, 0.0
        drop = eta_nb - eta_in
        if drop < 0.0 or eta_nb >= 0.5 * WALL:  # no slope to continue from a blocked neighbour
            drop = 0.0
        qo = outward * q0
        qn = _friction_q(qo, -drop / d, hf, q0, qt, n2, dt, g)
        if qn < 0.0:
            qn = 0.0
        return outward * qn, (outward * qn / hf if hf > 10.0 * hmin else 0.0)
    elif code == 2:  # fixed stage in a ghost cell over the same bed
        hf = max(eta_in, stage) - z_in
        if hf <= hmin:
            return 0.0, 0.0
        qo = outward * q0
        qn = _friction_q(qo, (stage - eta_in) / d, hf, q0, qt, n2, dt, g)
        return outward * qn, (outward * qn / hf if hf > 10.0 * hmin else 0.0)
    elif code == 3:  # imposed inflow per unit width (m2/s), carried in `stage`
        return -outward * stage, (-outward * stage / h_in if h_in > 10.0 * hmin else 0.0)
    return 0.0, 0.0


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


@njit(cache=True, inline="always")
def _face_velocity(za, ha, zb, hb, q, lim):
    # q / h_f on an interior face, h_f = max(eta_a, eta_b) - max(z_a, z_b) in the arrays' dtype as in _face;
    # 0 where h_f <= lim (10 hmin) or q is 0
    ea = za + ha
    eb = zb + hb
    em = ea if ea > eb else eb
    zm = za if za > zb else zb
    hf = em - zm
    return q / np.float64(hf) if (hf > lim) & (q != 0.0) else 0.0


@njit(cache=True, inline="always")
def _boundary_velocity(code, h_in, z_in, stage, q, lim):
    # q / h_f on a boundary face, h_f as in _boundary_q: the edge cell's depth (free outflow, imposed inflow), or
    # the ghost cell's level over the edge cell's bed (fixed stage); 0 where h_f <= lim, q is 0 or the face closed
    if q == 0.0:
        return 0.0
    if code == 2:
        eta = z_in + h_in
        hf = (eta if eta > stage else stage) - z_in
    elif code == 1 or code == 3:
        hf = h_in
    else:
        return 0.0
    return q / np.float64(hf) if hf > lim else 0.0


@njit(cache=True, error_model="numpy")
def cell_velocity(z, hf_h, h, qx, qy, bcw, bce, bcn, bcs, stw, ste, stn, sts, hmin, rows, cols, u, v):
    """Velocity components (u east, v south, m/s) of the cells ``(rows[k], cols[k])`` into ``u[k]``, ``v[k]``,
    made of the faces' velocities ``q / h_f`` as the step's speeds (``max_velocity``, ``hazard``) are: ``h_f`` the
    face's flow depth from the depths ``hf_h`` as the momentum update computes it (:func:`_face`,
    :func:`_boundary_q`; boundary codes ``bc*`` and stages ``st*`` per edge cell), faces where ``h_f <= 10 hmin``
    count 0; ``u`` the mean of the cell's two x faces', ``v`` of its two y faces'; 0 where ``h <= hmin``.

    The step takes ``h_f`` from the depths it starts from (``hf_h`` those, ``h`` the depths after it, ``qx``,
    ``qy`` its new discharges); the state's own velocity passes the same depths twice."""
    ny, nx = h.shape
    lim = 10.0 * hmin
    for k in range(rows.shape[0]):
        j = rows[k]
        i = cols[k]
        if not h[j, i] > hmin:
            u[k] = 0.0
            v[k] = 0.0
            continue
        if i == 0:
            uw = _boundary_velocity(bcw[j], hf_h[j, 0], z[j, 0], stw[j], qx[j, 0], lim)
        else:
            uw = _face_velocity(z[j, i - 1], hf_h[j, i - 1], z[j, i], hf_h[j, i], qx[j, i], lim)
        if i == nx - 1:
            ue = _boundary_velocity(bce[j], hf_h[j, i], z[j, i], ste[j], qx[j, nx], lim)
        else:
            ue = _face_velocity(z[j, i], hf_h[j, i], z[j, i + 1], hf_h[j, i + 1], qx[j, i + 1], lim)
        if j == 0:
            vn = _boundary_velocity(bcn[i], hf_h[0, i], z[0, i], stn[i], qy[0, i], lim)
        else:
            vn = _face_velocity(z[j - 1, i], hf_h[j - 1, i], z[j, i], hf_h[j, i], qy[j, i], lim)
        if j == ny - 1:
            vs = _boundary_velocity(bcs[i], hf_h[j, i], z[j, i], sts[i], qy[ny, i], lim)
        else:
            vs = _face_velocity(z[j, i], hf_h[j, i], z[j + 1, i], hf_h[j + 1, i], qy[j + 1, i], lim)
        u[k] = 0.5 * (uw + ue)
        v[k] = 0.5 * (vn + vs)


@njit(cache=True, parallel=True)
def triad(a, b, c, s):
    """STREAM triad ``a = b + s * c`` (for the bandwidth bound in the benchmark)."""
    for k in prange(a.shape[0]):
        a[k] = b[k] + s * c[k]


# ----------------------------------------------------------------------------- fused single-pass step
#
# One sweep per step does momentum, continuity and maxima, updating ``h``,
# ``qx`` and ``qy`` in place: per row j (north to south) the x faces of row j
# and the y face (j-1 | j) get their new discharge from the old depths, then
# row j-1, whose old depth nobody needs any more, gets its continuity update.
# Each thread sweeps its own block of rows; the y faces on block edges (and
# the north/south boundaries) are computed before the sweep from the old state
# into a small buffer and written back after it, so no thread reads a row that
# another one has already updated. Memory traffic: one read of z, n2 (float32),
# act, one read and write of h, qx, qy (and of the maxima when tracked).
#
# Dry regions (skip_dry): per row only the columns where something can change are
# swept (see _sweep_ranges): the span of the cells wet after the last two steps in
# this row and its neighbours, one cell wider, and the cells that get rain, an
# inflow or water through a boundary face. The new wet span of each row comes from
# two short scans from its ends after the update, so tracking costs no extra pass.
# A face between two cells of depth +0.0 gets +0.0, and a dry cell with +0.0 all
# round and no rain keeps +0.0 and its maxima; the result is the dense sweep's bit
# for bit (the row sums are added over fixed tiles, see _cont_row).


def _f64_bits(x):
    """Bit pattern of a float64 as a uint64 (plain-Python version; jitted below)."""
    return np.float64(x).view(np.uint64)


def _f64_sbits(x):
    """Bit pattern of a float64 as an int64: ordered as the values for x >= 0, negative for x < 0
    (plain-Python version; jitted below)."""
    return np.float64(x).view(np.int64)


def _bits_f64(b):
    """The float64 whose bit pattern is the uint64 ``b`` (plain-Python version; jitted below)."""
    return float(np.uint64(b).view(np.float64))


@intrinsic
def _bitcast_f2i(typingctx, x):
    if isinstance(x, types.Float) and x.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], llvm_ir.IntType(64))
        return types.uint64(types.float64), codegen
    return None


@intrinsic
def _bitcast_f2s(typingctx, x):
    if isinstance(x, types.Float) and x.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], llvm_ir.IntType(64))
        return types.int64(types.float64), codegen
    return None


@intrinsic
def _bitcast_i2f(typingctx, b):
    if isinstance(b, types.Integer) and b.bitwidth == 64 and not b.signed:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], llvm_ir.DoubleType())
        return types.float64(types.uint64), codegen
    return None


def _fmax(a, b):
    """max(a, b) of two floats of one type (plain-Python version; jitted below as llvm.maxnum)."""
    return a if a > b else b


@intrinsic
def _maxnum(typingctx, a, b):
    # llvm.maxnum rather than compare-and-select: LLVM turns ``x[i] = v if v > x[i] else x[i]`` into a
    # masked store, which is microcoded and slow on AMD Zen; a maxnum store is a plain store.
    if isinstance(a, types.Float) and a == b:
        def codegen(context, builder, sig, args):
            lty = context.get_value_type(sig.args[0])
            fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(lty, [lty, lty]),
                                                f"llvm.maxnum.f{a.bitwidth}")
            # nnan: a plain vmaxpd (with NaN handling the backend makes a masked store again); a NaN
            # depth stops the run anyway (the storage sum is checked every step)
            return builder.call(fn, args, fastmath=("nnan",))
        return a(a, a), codegen
    return None


if not numba_config.DISABLE_JIT:  # plain Python (NUMBA_DISABLE_JIT=1) keeps the numpy versions above
    _f64_bits = _bitcast_f2i  # noqa: F811
    _f64_sbits = _bitcast_f2s  # noqa: F811
    _fmax = _maxnum  # noqa: F811
    _bits_f64 = _bitcast_i2f  # noqa: F811


# 4/3 of the bits of 1.0, tuned: first guess within 3.5 % for any x. Unsigned: AVX2 has logical but no
# arithmetic 64-bit vector shifts, and int64 >> would keep the face loops from vectorising. bits/3 from the
# high word: (b >> 32) * 0x55555556 >> 32 is the high word / 3 (a 32 x 32 -> 64 bit vpmuludq), kept in the high
# word by the mask.
_RCBRT_MAGIC = np.uint64(0x553EF10000000000)
_U32, _THIRD32, _HIGH32 = np.uint64(32), np.uint64(0x55555556), np.uint64(0xFFFFFFFF00000000)
# column loops over a range [lo, hi) run on uint64 indices: numba adds a negative-index wraparound to a signed
# index that LLVM cannot prove >= 0 (it can for range(1, n)), and that keeps the loop from vectorising
_U1 = np.uint64(1)


@njit(cache=True, inline="always")
def _uint(i):
    return np.uint64(i)


@njit(cache=True, inline="always", error_model="numpy")
def _rcbrt(x):
    """x^(-1/3) for a float64 x > 0 without division or libm (so face loops vectorise).

    The exponent-bit guess (magic - bits(x)/3) is within 3.5 %; two fourth-order
    steps of y <- y (1 + e/3 + 2e^2/9 + 14e^3/81), e = 1 - x y^3, bring it to
    < 7e-16 relative for 1e-6 <= x <= 1e6 (checked in the tests).
    """
    t = (_f64_bits(x) >> _U32) * _THIRD32 & _HIGH32  # (bits / 3) to 2^-20 of the exponent: one vpmuludq
    y = _bits_f64(_RCBRT_MAGIC - t)
    # (x y)(y y) and (y e) p rather than left to right: the same operations, a shorter dependency chain
    e = 1.0 - (x * y) * (y * y)
    y = y + (y * e) * (1.0 / 3.0 + e * (2.0 / 9.0 + e * (14.0 / 81.0)))
    e = 1.0 - (x * y) * (y * y)
    y = y + (y * e) * (1.0 / 3.0 + e * (2.0 / 9.0 + e * (14.0 / 81.0)))
    return y


@njit(cache=True, inline="always", error_model="numpy")
def _face(za, ha, zb, hb, q0, qm, qp, n2sum, d, gdt, theta, w, hmin, qt):
    """New discharge on the face from cell a to cell b, and the face velocity ``q' / h_f`` (signed as ``q'``; its
    magnitude bounds the time step, and the cells' speeds are made of it; 0 where dry or ``h_f <= 10 hmin``);
    ``d`` = 1 / spacing, ``n2sum`` = n2a + n2b, ``gdt`` = g dt, ``qt`` the old transverse discharge at the face
    (mean of the four faces across it) for the friction term.

    Branch-free (select on h_f > hmin) and free of libm calls (``sqrt`` is an instruction), so that face loops
    vectorise; the friction term uses h_f^(-7/3) = r / h_f^2 with r = h_f^(-1/3) from :func:`_rcbrt`, the
    quadratic's root multiplied through by h_f^2, so there is one division, one square root and no power of r.
    """
    ea = za + ha
    eb = zb + hb
    em = ea if ea > eb else eb
    zm = za if za > zb else zb
    hf = em - zm
    wet = hf > hmin
    hs = float(hf) if wet else 1.0
    qb = theta * q0 + w * (qm + qp)
    # q' (1 + a (k + |q'|)) = bq, k = sqrt(q0^2 + qt^2) - |q0| (module docstring), a = f / hs^2 with
    # f = c' hs^(-1/3): q' = 2 bq / ((1 + a k) + sqrt((1 + a k)^2 + 4 a |bq|)), numerator and denominator times
    # hs^2: one division and no power of hs^(-1/3); k = 0 (qt = 0) is the along-axis form exactly
    hs2 = hs * hs
    bq = qb - (gdt * d) * hs * (eb - ea)
    r = _rcbrt(hs)
    f = (0.5 * gdt) * n2sum * r
    c = f * hs2
    dn = hs2 + f * (np.sqrt(q0 * q0 + qt * qt) - abs(q0))
    qn = 2.0 * bq * hs2 / (dn + np.sqrt(dn * dn + 4.0 * c * abs(bq)))
    qn = qn if wet else 0.0
    # the face velocity q / h_f (r^3 = 1 / h_f: no division) for the time step and the cells' speeds, where h_f >
    # 10 hmin: at a wet/dry edge shallower than that |q| / h_f is no transport speed (the scheme has no advection:
    # frictionless water receding off a shore keeps q as h_f -> 0, which would drive the step below min_dt), and
    # the positivity repair bounds the outflow there
    return qn, (qn * (r * r * r) if hf > 10.0 * hmin else 0.0)


@njit(cache=True, inline="always", error_model="numpy")
def _x_boundaries(z, h, n2, qx, qy, j, bw, be, sw, se, dx, dt, g, hmin):
    """New discharges of the west and east boundary faces of row ``j`` (from the old state: ``qy`` rows ``j`` and
    ``j + 1`` must still hold their old values), and their velocities ``q / h_f`` (signed).

    Indexes the 2D arrays: a row view costs a reference count in and out per array, which adds up over the
    rows that are otherwise skipped.
    """
    nx = z.shape[1]
    enb = z[j, 0] + h[j, 0] if nx == 1 else z[j, 1] + h[j, 1]
    qw, uw = _boundary_q(bw, -1.0, h[j, 0], z[j, 0], z[j, 0] + h[j, 0], enb, sw, qx[j, 0],
                         0.5 * (qy[j, 0] + qy[j + 1, 0]), np.float64(n2[j, 0]), dx, dt, g, hmin)
    k = nx - 1
    enb = z[j, k] + h[j, k] if nx == 1 else z[j, k - 1] + h[j, k - 1]
    qe, ue = _boundary_q(be, 1.0, h[j, k], z[j, k], z[j, k] + h[j, k], enb, se, qx[j, nx],
                         0.5 * (qy[j, k] + qy[j + 1, k]), np.float64(n2[j, k]), dx, dt, g, hmin)
    return qw, qe, uw, ue


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _faces_row(zu, hu, nu, zr, hr, nr, qxr, qxu2, qc, qprev_old, qnext, qw, qe, rdy, rdx, gdt, theta, w, hmin, lo, hi,
               ydo, vxo, vyo, uw, ue):
    """New discharges of the x faces of row r (in place in ``qxr``) and of the y faces between rows u (north)
    and r (in place in ``qc``), in one loop over the columns ``lo..hi-1``: row r is read once for both.

    The friction term of each face takes the old transverse discharge at the face, the mean of the four faces
    across it (the module docstring): for the y faces from ``qxu2``, the sums of the two old x discharges of row u
    around each column (``qxu2[i] = qx[u, i] + qx[u, i + 1]``, columns ``lo..hi-1``: a separate array of the old
    row, read at i and i + 1, kept this loop from vectorising), and the old ``qxr``; for the x faces from the old ``qc`` and ``qnext`` (the y faces south of
    row r, old). ``ydo`` False: the y faces are a by-product (``qc`` a scratch copy of the old y faces north of
    row r, for the x faces' friction) and count for nothing in the returned speed.

    The faces' velocities ``q / h_f`` (signed; 0 where ``h_f <= 10 hmin``, see :func:`_face`) go into ``vxo``
    (nx + 1: the x faces updated, and ``uw``, ``ue`` of the boundary faces) and ``vyo`` (nx: the y faces
    updated), for the cells' speeds (:func:`_cont_row`); the other entries keep what they held.

    The y faces of columns ``lo..hi-1`` and the interior x faces ``lo..hi`` are updated (the rest keep their
    value). The old value of the x face to the west is carried along; the boundary x faces, ``qw`` and ``qe``
    (:func:`_x_boundaries`), are written last, as their old values are neighbours of faces 1 and nx - 1. ``qprev_old`` holds the old discharges of the y faces north of row u
    and receives the old ones of ``qc`` (columns ``lo..hi-1``). Returns the largest face velocity
    ``|q| / h_f`` (m/s) of the faces updated (for the time step, see ``FloodModel.stable_dt``).
    """
    nx = zr.shape[0]
    mb = 0
    if lo < hi:
        i0 = lo
        if lo == 0:
            t = qc[0]
            qc[0], un = _face(zu[0], hu[0], zr[0], hr[0], t, qprev_old[0], qnext[0],
                              np.float64(nu[0]) + np.float64(nr[0]), rdy, gdt, theta, w, hmin,
                              0.25 * (qxu2[0] + (qxr[0] + qxr[1])))
            vyo[0] = un
            un = abs(un) if ydo else 0.0
            ub = _f64_sbits(np.float64(un))
            mb = ub if ub > mb else mb
            qprev_old[0] = t
            yold = t
            i0 = 1
        else:
            yold = qc[lo - 1]  # not updated here: old
        qold = qxr[i0 - 1]
        for i in range(_uint(i0), _uint(hi)):  # unsigned: no negative-index wraparound, so it vectorises
            t = qc[i]
            q0 = qxr[i]
            qc[i], un = _face(zu[i], hu[i], zr[i], hr[i], t, qprev_old[i], qnext[i],
                              np.float64(nu[i]) + np.float64(nr[i]), rdy, gdt, theta, w, hmin,
                              0.25 * (qxu2[i] + (q0 + qxr[i + _U1])))
            vyo[i] = un
            un = abs(un) if ydo else 0.0
            qprev_old[i] = t
            qxr[i], ux = _face(zr[i - _U1], hr[i - _U1], zr[i], hr[i], q0, qold, qxr[i + _U1],
                               np.float64(nr[i - _U1]) + np.float64(nr[i]), rdx, gdt, theta, w, hmin,
                               0.25 * ((yold + t) + (qnext[i - _U1] + qnext[i])))
            vxo[i] = ux
            ux = abs(ux)
            qold = q0
            yold = t
            # the max face speed from the bit patterns (an integer max vectorises; speeds are >= 0)
            ub = _f64_sbits(np.float64(un if un > ux else ux))
            mb = ub if ub > mb else mb
        if hi < nx:  # the x face east of the last column (between hi - 1 and hi)
            qxr[hi], ux = _face(zr[hi - 1], hr[hi - 1], zr[hi], hr[hi], qxr[hi], qold, qxr[hi + 1],
                                np.float64(nr[hi - 1]) + np.float64(nr[hi]), rdx, gdt, theta, w, hmin,
                                0.25 * ((yold + qc[hi]) + (qnext[hi - 1] + qnext[hi])))
            vxo[hi] = ux
            ub = _f64_sbits(np.float64(abs(ux)))
            mb = ub if ub > mb else mb
    qxr[0] = qw
    qxr[nx] = qe
    vxo[0] = uw
    vxo[nx] = ue
    return _bits_f64(np.uint64(mb))


@njit(cache=True, error_model="numpy", fastmath={"contract", "reassoc", "nsz"})
def _cont_row(hr, qxr, qyt, qyb, ar, rgr, rain_u, dgr, drain_u, igr, inf_u, has_loss,
              dt, rdx, rdy, hmin, wet_thr, t_end, track, hmr, vmr, twr, hzr, st, lo, hi, scan, lv, uxr, uyt, uyb):
    """Continuity, rain, losses and maxima of the cells ``lo..hi-1`` of one row (in place in ``hr``); into
    ``st`` the row's drainage and infiltration (depth units), its number of negative or NaN depths and its
    max depth; the columns of the first and last cell with a depth other than +0.0 into ``lv`` (``scan``;
    else ``lo, hi``), ``(nx, 0)`` where there is none.

    ``rgr``, ``dgr``, ``igr`` are the row's rain, drainage and infiltration grids (m/s) or a row of zeros;
    blocked cells (``ar`` 0) carry no flux and get no rain. Each new depth is computed and rounded once.
    The loss sums are reassociated (so they vectorise) but only inside tiles of :data:`TILE` columns fixed on
    the grid, whose sums are added in order: the tiles that hold ``lo..hi-1`` sum as they would in the whole
    row, where the other cells (dry, still) add +0.0, so the sums do not depend on ``lo, hi``. (Storage and
    rain are not summed here: the caller has the rain volume from the rates and the storage from the depths.)
    Losses never take more than the water there. The time of first wetting is set where the max depth first
    exceeds ``wet_thr`` (``twr`` is read only in rows where that happens).

    The cell's speed (for ``vmr`` and the hazard ``hzr``) is made of its faces' velocities ``q / h_f`` with
    ``h_f`` the face's flow depth (``uxr`` the row's x faces, ``uyt``, ``uyb`` the y faces north and south; from
    :func:`_faces_row`, where a face whose discharge is 0 counts 0 whatever its entry holds): ``u`` the mean of
    the two x faces', ``v`` of the two y faces', speed ``hypot(u, v)``, where the cell is wet (``h > hmin``). As
    in itzi (``solve_h_tile`` in partial_inertia_h.pyx). The cell's own depth would make the discharge pouring
    over a bank into the thin sheet below it a speed of 15 m/s; the face's flow depth is the depth that carries
    the discharge in the momentum equation.
    """
    nx = hr.shape[0]
    n_neg = 0
    # the row max as the max of the bit patterns read as int64 (same order for h >= 0, below 0 for h < 0,
    # above +inf for NaN): an integer max reduction vectorises, a floating-point one does not
    mb = 0
    for i in range(_uint(lo), _uint(hi)):  # unsigned: no negative-index wraparound, so it vectorises
        rd = (rain_u + rgr[i]) * dt * ar[i]
        hv = hr[i] + dt * ((qxr[i] - qxr[i + _U1]) * rdx + (qyt[i] - qyb[i]) * rdy) + rd
        hr[i] = hv
        n_neg += 0 if hv >= 0.0 else 1  # NaN too: the caller then sums the storage, which shows it
        b = _f64_sbits(np.float64(hv))
        mb = b if b > mb else mb
    s_drain = 0.0
    s_inf = 0.0
    if has_loss:  # over whole tiles: a loss on a dry cell changes nothing and adds +0.0
        tlo = lo - lo % TILE
        thi = min(hi + (TILE - hi % TILE) % TILE, nx) if lo < hi else tlo
        mb = 0
        for t0 in range(tlo, thi, TILE):
            td = 0.0
            ti = 0.0
            for i in range(_uint(t0), _uint(min(t0 + TILE, thi))):
                ld = (drain_u + dgr[i]) * dt
                li = (inf_u + igr[i]) * dt
                hv = hr[i]
                tot = ld + li
                on = hv >= 0.0 and tot > 0.0
                lim = tot >= hv
                tsafe = tot if tot > 0.0 else 1.0
                ld2 = hv * (ld / tsafe) if lim else ld
                li2 = hv - ld2 if lim else li
                hn = hv - ((hv if lim else ld + li) if on else 0.0)  # arithmetic, not a select with the old value
                hr[i] = hn
                td += ld2 if on else 0.0
                ti += li2 if on else 0.0
                b = _f64_sbits(np.float64(hn))
                mb = b if b > mb else mb
            s_drain += td
            s_inf += ti
    if track:
        n_new = 0
        for i in range(_uint(lo), _uint(hi)):
            hv = hr[i]
            hm = hmr[i]
            n_new += 1 if (hv > wet_thr) & (hm <= wet_thr) else 0  # the max depth crosses it: first wetting
            hmr[i] = _fmax(hm, hmr.dtype.type(hv))
            wet = hv > hmin
            # the faces' velocities q / h_f (0 where h_f <= 10 hmin, as for the time step); a face not swept this
            # step carries q = 0 and counts 0 (its entry may hold another row's)
            uw = uxr[i] if qxr[i] != 0.0 else 0.0
            ue = uxr[i + _U1] if qxr[i + _U1] != 0.0 else 0.0
            vn = uyt[i] if qyt[i] != 0.0 else 0.0
            vs = uyb[i] if qyb[i] != 0.0 else 0.0
            u = 0.5 * (uw + ue)
            v = 0.5 * (vn + vs)
            # speed in float32 (the maxima are float32): the square root costs half as much as in float64
            sp = np.sqrt(np.float32(u * u + v * v))
            sp = sp if wet else np.float32(0.0)
            vmr[i] = _fmax(vmr[i], vmr.dtype.type(sp))
            hz = hv * (sp + 0.5) if wet else 0.0
            hzr[i] = _fmax(hzr[i], hzr.dtype.type(hz))
        # a conditional store in the loop above would be a slow masked store; this scalar loop stops at the
        # last cell that got wet now (those are the cells above the threshold without a wetting time)
        i = lo if lo > 0 else 0
        while n_new > 0:
            if hmr[i] > wet_thr and math.isnan(twr[i]):
                twr[i] = t_end
                n_new -= 1
            i += 1
    st[0] = s_drain
    st[1] = s_inf
    st[2] = n_neg
    st[3] = _bits_f64(np.uint64(mb))
    if scan:  # the wet columns: scalar scans from both ends (they stop at the first wet cell)
        a = lo
        while a < hi and _f64_bits(np.float64(hr[a])) == 0:
            a += 1
        b = hi
        while b > a and _f64_bits(np.float64(hr[b - 1])) == 0:
            b -= 1
        if a < b:
            lv[0] = a
            lv[1] = b
        else:
            lv[0] = nx
            lv[1] = 0
    else:
        lv[0] = lo
        lv[1] = hi


@njit(cache=True, inline="always")
def _hull(lv, r, lo, hi):
    """The columns ``lo..hi-1`` widened to cover row ``r`` of the ranges ``lv`` (ny, 2) (empty: lo >= hi)."""
    return min(lo, lv[r, 0]), max(hi, lv[r, 1])


@njit(cache=True)
def _sweep_ranges(live_a, live_b, frc, nx, dense):
    """Per row, the columns whose faces are swept (``yr``) and whose cells are updated (``cr``, before rounding
    to tiles), from the wet columns after the last two steps (``live_a``, ``live_b``; (nx, 0) for none) and
    the columns that must be updated anyway (``frc``: rain, inflows, boundary inflow).

    A face can change only next to a cell that is wet now or carries a discharge, which it can only where a
    neighbour was wet a step ago; a cell only next to such a face. So the faces of row r are swept over the
    wet columns of rows r - 1, r, r + 1 (the y faces north of row r + 1 take their neighbours' old values from
    this row's sweep), the cells over those columns and one more on each side.
    """
    ny = live_a.shape[0]
    yr = np.empty((ny, 2), dtype=np.int64)
    cr = np.empty((ny, 2), dtype=np.int64)
    if dense:
        for r in range(ny):
            yr[r, 0] = 0
            yr[r, 1] = nx
            cr[r, 0] = 0
            cr[r, 1] = nx
        return yr, cr
    for r in range(ny):
        lo, hi = nx, 0
        for k in range(max(r - 1, 0), min(r + 2, ny)):
            lo, hi = _hull(live_a, k, lo, hi)
            lo, hi = _hull(live_b, k, lo, hi)
        yr[r, 0] = lo
        yr[r, 1] = hi
        if lo < hi:
            lo = max(lo - 1, 0)
            hi = min(hi + 1, nx)
        lo, hi = _hull(frc, r, lo, hi)
        cr[r, 0] = lo
        cr[r, 1] = hi
    return yr, cr


@njit(cache=True)
def _balanced_blocks(yr, cr, nb):
    """Row starts of ``nb`` blocks of rows of about equal work (faces weigh 3, cells 1, a row 16)."""
    ny = yr.shape[0]
    cost = np.empty(ny + 1, dtype=np.float64)
    cost[0] = 0.0
    for r in range(ny):
        cost[r + 1] = cost[r] + 16.0 + 3.0 * max(yr[r, 1] - yr[r, 0], 0) + max(cr[r, 1] - cr[r, 0], 0)
    start = np.empty(nb + 1, dtype=np.int64)
    start[0] = 0
    start[nb] = ny
    r = 0
    for c in range(1, nb):
        target = cost[ny] * c / nb
        while r < ny and cost[r + 1] <= target:
            r += 1
        start[c] = min(max(r, start[c - 1] + 1), ny - (nb - c))
    return start


@njit(cache=True, parallel=True, error_model="numpy")
def fused_step(z, h, n2, act, qx, qy, bcw, bce, bcn, bcs, stw, ste, stn, sts, src_r, src_c, src_dh,
               rain_g, rain_u, drain_g, drain_u, inf_g, inf_u, dt, dx, dy, g, theta, hmin,
               t_end, wet_thr, track, hmax, vmax, twet, hazmax, stats, nblocks, live_a, live_b, live_out, force,
               dense):
    """One whole step, in place in ``h``, ``qx``, ``qy`` (and the maxima when ``track``).

    Momentum on every face from the old state; then the inflow point sources ``src_dh`` (depth added
    to cell ``(src_r, src_c)``), continuity with rain and losses, and the maxima. Rates are in m/s;
    ``*_g`` grids are used when their shape is ``h.shape`` (otherwise pass a ``(1, 1)`` dummy).
    ``stats[j]`` receives, for row ``j`` (float64): drainage and infiltration (depth units summed over the
    row), the number of negative (or NaN) depths, the row's maximum depth. ``n2`` may be float32; ``nblocks``
    blocks of rows of about equal work are swept in parallel (at most ``ny``); the result does not depend
    on it (the block-edge faces are computed by the same row kernel as the others).

    Dry regions: ``live_a`` and ``live_b`` (ny, 2) int64 hold, per row, the columns ``[lo, hi)`` between
    the first and last cell whose depth was not +0.0 after the last step and the one before ((nx, 0) for
    none); ``force`` (ny, 2) the columns that must be updated whatever the depth (cells with rain > 0;
    inflow cells, uniform rain and boundary inflow are added here). Only the faces and cells that can change
    are swept (:func:`_sweep_ranges`); the others would keep their value bit for bit, so the result is the
    dense sweep's (``dense`` True sweeps everything). ``live_out`` receives the wet columns after this step.
    Returns the number of columns whose faces were swept and of cells updated, summed over the rows, and the
    largest velocity ``|q| / h_f`` of the faces, boundary faces included (m/s; for the next time step).
    """
    ny, nx = z.shape
    w = 0.5 * (1.0 - theta)
    rdx = 1.0 / dx
    rdy = 1.0 / dy
    gdt = g * dt
    grid_rain = rain_g.shape[0] == ny and rain_g.shape[1] == nx
    grid_drain = drain_g.shape[0] == ny and drain_g.shape[1] == nx
    grid_inf = inf_g.shape[0] == ny and inf_g.shape[1] == nx
    nb = max(1, min(nblocks, ny))
    # cells updated whatever their depth: the caller's (rain), inflow cells, everything under uniform rain,
    # and (below) cells next to a boundary face that carries a discharge
    frc = force.copy()
    if rain_u > 0.0:
        for r in range(ny):
            frc[r, 0] = 0
            frc[r, 1] = nx
    for k in range(src_r.shape[0]):
        r = src_r[k]
        frc[r, 0] = min(frc[r, 0], src_c[k])
        frc[r, 1] = max(frc[r, 1], src_c[k] + 1)
    # the north and south boundary faces, from the old state
    bnd = np.empty((2, nx), dtype=qy.dtype)
    bndv = np.empty((2, nx), dtype=np.float64)  # their velocities q / h_f (for the cells' speeds)
    umax_edge = 0.0
    for e in range(2):
        j = 0 if e == 0 else ny
        jin = 0 if j == 0 else ny - 1
        jnb = jin if ny == 1 else (1 if j == 0 else ny - 2)
        outward = -1.0 if j == 0 else 1.0
        codes = bcn if j == 0 else bcs
        stage = stn if j == 0 else sts
        for i in range(nx):
            q, ub = _boundary_q(codes[i], outward, h[jin, i], z[jin, i], z[jin, i] + h[jin, i],
                                z[jnb, i] + h[jnb, i], stage[i], qy[j, i], 0.5 * (qx[jin, i] + qx[jin, i + 1]),
                                np.float64(n2[jin, i]), dy, dt, g, hmin)
            bnd[e, i] = q
            bndv[e, i] = ub
            umax_edge = max(umax_edge, abs(ub))
            if _f64_bits(np.float64(q)) != 0:
                frc[jin, 0] = min(frc[jin, 0], i)
                frc[jin, 1] = max(frc[jin, 1], i + 1)
    yr, cr = _sweep_ranges(live_a, live_b, frc, nx, dense)
    start = _balanced_blocks(yr, cr, nb)
    # the y faces on inner block edges, from the old state, by the row kernel (on copies)
    edge = np.empty((nb + 1, nx), dtype=qy.dtype)
    edge[0] = bnd[0]
    edge[nb] = bnd[1]
    edgev = np.empty((nb + 1, nx), dtype=np.float64)  # their velocities q / h_f (zeroed by loops, see zrow)
    for c in range(1, nb):
        for i in range(nx):
            edgev[c, i] = 0.0
    edgev[0] = bndv[0]
    edgev[nb] = bndv[1]
    xv = np.empty(nx + 1, dtype=np.float64)  # the velocities of the x faces computed on copies: not used
    for c in range(1, nb):
        j = start[c]
        edge[c] = qy[j]
        prev = qy[j - 1].copy()
        qxj = qx[j].copy()
        pu = np.empty(nx, dtype=qx.dtype)
        for i in range(nx):
            pu[i] = qx[j - 1, i] + qx[j - 1, i + 1]
        u = _faces_row(z[j - 1], h[j - 1], n2[j - 1], z[j], h[j], n2[j], qxj, pu, edge[c], prev, qy[j + 1],
                       0.0, 0.0, rdy, rdx, gdt, theta, w, hmin, yr[j, 0], yr[j, 1], True, xv, edgev[c], 0.0, 0.0)
        umax_edge = max(umax_edge, u)
    nsrc = src_r.shape[0]
    # zeroed by plain loops, and summed by one below: np.zeros and .sum() would each be a parallel region of
    # their own (a thread wake-up and barrier; milliseconds when another process holds a core); one per step
    zrow = np.empty(nx, dtype=h.dtype)
    for i in range(nx):
        zrow[i] = 0.0
    has_loss = grid_drain or grid_inf or drain_u > 0.0 or inf_u > 0.0
    swept = np.empty((nb, 2), dtype=np.int64)
    umax = np.empty(nb, dtype=np.float64)
    for c in range(nb):
        swept[c, 0] = 0
        swept[c, 1] = 0
        umax[c] = 0.0
    for c in prange(nb):
        a = start[c]
        b = start[c + 1]
        old = qy[a].copy()
        scratch = np.zeros((3, nx), dtype=qy.dtype)
        # the sums of the old x discharges around each column of the last two rows (alternating), for the
        # friction of the next row's y faces
        xo = np.empty((2, nx), dtype=qx.dtype)
        # the faces' velocities q / h_f of the last two rows (alternating): x faces of row j in fv[j & 1], the y
        # faces north of row j in gv[j & 1] (the block's first: edgev[c]); sv takes the by-product y faces of row a
        fv = np.zeros((2, nx + 1), dtype=np.float64)
        gv = np.zeros((2, nx), dtype=np.float64)
        sv = np.empty(nx, dtype=np.float64)
        for j in range(a, b + 1):
            if j < b:
                if j + 1 < b:  # the columns whose y faces row j + 1 sweeps
                    for i in range(yr[j + 1, 0], yr[j + 1, 1]):
                        xo[j & 1, i] = qx[j, i] + qx[j, i + 1]
                qw, qe, uw, ue = _x_boundaries(z, h, n2, qx, qy, j, bcw[j], bce[j], stw[j], ste[j], dx, dt, g, hmin)
                umax[c] = max(umax[c], max(abs(uw), abs(ue)))
                if yr[j, 0] >= yr[j, 1]:  # nothing to sweep (and no row views to make)
                    qx[j, 0] = qw
                    qx[j, nx] = qe
                    fv[j & 1, 0] = uw
                    fv[j & 1, nx] = ue
                elif j > a:
                    u = _faces_row(z[j - 1], h[j - 1], n2[j - 1], z[j], h[j], n2[j], qx[j], xo[(j - 1) & 1], qy[j],
                                   old, qy[j + 1], qw, qe, rdy, rdx, gdt, theta, w, hmin, yr[j, 0], yr[j, 1], True,
                                   fv[j & 1], gv[j & 1], uw, ue)
                    umax[c] = max(umax[c], u)
                else:  # the block's first y face is an edge face (done before the sweep): y faces into scratch, a
                    # copy of the old ones (qy[a] is written back after the sweep) for the x faces' friction
                    for i in range(nx):
                        scratch[0, i] = qy[j, i]
                    u = _faces_row(z[j], h[j], n2[j], z[j], h[j], n2[j], qx[j], scratch[2], scratch[0], scratch[1],
                                   qy[j + 1], qw, qe, rdy, rdx, gdt, theta, w, hmin, yr[j, 0], yr[j, 1], False,
                                   fv[j & 1], sv, uw, ue)
                    umax[c] = max(umax[c], u)
                swept[c, 0] += max(yr[j, 1] - yr[j, 0], 0)
                if _f64_bits(np.float64(qw)) != 0:
                    cr[j, 0] = 0
                    cr[j, 1] = max(cr[j, 1], 1)
                if _f64_bits(np.float64(qe)) != 0:
                    cr[j, 0] = min(cr[j, 0], nx - 1)
                    cr[j, 1] = nx
            if j > a:  # row j - 1 is no longer needed by any face: update it
                r = j - 1
                lo = cr[r, 0]
                hi = cr[r, 1]
                if lo >= hi:  # dry and still: nothing changes (and no row views to make)
                    for k in range(4):
                        stats[r, k] = 0.0
                    live_out[r, 0] = nx
                    live_out[r, 1] = 0
                    continue
                swept[c, 1] += hi - lo
                for k in range(nsrc):
                    if src_r[k] == r:
                        h[r, src_c[k]] += src_dh[k]
                qyt = edge[c] if r == a else qy[r]
                qyb = edge[c + 1] if r == b - 1 else qy[r + 1]
                rgr = rain_g[r] if grid_rain else zrow
                dgr = drain_g[r] if grid_drain else zrow
                igr = inf_g[r] if grid_inf else zrow
                hmr = hmax[r] if track else hmax[0]
                vmr = vmax[r] if track else vmax[0]
                twr = twet[r] if track else twet[0]
                hzr = hazmax[r] if track else hazmax[0]
                uyt = edgev[c] if r == a else gv[r & 1]
                uyb = edgev[c + 1] if r == b - 1 else gv[(r + 1) & 1]
                _cont_row(h[r], qx[r], qyt, qyb, act[r], rgr, rain_u, dgr, drain_u, igr, inf_u, has_loss,
                          dt, rdx, rdy, hmin, wet_thr, t_end, track, hmr, vmr, twr, hzr, stats[r], lo, hi,
                          not dense, live_out[r], fv[r & 1], uyt, uyb)
    for c in range(nb + 1):
        j = start[c]
        for i in range(nx):
            qy[j, i] = edge[c, i]
    nf = 0
    nc = 0
    um = umax_edge
    for c in range(nb):
        nf += swept[c, 0]
        nc += swept[c, 1]
        um = max(um, umax[c])
    return nf, nc, um
