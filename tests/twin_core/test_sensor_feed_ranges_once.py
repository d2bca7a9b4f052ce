"""The MQTT listener works out the sensors' plausible ranges once per read of the sensors layer, not once to
check a batch and again to store it."""

from __future__ import annotations

from datetime import datetime, timezone

import geopandas as gpd
import pytest
from shapely import Point

from cim.sensors import READINGS
from twin_core.sensor_feed import MqttFeed


@pytest.fixture
def store(tmp_path):
    from cim.store import open_store

    s = open_store(str(tmp_path / "feed.gpkg"), create=True, crs="EPSG:4544")
    s.write_layer("sensors", gpd.GeoDataFrame(
        {"sensor_id": ["RG01", "RL01"], "kind": ["rain_gauge", "river_level"], "unit": ["mm/h", "m"],
         "min_value": [None, 0.0], "max_value": [None, 12.0]},
        geometry=[Point(409600, 3391000), Point(409700, 3391000)], crs="EPSG:4544"))
    yield s
    s.close()


def _message(sid, payload, k):
    return (f"rongtwin/sensors/{sid}", payload, datetime.now(timezone.utc), len(payload), k, 1, 0)


def test_a_flush_works_the_ranges_out_once(store, monkeypatch):
    import cim.sensors as cs

    calls = []
    real = cs.reading_ranges
    monkeypatch.setattr(cs, "reading_ranges", lambda sensors: calls.append(len(sensors)) or real(sensors))
    feed = MqttFeed(store)
    pending = [_message("RG01", b"12.5", 0), _message("RL01", b"13.0", 1), _message("RL01", b"2.0", 2)]
    assert feed._flush(pending), feed.counts.errors
    assert (feed.counts.stored, feed.counts.rejected) == (2, 1)
    assert store.read_table(READINGS)["value"].tolist() == [12.5, 2.0]
    assert calls == [2]  # before: twice, to check the batch and again when append_readings checked it
    # the next flush, on the same read of the layer, works out none
    assert feed._flush([_message("RG01", b"3.0", 3)]) and calls == [2]
    assert feed.counts.stored == 3


def test_known_sensors_stand_in_for_the_frame(store):
    from cim.sensors import KnownSensors, append_readings, check_readings, known_sensors
    from twin_core.errors import ReadingError

    known = KnownSensors.of(known_sensors(store))
    now = datetime.now(timezone.utc)
    good, problems = check_readings([{"sensor_id": "RL01", "time": now, "value": 13.0},
                                     {"sensor_id": "XX", "time": now, "value": 1.0}], known)
    assert [k for k, _ in problems] == [0, 1] and "above 12 m" in problems[0][1] and "unknown" in problems[1][1]
    with pytest.raises(ReadingError, match="2 sensors") as exc:
        append_readings(store, [{"sensor_id": "XX", "time": now, "value": 1.0}], sensors=known)
    assert exc.value.unknown_sensors == ["XX"]
    assert append_readings(store, [{"sensor_id": "RG01", "time": now, "value": 1.0}], sensors=known) == 1
