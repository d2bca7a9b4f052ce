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


def _run(c_until, **kw):
    """w alone, with c (the way round a) closed over [0, c_until)."""
    m = MesoModel(NET, VEH, MesoParameters(dt=0.5, **kw), blocked_until={"o": 320.0},
                  closures={"a": (300.0, 3000.0), "c": (0.0, c_until)})
    r = m.run(until=4000)
    t = r.trips.set_index("vehicle_id").loc["w"]
    tr = r.trajectories[r.trajectories["vehicle_id"] == "w"]
    return r, t, tr


def test_a_held_vehicle_takes_a_way_round_that_opened_at_its_next_replan():
    # at 320 s a and c are both closed: w waits aside for a (until 3000 s). c reopens at 500 s; w's re-plan at
    # 320 + 300 = 620 s finds c, d (80 s) far quicker than waiting 2,380 s for a, and takes it
    r, t, tr = _run(500.0)
    assert t["completed"] and t["reroutes"] == 1 and t["held_replans"] == 1
    assert tr["link_id"].tolist() == ["o", "c", "d"]
    enter = tr.set_index("link_id")["enter"]
    assert enter["c"] == pytest.approx(620.0, abs=2.0)
    assert t["arrive"] == pytest.approx(700.0, abs=2.0)  # 620 s + 40 s on c + 40 s on d
    assert r.summary()["held_replans"] == 1 and r.summary()["rerouted_trips"] == 1
    # it stayed on o, waiting, until then (o's exit time is the one it left with)
    assert tr.set_index("link_id")["exit"]["o"] == enter["c"]


def test_a_held_vehicle_with_no_better_option_stays_held():
    # c stays closed past a's reopening: every re-plan (620, 920, ... 2,720 s) keeps waiting for a
    r, t, tr = _run(5000.0)
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
