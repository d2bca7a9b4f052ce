"""Run ids claimed safely by every engine and analysis (:func:`cim.results.claim_run`, :func:`saving_run`).

1. A run id holding only results saved by hand (``save_result`` with no engine in their meta) was refused by a
   comparison's save alone; every other engine overwrote or mixed with them without a word.
2. An explicit id was checked only before the run computed: a second process saving another engine's results
   (or some by hand) under it meanwhile got them mixed with this run's. The id is checked again in the
   transaction that saves the run, which no other save of the same scenario and id runs beside.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from cim.raster import Raster
from cim.results import (_run_key, check_run_free, claim_run, delete_results, list_results, load_result,
                         save_result, saving_run)
from cim.store import open_store
from twin_core.errors import ParameterError
from twin_core.twin import Twin

CRS = "EPSG:4544"
X0, Y0 = 404000.0, 3393000.0
QUICK_FLOOD = dict(storm="5y", duration="5min")
HAND = r"run 'mine' under scenario 'base' holds results saved by hand \(\['notes'\]\), no engine's run"


def _tiny_twin(target) -> Twin:
    """A twin of a flat 4 x 4 'dem' of 5 m cells and a 'manning' raster (no layers), in either store."""
    tr = Affine(5.0, 0, X0, 0, -5.0, Y0 + 20.0)
    twin = Twin.create(target, crs=CRS)
    twin.store.write_raster("dem", Raster(np.zeros((4, 4), "float32"), tr, CRS))
    twin.store.write_raster("manning", Raster(np.full((4, 4), 0.03, "float32"), tr, CRS))
    return twin


def _zeros() -> np.ndarray:
    return np.zeros((2, 2))


# -- 1. results saved by hand ---------------------------------------------------------------------------------
def test_check_run_free_refuses_an_id_holding_only_results_saved_by_hand(store):
    save_result(store, "base", "mine", "notes", pd.DataFrame({"a": [1]}))  # no meta: saved by hand
    with pytest.raises(ParameterError) as info:
        check_run_free(store, "base", "mine", "simulation.flood")
    assert str(info.value) == (
        "run 'mine' under scenario 'base' holds results saved by hand (['notes']), no engine's run; a "
        "simulation.flood run under the same id would overwrite or mix with them. Give this run another id, or "
        "delete run 'mine' first: twin.delete_run('mine', scenario='base') (CLI: twin runs TARGET mine --delete "
        "--scenario base)")
    for engine in ("sunlight", "access", "compare", "simulation.traffic", "simulation.crowd"):
        with pytest.raises(ParameterError, match=HAND):
            claim_run(store, None, "mine", engine)
    assert claim_run(store, None, "mine", "sunlight", save=False) == "mine"  # nothing stored, nothing to mix
    with pytest.raises(ParameterError, match="taken under scenario 'base'"):  # one id would name two runs
        claim_run(store, "levee", "mine", "simulation.flood")
    # a user's result added to an engine's run leaves it that engine's run (the engine leaves the result alone)
    save_result(store, "base", "f1", "max_depth", _zeros(), meta={"engine": "simulation.flood"})
    save_result(store, "base", "f1", "notes", {"by": "planner"})
    assert claim_run(store, None, "f1", "flood") == "f1"
    with pytest.raises(ParameterError, match="holds a simulation.flood run; a sunlight run"):
        claim_run(store, None, "f1", "sunlight")
    assert delete_results(store, "base", "mine") == 1  # what the error says to do frees the id
    assert claim_run(store, None, "mine", "simulation.flood") == "mine"


def test_more_than_five_results_saved_by_hand_are_counted(tmp_path):
    with open_store(str(tmp_path / "r.gpkg"), create=True, crs=CRS) as store:
        for i in range(7):
            save_result(store, "base", "mine", f"n{i}", {"i": i})
        with pytest.raises(ParameterError, match=r"\(\['n0', 'n1', 'n2', 'n3', 'n4'\] and 2 more\)"):
            check_run_free(store, "base", "mine", "viewshed")


def test_every_engine_refuses_an_id_holding_results_saved_by_hand(small_city_gpkg):
    from twin_core.adapters.analysis import run_sunlight, run_viewshed

    with Twin.open(small_city_gpkg) as twin:
        x0, y0, x1, y1 = twin.extent
        twin.save_result("base", "mine", "notes", {"by": "planner"})
        calls = {
            "flood": lambda: twin.flood(run="mine", **QUICK_FLOOD),
            "crowd": lambda: twin.crowd("A001", agents=5, until="10s", run="mine"),
            "access": lambda: twin.access("fire_station", run="mine"),
            "traffic": lambda: twin.traffic(run="mine", demand_scale=0.1),
            "simulate": lambda: twin.traffic(run="mine", mode="simulate", demand_scale=0.1, until="5min"),
            "sunlight": lambda: run_sunlight(twin, bounds=(x0, y0, x0 + 20, y0 + 20), spacing=10, run="mine"),
            "viewshed": lambda: run_viewshed(twin, ((x0 + x1) / 2, (y0 + y1) / 2), radius=20, run="mine"),
        }
        for engine, call in calls.items():
            with pytest.raises(ParameterError, match=HAND):
                call()
        assert list_results(twin.store, run="mine")["name"].tolist() == ["notes"]  # as the user left them
        assert twin.load_result("base", "mine", "notes") == {"by": "planner"}


def test_flood_refuses_an_id_saved_by_hand_in_either_store(store_target):
    with _tiny_twin(store_target) as twin:
        twin.save_result("base", "mine", "notes", {"by": "planner"})
        with pytest.raises(ParameterError, match=HAND):
            twin.flood(run="mine", **QUICK_FLOOD)
        twin.flood(run="mine", save=False, **QUICK_FLOOD)  # not saved: nothing to mix with
        assert list_results(twin.store, run="mine")["name"].tolist() == ["notes"]


# -- 2. the id checked again when the run is saved --------------------------------------------------------------
@pytest.mark.parametrize("rival, match", [
    ({"analysis": "sunlight"}, "run 'X' under scenario 'base' holds a sunlight run; a simulation.flood run"),
    (None, r"run 'X' under scenario 'base' holds results saved by hand \(\['rival'\]\)"),
], ids=["another engine", "by hand"])
def test_a_save_refuses_an_id_taken_since_it_was_claimed_and_writes_nothing(store_target, rival, match):
    """Engine A claims X; another store handle (another process) saves under X; A's save is refused whole."""
    a = open_store(store_target, create=True, crs=CRS)
    b = open_store(store_target)
    try:
        run = claim_run(a, None, "X", "simulation.flood")  # free when the run starts
        save_result(b, "base", "X", "rival", _zeros(), meta=rival)
        wrote = []
        with pytest.raises(ParameterError, match=match):
            with saving_run(a, None, run, "simulation.flood"):
                wrote.append(True)
                save_result(a, "base", run, "max_depth", _zeros(), meta={"engine": "simulation.flood"})
        assert not wrote
        assert list_results(b, run="X")["name"].tolist() == ["rival"]
        with saving_run(a, None, "Y", "simulation.flood"):  # a free id saves
            save_result(a, "base", "Y", "max_depth", _zeros(), meta={"engine": "simulation.flood"})
        with saving_run(a, None, "Y", "flood"):  # and its own engine saves there again
            save_result(a, "base", "Y", "max_depth", _zeros(), meta={"engine": "simulation.flood"})
        assert list_results(b, run="Y")["name"].tolist() == ["max_depth"]
    finally:
        a.close(), b.close()


def test_run_lock_keeps_other_saves_of_the_run_out_until_it_commits(store_target):
    """The check and the writes are atomic: while one handle saves a run, another cannot write it."""
    a = open_store(store_target, create=True, crs=CRS)
    b = open_store(store_target)
    try:
        if a.kind == "gpkg":  # the transaction holds the file's write lock from its start, before the check
            other = sqlite3.connect(store_target, timeout=0.05, isolation_level=None)
            try:
                with a.run_lock("base\x00X"):
                    with pytest.raises(sqlite3.OperationalError, match="locked"):
                        other.execute("BEGIN IMMEDIATE")
                other.execute("BEGIN IMMEDIATE")  # free again once the save committed
                other.execute("ROLLBACK")
            finally:
                other.close()
        else:  # an advisory lock on the run: the same run waits, another run does not
            import psycopg

            b.conn.execute("SET lock_timeout = '200ms'")
            with a.run_lock(_run_key("base", "X")):
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    with b.run_lock(_run_key("base", "X")):
                        pass
                with pytest.raises(psycopg.errors.LockNotAvailable):  # the id under another scenario too
                    with b.run_lock(_run_key("levee", "X")):
                        pass
                with b.run_lock(_run_key("base", "Y")):
                    pass
                with pytest.raises(psycopg.errors.LockNotAvailable):  # a result saved by hand waits for it too
                    save_result(b, "base", "X", "notes", {"by": "planner"})
                save_result(b, "base", "Y", "notes", {"by": "planner"})
            with b.run_lock(_run_key("base", "X")):  # free again once the save committed
                pass
    finally:
        a.close(), b.close()


def test_one_new_id_saved_under_two_scenarios_at_once_is_refused_once(store_target):
    """Two handles save a new run 'X', one under base and one under levee, at the same time (a code review's
    race): the lock was keyed on (scenario, id), so on PostGIS neither saw the other's uncommitted run and both
    were kept, leaving one id under two scenarios. It is keyed on the id now: the second waits, then is refused."""
    import threading

    a = open_store(store_target, create=True, crs=CRS)
    b = open_store(store_target)
    meta = {"engine": "simulation.flood"}
    try:
        claim_run(a, "base", "X", "simulation.flood"), claim_run(b, "levee", "X", "simulation.flood")
        got: dict = {}

        def second():
            try:
                with saving_run(b, "levee", "X", "simulation.flood"):
                    save_result(b, "levee", "X", "summary", {"v": 2}, meta=meta)
                got["b"] = "saved"
            except ParameterError as exc:
                got["b"] = str(exc)

        with saving_run(a, "base", "X", "simulation.flood"):
            save_result(a, "base", "X", "summary", {"v": 1}, meta=meta)
            t = threading.Thread(target=second)
            t.start()
            t.join(0.5)
            assert t.is_alive()  # waits for the first save (GeoPackage: the file's write lock; PostGIS: the id's)
        t.join(30)
        assert got["b"].startswith("run id 'X' is taken under scenario 'base'; one id names one run"), got
        assert sorted(map(tuple, list_results(a, run="X")[["scenario", "name"]].values.tolist())) == [
            ("base", "summary")]
    finally:
        a.close(), b.close()


def test_a_replace_inside_a_callers_transaction_is_worded_as_pending(store_target):
    """saving_run inside the caller's own transaction warned "replaced run" as its block ended; the caller's
    transaction then rolled back and the earlier run was still there. It now says the replace is pending."""
    from twin_core.errors import RunReplacedWarning

    st = open_store(store_target, create=True, crs=CRS)
    meta = {"engine": "simulation.flood"}
    try:
        save_result(st, "base", "storm", "summary", {"v": 1}, meta=meta)
        with pytest.warns(RunReplacedWarning, match=r"^replaces run 'storm' under 'base' .*\(once the enclosing "
                                                     r"transaction commits\)$"):
            with pytest.raises(RuntimeError):
                with st.transaction():
                    with saving_run(st, None, "storm", "simulation.flood"):
                        save_result(st, "base", "storm", "summary", {"v": 2}, meta=meta)
                    raise RuntimeError("a later step fails")
        assert load_result(st, "base", "storm", "summary") == {"v": 1}  # rolled back: nothing was replaced
        with pytest.warns(RunReplacedWarning, match=r"^replaces run 'storm' under 'base'"):
            with saving_run(st, None, "storm", "simulation.flood"):
                save_result(st, "base", "storm", "summary", {"v": 3}, meta=meta)
    finally:
        st.close()


def _engine_calls(twin):
    from twin_core.adapters.analysis import run_sunlight, run_viewshed

    x0, y0, x1, y1 = twin.extent
    return {
        "flood": lambda run, p: twin.flood(run=run, progress=p, **QUICK_FLOOD),
        "crowd": lambda run, p: twin.crowd("A001", agents=5, until="10s", run=run, progress=p),
        "access": lambda run, p: twin.access("fire_station", run=run, progress=p),
        "traffic": lambda run, p: twin.traffic(run=run, demand_scale=0.1, progress=p),
        "simulate": lambda run, p: twin.traffic(run=run, mode="simulate", demand_scale=0.1, route_iterations=1,
                                                until="5min", progress=p),
        "sunlight": lambda run, p: run_sunlight(twin, bounds=(x0, y0, x0 + 20, y0 + 20), spacing=10,
                                                step_minutes=60, run=run, progress=p),
        "viewshed": lambda run, p: run_viewshed(twin, ((x0 + x1) / 2, (y0 + y1) / 2), radius=20, run=run,
                                                progress=p),
    }


@pytest.mark.parametrize("engine", ["flood", "crowd", "access", "traffic", "simulate", "sunlight", "viewshed"])
def test_every_engine_checks_its_id_again_when_it_saves(small_city_gpkg, engine):
    """While the run computes, another process saves another engine's results under its id: the run is refused
    when it saves, and writes nothing beside them."""
    rival = {"analysis": "viewshed"} if engine == "flood" else {"engine": "simulation.flood"}
    with Twin.open(small_city_gpkg) as twin, Twin.open(small_city_gpkg) as other:
        def progress(done, total):
            if not len(list_results(other.store, run="X")):
                other.save_result("base", "X", "rival", _zeros(), meta=rival)

        with pytest.raises(ParameterError, match=r"run 'X' under scenario 'base' holds a (viewshed|simulation"
                                                 r"\.flood) run"):
            _engine_calls(twin)[engine]("X", progress)
        assert list_results(twin.store, run="X")["name"].tolist() == ["rival"]


def test_the_map_servers_locked_store_is_held_for_the_whole_save(tmp_path):
    """The map server serialises its threads' store calls (viewer.state.LockedStore, whose transaction holds its
    lock for the whole block): a run's save, check and writes, must hold that lock throughout, not only while
    ``run_lock`` is called."""
    import threading

    from viewer.state import LockedStore

    raw = open_store(str(tmp_path / "r.gpkg"), create=True, crs=CRS)
    lock = threading.RLock()
    store = LockedStore(raw, lock)
    held = []

    def other_thread_can_lock() -> bool:
        got = []

        def try_lock():
            got.append(lock.acquire(blocking=False))
            if got[0]:
                lock.release()

        t = threading.Thread(target=try_lock)
        t.start(), t.join()
        return got[0]

    try:
        with saving_run(store, None, "X", "simulation.flood"):
            held.append(not other_thread_can_lock())
            save_result(store, "base", "X", "max_depth", _zeros(), meta={"engine": "simulation.flood"})
            held.append(not other_thread_can_lock())
        assert held == [True, True] and other_thread_can_lock()
        assert list_results(raw, run="X")["name"].tolist() == ["max_depth"]
    finally:
        raw.close()
