"""A scenario call reads the scenarios' metadata (the whole ``twin_meta`` table) once: ``last_edited`` read it
three times (the chain for the edits, the chain again, the undo times), a notebook's ``_repr_html_`` four.
Both stores (the PostGIS half skips without a server)."""

from __future__ import annotations

import pytest

from cim.scenario import Scenarios
from twin_core.errors import ScenarioError


def _count_meta_reads(store, monkeypatch) -> list:
    reads = []
    real = store.get_meta
    monkeypatch.setattr(store, "get_meta", lambda: reads.append(1) or real())
    return reads


@pytest.fixture
def scenarios(store):
    sc = Scenarios(store)
    sc.create("levee", "a 2 m levee").set_param("height_m", 2)
    child = sc.create("higher", parent="levee")
    child.set_param("height_m", 3)
    child.set_param("width_m", 5)
    child.undo()  # a "modified" time in the metadata
    return sc


def test_last_edited_reads_the_metadata_once(scenarios, monkeypatch):
    s = scenarios.get("higher")
    want = s.last_edited()
    parent = scenarios.get("levee")
    reads = _count_meta_reads(scenarios.store, monkeypatch)
    assert s.last_edited() == want
    assert len(reads) == 1  # was 3
    assert want is not None and want > parent.last_edited()  # its own undo is later than the parent's edit
    reads.clear()
    assert scenarios.get(None).last_edited() is None and not reads  # the base: nothing to read


def test_the_notebook_view_reads_the_metadata_once(scenarios, monkeypatch):
    s = scenarios.get("higher")
    reads = _count_meta_reads(scenarios.store, monkeypatch)
    html = s._repr_html_()
    assert "higher" in html and "levee" in html and "(never)" not in html
    assert len(reads) == 1  # was 4


def test_an_unknown_scenario_is_named_after_one_read(scenarios, monkeypatch):
    reads = _count_meta_reads(scenarios.store, monkeypatch)
    with pytest.raises(ScenarioError, match="no scenario 'leve'.*'higher', 'levee'"):
        scenarios.get("leve")
    assert len(reads) == 1  # was 2


def test_reads_as_of_a_scenario_still_see_its_chain(scenarios):
    s = scenarios.get("higher")
    assert s._chain() == ["levee", "higher"]
    assert s.params() == {"height_m": 3}  # the parent's 2 overridden by its own 3; its width was undone
    assert list(s._all_edits()["scenario"]) == ["levee", "higher"]
