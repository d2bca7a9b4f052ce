"""Roof runoff (``FloodModel(roof_runoff=RoofRunoff(...))``): the rain on blocked cells routed to open cells.

Without it the rain on buildings burned in as blocked cells was dropped (16 % of the design storm on the small
sample city, 20 % on the medium one). The checks are volumes: in a closed, flat box with no losses every drop
that falls stays, so the final storage is the rain times the area it fell on, to rounding (float64 sums of
10^2..10^4 terms: 1e-12 relative; we allow 1e-9).
"""

from __future__ import annotations

import numpy as np
import pytest

from simulation.flood import FloodModel, FloodParameters, Hyetograph, RainSeries, RoofRunoff
from twin_core.errors import ParameterError, RasterError

NY, NX, DX = 20, 24, 2.0
AREA = DX * DX
R_MM_H, T = 72.0, 600.0  # 72 mm/h for 10 min: 12 mm
R = R_MM_H / 3.6e6  # m/s
P = FloodParameters(gauge_interval=None)


def _block():
    """A 4 x 4 building in the middle of the box."""
    b = np.zeros((NY, NX), dtype=bool)
    b[8:12, 10:14] = True
    return b


def _ring(b):
    """The open cells that share an edge with a blocked cell (the building's walls), by hand."""
    ring = np.zeros_like(b)
    ring[:-1] |= b[1:]
    ring[1:] |= b[:-1]
    ring[:, :-1] |= b[:, 1:]
    ring[:, 1:] |= b[:, :-1]
    return ring & ~b


def _roofs(b, share=None):
    cells = np.flatnonzero(_ring(b))
    return RoofRunoff(b.astype(np.int64), np.stack([np.ones_like(cells), cells]), share)


@pytest.mark.parametrize("routed", [False, True])
def test_closed_flat_box_keeps_the_rain_on_the_whole_grid_with_routing(routed):
    """Closed flat box, uniform rain R for T: the stored volume is R T (whole grid area) with the roof routed and
    R T (open area) without; the balance closes either way and tells the two parts apart."""
    b = _block()
    m = FloodModel(np.zeros((NY, NX)), DX, blocked=b, rain=Hyetograph.uniform(R_MM_H, T),
                   roof_runoff=_roofs(b) if routed else None, params=P)
    m.run(T)
    mb = m.mass_balance()
    whole, roof = NY * NX * AREA, b.sum() * AREA
    stored = float(np.sum(m.h, dtype=np.float64)) * AREA
    assert stored == pytest.approx(R * T * (whole if routed else whole - roof), rel=1e-9)
    assert mb["rain"] == pytest.approx(R * T * (whole - roof), rel=1e-12)
    assert mb["roof_runoff"] == pytest.approx(R * T * roof if routed else 0.0, rel=1e-12)
    assert mb["rain_on_blocked"] == pytest.approx(0.0 if routed else R * T * roof, rel=1e-12)
    assert mb["rain"] + mb["roof_runoff"] + mb["rain_on_blocked"] == pytest.approx(R * T * whole, rel=1e-12)
    assert abs(mb["relative_error"]) < 1e-12
    assert np.all(m.h[b] == 0)


def test_roof_water_appears_next_to_the_building_first():
    """The 16 roof cells drain onto the 16 cells along the walls: they get twice the rain (rain_weight 2). After
    the first step from dry (no flow yet: every face sees two dry cells) their depth is exactly 2 R dt, R dt
    elsewhere; and they are the first cells to pass a wetting threshold."""
    b = _block()
    ring = _ring(b)
    rain = Hyetograph.uniform(R_MM_H, T)
    m = FloodModel(np.zeros((NY, NX)), DX, blocked=b, rain=rain, roof_runoff=_roofs(b), params=P)
    np.testing.assert_array_equal(m.rain_weight, np.where(b, 0.0, np.where(ring, 2.0, 1.0)))
    dt = m.step()
    assert np.all(m.h[ring] == 2 * R * dt) and np.all(m.h[~ring & ~b] == R * dt)
    p = FloodParameters(gauge_interval=None, wet_threshold=0.004)  # R T = 12 mm: every cell passes it
    res = FloodModel(np.zeros((NY, NX)), DX, blocked=b, rain=rain, roof_runoff=_roofs(b), params=p).run(T)
    far = np.zeros_like(b)
    far[:3], far[-3:] = True, True  # rows far from the building
    assert np.nanmax(res.time_of_wetting[ring]) < np.nanmin(res.time_of_wetting[far])


def test_shares_split_the_roof_rain():
    """A 2 x 3 roof draining only onto the three cells south of it, 1 : 2 : 1. After the first step the middle
    one holds half the roof's rain besides its own: R dt (1 + 6/2)."""
    b = np.zeros((NY, NX), dtype=bool)
    b[4:6, 5:8] = True
    south = np.array([6 * NX + 5, 6 * NX + 6, 6 * NX + 7])
    rr = RoofRunoff(b.astype(int), np.stack([np.ones(3, int), south]), share=[1.0, 2.0, 1.0])
    m = FloodModel(np.zeros((NY, NX)), DX, blocked=b, rain=Hyetograph.uniform(R_MM_H, T), roof_runoff=rr, params=P)
    np.testing.assert_allclose(m.rain_weight[6, 5:8], [2.5, 4.0, 2.5], rtol=1e-15)
    dt = m.step()
    np.testing.assert_allclose(m.h[6, 5:8], R * dt * np.array([2.5, 4.0, 2.5]), rtol=1e-15)
    assert m.h[3, 6] == R * dt  # north of the roof: no downpipe there


def test_unlabelled_blocked_cells_are_still_dropped():
    """Label 0 on a blocked cell (say nodata) keeps the old behaviour for it: its rain is dropped and reported."""
    b = _block()
    lab = b.astype(int)
    lab[8, 10] = 0  # one corner cell is not a roof
    cells = np.flatnonzero(_ring(b))
    rr = RoofRunoff(lab, np.stack([np.ones_like(cells), cells]))
    m = FloodModel(np.zeros((NY, NX)), DX, blocked=b, rain=Hyetograph.uniform(R_MM_H, T), roof_runoff=rr, params=P)
    m.run(T)
    mb = m.mass_balance()
    assert mb["rain_on_blocked"] == pytest.approx(R * T * AREA, rel=1e-12)
    assert mb["roof_runoff"] == pytest.approx(R * T * 15 * AREA, rel=1e-12)
    assert float(np.sum(m.h)) * AREA == pytest.approx(R * T * (NY * NX - 1) * AREA, rel=1e-9)


def test_raster_rain_routes_each_roof_cells_own_rain():
    """RainSeries: a storm cell over the north part of the box, then a weaker one everywhere. Roof 1 lies half
    under the first cell; its rain (only what fell on its own cells) goes south of it, onto a row the storm
    cell misses: that row must be updated although no rain falls on it (dry-region skipping is on). Roof 2's
    cells are unlabelled: dropped."""
    b = np.zeros((NY, NX), dtype=bool)
    b[4:8, 3:6] = True  # roof 1, rows 4..7; the storm cell covers rows 0..5
    b[12:14, 15:20] = True  # roof 2: label 0
    lab = np.zeros((NY, NX), dtype=int)
    lab[4:8, 3:6] = 1
    south = 8 * NX + np.arange(3, 6)  # row 8, dry under the storm cell
    g1 = np.zeros((NY, NX))
    g1[:6] = 90.0
    g2 = np.full((NY, NX), 20.0)
    rs = RainSeries([0.0, 300.0, 600.0], np.stack([g1, g2]))
    rr = RoofRunoff(lab, np.stack([np.ones(3, int), south]))
    m = FloodModel(np.zeros((NY, NX)), DX, blocked=b, rain=rs, roof_runoff=rr, params=P)
    assert m.params.skip_dry
    dt = m.step()
    roof1 = 2 * 3 * 90.0 / 3.6e6  # m/s x cells: the roof's two rows under the storm cell
    np.testing.assert_allclose(m.h[8, 3:6], roof1 / 3 * dt, rtol=1e-14)
    m.run(600.0)
    mb = m.mass_balance()
    vol = lambda g, mask: float(g[mask].sum()) / 3.6e6 * 300.0 * AREA  # noqa: E731
    assert mb["roof_runoff"] == pytest.approx(vol(g1, lab == 1) + vol(g2, lab == 1), rel=1e-12)
    assert mb["rain_on_blocked"] == pytest.approx(vol(g1, b & (lab == 0)) + vol(g2, b & (lab == 0)), rel=1e-12)
    assert mb["rain"] == pytest.approx(vol(g1, ~b) + vol(g2, ~b), rel=1e-12)
    kept = ~b | (lab == 1)  # everything but the unlabelled roof
    assert float(np.sum(m.h)) * AREA == pytest.approx(vol(g1, kept) + vol(g2, kept), rel=1e-9)
    assert abs(mb["relative_error"]) < 1e-12


def test_float32_balance_closes_with_routing():
    b = _block()
    m = FloodModel(np.zeros((NY, NX)), DX, blocked=b, rain=Hyetograph.uniform(R_MM_H, T), roof_runoff=_roofs(b),
                   params=FloodParameters(gauge_interval=None, dtype="float32"))
    m.run(T)
    mb = m.mass_balance()
    # float32 depths: each step's update rounds to 7 digits, and over the run the rounding adds up to ~1.5e-6 (with
    # or without routing; plain Python under NUMBA_DISABLE_JIT=1 rounds a little differently from the kernels)
    assert abs(mb["relative_error"]) < 1e-5
    assert mb["rain"] + mb["roof_runoff"] == pytest.approx(R * T * NY * NX * AREA, rel=1e-6)


# ----------------------------------------------------------------------------- bad input
def test_roof_runoff_bad_input_gets_clear_errors():
    b = _block()
    z = np.zeros((NY, NX))
    cells = np.flatnonzero(_ring(b))
    one = np.ones_like(cells)
    ok = dict(blocked=b, params=P)
    with pytest.raises(ParameterError, match="roof_runoff must be a RoofRunoff"):
        FloodModel(z, DX, roof_runoff=np.where(b, 0.0, 1.0), **ok)  # a bare weight field
    with pytest.raises(RasterError, match=r"roof_runoff.roof has shape \(3, 3\)"):
        FloodModel(z, DX, roof_runoff=RoofRunoff(np.zeros((3, 3), int), np.zeros((2, 0), int)), **ok)
    with pytest.raises(ParameterError, match="integer label array"):
        RoofRunoff(np.where(b, 1.0, 0.0), [one, cells])
    with pytest.raises(ParameterError, match="labels must be >= 0"):
        RoofRunoff(-b.astype(int), [one, cells])
    with pytest.raises(ParameterError, match=r"shape \(2, n\)"):
        RoofRunoff(b.astype(int), cells)
    with pytest.raises(ParameterError, match="roof labels, which are >= 1"):
        RoofRunoff(b.astype(int), [0 * one, cells])
    for bad in ([np.nan] * cells.size, [-1.0] * cells.size):
        with pytest.raises(ParameterError, match="share must be finite and >= 0"):
            RoofRunoff(b.astype(int), [one, cells], share=bad)
    with pytest.raises(ParameterError, match="one weight per outlet pair"):
        RoofRunoff(b.astype(int), [one, cells], share=[1.0, 2.0])
    with pytest.raises(ParameterError, match="labels 1 open cells as roof .first at row 0, col 0"):
        lab = b.astype(int)
        lab[0, 0] = 1
        FloodModel(z, DX, roof_runoff=RoofRunoff(lab, [one, cells]), **ok)
    with pytest.raises(ParameterError, match="outlet cell 480 is off the grid"):
        FloodModel(z, DX, roof_runoff=RoofRunoff(b.astype(int), [[1], [NY * NX]]), **ok)
    with pytest.raises(ParameterError, match="1 outlets on blocked cells .first at row 8, col 10"):
        FloodModel(z, DX, roof_runoff=RoofRunoff(b.astype(int), [[1, 1], [cells[0], 8 * NX + 10]]), **ok)
    with pytest.raises(ParameterError, match="roof 1 of roof_runoff has 16 cells but no outlet"):
        FloodModel(z, DX, roof_runoff=RoofRunoff(b.astype(int), np.zeros((2, 0), int)), **ok)
    with pytest.raises(ParameterError, match="no outlet with a share > 0"):
        FloodModel(z, DX, roof_runoff=RoofRunoff(b.astype(int), [one, cells], share=np.zeros(cells.size)), **ok)
