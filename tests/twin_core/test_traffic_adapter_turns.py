"""The twin's allowed turns (table road_turns): written by the SUMO import, read by the traffic adapter, which
routes by them; a table naming unknown links is refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from twin_core.errors import NetworkError

NET = Path("/work/shared/data/chengdu/chengdu.net.xml")


@pytest.fixture
def twin(small_city_gpkg, small_city):
    from twin_core.twin import Twin

    t = Twin.open(small_city_gpkg)
    t.store.write_table("road_turns", small_city.tables["road_turns"])
    yield t
    t.close()


@pytest.mark.skipif(not NET.exists(), reason="Chengdu network not present")
def test_sumo_import_writes_the_turns(store):
    from cim.io.sumo import import_sumo_net, read_sumo_connections

    import_sumo_net(store, NET)
    turns = store.read_table("road_turns")
    links = store.read_layer("road_links")
    assert list(turns.columns) == ["from_link", "to_link", "dir"]
    ids = set(links.link_id)
    assert set(turns.from_link) <= ids and set(turns.to_link) <= ids
    con = read_sumo_connections(NET)
    con = con[con.from_edge.isin(ids) & con.to_edge.isin(ids)]
    assert len(turns) == con.groupby(["from_edge", "to_edge"]).ngroups
    assert set(turns["dir"]) <= {"s", "l", "r", "L", "R", "t"}


def test_simulated_routes_keep_to_the_turns(twin, small_city):
    from twin_core.adapters.traffic import network_links, network_turns, run_simulate

    links = network_links(twin.layer("road_links"))
    turns = network_turns(twin, links)
    assert len(turns) == len(small_city.tables["road_turns"])
    run = run_simulate(twin, save=False, route_iterations=2, until=1800)
    allowed = set(zip(turns.from_link, turns.to_link))
    traj = run.result.trajectories
    moves = [(a, b) for _, g in traj.groupby("vehicle_id", sort=False)
             for a, b in zip(g.link_id.iloc[:-1], g.link_id.iloc[1:])]
    assert moves and all(m in allowed for m in moves)


def test_assign_uses_the_turns(twin):
    from twin_core.adapters.traffic import run_assign

    with_turns = run_assign(twin, save=False)
    twin.store.delete_table("road_turns")
    free = run_assign(twin, save=False)
    # the same demand; without turns any turn (U-turns too) is allowed, so no trip is slower than with them
    assert with_turns.summary["trips"] == pytest.approx(free.summary["trips"])
    assert with_turns.summary["tstt"] > free.summary["tstt"]
    # the summary says what the routes kept to: how many turns, or None (every turn allowed)
    assert with_turns.summary["turn_rules"] > 0
    assert free.summary["turn_rules"] is None


def test_cli_says_when_a_twin_has_no_turn_rules(twin, small_city_gpkg):
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    def run(*a):
        res = CliRunner().invoke(get_app(), ["traffic", *a, small_city_gpkg, "--quiet"])
        assert res.exit_code == 0, res.output
        return res.output

    assert "no turn rules" not in run("assign")
    twin.store.delete_table("road_turns")
    out = run("assign")
    assert "no turn rules in this twin" in out and "U-turns" in out
    assert "no turn rules in this twin" in run("simulate", "--until", "600", "--route-iterations", "1")


def test_turns_naming_unknown_links_are_refused(twin):
    from twin_core.adapters.traffic import run_assign

    twin.store.write_table("road_turns", pd.DataFrame({"from_link": ["nosuch"], "to_link": ["-100289006#1"],
                                                       "dir": ["s"]}))
    with pytest.raises(NetworkError, match="road_turns.*not in road_links.*'nosuch'"):
        run_assign(twin, save=False)
    twin.store.write_table("road_turns", pd.DataFrame({"src": ["a"], "dst": ["b"]}))
    with pytest.raises(NetworkError, match="from_link and to_link"):
        run_assign(twin, save=False)
