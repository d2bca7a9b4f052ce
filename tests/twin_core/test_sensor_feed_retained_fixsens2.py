"""Retained MQTT messages and repeated readings, against the real broker (Mosquitto, as test_sensor_feed.py).

A retained message is handed to every listener as it subscribes, hours or days after it was published: without
a ``time`` it is refused to ``sensor_rejects`` (stamping it with its arrival made an old alarm read as current
at every start), and with one it is stored once (its re-delivery at the next start is already stored). A message
with a stored reading's sensor and time but another value is a reject; the stored reading stands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from cim.sensors import READINGS, REJECTS
from tests.twin_core import test_sensor_feed as tsf
from twin_core.sensor_feed import MqttFeed, decode_message

broker, publisher, prefix = tsf.broker, tsf.publisher, tsf.prefix  # the broker and the twins of test_sensor_feed
gpkg_twin, twin_target = tsf.gpkg_twin, tsf.twin_target
AT = datetime(2026, 7, 1, tzinfo=timezone.utc)


def test_a_retained_message_is_timed_by_its_payload_only():
    for payload in (b"100", b'{"value": 100}'):
        reading, why = decode_message("rongtwin/sensors/TC02", payload, AT, retained=True)
        assert reading is None and why.startswith("a retained message without a time"), why
        assert "mosquitto_pub -t 'rongtwin/sensors/TC02' -r -n" in why
        assert decode_message("rongtwin/sensors/TC02", payload, AT)[0]["time"] == AT  # not retained: its arrival
    reading, why = decode_message("rongtwin/sensors/TC02", b'{"value": 100, "time": "2026-07-01T08:00:00+08:00"}',
                                  AT, retained=True)
    assert why is None and reading["time"] == "2026-07-01T08:00:00+08:00"


def _listen(target, broker, topic, n):
    th, holder, result = tsf.listen_in_thread(target, broker, topic, max_messages=n, seconds=20)
    th.join(30)
    assert "error" not in result, result.get("error")
    return result["counts"]


def _table(target, name):
    from cim.store import open_store

    with open_store(target) as st:
        return st.read_table(name) if st.has_table(name) else None


def test_a_retained_message_without_a_time_is_refused_at_every_start(gpkg_twin, broker, publisher, prefix):
    publisher.send(f"{prefix}/RG01", 100, retain=True)  # an old alarm, kept by the broker
    try:
        for start in (1, 2):
            counts = _listen(gpkg_twin, broker, f"{prefix}/+", 1)
            assert (counts.received, counts.stored, counts.rejected) == (1, 0, 1), start
    finally:
        publisher.send(f"{prefix}/RG01", b"", retain=True)
    assert _table(gpkg_twin, READINGS) is None  # never stored as a fresh reading
    rejects = _table(gpkg_twin, REJECTS)
    assert rejects["payload"].tolist() == ["100", "100"]
    assert all(why.startswith("a retained message without a time") for why in rejects["reason"])


def test_a_retained_message_with_a_time_is_stored_once(twin_target, broker, publisher, prefix):
    at = (datetime.now(timezone.utc) - timedelta(minutes=20)).replace(microsecond=0)
    publisher.send(f"{prefix}/RG01", {"value": 60.0, "time": at.isoformat()}, retain=True)
    try:
        first = _listen(twin_target, broker, f"{prefix}/+", 1)
        second = _listen(twin_target, broker, f"{prefix}/+", 1)
    finally:
        publisher.send(f"{prefix}/RG01", b"", retain=True)
    assert (first.stored, first.already_stored, first.rejected) == (1, 0, 0)
    assert (second.received, second.stored, second.already_stored, second.rejected) == (1, 0, 1, 0)
    assert "already stored 1" in second.line()
    stored = _table(twin_target, READINGS)
    assert (stored["sensor_id"].tolist(), stored["time"].tolist(), stored["value"].tolist()) == (
        ["RG01"], [at.isoformat()], [60.0])


def test_a_conflicting_message_is_a_reject_and_the_stored_reading_stands(gpkg_twin, broker, publisher, prefix):
    at = (datetime.now(timezone.utc) - timedelta(minutes=20)).replace(microsecond=0).isoformat()
    th, holder, result = tsf.listen_in_thread(gpkg_twin, broker, f"{prefix}/+", max_messages=3, seconds=20)
    publisher.send(f"{prefix}/RL01", {"value": 2.5, "time": at})
    publisher.send(f"{prefix}/RL01", {"value": 0.2, "time": at})
    publisher.send(f"{prefix}/RL01", {"value": 2.5, "time": at})
    th.join(30)
    assert "error" not in result, result.get("error")
    counts = result["counts"]
    assert (counts.received, counts.stored, counts.rejected, counts.already_stored) == (3, 1, 1, 1)
    assert _table(gpkg_twin, READINGS)["value"].tolist() == [2.5]
    rejects = _table(gpkg_twin, REJECTS)
    assert json.loads(rejects["payload"].iloc[0])["value"] == 0.2
    assert f"RL01 at {at}: value 0.2 conflicts with 2.5" in rejects["reason"].iloc[0]


def test_a_flush_rejects_conflicts_within_a_batch_and_against_the_store(gpkg_twin):
    """Without the broker: messages as paho hands them over (topic, payload, received, size, mid, qos, gen,
    retain). The batch is stored and acknowledged, not held for ever on a conflict."""
    from cim.store import open_store

    at = (datetime.now(timezone.utc) - timedelta(minutes=5)).replace(microsecond=0).isoformat()
    now = datetime.now(timezone.utc)

    def msg(sid, value, k, retain=False):
        payload = json.dumps({"value": value, "time": at}).encode()
        return (f"rongtwin/sensors/{sid}", payload, now, len(payload), k, 1, 0, retain)

    with open_store(gpkg_twin) as st:
        feed = MqttFeed(st, broker="127.0.0.1:1883", topic="rongtwin/sensors/+")
        pending = [msg("RG01", 1.0, 0), msg("RG01", 2.0, 1), msg("RL01", 2.5, 2, True)]
        assert feed._flush(pending) and pending == [], feed.counts.errors
        pending = [msg("RL01", 0.1, 3), msg("RL01", 2.5, 4, True)]
        assert feed._flush(pending) and pending == [], feed.counts.errors
        assert (feed.counts.stored, feed.counts.rejected, feed.counts.already_stored) == (2, 2, 1)
        assert st.read_table(READINGS)["value"].tolist() == [1.0, 2.5]
        reasons = st.read_table(REJECTS)["reason"].tolist()
    assert "value 2 conflicts with 1 in a message on 'rongtwin/sensors/RG01' just before" in reasons[0]
    assert "value 0.1 conflicts with 2.5 already stored" in reasons[1]
