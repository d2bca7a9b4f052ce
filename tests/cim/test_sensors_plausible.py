"""Plausibility of sensor readings (cim.sensors): a reading outside its sensor's range (its own ``min_value`` /
``max_value``, else its kind's default) or dated more than a year before the clock is refused with the reason,
never clipped or stored; old readings load only when the caller says so (``oldest=``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import geopandas as gpd
import numpy as np
import pytest
from shapely import Point

from cim.schema import FEATURE_CLASSES, conform
from cim.sensors import (MAX_AGE, READING_RANGES, READINGS, append_readings, check_readings, known_sensors,
                         reading_ranges)
from twin_core.errors import ReadingError

NOW = datetime(2026, 7, 1, 4, 0, tzinfo=timezone.utc)  # 12:00 in Chengdu
T = "2026-07-01T08:00:00+08:00"

#: sensor_id: (kind, unit, min_value, max_value)
SENSORS = {
    "RG01": ("rain_gauge", "mm/h", np.nan, np.nan),        # the kind's default: 0 to 500 mm/h
    "RG02": ("rain_gauge", "mm/h", np.nan, 1000.0),        # its own maximum, the default minimum
    "RG05": ("rain_gauge", "mm", np.nan, np.nan),          # mm per interval: the mm/h default does not apply
    "RL01": ("river_level", "m", 0.0, 12.0),               # its own range
    "RL02": ("river_level", "m", np.nan, np.nan),          # the wide default
    "TC01": ("traffic_counter", "veh/h", np.nan, np.nan),
    "AQ01": ("air_quality", "ug/m3", np.nan, np.nan),
    "CC01": ("crowd_counter", "persons", np.nan, np.nan),
    "CAM1": ("camera", "1", np.nan, np.nan),               # no default
}


def add_sensors(store, sensors=SENSORS):
    ids = list(sensors)
    col = lambda k: [v[k] for v in sensors.values()]  # noqa: E731
    gdf = gpd.GeoDataFrame({"sensor_id": ids, "kind": col(0), "unit": col(1), "min_value": col(2),
                            "max_value": col(3)},
                           geometry=[Point(409600 + 100 * k, 3391000) for k in range(len(ids))], crs="EPSG:4544")
    store.write_layer("sensors", conform(gdf, "sensors"))


def r(sid, value, time=T):
    return {"sensor_id": sid, "time": time, "value": value}


# ------------------------------------------------------------------ the schema and the table of defaults
def test_the_sensors_layer_declares_its_reading_range():
    fc = FEATURE_CLASSES["sensors"]
    for name in ("min_value", "max_value"):
        f = fc.field(name)
        assert f.dtype == "float64" and not f.required and "refused" in f.description
        assert not f.has_range  # a sensor's reading range, not a range of the field itself
    # every default names its source; kinds are those of the schema
    kinds = set(fc.field("kind").choices)
    for kind, rng in READING_RANGES.items():
        assert kind in kinds and rng.source
        assert rng.minimum is None or rng.maximum is None or rng.minimum < rng.maximum
    # the rain default is above the Chinese hourly record (Zhengzhou, 2021-07-20: 201.9 mm in one hour)
    assert READING_RANGES["rain_gauge"].minimum == 0.0 and READING_RANGES["rain_gauge"].maximum >= 201.9
    assert "201.9" in READING_RANGES["rain_gauge"].source
    assert READING_RANGES["traffic_counter"].maximum == 10_000.0
    assert READING_RANGES["air_quality"].minimum == 0.0 and READING_RANGES["crowd_counter"].minimum == 0.0


def test_ranges_are_the_sensors_own_else_their_kinds(store):
    add_sensors(store)
    ranges = reading_ranges(known_sensors(store))
    assert ranges["RG01"][:2] == (0.0, 500.0)
    assert ranges["RG02"][:2] == (0.0, 1000.0)
    assert ranges["RL01"][:2] == (0.0, 12.0)
    assert ranges["TC01"][:2] == (0.0, 10_000.0)
    assert ranges["AQ01"][:2] == (0.0, None) and ranges["CC01"][:2] == (0.0, None)
    assert "RG05" not in ranges and "CAM1" not in ranges


# ------------------------------------------------------------------ values out of range
@pytest.mark.parametrize("sid, value, words", [
    ("RG01", 1e308, ["row 1:", "RG01", "above 500 mm/h", "201.9", "max_value"]),
    ("RG01", -5.0, ["row 1:", "RG01", "below 0 mm/h", "sign"]),
    ("RG02", 1000.5, ["above 1000 mm/h", "RG02's max_value in the 'sensors' layer"]),
    ("RL01", 12.01, ["above 12 m", "RL01's max_value"]),
    ("RL01", -0.5, ["below 0 m", "RL01's min_value"]),
    ("RL02", -9999.0, ["below -500 m", "Dead Sea"]),
    ("TC01", 25_000.0, ["above 10000 veh/h", "lane"]),
    ("AQ01", -1.0, ["below 0 ug/m3"]),
    ("CC01", -3.0, ["below 0 persons"]),
])
def test_a_reading_out_of_range_refuses_the_batch_and_stores_nothing(store, sid, value, words):
    add_sensors(store)
    with pytest.raises(ReadingError) as e:
        append_readings(store, [r("RG01", 12.5), r(sid, value)], now=NOW)
    msg = str(e.value)
    assert msg.startswith("refused 1 of 2 readings, nothing stored")
    for w in words:
        assert w in msg, (w, msg)
    assert [k for k, _ in e.value.problems] == [1]
    assert not store.has_table(READINGS)  # neither the bad reading nor the good one, and nothing clipped


def test_readings_at_the_bounds_and_sensors_without_a_range_are_stored(store):
    add_sensors(store)
    rows = [r("RG01", 0.0), r("RG01", 500.0, "2026-07-01T08:01:00+08:00"), r("RG02", 999.0), r("RL01", 12.0), r("RL02", 505.3),
            r("TC01", 10_000.0), r("AQ01", 1e4), r("CC01", 0.0),
            r("RG05", 700.0), r("CAM1", -1.0)]  # no default for mm nor for a camera
    assert append_readings(store, rows, now=NOW) == len(rows)
    assert store.read_table(READINGS)["value"].tolist() == [row["value"] for row in rows]


def test_check_readings_takes_the_ranges_from_a_frame(store):
    add_sensors(store)
    good, problems = check_readings([r("RG01", 1e308), r("RG01", 3.0)], known_sensors(store), now=NOW)
    assert good.index.tolist() == [1] and problems[0][0] == 0 and "above 500 mm/h" in problems[0][1]
    # plain ids carry no range (nothing to read it from); append_readings reads it from the store then
    assert not check_readings([r("RG01", 1e308)], ["RG01"], now=NOW)[1]
    with pytest.raises(ReadingError, match="above 500 mm/h"):
        append_readings(store, [r("RG01", 1e308)], sensors={"RG01"}, now=NOW)


def test_a_sensor_with_an_empty_range_says_to_fix_the_layer(store):
    add_sensors(store, {"RL01": ("river_level", "m", 5.0, 2.0)})
    with pytest.raises(ReadingError, match=r"RL01's plausible range is empty \(min_value 5 is above max_value 2\)"):
        append_readings(store, [r("RL01", 3.0)], now=NOW)


# ------------------------------------------------------------------ old readings
@pytest.mark.parametrize("time", ["1900-01-01T00:00:00Z", "1970-01-01T08:00:00+08:00",
                                  (NOW - MAX_AGE - timedelta(seconds=1)).isoformat()])
def test_a_reading_more_than_a_year_old_is_refused_with_how_to_backfill(store, time):
    add_sensors(store)
    assert MAX_AGE == timedelta(days=365)
    with pytest.raises(ReadingError) as e:
        append_readings(store, [r("RG01", 1.0, time)], now=NOW)
    msg = str(e.value)
    for w in ("before the clock", "more than 365.0 days old are refused", "oldest=", "append_readings"):
        assert w in msg, (w, msg)
    assert not store.has_table(READINGS)


def test_old_readings_load_when_the_caller_allows_a_backfill(store):
    add_sensors(store)
    just = (NOW - MAX_AGE + timedelta(seconds=1)).isoformat()
    assert append_readings(store, [r("RG01", 1.0, just)], now=NOW) == 1  # within the year: no backfill needed
    oldest = datetime(1900, 1, 1, tzinfo=timezone.utc)
    assert append_readings(store, [r("RG01", 2.0, "1900-01-01T00:00:00Z"),
                                   r("RG01", 3.0, "2020-07-01T08:00:00+08:00")], now=NOW, oldest=oldest) == 2
    # the backfill has its own floor, and the value and future checks still hold
    with pytest.raises(ReadingError, match=r"before 2020-01-01T00:00:00\+00:00, the oldest this backfill accepts"):
        append_readings(store, [r("RG01", 1.0, "2019-12-31T23:59:59Z")], now=NOW,
                        oldest=datetime(2020, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ReadingError, match="above 500 mm/h"):
        append_readings(store, [r("RG01", 1e308, "2020-07-01T00:00:00Z")], now=NOW, oldest=oldest)
    with pytest.raises(ReadingError, match="ahead of the clock"):
        append_readings(store, [r("RG01", 1.0, "2099-07-01T00:00:00Z")], now=NOW, oldest=oldest)
    assert store.count_rows(READINGS) == 3


@pytest.mark.parametrize("oldest, exc, words", [
    (datetime(2020, 1, 1), ValueError, "naive datetime"),
    ("2020-01-01", TypeError, "tz-aware datetime"),
])
def test_a_bad_oldest_is_a_clear_error(store, oldest, exc, words):
    add_sensors(store)
    with pytest.raises(exc, match=words):
        append_readings(store, [r("RG01", 1.0)], now=NOW, oldest=oldest)
