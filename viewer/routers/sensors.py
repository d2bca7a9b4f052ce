"""Sensors with their latest reading.

Readings come from the table ``sensor_readings`` (sensor_id, time, value) when
the twin has one; sensors without a stored reading get a simulated one when
the server runs with ``simulated_sensors`` (the demo), marked as such.

The latest reading of a sensor is the one with the latest ``time`` (ISO 8601
strings or datetimes; offsets are compared as instants, times without an offset
are taken in UTC), ties and unreadable times going to the row stored last; a
table without a ``time`` column gives each sensor its last stored row. A value
that is not a number is reported as ``None`` with status ``"unknown"``.
The latest readings are kept between requests and only the rows appended
since are read again, so a feed of millions of rows stays cheap to poll.
"""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends

from viewer.dependencies import get_state, require
from viewer.geo import frame_to_geojson

router = APIRouter(prefix="/api/sensors", tags=["sensors"], dependencies=[Depends(require("read"))])

READINGS = "sensor_readings"
#: a plausible level and swing per sensor kind (unit as in the sensors layer)
_SIM = {"rain_gauge": (2.0, 6.0), "river_level": (1.2, 0.8), "traffic_counter": (900.0, 600.0),
        "air_quality": (45.0, 25.0), "crowd_counter": (300.0, 250.0), "camera": (1.0, 0.0), "other": (1.0, 0.5)}


def simulated_value(sensor_id: str, kind: str, t: float) -> float:
    """A smooth deterministic signal per sensor (period 10 min), for the demo feed."""
    level, swing = _SIM.get(kind, _SIM["other"])
    phase = int(hashlib.sha1(sensor_id.encode()).hexdigest()[:6], 16) / 0xFFFFFF * 2 * math.pi
    return round(max(0.0, level + swing * math.sin(2 * math.pi * t / 600.0 + phase)), 3)


def _status(v, warn, alarm) -> str:
    if v is None or v != v:
        return "unknown"
    if alarm is not None and alarm == alarm and v >= alarm:
        return "alarm"
    if warn is not None and warn == warn and v >= warn:
        return "warn"
    return "ok"


def latest_per_sensor(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ``sensor_id``: the latest by ``time`` (ties and unreadable times: the row stored last).

    Adds ``_t`` (UTC instants, NaT where unreadable) and keeps the input's row order among the chosen rows.

    Examples
    --------
    >>> df = pd.DataFrame({"sensor_id": ["a", "a", "b"], "value": [1.0, 2.0, 3.0],
    ...                    "time": ["2026-07-01T08:00:00+08:00", "2026-07-01T01:30:00Z", "2026-07-01T00:00:00Z"]})
    >>> latest_per_sensor(df)["value"].tolist()
    [2.0, 3.0]
    """
    n = len(df)
    if "time" in df.columns:
        t = df["time"]
        if not pd.api.types.is_datetime64_any_dtype(t):
            t = pd.to_datetime(t.astype(object).where(t.notna(), None), utc=True, format="ISO8601", errors="coerce")
        elif t.dt.tz is None:
            t = t.dt.tz_localize("UTC")
        else:
            t = t.dt.tz_convert("UTC")
        key = t.astype("datetime64[ns, UTC]").array.asi8  # NaT is the smallest int64: it loses to any real time
    else:
        t = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
        key = np.zeros(n, dtype=np.int64)
    codes, _ = pd.factorize(df["sensor_id"].astype(str))
    # idxmax takes the first of equal maxima: run it backwards so the row stored last wins ties
    rev = pd.Series(key[::-1]).groupby(codes[::-1]).idxmax().to_numpy()
    pick = np.sort(n - 1 - rev)
    out = df.iloc[pick].copy()
    out["_t"] = t.iloc[pick].to_numpy()
    return out


def _reading_time(v, t) -> str | None:
    if isinstance(v, str):
        return v
    if t is not None and t == t:  # not NaT
        return pd.Timestamp(t).isoformat()
    return None if v is None or v != v else str(v)


def latest_readings(state) -> dict[str, tuple]:
    """``{sensor_id: (value or None, time or None)}`` from the readings table.

    The answer is cached on the state with the row count and the last stored row; when the table has
    only grown since, just the new rows are read (a live feed appends).
    """
    store = state.store
    if not store.has_table(READINGS):
        return {}
    n = store.count_rows(READINGS)
    if n == 0:
        return {}
    cols = store.read_table(READINGS, limit=0).columns
    if not {"sensor_id", "value"} <= set(cols):
        return {}
    cols = [c for c in ("sensor_id", "time", "value") if c in cols]
    last_row = store.read_table(READINGS, columns=cols, offset=n - 1, limit=1)
    cached = getattr(state, "_readings_cache", None)
    if cached is not None and cached[0] == n and cached[1].equals(last_row):
        return cached[2]
    if (cached is not None and 0 < cached[0] < n
            and store.read_table(READINGS, columns=cols, offset=cached[0] - 1, limit=1).equals(cached[1])):
        new = store.read_table(READINGS, columns=cols, offset=cached[0])
        rows = latest_per_sensor(pd.concat([cached[3][cols], new], ignore_index=True))
    else:
        rows = latest_per_sensor(store.read_table(READINGS, columns=cols))
    values = pd.to_numeric(rows["value"], errors="coerce").astype(float)
    times = rows["time"] if "time" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
    last = {
        str(sid): (None if not math.isfinite(v) else v, _reading_time(tv, tt))
        for sid, v, tv, tt in zip(rows["sensor_id"], values, times, rows["_t"])
    }
    state._readings_cache = (n, last_row, last, rows.reset_index(drop=True))
    return last


@router.get("/latest", summary="Every sensor with its latest reading (GeoJSON, lon/lat)")
def latest(state=Depends(get_state)) -> dict:
    store = state.store
    if not store.has_layer("sensors"):
        return {"type": "FeatureCollection", "features": [], "simulated": False}
    sensors = state.twin.layer("sensors")
    last = latest_readings(state)
    fc = frame_to_geojson(sensors, state.twin.crs)
    now = time.time()
    any_sim = False
    for f in fc["features"]:
        p = f["properties"]
        sid = str(p.get("sensor_id"))
        if sid in last:
            v, t = last[sid]
            p.update(value=v, time=t, simulated=False)
        elif state.settings.simulated_sensors:
            p.update(value=simulated_value(sid, p.get("kind") or "other", now),
                     time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), simulated=True)
            any_sim = True
        else:
            p.update(value=None, time=None, simulated=False)
        p["status"] = _status(p["value"], p.get("warn_threshold"), p.get("alarm_threshold"))
    fc["simulated"] = any_sim
    return fc
