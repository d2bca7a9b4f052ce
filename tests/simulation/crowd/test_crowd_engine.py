"""Crowd engine: bad input, walls, jams, exits, outputs."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, FloorField, WalkableArea
from twin_core.errors import GeometryError, ParameterError, SimulationError, TwinWarning


def _room():
    return WalkableArea(box(0, 0, 10, 6), exits={"east": [(10, 2.5), (10, 3.5)]})


# ---------------------------------------------------------------- bad input
def test_agent_inside_wall_or_outside_is_refused():
    area = WalkableArea(box(0, 0, 10, 6).difference(box(4, 2, 6, 4)), exits={"east": [(10, 2.5), (10, 3.5)]})
    with pytest.raises(GeometryError, match="outside the walkable area"):
        CrowdSimulation(area, Agents([5.0], [3.0]))  # inside the pillar
    with pytest.raises(GeometryError, match="outside the walkable area"):
        CrowdSimulation(area, Agents([12.0], [3.0]))
    with pytest.raises(GeometryError, match="overlaps a wall"):
        CrowdSimulation(area, Agents([0.1], [3.0]))  # closer to the wall than its radius


def test_overlapping_agents_are_refused():
    with pytest.raises(GeometryError, match="overlap"):
        CrowdSimulation(_room(), Agents([2.0, 2.3], [3.0, 3.0]))
    # the same spot at different release times is fine (a source)
    CrowdSimulation(_room(), Agents([2.0, 2.0], [3.0, 3.0], release_time=[0.0, 5.0]))


def test_exit_not_on_the_area_is_refused():
    with pytest.raises(GeometryError, match="does not lie on the boundary"):
        WalkableArea(box(0, 0, 10, 6), exits={"floating": [(5, 2), (5, 3)]})
    with pytest.raises(GeometryError, match="no exit"):
        WalkableArea(box(0, 0, 10, 6), exits={})


def test_no_reachable_exit_is_refused():
    two_rooms = MultiPolygon([box(0, 0, 5, 5), box(6, 0, 11, 5)])
    area = WalkableArea(two_rooms, exits={"east": [(11, 2), (11, 3)]})
    with pytest.raises(GeometryError, match="cannot reach any open exit"):
        CrowdSimulation(area, Agents([2.5], [2.5]))
    # all exits closed
    with pytest.raises(GeometryError, match="cannot reach any open exit"):
        CrowdSimulation(_room(), Agents([2.5], [2.5]), closed_exits=["east"])


@pytest.mark.parametrize("speed", [0.0, -1.0, np.nan])
def test_zero_or_negative_speed_is_refused(speed):
    with pytest.raises(ParameterError, match="speed must be > 0"):
        Agents([2.0], [3.0], speed=speed)
    with pytest.raises(ParameterError, match="speed_mean"):
        CrowdParameters(speed_mean=speed)


def test_bad_parameters_name_the_choices():
    with pytest.raises(ParameterError, match=r"\['csm', 'sfm'\]"):
        CrowdParameters(model="vadere")
    with pytest.raises(ParameterError, match="radius must be > 0"):
        Agents([2.0], [3.0], radius=-0.2)
    with pytest.raises(ParameterError, match="dt"):
        CrowdParameters(dt=0.5)
    with pytest.raises(ParameterError, match="exactly one of n"):
        Agents.in_region(_room(), n=3, density=1.0)
    with pytest.raises(GeometryError, match="cannot place"):
        Agents.in_region(_room(), box(0, 0, 2, 2), n=100)


# ---------------------------------------------------------------- walls
@pytest.mark.parametrize("model", ["csm", "sfm"])
def test_no_agent_ever_passes_a_wall(model):
    # a room with a thin internal wall (a hole 0.1 m thick) and pillars, 60 agents pushed
    # hard (fast, big steps) towards the door behind the wall
    outer = box(0, 0, 12, 8)
    holes = [box(6, 0.8, 6.1, 7.2), box(3, 3, 3.5, 3.5), box(8, 5, 8.6, 5.6)]
    poly = outer.difference(MultiPolygon(holes))
    area = WalkableArea(poly, exits={"east": [(12, 3.5), (12, 4.5)]})
    p = CrowdParameters(model=model, dt=0.05 if model == "csm" else 0.02, speed_mean=2.0, speed_sd=0.0,
                        speed_clip=(2.0, 2.0), record_interval=None, density_interval=None, on_jam="record")
    ag = Agents.in_region(area, box(0, 0, 5.5, 8), n=60, radius=0.25, seed=7)
    sim = CrowdSimulation(area, ag, p)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        for _ in range(400):
            x0, y0 = sim.x.copy(), sim.y.copy()
            sim.step()
            a = np.flatnonzero(sim.state == 1)
            assert area.contains(sim.x[a], sim.y[a]).all()
            assert not area.crosses_wall(x0[a], y0[a], sim.x[a], sim.y[a]).any()
    assert sim.remaining < 60  # and they do get out round the wall


def test_floor_field_goes_round_obstacles():
    # distance round a wall is longer than the straight line, and close to the true geodesic
    poly = box(0, 0, 10, 10).difference(box(4.9, 0, 5.1, 8))
    area = WalkableArea(poly, exits={"e": [(10, 0), (10, 1)]})
    ff = FloorField(area, 0.1, wall_avoidance=0.0)
    d = ff.values([2.0], [0.5])[0, 0]
    # geodesic from (2, 0.5) round the wall tip at ~(5, 8.05) to the door at (10, 0.5 .. 1)
    geo = np.hypot(5.0 - 2.0, 8.05 - 0.5) + np.hypot(10 - 5.0, 8.05 - 1.0)
    # 16-neighbour Dijkstra: metric error of the stencil up to ~2.5 %, plus the half-cell
    # clearance kept round the 0.2 m wall tip: 5 %
    assert geo < d <= geo * 1.05


# ---------------------------------------------------------------- jams
def test_jam_at_a_door_too_narrow_is_reported():
    # a 0.45 m door cannot pass agents of 0.25 m radius: the crowd stops and the run
    # ends with a door jam reported where and when, instead of running to `until`
    area = WalkableArea(box(0, 0, 6, 4), exits={"slot": [(6, 1.8), (6, 2.25)]})
    ag = Agents.in_region(area, box(0.5, 0.5, 4, 3.5), n=15, radius=0.25, seed=1)
    with pytest.warns(TwinWarning, match="jam at exit 'slot'"):
        res = CrowdSimulation(area, ag, CrowdParameters(jam_window=5.0)).run(until=3600)
    assert res.status == "jammed" and res.time_s <= 30.0
    jam = res.jams[0]
    assert jam.exit == "slot" and jam.x > 4.0 and 1.0 < jam.y < 3.0 and jam.n_agents >= 1
    with pytest.raises(SimulationError, match="jam"):
        CrowdSimulation(area, ag, CrowdParameters(jam_window=5.0, on_jam="raise")).run(until=3600)


# ---------------------------------------------------------------- exits and routing
def _two_exit_room():
    # near exit 1 m wide on the west, far exit 3 m wide on the east
    return WalkableArea(box(0, 0, 16, 8), exits={"west": [(0, 3.5), (0, 4.5)], "east": [(16, 2.5), (16, 5.5)]})


def test_exit_choice_closing_and_congestion():
    area = _two_exit_room()
    ag = Agents.in_region(area, box(0.5, 1, 6.5, 7), n=120, seed=2)
    p = CrowdParameters(record_interval=None, density_interval=None)
    base = CrowdSimulation(area, ag, p).run(until=600)
    use = base.exit_usage().set_index("exit")["agents"]
    assert use["west"] == 120 and use["east"] == 0  # everybody is nearer the west door
    closed = CrowdSimulation(area, ag, p, closed_exits=["west"]).run(until=600)
    assert closed.exit_usage().set_index("exit")["agents"]["east"] == 120
    smart = CrowdSimulation(area, ag, p.replace(congestion_aware=True)).run(until=600)
    use_s = smart.exit_usage().set_index("exit")["agents"]
    assert use_s["east"] > 10  # some walk to the wide far door instead of queueing
    assert smart.evacuation_time < 0.9 * base.evacuation_time


def test_release_schedule_and_outputs():
    area = WalkableArea(box(0, 0, 20, 3), exits={"end": [(20, 0), (20, 3)]})
    ag = Agents.in_region(area, box(0, 0, 2, 3), n=10, seed=0, release_rate=1.0)  # one a second
    lines = {"mid": [(10, 0), (10, 3)]}
    p = CrowdParameters(record_interval=0.5, density_interval=1.0, density_cell=1.0)
    calls = []
    sim = CrowdSimulation(area, ag, p, measurement_lines=lines)
    res = sim.run(until=120, progress=lambda done, total: calls.append((done, total)))
    assert res.status == "evacuated" and res.evacuated == 10
    assert calls[-1] == (10.0, 10.0)
    # each agent crosses the line once, in +x direction, at its walking speed
    c = res.line_crossings
    assert len(c) == 10 and set(c["direction"]) == {1} or set(c["direction"]) == {-1}
    assert c["speed"].between(0.4, 2.1).all()
    # release: the k-th agent enters at k s, so exits are spread over >= ~9 s
    assert np.ptp(res.exit_time) > 5.0
    # density maps integrate to the walkers at that time
    tr = res.trajectories
    k = 5
    t5 = res.density_times[k]
    n_walk = (tr["time_s"].sub(t5).abs() < 1e-6).sum()
    assert res.density[k].sum() * 1.0 == pytest.approx(n_walk)
    # evacuation curve: remaining falls from 10 to 0
    rem = res.curve["remaining"].to_numpy()
    assert rem[0] == 10 and rem[-1] == 0 and (np.diff(rem) <= 0).all()
    fd = res.fundamental_diagram(box(5, 0, 15, 3))
    assert (fd["density_per_m2"] >= 0).all() and fd["speed_m_s"].max() <= 2.1
    # the run's fundamental diagram on the density grid: one (density, speed) point per occupied
    # cell and frame; the densities of a frame add up to the walkers then
    cells = res.fundamental_diagram_cells()
    one = cells[cells["time_s"] == tr["time_s"].iloc[40]]
    assert one["density_per_m2"].sum() * 1.0 == pytest.approx((tr["time_s"] == tr["time_s"].iloc[40]).sum())
    assert cells["speed_m_s"].between(0.0, 2.1).all() and (cells["density_per_m2"] > 0).all()
    s = res.summary()
    assert s["evacuated"] == 10 and s["exits"][0]["agents"] == 10


def test_step_api_and_periodic_corridor():
    area = WalkableArea(box(0, 0, 10, 2), periodic=True)
    ag = Agents([1.0, 5.0], [1.0, 1.0], speed=1.0)
    sim = CrowdSimulation(area, ag, CrowdParameters(record_interval=None, density_interval=None))
    for _ in range(1200):  # 12 s at 1 m/s: both wrap round the 10 m corridor once
        sim.step()
    assert sim.time == pytest.approx(12.0)
    assert sim.x[0] == pytest.approx((1.0 + 12.0) % 10.0, abs=0.05)
    assert sim.remaining == 2 and not sim.jams  # walking round a periodic corridor is not a jam


def test_fundamental_diagram_with_pedpy_matches_classical():
    pytest.importorskip("pedpy")
    from simulation.crowd import fundamental_diagram_pedpy

    area = WalkableArea(box(0, 0, 12, 2), periodic=True)
    p = CrowdParameters(record_interval=0.5, density_interval=None, jam_window=1000)
    ag = Agents.in_region(area, density=2, radius=0.2, seed=2)
    res = CrowdSimulation(area, ag, p).run(until=15)
    region = box(2, 0, 10, 2)
    vor = fundamental_diagram_pedpy(res, region, walkable=area.polygon)
    cla = res.fundamental_diagram(region)
    # Voronoi (PedPy) and classical density agree on a uniform crowd of 2 persons/m2
    assert vor["density"].mean() == pytest.approx(2.0, rel=0.05)
    assert cla["density_per_m2"].mean() == pytest.approx(2.0, rel=0.05)
    assert vor["speed"].iloc[4:].mean() == pytest.approx(cla["speed_m_s"].iloc[4:].mean(), rel=0.1)
