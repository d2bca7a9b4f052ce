"""A wall's force does not depend on how its outline is cut into segments.

The kernels sum the wall force over wall segments. At a vertex two segments share, an agent beyond
both segments' ends (round a door jamb, a corridor's mouth) finds that vertex nearest on both, so the
plain sum counted the wall twice there, and on a straight wall with extra vertices (IFC and GIS outlines
have them) twice near each vertex. HFV (2000) define the wall force with the distance to the wall.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, WalkableArea
from simulation.crowd import _kernels as K
from simulation.crowd.geometry import wall_vertex_table

B = 0.08  # HFV 2000 wall range (m)


def _force(seg, px, py, r=0.25):
    """HFV 2000's wall force direction sum, A_w = 1, at (px, py), as the kernels weight the segments."""
    table = wall_vertex_table(seg)
    fx = fy = 0.0
    for s in range(len(table)):
        qx, qy, wt = K._wall_point(px, py, table, s)
        d = math.hypot(px - qx, py - qy)
        f = wt * math.exp((r - d) / B)
        fx += f * (px - qx) / d
        fy += f * (py - qy) / d
    return fx, fy


def test_a_straight_wall_pushes_the_same_however_it_is_cut():
    one = np.array([[0.0, 0.0, 4.0, 0.0]])
    xs = np.array([0.0, 0.7, 1.3, 2.0, 4.0])  # vertices at 0.7, 1.3, 2.0
    cut = np.column_stack([xs[:-1], np.zeros(4), xs[1:], np.zeros(4)])
    for px in (0.5, 0.7, 0.71, 1.3, 1.99, 2.0, 2.01, 3.0):
        for py in (0.2, 0.3, 0.5):
            a = _force(one, px, py)
            b = _force(cut, px, py)
            assert b == pytest.approx(a, rel=1e-12, abs=1e-15), (px, py, a, b)


def test_a_convex_corner_pushes_once():
    # a thick wall's end (a door jamb) seen from the floor: the agent beyond both faces' ends is pushed
    # by the corner point once, as by a wall of one piece
    jamb = np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, -1.0, 1.0]])  # wall face up to (0, 1), then the reveal
    for px, py in ((0.2, 1.2), (0.1, 1.25), (0.25, 1.05)):
        fx, fy = _force(jamb, px, py)
        d = math.hypot(px, py - 1.0)
        single = math.exp((0.25 - d) / B)
        assert math.hypot(fx, fy) == pytest.approx(single, rel=1e-12)
    # beside one face only: that face's force, the other segment's end adds nothing
    fx, fy = _force(jamb, 0.2, 0.9)
    assert (fx, fy) == pytest.approx((math.exp((0.25 - 0.2) / B), 0.0), rel=1e-12)


def test_a_room_corner_still_pushes_from_both_walls():
    corner = np.array([[0.0, 0.0, 4.0, 0.0], [0.0, 4.0, 0.0, 0.0]])  # floor x, y > 0
    fx, fy = _force(corner, 0.3, 0.3)
    f = math.exp((0.25 - 0.3) / B)
    assert (fx, fy) == pytest.approx((f, f), rel=1e-12)


@pytest.mark.parametrize("model", ["csm", "sfm"])
def test_a_walker_along_a_wall_with_extra_vertices_walks_the_same(model):
    # the south wall of a 2 m corridor cut every 0.25 m (shapely.segmentize), the walker 0.3 m from it
    plain = box(0, 0, 12, 2)
    cut = Polygon(shapely.segmentize(plain.exterior, 0.25).coords)
    assert len(cut.exterior.coords) > 40
    runs = []
    for poly in (plain, cut):
        area = WalkableArea(poly, exits={"end": [(12, 0), (12, 2)]})
        p = CrowdParameters(model=model, seed=1, record_interval=0.5)
        res = CrowdSimulation(area, Agents([0.5], [0.3], speed=1.3), p).run(until=20)
        runs.append(res.trajectories[["x", "y"]].to_numpy())
    assert runs[0].shape == runs[1].shape
    assert np.abs(runs[0] - runs[1]).max() < 1e-6


def _door_in_a_notched_reveal():
    """A room whose outline runs round a door's reveal 4 cm outside the exit line, with a notch 7 cm deep in it
    between the points where the exit is checked against the outline (FZK-Haus's west door: a stub of wall 0.06 m
    beyond its slightly tilted exit line)."""
    room = box(0, 0, 10, 6)
    reveal = Polygon([(4, 0), (4, -0.04), (5.6, -0.04), (5.6, -0.07), (5.9, -0.07), (5.9, -0.04), (6, -0.04), (6, 0)])
    return WalkableArea(room.union(reveal), exits={"door": [(4, 0), (6, 0)]})


def test_no_wall_just_beyond_an_exit_line():
    area = _door_in_a_notched_reveal()
    beyond = [s for s in area.walls if max(s[1], s[3]) < -0.001 and 4.01 < min(s[0], s[2]) and max(s[0], s[2]) < 5.99]
    assert beyond == []
    # beside the door the room's wall stays
    assert any(min(s[0], s[2]) == 0.0 and max(s[0], s[2]) == 4.0 and s[1] == s[3] == 0.0 for s in area.walls)


@pytest.mark.parametrize("model", ["csm", "sfm"])
def test_a_walker_aiming_at_a_notch_beyond_the_door_gets_out(model):
    # the walker heads straight for the door where the notch lies beyond it; with the notch's 7 cm stub a wall,
    # it could not get its centre within a radius of the line and stood there (a deadlock jam)
    res = CrowdSimulation(_door_in_a_notched_reveal(), Agents([5.75], [2.0]), CrowdParameters(model=model)).run(until=30)
    assert res.status == "evacuated" and res.evacuated == 1
