"""``FloodModel.velocity()`` and the gauges' ``speed_m_s`` use the face-based speed of ``max_velocity``.

A face's velocity is ``q / h_f`` (``h_f`` its flow depth, the one the momentum update uses; 0 where ``h_f <= 10
hmin``), ``u`` the mean of a cell's two x faces', ``v`` of its two y faces', speed ``hypot(u, v)`` where the cell
is deeper than ``hmin``. Before, both divided the faces' mean discharge by the *cell's* depth: at a cell below a
bank the river pours over, a thin sheet, that made a gauge show far more than the ``max_velocity`` of its cell.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from simulation.flood import FloodModel, FloodParameters, Gauge

sys.path.insert(0, str(Path(__file__).parent))
from test_flood_face_velocity import _bank, _manning_plane  # noqa: E402

DX = 5.0
F32 = 2.0**-23  # the maxima are kept in float32; the discharges too (the default dtype)


def _bank_with_gauges(drop, interval):
    """The bank of test_flood_face_velocity (crest cells 6-9 at 2.0 m, the drop behind it at cell 10), with a
    gauge in every cell of the middle row."""
    m0, z1, eta0 = _bank(drop)
    gauges = [Gauge(f"c{i}", row=1, col=i) for i in range(m0.shape[1])]
    m = FloodModel(m0.dem, DX, manning=0.03, initial_depth=m0.h.astype(np.float64), boundaries=m0.boundaries,
                   gauges=gauges, params=FloodParameters(gauge_interval=interval))
    return m, z1


@pytest.mark.parametrize("drop", [1.0, 3.0])
def test_gauge_speed_is_the_speed_counted_into_max_velocity(drop):
    """Gauges every 2 s over the bank's overtopping: no gauge reading exceeds its cell's ``max_velocity`` (float32
    rounding allowed), and on the floor below the drop, where the flow becomes steady, the largest reading comes
    within 2e-4 of the maximum. Before, the gauges (the faces' mean discharge over the
    cell's depth) exceeded max_velocity in 33 of the 40 cells: 3.04 m/s on the crest (col 7, the sheet there
    still thin) against its max_velocity of 1.20 m/s (drop 1 m) and 1.24 m/s (3 m); 4.46 against 3.11 m/s at
    the brink (col 9, drop 3 m)."""
    m, _ = _bank_with_gauges(drop, 2.0)
    r = m.run(600.0)
    g = r.gauges
    gmax = g.groupby("gauge")["speed_m_s"].max()
    vm = r.max_velocity[1]
    for i in range(m.shape[1]):
        assert gmax[f"c{i}"] <= vm[i] * (1 + 4 * F32) + 1e-7, (i, gmax[f"c{i}"], vm[i])
    # below the drop the flow is steady after a while: the gauges come close to the maximum there (which a step
    # between two readings may take: 5.2e-5 relative below it, measured)
    below = np.array([gmax[f"c{i}"] for i in range(11, 30)])
    np.testing.assert_allclose(below, vm[11:30], rtol=2e-4)


def test_gauge_speed_equals_the_step_speed_each_step():
    """Stepping by hand with a gauge every step (interval below the step): after each step the gauge reads the
    speed the step counted into ``max_velocity`` at that cell (reset before the step), in every cell of the
    row, during the overtopping's first 60 s when the land behind the bank fills (where the state's own
    velocity() differs, by one step's change of the flow depth)."""
    m, _ = _bank_with_gauges(3.0, 1e-3)
    n0 = len(m._gauge_rows)
    while m.time < 60.0:
        m.max_velocity[:] = 0.0
        m.step()
        rows = m._gauge_rows[n0:]
        n0 = len(m._gauge_rows)
        assert len(rows) == m.shape[1] and all(t == m.time for t, *_ in rows)
        sp = np.array([row[4] for row in rows])
        vm = m.max_velocity[1].astype(np.float64)
        np.testing.assert_allclose(sp, vm, rtol=4 * F32, atol=1e-7)
    assert m.max_velocity[1].max() > 2.0  # the overtopping is under way


@pytest.mark.parametrize("drop", [1.0, 3.0])
def test_velocity_after_the_overtopping_is_the_face_speed(drop):
    """At the end of the run (steady overflow) velocity() is the faces' q / h_f, mean per axis: computed here
    from the discharges and the flow depths h_f = max(eta_a, eta_b) - max(z_a, z_b); it equals the gauges' last
    reading, and stays within max_velocity. Before, the discharge over the cell's depth: 3.03 m/s (drop 1 m) and
    4.37 m/s (3 m) at the brink (col 9, 7 cm deep) against 2.29 and 3.02 m/s now, and max_velocity 2.37 and
    3.10 m/s there."""
    m, z1 = _bank_with_gauges(drop, 50.0)
    r = m.run(600.0)
    u, v = m.velocity()
    z = m.z.astype(np.float64)[1]
    h = m.h.astype(np.float64)[1]
    eta = z + h
    hf = np.maximum(eta[:-1], eta[1:]) - np.maximum(z[:-1], z[1:])
    q = m.qx[1, 1:-1].astype(np.float64)
    fv = np.where(hf > 10 * m.params.hmin, q / np.where(hf > 0, hf, 1.0), 0.0)
    # faces 1..nx-1 interior; the west face a stage boundary (h_f = max(eta, stage) - z), the east one free (h)
    west = m.qx[1, 0] / (max(eta[0], 2.3) - z[0])
    east = m.qx[1, -1] / h[-1]
    faces = np.concatenate([[west], fv, [east]])
    want = 0.5 * (faces[:-1] + faces[1:])
    np.testing.assert_allclose(u[1], want, rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(v) < 1e-9)
    last = r.gauges[r.gauges["time_s"] == r.gauges["time_s"].max()].set_index("gauge")["speed_m_s"]
    np.testing.assert_allclose([last[f"c{i}"] for i in range(m.shape[1])], np.hypot(u[1], v[1]), rtol=1e-6, atol=1e-9)
    assert np.all(np.hypot(u, v) <= r.max_velocity * (1 + 4 * F32) + 1e-7)


def test_velocity_of_uniform_flow_is_manning():
    """Uniform flow down a plane (S = 0.002, n = 0.03, q = 0.5 m2/s fed at the west edge, free at the east):
    velocity() is Manning's normal velocity v = h^(2/3) S^(1/2) / n = q / h_n, h_n = (q n / S^(1/2))^(3/5), in
    every cell, the boundary cells included (fed through an imposed inflow, and a free outflow); the scheme's
    steady state is Manning's normal flow exactly (depth within 5e-9 of h_n after 1 h, test_flood_face_velocity),
    the discharges are float32: 1e-6 relative. The gauges read the same."""
    m, hn, vn = _manning_plane([Gauge("w", row=1, col=0), Gauge("mid", row=1, col=30), Gauge("e", row=2, col=59)],
                               600.0)
    r = m.run(3600.0)
    u, v = m.velocity()
    np.testing.assert_allclose(u, vn, rtol=1e-6)
    np.testing.assert_allclose(v, 0.0, atol=1e-9)
    last = r.gauges[r.gauges["time_s"] == 3600.0]
    np.testing.assert_allclose(last["speed_m_s"], vn, rtol=1e-6)


def test_velocity_is_zero_where_dry_and_follows_a_hand_set_state():
    """velocity() is a function of the state: discharges set by hand give q / h_f per face, the mean per axis.
    Row 1: a pool 0.5 m deep (bed 0, cols 0-2) pours over its edge into col 3, whose bed lies 0.3 m lower and
    holds a sheet 2 cm deep: the face between them has h_f = 0.5 - 0 = 0.5 m, so col 3 moves at 0.5 (0.1 / 0.5 +
    0) = 0.1 m/s (the closed east face carries nothing), where the faces' mean discharge over the cell's depth
    (before) made 0.5 x 0.1 / 0.02 = 2.5 m/s. A cell no deeper than hmin (row 2, col 3: 0.5 mm) is 0 even where
    its faces carry discharge."""
    z = np.zeros((3, 4))
    z[1, 3] = -0.3
    h = np.full((3, 4), 0.5)
    h[1, 3] = 0.02
    h[2, 3] = 0.0005
    m = FloodModel(z, DX, initial_depth=h)
    m.qx[1, 1] = 0.2
    m.qx[1, 2] = 0.4
    m.qx[1, 3] = 0.1
    m.qy[2, 1] = -0.3
    m.qx[2, 3] = 0.05
    m.state_changed()
    u, v = m.velocity()
    hd = m.h.astype(np.float64)
    assert u[1, 1] == pytest.approx(0.5 * (0.2 + 0.4) / hd[1, 1], rel=1e-6)  # flat bed, level water: h_f = h
    assert v[1, 1] == pytest.approx(0.5 * (-0.3) / hd[1, 1], rel=1e-6)
    assert v[2, 1] == pytest.approx(0.5 * (-0.3) / hd[2, 1], rel=1e-6)
    assert u[1, 2] == pytest.approx(0.5 * (0.4 / hd[1, 2] + 0.1 / hd[1, 2]), rel=1e-6)
    assert u[1, 3] == pytest.approx(0.5 * 0.1 / 0.5, rel=1e-6)
    assert u[2, 3] == 0.0 and v[2, 3] == 0.0
    assert u[2, 2] == pytest.approx(0.5 * 0.05 / hd[2, 2], rel=1e-6)  # the face to the dry cell counts for col 2
