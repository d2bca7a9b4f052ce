"""The friction term on boundary faces and the boundary faces' share of the time step."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulation.flood import BoundaryConditions, FloodModel, FloodParameters


def test_free_outflow_of_oblique_sheet_flow_is_manning():
    """Uniform flow at 45 deg down a plane of slope 1 % leaving through a free east edge: the boundary face carries
    Manning's x component h^(5/3) S^(1/2) cos(a) / n, as the interior faces do, and the edge cells keep the depth.

    The free outflow continues the water-surface slope outwards, so its friction balance is the interior one if the
    friction takes the discharge vector's magnitude (the transverse part from the edge cell's two y faces); with the
    face's own |q_x| only it carried (S cos a)^(1/2) h^(5/3) / n, 2^(1/4) = 1.19 times Manning's x component at 45 deg.
    Same plane as test_uniform_sheet_flow_follows_manning_in_any_direction (60 x 60 cells of 10 m, h = 0.1 m,
    n = 0.03), read in the middle of the east edge after 60 s, before the corners' disturbances (about 1.7 m/s) come
    near. Tolerance 1e-4: what is left of the relaxation to the friction balance after 60 s (time scale
    u / (g S) = 7 s; measured 2e-6 at the boundary face, depth to 1e-9).
    """
    S, n, h0, dx, N, a = 0.01, 0.03, 0.1, 10.0, 60, math.radians(45.0)
    c = (np.arange(N) + 0.5) * dx
    x, y = np.meshgrid(c, c)
    z = 10.0 - S * (x * math.cos(a) + y * math.sin(a))
    bc = BoundaryConditions().set("east", "free").set("south", "free")
    model = FloodModel(z, dx, manning=n, initial_depth=h0, boundaries=bc, params=FloodParameters(gauge_interval=None))
    model.run(60.0)
    j = N // 2
    h = float(model.h[j, N - 1])
    assert h == pytest.approx(h0, rel=1e-6)
    q_manning_x = h ** (5.0 / 3.0) * math.sqrt(S) / n * math.cos(a)
    assert float(model.qx[j, N]) == pytest.approx(q_manning_x, rel=1e-4)
    assert float(model.qy[N, j]) == pytest.approx(q_manning_x, rel=1e-4)  # south edge: sin(45) = cos(45)


@pytest.mark.parametrize("threads", [1, 2])
def test_boundary_faces_bound_the_time_step(threads):
    """The step's velocity bound u_max (FloodModel.stable_dt: dt = alpha sqrt(theta) dx / (u_max + sqrt(g h_max)))
    takes the boundary faces too: an imposed inflow of 0.5 m2/s into a 0.1 m pond enters at 5 m/s, and a free
    outflow at the far end of a 5 % slope runs faster than any interior face. After every step u_max is at least
    each boundary face's |q| / h (h of its edge cell before the step, where over 10 hmin as on interior faces; to
    rounding: 1e-12 relative), so the next step obeys the Courant condition there too."""
    ny, nx, dx = 6, 40, 5.0
    z = np.tile(10.0 - 0.05 * dx * np.arange(nx), (ny, 1))
    bc = (BoundaryConditions().set("west", "flux", times=[0.0, 1e5], levels=[0.5, 0.5])
          .set("east", "free").set("north", "free"))
    p = FloodParameters(gauge_interval=None, threads=threads)
    model = FloodModel(z, dx, manning=0.02, initial_depth=0.1, boundaries=bc, params=p)
    hmin = p.hmin
    worst = []
    for _ in range(200):
        h_old = model.h.copy()
        model.step()
        speeds = []
        for q, hb in ((model.qx[:, 0], h_old[:, 0]), (model.qx[:, -1], h_old[:, -1]),
                      (model.qy[0], h_old[0]), (model.qy[-1], h_old[-1])):
            speeds.append(np.where(hb > 10 * hmin, np.abs(q) / np.where(hb > 0, hb, 1.0), 0.0).max())
        ub = max(speeds)
        assert model._umax_now >= ub * (1.0 - 1e-12), (model.time, model._umax_now, ub)
        worst.append(ub)
        gh = math.sqrt(p.g * float(model.h.max()))
        assert model.stable_dt() <= p.alpha * math.sqrt(p.theta) * dx / (ub + gh) * (1.0 + 1e-12)
    assert max(worst) >= 4.0  # the inflow face is the fastest one: the test exercises the boundary faces
