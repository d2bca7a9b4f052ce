"""A fresh ReadingsCache (the map server's first ``GET /api/sensors/latest``) reads every sensor's latest reading
and alarm runs in a few set-based queries, not one or more per sensor, and says what reading the whole table
says: ties, readings that are not numbers, long runs, sensors without readings or thresholds."""

from __future__ import annotations

from datetime import datetime, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely import Point

import cim.sensors
from cim.sensors import READINGS, ReadingsCache, append_readings, has_readings_index

NOW = datetime(2026, 7, 1, 4, 0, tzinfo=timezone.utc)
T0 = pd.Timestamp("2026-07-01T00:00:00Z")


def _statements(store, monkeypatch) -> list:
    """Record every SQL statement the store sends from now on (both stores)."""
    sent: list = []
    if store.kind == "gpkg":
        store._con.set_trace_callback(sent.append)
    else:
        import psycopg

        real = psycopg.Cursor.execute
        monkeypatch.setattr(psycopg.Cursor, "execute",
                            lambda self, q, *a, **kw: sent.append(q) or real(self, q, *a, **kw))
    return sent


def _city(store, n: int) -> list[str]:
    """``n`` sensors (every fifth without thresholds) with readings in and out of their thresholds."""
    ids = [f"S{k:04d}" for k in range(n)]
    warn = [np.nan if k % 5 == 4 else 20.0 for k in range(n)]
    alarm = [np.nan if k % 5 == 4 else 50.0 for k in range(n)]
    store.write_layer("sensors", gpd.GeoDataFrame(
        {"sensor_id": ids, "kind": ["rain_gauge"] * n, "unit": ["mm/h"] * n, "warn_threshold": warn,
         "alarm_threshold": alarm},
        geometry=[Point(409600 + k, 3391000) for k in range(n)], crs="EPSG:4544"))
    rng = np.random.default_rng(11)
    rows = []
    for k, sid in enumerate(ids[:-3]):  # the last three have no readings
        m = 1 + k % 13
        for j in range(m):
            v = rng.uniform(20, 80) if k % 3 == 0 and j >= m // 2 else rng.uniform(0, 60)  # a third end in a run
            rows.append({"sensor_id": sid, "time": (T0 + pd.Timedelta(minutes=j, seconds=k % 50)).isoformat(),
                         "value": float(v)})
    # a long alarm run (longer than the first pages) and one that is the sensor's whole history
    rows += [{"sensor_id": ids[0], "time": (T0 + pd.Timedelta(hours=1, seconds=j)).isoformat(), "value": 60.0}
             for j in range(300)]
    rows += [{"sensor_id": ids[1], "time": (T0 + pd.Timedelta(hours=2, seconds=j)).isoformat(), "value": 25.0 + j % 40}
             for j in range(100)]
    append_readings(store, rows, now=NOW)
    assert has_readings_index(store)
    return ids


def _whole(store, monkeypatch) -> ReadingsCache:
    """A cache that reads the whole table (what the indexed first load must agree with)."""
    with monkeypatch.context() as m:
        m.setattr(cim.sensors, "has_readings_index", lambda s: False)
        whole = ReadingsCache()
        whole.refresh(store)
    return whole


def test_the_first_load_is_a_few_queries_however_many_sensors(store, monkeypatch):
    ids = _city(store, 300)
    sensors = cim.sensors.known_sensors(store)
    sent = _statements(store, monkeypatch)
    fast = ReadingsCache()
    fast.refresh(store, sensors)
    if store.kind == "gpkg":
        store._con.set_trace_callback(None)
    monkeypatch.undo()
    # one query a page for all sensors (the newest reading of each, then 16, 64, 256 more of those in a run),
    # plus the counting and the schema look-ups: not one (or more) a sensor as before (over 300 here)
    assert len(sent) < 40, len(sent)
    whole = _whole(store, monkeypatch)
    assert fast.latest == whole.latest and fast.alerts() == whole.alerts()
    assert list(fast.latest) == ids[:-3]  # every sensor with a reading, in the layer's order
    alerts = {a["sensor_id"]: a for a in fast.alerts()}
    assert alerts[ids[0]]["since"] == (T0 + pd.Timedelta(hours=1)).isoformat()  # 300 readings back
    # the last is 25 + 99 % 40 = 44: warn, since before all 100 (over 1 + 16 + 64 readings: a fourth page)
    assert alerts[ids[1]]["status"] == "warn"
    assert alerts[ids[1]]["since"] <= (T0 + pd.Timedelta(hours=2)).isoformat()


def test_the_first_load_agrees_on_ties_and_readings_that_are_not_numbers(store, monkeypatch):
    """Rows written around append_readings (a store from before its checks): two readings at one instant (the one
    stored last wins), a NULL value (reported as None, and it ends a run), as the whole-table read says."""
    ids = _city(store, 40)
    late, before = (T0 + pd.Timedelta(hours=6)).isoformat(), (T0 + pd.Timedelta(hours=5)).isoformat()
    store.write_table(READINGS, pd.DataFrame({
        "sensor_id": [ids[2], ids[2], ids[3], ids[5], ids[5], ids[5], ids[6], ids[6]],
        "time": [late, late, late, before, late, (T0 + pd.Timedelta(hours=7)).isoformat(), before, late],
        "value": [70.0, 30.0, None, 1.0, 55.0, 60.0, None, 99.0]}), mode="append")
    assert has_readings_index(store)
    fast = ReadingsCache()
    fast.refresh(store)
    whole = _whole(store, monkeypatch)
    assert fast.latest == whole.latest and fast.alerts() == whole.alerts()
    assert fast.latest[ids[2]] == (30.0, late)  # the tie: stored last
    assert fast.latest[ids[3]] == (None, late)  # not a number
    alerts = {a["sensor_id"]: a for a in fast.alerts()}
    assert alerts[ids[5]]["since"] == late  # the run after a reading below
    assert alerts[ids[6]]["since"] == late  # the run after one that is not a number
    # and it goes on from there with the rows appended since, as a fresh whole read says
    append_readings(store, [{"sensor_id": ids[5], "time": (T0 + pd.Timedelta(hours=8)).isoformat(), "value": 1.0},
                            {"sensor_id": ids[3], "time": (T0 + pd.Timedelta(hours=8)).isoformat(), "value": 52.0}],
                    now=datetime(2026, 7, 1, 9, tzinfo=timezone.utc))
    fast.refresh(store)
    whole = _whole(store, monkeypatch)
    assert fast.latest == whole.latest and fast.alerts() == whole.alerts()
    assert ids[5] not in {a["sensor_id"] for a in fast.alerts()}
    assert fast.latest[ids[3]] == (52.0, fast.latest[ids[5]][1])
