"""Sensors with their latest reading.

Readings come from the table ``sensor_readings`` (sensor_id, time, value) when
the twin has one; sensors without a stored reading get a simulated one when
the server runs with ``simulated_sensors`` (the demo), marked as such.
"""

from __future__ import annotations

import hashlib
import math
import time

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
    if v is None:
        return "unknown"
    if alarm is not None and alarm == alarm and v >= alarm:
        return "alarm"
    if warn is not None and warn == warn and v >= warn:
        return "warn"
    return "ok"


@router.get("/latest", summary="Every sensor with its latest reading (GeoJSON, lon/lat)")
def latest(state=Depends(get_state)) -> dict:
    store = state.store
    if not store.has_layer("sensors"):
        return {"type": "FeatureCollection", "features": [], "simulated": False}
    sensors = state.twin.layer("sensors")
    last: dict[str, tuple] = {}
    if store.has_table(READINGS):
        df = store.read_table(READINGS)
        if len(df) and {"sensor_id", "value"} <= set(df.columns):
            tcol = "time" if "time" in df.columns else df.columns[1]
            df = df.sort_values(tcol).groupby("sensor_id").tail(1)
            last = {str(r["sensor_id"]): (float(r["value"]), str(r[tcol])) for _, r in df.iterrows()}
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
