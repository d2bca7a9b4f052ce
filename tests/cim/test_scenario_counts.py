"""A scenario's "edits" are counted one way everywhere: as a planner makes them and an undo takes them back (one
a call: closing the roads of an area is one edit however many links it closes), in its repr and HTML repr, in
Scenarios.list() (the map's list, ``twin scenario list``) and in the notebook table; ``rows`` counts the rows
those edits wrote to the edit log. Before, the list counted rows and the repr calls: one scenario was
"1 edit" in its repr and "2 edits" in the list."""

from __future__ import annotations

import json

import pytest
import shapely

from cim.scenario import Scenarios


@pytest.fixture
def store(tmp_path, two_roads):
    from cim.store import open_store

    s = open_store(str(tmp_path / "c.gpkg"), create=True, crs="EPSG:4544")
    s.write_layer("road_links", two_roads)
    yield s
    s.close()


def test_one_call_that_changes_two_links_is_one_edit_of_two_rows_everywhere(store):
    sc = Scenarios(store)
    s = sc.create("works", "road works")
    assert s.close_roads(shapely.box(409990, 3394990, 410110, 3395210)) == ["a", "b"]
    s.set_param("storm_return_period_a", 50)
    assert len(s.edits()) == 3 and s.n_edits == 2
    row = sc.list().set_index("name").loc["works"]
    assert (row["edits"], row["rows"]) == (2, 3)
    assert " 2 edits " in repr(s)
    assert "<th style='text-align:left'>edits</th><td style='text-align:left'>2 edits: " in s._repr_html_()
    table = sc._repr_html_()
    assert "<th style='text-align:left'>edits</th><th style='text-align:left'>rows</th>" in table
    assert "<td style='text-align:left'>2</td><td style='text-align:left'>3</td>" in table
    assert "each taken back by one undo" in table
    # an undo takes back one edit (the parameter), then the closure (both rows)
    assert len(s.undo()) == 1
    row = sc.list().set_index("name").loc["works"]
    assert (row["edits"], row["rows"], s.n_edits) == (1, 2, 1) and " 1 edit " in repr(s)
    assert len(s.undo()) == 2
    row = sc.list().set_index("name").loc["works"]
    assert (row["edits"], row["rows"], s.n_edits) == (0, 0, 0)


def test_the_list_has_its_columns_when_empty_and_for_a_scenario_without_edits(store):
    sc = Scenarios(store)
    assert list(sc.list().columns) == ["name", "description", "parent", "created", "edits", "rows", "last_edited"]
    sc.create("empty")
    row = sc.list().set_index("name").loc["empty"]
    assert (row["edits"], row["rows"]) == (0, 0) and sc["empty"].n_edits == 0 and sc["base"].n_edits == 0


def test_twin_scenario_list_counts_edits_as_the_repr_does(tmp_path, two_roads):
    from typer.testing import CliRunner

    from twin_core.cli import get_app
    from twin_core.twin import Twin

    path = str(tmp_path / "t.gpkg")
    with Twin.create(path, name="counts") as t:
        t.store.write_layer("road_links", two_roads)
    res = CliRunner().invoke(get_app(), ["scenario", "close-roads", path, "works", "--bbox",
                                         "409990,3394990,410110,3395210", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["closed"] == ["a", "b"], res.output
    res = CliRunner().invoke(get_app(), ["scenario", "list", path, "--json"])
    (row,) = json.loads(res.stdout)
    assert (row["edits"], row["rows"]) == (1, 2), row
    with Twin.open(path) as t:
        assert " 1 edit " in repr(t.scenarios["works"])
    human = CliRunner().invoke(get_app(), ["scenario", "list", path]).stdout
    assert "edits" in human and "rows" in human
    # undo says what is left the same way: two closures (4 rows), one undone, 1 edit left (it said "2 edit rows")
    CliRunner().invoke(get_app(), ["scenario", "close-roads", path, "works", "--bbox", "409990,3394990,410110,3395210"])
    undo = CliRunner().invoke(get_app(), ["scenario", "undo", path, "works", "--json"])
    assert undo.exit_code == 0 and json.loads(undo.stdout)["edits"] == 1, undo.output
    assert CliRunner().invoke(get_app(), ["scenario", "undo", path, "works"]).stdout.rstrip().endswith("0 edit(s) left")
