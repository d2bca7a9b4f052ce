"""The scenario edit log under two real processes (spawned) at once, on both stores.

Found by a DBA's review on PostGIS: two planners' first edits on a twin (no ``scenario_edits`` table yet) both
said saved and one was gone (the second writer created the table with ``mode="replace"``, dropping the first's);
two processes editing one scenario wrote one ``seq`` twice (the highest seq was read before the table's write
lock was taken) and ``undo()`` then took back both planners' last edits. The same for the map's shared bookmarks.
"""

from __future__ import annotations

import multiprocessing
import warnings

import pandas as pd
import pytest

from cim.scenario import EDITS_TABLE
from twin_core.errors import TwinWarning
from twin_core.twin import Twin

N = 30  # edits a process: the review's run (30 each) gave 59 rows with 30 distinct seq
TIMEOUT = 240  # s for a process: spawning one and importing RongTwin takes a few seconds on a loaded machine


def _spawn(target, args_list) -> None:
    """Run ``target(*args)`` in one spawned process per ``args``, all released together by a barrier; fail
    with the child's exit code when one raised (its traceback is on stderr)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args_list))
    procs = [ctx.Process(target=target, args=(*args, barrier)) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in procs] == [0] * len(procs), "a process failed (its traceback is printed above)"


def _first_edit(target, scenario, key, barrier) -> None:
    with Twin.open(target) as t:
        s = t.scenarios.get(scenario)
        barrier.wait(60)
        s.set_param(key, 1)


def _hammer(target, tag, n, barrier) -> None:
    with Twin.open(target) as t:
        s = t.scenarios.get("shared")
        barrier.wait(60)
        for i in range(n):
            s.set_param(f"{tag}_{i}", i)


def _edit_and_undo(target, tag, n, barrier) -> None:
    with Twin.open(target) as t:
        s = t.scenarios.get("shared")
        barrier.wait(60)
        for i in range(n):
            s.set_param(f"{tag}_{i}_a", i)
            s.set_param(f"{tag}_{i}_b", i)
            gone = s.undo()
            # one edit taken back: one row, a set_param (whoever's it was: undo takes the scenario's latest)
            assert len(gone) == 1 and gone["op"].tolist() == ["set_param"], gone


def _log(t) -> pd.DataFrame:
    return t.store.read_table(EDITS_TABLE, order_by="seq")


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="race")
    t.scenarios.create("shared")
    yield t
    t.close()


def test_two_first_edits_of_a_twin_at_once_are_both_kept(twin, store_target):
    """Review defect 1 (3 of 3 tries on PostGIS lost one): each try starts without the edit log table."""
    for i in range(3):
        name = f"s{i}"
        twin.scenarios.create(name)
        if twin.store.has_table(EDITS_TABLE):
            twin.store.delete_table(EDITS_TABLE)
        _spawn(_first_edit, [(store_target, name, "p_A"), (store_target, name, "p_B")])
        assert twin.scenarios.get(name).params() == {"p_A": 1, "p_B": 1}, f"try {i + 1}"


def test_two_processes_editing_one_scenario_get_unique_seq_and_undo_takes_one(twin, store_target):
    """Review defect 2: 2 x 30 set_param gave 59 rows, 30 distinct seq, and undo() took ['B_29', 'A_29']."""
    _spawn(_hammer, [(store_target, "A", N), (store_target, "B", N)])
    log = _log(twin)
    assert len(log) == 2 * N
    assert log["seq"].is_unique
    s = twin.scenarios.get("shared")
    assert s.params() == {f"{tag}_{i}": i for tag in "AB" for i in range(N)}
    assert s.n_edits == 2 * N
    last = log.iloc[-1]
    gone = s.undo()
    assert gone["target"].tolist() == [last["target"]] and gone["seq"].tolist() == [last["seq"]]
    assert len(_log(twin)) == 2 * N - 1
    # a third writer cannot give a seq twice either: the server refuses it (a unique index on seq), as the
    # store's clear error naming the table and column, not the driver's raw IntegrityError
    from twin_core.errors import SchemaError

    with pytest.raises(SchemaError, match="(?i)unique"):
        twin.store.write_table(EDITS_TABLE, _log(twin).iloc[:1], mode="append")
    assert len(_log(twin)) == 2 * N - 1


def test_undo_beside_another_processes_edits_takes_back_one_edit(twin, store_target):
    """Each process: 10 x (two edits, one undo); every undo took one row, 2 x 10 rows remain, seq unique."""
    n = 10
    _spawn(_edit_and_undo, [(store_target, "A", n), (store_target, "B", n)])
    log = _log(twin)
    assert len(log) == 2 * n and log["seq"].is_unique
    assert twin.scenarios.get("shared").n_edits == 2 * n


def _old_log(twin) -> pd.DataFrame:
    """An edit log as the old code left it after the race: A's and B's last edits share seq 3 (B's written
    later, 1 ms apart), and a close_roads-like edit of two rows (seq 1, 2) made together."""
    rows = [("shared", 1, "set_param", "x", "2026-07-01T00:00:00.000000+00:00"),
            ("shared", 2, "set_param", "y", "2026-07-01T00:00:00.000000+00:00"),
            ("shared", 3, "set_param", "A_29", "2026-07-01T00:00:01.000000+00:00"),
            ("shared", 3, "set_param", "B_29", "2026-07-01T00:00:01.001000+00:00")]
    df = pd.DataFrame(rows, columns=["scenario", "seq", "op", "target", "created"])
    for c in ("feature_id", "geom_wkb", "blob_key", "window"):
        df[c] = pd.Series([None] * len(df), dtype=object)
    df["attrs"] = "1"
    df["seq"] = df["seq"].astype("int64")
    twin.store.write_table(EDITS_TABLE, df[["scenario", "seq", "op", "target", "feature_id", "attrs", "geom_wkb",
                                            "blob_key", "window", "created"]], mode="replace")
    return df


def test_an_old_log_with_a_repeated_seq_opens_is_renumbered_and_undo_takes_one(twin, store_target):
    _old_log(twin)
    t = Twin.open(store_target)  # reading never writes nor refuses: a read-only user opens it as before
    try:
        s = t.scenarios.get("shared")
        assert s.params() == {"x": 1, "y": 1, "A_29": 1, "B_29": 1}
        assert len(t.scenarios.list()) == 1
        with pytest.warns(TwinWarning, match=r"1 edit row whose sequence number .* renumbered 1\.\.4"):
            gone = s.undo()
        assert gone["target"].tolist() == ["B_29"]  # the old code took back ['A_29', 'B_29']
        log = _log(t)
        assert log["seq"].tolist() == [1, 2, 3] and log["target"].tolist() == ["x", "y", "A_29"]
        with warnings.catch_warnings():
            warnings.simplefilter("error", TwinWarning)  # renumbered once: no second warning
            s.set_param("z", 2)
        assert _log(t)["seq"].tolist() == [1, 2, 3, 4]
        assert s.undo()["target"].tolist() == ["z"]
        assert s.undo()["target"].tolist() == ["A_29"]
        assert sorted(s.undo()["target"]) == ["x", "y"]  # one edit of two rows, written together
    finally:
        t.close()


def test_edits_in_one_instant_stay_two_edits(twin, monkeypatch):
    """Two edits whose clock reads the same time (a coarse clock, a client behind the server): undo and
    n_edits tell edits apart by their time, so the second is written a microsecond after the first."""
    import cim.scenario as scenario_mod

    fixed = scenario_mod.datetime(2026, 7, 1, tzinfo=scenario_mod.timezone.utc)

    class Frozen(scenario_mod.datetime):
        @classmethod
        def now(cls, tz=None):
            return fixed

    monkeypatch.setattr(scenario_mod, "datetime", Frozen)
    s = twin.scenarios.get("shared")
    s.set_param("a", 1)
    s.set_param("b", 2)
    assert s.n_edits == 2
    assert s.undo()["target"].tolist() == ["b"]
    assert s.params() == {"a": 1}


def _save_bookmark(target, name, barrier) -> None:
    from types import SimpleNamespace

    from cim.store import open_store
    from viewer.dependencies import Principal
    from viewer.routers.bookmarks import BookmarkIn, save_bookmark

    store = open_store(target)
    try:
        body = BookmarkIn(name=name, view={"longitude": 104.06, "latitude": 30.66, "zoom": 14})
        barrier.wait(60)
        save_bookmark(body, SimpleNamespace(store=store), Principal("planner", name))
    finally:
        store.close()


def test_two_first_bookmarks_at_once_are_both_kept(twin, store_target):
    from viewer.routers.bookmarks import TABLE

    for i in range(3):
        if twin.store.has_table(TABLE):
            twin.store.delete_table(TABLE)
        _spawn(_save_bookmark, [(store_target, f"view A{i}"), (store_target, f"view B{i}")])
        assert sorted(twin.store.read_table(TABLE)["name"]) == [f"view A{i}", f"view B{i}"], f"try {i + 1}"
