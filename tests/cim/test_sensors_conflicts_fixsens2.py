"""A reading is a fact: one sensor has one value at one instant. The same reading again (a re-send) is taken and
not stored twice; another value for a stored sensor and time (or twice in one batch) is a conflict, refused with
the pair named, never a silent replacement of an alarm. On both stores."""

from __future__ import annotations

from datetime import datetime, timezone

import geopandas as gpd
import pandas as pd
import pytest
from shapely import Point

from cim.sensors import (READINGS, ReadingsCache, StoredReadings, append_readings, find_repeats, read_readings,
                         store_readings)
from twin_core.errors import ReadingError

NOW = datetime(2026, 7, 1, 4, 0, tzinfo=timezone.utc)
T = "2026-07-01T08:00:00+08:00"          # 00:00 UTC
T_UTC = "2026-07-01T00:00:00+00:00"


@pytest.fixture
def twin(store):
    store.write_layer("sensors", gpd.GeoDataFrame(
        {"sensor_id": ["RL02", "RG01", "TC01"], "kind": ["river_level", "rain_gauge", "traffic_counter"],
         "unit": ["m", "mm/h", "veh/h"], "warn_threshold": [1.8, 20.0, 5000.0], "alarm_threshold": [2.3, 50.0, 8000.0]},
        geometry=[Point(409600, 3391000), Point(409700, 3391000), Point(409800, 3391000)], crs="EPSG:4544"))
    return store


def r(sid, value, time=T):
    return {"sensor_id": sid, "time": time, "value": value}


def test_a_later_value_for_the_same_instant_does_not_replace_an_alarm(twin):
    assert append_readings(twin, [r("RL02", 2.5)], now=NOW) == 1
    with pytest.raises(ReadingError) as err:
        append_readings(twin, [r("RL02", 0.2)], now=NOW)
    msg = str(err.value)
    assert "RL02 at 2026-07-01T00:00:00+00:00: value 0.2 conflicts with 2.5 already stored" in msg
    assert "delete_rows('sensor_readings'" in msg
    assert err.value.conflicts == [{"index": 0, "sensor_id": "RL02", "time": T_UTC, "value": 0.2,
                                    "other_value": 2.5, "other": "stored"}]
    assert twin.read_table(READINGS)["value"].tolist() == [2.5]
    cache = ReadingsCache()
    cache.refresh(twin)
    assert [(a["sensor_id"], a["status"], a["value"]) for a in cache.alerts()] == [("RL02", "alarm", 2.5)]


def test_the_same_reading_again_is_taken_and_not_stored_twice(twin):
    assert store_readings(twin, [r("RL02", 2.5), r("RG01", 3.0)], now=NOW) == StoredReadings(2, 0)
    # the same instant written another way (UTC, Z), a reading new beside it: one stored, one already there
    again = [r("RL02", 2.5, "2026-07-01T00:00:00Z"), r("RG01", 4.0, "2026-07-01T08:05:00+08:00")]
    assert store_readings(twin, again, now=NOW) == StoredReadings(1, 1)
    assert store_readings(twin, again, now=NOW) == StoredReadings(0, 2)
    assert append_readings(twin, again, now=NOW) == 0
    assert len(read_readings(twin)) == 3


def test_two_values_at_one_instant_in_one_batch_are_refused_whole(twin):
    with pytest.raises(ReadingError) as err:
        append_readings(twin, [r("RL02", 1.0), r("RG01", 12.0), r("RG01", 13.0, "2026-07-01T00:00:00Z")], now=NOW)
    assert "row 2: RG01 at 2026-07-01T00:00:00+00:00: value 13 conflicts with 12 in row 1 of this batch" in str(
        err.value)
    assert [k for k, _ in err.value.problems] == [2] and err.value.conflicts[0]["other"] == 1
    assert not twin.has_table(READINGS)  # nothing of the batch
    # the same value twice in a batch is one reading
    assert store_readings(twin, [r("RG01", 12.0), r("RG01", 12.0)], now=NOW) == StoredReadings(1, 1)


def test_ten_thousand_readings_of_one_sensor_at_one_instant(twin):
    many = [r("TC01", float(k)) for k in range(10_000)]
    with pytest.raises(ReadingError, match=r"refused 9999 of 10000 readings, nothing stored: row 1: TC01 at"):
        append_readings(twin, many, now=NOW)
    assert not twin.has_table(READINGS)
    assert store_readings(twin, [r("TC01", 7.0)] * 10_000, now=NOW) == StoredReadings(1, 9999)
    assert twin.count_rows(READINGS) == 1


def test_a_store_that_holds_conflicting_pairs_already_opens_and_takes_readings(twin, store_target):
    """Written before the check (or by hand): both values stay, a re-send of either is taken as stored, a third
    value is a conflict, and other readings go in as before."""
    from cim.store import open_store

    twin.write_table(READINGS, pd.DataFrame({"sensor_id": ["RL02", "RL02"], "time": [T_UTC, T_UTC],
                                             "value": [2.5, 0.2]}))
    twin.close()
    with open_store(store_target) as st:
        assert store_readings(st, [r("RL02", 0.2), r("RL02", 2.5)], now=NOW) == StoredReadings(0, 2)
        with pytest.raises(ReadingError, match="value 1.1 conflicts with 2.5 already stored"):
            append_readings(st, [r("RL02", 1.1)], now=NOW)
        assert append_readings(st, [r("RL02", 1.0, "2026-07-01T08:01:00+08:00")], now=NOW) == 1
        assert st.count_rows(READINGS) == 3


def test_find_repeats_names_the_earlier_row_as_asked(twin):
    append_readings(twin, [r("RG01", 1.0)], now=NOW)
    good = pd.DataFrame({"sensor_id": ["RG01", "RL02", "RL02", "RG01"], "time": [T_UTC] * 4,
                         "value": [1.0, 2.0, 3.0, 9.0]}, index=[10, 11, 12, 13])
    rep = find_repeats(twin, good, earlier=lambda j: f"message {j}")
    assert rep.already == [10]
    assert [(k, why.split(" (")[0]) for k, why in rep.conflicts] == [
        (12, "RL02 at 2026-07-01T00:00:00+00:00: value 3 conflicts with 2 in message 11"),
        (13, "RG01 at 2026-07-01T00:00:00+00:00: value 9 conflicts with 1 already stored")]
