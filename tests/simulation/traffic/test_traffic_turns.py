"""Turn restrictions: a banned left turn and a banned U-turn send routes the longer legal way, in the static
assignment (link-based all-or-nothing) and in the mesoscopic model; without turns the short way, as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulation.traffic import (Demand, MesoModel, MesoParameters, Network, assign, read_tntp, route_vehicles,
                                shortest_path_skims)
from simulation.traffic import _kernels as K
from simulation.traffic.assignment import _Problem
from twin_core.errors import NetworkError, ParameterError

TNTP = Path("/work/shared/data/tntp")

#         b (left, 10 s)
#   0 --a--> 1 --------------> 2 --i--> 1 (back)
#   ^  <-ar-- | \g  5 --h--/   ^
#             c  \-------->    e
#             v                |
#             3 ------d------> 4        f: 3 -> 1 (back up c)
# Every link 10 s free flow (h 12 s). Allowed: a->c, a->g, c->d, d->e, g->h, f->ar, f->b, e->i, i->ar, b->i, h->i.
# Banned: the left turn a->b and the U-turns a->ar, c->f.
LINKS = [("a", 0, 1, 10.0), ("b", 1, 2, 10.0), ("c", 1, 3, 10.0), ("d", 3, 4, 10.0), ("e", 4, 2, 10.0),
         ("ar", 1, 0, 10.0), ("f", 3, 1, 10.0), ("i", 2, 1, 10.0), ("g", 1, 5, 10.0), ("h", 5, 2, 12.0)]
TURNS = pd.DataFrame([("a", "c"), ("a", "g"), ("c", "d"), ("d", "e"), ("g", "h"), ("f", "ar"), ("f", "b"),
                      ("e", "i"), ("i", "ar"), ("b", "i"), ("h", "i")], columns=["from_link", "to_link"])


def _table(b=0.0):
    df = pd.DataFrame(LINKS, columns=["link_id", "from_node", "to_node", "free_flow_time"])
    df["capacity"] = 10.0
    df["b"] = b
    df["power"] = 1.0
    return df


def _meso_links():
    df = pd.DataFrame(LINKS, columns=["link_id", "from_node", "to_node", "fft"])
    df["speed"] = 15.0
    df["length"] = df["fft"] * 15.0
    df["capacity"] = 1800.0
    df["lanes"] = 1
    return df.drop(columns="fft")


def _flows(res):
    return dict(zip(res.links["link_id"], np.round(res.flow, 9)))


def test_assign_takes_the_legal_way_round_a_banned_left_turn():
    dem = Demand([0, 2], [[0, 5.0], [0, 0]])
    free = assign(Network.from_links(_table(), zones=[0, 2]), dem, rgap=1e-9)
    legal = assign(Network.from_links(_table(), zones=[0, 2], turns=TURNS), dem, rgap=1e-9)
    # without turns: a then left b, 20 s; with them a, g, h: 10 + 10 + 12 = 32 s (a, c, d, e: 40 s)
    assert free.skim[0, 1] == pytest.approx(20.0)
    assert {k for k, v in _flows(free).items() if v} == {"a", "b"}
    assert legal.skim[0, 1] == pytest.approx(32.0)
    assert {k: v for k, v in _flows(legal).items() if v} == {"a": 5.0, "g": 5.0, "h": 5.0}
    assert legal.tstt == pytest.approx(5 * 32.0)


def test_assign_with_a_banned_u_turn_goes_round_the_block():
    # from 3 back to 0: f then ar (f -> ar allowed), 20 s; from 4 to 0: e, i, ar (30 s)
    dem = Demand([3, 4, 0], [[0, 0, 2.0], [0, 0, 3.0], [0, 0, 0]])
    r = assign(Network.from_links(_table(), zones=[3, 4, 0], turns=TURNS), dem, rgap=1e-9)
    assert r.skim[0, 2] == pytest.approx(20.0) and r.skim[1, 2] == pytest.approx(30.0)
    assert {k: v for k, v in _flows(r).items() if v} == {"f": 2.0, "ar": 5.0, "e": 3.0, "i": 3.0}
    # from 0 to 3 the U-turn c -> f is banned, so 3 -> 1 is not reached from a by c: a, c = 20 s
    r = assign(Network.from_links(_table(), zones=[0, 1, 3], turns=TURNS),
               Demand([0, 1, 3], [[0, 0, 1.0], [0, 0, 0], [0, 0, 0]]), rgap=1e-9)
    assert r.skim[0, 2] == pytest.approx(20.0)


def test_turns_conserve_flow_at_nodes_and_ue_converges():
    # BPR congestion (b = 0.15, power 4, capacity 10): a, g, h and a, c, d, e share 30 trips at equilibrium
    df = _table(0.15)
    df["power"] = 4.0
    net = Network.from_links(df, zones=[0, 2], turns=TURNS)
    r = assign(net, Demand([0, 2], [[0, 30.0], [0, 0]]), rgap=1e-8, max_iter=2000)
    assert r.converged and r.rgap <= 1e-8
    f = _flows(r)
    assert f["b"] == 0.0 and f["ar"] == 0.0 and f["f"] == 0.0 and f["i"] == 0.0
    assert f["g"] > 0 and f["c"] > 0 and f["g"] + f["c"] == pytest.approx(30.0)
    cost = dict(zip(r.links["link_id"], r.links["cost"]))
    # Wardrop: both used routes cost the same (to the gap's tolerance)
    assert cost["g"] + cost["h"] == pytest.approx(cost["c"] + cost["d"] + cost["e"], rel=1e-4)
    # conservation: at every node inflow - outflow = arrivals - departures
    nodes = np.unique(np.r_[df.from_node, df.to_node])
    inflow = pd.Series(r.flow).groupby(df.to_node.to_numpy()).sum().reindex(nodes, fill_value=0)
    outflow = pd.Series(r.flow).groupby(df.from_node.to_numpy()).sum().reindex(nodes, fill_value=0)
    net_in = (inflow - outflow).to_dict()
    assert net_in[0] == pytest.approx(-30.0) and net_in[2] == pytest.approx(30.0)
    assert all(abs(net_in[n]) < 1e-9 for n in nodes if n not in (0, 2))


def test_no_legal_path_is_disconnected():
    turns = TURNS[~((TURNS.from_link == "a") & TURNS.to_link.isin(["c", "g"]))]  # a is now a dead end
    net = Network.from_links(_table(), zones=[0, 2], turns=turns)
    with pytest.raises(NetworkError, match="no path"):
        assign(net, Demand([0, 2], [[0, 1.0], [0, 0]]))
    r = assign(net, Demand([0, 2], [[0, 1.0], [0, 0]]), on_disconnected="drop")
    assert len(r.disconnected) == 1 and r.flow.sum() == 0.0


@pytest.mark.skipif(not (TNTP / "SiouxFalls_net.tntp").exists(), reason="TNTP data not present")
def test_every_turn_allowed_gives_the_node_based_result():
    net, dem = read_tntp(TNTP / "SiouxFalls_net.tntp", TNTP / "SiouxFalls_trips.tntp")
    lf = net.links_frame()
    pairs = lf.merge(lf, left_on="to_node", right_on="from_node")
    all_turns = pd.DataFrame({"from_link": pairs.link_id_x, "to_link": pairs.link_id_y})
    tnet = Network.from_links(lf, zones=net.zone_ids, turns=all_turns,
                              centroids_block_through=net.centroids_block_through)
    assert tnet.turns.shape[1] == len(all_turns)
    assert np.allclose(shortest_path_skims(net, dem), shortest_path_skims(tnet, dem), rtol=1e-12)
    node = assign(net, dem, rgap=1e-5)
    link = assign(tnet, dem, rgap=1e-5)
    # the same equilibrium (unique in link costs / TSTT), reached by other iterates (ties broken otherwise)
    assert node.converged and link.converged and link.tstt == pytest.approx(node.tstt, rel=1e-4)
    # serial and parallel link-based kernels agree
    p = _Problem(tnet, dem)
    cost = p.cost(np.zeros(tnet.n_links), np.empty(tnet.n_links))
    out = []
    for fn in (K.all_or_nothing_turns_serial, K.all_or_nothing_turns_parallel):
        flows, skim = np.full_like(p.flows_by_origin, np.nan), np.full_like(p.skim, np.nan)
        fn(p.origins, p.zone_nodes, p.demand, p.indptr, p.link_of, p.succ[0], p.succ[1], tnet.heads, cost,
           p.first_thru, tnet.n_nodes, flows, skim)
        out.append((flows, skim))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


def test_network_turns_bad_input():
    with pytest.raises(NetworkError, match="unknown links in to_link.*'zz'"):
        Network.from_links(_table(), zones=[0, 2], turns=pd.DataFrame({"from_link": ["a"], "to_link": ["zz"]}))
    with pytest.raises(NetworkError, match="do not meet.*'a' -> 'd'"):
        Network.from_links(_table(), turns=pd.DataFrame({"from_link": ["a"], "to_link": ["d"]}))
    with pytest.raises(NetworkError, match="from_link and to_link"):
        Network.from_links(_table(), turns=pd.DataFrame({"src": ["a"], "dst": ["c"]}))
    with pytest.raises(ParameterError, match="DataFrame"):
        Network.from_links(_table(), turns=[("a", "c")])
    # SUMO's connection table: connections of edges that are not links (footways) are left out
    sumo = pd.DataFrame({"from_edge": ["a", "a", "foot"], "to_edge": ["c", "walk", "a"]})
    assert Network.from_links(_table(), turns=sumo).turns.shape == (2, 1)


def test_route_vehicles_keeps_to_the_turns():
    links = _meso_links()
    free = route_vehicles(links, [0, 3], [2, 0])
    legal = route_vehicles(links, [0, 3, 4], [2, 0, 0], turns=TURNS)
    assert free == [["a", "b"], ["f", "ar"]]
    assert legal == [["a", "g", "h"], ["f", "ar"], ["e", "i", "ar"]]
    with pytest.raises(NetworkError, match="allowed turns"):
        route_vehicles(links, [0], [2], turns=TURNS[TURNS.from_link != "a"])


def test_meso_route_choice_respects_a_banned_left_turn_and_u_turn():
    links = _meso_links()
    veh = pd.DataFrame({"vehicle_id": ["left", "back"], "depart": [0.0, 0.0],
                        "edges": [["a", "c", "d", "e"], ["c", "d", "e", "i", "ar"]]})
    fft = (links["length"] / links["speed"]).to_numpy()[None, :]
    free = MesoModel(links, veh)
    free._reroute(np.arange(2), np.ascontiguousarray(fft), 300.0)
    legal = MesoModel(links, veh, turns=TURNS)
    legal._reroute(np.arange(2), np.ascontiguousarray(fft), 300.0)

    def routes(m):
        return [m.link_ids[m.route_links[m.route_ptr[v]:m.route_ptr[v + 1]]].tolist()
                for v in range(len(m.depart))]

    # vehicles keep their first and last link: without turns a -> e can only be a, c, d, e; 'back' U-turns at 3
    assert routes(free) == [["a", "c", "d", "e"], ["c", "f", "ar"]]
    assert routes(legal) == [["a", "c", "d", "e"], ["c", "d", "e", "i", "ar"]]
    veh2 = pd.DataFrame({"vehicle_id": ["v"], "depart": [0.0], "edges": [["a", "c", "d", "e", "i"]]})
    m = MesoModel(links, veh2, turns=TURNS)
    m._reroute(np.arange(1), np.ascontiguousarray(fft), 300.0)
    assert routes(m) == [["a", "g", "h", "i"]]  # 42 s, not a, b, i (30 s: the banned left turn)
    m = MesoModel(links, veh2)
    m._reroute(np.arange(1), np.ascontiguousarray(fft), 300.0)
    assert routes(m) == [["a", "b", "i"]]
    r = MesoModel(links, veh2, MesoParameters(route_iterations=3), turns=TURNS).run(until=600)
    assert "b" not in set(r.trajectories.link_id)
    assert "b" in set(MesoModel(links, veh2, MesoParameters(route_iterations=3)).run(until=600).trajectories.link_id)


def test_meso_refuses_routes_that_break_the_turns():
    veh = pd.DataFrame({"vehicle_id": ["v"], "depart": [0.0], "edges": [["a", "b"]]})
    MesoModel(_meso_links(), veh)  # no turns: any continuation
    with pytest.raises(NetworkError, match="turns from link 'a' to 'b'"):
        MesoModel(_meso_links(), veh, turns=TURNS)
    with pytest.raises(NetworkError, match="unknown links"):
        MesoModel(_meso_links(), veh, turns=pd.DataFrame({"from_link": ["a"], "to_link": ["nope"]}))
