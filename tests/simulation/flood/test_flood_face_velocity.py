"""The cells' speed (``max_velocity``, and the hazard that uses it) is made of the faces' velocities q / h_f.

``h_f`` is the face's flow depth, the depth the momentum equation uses; ``u`` is the mean of a cell's two x
faces' q / h_f, ``v`` of its two y faces', the speed ``hypot(u, v)`` (as itzi, ``solve_h_tile`` in
partial_inertia_h.pyx). Before, the speed was the mean discharge of the faces over the *cell's* depth: where
a river pours over a bank into a thin sheet, that made 15 m/s on the sample city (99.9th percentile 3.4 m/s).
"""

from __future__ import annotations

import numpy as np
import pytest

from simulation.flood import BoundaryConditions, FloodModel, FloodParameters

G = 9.81
DX = 5.0


def _manning_plane(gauges=(), gauge_interval=None):
    """A plane 3 x 60 cells (S = 0.002, n = 0.03) at Manning's normal depth h_n for q = 0.5 m2/s fed at the west
    edge, free at the east: ``(model, h_n, v_n)``."""
    n, s, q, nx = 0.03, 0.002, 0.5, 60
    hn = (q * n / np.sqrt(s)) ** 0.6
    vn = hn ** (2.0 / 3.0) * np.sqrt(s) / n
    z = np.tile(10.0 - s * DX * np.arange(nx), (3, 1))
    bc = BoundaryConditions().set("west", "flux", times=[0, 1e6], levels=[q, q]).set("east", "free")
    m = FloodModel(z, DX, manning=n, initial_depth=np.full(z.shape, hn), boundaries=bc, gauges=gauges,
                   params=FloodParameters(gauge_interval=gauge_interval))
    return m, hn, vn


def test_uniform_flow_speed_is_manning_normal_velocity():
    """Uniform flow down a plane (S = 0.002, n = 0.03, q = 0.5 m2/s fed at the west edge, free at the east): the
    speed of every cell is Manning's normal velocity v = h^(2/3) S^(1/2) / n = q / h_n, h_n = (q n / S^(1/2))^(3/5),
    and the hazard h_n (v + 0.5). The scheme's steady state on a uniform plane is Manning's normal flow exactly
    (the module docstring of _kernels.py; measured: depth within 5e-9 of h_n after 1 h), and the maxima are kept in
    float32 (6e-8 relative), so 1e-6 relative is allowed. The maxima are reset after the spin-up (from h_n at rest
    the drawdown from the free edge runs up the plane with speeds 25 % higher for a while)."""
    m, hn, vn = _manning_plane()
    m.run(3600.0)
    m.max_velocity[:] = 0.0
    m.hazard[:] = 0.0
    r = m.run(4000.0)
    np.testing.assert_allclose(r.max_velocity, vn, rtol=1e-6)
    np.testing.assert_allclose(r.hazard, hn * (vn + 0.5), rtol=1e-6)


def _bank(drop, ny=3, threads=None):
    """A river (bed 0, held at eta0 = 2.3 m by a stage boundary at the west edge) overtops a bank whose crest, at
    2.0 m, is 4 cells (20 m) wide; behind it the bed drops by ``drop`` m in one cell to a floor sloping 1 %, free at
    the east edge. The land behind the bank starts dry. Manning n = 0.03."""
    nx = 40
    z1 = np.zeros(nx)
    z1[6:10] = 2.0
    z1[10:] = 2.0 - drop - 0.01 * DX * np.arange(nx - 10)
    z = np.tile(z1, (ny, 1))
    eta0 = 2.3
    h0 = np.where(np.arange(nx) < 6, eta0 - z, 0.0)
    bc = BoundaryConditions().set("west", "stage", times=[0, 1e6], levels=[eta0, eta0]).set("east", "free")
    m = FloodModel(z, DX, manning=0.03, initial_depth=h0, boundaries=bc,
                   params=FloodParameters(gauge_interval=None, threads=threads))
    return m, z1, eta0


@pytest.mark.parametrize("drop", [1.0, 3.0])
def test_bank_overtopping_speed_within_the_energy_bound(drop):
    """Water that leaves a pool at rest with surface eta0 cannot be faster than sqrt(2 g (eta0 - z)) over a bed at
    z (Bernoulli, no losses; the approach speed in the 2.3 m deep pool, about 0.14 m/s, adds v^2 / 2g < 1 mm and is
    added to the head here). On the crest (H = eta0 - 2.0 = 0.3 m) that is 2.43 m/s; a broad-crested weir's
    critical speed sqrt(g h_c) = sqrt(2 g H / 3) = 1.40 m/s lies below it. Behind the drop the bound is
    sqrt(2 g (H + drop)). The brink cell, the crest's last, is held to the bound of the floor behind it: the local
    inertial scheme (no advection) draws the water there down to 0.07 m, against the free overfall's brink depth
    of 0.715 h_c = 0.16 m (Rouse 1936), so its face velocity, 4.3 m/s, is the scheme's, not this definition's.
    Before: 4.06 m/s on the crest's first cell, where the discharge pouring over the bank first ran into a film of
    a few cm (the cell depth in the denominator)."""
    m, z1, eta0 = _bank(drop)
    r = m.run(600.0)
    vm = r.max_velocity[1]
    q = float(m.qx[1, 1])
    head = eta0 + (q / eta0) ** 2 / (2.0 * G)
    crest = slice(6, 9)
    bound_crest = np.sqrt(2.0 * G * (head - z1[crest]))
    assert np.all(vm[crest] <= bound_crest), (vm[crest], bound_crest)
    behind = slice(9, None)
    bound_floor = np.sqrt(2.0 * G * (head - z1[10:].max()))
    assert vm[behind].max() <= bound_floor, (vm[behind].max(), bound_floor)
    # the hazard takes the same speed: h (v + 0.5) <= max depth (max speed + 0.5) in every cell
    wet = r.max_depth > 0
    assert np.all(r.hazard[wet] <= r.max_depth[wet] * (r.max_velocity[wet] + 0.5) * (1 + 1e-6))


def test_max_velocity_does_not_depend_on_the_blocks():
    """The faces' velocities cross the blocks of rows that the step sweeps in parallel (their edge faces): the
    maxima are the same bit for bit with 1 and 2 blocks (one per thread)."""
    first = None
    for threads in (1, 2):
        m, _, _ = _bank(3.0, ny=12, threads=threads)
        r = m.run(200.0)
        got = (r.max_velocity, r.hazard, r.max_depth)
        if first is None:
            first = got
        for a, b in zip(first, got):
            np.testing.assert_array_equal(a, b)
