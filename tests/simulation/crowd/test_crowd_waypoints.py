"""Waypoints: routes agents must walk in order before heading for an exit."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, box

from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, WalkableArea
from twin_core.errors import GeometryError, ParameterError, TwinWarning

KIOSK = (10.0, 9.0)
R_KIOSK = 0.75


def _plaza():
    # an open 20 m x 10 m room, exit in the middle of the east wall; the kiosk (north) and the
    # gate (a line across the south strip) are far off the straight way from the west to the exit
    return WalkableArea(box(0, 0, 20, 10), exits={"east": [(20, 4.5), (20, 5.5)]},
                        waypoints={"kiosk": KIOSK, "gate": [(14, 0), (14, 2)]}, waypoint_radius=R_KIOSK)


@pytest.mark.parametrize("model", ["csm", "sfm"])
def test_route_forces_agents_through_waypoints_in_order(model):
    area = _plaza()
    routed = Agents.in_region(area, box(1, 3, 3, 7), n=12, seed=0, route=["kiosk", "gate"], group=1)
    free = Agents.in_region(area, box(3.5, 3, 5, 7), n=6, seed=1)  # no route: straight to the exit
    res = CrowdSimulation(area, [routed, free], CrowdParameters(model=model, record_interval=0.1)).run(until=200)
    assert res.status == "evacuated" and res.evacuated == 18
    tr = res.trajectories
    # tolerances: the waypoint's reach is one floor-field cell (0.1 m) beyond its geometry, and a
    # trajectory frame every 0.1 s at <= 2.6 m/s (speed clip 2.0 x sfm vmax factor 1.3) misses at most 0.26 m
    tol = 0.1 + 0.26
    for a in range(18):
        t = tr[tr.agent == a]
        d_kiosk = np.hypot(t.x - KIOSK[0], t.y - KIOSK[1]).to_numpy()
        if a >= 12:
            assert d_kiosk.min() > 2.0, f"agent {a} without a route went near the kiosk"
            continue
        assert d_kiosk.min() <= R_KIOSK + tol, f"agent {a} missed the kiosk by {d_kiosk.min():.2f} m"
        t_kiosk = t.time_s.to_numpy()[np.argmax(d_kiosk <= R_KIOSK + tol)]
        # distance to the gate segment (14, 0)-(14, 2)
        d_gate = np.hypot(t.x.to_numpy() - 14.0, t.y.to_numpy() - np.clip(t.y.to_numpy(), 0.0, 2.0))
        assert d_gate.min() <= tol, f"agent {a} missed the gate by {d_gate.min():.2f} m"
        t_gate = t.time_s.to_numpy()[np.argmax(d_gate <= tol)]
        assert t_kiosk < t_gate < res.exit_time[a]
    # the engine's own record agrees: kiosk then gate, before leaving
    wp = res.waypoint_passages
    assert len(wp) == 24 and set(wp.agent) == set(range(12))
    for a, g in wp.groupby("agent"):
        assert g.sort_values("time_s").waypoint.tolist() == ["kiosk", "gate"]
        assert g.time_s.max() < res.exit_time[a]


def test_polygon_waypoint_and_per_agent_routes():
    area = WalkableArea(box(0, 0, 10, 6), exits={"east": [(10, 2.5), (10, 3.5)]},
                        waypoints={"stall": box(4, 4.5, 5, 5.5), "post": (6, 1)})
    ag = Agents([1.0, 1.0, 1.0], [1.0, 3.0, 5.0], route=[["stall"], None, ["post", "stall"]])
    res = CrowdSimulation(area, ag, CrowdParameters(record_interval=0.1)).run(until=100)
    assert res.status == "evacuated" and res.evacuated == 3
    got = res.waypoint_passages.sort_values("time_s").groupby("agent")["waypoint"].agg(list).to_dict()
    assert got == {0: ["stall"], 2: ["post", "stall"]}
    tr = res.trajectories
    # reached = within one floor-field cell (0.1 m) of the stall; frames 0.1 s apart at <= 2 m/s add 0.2 m
    for a in (0, 2):
        t = tr[tr.agent == a]
        dx = np.maximum(np.maximum(4 - t.x, t.x - 5), 0)
        dy = np.maximum(np.maximum(4.5 - t.y, t.y - 5.5), 0)
        assert np.hypot(dx, dy).min() <= 0.3


def test_waypoint_geometry_and_names_are_checked():
    room = box(0, 0, 10, 6).difference(box(4, 2, 6, 4))
    exits = {"east": [(10, 2.5), (10, 3.5)]}
    with pytest.raises(GeometryError, match="waypoint 'pillar'.*not on the walkable area"):
        WalkableArea(room, exits=exits, waypoints={"pillar": (5, 3)})  # inside the hole
    with pytest.raises(GeometryError, match="waypoint 'far'.*not on the walkable area"):
        WalkableArea(room, exits=exits, waypoints={"far": (15, 3)})
    with pytest.raises(GeometryError, match="waypoint 'wall'.*not on the walkable area"):
        WalkableArea(room, exits=exits, waypoints={"wall": [(8, -1), (8, 2)]})
    with pytest.raises(GeometryError, match="waypoint 'odd' must be"):
        WalkableArea(room, exits=exits, waypoints={"odd": "here"})
    with pytest.raises(ParameterError, match="also exit names"):
        WalkableArea(room, exits=exits, waypoints={"east": (2, 2)})
    for bad in (0, -1.0, float("nan"), "1"):
        with pytest.raises(ParameterError, match="waypoint_radius must be a finite number > 0"):
            WalkableArea(room, exits=exits, waypoints={"a": (2, 1)}, waypoint_radius=bad)
    with pytest.raises(ParameterError, match="waypoints must be a dict"):
        WalkableArea(room, exits=exits, waypoints=[(2, 1)])
    with pytest.raises(ParameterError, match="route must be waypoint names"):
        Agents([1.0, 2.0], [5.0, 5.0], route=[["a"], [3]])
    area = WalkableArea(room, exits=exits, waypoints={"a": (2, 1)})
    with pytest.raises(GeometryError, match="unknown waypoint 'b'; waypoints are \\['a'\\]"):
        CrowdSimulation(area, Agents([1.0], [5.0], route=["a", "b"]))
    with pytest.raises(ParameterError, match="one per agent"):
        Agents([1.0, 2.0], [5.0, 5.0], route=[["a"], ["a"], ["a"]])


def test_unreachable_waypoint_is_refused():
    two_rooms = MultiPolygon([box(0, 0, 5, 5), box(6, 0, 11, 5)])
    area = WalkableArea(two_rooms, exits={"west": [(0, 2), (0, 3)]}, waypoints={"a": (2, 2), "b": (8, 2)})
    with pytest.raises(GeometryError, match="cannot reach waypoint 'b'"):
        CrowdSimulation(area, Agents([2.5], [4.0], route=["b"]))
    with pytest.raises(GeometryError, match="waypoint 'b' cannot be reached from waypoint 'a'"):
        CrowdSimulation(area, Agents([2.5], [4.0], route=["a", "b"]))
    with pytest.raises(GeometryError, match="no open exit can be reached from waypoint 'b'"):
        CrowdSimulation(area, Agents([9.0], [4.0], route=["b"]))


def test_a_jam_at_a_waypoint_is_reported_there_not_at_the_door():
    # 300 people routed through one point in a corner crowd round it and stop; the report said
    # "door jam at exit 'door'" with the position of the waypoint
    area = WalkableArea(box(0, 0, 12, 12), exits={"door": [(12, 5.5), (12, 6.5)]},
                        waypoints={"kiosk": (1.0, 11.0)}, waypoint_radius=0.3)
    ag = Agents.in_region(area, box(3, 0.5, 11.5, 11.5), n=300, seed=0, route=["kiosk"])
    with pytest.warns(TwinWarning, match="waypoint jam at waypoint 'kiosk' \\(on the way to exit 'door'\\)"):
        res = CrowdSimulation(area, ag, CrowdParameters(jam_window=10)).run(until=120)
    j = res.jams[0]
    assert (j.kind, j.waypoint, j.exit) == ("waypoint", "kiosk", "door")
    assert np.hypot(j.x - 1.0, j.y - 11.0) < 5.0  # round the kiosk, far from the door at (12, 6)
