"""Storey floor plans of the shipped models: stairs as the way out of an upper storey (2026-12-05 review)."""

from __future__ import annotations

import pytest
from shapely.geometry import LineString


def test_upper_storey_exits_are_the_tops_of_its_stairs(fzk, duplex):
    from bim_import import storey_floorplan

    for model, storey, n in ((fzk, "Dachgeschoss", 1), (duplex, "Level 2", 2)):
        plan = storey_floorplan(model, storey)
        assert len(plan.stair_exits) == n and sorted(plan.exit_lines) == sorted(plan.stair_exits)
        stairs = model.elements[model.elements["ifc_class"].isin(["IfcStair", "IfcStairFlight"])]
        assert set(plan.stair_exits) <= set(stairs["global_id"])
        for gid in plan.stair_exits:
            line = LineString(plan.exit_lines[gid])
            # on the walkable outline (the crowd engine takes exits within 0.05 m of it), a flight wide
            assert plan.walkable.boundary.distance(line) < 1e-6
            assert plan.walkable.boundary.hausdorff_distance(line) > 0  # a piece of it, not the whole rim
            assert 0.9 <= line.length <= 1.5  # the flights are 0.9-1.2 m wide in the models


def test_storey_with_external_doors_keeps_its_doors_only(fzk, duplex):
    from bim_import import storey_floorplan

    ground = storey_floorplan(fzk, "Erdgeschoss")
    assert ground.stair_exits == [] and len(ground.exit_lines) == 2  # the stair goes up from here: no exit
    assert storey_floorplan(duplex, "Level 1").stair_exits == []
    roof = storey_floorplan(duplex, "Roof")
    assert roof.exit_lines == {} and roof.stair_exits == []  # no stair reaches the roof


@pytest.mark.parametrize("georef", [False, True])
def test_stair_exits_placed_with_the_plan(fzk, georef):
    import warnings

    from bim_import import Anchor, storey_floorplan

    kw = {"twin_crs": "EPSG:4544", "anchor": Anchor(409700.0, 3390900.0)} if georef else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model's site is in Karlsruhe: placed by the anchor
        plan = storey_floorplan(fzk, 1, **kw)
    line = LineString(plan.exit_lines[plan.stair_exits[0]])
    assert plan.walkable.boundary.distance(line) < 1e-6
    if georef:
        assert abs(line.centroid.x - 409700.0) < 30 and abs(line.centroid.y - 3390900.0) < 30
