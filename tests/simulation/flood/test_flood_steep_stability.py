"""Steep terrain: the result must not depend on the time-step cap, and speeds must stay physical.

The review case: rain on 10-20 % slopes. The semi-implicit friction of Bates et al. (2010) / de Almeida et
al. (2012), ``q' = (q - g h dt S) / (1 + g dt n^2 |q| / h^(7/3))`` with the *old* ``|q|``, has the
amplification ``(1 - K) / (1 + K)`` for a discharge perturbation, ``K = g dt S / u``: near -1 for thin fast
sheet flow, where the flow then breaks into cells that empty and refill every step (0.3 mm left of a 9.6 mm
sheet, 11 m/s instead of 0.57 m/s at max_dt = 2 s). With friction implicit in the new discharge (the root of
the quadratic, Hou et al. 2018) the steady state is the same (Manning) and the map is monotone.

Reference values: the kinematic-wave steady state of a plane of slope S under rain r, at distance L from the
top, ``q = r L``, ``h = (q n / sqrt(S))^(3/5)``, ``u = q / h`` (Manning normal flow; e.g. Chow, Maidment & Mays
1988, Applied Hydrology, sec. 9.6). The local inertial steady state on a uniform plane is exactly Manning with
the water-surface slope; its slope differs from the bed's by dh/dx, which here is below 1e-4 against S >= 0.1,
so the depth and speed agree with the kinematic values to well under 1 %: 5 % is allowed.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulation.flood import BoundaryConditions, FloodModel, FloodParameters, Hyetograph, Inflow

DX, N, RAIN, NY, NX, T = 5.0, 0.03, 100.0, 40, 6, 1200.0


def _plane(slope, max_dt, theta=0.7):
    z = (np.arange(NY)[::-1] * DX * slope)[:, None] + np.zeros((1, NX))
    bc = BoundaryConditions().set("south", "free")
    m = FloodModel(z, DX, manning=N, rain=Hyetograph.uniform(RAIN, 1e5), boundaries=bc,
                   params=FloodParameters(max_dt=max_dt, theta=theta, gauge_interval=None))
    return m, m.run(T)


def _kinematic(slope):
    q = RAIN / 3.6e6 * (np.arange(NY) + 1) * DX
    h = (q * N / np.sqrt(slope)) ** 0.6
    return h, q / h


@pytest.mark.parametrize("slope", [0.1, 0.15, 0.2, 0.3])
@pytest.mark.parametrize("theta", [0.7, 1.0])
def test_rain_on_steep_plane_is_manning_normal_flow(slope, theta):
    """Default max_dt (2 s): the depths are the kinematic steady state and no cell runs faster than Manning's
    normal-flow speed of the plane's foot (times 1.05, see the module docstring); before: 11 m/s at 15 %."""
    m, r = _plane(slope, 2.0, theta)
    hk, uk = _kinematic(slope)
    assert np.nanmax(r.max_velocity) <= 1.05 * uk.max(), (np.nanmax(r.max_velocity), uk.max())
    # every column of the lower half at the steady depth (the upper rows reach it first)
    lower = slice(NY // 2, NY)
    np.testing.assert_allclose(r.depth[lower], np.repeat(hk[lower, None], NX, axis=1), rtol=0.05)
    assert abs(m.mass_balance()["relative_error"]) < 1e-12


@pytest.mark.parametrize("slope", [0.15, 0.3])
def test_steep_plane_converges_in_the_time_step(slope):
    """max_dt 2 s and 0.5 s (a quarter) give the same depths: agreement to 1e-3 relative (the scheme is first
    order in time and this is a steady state), the same wet cells; before: a 9.6 mm sheet against 0.3 mm at
    the foot. The top rows, 1-1.6 mm deep, hold water just above hmin = 1 mm, below which a face carries no
    flow: there the cut-off moves the depth by up to 1.5e-5 m with the step (measured), so 5e-5 m is allowed
    in absolute terms."""
    _, a = _plane(slope, 2.0)
    _, b = _plane(slope, 0.5)
    np.testing.assert_allclose(a.depth, b.depth, rtol=1e-3, atol=5e-5)
    assert ((a.max_depth > 0.005) == (b.max_depth > 0.005)).all()
    deep = b.max_depth > 2e-3  # the speed of a sheet at the hmin cut-off is q / (1 mm): 3 % off there
    np.testing.assert_allclose(a.max_velocity[deep], b.max_velocity[deep], rtol=1e-2)


def _valley(max_dt):
    """A V-shaped valley (side slopes 8 %) falling 2 % to a free south edge, 80 mm/h for 20 min: the
    sheet flow on the sides gathers into a channel 0.1-0.2 m deep."""
    ny, nx = 60, 41
    yy, xx = np.mgrid[0:ny, 0:nx] * DX
    z = 0.08 * np.abs(xx - xx[0, nx // 2]) + 0.02 * (yy.max() - yy)
    bc = BoundaryConditions().set("south", "free")
    m = FloodModel(z, DX, manning=N, rain=Hyetograph.uniform(80.0, 1200.0), boundaries=bc,
                   params=FloodParameters(max_dt=max_dt, gauge_interval=None))
    return m, m.run(1800.0)


def test_valley_outflow_does_not_depend_on_the_time_step_cap():
    """The theta weighting of de Almeida et al. (2012) smooths the discharges by a fixed share per step, a
    diffusion (1 - theta) dx^2 / (2 dt) that grew as max_dt shrank: on the sample city the outflow fell from
    36,300 to 26,700 m3 as max_dt went from 2 to 0.25 s. Scaled to the CFL step it converges: the outflow
    and the max depths with max_dt 2 s and 0.5 s agree to 0.5 % (first order in dt; measured 0.0x %)."""
    ma, a = _valley(2.0)
    mb, b = _valley(0.5)
    oa, ob = ma.mass_balance()["boundary_out"], mb.mass_balance()["boundary_out"]
    assert abs(oa - ob) <= 0.005 * ob, (oa, ob)
    assert np.nanmax(np.abs(a.max_depth - b.max_depth)) <= 0.005 * np.nanmax(b.max_depth)


def test_fast_deep_channel_flow_stays_near_manning():
    """Fast supercritical channel flow (10 % slope, n = 0.05, 3 m3/s over a 15 m wide strip: Manning normal
    depth 12.6 cm, 1.6 m/s, Froude 1.4, below the roll-wave threshold of about 1.5 for Manning friction, so
    uniform flow is the physical answer): the strip settles at Manning's normal flow (depth and discharge
    within 1 %, away from the inflow row and the outflow edge) and no cell ever reports more than twice its
    speed (the surge front on the dry bed: its thin tip reports discharge over a depth of millimetres)."""
    ny, nx, slope, n, q_in = 60, 3, 0.10, 0.05, 3.0  # m3/s into the top row, a third into each cell
    z = (np.arange(ny)[::-1] * DX * slope)[:, None] + np.zeros((1, nx))
    bc = BoundaryConditions().set("south", "free")
    inflows = [Inflow([0.0, 1e5], [q_in / nx] * 2, row=0, col=c) for c in range(nx)]
    m = FloodModel(z, DX, manning=n, boundaries=bc, inflows=inflows, params=FloodParameters(gauge_interval=None))
    r = m.run(600.0)
    qw = q_in / (nx * DX)  # m2/s
    h_n = (qw * n / np.sqrt(slope)) ** 0.6
    u_n = qw / h_n
    body = slice(10, ny - 3)
    np.testing.assert_allclose(m.h[body], h_n, rtol=0.01)
    np.testing.assert_allclose(m.qy[body], qw, rtol=0.01)
    assert np.nanmax(r.max_velocity[body]) <= 2.0 * u_n, (np.nanmax(r.max_velocity[body]), u_n)
