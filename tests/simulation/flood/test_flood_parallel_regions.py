"""``fused_step`` opens one parallel region per step.

Numba turns ``np.zeros``, ``.sum()`` and other array expressions inside a ``parallel=True`` function into
parallel loops of their own; each is a thread wake-up and a barrier. On an idle machine that costs
microseconds, but while another process holds a core each one waits for the descheduled worker (measured on
the 2000 x 2000 benchmark case with five such regions: the step about twice as slow as with one). So the
only parallel loop of a step is the ``prange`` over the blocks of rows; the rest is serial.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulation.flood import FloodModel, FloodParameters
from simulation.flood import _kernels as K


def _top_level_parfors(dispatcher) -> set:
    (ol,) = dispatcher.overloads.values()
    diag = ol.metadata["parfor_diagnostics"]
    ids = {pf.id for pf in diag.initial_parfors}
    nested = {i for inner in diag.nested_fusion_info.values() for i in inner}
    fused = {i for inner in diag.fusion_info.values() for i in inner}
    return ids - nested - fused


def test_fused_step_has_one_parallel_region(monkeypatch):
    # compiled afresh (not from the cache, which keeps no diagnostics), on a small grid
    fresh = njit(parallel=True, error_model="numpy")(K.fused_step.py_func)
    monkeypatch.setattr(K, "fused_step", fresh)
    m = FloodModel(np.zeros((8, 8)), 1.0, manning=0.03, initial_depth=np.full((8, 8), 0.1),
                   params=FloodParameters(gauge_interval=None, threads=2))
    m.step()
    assert len(_top_level_parfors(fresh)) == 1
