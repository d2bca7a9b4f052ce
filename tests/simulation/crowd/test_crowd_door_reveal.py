"""A door in a thick wall: people beside it go round the jamb's corner instead of standing there for good
(2026-12-05, a planner's review: with its terrace door closed, 3 of 40 people stood beside FZK-Haus's 1 m front
door on every seed and the run ended jammed with no clearing time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box

from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, WalkableArea

FZK = Path("/work/shared/data/ifc/AC20-FZK-Haus.ifc")


def test_exit_reveals():
    thin = WalkableArea(box(0, 0, 6, 6), exits={"door": [(0, 2.5), (0, 3.5)]})
    assert thin.exit_reveals().tolist() == [0.0]  # a gap in a thin wall: the wall runs on along the exit line
    # the same door at the outer face of a 0.3 m wall: the reveal's walls run 0.3 m back into the room
    thick = WalkableArea(box(0, 0, 6, 6).union(box(-0.3, 2.5, 0.01, 3.5)), exits={"door": [(-0.3, 2.5), (-0.3, 3.5)]})
    assert thick.exit_reveals().tolist() == [1.0]


@pytest.mark.skipif(not FZK.exists(), reason="IFC sample not present")
@pytest.mark.parametrize("seed", [0, 1])
def test_nobody_stands_for_good_beside_a_door_in_a_thick_wall(seed):
    from twin_core.adapters.crowd import storey_area

    area = storey_area(FZK, 0)
    area = area[0] if isinstance(area, tuple) else area
    p = CrowdParameters(seed=seed, density_interval=None)
    ag = Agents.in_region(area, n=40, radius=p.radius, seed=seed)
    res = CrowdSimulation(area, ag, p, closed_exits=["1M$gxUrX1Fiwe3P64ww7U5"]).run(until=300)
    # before: "jammed", 37 of 40 out, a deadlock of 3 at (0.65, 5.0) reported at 40 s
    assert res.status == "evacuated" and res.evacuated == 40
    assert not [j for j in res.jams if j.kind == "deadlock"]
    assert res.evacuation_time < 60
