"""The MQTT listener refuses implausible readings and ambiguous payloads as rejects with the reason: a value
outside the sensor's range, a reading more than a year old, a JSON object naming a key twice. No broker needed:
the messages go straight to what the listener stores every second."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import geopandas as gpd
import pytest
from shapely import Point

from cim.sensors import READINGS, read_rejects
from twin_core.sensor_feed import MqttFeed, decode_message

AT = datetime.now(timezone.utc)


@pytest.fixture
def store(tmp_path):
    from cim.store import open_store

    s = open_store(str(tmp_path / "feed.gpkg"), create=True, crs="EPSG:4544")
    s.write_layer("sensors", gpd.GeoDataFrame(
        {"sensor_id": ["RG01", "RL01"], "kind": ["rain_gauge", "river_level"], "unit": ["mm/h", "m"],
         "warn_threshold": [20.0, 1.8], "alarm_threshold": [50.0, 2.3], "min_value": [None, 0.0],
         "max_value": [None, 12.0]},
        geometry=[Point(409600, 3391000), Point(409700, 3391000)], crs="EPSG:4544"))
    yield s
    s.close()


@pytest.mark.parametrize("payload", [b'{"value": 1, "value": 2}', b'{"value": 1, "time": "x", "time": "y"}',
                                     b'{"value": {"a": 1, "a": 2}}'])
def test_a_key_named_twice_is_refused_with_the_reason(payload):
    reading, why = decode_message("rongtwin/sensors/RG01", payload, AT)
    assert reading is None and "more than once" in why and "send each key once" in why


def test_one_of_each_key_is_still_read():
    reading, why = decode_message("rongtwin/sensors/RG01", b'{"value": 2, "time": "2026-07-01T08:00:00+08:00"}', AT)
    assert why is None and reading["value"] == 2


def _message(sid, payload, k):
    return (f"rongtwin/sensors/{sid}", payload, AT, len(payload), k, 1, 0)


def test_the_listener_rejects_implausible_messages_and_stores_the_good_ones(store):
    old = (AT - timedelta(days=400)).isoformat()
    messages = [
        ("RG01", b"12.5", True),
        ("RG01", b"1e308", False),                                  # no rain that hard
        ("RG01", b"-5", False),                                     # nor negative
        ("RL01", b'{"value": 13.0}', False),                        # above the gauge's own max_value
        ("RG01", b'{"value": 1, "value": 2}', False),               # which value?
        ("RG01", b'{"value": 1, "time": "1900-01-01T00:00:00Z"}', False),  # a clock reset
        ("RG01", f'{{"value": 1, "time": "{old}"}}'.encode(), False),      # more than a year old
        ("RL01", b"2.0", True),
    ]
    feed = MqttFeed(store)
    pending = [_message(sid, p, k) for k, (sid, p, _) in enumerate(messages)]
    assert feed._flush(pending)
    assert pending == [] and feed.counts.stored == 2 and feed.counts.rejected == 6
    assert store.read_table(READINGS)["value"].tolist() == [12.5, 2.0]
    rej = read_rejects(store).iloc[::-1].reset_index(drop=True)  # in the order they came
    assert rej["payload"].tolist() == [p.decode() for _, p, ok in messages if not ok]
    reasons = rej["reason"].tolist()
    assert "above 500 mm/h" in reasons[0] and "201.9" in reasons[0]
    assert "below 0 mm/h" in reasons[1]
    assert "above 12 m" in reasons[2] and "RL01's max_value" in reasons[2]
    assert "'value' more than once" in reasons[3]
    for why in reasons[4:]:
        assert "more than 365.0 days old are refused" in why and "oldest=" in why


def test_a_reading_at_the_age_limit_does_not_stall_the_listener(store, monkeypatch):
    # checked and stored on one clock: a reading that passes the check is not refused a moment later by the
    # store (which would keep the whole batch held and unacknowledged, tried again for ever)
    import cim.sensors as cs

    real = cs.append_readings

    def slow_append(*a, **kw):  # the store takes its time
        import time

        time.sleep(1.5)
        return real(*a, **kw)

    monkeypatch.setattr(cs, "append_readings", slow_append)
    feed = MqttFeed(store)
    feed._sensors()  # the sensors layer read beforehand
    edge = datetime.now(timezone.utc) - cs.MAX_AGE + timedelta(seconds=1)
    pending = [_message("RG01", f'{{"value": 1, "time": "{edge.isoformat()}"}}'.encode(), 0)]
    assert feed._flush(pending), feed.counts.errors
    assert feed.counts.stored == 1 and feed.counts.rejected == 0
