"""Held vehicles think again: a vehicle waiting aside for a road closed for a while (a flooded road that will
drain, :func:`simulation.traffic._kernels.meso_run`'s holding list) plans again every
``MesoParameters.replan_interval`` s from its junction, with the closures and queues of that moment.

Before, it decided once: on the demo's storm at rush hour 288 vehicles sat in holding lists at 5,000 s, some
for an hour, although roads round their closure had reopened long before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulation.traffic import MesoModel, MesoParameters
from twin_core.errors import ParameterError


def _links(rows):
    return pd.DataFrame(rows, columns=["link_id", "from_node", "to_node", "length", "speed", "capacity", "lanes"])


# o (150 m, 10 s at 15 m/s) to junction 1, then a (600 m, 40 s) to 2, or round it: c (600 m, 40 s) to 3 and
# d (600 m, 40 s) to 2. An incident holds w on o until 320 s (drivers do not know of it), so w meets a's
# closure [300, 3000) s, which it did not plan for (a is open when it planned to enter it, at 10 s).
NET = _links([("o", 0, 1, 150.0, 15.0, 1800.0, 1), ("a", 1, 2, 600.0, 15.0, 1800.0, 1),
              ("c", 1, 3, 600.0, 15.0, 1800.0, 1), ("d", 3, 2, 600.0, 15.0, 1800.0, 1)])
VEH = pd.DataFrame({"vehicle_id": ["w"], "depart": [0.0], "edges": [["o", "a"]]})


def _run(c_until, lanes=1, **kw):
    """w alone, with c (the way round a) closed over [0, c_until); ``lanes`` on o (1: w waits at the head of
    o's queue, 2: aside, in o's holding list)."""
    net = NET.assign(lanes=[lanes, 1, 1, 1])
    m = MesoModel(net, VEH, MesoParameters(dt=0.5, **kw), blocked_until={"o": 320.0},
                  closures={"a": (300.0, 3000.0), "c": (0.0, c_until)})
    r = m.run(until=4000)
    t = r.trips.set_index("vehicle_id").loc["w"]
    tr = r.trajectories[r.trajectories["vehicle_id"] == "w"]
    return r, t, tr


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_held_vehicle_takes_a_way_round_that_opened_at_its_next_replan(lanes):
    # at 320 s a and c are both closed: w waits aside for a (until 3000 s). c reopens at 500 s; w's re-plan at
    # 320 + 300 = 620 s finds c, d (80 s) far quicker than waiting 2,380 s for a, and takes it
    r, t, tr = _run(500.0, lanes)
    assert t["completed"] and t["reroutes"] == 1 and t["held_replans"] == 1
    assert tr["link_id"].tolist() == ["o", "c", "d"]
    enter = tr.set_index("link_id")["enter"]
    assert enter["c"] == pytest.approx(620.0, abs=2.0)
    assert t["arrive"] == pytest.approx(700.0, abs=2.0)  # 620 s + 40 s on c + 40 s on d
    assert r.summary()["held_replans"] == 1 and r.summary()["rerouted_trips"] == 1
    # it stayed on o, waiting, until then (o's exit time is the one it left with)
    assert tr.set_index("link_id")["exit"]["o"] == enter["c"]


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_held_vehicle_with_no_better_option_stays_held(lanes):
    # c stays closed past a's reopening: every re-plan (620, 920, ... 2,720 s) keeps waiting for a
    r, t, tr = _run(5000.0, lanes)
    assert t["completed"] and t["reroutes"] == 0 and t["held_replans"] == 8
    assert tr["link_id"].tolist() == ["o", "a"]
    assert tr.set_index("link_id")["enter"]["a"] == pytest.approx(3002.0, abs=2.0)
    assert t["arrive"] == pytest.approx(3042.0, abs=2.0)


@pytest.mark.parametrize("off", [0, 0.0, np.inf])
def test_replan_interval_0_or_inf_decides_once_as_before(off):
    # w waits for a until 3000 s although c reopened at 500 s (the old behaviour)
    r, t, tr = _run(500.0, replan_interval=off)
    assert t["completed"] and t["reroutes"] == 0 and t["held_replans"] == 0
    assert tr["link_id"].tolist() == ["o", "a"]
    assert t["arrive"] == pytest.approx(3042.0, abs=2.0)
    # without reroute nobody plans again, held or not
    r2, t2, _ = _run(500.0, reroute=False)
    assert t2["reroutes"] == 0 and t2["held_replans"] == 0 and t2["arrive"] == t["arrive"]


def test_a_short_replan_interval_finds_the_way_round_sooner():
    _, t, tr = _run(500.0, replan_interval=60.0)
    # re-plans at 380, 440, 500 s (c still closed at 440; open at 500)
    assert t["reroutes"] == 1 and t["held_replans"] == 3
    assert tr.set_index("link_id")["enter"]["c"] == pytest.approx(500.0, abs=2.0)


@pytest.mark.parametrize("bad", [-1.0, np.nan, True, "300"])
def test_replan_interval_is_checked(bad):
    with pytest.raises(ParameterError, match="replan_interval"):
        MesoParameters(replan_interval=bad)


# A way round that closes for good while the vehicle waits for room on it. o (150 m, 10 s) to junction 1, then
# a (600 m, 40 s) to 2; or c (150 m, 10 s; storage 150 / 7.5 = 20) to 3 and d (600 m, 40 s) to 2; or e, f (600 m,
# 40 s each) by 4 to 2. c is full: 20 vehicles that set off on it stand at its end (an incident until 5,000 s
# nobody knows of), and it closes for good at 700 s; d is closed over [0, 500) s and e over [0, e_until).
# w waits on o until 320 s (an incident) and meets a's closure from 300 s.
DETOUR = _links([("o", 0, 1, 150.0, 15.0, 1800.0, 1), ("a", 1, 2, 600.0, 15.0, 1800.0, 1),
                 ("c", 1, 3, 150.0, 15.0, 1800.0, 1), ("d", 3, 2, 600.0, 15.0, 1800.0, 1),
                 ("e", 1, 4, 600.0, 15.0, 1800.0, 1), ("f", 4, 2, 600.0, 15.0, 1800.0, 1)])


def _detour(lanes, a_until, e_until):
    net = DETOUR.copy()
    net.loc[net["link_id"] == "o", "lanes"] = lanes  # 1: w waits at the head of o's queue; 2: aside
    veh = pd.DataFrame({"vehicle_id": ["w"] + [f"x{i}" for i in range(20)], "depart": [0.0] + [2.0 * i for i in
                                                                                             range(20)],
                        "edges": [["o", "a"]] + [["c"]] * 20})
    closures = {"a": (300.0, a_until), "c": (700.0, np.inf), "d": (0.0, 500.0), "e": (0.0, e_until)}
    r = MesoModel(net, veh, MesoParameters(dt=0.5), blocked_until={"o": 320.0, "c": 5000.0},
                  closures=closures).run(until=4000)
    t = r.trips.set_index("vehicle_id").loc["w"]
    tr = r.trajectories
    return t, tr[tr["vehicle_id"] == "w"].set_index("link_id")


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_waiting_vehicle_whose_way_round_closes_for_good_plans_again_at_once(lanes):
    # w leaves o's discharge at 321.5 s (o's credit builds up from 0 at 320 s, 0.25 veh per 0.5 s step) and
    # waits for a (closed until 3,000 s; c, d: d closed until 500 s, e closed until 650 s). Its re-plan at
    # 621.5 s takes c, d: 40 s for the 20 on c to leave at c's capacity (20 / 0.5 veh/s) + 40 s on d = 80 s,
    # against 2,418 s waiting for a; c has no room, so w waits for it. c closes for good at 700 s: w plans again
    # then (as any vehicle whose road ahead closes for good) and takes e, f (open since 650 s; 80 s against
    # 2,340 s for a): it enters e at 700 s and arrives at 780 s. Before, it waited for its next re-plan at
    # 921.5 s and arrived at 1,001.5 s.
    t, tr = _detour(lanes, 3000.0, 650.0)
    assert t["completed"] and np.isnan(t["stranded"]) and t["reroutes"] == 2
    assert tr.index.tolist() == ["o", "e", "f"]
    assert tr.loc["e", "enter"] == pytest.approx(700.0, abs=0.5) and tr.loc["o", "exit"] == tr.loc["e", "enter"]
    assert t["arrive"] == pytest.approx(780.0, abs=0.5)


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_way_round_a_road_closed_for_good_that_closes_too_is_planned_again_stranding_only_with_none_left(lanes):
    # a closes for good at 300 s: at 321.5 s w plans round it (waits for other closed roads included): c, d
    # (40 s for c's queue, d open from 500 s: arrives at 540 s) against e, f (e open from 650 s: 730 s). c has
    # no room, so w waits at the head of o's queue for it. c closes for good at 700 s: w plans again from
    # junction 1 and takes e, f (entering e at 700 s, arriving at 780 s). Before, it left the network there
    # (stranded at 700 s) although e, f were open.
    t, tr = _detour(lanes, np.inf, 650.0)
    assert t["completed"] and np.isnan(t["stranded"]) and t["reroutes"] == 2
    assert tr.index.tolist() == ["o", "e", "f"] and t["arrive"] == pytest.approx(780.0, abs=0.5)
    # with e closed for good too no road is left from junction 1: it leaves the network there at 700 s
    t, tr = _detour(lanes, np.inf, np.inf)
    assert not t["completed"] and t["stranded"] == pytest.approx(700.0, abs=0.5)
    assert tr.loc["o", "exit"] == t["stranded"]
    # with a closed only until 3,000 s and e for good, waiting for a is the route left: w waits for it (it
    # leaves o at 3,001.5 s: a's inflow credit builds up from 0 at 3,000 s) and arrives 40 s later
    t, tr = _detour(lanes, 3000.0, np.inf)
    assert t["completed"] and np.isnan(t["stranded"])
    assert tr.index.tolist() == ["o", "a"] and t["arrive"] == pytest.approx(3041.5, abs=0.5)


def test_a_vehicle_setting_off_whose_way_round_closes_for_good_plans_again():
    # the same when setting off: v's first road a (0 -> 1, 600 m, 40 s) is closed for good. From node 0 it can
    # take b (150 m, 10 s; storage 20, full: 20 stand at its end, an incident until 5,000 s) or e (600 m, 40 s,
    # closed over [0, 150) s), then d. When v sets off at 50 s, b costs 40 s (its 20 leave at 0.5 veh/s) against
    # 100 s of waiting + 40 s for e, so v waits to set off on b. b closes for good at 200 s: v plans again and
    # sets off on e at 200 s, arriving after 40 s on e and 10 s on d at 250 s. Before, it never set off
    # (stranded at 200 s).
    net = _links([("a", 0, 1, 600.0, 15.0, 1800.0, 1), ("b", 0, 1, 150.0, 15.0, 1800.0, 1),
                  ("e", 0, 1, 600.0, 15.0, 1800.0, 1), ("d", 1, 2, 150.0, 15.0, 1800.0, 1)])
    veh = pd.DataFrame({"vehicle_id": [f"x{i}" for i in range(20)] + ["v"],
                        "depart": [2.0 * i for i in range(20)] + [50.0],
                        "edges": [["b"]] * 20 + [["a", "d"]]})
    r = MesoModel(net, veh, MesoParameters(dt=0.5), blocked_until={"b": 5000.0},
                  closures={"a": (0.0, np.inf), "b": (200.0, np.inf), "e": (0.0, 150.0)}).run(until=1000)
    t = r.trips.set_index("vehicle_id").loc["v"]
    tr = r.trajectories.query("vehicle_id == 'v'").set_index("link_id")
    assert t["completed"] and np.isnan(t["stranded"]) and t["reroutes"] == 2
    assert tr.index.tolist() == ["e", "d"] and t["enter"] == pytest.approx(200.0, abs=0.5)
    assert t["arrive"] == pytest.approx(250.0, abs=0.5)


def test_a_vehicle_that_planned_when_setting_off_plans_again_at_the_end_of_its_first_road():
    # v's first road a (0 -> 1) is closed for good: setting off at 0 s it plans b (0 -> 1, 150 m, 10 s), then d
    # (1 -> 2), open until 100 s. An incident nobody knows of holds it at the end of b until 200 s; d has
    # closed for good meanwhile. It plans again there and takes e, f (600 m, 40 s each, by 3): it leaves b at
    # 201.5 s (b's discharge credit builds up from 0 at 200 s, 0.25 veh per 0.5 s step) and arrives 80 s
    # later. Before, the plan it made setting off counted as made at the end of b: it never planned there and
    # left the network (stranded at 201.5 s).
    net = _links([("a", 0, 1, 150.0, 15.0, 1800.0, 1), ("b", 0, 1, 150.0, 15.0, 1800.0, 1),
                  ("d", 1, 2, 600.0, 15.0, 1800.0, 1), ("e", 1, 3, 600.0, 15.0, 1800.0, 1),
                  ("f", 3, 2, 600.0, 15.0, 1800.0, 1)])
    veh = pd.DataFrame({"vehicle_id": ["v"], "depart": [0.0], "edges": [["a", "d"]]})
    r = MesoModel(net, veh, MesoParameters(dt=0.5), blocked_until={"b": 200.0},
                  closures={"a": (0.0, np.inf), "d": (100.0, np.inf)}).run(until=1000)
    t = r.trips.set_index("vehicle_id").loc["v"]
    tr = r.trajectories.query("vehicle_id == 'v'").set_index("link_id")
    assert t["completed"] and np.isnan(t["stranded"]) and t["reroutes"] == 2
    assert tr.index.tolist() == ["b", "e", "f"] and tr.loc["b", "exit"] == pytest.approx(201.5, abs=0.5)
    assert t["arrive"] == pytest.approx(281.5, abs=0.5)
