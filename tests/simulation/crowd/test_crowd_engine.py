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
    # all exits closed: said as such (it was "agent 0 ... cannot reach any open exit (open: [])")
    with pytest.raises(GeometryError, match=r"every exit is closed \(closed_exits: \['east'\]\); nobody could leave"):
        CrowdSimulation(_room(), Agents([2.5], [2.5]), closed_exits=["east"])


def test_passage_closed_by_a_coarse_floor_field_says_so():
    # 200 m x 200 m: the automatic floor-field cell is 0.37 m and closes a 0.7 m passage people
    # fit through; the error only said "cannot reach any open exit", as if the walls shut them in
    hall = box(0, 0, 200, 200).difference(box(100, 0.7, 100.3, 200))
    area = WalkableArea(hall, exits={"d": [(200, 10), (200, 12)]})
    agent = Agents([99.0], [0.35])
    with pytest.raises(GeometryError, match=r"on the floor field's 0\.37 m grid; if the way out is a passage narrower "
                                            r"than about 1\.1 m.*floor_field_cell"):
        CrowdSimulation(area, agent)
    sim = CrowdSimulation(area, agent, CrowdParameters(floor_field_cell=0.1))  # as the error says
    assert np.isfinite(sim.ff.values(99.0, 0.35)).all()


@pytest.mark.parametrize("speed", [0.0, -1.0, np.nan])
def test_zero_or_negative_speed_is_refused(speed):
    with pytest.raises(ParameterError, match="speed must be > 0"):
        Agents([2.0], [3.0], speed=speed)
    with pytest.raises(ParameterError, match="speed_mean"):
        CrowdParameters(speed_mean=speed)


@pytest.mark.parametrize("kw, match", [
    ({"record_interval": float("inf")}, "record_interval must be a finite number of seconds"),
    ({"density_interval": float("nan")}, "density_interval must be a finite number"),
    ({"record_interval": "1"}, "record_interval must be a finite number"),
    ({"density_interval": True}, "density_interval must be a finite number"),
    ({"speed_clip": (0.5, float("inf"))}, r"speed_clip must be \(low, high\) .* both finite"),
    ({"speed_clip": (float("nan"), 2.0)}, r"speed_clip must be \(low, high\)"),
    ({"speed_clip": 1.5}, r"speed_clip must be a pair"),
    ({"speed_clip": (0.5, 1.0, 2.0)}, r"speed_clip must be a pair"),
    ({"speed_clip": ("slow", "fast")}, r"speed_clip must be a pair"),
])
def test_output_intervals_and_speed_clip_are_checked(kw, match):
    # record_interval=inf had recorded one frame and no more; speed_clip=(0.5, inf)
    # let a wide speed spread give agents any speed
    with pytest.raises(ParameterError, match=match):
        CrowdParameters(**kw)
    assert CrowdParameters(speed_clip=[0.6, 1.8]).speed_clip == (0.6, 1.8)


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
    p = CrowdParameters(record_interval=None, density_interval=None, congestion_aware=False)
    base = CrowdSimulation(area, ag, p).run(until=600)
    use = base.exit_usage().set_index("exit")["agents"]
    assert use["west"] == 120 and use["east"] == 0  # by distance alone, everybody is nearer the west door
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


# ---------------------------------------------------------------- fixes from the crowd bug hunt
def test_agents_due_in_one_step_enter_one_after_another():
    # a source: one agent every 0.4 s at the same spot of a corridor whose 0.8 m door is the
    # bottleneck. Those that piled up waiting must not all enter together on top of each
    # other (they did, deadlocked, and 2 of 40 got out): each is released only when it
    # overlaps neither a walker nor one released before it in the same step
    area = WalkableArea(box(0, 0, 6, 2), exits={"door": [(6, 0.6), (6, 1.4)]})
    n = 40
    ag = Agents(np.full(n, 0.5), np.full(n, 1.0), release_time=np.arange(n) * 0.4)
    sim = CrowdSimulation(area, ag, CrowdParameters(record_interval=None, density_interval=None))
    released_together = 0
    while sim.remaining and sim.time < 200 and not sim.stopped_by_jam:
        before = sim.state.copy()
        sim.step()
        new = np.flatnonzero((before == 0) & (sim.state == 1))
        released_together = max(released_together, len(new))
        for i in new:  # at release: clear of everybody walking (the others released now included)
            others = sim.act[sim.act != i]
            d = np.hypot(sim.x[others] - sim.x[i], sim.y[others] - sim.y[i])
            assert (d >= sim.r[others] + sim.r[i] - 1e-6).all(), (sim.time, i, d.min())
    assert sim.remaining == 0 and not sim.jams
    assert released_together == 1  # the same spot: one at a time
    # agents due at different spots in one step still all enter in that step
    ag = Agents([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], release_time=[0.5, 0.501, 0.502])
    sim = CrowdSimulation(area, ag)
    while sim.time < 0.515:
        sim.step()
    assert len(sim.act) == 3


def test_concat_of_groups_with_and_without_speeds_or_radii():
    area = WalkableArea(box(0, 0, 20, 10), exits={"door": [(20, 4), (20, 6)]})
    crowd = Agents.in_region(area, box(0, 0, 8, 10), n=20, seed=0)  # speeds and radius from the model
    slow = Agents.in_region(area, box(10, 0, 18, 10), n=3, seed=1, speed=0.8)
    big = Agents.in_region(area, box(10, 0, 18, 10), n=3, seed=1, radius=0.35)
    p = CrowdParameters()
    sim = CrowdSimulation(area, [crowd, slow], p)
    assert np.all(sim.v0[20:] == 0.8) and np.isfinite(sim.v0).all()
    assert np.all((sim.v0[:20] >= p.speed_clip[0]) & (sim.v0[:20] <= p.speed_clip[1]))  # drawn
    assert sim.run(until=120).evacuated == 23
    sim = CrowdSimulation(area, [crowd, big], p)
    assert np.all(sim.r[:20] == p.radius) and np.all(sim.r[20:] == 0.35)
    assert sim.run(until=120).evacuated == 23
    # NaN given directly is still refused, and says what to give instead
    with pytest.raises(ParameterError, match=r"radius must be > 0.*radius=None") as err:
        Agents([1.0], [1.0], radius=np.nan)
    assert "radiuss" not in str(err.value)
    with pytest.raises(ParameterError, match=r"speed must be > 0.*speed=None"):
        Agents([1.0], [1.0], speed=[np.nan])


@pytest.mark.parametrize("length, rho", [(10.0, 2.0), (10.07, 4.0), (10.42, 5.0), (10.49, 1.0), (12.0, 5.0)])
def test_placement_in_a_periodic_corridor_does_not_overlap_across_the_wrap(length, rho):
    # the lattice ignored the wrap: agents near x = L and x = 0 could start overlapping
    area = WalkableArea(box(0, 0, length, 2), periodic=True)
    ag = Agents.in_region(area, density=rho, radius=0.2, seed=2)
    dx = ag.x[:, None] - ag.x[None, :]
    dx -= length * np.round(dx / length)
    d = np.hypot(dx, ag.y[:, None] - ag.y[None, :])
    np.fill_diagonal(d, np.inf)
    assert len(ag.x) == round(rho * length * 2) and d.min() >= 0.4


def test_periodic_wrap_is_no_line_crossing():
    # everybody walks towards +x round a 12 m periodic corridor; the wrap from x ~ 12 to x ~ 0
    # used to count as a crossing of every line, backwards (at ~600 m/s)
    area = WalkableArea(box(0, 0, 12, 2), periodic=True)
    ag = Agents.in_region(area, density=0.5, radius=0.2, seed=2)
    p = CrowdParameters(radius=0.2, density_interval=None, jam_window=1000)
    lines = {"mid": [(6, 0), (6, 2)], "start": [(0, 0), (0, 2)], "end": [(11.99, 0), (11.99, 2)]}
    res = CrowdSimulation(area, ag, p, measurement_lines=lines).run(until=30)
    c = res.line_crossings
    for name in lines:
        mine = c[c["line"] == name]
        assert mine["direction"].nunique() == 1 and len(mine) >= 20, name  # one direction only
    assert c["speed"].between(0.3, 2.1).all()
    # each agent crosses each line once per lap: the counts of lines at 0, 6 and 11.99 m differ by <= 1
    per = c.groupby(["agent", "line"]).size().unstack(fill_value=0)
    assert (per.max(axis=1) - per.min(axis=1)).max() <= 1
    # on its own: a move that wraps and crosses a line near either end in the same step counts once
    from simulation.crowd import _kernels as K

    ln = np.array([[0.003, 0.0, 0.003, 2.0], [6.0, 0.0, 6.0, 2.0], [11.995, 0.0, 11.995, 2.0]])
    ox, oy = np.array([11.99, 0.005]), np.array([1.0, 1.0])
    px, py = np.array([0.008, 11.99]), np.array([1.0, 1.0])  # forward and backward wraps
    cr = K.line_crossings(ox, oy, px, py, np.arange(2, dtype=np.intp), ln, 12.0)
    assert sorted(map(tuple, cr[:, :2].tolist())) == [(0, 0), (0, 2), (1, 0), (1, 2)]
    assert cr[cr[:, 0] == 0, 2].tolist() == [-cr[cr[:, 0] == 1, 2][0]] * 2  # opposite signs


@pytest.mark.parametrize("off", [0.06, 0.08, -0.06, -0.08])
def test_exit_near_the_outline_is_snapped_onto_it(off):
    # accepted (within 0.1 m) but the door used to be cut out of the wall only within 0.05 m:
    # a wall stayed across it and nobody got out
    area = WalkableArea(box(0, 0, 10, 4), exits={"door": [(10 + off, 1.5), (10 + off, 2.5)]})
    assert area.exit_segments.tolist() == [[10.0, 1.5, 10.0, 2.5]]
    across = [s for s in area.walls if s[0] == s[2] == 10 and min(s[1], s[3]) < 2 < max(s[1], s[3])]
    assert not across
    res = CrowdSimulation(area, Agents.in_region(area, box(5, 0, 9, 4), n=10, seed=0)).run(until=60)
    assert res.status == "evacuated"


def test_exit_far_off_nan_or_not_a_dict_is_refused():
    with pytest.raises(GeometryError, match=r"0\.15 m off the walkable area's outline"):
        WalkableArea(box(0, 0, 10, 4), exits={"door": [(10.15, 1.5), (10.15, 2.5)]})
    with pytest.raises(GeometryError, match="not a finite number"):
        WalkableArea(box(0, 0, 10, 4), exits={"d": [(10, np.nan), (10, 2)]})
    with pytest.raises(GeometryError, match="not a finite number"):
        WalkableArea(box(0, 0, 10, 4), exits={"d": [(10, 1), (np.inf, 2)]})
    with pytest.raises(GeometryError, match="exits must be a dict"):
        WalkableArea(box(0, 0, 10, 4), exits=[[(10, 1), (10, 2)]])


def test_failed_close_exit_leaves_the_simulation_unchanged():
    # closing the last exit used to raise only after marking it closed: no wall, no exit, and
    # the crowd walked off the floor
    area = WalkableArea(box(0, 0, 10, 4), exits={"door": [(10, 1.5), (10, 2.5)]})
    sim = CrowdSimulation(area, Agents.in_region(area, box(5, 0, 10, 4), n=10, seed=0))
    walls = sim._walls.copy()
    with pytest.raises(GeometryError, match="every exit"):
        sim.close_exit("door")
    assert sim.exit_open.tolist() == [1] and np.array_equal(sim._walls, walls)
    res = sim.run(until=30)
    assert res.status == "evacuated" and area.contains(res.trajectories["x"], res.trajectories["y"]).all()
    # an exit that somebody cannot do without: two rooms, one exit each
    two = WalkableArea(MultiPolygon([box(0, 0, 5, 5), box(6, 0, 11, 5)]),
                       exits={"west": [(0, 2), (0, 3)], "east": [(11, 2), (11, 3)]})
    sim = CrowdSimulation(two, Agents([2.5, 8.5], [2.5, 2.5]))
    ex, walls = sim.ex.copy(), sim._walls.copy()
    with pytest.raises(GeometryError, match="no reachable open exit"):
        sim.close_exit("west")
    assert sim.exit_open.tolist() == [1, 1] and np.array_equal(sim.ex, ex) and np.array_equal(sim._walls, walls)
    assert sim.run(until=30).evacuated == 2


def test_bad_agent_line_and_result_queries_are_refused_clearly():
    area = WalkableArea(box(0, 0, 10, 4), exits={"door": [(10, 1.5), (10, 2.5)]})
    with pytest.raises(ParameterError, match=r"speed must be a scalar or have one value per agent \(2\)"):
        Agents([1, 2], [1, 2], speed=[1, 2, 3])
    with pytest.raises(ParameterError, match="release_time must be a scalar or have one value per agent"):
        Agents([1, 2], [1, 2], release_time=[0.0, 1.0, 2.0])
    with pytest.raises(ParameterError, match="n must be a whole number"):
        Agents.in_region(area, n=3.7)
    with pytest.raises(ParameterError, match="density must be a finite number"):
        Agents.in_region(area, density=np.inf)
    with pytest.raises(GeometryError, match="not a finite number"):
        WalkableArea(Polygon([(0, 0), (10, 0), (10, np.inf), (0, 4)]), exits={"d": [(10, 1), (10, 2)]})
    ag = Agents.in_region(area, box(0, 0, 4, 4), n=10, seed=0)
    with pytest.raises(ParameterError, match="two points"):
        CrowdSimulation(area, ag, measurement_lines={"a": [(5, 0)]})
    with pytest.raises(ParameterError, match="not a finite number"):
        CrowdSimulation(area, ag, measurement_lines={"a": [(5, 0), (5, np.nan)]})
    with pytest.raises(ParameterError, match=r"floor-field cell of 0.0001 m .* 10.0 m x 4.0 m needs"):
        CrowdSimulation(area, ag, CrowdParameters(floor_field_cell=1e-4))
    with pytest.raises(ParameterError, match="floor_field_cell must be a finite number"):
        CrowdParameters(floor_field_cell=np.nan)
    res = CrowdSimulation(area, ag, measurement_lines={"mid": [(5, 0), (5, 4)]}).run(until=60)
    lf = res.line_flow("mid", bin_s=10)
    assert np.isclose((lf["flow_per_s"] * (lf["t1_s"] - lf["t0_s"])).sum(), 10)
    # the last bin ends with the run: a part bin's flow is over its own length, not the full bin's
    # (everybody is out after ~9.4 s: one part bin, 10 persons over 9.4 s, which read as 10 / 10 s)
    assert lf["t1_s"].iloc[-1] == pytest.approx(res.time_s) and res.time_s < 10
    assert lf["flow_per_s"].iloc[-1] == pytest.approx(10 / res.time_s)
    lf = res.line_flow("mid", bin_s=res.time_s / 2)  # the run ends on a bin edge: its last crossing still counts
    assert len(lf) == 2 and np.isclose((lf["flow_per_s"] * (lf["t1_s"] - lf["t0_s"])).sum(), 10)
    with pytest.raises(ParameterError, match=r"unknown measurement line 'Mid'; lines are \['mid'\]"):
        res.line_flow("Mid")
    with pytest.raises(ParameterError, match="bin_s"):
        res.line_flow("mid", bin_s=0)
    with pytest.raises(ParameterError, match=r"unknown exit 'Door'; exits are \['door'\]"):
        res.exit_flow("Door")
    with pytest.raises(ParameterError, match="out of range"):
        res.exit_flow(5)
    with pytest.raises(ParameterError, match="out of range"):
        res.exit_flow(-1)
    assert res.exit_flow(0) == res.exit_flow("door") > 0


def test_invalid_polygon_repair_keeps_its_obstacles():
    # the repair (make_valid, linework) dropped an obstacle whose ring touches the outline along
    # an edge (walkable 400 m2 instead of 380: agents walked through it) and made the overlap of
    # two obstacles walkable floor; a bow tie (signed area 0) was refused as "empty"
    import warnings

    outline = [(0, 0), (20, 0), (20, 20), (0, 20)]
    door = {"d": [(20, 14), (20, 16)]}
    notch = Polygon(outline, [[(0, 8), (5, 8), (5, 12), (0, 12)]])
    two = Polygon(outline, [[(2, 2), (8, 2), (8, 8), (2, 8)], [(5, 5), (10, 5), (10, 10), (5, 10)]])
    bow = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    assert not (notch.is_valid or two.is_valid or bow.is_valid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        area = WalkableArea(notch, exits=door)
        assert area.polygon.area == pytest.approx(380.0)
        assert not area.contains(2.5, 10.0) and area.contains(2.5, 5.0)
        with pytest.raises(GeometryError, match="outside the walkable area"):
            CrowdSimulation(area, Agents(x=[2.5], y=[10.0]))
        area = WalkableArea(two, exits=door)
        assert area.polygon.area == pytest.approx(400 - 36 - 25 + 9) and not area.contains(6.5, 6.5)
        assert WalkableArea(bow, exits={"d": [(10, 2), (10, 4)]}).polygon.area == pytest.approx(50.0)
    # the repair is announced: the source data should be fixed
    with pytest.warns(TwinWarning, match=r"invalid \(Self-intersection.*380\.0 m2 walkable"):
        WalkableArea(notch, exits=door)


def test_opening_an_exit_during_a_run_lets_agents_use_it():
    # open_exit only took the door out of the walls: everybody kept walking to the far exit,
    # 15 m past the one just opened next to them (exit usage east 10, west 0)
    area = WalkableArea(box(0, 0, 20, 5), exits={"east": [(20, 2), (20, 3)], "west": [(0, 2), (0, 3)]})
    # exit choice by distance (congestion_aware=False): everybody is nearer the opened door
    sim = CrowdSimulation(area, Agents.in_region(area, box(1, 0.5, 5, 4.5), n=10, seed=0),
                          CrowdParameters(congestion_aware=False), closed_exits=["west"])
    for _ in range(100):
        sim.step()
    sim.open_exit("west")
    sim.open_exit("west")  # opening an open exit changes nothing
    res = sim.run(until=100)
    use = res.exit_usage().set_index("exit")["agents"]
    assert res.status == "evacuated" and use["west"] == 10 and use["east"] == 0


def test_measurement_line_off_the_walkable_area_is_refused():
    # a line nobody can cross (here in degrees instead of metres, or beyond the area) was
    # accepted and gave an empty flow table, as if nobody had walked there
    area = WalkableArea(box(0, 0, 10, 4), exits={"door": [(10, 1.5), (10, 2.5)]})
    ag = Agents.in_region(area, box(0, 0, 4, 4), n=5, seed=0)
    for line in ([(104.06, 30.6), (104.07, 30.6)], [(12, 0), (12, 4)]):
        with pytest.raises(GeometryError, match=r"measurement line 'far' .* does not touch the walkable area"):
            CrowdSimulation(area, ag, measurement_lines={"ok": [(5, -1), (5, 5)], "far": line})
    # partly outside, or along the door on the outline, is fine
    res = CrowdSimulation(area, ag, measurement_lines={"ok": [(5, -1), (5, 5)],
                                                       "door": [(10, 0), (10, 4)]}).run(until=60)
    assert (res.line_crossings["line"].value_counts() == 5).all()


def test_density_maps_too_large_to_hold_are_refused_before_running():
    # every density frame is the whole grid: fine cells over a long run asked for ~115 GB, and the run
    # went on until memory ran out
    area = WalkableArea(box(0, 0, 100, 100), exits={"door": [(100, 45), (100, 55)]})
    ag = Agents.in_region(area, box(0, 0, 20, 20), n=10, seed=0)
    sim = CrowdSimulation(area, ag, CrowdParameters(density_cell=0.05, density_interval=0.5))
    with pytest.raises(ParameterError, match=r"density maps of 2000 x 2000 cells .* GiB .* coarser density_cell"):
        sim.run(until=3600)
    assert sim.t == 0.0  # nothing ran
    # the same grid over a short run, or without density maps, is fine
    assert sim.run(until=2).density.shape[1:] == (2000, 2000)
    sim = CrowdSimulation(area, ag, CrowdParameters(density_cell=0.05, density_interval=None))
    assert sim.run(until=2).status == "time_limit"


@pytest.mark.parametrize("model", ["csm", "sfm"])
def test_trajectory_velocity_is_the_walked_velocity(model):
    # trajectories (and the speed maps and fundamental diagram built on them) reported the velocity the
    # model wanted, also for agents the walls held back at a door's jambs: speeds there read too high
    area = WalkableArea(box(0, 0, 6, 6), exits={"door": [(6, 2.6), (6, 3.4)]})
    ag = Agents.in_region(area, box(0.5, 0.5, 5, 5.5), n=60, seed=1)
    p = CrowdParameters(model=model, record_interval=0.01, density_interval=None)
    tr = CrowdSimulation(area, ag, p).run(until=8).trajectories.sort_values(["agent", "time_s"])
    same = (tr["agent"].to_numpy()[1:] == tr["agent"].to_numpy()[:-1])
    dt = np.diff(tr["time_s"].to_numpy())[same]
    vx = np.diff(tr["x"].to_numpy())[same] / dt
    vy = np.diff(tr["y"].to_numpy())[same] / dt
    assert same.sum() > 20000
    assert np.allclose(tr["vx"].to_numpy()[1:][same], vx, atol=1e-6)
    assert np.allclose(tr["vy"].to_numpy()[1:][same], vy, atol=1e-6)
