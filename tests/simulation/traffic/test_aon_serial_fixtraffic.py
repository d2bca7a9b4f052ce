"""All-or-nothing: small problems run on one thread (a parallel call's start-up cost 10x the work on a busy
machine), large ones in parallel; both give the same flows and skims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulation.traffic import _kernels as K
from simulation.traffic import assign, read_tntp
from simulation.traffic.assignment import _Problem

TNTP = Path("/work/shared/data/tntp")
pytestmark = pytest.mark.skipif(not (TNTP / "Anaheim_net.tntp").exists(), reason="TNTP data not present")


def _args(name):
    net, dem = read_tntp(TNTP / f"{name}_net.tntp", TNTP / f"{name}_trips.tntp")
    p = _Problem(net, dem)
    cost = p.cost(np.zeros(net.n_links), np.empty(net.n_links))
    return net, dem, p, cost


@pytest.mark.parametrize("name", ["SiouxFalls", "Anaheim"])
def test_serial_and_parallel_kernels_agree(name):
    net, _, p, cost = _args(name)
    out = {}
    for fn in (K.all_or_nothing_serial, K.all_or_nothing_parallel):
        flows, skim = np.full_like(p.flows_by_origin, np.nan), np.full_like(p.skim, np.nan)
        fn(p.origins, p.zone_nodes, p.demand, p.indptr, p.heads, p.link_of, p.tails, cost, p.first_thru,
           net.n_nodes, flows, skim)
        out[fn.__name__] = (flows, skim)
    (fs, ss), (fp, sp) = out.values()
    assert np.array_equal(fs, fp) and np.array_equal(ss, sp)  # the same shortest paths, summed in one order


def test_small_problems_run_serially_large_ones_in_parallel(monkeypatch):
    calls = []
    monkeypatch.setattr(K, "all_or_nothing_parallel", lambda *a: calls.append("parallel"))
    monkeypatch.setattr(K, "all_or_nothing_serial", lambda *a: calls.append("serial"))
    net, dem, p, cost = _args("SiouxFalls")
    p.aon(cost, np.empty(net.n_links))
    assert calls == ["serial"]  # 24 origins x 100 nodes + links: far under the threshold
    monkeypatch.setattr(K, "PARALLEL_AON_WORK", 1)
    p.aon(cost, np.empty(net.n_links))
    assert calls == ["serial", "parallel"]


def test_assignment_result_unchanged_by_the_serial_path(monkeypatch):
    net, dem = read_tntp(TNTP / "SiouxFalls_net.tntp", TNTP / "SiouxFalls_trips.tntp")
    serial = assign(net, dem, rgap=1e-6)
    monkeypatch.setattr(K, "PARALLEL_AON_WORK", 0)
    parallel = assign(net, dem, rgap=1e-6)
    assert serial.iterations == parallel.iterations
    assert np.allclose(serial.flow, parallel.flow, rtol=1e-12, atol=1e-9)
