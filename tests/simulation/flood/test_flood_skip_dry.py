"""Dry-region skipping (``FloodParameters.skip_dry``) against the dense sweep, bit for bit.

Skipping leaves out only faces and cells whose new value would be their old one (a face between two cells
of depth +0.0 gets +0.0, a dry cell with no discharge around it, no rain and no inflow stays +0.0 and leaves
its maxima as they are), and the row sums are added over tiles fixed on the grid. So the tolerance is zero:
depths, discharges, maxima, times of wetting, the mass balance and the adaptive steps must agree in every
bit, in float64 and float32, on one thread and on two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulation.flood import BoundaryConditions, FloodModel, FloodParameters, Hyetograph, Inflow, RainSeries, RoofRunoff

NY, NX, DX = 48, 600, 5.0  # 600 columns: two whole tiles of the row sums and a part one


def _plane(ny=NY, nx=NX):
    yy, xx = np.mgrid[0:ny, 0:nx] * DX
    return 100.0 - 0.001 * xx - 0.0005 * yy


def _mound(ny=NY, nx=NX, cy=0.5, cx=0.4, r=60.0, top=2.0):
    yy, xx = np.mgrid[0:ny, 0:nx] * DX
    return np.maximum(0.0, top - ((xx - cx * nx * DX) ** 2 + (yy - cy * ny * DX) ** 2) / r**2 * top)


def _buildings(ny=NY, nx=NX):
    b = np.zeros((ny, nx), dtype=bool)
    for r0 in range(4, ny - 6, 12):
        for c0 in range(200, nx - 20, 40):
            b[r0:r0 + 6, c0:c0 + 15] = True
    return b


def _roofs(ny=NY, nx=NX):
    """Each building of :func:`_buildings` drains onto the row south of it: rain lands on cells out of the patches."""
    from scipy import ndimage

    b = _buildings(ny, nx)
    lab, _ = ndimage.label(b)
    south = np.zeros_like(b)
    south[1:] = b[:-1] & ~b[1:]
    cells = np.flatnonzero(south)
    return RoofRunoff(lab, np.stack([lab.ravel()[cells - nx], cells]))


def _rain_patches(ny=NY, nx=NX):
    g1 = np.zeros((ny, nx))
    g1[10:20, 400:470] = 80.0  # a storm cell over part of the grid
    g1[30, 550] = 20.0
    g2 = np.zeros((ny, nx))
    g2[25:40, 30:90] = 50.0  # then elsewhere
    return RainSeries([0.0, 60.0, 120.0, 1e9], np.stack([g1, g2, np.zeros((ny, nx))]))


CASES = {
    "mound": dict(initial_depth=_mound()),
    "raster rain on part of the grid": dict(rain=_rain_patches()),
    "point inflow into a dry grid": dict(inflows=[Inflow([0.0, 100.0, 200.0], [5.0, 8.0, 0.0], row=30, col=333)]),
    "stage boundary into a dry grid": dict(
        boundaries=BoundaryConditions().set("west", "stage", cells=slice(10, 30), times=[0.0, 1.0], levels=[101.0, 101.0])),
    "flux boundary on the south edge, free east edge": dict(
        boundaries=BoundaryConditions().set("south", "flux", cells=slice(300, 320), times=[0.0, 1.0], levels=[0.5, 0.5])
        .set("east", "free")),
    "blocked buildings, inflow and rain patches": dict(
        blocked=_buildings(), rain=_rain_patches(), inflows=[Inflow([0.0, 300.0], [3.0, 3.0], row=24, col=250)]),
    "roof runoff from buildings under rain patches": dict(blocked=_buildings(), rain=_rain_patches(), roof_runoff=_roofs()),
    "losses on a partly wet grid": dict(initial_depth=_mound(cx=0.7), drainage=30.0,
                                        infiltration=np.where(np.arange(NX) < 420, 50.0, 0.0)[None, :] * np.ones((NY, 1))),
    # all wet under the rain, then the film soaks away and the plane is dry again
    "uniform rain that stops, infiltration": dict(initial_depth=_mound(), rain=Hyetograph([0.0, 30.0, 1e9], [40.0, 0.0]),
                                                  infiltration=100.0),
}


def _pair(case, dtype="float64", threads=2, until=240.0, z=None):
    out = []
    for skip in (False, True):
        p = FloodParameters(gauge_interval=None, dtype=dtype, threads=threads, skip_dry=skip)
        m = FloodModel(_plane() if z is None else z, DX, manning=0.03, params=p, **case)
        res = m.run(until)
        out.append((m, res))
    return out


def _assert_same(dense, skip):
    (md, rd), (ms, rs) = dense, skip
    assert md.steps == ms.steps and md.time == ms.time
    for name in ("h", "qx", "qy", "max_depth", "max_velocity", "hazard", "time_of_wetting"):
        a, b = getattr(md, name), getattr(ms, name)
        assert a.dtype == b.dtype
        bad = np.flatnonzero(a.view(np.uint8) != b.view(np.uint8))
        assert bad.size == 0, f"{name} differs in {bad.size} bytes"
    assert md.mass_balance() == ms.mass_balance()
    assert md._hmax_now == ms._hmax_now  # the CFL step's depth
    assert rd.depth.tobytes() == rs.depth.tobytes()


@pytest.mark.parametrize("name", list(CASES))
def test_skip_dry_is_bit_identical_to_dense(name):
    dense, skip = _pair(CASES[name])
    _assert_same(dense, skip)
    swept = skip[0].swept_fraction()
    assert dense[0].swept_fraction() == {"faces": 1.0, "cells": 1.0}
    assert swept["cells"] < 0.7, swept  # the case does skip work (else it tests nothing)


@pytest.mark.parametrize("dtype,threads", [("float32", 2), ("float32", 1), ("float64", 1)])
def test_skip_dry_bit_identical_float32_and_one_thread(dtype, threads):
    for name in ("mound", "blocked buildings, inflow and rain patches", "stage boundary into a dry grid",
                 "roof runoff from buildings under rain patches"):
        dense, skip = _pair(CASES[name], dtype=dtype, threads=threads, until=150.0)
        _assert_same(dense, skip)


def test_skip_dry_benchmark_mound_is_repaired_and_identical():
    """The benchmark case (benchmarks/flood.py) at 160 x 700: the mound's edge goes negative and is repaired,
    and the wet region grows; still bit for bit."""
    ny, nx = 160, 700
    yy, xx = np.mgrid[0:ny, 0:nx] * DX
    z = 100.0 - 0.001 * xx - 0.0005 * yy
    h0 = np.maximum(0.0, 2.0 - ((xx - nx * DX / 2) ** 2 + (yy - ny * DX / 2) ** 2) / (ny * DX / 3) ** 2 * 2.0)
    dense, skip = _pair(dict(initial_depth=h0), z=z, until=100.0)
    assert dense[0].mass_balance()["clamp"] > 0 or np.any(dense[0].h == 0)
    _assert_same(dense, skip)
    assert skip[0].swept_fraction()["faces"] < 0.5


def test_state_written_by_hand_is_rescanned():
    """Water poured into a dry corner by hand between steps: ``state_changed()`` (and ``run()``) sees it."""
    ms = []
    for skip in (False, True):
        m = FloodModel(_plane(), DX, manning=0.03, initial_depth=_mound(),
                       params=FloodParameters(gauge_interval=None, skip_dry=skip, threads=2))
        for _ in range(5):
            m.step()
        m.h[2:5, 580:590] = 0.7
        m.qx[40, 10] = 0.2  # a discharge where all is dry
        m.state_changed()
        for _ in range(20):
            m.step()
        m.h[45, 5] = 0.3
        m.run(m.time + 30.0)
        ms.append((m, m.result()))
    _assert_same(*ms)


def test_skip_dry_must_be_bool():
    from twin_core.errors import ParameterError

    with pytest.raises(ParameterError, match="skip_dry"):
        FloodParameters(skip_dry=1)


def test_skip_dry_runs_without_jit(python_run):
    """NUMBA_DISABLE_JIT=1 runs the skipping sweep as plain Python (uint64 column indices, the wet-span
    scans) and gives the jitted answer; 1e-12 relative as in test_kernels_run_without_jit (the jitted
    loops may fuse multiply-adds)."""
    code = (
        "import numpy as np, json;"
        "from simulation.flood import FloodModel, FloodParameters, Inflow;"
        "yy, xx = np.mgrid[0:6, 0:40] * 5.0;"
        "h0 = np.maximum(0.0, 1.0 - ((xx - 30.0) ** 2 + (yy - 12.0) ** 2) / 200.0);"
        "m = FloodModel(100.0 - 0.001 * xx, 5.0, initial_depth=h0, inflows=[Inflow([0.0, 1e9], [0.5, 0.5], row=4, col=150 // 5)],"
        " params=FloodParameters(gauge_interval=None));"
        "[m.step(0.5) for _ in range(30)];"
        "print(json.dumps([m.h.ravel().tolist(), m.swept_fraction()['cells']]))"
    )
    runs = []
    for jit in (False, True):
        out = python_run(code, jit=jit)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout))
    (h_nojit, swept_nojit), (h_jit, swept_jit) = runs
    assert swept_nojit == swept_jit < 0.9
    np.testing.assert_allclose(h_jit, h_nojit, rtol=1e-12, atol=1e-15)
