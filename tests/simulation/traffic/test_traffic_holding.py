"""Vehicles waiting for a road closed for a while (a flooded road that will drain) in the mesoscopic model.

On a street of two lanes or more they wait out of the link's FIFO, in its holding list, so the traffic behind
them for other, open roads passes (a car waiting to turn does not stop the others), while they still take up
the link's storage (many waiting fill it and spill back upstream) and enter their road when it reopens, within
its inflow capacity. The waiting take at most one lane's share of the storage aside (storage / lanes, at least
one vehicle); the next one that must wait stays at the head of the FIFO and holds everybody behind it. On one
lane nobody gets past: the first that must wait holds the queue, as before the holding lists.

Before the holding lists, the one at the head of the FIFO held everybody behind it until its road reopened: on
the demo's storm at rush hour about 2,700 of 9,900 trips were still out after two hours, most of them behind
such a vehicle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.traffic import MesoModel, MesoParameters


def _links(rows):
    return pd.DataFrame(rows, columns=["link_id", "from_node", "to_node", "length", "speed", "capacity", "lanes"])


# o (150 m, 10 s at 15 m/s) to junction 1, then a (600 m, 40 s) to 2, closed over [30, 300) s, or c (600 m, 40 s)
# to 3, open. No way round a: a driver for it waits. FORK2: o has two lanes (storage 2 x 150 / 7.5 = 40, of
# which 20 may wait aside), the same capacity (1,800 veh/h, 0.5 veh/s) as on one.
FORK = _links([("o", 0, 1, 150.0, 15.0, 1800.0, 1), ("a", 1, 2, 600.0, 15.0, 1800.0, 1),
               ("c", 1, 3, 600.0, 15.0, 1800.0, 1)])
FORK2 = FORK.assign(lanes=[2, 1, 1])


def _fork(n):
    """"w" for a sets off at 25 s (it reaches the end of o at 35 s, a closed), then n for c 2 s apart."""
    return pd.DataFrame({"vehicle_id": ["w"] + [f"c{i}" for i in range(n)],
                         "depart": 25.0 + 2.0 * np.arange(n + 1),
                         "edges": [["o", "a"]] + [["o", "c"]] * n})


@pytest.mark.parametrize("reroute", [True, False])
def test_on_two_lanes_the_vehicles_behind_one_waiting_for_a_closed_road_pass_it(reroute):
    # "w" reaches the end of o at 35 s, with a closed until 300 s; ten vehicles for c follow it 2 s apart (o's
    # capacity, 0.5 veh/s). They used to wait behind it until 300 s; now each arrives at free flow (50 s)
    r = MesoModel(FORK2, _fork(10), MesoParameters(dt=0.5, reroute=reroute),
                  closures={"a": (30.0, 300.0)}).run(until=900)
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


@pytest.mark.parametrize("reroute", [True, False])
def test_on_one_lane_the_vehicles_behind_one_waiting_for_a_closed_road_wait_behind_it(reroute):
    # nobody passes w on a one-lane o: the ten for c queue behind it, first in, first out, until a reopens.
    # a's inflow credit builds up again from 0 at 300 s (0.25 veh per 0.5 s step): w leaves o at 301.5 s and
    # arrives 40 s later. o's discharge credit (capped at 1.25) is then 0.25 and builds up the same way: c0
    # leaves o at 303 s, then one every 2 s (o's capacity), each 40 s on c
    r = MesoModel(FORK, _fork(10), MesoParameters(dt=0.5, reroute=reroute),
                  closures={"a": (30.0, 300.0)}).run(until=900)
    t = r.trips.set_index("vehicle_id")
    assert t["completed"].all() and t["reroutes"].sum() == 0 and t["held_replans"].sum() == 0
    assert t.loc["w", "arrive"] == pytest.approx(341.5, abs=0.5)
    tr = r.trajectories
    o_exit = tr[tr["link_id"] == "o"].set_index("vehicle_id")["exit"]
    assert o_exit["w"] == pytest.approx(301.5, abs=0.5)
    c_out = o_exit.drop(index="w").to_numpy()
    assert c_out == pytest.approx(303.0 + 2.0 * np.arange(10), abs=0.5)
    assert t.drop(index="w")["arrive"].to_numpy() == pytest.approx(c_out + 40.0, abs=1e-9)
    # while it waits everybody is on o, in its queue once their 10 s on it are over: w and c0..c9 by 180 s
    s = r.link_series.set_index(["link_id", "time"])
    assert s.loc[("o", 180.0), "vehicles"] == 11 and s.loc[("o", 180.0), "queue"] == 11


# u (300 m, storage 40) to o (75 m, 5 s; storage 10) to junction 2, then a (600 m, 40 s; 720 veh/h: one vehicle
# every 5 s) closed over [0, 600) s, or c (open). SPILL2: o has two lanes (storage 2 x 75 / 7.5 = 20, of which
# 10 may wait aside).
SPILL = _links([("u", 0, 1, 300.0, 15.0, 1800.0, 1), ("o", 1, 2, 75.0, 15.0, 1800.0, 1),
                ("a", 2, 3, 600.0, 15.0, 720.0, 1), ("c", 2, 4, 600.0, 15.0, 1800.0, 1)])
SPILL2 = SPILL.assign(lanes=[1, 2, 1, 1])


def _spill(n_a, n_c=5):
    """n_a vehicles for a set off first (2 s apart), then n_c for c."""
    n = n_a + n_c
    return pd.DataFrame({"vehicle_id": [f"a{i}" for i in range(n_a)] + [f"c{i}" for i in range(n_c)],
                         "depart": 2.0 * np.arange(n), "edges": [["u", "o", "a"]] * n_a + [["u", "o", "c"]] * n_c})


@pytest.mark.parametrize("n_a", [10, 11])
def test_on_two_lanes_one_lanes_share_of_the_storage_waits_aside_and_the_next_one_blocks(n_a):
    r = MesoModel(SPILL2, _spill(n_a), MesoParameters(dt=0.5), closures={"a": (0.0, 600.0)}).run(until=1500)
    t = r.trips.set_index("vehicle_id")
    assert t["completed"].all()
    c = t.loc[[f"c{i}" for i in range(5)]]
    on_a = r.trajectories.query("link_id == 'a'").set_index("vehicle_id")["enter"]
    if n_a == 10:
        # the ten waiting fill o's share aside (20 / 2 lanes): the ones for c pass them at free flow (20 s on
        # u + 5 s on o + 40 s on c)
        assert c["travel_time"].to_numpy() == pytest.approx(65.0, abs=1.0)
    else:
        # the eleventh finds no room aside: it waits at the head of o's FIFO and the ones for c behind it until
        # a reopens. a takes one every 5 s, its credit building up from 0 at 600 s: the ten aside first
        # (605 ... 650 s), then a10 at 655 s; the ones for c leave o after it, 40 s on c
        assert on_a["a10"] == pytest.approx(655.0, abs=0.6) and on_a.drop(index="a10").max() < on_a["a10"]
        assert (c["arrive"] > on_a["a10"] + 40.0).all() and (c["arrive"] < on_a["a10"] + 40.0 + 15.0).all()


def test_vehicles_waiting_for_a_closed_road_still_fill_their_link_and_spill_back():
    # 25 wait for a: 10 aside on o (its share), the next 10 in its FIFO behind a10 (o's storage, 20, is full),
    # the last 5 at the head of u, where the ones for c behind them are stuck until a reopens
    r = MesoModel(SPILL2, _spill(25), MesoParameters(dt=0.5), closures={"a": (0.0, 600.0)}).run(until=2000)
    t = r.trips.set_index("vehicle_id")
    assert t["completed"].all()
    s = r.link_series
    early = s["time"] < 600.0
    assert s.loc[(s["link_id"] == "o") & early, "vehicles"].max() == 20  # o's storage: nobody more got onto it
    assert s.loc[(s["link_id"] == "u") & early & (s["time"] > 100.0), "vehicles"].min() == 10  # a20..a24, c0..c4
    assert (t.loc[[f"c{i}" for i in range(5)], "arrive"] > 600.0).all()


def test_the_waiting_enter_their_road_when_it_reopens_within_its_inflow_capacity():
    # a reopens at 600 s and lets in one vehicle every 5 s (720 veh/h), its inflow credit building up from 0:
    # the first at 605 s, then one each 5 s, in the order they came (the ten aside, then a10 at the head of the
    # FIFO and the ones behind it)
    r = MesoModel(SPILL2, _spill(15), MesoParameters(dt=0.5), closures={"a": (0.0, 600.0)}).run(until=1500)
    tr = r.trajectories
    on_a = tr[tr["link_id"] == "a"].set_index("vehicle_id")["enter"]
    assert len(on_a) == 15 and on_a.notna().all()
    assert on_a.min() >= 600.0 and on_a.min() == pytest.approx(605.0, abs=0.6)
    assert np.diff(on_a.to_numpy()) == pytest.approx(5.0, abs=0.6)
    assert on_a.is_monotonic_increasing  # a0, a1, ...: first come, first in
    # the last five for a queue in the FIFO behind a10 (for room aside, then for a's capacity: that holds the
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


def test_holding_runs_without_jit(python_run):
    # NUMBA_DISABLE_JIT=1 (debugging): the kernels are plain Python and the ones behind still pass (two lanes)
    code = (
        "import numpy as np, pandas as pd\n"
        "from simulation.traffic import MesoModel, MesoParameters\n"
        f"FORK = pd.DataFrame({FORK2.to_dict('list')!r})\n"
        "v = pd.DataFrame({'vehicle_id': range(4), 'depart': 25.0 + 2.0 * np.arange(4),\n"
        "                  'edges': [['o', 'a']] + [['o', 'c']] * 3})\n"
        "r = MesoModel(FORK, v, MesoParameters(dt=0.5), closures={'a': (30.0, 300.0)}).run(until=400)\n"
        "t = r.trips.set_index('vehicle_id')\n"
        "assert t['completed'].all() and (t.loc[[1, 2, 3], 'travel_time'] < 51.0).all(), t\n"
        "assert abs(t.loc[0, 'arrive'] - 342.0) <= 1.0, t\n"
        "print('ok')\n")
    out = python_run(code, jit=False)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
