"""A comparison's save claims its run id as every engine does (:func:`cim.results.claim_run`, :func:`saving_run`):
the check for results saved by hand moved there from ``Comparison.save`` (which alone had it), and the id is
checked again in the transaction that saves the comparison."""

from __future__ import annotations

import numpy as np
import pytest

from cim.raster import Raster
from cim.results import list_results
from twin_core.errors import ParameterError

from test_compare import A_DEPTH, B_DEPTH, GRID, _flood, _twin  # noqa: E402  (hand-made flood runs)


def _sunlight(twin, run, hours):
    twin.save_result(None, run, "sunlight_hours", Raster(np.array(hours, "float32"), GRID, "EPSG:4544", unit="h"),
                     meta={"analysis": "sunlight", "date": "2026-01-20"})


def test_save_refuses_an_id_saved_by_hand_and_says_how_to_free_it(tmp_path):
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5})
    _flood(twin, None, "fb", B_DEPTH, {"B1": 0.6})
    twin.save_result(None, "notes-run", "notes", {"by": "planner"})
    c = compare_runs(twin, "fa", "fb")
    with pytest.raises(ParameterError) as info:
        c.save(twin, "notes-run")
    assert str(info.value) == (
        "run 'notes-run' under scenario 'base' holds results saved by hand (['notes']), no engine's run; a compare "
        "run under the same id would overwrite or mix with them. Give this run another id, or delete run "
        "'notes-run' first: twin.delete_run('notes-run', scenario='base') (CLI: twin runs TARGET notes-run "
        "--delete --scenario base)")
    assert list_results(twin.store, run="notes-run")["name"].tolist() == ["notes"]
    twin.close()


def test_saving_again_replaces_the_comparison_whole_and_keeps_what_a_user_added(tmp_path):
    """A user's note added to a saved comparison made every later save under that id fail ("holds results saved
    by hand"), though the comparison's own results are the ones it replaces."""
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5})
    _flood(twin, None, "fb", B_DEPTH, {"B1": 0.6})
    _sunlight(twin, "sa", [[4.0, 4.0], [2.0, 8.0]])
    _sunlight(twin, "sb", [[3.0, 4.0], [2.0, 8.0]])
    compare_runs(twin, "fa", "fb").save(twin, "cmp")
    assert set(list_results(twin.store, run="cmp")["name"]) == {"exposure_buildings_change", "max_depth_diff",
                                                                "summary"}
    twin.save_result(None, "cmp", "notes", {"by": "planner"})  # added by hand to the comparison's run
    assert compare_runs(twin, "sa", "sb").save(twin, "cmp") == "cmp"
    assert set(list_results(twin.store, run="cmp")["name"]) == {"sunlight_hours_diff", "summary", "notes"}
    assert twin.load_result("base", "cmp", "summary")["compared"] == "sunlight"
    assert twin.load_result("base", "cmp", "notes") == {"by": "planner"}
    assert twin.runs().set_index("run").loc["cmp", "engine"] == "compare"
    twin.close()


@pytest.mark.parametrize("rival, match", [
    ({"engine": "simulation.flood"}, "run 'cmp' under scenario 'base' holds a simulation.flood run; a compare run"),
    (None, r"run 'cmp' under scenario 'base' holds results saved by hand \(\['rival'\]\)"),
], ids=["another engine", "by hand"])
def test_save_checks_its_id_again_in_the_saving_transaction(tmp_path, monkeypatch, rival, match):
    """Between the claim and the save another process saves under the id: the comparison is refused, whole."""
    import cim.results
    from twin_core import Twin
    from twin_core.adapters.compare import compare_runs

    twin = _twin(tmp_path)
    _flood(twin, None, "fa", A_DEPTH, {"B1": 0.5})
    _flood(twin, None, "fb", B_DEPTH, {"B1": 0.6})
    c = compare_runs(twin, "fa", "fb")
    claim = cim.results.claim_run

    def claim_then_another_process_saves(store, scenario, run, engine, *args, **kwargs):
        got = claim(store, scenario, run, engine, *args, **kwargs)
        with Twin.open(str(tmp_path / "t.gpkg")) as other:
            other.save_result(scenario, got, "rival", np.zeros((2, 2)), meta=rival)
        return got

    monkeypatch.setattr(cim.results, "claim_run", claim_then_another_process_saves)
    with pytest.raises(ParameterError, match=match):
        c.save(twin, "cmp")
    assert c.saved_as is None
    assert list_results(twin.store, run="cmp")["name"].tolist() == ["rival"]
    twin.close()


def test_a_traffic_comparisons_save_checks_its_id_again(small_city_gpkg, monkeypatch):
    """``compare_traffic_runs(save_as=...)`` claims its id as a comparison, and checks it again as it saves."""
    import cim.results
    from twin_core import Twin
    from twin_core.adapters.traffic import compare_traffic_runs

    claim = cim.results.claim_run

    def claim_then_another_process_saves(store, scenario, run, engine, *args, **kwargs):
        got = claim(store, scenario, run, engine, *args, **kwargs)
        with Twin.open(small_city_gpkg) as other:
            other.save_result(scenario, got, "rival", np.zeros((2, 2)), meta={"engine": "simulation.crowd"})
        return got

    with Twin.open(small_city_gpkg) as twin:
        twin.traffic(run="ta", demand_scale=0.1)
        twin.traffic(run="tb", demand_scale=0.2)
        monkeypatch.setattr(cim.results, "claim_run", claim_then_another_process_saves)
        with pytest.raises(ParameterError, match="run 'cmp' under scenario 'base' holds a simulation.crowd run; a "
                                                 "compare run"):
            compare_traffic_runs(twin, ("base", "ta"), ("base", "tb"), save_as=("base", "cmp"))
        assert list_results(twin.store, run="cmp")["name"].tolist() == ["rival"]
