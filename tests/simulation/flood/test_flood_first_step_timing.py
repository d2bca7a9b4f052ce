"""The cell-update rate of a run leaves out its first step, which holds numba's compile or cache load.

A user review found the first flood in a process reporting 14x fewer cell updates per second than the same flood
run again (12.6 s against 0.9 s of engine time): the first kernel calls compile or load from the cache inside the
timed loop. The rate is now taken over the steps after the first, which is timed on its own (``first_step_s``).
"""

from __future__ import annotations

import numpy as np

import simulation.flood.engine as engine
from simulation.flood.engine import FloodModel, FloodParameters


class _Clock:
    """A fake ``time`` module: each step of the model advances it by a set amount."""

    def __init__(self) -> None:
        self.t = 100.0

    def perf_counter(self) -> float:
        return self.t


def _model():
    bed = np.zeros((20, 20))
    h0 = np.zeros_like(bed)
    h0[8:12, 8:12] = 1.0
    return FloodModel(bed, 5.0, manning=0.03, initial_depth=h0, params=FloodParameters(gauge_interval=None))


def test_rate_leaves_out_the_first_steps_compile(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(engine, "_time", clock)
    m = _model()
    advance = m._advance
    costs = iter([10.0] + [0.01] * 10000)  # the first step compiles (10 s), the others take 10 ms

    def timed(dt):
        advance(dt)
        clock.t += next(costs)

    m._advance = timed
    res = m.run(60.0)
    assert res.steps > 2
    assert res.first_step_s == 10.0
    assert np.isclose(res.elapsed_s, 10.0 + 0.01 * (res.steps - 1))
    # 400 active cells a step, 10 ms a step: 4e4 cell-updates/s (before: the compile counted, 400 steps/s far less)
    assert np.isclose(res.cell_updates_per_s, 400 / 0.01)


def test_a_one_step_run_is_timed_whole(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(engine, "_time", clock)
    m = _model()
    advance = m._advance

    def timed(dt):
        advance(dt)
        clock.t += 2.0

    m._advance = timed
    dt = m.stable_dt()
    res = m.run(0.5 * dt)
    assert res.steps == 1 and res.first_step_s == 2.0 and np.isclose(res.cell_updates_per_s, 400 / 2.0)
