"""Run ids (user review item 2): a run saved again under its id replaces the earlier one and says so, naming the
runs that used it; a new run's id taken under another scenario is refused; a run is deleted with
``twin.delete_run`` / ``twin runs TARGET RUN --delete``. Both stores."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from affine import Affine
from typer.testing import CliRunner

from cim.raster import Raster
from cim.results import (check_run_free, delete_run, list_results, load_result, runs_using, save_result,
                         saving_run)
from twin_core.cli import get_app
from twin_core.errors import LayerNotFoundError, ParameterError, RunReplacedWarning, TwinWarning
from twin_core.twin import Twin

FLOOD, TRAFFIC = {"engine": "simulation.flood"}, {"engine": "simulation.traffic"}
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def _tiny_twin(target) -> Twin:
    """A twin of just a flat 'dem' and a 'manning' raster: a flood on it takes a second."""
    tr = Affine(5.0, 0, 1000.0, 0, -5.0, 2000.0)
    twin = Twin.create(target, crs="EPSG:4544")
    twin.store.write_raster("dem", Raster(np.zeros((6, 8), "float32"), tr, "EPSG:4544"))
    twin.store.write_raster("manning", Raster(np.full((6, 8), 0.03, "float32"), tr, "EPSG:4544"))
    return twin


def _save_flood(store, scenario, run, depth=1.0):
    """Save a flood run as the flood adapter does (None: the base)."""
    with saving_run(store, scenario, run, "simulation.flood"):
        save_result(store, scenario or "base", run, "max_depth", np.full((2, 2), depth), meta=FLOOD)
        save_result(store, scenario or "base", run, "summary", {"engine": "flood", "max_depth_m": depth}, meta=FLOOD)


def _users(store):
    """Runs that used flood run 'storm50' of the base, as each engine records it; and some that did not."""
    save_result(store, "base", "jam", "summary", {"engine": "traffic", "flooded_by": "storm50"}, meta=TRAFFIC)
    save_result(store, "base", "amb", "summary", {"engine": "access", "flooded_by": "storm50",
                                                  "speeds_from": "jam"}, meta={"engine": "access"})
    save_result(store, "base", "evac", "summary", {"flooded_by": "storm50"}, meta={"engine": "simulation.crowd"})
    # an access run from before speeds_from was recorded: only the text of "speeds" names the traffic run
    save_result(store, "base", "amb-old", "summary", {"speeds": "traffic run jam's mean speeds, at most the limit"},
                meta={"engine": "access"})
    # a comparison of it, saved under the other run's scenario
    save_result(store, "levee", "cmp", "summary", {"engine": "compare", "a": ["base", "storm50"],
                                                   "b": ["levee", "storm50-levee"]}, meta={"engine": "compare"})
    # not users: another scenario's flood of the same name, another flood, a result saved by hand
    save_result(store, "works", "jam2", "summary", {"flooded_by": "storm50"}, meta=TRAFFIC)
    save_result(store, "base", "jam3", "summary", {"flooded_by": "storm10"}, meta=TRAFFIC)
    save_result(store, "base", "notes", "remarks", {"flooded_by": "storm50"})


def test_saving_a_run_again_warns_once_it_is_replaced_and_names_the_runs_that_used_it(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a first save replaces nothing: no warning
        _save_flood(store, None, "storm50", 1.0)
    _users(store)
    assert runs_using(store, None, "storm50") == [("base", "amb", "access"), ("base", "evac", "crowd"),
                                                  ("base", "jam", "traffic"), ("levee", "cmp", "compare")]
    assert runs_using(store, "base", "jam") == [("base", "amb", "access"), ("base", "amb-old", "access")]
    with pytest.warns(RunReplacedWarning) as caught:
        _save_flood(store, None, "storm50", 2.0)
    assert len(caught) == 1 and caught[0].filename == __file__  # at the line that saved, not in contextlib
    assert re.fullmatch(
        f"replaces run 'storm50' under 'base' \\(a flood saved {WHEN}\\); runs that used it will refer to the new "
        "results: access 'amb', crowd 'evac', traffic 'jam', compare 'cmp' \\(under 'levee'\\) \\(run them again "
        "for results that match\\)", str(caught[0].message)), str(caught[0].message)
    assert load_result(store, "base", "storm50", "summary")["max_depth_m"] == 2.0
    # a save that fails replaces nothing and says nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="disk full"):
            with saving_run(store, None, "storm50", "simulation.flood"):
                save_result(store, "base", "storm50", "summary", {"max_depth_m": 3.0}, meta=FLOOD)
                raise RuntimeError("disk full")
    assert load_result(store, "base", "storm50", "summary")["max_depth_m"] == 2.0
    assert issubclass(RunReplacedWarning, TwinWarning) and issubclass(RunReplacedWarning, UserWarning)


def test_a_new_run_under_an_id_taken_under_another_scenario_is_refused(store):
    _save_flood(store, None, "storm50")
    with pytest.raises(ParameterError) as info:
        check_run_free(store, "levee", "storm50", "simulation.flood")
    assert str(info.value) == (
        "run id 'storm50' is taken under scenario 'base'; one id names one run (`twin runs`, `twin export --run`, "
        "`twin compare` and twin.view(result=...) find a run by its id alone), so a flood run under scenario "
        "'levee' needs another id, such as 'storm50-levee' (run=, CLI --run), or delete that run first: "
        "twin.delete_run('storm50', scenario='base') (CLI: twin runs TARGET storm50 --delete --scenario base)")
    with pytest.raises(ParameterError, match="needs another id, such as 'storm50-2'"):  # a name a run id cannot hold
        check_run_free(store, "暴雨", "storm50", "sunlight")
    with pytest.raises(ParameterError, match="taken under scenario 'base'"):
        with saving_run(store, "levee", "storm50", "simulation.flood"):
            pass
    # a twin that holds one id under two scenarios from before still saves each again (a replacement)
    save_result(store, "levee", "storm50", "max_depth", np.zeros((2, 2)), meta=FLOOD)
    with pytest.warns(RunReplacedWarning, match="replaces run 'storm50' under 'levee'"):
        _save_flood(store, "levee", "storm50")
    with pytest.warns(RunReplacedWarning, match="replaces run 'storm50' under 'base'"):
        _save_flood(store, None, "storm50")


def test_twin_delete_run(store_target):
    with Twin.create(store_target, crs="EPSG:4544") as twin:
        twin.scenarios.create("levee")
        _save_flood(twin.store, None, "storm50")
        _users(twin.store)
        save_result(twin.store, "base", "storm50", "notes", {"by": "planner"})  # a user's result: it goes too
        with pytest.warns(TwinWarning) as caught:
            assert twin.delete_run("storm50") == 3
        assert [str(w.message) for w in caught] == [
            "deleted run 'storm50' under 'base' (a flood); runs that used it now refer to results that are gone: "
            "access 'amb', crowd 'evac', traffic 'jam', compare 'cmp' (under 'levee') (run them again, or delete "
            "them too)"]
        assert list_results(twin.store, run="storm50").empty
        with warnings.catch_warnings():  # the id is free for any engine and scenario; nothing used 'jam3'
            warnings.simplefilter("error")
            check_run_free(twin.store, "levee", "storm50", "sunlight")
            assert twin.delete_run("jam3") == 1
        with pytest.raises(LayerNotFoundError, match="no run 'jamm' in this twin; did you mean 'jam"):
            twin.delete_run("jamm")
        save_result(twin.store, "levee", "jam", "summary", {"engine": "traffic"}, meta=TRAFFIC)  # from before
        with pytest.raises(LayerNotFoundError, match=r"run 'jam' is under several scenarios \['base', 'levee'\]; "
                                                     r"name one: scenario='base'"):
            twin.delete_run("jam")
        assert twin.delete_run("jam", scenario="levee") == 1
        assert set(list_results(twin.store, run="jam")["scenario"]) == {"base"}


def test_delete_run_is_one_transaction(store, monkeypatch):
    """A delete that fails half-way deletes nothing (both stores)."""
    _save_flood(store, None, "storm50")
    real, calls = store.delete_meta, []

    def failing(keys):
        calls.append(keys)
        if len(calls) == 2:
            raise RuntimeError("connection lost")
        return real(keys)

    monkeypatch.setattr(store, "delete_meta", failing)
    with pytest.raises(RuntimeError, match="connection lost"):
        delete_run(store, None, "storm50")
    monkeypatch.setattr(store, "delete_meta", real)
    assert sorted(list_results(store, run="storm50")["name"]) == ["max_depth", "summary"]
    np.testing.assert_array_equal(load_result(store, "base", "storm50", "max_depth"), np.ones((2, 2)))
    assert delete_run(store, None, "storm50")["name"].tolist() == ["max_depth", "summary"]
    assert list_results(store).empty and delete_run(store, None, "storm50").empty


def _cli(*args):
    return CliRunner().invoke(get_app(), [str(a) for a in args])


def test_cli_flood_again_under_its_id_warns_and_another_scenario_is_refused(tmp_path):
    path = tmp_path / "t.gpkg"
    _tiny_twin(str(path)).close()
    res = _cli("flood", path, "--duration", "1min", "--run", "storm50", "--quiet")
    assert res.exit_code == 0, res.output
    with Twin.open(str(path)) as twin:
        save_result(twin.store, "base", "jam", "summary", {"flooded_by": "storm50"}, meta=TRAFFIC)
        twin.scenarios.create("levee")
    with pytest.warns(RunReplacedWarning, match=f"^replaces run 'storm50' under 'base' \\(a flood saved {WHEN}\\); "
                                                "runs that used it will refer to the new results: traffic 'jam' "):
        res = _cli("flood", path, "--duration", "1min", "--run", "storm50", "--quiet")
    assert res.exit_code == 0, res.output
    res = _cli("flood", path, "--scenario", "levee", "--duration", "1min", "--run", "storm50")
    assert isinstance(res.exception, ParameterError), res.output
    assert "taken under scenario 'base'" in str(res.exception) and "'storm50-levee'" in str(res.exception)
    # the `twin` command shows the warning as one plain line on stderr
    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "flood", str(path), "--duration", "1min",
                           "--run", "storm50", "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and re.fullmatch(f"warning: replaces run 'storm50' under 'base' \\(a flood saved {WHEN}"
                                            "\\); runs that used it will refer to the new results: traffic 'jam' "
                                            "\\(run them again for results that match\\)", lines[0]), proc.stderr


def test_cli_runs_delete(tmp_path):
    path = tmp_path / "t.gpkg"
    with Twin.create(str(path), crs="EPSG:4544") as twin:
        _save_flood(twin.store, None, "storm50")
        _save_flood(twin.store, None, "storm10")
        save_result(twin.store, "base", "jam", "summary", {"flooded_by": "storm50"}, meta=TRAFFIC)
    with pytest.warns(TwinWarning, match="^deleted run 'storm50' under 'base' \\(a flood\\); runs that used it now "
                                         "refer to results that are gone: traffic 'jam' "):
        res = _cli("runs", path, "storm50", "--delete")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "deleted run storm50 (scenario base, flood): 2 results: max_depth, summary"
    res = _cli("runs", path, "storm10", "--delete", "--scenario", "base", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"deleted": "storm10", "scenario": "base", "engine": "flood",
                                      "results": ["max_depth", "summary"]}
    res = _cli("runs", path, "jm", "--delete")
    assert isinstance(res.exception, LayerNotFoundError) and "did you mean 'jam'" in str(res.exception)
    res = _cli("runs", path, "--delete")
    assert isinstance(res.exception, ParameterError) and "--delete needs the run to delete" in str(res.exception)
    with Twin.open(str(path)) as twin:
        assert sorted(twin.runs()["run"]) == ["jam"]
