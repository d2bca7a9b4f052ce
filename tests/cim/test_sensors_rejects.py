"""Rejected messages read a page at a time, newest first, on both stores (the map's list of rejects)."""

from __future__ import annotations

import pytest

from cim.sensors import append_rejects, count_rejects, read_rejects


def test_rejects_are_read_a_page_at_a_time_newest_first(store):
    assert count_rejects(store) == 0 and read_rejects(store, 5, offset=2).empty
    append_rejects(store, [{"topic": f"rongtwin/sensors/S{k}", "payload": str(k), "reason": "bad"} for k in range(7)])
    assert count_rejects(store) == 7
    assert read_rejects(store, 3)["payload"].tolist() == ["6", "5", "4"]
    assert read_rejects(store, 3, offset=3)["payload"].tolist() == ["3", "2", "1"]
    assert read_rejects(store, 3, offset=6)["payload"].tolist() == ["0"]  # the last page, short
    assert read_rejects(store, 3, offset=7).empty and read_rejects(store, 3, offset=100).empty
    assert read_rejects(store, offset=5)["payload"].tolist() == ["1", "0"]  # no limit: the rest
    assert read_rejects(store, 0).empty
    with pytest.raises(ValueError, match="0 or more"):
        read_rejects(store, 3, offset=-1)
