"""A page of rejects with its total counts the rejects once: the caller's count is handed to read_rejects."""

from __future__ import annotations

import pytest

from cim.sensors import REJECTS, append_rejects, count_rejects, read_rejects


def _counting(store, monkeypatch) -> list:
    """Record each count of the rejects the store is asked for."""
    counted, real = [], store.count_rows

    def count_rows(name, *args, **kw):
        if name == REJECTS:
            counted.append(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(store, "count_rows", count_rows)
    return counted


def test_a_total_given_is_not_counted_again(store, monkeypatch):
    append_rejects(store, [{"topic": f"rongtwin/sensors/S{k}", "payload": str(k), "reason": "bad"} for k in range(7)])
    counted = _counting(store, monkeypatch)
    total = count_rejects(store)
    pages = [read_rejects(store, 3, offset=o, total=total)["payload"].tolist() for o in (0, 3, 6)]
    assert total == 7 and pages == [["6", "5", "4"], ["3", "2", "1"], ["0"]]
    assert len(counted) == 1  # the caller's own count only (before: once more per page)
    assert read_rejects(store, 3, offset=3)["payload"].tolist() == ["3", "2", "1"]  # no total: counted here
    assert len(counted) == 2


def test_a_total_of_0_reads_nothing(store, monkeypatch):
    counted = _counting(store, monkeypatch)
    assert read_rejects(store, 5, total=0).empty and counted == []
    with pytest.raises(ValueError, match="0 or more"):
        read_rejects(store, 5, total=-1)
