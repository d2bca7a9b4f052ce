"""cim.sensors on both stores: readings checked and stored whole or refused whole, read back as the latest per
sensor and as alerts with since-times; rejected feed messages kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely import Point

from cim.sensors import (INDEX, READINGS, REJECTS, ReadingsCache, append_readings, append_rejects, check_readings,
                         has_readings_index, read_rejects, sensor_states)
from twin_core.errors import ReadingError, TwinWarning

NOW = datetime(2026, 7, 1, 4, 0, tzinfo=timezone.utc)  # 12:00 in Chengdu


def add_sensors(store, thresholds=None):
    thresholds = thresholds or {"RG01": (20.0, 50.0), "RG02": (20.0, 50.0), "RL01": (1.8, 2.3)}
    ids = list(thresholds)
    store.write_layer("sensors", gpd.GeoDataFrame(
        {"sensor_id": ids, "kind": ["rain_gauge"] * len(ids), "unit": ["mm/h"] * len(ids),
         "warn_threshold": [w for w, _ in thresholds.values()], "alarm_threshold": [a for _, a in thresholds.values()]},
        geometry=[Point(409600 + 100 * k, 3391000) for k in range(len(ids))], crs="EPSG:4544"))


def r(sid, time, value):
    return {"sensor_id": sid, "time": time, "value": value}


# ------------------------------------------------------------------ storing
def test_a_good_batch_is_stored_with_utc_times_and_proper_types(store):
    add_sensors(store)
    assert not store.has_table(READINGS)
    n = append_readings(store, [r("RG01", "2026-07-01T08:00:00+08:00", 12),
                                r("RG02", "2026-07-01T00:30:00Z", 1.5),
                                r("RL01", datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")), np.float32(2.0))],
                        now=NOW)
    assert n == 3 and store.has_table(READINGS)  # created by the first append
    df = store.read_table(READINGS)
    assert list(df.columns) == ["sensor_id", "time", "value"]
    assert df["time"].tolist() == ["2026-07-01T00:00:00+00:00", "2026-07-01T00:30:00+00:00", "2026-07-01T01:00:00+00:00"]
    assert df["value"].dtype == np.float64 and df["value"].tolist() == [12.0, 1.5, 2.0]
    assert df["sensor_id"].tolist() == ["RG01", "RG02", "RL01"]
    # the column types are fixed by the first batch: an integer value first does not make an integer column
    assert append_readings(store, [r("RG01", "2026-07-01T01:00:00Z", 0.25)], now=NOW) == 1
    assert store.read_table(READINGS)["value"].tolist()[-1] == 0.25
    assert not pd.api.types.is_datetime64_any_dtype(store.read_table(READINGS, limit=0)["time"].dtype)


def test_a_dataframe_with_tz_aware_times_is_stored(store):
    add_sensors(store)
    df = pd.DataFrame({"sensor_id": ["RG01", "RG02"], "value": [1.0, 2.0],
                       "time": pd.to_datetime(["2026-07-01 08:00", "2026-07-01 08:01"]).tz_localize("Asia/Shanghai")})
    assert append_readings(store, df, now=NOW) == 2
    assert store.read_table(READINGS)["time"].tolist() == ["2026-07-01T00:00:00+00:00", "2026-07-01T00:01:00+00:00"]
    assert append_readings(store, df.iloc[:0], now=NOW) == 0


@pytest.mark.parametrize("reading, words", [
    (r("NOPE", "2026-07-01T08:00:00+08:00", 1.0), ["unknown sensor 'NOPE'", "Unknown sensors: NOPE", "RG01"]),
    (r("RG01", "2026-07-01T08:00:00", 1.0), ["has no offset", "+08:00", "Z (UTC)", "'2026-07-01T08:00:00+08:00'"]),
    (r("RG01", "2026-07-01", 1.0), ["has no offset", "+08:00"]),
    (r("RG01", datetime(2026, 7, 1, 8), 1.0), ["naive datetime", "time zone"]),
    (r("RG01", pd.Timestamp("2026-07-01 08:00"), 1.0), ["naive datetime"]),
    (r("RG01", "yesterday", 1.0), ["not an ISO-8601 instant"]),
    (r("RG01", 1782864000, 1.0), ["ISO-8601 text with an offset", "int"]),
    (r("RG01", None, 1.0), ["time is missing"]),
    (r("RG01", "2026-07-01T04:06:00Z", 1.0), ["ahead of the clock", "5 min", "Beijing time sent with Z"]),
    (r("RG01", "2026-07-01T12:00:00Z", 1.0), ["8.0 h ahead"]),
    (r("RG01", "1492-10-12T00:00:00Z", 1.0), ["before 1678"]),
    (r("RG01", "2026-07-01T08:00:00+08:00", True), ["boolean"]),
    (r("RG01", "2026-07-01T08:00:00+08:00", float("nan")), ["not a finite number"]),
    (r("RG01", "2026-07-01T08:00:00+08:00", float("inf")), ["not a finite number"]),
    (r("RG01", "2026-07-01T08:00:00+08:00", "12.5"), ["is not a number"]),
    (r("RG01", "2026-07-01T08:00:00+08:00", None), ["value is missing"]),
    (r("RG01", "2026-07-01T08:00:00+08:00", 10 ** 400), ["out of the range"]),
    (r(17, "2026-07-01T08:00:00+08:00", 1.0), ["sensor_id must be text"]),
    (r("", "2026-07-01T08:00:00+08:00", 1.0), ["sensor_id must be 1 to"]),
    ({"sensor_id": "RG01", "value": 1.0}, ["missing time"]),
    ({"sensor_id": "RG01", "time": "2026-07-01T08:00:00+08:00", "value": 1.0, "unit": "mm"}, ["unexpected key(s) ['unit']"]),
    ("RG01,2026-07-01T08:00:00+08:00,1.0", ["must be a dict"]),
])
def test_each_kind_of_bad_reading_refuses_the_batch(store, reading, words):
    add_sensors(store)
    good = r("RG02", "2026-07-01T08:00:00+08:00", 3.0)
    with pytest.raises(ReadingError) as err:
        append_readings(store, [good, reading], now=NOW)
    msg = str(err.value)
    assert msg.startswith("refused 1 of 2 readings, nothing stored: row 1: "), msg
    for w in words:
        assert w in msg, (w, msg)
    assert [k for k, _ in err.value.problems] == [1]
    assert not store.has_table(READINGS)  # the good reading was not stored either


def test_a_time_up_to_5_min_ahead_is_taken(store):
    add_sensors(store)
    assert append_readings(store, [r("RG01", "2026-07-01T04:04:59Z", 1.0)], now=NOW) == 1
    with pytest.raises(ReadingError, match="ahead of the clock"):
        append_readings(store, [r("RG01", "2026-07-01T04:05:01Z", 1.0)], now=NOW)
    # the clock is the real one by default: a reading from now is fine, one from tomorrow is not
    now = datetime.now(timezone.utc)
    assert append_readings(store, [r("RG01", now.isoformat(), 1.0)]) == 1
    with pytest.raises(ReadingError, match="ahead of the clock"):
        append_readings(store, [r("RG01", (now + timedelta(days=1)).isoformat(), 1.0)])


def test_a_bad_batch_stores_nothing_and_names_at_most_5_rows(store):
    add_sensors(store)
    append_readings(store, [r("RG01", "2026-07-01T00:00:00Z", 1.0)], now=NOW)
    batch = [r("RG01", "2026-07-01T00:01:00Z", 2.0)] + [r(f"X{k}", "2026-07-01T00:02:00Z", 1.0) for k in range(6)] + [
        r("RG02", "2026-07-01T00:03:00", 1.0)]
    with pytest.raises(ReadingError) as err:
        append_readings(store, (x for x in batch), now=NOW)  # a generator is read once
    e = err.value
    msg = str(e)
    assert msg.startswith("refused 7 of 8 readings, nothing stored: row 1: unknown sensor 'X0'")
    assert "row 5: unknown sensor 'X4'; and 2 more" in msg and "row 6" not in msg
    assert [k for k, _ in e.problems] == [1, 2, 3, 4, 5, 6, 7] and e.total == 8
    assert e.unknown_sensors == [f"X{k}" for k in range(6)]
    assert store.read_table(READINGS)["value"].tolist() == [1.0]  # as before the batch


def test_readings_join_an_outer_transaction(store):
    add_sensors(store)
    with pytest.raises(RuntimeError):
        with store.transaction():
            append_readings(store, [r("RG01", "2026-07-01T00:00:00Z", 1.0)], now=NOW)
            raise RuntimeError("something after it failed")
    assert not store.has_table(READINGS) or store.count_rows(READINGS) == 0


def test_a_twin_without_sensors_says_so(store):
    with pytest.raises(ReadingError, match="the twin has no sensors: import the 'sensors' layer first"):
        append_readings(store, [r("RG01", "2026-07-01T00:00:00Z", 1.0)], now=NOW)


def test_wrong_columns_are_refused_whole(store):
    add_sensors(store)
    with pytest.raises(ReadingError, match=r"missing \['time'\]"):
        append_readings(store, pd.DataFrame({"sensor_id": ["RG01"], "value": [1.0]}))
    with pytest.raises(ReadingError, match=r"other columns \['unit'\]"):
        append_readings(store, pd.DataFrame({"sensor_id": ["RG01"], "time": ["2026-07-01T00:00:00Z"], "value": [1.0],
                                             "unit": ["mm"]}))
    with pytest.raises(ReadingError, match="a DataFrame or a list of dicts"):
        append_readings(store, {"sensor_id": "RG01", "time": "2026-07-01T00:00:00Z", "value": 1.0})


def test_appends_to_a_table_made_by_hand_with_datetimes(store):
    add_sensors(store)
    store.write_table(READINGS, pd.DataFrame({"sensor_id": ["RG01"], "value": [1.0],
                                              "time": pd.to_datetime(["2026-07-01T00:00:00Z"])}))
    assert append_readings(store, [r("RG01", "2026-07-01T08:01:00+08:00", 2.0)], now=NOW) == 1
    t = pd.to_datetime(store.read_table(READINGS)["time"], utc=True)
    assert t.tolist() == [pd.Timestamp("2026-07-01T00:00:00Z"), pd.Timestamp("2026-07-01T00:01:00Z")]


def test_check_readings_sorts_good_from_bad():
    good, problems = check_readings([r("A", "2026-07-01T00:00:00Z", 1), r("B", "2026-07-01T00:00:00Z", 2),
                                     r("A", "2026-07-01T00:00:00", 3)], ["A"], now=NOW)
    assert good.index.tolist() == [0] and good["value"].tolist() == [1.0]
    assert [(k, why.split(";")[0]) for k, why in problems] == [(1, "unknown sensor 'B'"), (2, "time '2026-07-01T00:00:00' "
                                                                "has no offset: add +08:00 (Beijing time) or Z (UTC), e.g. "
                                                                "'2026-07-01T00:00:00+08:00'")]


# ------------------------------------------------------------------ reading back
def test_latest_status_and_alerts_with_since_times(store):
    add_sensors(store)
    cache = ReadingsCache()
    assert cache.refresh(store) == {} and cache.alerts() == []
    append_readings(store, [
        r("RG01", "2026-07-01T08:00:00+08:00", 10.0),   # ok
        r("RG01", "2026-07-01T08:05:00+08:00", 25.0),   # warn from 00:05Z
        r("RG01", "2026-07-01T08:10:00+08:00", 60.0),   # alarm from 00:10Z
        r("RG01", "2026-07-01T08:15:00+08:00", 55.0),
        r("RG02", "2026-07-01T00:00:00Z", 30.0),        # warn from 00:00Z ...
        r("RG02", "2026-07-01T00:20:00Z", 21.0),        # ... still
        r("RL01", "2026-07-01T00:00:00Z", 2.5),
        r("RL01", "2026-07-01T00:01:00Z", 1.0),         # back to ok
    ], now=NOW)
    last = cache.refresh(store)
    assert last["RG01"] == (55.0, "2026-07-01T00:15:00+00:00")
    alerts = cache.alerts()
    assert [(a["sensor_id"], a["status"], a["value"], a["threshold"], a["since"]) for a in alerts] == [
        ("RG01", "alarm", 55.0, 50.0, "2026-07-01T00:10:00+00:00"),  # newest alert first
        ("RG02", "warn", 21.0, 20.0, "2026-07-01T00:00:00+00:00"),
    ]
    assert alerts[0]["time"] == "2026-07-01T00:15:00+00:00"
    # a late reading from before the run, below the threshold, does not end it; a reading after it does
    append_readings(store, [r("RG01", "2026-07-01T00:09:00Z", 5.0)], now=NOW)
    cache.refresh(store)
    assert {a["sensor_id"]: a["since"] for a in cache.alerts()}["RG01"] == "2026-07-01T00:10:00+00:00"
    append_readings(store, [r("RG01", "2026-07-01T00:12:00Z", 30.0)], now=NOW)  # inside the alarm run, below alarm
    cache.refresh(store)
    rg01 = next(a for a in cache.alerts() if a["sensor_id"] == "RG01")
    assert (rg01["status"], rg01["since"]) == ("alarm", "2026-07-01T00:15:00+00:00")  # 00:12 broke the alarm run
    append_readings(store, [r("RG01", "2026-07-01T00:30:00Z", 3.0)], now=NOW)
    cache.refresh(store)
    assert [a["sensor_id"] for a in cache.alerts()] == ["RG02"]
    states = sensor_states(store).set_index("sensor_id")
    assert states.loc["RG01", "status"] == "ok" and states.loc["RG02", "status"] == "warn"
    assert states.loc["RL01", "value"] == 1.0 and states.loc["RL01", "status"] == "ok"


def test_the_cache_reads_only_new_rows_and_agrees_with_a_fresh_one(store):
    """Readings arriving out of order, in many batches: the incremental cache gives what a cache reading the
    whole table at once gives."""
    add_sensors(store, {"RG01": (20.0, 50.0), "RG02": (20.0, 50.0), "RL01": (1.8, 2.3), "CAM1": (np.nan, np.nan)})
    rng = np.random.default_rng(7)
    t0 = pd.Timestamp("2026-07-01T00:00:00Z")
    cache = ReadingsCache()
    seconds = rng.permutation(3600)  # each instant once: one sensor at one instant twice is a conflict, refused
    for round_ in range(6):
        n = 40
        ids = rng.choice(["RG01", "RG02", "RL01", "CAM1"], n)  # CAM1 has no thresholds
        times = [(t0 + pd.Timedelta(seconds=int(s))).isoformat() for s in seconds[round_ * n:(round_ + 1) * n]]
        values = np.where(ids == "RL01", rng.uniform(1.0, 3.0, n), rng.uniform(0, 80, n))
        append_readings(store, [r(i, t, float(v)) for i, t, v in zip(ids, times, values)], now=NOW)
        reads = []
        real = store.read_table
        store.read_table = lambda *a, **kw: reads.append(kw) or real(*a, **kw)
        try:
            cache.refresh(store)
        finally:
            del store.read_table
        full = [kw for kw in reads if kw.get("limit") is None and not kw.get("offset")]
        assert round_ == 0 or not full, f"round {round_}: the whole table was read again: {reads}"
        fresh = ReadingsCache()
        fresh.refresh(store)
        assert cache.latest == fresh.latest and cache.alerts() == fresh.alerts()
    # and the since-times are those of a brute-force scan
    df = store.read_table(READINGS)
    df["t"] = pd.to_datetime(df["time"], utc=True)
    for a in cache.alerts():
        own = df[df["sensor_id"] == a["sensor_id"]].sort_values("t", kind="stable")
        below = own[own["value"] < a["threshold"]]
        run = own[own["value"] >= a["threshold"]]
        if len(below):
            run = run[run["t"] > below["t"].max()]
        assert a["since"] == run["t"].min().isoformat()


def test_thresholds_changed_recompute_the_alerts(store):
    add_sensors(store)
    append_readings(store, [r("RG01", "2026-07-01T00:00:00Z", 30.0)], now=NOW)
    cache = ReadingsCache()
    cache.refresh(store)
    assert [a["status"] for a in cache.alerts()] == ["warn"]
    add_sensors(store, {"RG01": (10.0, 25.0), "RG02": (20.0, 50.0), "RL01": (1.8, 2.3)})
    cache.refresh(store)
    assert [(a["status"], a["threshold"]) for a in cache.alerts()] == [("alarm", 25.0)]


# ------------------------------------------------------------------ the index
def test_the_readings_are_indexed_by_sensor_and_time_and_the_lookup_uses_it(store):
    add_sensors(store)
    append_readings(store, [r("RG01", "2026-07-01T00:00:00Z", 1.0)], now=NOW)
    assert has_readings_index(store) and list(INDEX) in store.list_indexes(READINGS).values()
    append_readings(store, [r("RG01", "2026-07-01T00:01:00Z", 2.0)], now=NOW)
    assert len(store.list_indexes(READINGS)) == 1  # kept, not made again
    name = next(iter(store.list_indexes(READINGS)))
    if store.kind == "gpkg":  # the latest reading of one sensor, as the cache asks for it
        plan = store._con.execute('EXPLAIN QUERY PLAN SELECT "value" FROM "sensor_readings" WHERE "sensor_id" = ? '
                                  'ORDER BY "time" DESC, fid DESC LIMIT 1', ("RG01",)).fetchall()
        assert any(name in row[-1] for row in plan) and not any("TEMP B-TREE" in row[-1] for row in plan), plan
    else:  # two rows: the planner would scan them; forbid that to see that the index serves the lookup
        with store.transaction(), store.conn.cursor() as cur:
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute(f'EXPLAIN SELECT "value" FROM "{store.schema}"."sensor_readings" WHERE "sensor_id" = %s '
                        'ORDER BY "time" DESC, fid DESC LIMIT 1', ("RG01",))
            plan = "\n".join(row[0] for row in cur.fetchall())
        assert name in plan and "Seq Scan" not in plan, plan


def test_the_first_look_reads_a_few_rows_per_sensor_and_agrees_with_reading_them_all(store, monkeypatch):
    """A fresh cache (`twin sensors latest`, a server's first request) finds each sensor's latest reading and the
    run it belongs to through the index: long runs (paged), ties at one instant, late readings, a sensor without
    thresholds or readings; and it says what reading the whole table says."""
    import cim.sensors

    add_sensors(store, {"RG01": (20.0, 50.0), "RG02": (20.0, 50.0), "RL01": (1.8, 2.3), "CAM1": (np.nan, np.nan),
                        "IDLE": (1.0, 2.0)})
    t0 = pd.Timestamp("2026-06-30T00:00:00Z")  # up to 6 h of readings before NOW
    rng = np.random.default_rng(3)
    rows = []
    for k in range(1500):  # the bulk: every sensor but IDLE, in and out of its thresholds
        sid = ["RG01", "RG02", "RL01", "CAM1"][k % 4]
        v = rng.uniform(1.0, 3.0) if sid == "RL01" else rng.uniform(0, 80)
        rows.append(r(sid, (t0 + pd.Timedelta(seconds=10 * k)).isoformat(), float(v)))
    end = t0 + pd.Timedelta(seconds=15000)
    rows += [r(sid, (end - pd.Timedelta(seconds=1)).isoformat(), 5.0) for sid in ("RG01", "RG02")]  # below: runs start
    rows += [r("RG01", (end + pd.Timedelta(seconds=k)).isoformat(), 60.0 + k % 7) for k in range(150)]  # a long alarm
    rows += [r("RG02", (end + pd.Timedelta(seconds=k)).isoformat(), 30.0) for k in range(40)]  # a warn run of 40
    rows += [r("RL01", (end + pd.Timedelta(seconds=5)).isoformat(), 2.4),
             r("RL01", end.isoformat(), 0.5)]  # late, and older: neither latest nor the end of the alarm run
    for a in range(0, len(rows), 400):
        append_readings(store, rows[a:a + 400], now=NOW)
    # a tie: the one stored last wins (append_readings refuses it as a conflict now; a store written before holds it)
    store.write_table(READINGS, pd.DataFrame([r("RG02", (end + pd.Timedelta(seconds=39)).isoformat(), 25.0)]),
                      mode="append")
    # how many queries the first look makes: tests/cim/test_sensors_first_load.py (it no longer goes through
    # read_table, so counting read_table rows here would check nothing)
    fast = ReadingsCache()
    fast.refresh(store)
    monkeypatch.setattr(cim.sensors, "has_readings_index", lambda s: False)
    whole = ReadingsCache()
    whole.refresh(store)
    assert fast.latest == whole.latest and fast.alerts() == whole.alerts()
    assert fast.latest["RG02"] == (25.0, (end + pd.Timedelta(seconds=39)).isoformat())
    assert "IDLE" not in fast.latest
    alerts = {a["sensor_id"]: (a["status"], a["since"]) for a in fast.alerts()}
    assert alerts["RG01"] == ("alarm", end.isoformat()) and alerts["RG02"] == ("warn", end.isoformat())
    assert alerts["RL01"][0] == "alarm"
    # and the cache goes on from there with the rows appended since
    monkeypatch.undo()
    append_readings(store, [r("RG01", (end + pd.Timedelta(hours=1)).isoformat(), 1.0)], now=NOW)
    fast.refresh(store)
    assert "RG01" not in {a["sensor_id"] for a in fast.alerts()}


def test_an_older_table_gets_the_index_at_its_next_append_once_its_times_are_checked(store):
    """A table written by an earlier version (UTC text times, no index) is indexed at its next append; one written
    by hand with other offsets is not (the index would order its times as text), and a warning says how to fix."""
    add_sensors(store)
    store.write_table(READINGS, pd.DataFrame({"sensor_id": ["RG01"], "time": ["2026-07-01T00:00:00+00:00"],
                                              "value": [1.0]}))
    assert not has_readings_index(store)
    append_readings(store, [r("RG01", "2026-07-01T00:05:00Z", 2.0)], now=NOW)
    assert has_readings_index(store)
    store.write_table(READINGS, pd.DataFrame({"sensor_id": ["RG01", "RG01"], "value": [1.0, 2.0],
                                              "time": ["2026-07-01T08:00:00+08:00", "2026-07-01T01:30:00Z"]}))
    with pytest.warns(TwinWarning, match=r"2 times that are not UTC ISO-8601 text \(e.g. '2026-07-01T08:00:00\+08:"):
        append_readings(store, [r("RG01", "2026-07-01T00:10:00Z", 3.0)], now=NOW)
    assert not has_readings_index(store)
    assert ReadingsCache().refresh(store)["RG01"] == (2.0, "2026-07-01T01:30:00Z")  # by instant, not by text


# ------------------------------------------------------------------ rejects
def test_rejects_are_kept_whole(store):
    at = datetime(2026, 7, 1, 8, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert read_rejects(store).empty
    n = append_rejects(store, [
        {"topic": "rongtwin/sensors/RG01", "payload": b"\xff\xfe not utf-8", "reason": "the payload is not JSON",
         "received_at": at},
        {"topic": "rongtwin/sensors/RG02", "payload": "nul\x00inside", "reason": "x", "received_at": at},
    ])
    assert n == 2 and store.has_table(REJECTS)
    df = read_rejects(store)
    assert df["topic"].tolist() == ["rongtwin/sensors/RG02", "rongtwin/sensors/RG01"]  # newest first
    assert df["payload"].tolist() == ["nul\\x00inside", "\\xff\\xfe not utf-8"]
    assert df["received_at"].tolist() == ["2026-07-01T00:00:00+00:00"] * 2
    assert read_rejects(store, limit=1)["topic"].tolist() == ["rongtwin/sensors/RG02"]


def test_read_readings_by_sensor_and_time_window(store):
    # what a flood on the measured rain reads: some sensors' readings between two instants, in time order
    from cim.sensors import read_readings

    add_sensors(store)
    assert read_readings(store).empty  # no table yet
    append_readings(store, [r("RG02", "2026-07-01T08:10:00+08:00", 3.0), r("RG01", "2026-07-01T08:00:00+08:00", 1.0),
                            r("RG01", "2026-07-01T00:20:00.5Z", 2.0), r("RL01", "2026-07-01T08:05:00+08:00", 1.9)],
                    now=NOW)
    df = read_readings(store, ["RG01", "RG02"], since="2026-07-01T08:00:00+08:00",
                       until=datetime(2026, 7, 1, 0, 15, tzinfo=timezone.utc))
    assert df["sensor_id"].tolist() == ["RG01", "RG02"] and df["value"].tolist() == [1.0, 3.0]
    assert str(df["time"].dt.tz) == "UTC"
    assert read_readings(store, since="2026-07-01T00:20:00Z")["value"].tolist() == [2.0]  # a fraction of a second later
    assert len(read_readings(store)) == 4
    with pytest.raises(ReadingError, match="since: time '2026-07-01T08:00:00' has no offset"):
        read_readings(store, since="2026-07-01T08:00:00")
