"""Rejects that cannot fill the disk, and the feed states the listeners keep (cim.sensors)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest


@pytest.fixture
def store(tmp_path):
    from cim.store import open_store

    st = open_store(str(tmp_path / "s.gpkg"), create=True, crs="EPSG:4544")
    yield st
    st.close()


def test_a_huge_rejected_payload_keeps_its_head_and_size_not_megabytes(store):
    from cim.sensors import MAX_REJECT_TEXT, append_rejects, read_rejects

    at = datetime(2026, 7, 1, tzinfo=timezone.utc)
    append_rejects(store, [{"topic": "t/RG01", "payload": b"x" * (10 * 1024 * 1024), "reason": "r", "received_at": at},
                           {"topic": "t/RG01", "payload": "y" * 5000, "reason": "z" * 5000, "received_at": at},
                           {"topic": "t/RG01", "payload": b"\xff" * 3000, "reason": "r", "received_at": at}])
    df = read_rejects(store).iloc[::-1].reset_index(drop=True)
    assert all(len(v) < MAX_REJECT_TEXT + 60 for col in ("payload", "reason") for v in df[col])
    assert df["payload"][0].startswith("xxx") and df["payload"][0].endswith("(10485760 bytes in all)")
    assert df["payload"][1].endswith("(5000 characters in all)") and df["reason"][1].endswith("(5000 characters in all)")
    assert df["payload"][2].startswith("\\xff\\xff")


def test_feed_states_one_row_per_feed_and_a_silent_heartbeat_is_not_running(store):
    from cim.sensors import read_feeds, write_feed_status

    assert read_feeds(store).empty
    now = datetime(2026, 7, 1, 8, tzinfo=timezone.utc)
    row = {"feed": "f", "broker": "b:1883", "topic": "t/+", "state": "live", "detail": "", "since": now,
           "last_message_at": None, "received": 1, "stored": 1, "rejected": 0, "updated_at": now, "heartbeat_s": 10.0}
    write_feed_status(store, row)
    write_feed_status(store, {**row, "received": 2})
    df = read_feeds(store, now=now + timedelta(seconds=30))
    assert len(df) == 1 and df["received"].tolist() == [2] and df["ok"].tolist() == [True]
    assert read_feeds(store, now=now + timedelta(seconds=61))["state"].tolist() == ["not running"]
    write_feed_status(store, {**row, "state": "stopped"})
    assert read_feeds(store, now=now + timedelta(days=1))["state"].tolist() == ["stopped"]
    with pytest.raises(ValueError, match="state must be one of"):
        write_feed_status(store, {**row, "state": "fine"})
