"""BPR column names, TNTP header checks (<FIRST THRU NODE> as a node number, node count, zero capacity) and
Demand errors that name the OD pair."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulation.traffic import Demand, Network, assign, read_tntp
from simulation.traffic.io import read_tntp_net
from twin_core.errors import ImportFormatError, NetworkError, ParameterError, TwinWarning

TNTP = Path("/work/shared/data/tntp")
pytestmark = pytest.mark.skipif(not (TNTP / "SiouxFalls_net.tntp").exists(), reason="TNTP data not present")


def _sioux(tmp_path, **header) -> Path:
    """Sioux Falls' net file with header lines replaced (``FIRST_THRU_NODE=10``) and links dropped."""
    text = (TNTP / "SiouxFalls_net.tntp").read_text()
    for key, value in header.items():
        text = re.sub(rf"<{key.replace('_', ' ')}>[^\n]*", f"<{key.replace('_', ' ')}> {value}", text)
    p = tmp_path / "sf_net.tntp"
    p.write_text(text)
    return p


@pytest.mark.parametrize("names", [("alpha", "beta"), ("B", "Power"), ("bpr_alpha", "bpr_beta")])
def test_bpr_columns_under_their_usual_names_are_read(names):
    links, _ = read_tntp_net(TNTP / "SiouxFalls_net.tntp")
    zones = np.arange(1, 25)
    dem = read_tntp(TNTP / "SiouxFalls_net.tntp", TNTP / "SiouxFalls_trips.tntp")[1]
    base = assign(Network.from_links(links, zones=zones), dem, rgap=1e-4)
    renamed = links.rename(columns={"b": names[0], "power": names[1]})
    net = Network.from_links(renamed, zones=zones)
    assert np.allclose(net.b, links["b"]) and np.allclose(net.power, links["power"])
    renamed[names[0]] = 1.0  # a much steeper BPR curve must cost more (it was ignored: 0.15 used)
    steep = assign(Network.from_links(renamed, zones=zones), dem, rgap=1e-4)
    assert steep.tstt > 1.5 * base.tstt
    assert np.allclose(Network.from_links(renamed, zones=zones).b, 1.0)


def test_two_disagreeing_bpr_columns_are_refused():
    links, _ = read_tntp_net(TNTP / "SiouxFalls_net.tntp")
    links["alpha"] = 1.0
    with pytest.raises(NetworkError, match="'b' and 'alpha'.*keep one"):
        Network.from_links(links, zones=np.arange(1, 25))
    links["alpha"] = links["b"]  # the same values twice: no doubt
    assert np.allclose(Network.from_links(links, zones=np.arange(1, 25)).b, links["b"])


def test_first_thru_node_value_blocks_only_the_nodes_below_it(tmp_path):
    net, dem = read_tntp(_sioux(tmp_path, FIRST_THRU_NODE=1), TNTP / "SiouxFalls_trips.tntp")
    assert net.first_thru == 0
    net, dem = read_tntp(_sioux(tmp_path, FIRST_THRU_NODE=3), TNTP / "SiouxFalls_trips.tntp")
    assert net.first_thru == 2  # nodes 1 and 2 only (it was all 24 zones)
    r = assign(net, dem, rgap=1e-4)  # nodes 1, 2 blocking leaves every pair a path
    assert r.converged and len(r.disconnected) == 0
    # node 1 and 2 carry no through flow: what enters them ends there
    flows = pd.DataFrame({"to": net.node_ids[net.heads], "from": net.node_ids[net.tails], "flow": r.flow})
    for node in (1, 2):
        inflow = flows.loc[flows["to"] == node, "flow"].sum()
        assert inflow == pytest.approx(dem.matrix[:, node - 1].sum(), rel=1e-6)


def test_no_path_because_of_the_header_says_so(tmp_path):
    net, dem = read_tntp(_sioux(tmp_path, FIRST_THRU_NODE=10), TNTP / "SiouxFalls_trips.tntp")
    assert net.first_thru == 9
    with pytest.raises(NetworkError, match=r"zones 1\.\.9 carry no through traffic.*FIRST THRU NODE> 10"):
        assign(net, dem, rgap=1e-4)


def test_first_thru_node_checked_against_nodes_and_zones(tmp_path):
    with pytest.raises(ImportFormatError, match="FIRST THRU NODE> 99 is outside 1..25"):
        read_tntp_net(_sioux(tmp_path, FIRST_THRU_NODE=99))
    trips = tmp_path / "t.tntp"
    trips.write_text((TNTP / "SiouxFalls_trips.tntp").read_text())
    net_file = _sioux(tmp_path, FIRST_THRU_NODE=25)
    net, _ = read_tntp(net_file, trips)
    assert net.first_thru == 24


def test_node_count_and_zero_capacity_warned(tmp_path):
    with pytest.warns(TwinWarning, match="NUMBER OF NODES> says 30 but the links join 24"):
        read_tntp_net(_sioux(tmp_path, NUMBER_OF_NODES=30))
    text = (TNTP / "SiouxFalls_net.tntp").read_text().splitlines()
    i = next(k for k, line in enumerate(text) if re.match(r"\s*1\s+2\s", line))
    parts = text[i].split("\t")
    j = next(k for k, v in enumerate(parts) if v.strip() and k > 2 and float(v) > 1000)  # the capacity field
    parts[j] = "0"
    text[i] = "\t".join(parts)
    p = tmp_path / "zero_net.tntp"
    p.write_text("\n".join(text))
    with pytest.warns(TwinWarning, match=r"1 links have capacity 0 and are taken as closed \(e.g. \[\(1, 2\)\]"):
        read_tntp_net(p)


def test_demand_errors_name_the_od_pair():
    with pytest.raises(ParameterError, match="trips from zone 'b' to zone 'a' are -1.0"):
        Demand(np.array(["a", "b"]), np.array([[0.0, 1.0], [-1.0, 0.0]]))
    df = pd.DataFrame({"origin": [1, 2], "destination": [2, 1], "trips": [3.0, np.nan]})
    with pytest.raises(ParameterError, match="trips from zone 2 to zone 1 are nan"):
        Demand.from_frame(df)


def test_centroids_block_through_checked():
    links = pd.DataFrame({"from_node": [1, 2], "to_node": [2, 3], "free_flow_time": [1.0, 1.0],
                          "capacity": [10.0, 10.0]})
    with pytest.raises(ParameterError, match="centroids_block_through"):
        Network.from_links(links, zones=[1, 3], centroids_block_through=5)
