"""The edit log's unique ``seq`` index is looked up once per table, not at every edit (review leftovers,
2026-12-05: a catalogue read of 0.5 ms an edit on PostGIS), and looked up again whenever the table is another
one: dropped and made again, replaced, or its index made in a transaction that was rolled back."""

from __future__ import annotations

import pytest

from cim.scenario import EDITS_TABLE
from cim.store.base import index_name
from twin_core.twin import Twin

UX = index_name(EDITS_TABLE, ["seq"], unique=True)


def _has_unique_seq(store) -> bool:
    return store.list_indexes(EDITS_TABLE).get(UX) == ["seq"]


def _count_lookups(monkeypatch, store) -> list:
    raw = getattr(store, "raw", store)
    seen = []
    real = type(raw).list_indexes
    monkeypatch.setattr(type(raw), "list_indexes", lambda self, name: seen.append(name) or real(self, name))
    return seen


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="ux")
    t.scenarios.create("a")
    yield t
    t.close()


@pytest.mark.postgis
def test_postgis_looks_the_index_up_once_not_at_every_edit(pg_dsn, monkeypatch):
    with Twin.create(pg_dsn, name="ux") as t:
        s = t.scenarios.create("a")
        s.set_param("k0", 0)  # makes the table and its index
        s.set_param("k1", 1)
        seen = _count_lookups(monkeypatch, t.store)
        for i in range(5):
            s.set_param(f"k{i + 2}", i)
        s.undo()
        assert seen == []  # was one list_indexes an edit and an undo
        assert _has_unique_seq(t.store)


def test_a_replaced_edit_log_is_checked_again(twin):
    s = twin.scenarios.get("a")
    s.set_param("k0", 0)
    s.set_param("k1", 1)  # remembered now (on PostGIS)
    log = twin.store.read_table(EDITS_TABLE)
    twin.store.write_table(EDITS_TABLE, log.drop(columns=["fid"], errors="ignore"), mode="replace")  # no index
    assert not _has_unique_seq(twin.store)
    s.set_param("k2", 2)
    assert _has_unique_seq(twin.store)
    twin.store.write_table(EDITS_TABLE, twin.store.read_table(EDITS_TABLE).drop(columns=["fid"], errors="ignore"),
                           mode="replace")
    s.undo()  # an undo checks too
    assert _has_unique_seq(twin.store)
    assert s.params() == {"k0": 0, "k1": 1}


def test_a_dropped_edit_log_made_again_is_checked_again(twin):
    s = twin.scenarios.get("a")
    s.set_param("k0", 0)
    s.set_param("k1", 1)
    twin.store.delete_table(EDITS_TABLE)
    s.set_param("k2", 2)  # the first edit makes the table again
    assert _has_unique_seq(twin.store)
    assert s.params() == {"k2": 2}


def test_an_index_made_in_a_transaction_rolled_back_is_not_remembered(twin):
    s = twin.scenarios.get("a")
    s.set_param("k0", 0)
    s.set_param("k1", 1)
    log = twin.store.read_table(EDITS_TABLE).drop(columns=["fid"], errors="ignore")
    twin.store.write_table(EDITS_TABLE, log, mode="replace")  # an edit log without its index (an older version's)
    with pytest.raises(RuntimeError, match="planner gave up"):
        with twin.store.transaction():
            s.set_param("k2", 2)  # makes the index, in the outer transaction
            raise RuntimeError("planner gave up")
    assert not _has_unique_seq(twin.store)  # rolled back with it
    s.set_param("k3", 3)
    assert _has_unique_seq(twin.store)
    assert s.params() == {"k0": 0, "k1": 1, "k3": 3}
