"""People walk on past an exit (``CrowdParameters.exit_walk_on``) and the per-model defaults the CSM was
calibrated with (radius 0.2 m, T = 0.5 s, route margin 0.25 m): docs/crowd_verification.md."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box

from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, WalkableArea
from twin_core.errors import ParameterError


def _file_of_two(**kw):
    # two people one behind the other in a 1 m x 10 m corridor, the exit at its end (x = 10)
    area = WalkableArea(box(0, 0, 10, 1), exits={"end": [(10, 0), (10, 1)]})
    ag = Agents(np.array([9.0, 8.4]), np.array([0.5, 0.5]), speed=np.array([0.6, 1.3]))
    p = CrowdParameters(direction_noise=0.0, record_interval=0.05, density_interval=None, **kw)
    return CrowdSimulation(area, ag, p).run(until=30)


def test_the_one_ahead_still_takes_room_after_the_exit():
    # The slow one ahead (0.6 m/s) leaves first; the fast one behind (1.3 m/s) keeps its collision-free
    # spacing to it after it crossed the line, as behind a person walking on through a door: it leaves
    # later than when the one ahead vanishes at the line (exit_walk_on=0).
    on, off = _file_of_two(), _file_of_two(exit_walk_on=0.0)
    assert on.status == off.status == "evacuated"
    assert on.exit_time[0] == pytest.approx(off.exit_time[0])  # the first is timed at the line either way
    assert on.exit_time[1] > off.exit_time[1] + 0.3, (on.exit_time, off.exit_time)
    # ... and walking on is never recorded: trajectories hold people on the floor only
    assert (on.trajectories["x"] <= 10.0 + 1e-9).all()


def test_walking_on_ends_after_its_distance():
    # once they have walked exit_walk_on metres, they take no room: a run with a 0.01 m walk-on is the
    # taken-out-at-the-line run to within a step
    short, off = _file_of_two(exit_walk_on=0.01), _file_of_two(exit_walk_on=0.0)
    assert short.exit_time[1] == pytest.approx(off.exit_time[1], abs=0.05)


def test_per_model_defaults():
    p = CrowdParameters()
    assert (p.radius, p.time_gap, p.exit_walk_on, p.wall_avoidance) == (0.2, 0.5, 2.0, None)
    assert p.route_margin(0.2) == pytest.approx(0.25)
    # bodies larger than the model's radius keep a wider margin from walls (twice the extra radius)
    assert p.route_margin(0.25) == pytest.approx(0.35)
    assert p.route_margin(0.1) == pytest.approx(0.25)
    s = p.replace(model="sfm")
    assert s.radius == 0.25 and s.route_margin(0.25) == pytest.approx(0.4)
    assert s.replace(model="csm").radius == 0.2
    # a margin given is used as given
    assert CrowdParameters(wall_avoidance=0.1).route_margin(0.3) == 0.1


@pytest.mark.parametrize("name, bad", [("exit_walk_on", -1.0), ("exit_walk_on", float("nan")),
                                       ("exit_walk_on", "2"), ("wall_avoidance", -0.1),
                                       ("wall_avoidance", float("inf"))])
def test_bad_walk_on_and_margin(name, bad):
    with pytest.raises(ParameterError, match=f"{name} must be a finite number >= 0"):
        CrowdParameters(**{name: bad})
