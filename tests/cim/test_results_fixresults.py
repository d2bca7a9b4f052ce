"""Results (both stores): a run saved again under its id warns before its save commits, so a warning made an
error rolls the save back and keeps the earlier run (it was warned after the commit: the caller saw a failure
though the results were saved and the earlier run gone); a JSON result is stored once (it was stored twice, as
``value`` and ``value_json``), and results stored the old ways read as before."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from affine import Affine

from cim.raster import Raster
from cim.results import list_results, load_result, runs_using, save_result, saving_run
from twin_core.errors import RunReplacedWarning
from twin_core.twin import Twin

FLOOD = {"engine": "simulation.flood"}


def _save_flood(store, run, depth, *, extra=None):
    """A flood run saved as the flood adapter saves one (under the base)."""
    with saving_run(store, None, run, "simulation.flood"):
        save_result(store, "base", run, "max_depth", np.full((2, 2), depth), meta=FLOOD)
        save_result(store, "base", run, "summary", {"engine": "flood", "max_depth_m": depth}, meta=FLOOD)
        if extra:
            save_result(store, "base", run, extra, {"only_in": "the second run"}, meta=FLOOD)


# -- 1. the warning of a replaced run, and a filter that makes it an error -------------------------------------

def test_a_replaced_run_warns_replaces_and_is_replaced(store):
    _save_flood(store, "storm50", 1.0)
    with pytest.warns(RunReplacedWarning) as caught:
        _save_flood(store, "storm50", 2.0, extra="notes")
    assert len(caught) == 1 and caught[0].filename == __file__  # the line that saved
    assert str(caught[0].message).startswith("replaces run 'storm50' under 'base' (a flood saved ")
    assert load_result(store, "base", "storm50", "summary")["max_depth_m"] == 2.0
    np.testing.assert_array_equal(load_result(store, "base", "storm50", "max_depth"), np.full((2, 2), 2.0))
    assert list_results(store, run="storm50")["name"].tolist() == ["max_depth", "notes", "summary"]


def test_a_replace_warning_made_an_error_rolls_the_save_back_and_keeps_the_earlier_run(store):
    _save_flood(store, "storm50", 1.0)
    save_result(store, "base", "jam", "summary", {"flooded_by": "storm50"}, meta={"engine": "simulation.traffic"})
    before = list_results(store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as careful notebooks and test suites set it
        with pytest.raises(RunReplacedWarning) as info:
            _save_flood(store, "storm50", 2.0, extra="notes")
    # what the caller gets: the warning, worded as what the save would have done, and that nothing was kept
    assert str(info.value).startswith("replaces run 'storm50' under 'base' (a flood saved ")
    assert "runs that used it will refer to the new results: traffic 'jam'" in str(info.value)
    assert any("rolled back; nothing of this write was kept" in n for n in getattr(info.value, "__notes__", []))
    # what the store holds: the earlier run, as it was (it held the second run's results, the earlier one gone)
    assert load_result(store, "base", "storm50", "summary") == {"engine": "flood", "max_depth_m": 1.0}
    np.testing.assert_array_equal(load_result(store, "base", "storm50", "max_depth"), np.full((2, 2), 1.0))
    after = list_results(store)
    assert after[["scenario", "run", "name", "created"]].equals(before[["scenario", "run", "name", "created"]])
    assert runs_using(store, None, "storm50") == [("base", "jam", "traffic")]
    # the store is usable after: the same save, with the warning shown, replaces the run
    with pytest.warns(RunReplacedWarning, match="^replaces run 'storm50'"):
        _save_flood(store, "storm50", 3.0)
    assert load_result(store, "base", "storm50", "summary")["max_depth_m"] == 3.0


def _tiny_twin(target) -> Twin:
    """A twin of just a flat 'dem' and a 'manning' raster: a flood on it takes a second."""
    tr = Affine(5.0, 0, 1000.0, 0, -5.0, 2000.0)
    twin = Twin.create(target, crs="EPSG:4544")
    twin.store.write_raster("dem", Raster(np.zeros((6, 8), "float32"), tr, "EPSG:4544"))
    twin.store.write_raster("manning", Raster(np.full((6, 8), 0.03, "float32"), tr, "EPSG:4544"))
    return twin


def test_a_flood_run_again_under_warnings_as_errors_fails_and_saves_nothing(store_target):
    with _tiny_twin(store_target) as twin:
        twin.flood(run="storm50", storm="5y", duration="1min")
        first = list_results(twin.store, run="storm50")
        summary = load_result(twin.store, "base", "storm50", "summary")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(RunReplacedWarning, match="^replaces run 'storm50' under 'base'"):
                twin.flood(run="storm50", storm="50y", duration="1min")
        now = list_results(twin.store, run="storm50")
        assert now[["name", "created"]].equals(first[["name", "created"]])  # the earlier run, untouched
        assert load_result(twin.store, "base", "storm50", "summary") == summary
        assert twin.runs()["run"].tolist() == ["storm50"]


def test_a_replace_inside_a_callers_transaction_made_an_error_keeps_the_earlier_run(store):
    _save_flood(store, "storm50", 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RunReplacedWarning, match=r"^replaces run 'storm50' .*\(once the enclosing transaction "
                                                     r"commits\)\n"):  # then the store's note: rolled back
            with store.transaction():
                _save_flood(store, "storm50", 2.0)
    assert not store.in_transaction
    assert load_result(store, "base", "storm50", "summary")["max_depth_m"] == 1.0


# -- 2. a JSON result stored once ---------------------------------------------------------------------------

SUMMARY = {"engine": "flood", "storm": "50y", "max_depth_m": 1.25, "flooded_buildings": 12, "z": None,
           "a_long_key_name": [1, 2.5, "三"], "b": {"y": 1, "x": 2}}


def _entry(store, run, name):
    return store.get_meta()[f"result:base:{run}:{name}"]


def test_a_json_result_is_stored_once_and_reads_back_in_its_order(store):
    save_result(store, "base", "r1", "summary", SUMMARY, meta=FLOOD)
    entry = _entry(store, "r1", "summary")
    assert "value" not in entry and json.loads(entry["value_json"]) == SUMMARY
    back = load_result(store, "base", "r1", "summary")
    assert back == SUMMARY and list(back) == list(SUMMARY) and list(back["b"]) == ["y", "x"]
    # a result of the old form saved again under its key is stored once too
    store.set_meta({"result:base:r2:summary": {"scenario": "base", "run": "r2", "name": "summary", "kind": "json",
                                               "ref": "x", "created": "2026-12-01T00:00:00+00:00", "meta": {},
                                               "value": {"old": 1}, "value_json": '{"old": 1}'}})
    save_result(store, "base", "r2", "summary", {"new": 2})
    assert "value" not in _entry(store, "r2", "summary") and load_result(store, "base", "r2", "summary") == {"new": 2}


def _old_entry(run, value, *, both: bool, meta=None):
    entry = {"scenario": "base", "run": run, "name": "summary", "kind": "json", "ref": f"res_{run}",
             "created": "2026-12-01T10:00:00+00:00", "meta": meta or {}, "value": value}
    if both:  # save_result from 2026-12-04 to 2026-12-05: the dict and its text
        entry["value_json"] = json.dumps(value, ensure_ascii=False)
    return entry


def test_results_stored_the_old_ways_read_as_before(store):
    traffic = {"engine": "simulation.traffic"}
    store.set_meta({
        "result:base:both:summary": _old_entry("both", SUMMARY, both=True, meta=traffic),
        "result:base:dict:summary": _old_entry("dict", {"flooded_by": "storm50", "n": 3, "v": [1.5, None]},
                                               both=False, meta=traffic),
        "result:base:empty:summary": _old_entry("empty", {}, both=False),
    })
    both = load_result(store, "base", "both", "summary")
    assert both == SUMMARY and list(both) == list(SUMMARY)  # in its saved order, from the text
    assert load_result(store, "base", "dict", "summary") == {"flooded_by": "storm50", "n": 3, "v": [1.5, None]}
    assert load_result(store, "base", "empty", "summary") == {}
    assert list_results(store)["run"].tolist() == ["both", "dict", "empty"]
    assert runs_using(store, None, "storm50") == [("base", "dict", "traffic")]  # read from "value" alone
    store.set_meta({"result:base:jam:summary": {**_old_entry("jam", {"flooded_by": "storm10"}, both=True),
                                                "meta": traffic}})
    assert runs_using(store, None, "storm10") == [("base", "jam", "traffic")]  # and from "value_json"
