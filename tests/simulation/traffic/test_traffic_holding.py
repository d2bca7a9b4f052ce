"""Vehicles waiting for a road closed for a while (a flooded road that will drain) in the mesoscopic model:
they wait out of the link's FIFO, in its holding list, so the traffic behind them for other, open roads
passes (as on a multi-lane street, where a car waiting to turn does not stop the others), while they still
take up the link's storage (many waiting fill it and spill back upstream) and enter their road when it
reopens, within its inflow capacity.

Before, the one at the head of the FIFO held everybody behind it until its road reopened: on the demo's storm
at rush hour about 2,700 of 9,900 trips were still out after two hours, most of them behind such a vehicle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.traffic import MesoModel, MesoParameters


def _links(rows):
    return pd.DataFrame(rows, columns=["link_id", "from_node", "to_node", "length", "speed", "capacity", "lanes"])


# o (150 m, 10 s at 15 m/s; storage 20) to junction 1, then a (600 m, 40 s) to 2, closed over [30, 300) s, or c
# (600 m, 40 s) to 3, open. No way round a: a driver for it waits.
FORK = _links([("o", 0, 1, 150.0, 15.0, 1800.0, 1), ("a", 1, 2, 600.0, 15.0, 1800.0, 1),
               ("c", 1, 3, 600.0, 15.0, 1800.0, 1)])


@pytest.mark.parametrize("reroute", [True, False])
def test_the_vehicles_behind_one_waiting_for_a_closed_road_pass_it(reroute):
    # "w" reaches the end of o at 35 s, with a closed until 300 s; ten vehicles for c follow it 2 s apart (o's
    # capacity, 0.5 veh/s). They used to wait behind it until 300 s; now each arrives at free flow (50 s)
    n = 10
    veh = pd.DataFrame({"vehicle_id": ["w"] + [f"c{i}" for i in range(n)],
                        "depart": 25.0 + 2.0 * np.arange(n + 1),
                        "edges": [["o", "a"]] + [["o", "c"]] * n})
    r = MesoModel(FORK, veh, MesoParameters(dt=0.5, reroute=reroute), closures={"a": (30.0, 300.0)}).run(until=900)
    t = r.trips.set_index("vehicle_id")
    assert t["completed"].all()
    to_c = t.drop(index="w")
    assert to_c["travel_time"].to_numpy() == pytest.approx(50.0, abs=1.0)
    assert to_c["arrive"].max() < 300.0
    # w entered a when it reopened (its inflow capacity builds up again from 0: 2 s at 0.5 veh/s), 40 s on a
    tr = r.trajectories
    w = tr[tr["vehicle_id"] == "w"].set_index("link_id")
    assert w.loc["a", "enter"] == pytest.approx(302.0, abs=1.0) and w.loc["o", "exit"] == w.loc["a", "enter"]
    assert t.loc["w", "arrive"] == pytest.approx(342.0, abs=1.0) and t.loc["w", "reroutes"] == 0
    # while it waits it is on o and in o's queue
    s = r.link_series.set_index(["link_id", "time"])
    assert s.loc[("o", 180.0), "vehicles"] == 1 and s.loc[("o", 180.0), "queue"] == 1


# u (300 m, storage 40) to o (75 m, 5 s; storage 10) to junction 2, then a (600 m, 40 s; 720 veh/h: one vehicle
# every 5 s) closed over [0, 600) s, or c (open)
SPILL = _links([("u", 0, 1, 300.0, 15.0, 1800.0, 1), ("o", 1, 2, 75.0, 15.0, 1800.0, 1),
                ("a", 2, 3, 600.0, 15.0, 720.0, 1), ("c", 2, 4, 600.0, 15.0, 1800.0, 1)])


def _spill(n_a, n_c=5):
    """n_a vehicles for a set off first (2 s apart), then n_c for c."""
    n = n_a + n_c
    return pd.DataFrame({"vehicle_id": [f"a{i}" for i in range(n_a)] + [f"c{i}" for i in range(n_c)],
                         "depart": 2.0 * np.arange(n), "edges": [["u", "o", "a"]] * n_a + [["u", "o", "c"]] * n_c})


def test_vehicles_waiting_for_a_closed_road_still_fill_their_link_and_spill_back():
    # 15 wait for a: 10 fill o (its storage), 5 stand at the head of u, where the ones for c behind them are
    # stuck until a reopens and the waiting drain into it
    r = MesoModel(SPILL, _spill(15), MesoParameters(dt=0.5), closures={"a": (0.0, 600.0)}).run(until=1500)
    t = r.trips.set_index("vehicle_id")
    assert t["completed"].all()
    s = r.link_series
    on_o = s.loc[(s["link_id"] == "o") & (s["time"] < 600.0), "vehicles"]
    assert on_o.max() == 10  # o's storage: nobody more got onto it
    assert (t.loc[[f"c{i}" for i in range(5)], "arrive"] > 600.0).all()
    # with 5 waiting (half o's storage) the ones for c pass them at free flow (20 + 5 + 40 s)
    r = MesoModel(SPILL, _spill(5), MesoParameters(dt=0.5), closures={"a": (0.0, 600.0)}).run(until=1500)
    t = r.trips.set_index("vehicle_id")
    assert t["completed"].all()
    assert t.loc[[f"c{i}" for i in range(5)], "travel_time"].to_numpy() == pytest.approx(65.0, abs=1.0)


def test_the_waiting_enter_their_road_when_it_reopens_within_its_inflow_capacity():
    # a reopens at 600 s and lets in one vehicle every 5 s (720 veh/h), its inflow credit building up from 0:
    # the first at 605 s, then one each 5 s, in the order they came
    r = MesoModel(SPILL, _spill(15), MesoParameters(dt=0.5), closures={"a": (0.0, 600.0)}).run(until=1500)
    tr = r.trajectories
    on_a = tr[tr["link_id"] == "a"].set_index("vehicle_id")["enter"]
    assert len(on_a) == 15 and on_a.notna().all()
    assert on_a.min() >= 600.0 and on_a.min() == pytest.approx(605.0, abs=0.6)
    assert np.diff(on_a.to_numpy()) == pytest.approx(5.0, abs=0.6)
    assert on_a.is_monotonic_increasing  # a0, a1, ...: first come, first in
    # the last five for a reached o after it reopened: they queue in the FIFO for a's capacity (that holds the
    # ones behind, as any spatial queue does), and the c vehicles leave o right after the last of them
    c = r.trips.set_index("vehicle_id").loc[[f"c{i}" for i in range(5)], "arrive"]
    assert ((c > on_a.max() + 40.0) & (c < on_a.max() + 40.0 + 15.0)).all()


def test_no_closure_no_holding_the_same_queues_as_before():
    # recorded with the model before the holding lists (bit for bit on the machine that recorded them): a link
    # with a bottleneck, a merge and spillback, no closures
    veh = pd.DataFrame({"vehicle_id": np.arange(60), "depart": np.arange(60) * 1.0,
                        "edges": [["u", "o", "a"] if i % 3 else ["u", "o", "c"] for i in range(60)]})
    r = MesoModel(SPILL, veh, MesoParameters(dt=0.5)).run(until=1500)
    t, s = r.trips, r.link_series
    assert t["arrive"].sum() == pytest.approx(9692.0, rel=1e-12)
    assert s["queue"].sum() == 39 and s["vehicles"].sum() == 103 and s["queue"].max() == 16
    assert r.trajectories["exit"].sum() == pytest.approx(23237.5, rel=1e-12) and t["completed"].all()


def test_holding_runs_without_jit():
    # NUMBA_DISABLE_JIT=1 (debugging): the kernels are plain Python and the ones behind still pass
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, pandas as pd\n"
        "from simulation.traffic import MesoModel, MesoParameters\n"
        f"FORK = pd.DataFrame({FORK.to_dict('list')!r})\n"
        "v = pd.DataFrame({'vehicle_id': range(4), 'depart': 25.0 + 2.0 * np.arange(4),\n"
        "                  'edges': [['o', 'a']] + [['o', 'c']] * 3})\n"
        "r = MesoModel(FORK, v, MesoParameters(dt=0.5), closures={'a': (30.0, 300.0)}).run(until=400)\n"
        "t = r.trips.set_index('vehicle_id')\n"
        "assert t['completed'].all() and (t.loc[[1, 2, 3], 'travel_time'] < 51.0).all(), t\n"
        "assert abs(t.loc[0, 'arrive'] - 342.0) <= 1.0, t\n"
        "print('ok')\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
