"""Dynamic mesoscopic model: analytic bottleneck, triangular fundamental diagram, spillback, route choice,
the real Chengdu morning peak, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulation.traffic import MesoModel, MesoParameters, compare_meso, read_sumo_routes
from twin_core.errors import ImportFormatError, NetworkError, ParameterError

CHENGDU = Path("/work/shared/data/chengdu")


def _links(rows):
    return pd.DataFrame(rows, columns=["link_id", "from_node", "to_node", "length", "speed", "capacity", "lanes"])


def _vehicles(departs, route):
    return pd.DataFrame({"vehicle_id": np.arange(len(departs)), "depart": departs, "edges": [route] * len(departs)})


def test_single_bottleneck_delay_and_clearance():
    # Deterministic queueing (e.g. Daganzo, Fundamentals of Transportation and Traffic Operations, ch. 3):
    # arrivals lambda = 1.2 veh/s for T = 1200 s at a bottleneck of mu = 0.8 veh/s. Total delay
    # lambda (lambda - mu) T^2 / (2 mu) = 432,000 veh-s (issue 6: within 2 %); the queue clears at
    # lambda T / mu = 1800 s (+-2 %).
    links = _links([("a", 0, 1, 300.0, 15.0, 0.8 * 3600, 1)])
    dep = np.arange(0, 1200, 1 / 1.2)
    r = MesoModel(links, _vehicles(dep, ["a"]), MesoParameters(dt=0.5)).run(until=3000)
    assert r.trips["completed"].all()
    assert r.trips["delay"].sum() == pytest.approx(432_000, rel=0.02)
    # the last queued vehicle gets through the bottleneck (its free-flow traversal ends) at the clearance time
    t_clear = (r.trips["arrive"] - 300.0 / 15.0).max()
    assert t_clear == pytest.approx(1800, rel=0.02)
    # discharge during the queue runs at capacity: 0.8 veh/s
    ser = r.link_series[(r.link_series.time > 600) & (r.link_series.time <= 1500)]
    assert ser["outflow"].sum() / 900 == pytest.approx(0.8, rel=0.01)


def test_triangular_fd_capacity_jam_density_and_wave_speed():
    # Triangular FD with vf = 15 m/s, q = 0.5 veh/s, kj = 1/7.5 veh/m gives a backward wave speed
    # w = q / (kj - q / vf) = 0.5 / (0.13333 - 0.03333) = 5 m/s (Newell's kinematic-wave model).
    # Link 2 (300 m) is blocked until 600 s, so links 2 and 1 (600 m) fill to jam density; when it opens, the
    # released space reaches the upstream end of link 1 after (L1 + L2) / w = 180 s, and the outflow is q.
    links = _links([("l1", 0, 1, 600.0, 15.0, 1800.0, 1), ("l2", 1, 2, 300.0, 15.0, 1800.0, 1)])
    dep = np.arange(0, 300, 1.0)
    r = MesoModel(links, _vehicles(dep, ["l1", "l2"]), MesoParameters(dt=0.5, record_interval=10),
                  blocked_until={"l2": 600.0}).run(until=2000)
    s = r.link_series.pivot(index="time", columns="link_id", values="vehicles")
    kj = 1 / 7.5
    assert s.loc[590, "l2"] == int(kj * 300) and s.loc[590, "l1"] == int(kj * 600)  # jam density reached
    tr = r.trips.set_index("vehicle_id")
    first_waiting = int(kj * 300) + int(kj * 600)  # vehicles 0..119 fit on the links
    assert tr.loc[first_waiting, "enter"] > 600
    assert tr.loc[first_waiting, "enter"] == pytest.approx(600 + 900 / 5.0, abs=2.0)
    out2 = r.link_series[(r.link_series.link_id == "l2") & (r.link_series.time > 650) & (r.link_series.time <= 850)]
    assert out2["outflow"].sum() / 200 == pytest.approx(0.5, rel=0.03)  # capacity q reproduced


def test_free_flow_travel_time_and_outputs():
    links = _links([("a", 0, 1, 450.0, 15.0, 1800.0, 1), ("b", 1, 2, 300.0, 10.0, 1800.0, 2)])
    r = MesoModel(links, _vehicles([5.0], ["a", "b"])).run(until=200)
    assert r.trips.loc[0, "travel_time"] == pytest.approx(30 + 30, abs=1.0)
    tj = r.trajectories
    assert tj["link_id"].tolist() == ["a", "b"] and tj.loc[0, "enter"] == pytest.approx(5.0)
    assert tj.loc[1, "enter"] == pytest.approx(tj.loc[0, "exit"])
    assert {"time", "link_id", "inflow", "outflow", "vehicles", "density", "speed", "queue"} <= set(r.link_series)
    ok = r.link_series.dropna(subset=["speed"])
    assert np.allclose(ok.set_index("link_id").loc[["a", "b"], "speed"], [54.0, 36.0], rtol=0.05)


def test_spillback_queue_moves_upstream():
    # A 0.2 veh/s bottleneck at the end of link b: b fills up and the queue spills back onto link a.
    links = _links([("a", 0, 1, 300.0, 15.0, 3600.0, 1), ("b", 1, 2, 150.0, 15.0, 3600.0, 1),
                    ("c", 2, 3, 300.0, 15.0, 720.0, 1)])
    r = MesoModel(links, _vehicles(np.arange(0, 200, 1.0), ["a", "b", "c"]),
                  MesoParameters(dt=0.5, record_interval=10)).run(until=3000)
    q = r.link_series.pivot(index="time", columns="link_id", values="queue")
    v = r.link_series.pivot(index="time", columns="link_id", values="vehicles")
    # b holds at most its storage kj * L = 20 and fills close to it (space in transit upstream at speed w aside)
    assert 17 <= v["b"].max() <= int(150 / 7.5)
    assert q["a"].max() > 10  # queue on the upstream link
    assert r.trips["completed"].all()


def test_iterated_departures_move_vehicles_to_the_faster_route():
    # Two routes from 1 to 2: short with a 0.1 veh/s bottleneck, longer without; all start on the short one.
    links = _links([("s", 0, 1, 200.0, 15.0, 3600.0, 1), ("p1", 1, 2, 300.0, 15.0, 360.0, 1),
                    ("p2", 1, 4, 600.0, 15.0, 3600.0, 1), ("q2", 4, 2, 600.0, 15.0, 3600.0, 1),
                    ("e", 2, 3, 200.0, 15.0, 3600.0, 1)])
    veh = _vehicles(np.arange(0, 600, 2.0), ["s", "p1", "e"])
    fixed = MesoModel(links, veh, MesoParameters(dt=1.0)).run(until=5000)
    chosen = MesoModel(links, veh, MesoParameters(dt=1.0, route_iterations=6, route_bin=120)).run(until=5000)
    assert chosen.history["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    assert chosen.summary()["mean_trip_time_s"] < 0.5 * fixed.summary()["mean_trip_time_s"]
    used = chosen.trajectories.groupby("link_id").size()
    assert used.get("p2", 0) > 0.3 * len(veh)
    # with the turn s -> p2 forbidden (allowed moves given explicitly) nobody can switch
    turns = pd.DataFrame({"from_edge": ["s", "p1", "p2", "q2"], "to_edge": ["p1", "e", "q2", "e"]})
    banned = MesoModel(links, veh, MesoParameters(dt=1.0, route_iterations=3, route_bin=120), turns=turns).run(5000)
    assert "p2" not in set(banned.trajectories["link_id"])
    assert banned.summary()["mean_trip_time_s"] == pytest.approx(fixed.summary()["mean_trip_time_s"])
    with pytest.raises(NetworkError, match="from_edge"):
        MesoModel(links, veh, turns=pd.DataFrame({"a": [1]}))
    table, summary = compare_meso(fixed, chosen)
    assert summary["mean_trip_time_change_s"] < 0
    assert table.set_index("link_id").loc["p2", "vehicles_diff"] == used["p2"]


@pytest.mark.skipif(not (CHENGDU / "morning_rush_hour.rou.xml").exists(), reason="shared Chengdu data not present")
def test_chengdu_morning_peak_runs():
    # The real Chengdu morning peak (9,898 routed vehicles over the OSM/SUMO network). SUMO 1.28 --mesosim on the
    # same routes completes all 9,898 with a mean trip duration of 131 s (benchmarks/traffic.py measures it);
    # our spatial-queue model has no signal or junction delays, so the mean must lie between the routes' free-flow
    # mean and that SUMO figure plus 25 %.
    from cim.io.sumo import read_sumo_net

    links, _ = read_sumo_net(CHENGDU / "chengdu.net.xml")
    veh = read_sumo_routes(CHENGDU / "morning_rush_hour.rou.xml")
    assert len(veh) == 9898
    r = MesoModel(pd.DataFrame(links.drop(columns="geometry")), veh).run(until=7200)
    s = r.summary()
    assert s["completed"] == 9898
    ff = r.trips["free_flow_time"].mean()
    assert ff <= s["mean_trip_time_s"] <= 1.25 * 131.06


def test_bad_input():
    links = _links([("a", 0, 1, 300.0, 15.0, 1800.0, 1), ("b", 1, 2, 300.0, 15.0, 0.0, 1),
                    ("c", 5, 6, 300.0, 15.0, 1800.0, 1)])
    with pytest.raises(NetworkError, match="closed links"):  # demand on closed links
        MesoModel(links, _vehicles([0.0], ["a", "b"]))
    with pytest.raises(NetworkError, match="unknown links"):
        MesoModel(links, _vehicles([0.0], ["a", "zz"]))
    with pytest.raises(NetworkError, match="do not meet"):
        MesoModel(links, _vehicles([0.0], ["a", "c"]))
    neg = links.copy()
    neg.loc[0, "capacity"] = -1
    with pytest.raises(NetworkError, match="capacity"):
        MesoModel(neg, _vehicles([0.0], ["a"]))
    with pytest.raises(ParameterError, match="departure"):
        MesoModel(links, _vehicles([-5.0], ["a"]))
    with pytest.raises(ParameterError, match="empty routes"):
        MesoModel(links, _vehicles([0.0], []))
    with pytest.raises(ParameterError, match="dt"):
        MesoParameters(dt=0)
    with pytest.raises(ParameterError, match="until"):
        MesoModel(links, _vehicles([0.0], ["a"])).run(until=0)


def test_sumo_route_reader_bad_files(tmp_path):
    p = tmp_path / "r.rou.xml"
    p.write_text('<routes><flow id="f" begin="0" period="1"><route edges="a b"/></flow></routes>')
    with pytest.raises(ImportFormatError, match="flow"):
        read_sumo_routes(p)
    p.write_text("<routes><vehicle id='v' depart='x'><route edges='a'/></vehicle></routes>")
    with pytest.raises(ImportFormatError, match="depart"):
        read_sumo_routes(p)
    p.write_text("<routes><vehicle")
    with pytest.raises(ImportFormatError, match="XML"):
        read_sumo_routes(p)
    p.write_text("<routes><route id='r1' edges='a b'/><vehicle id='v' depart='3' route='r1'/></routes>")
    df = read_sumo_routes(p)
    assert df.loc[0, "edges"] == ["a", "b"] and df.loc[0, "depart"] == 3.0


def test_kernels_run_without_jit(python_run):
    # The kernels are plain Python under NUMBA_DISABLE_JIT=1 (debugging): same answers on small cases.
    code = (
        "import numpy as np, pandas as pd\n"
        "from simulation.traffic import Network, Demand, assign, MesoModel, MesoParameters\n"
        "links = pd.DataFrame({'from_node': [0, 0], 'to_node': [1, 1], 'free_flow_time': [10.0, 15.0],\n"
        "                      'capacity': [1.0, 1.0], 'b': [0.1, 1 / 30], 'power': [1.0, 1.0]})\n"
        "r = assign(Network.from_links(links, zones=[0, 1]), Demand([0, 1], [[0, 10], [0, 0]]), rgap=1e-10)\n"
        "assert abs(r.flow[0] - 20 / 3) < 1e-6, r.flow\n"
        "L = pd.DataFrame({'link_id': ['a'], 'from_node': [0], 'to_node': [1], 'length': [300.0],\n"
        "                  'speed': [15.0], 'capacity': [0.8 * 3600], 'lanes': [1]})\n"
        "dep = np.arange(0, 120, 1 / 1.2)\n"
        "v = pd.DataFrame({'vehicle_id': np.arange(len(dep)), 'depart': dep, 'edges': [['a']] * len(dep)})\n"
        "m = MesoModel(L, v, MesoParameters(dt=0.5)).run(until=400)\n"
        "d = m.trips['delay'].sum()\n"
        "assert abs(d - 1.2 * 0.4 * 120 ** 2 / 1.6) < 0.03 * 4320, d\n"
        "print('ok')\n")
    out = python_run(code, jit=False)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


# ------------------------------------------------------------ bug hunt: bad input, silent wrong answers
def test_until_must_be_finite():
    links = _links([("a", 0, 1, 300.0, 15.0, 1800.0, 1)])
    with pytest.raises(ParameterError, match="finite"):  # was a raw OverflowError
        MesoModel(links, _vehicles([0.0], ["a"])).run(until=np.inf)


def test_blocked_until_is_checked():
    links = _links([("a", 0, 1, 300.0, 15.0, 1800.0, 1)])
    veh = _vehicles([0.0], ["a"])
    with pytest.raises(NetworkError, match="blocked_until names unknown link 'zz'"):  # said "route file"
        MesoModel(links, veh, blocked_until={"zz": 10.0})
    with pytest.raises(ParameterError, match="blocked_until"):  # NaN blocked the link for ever, silently
        MesoModel(links, veh, blocked_until={"a": np.nan})
    with pytest.raises(ParameterError, match="got 'soon'"):  # the message showed nan, not the value given
        MesoModel(links, veh, blocked_until={"a": "soon"})
    r = MesoModel(links, veh, blocked_until={"a": 30.0}).run(until=100)
    assert 30.0 <= r.trips["arrive"].iloc[0] <= 32.0  # released at 30 s, within one headway (2 s)


def test_route_vehicles_when_the_first_link_is_closed():
    from simulation.traffic import route_vehicles

    links = _links([("a", 0, 1, 300.0, 15.0, 0.0, 1), ("b", 1, 2, 300.0, 15.0, 1800.0, 1),
                    ("c", 0, 2, 900.0, 15.0, 1800.0, 1)])
    # used to fail with "1 vehicles are routed over closed links ['a']" (its own placeholder vehicle)
    assert route_vehicles(links, [0, 1], [2, 2]) == [["c"], ["b"]]
    with pytest.raises(ParameterError, match="one finite number >= 0 per link"):  # read past the array
        route_vehicles(links, [0], [2], cost=[1.0])
    with pytest.raises(ParameterError, match="negative"):
        route_vehicles(links, [0], [2], cost=[1.0, 1.0, -5.0])


def test_closed_link_error_points_to_an_existing_remedy():
    links = _links([("a", 0, 1, 300.0, 15.0, 0.0, 1)])
    with pytest.raises(NetworkError, match="closed links") as e:
        MesoModel(links, _vehicles([0.0], ["a"]))
    assert "reroute_closed" not in str(e.value) and "route_vehicles" in str(e.value)


def test_bad_vehicle_tables():
    links = _links([("a", 0, 1, 300.0, 15.0, 1800.0, 1)])
    with pytest.raises(ParameterError, match="list of link ids"):  # was "zero-dimensional arrays ..."
        MesoModel(links, pd.DataFrame({"vehicle_id": ["v"], "depart": [0.0], "edges": ["a"]}))
    dup = pd.DataFrame({"vehicle_id": ["v", "v"], "depart": [0.0, 1.0], "edges": [["a"], ["a"]]})
    with pytest.raises(ParameterError, match="unique"):  # trips and trajectories of two vehicles mixed
        MesoModel(links, dup)
    assert MesoParameters(dt=np.float32(0.5)).dt == 0.5 and MesoParameters(record_interval=np.int64(30))


def test_od_from_routes_refuses_empty_routes():
    from simulation.traffic import od_from_routes

    links = pd.DataFrame({"link_id": ["a"], "from_node": [1], "to_node": [2]})
    veh = pd.DataFrame({"vehicle_id": [0, 1], "depart": [0.0, 1.0], "edges": [["a"], []]})
    with pytest.raises(ImportFormatError, match="empty route"):  # was a raw IndexError
        od_from_routes(veh, links)


def test_compare_meso_keeps_links_of_either_run():
    links = _links([("a", 0, 1, 300.0, 15.0, 1800.0, 1)])
    more = _links([("a", 0, 1, 300.0, 15.0, 1800.0, 1), ("n", 1, 2, 300.0, 15.0, 1800.0, 1)])
    base = MesoModel(links, _vehicles([0.0, 5.0], ["a"])).run(until=100)
    other = MesoModel(more, _vehicles([0.0, 5.0], ["a", "n"])).run(until=100)
    table, _ = compare_meso(base, other)
    t = table.set_index("link_id")
    assert list(t.index) == ["a", "n"] and t.loc["n", "vehicles_diff"] == 2


def test_links_without_end_nodes_are_refused():
    # 'a' (x -> None) and 'b' (None -> y) used to meet at a phantom node None and carry a vehicle across
    links = pd.DataFrame({"link_id": ["a", "b"], "from_node": ["x", None], "to_node": [None, "y"],
                          "length": [100.0, 100.0], "speed": [10.0, 10.0], "capacity": [1800.0, 1800.0]})
    with pytest.raises(NetworkError, match="no from_node or to_node"):
        MesoModel(links, pd.DataFrame({"vehicle_id": [0], "depart": [0.0], "edges": [["a", "b"]]}))


def test_no_vehicles_with_route_iterations():
    # an empty demand (demand scale 0, every trip cut off by closures) with route choice was a raw ValueError
    links = _links([("a", 0, 1, 300.0, 15.0, 1800.0, 1)])
    veh = pd.DataFrame({"vehicle_id": [], "depart": [], "edges": []})
    r = MesoModel(links, veh, MesoParameters(route_iterations=3)).run(until=100)
    assert r.summary()["vehicles"] == 0 and len(r.history) == 3
