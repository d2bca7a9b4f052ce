"""Sensors: their latest readings, the alerts, and readings coming in.

Readings live in the table ``sensor_readings`` (see :mod:`cim.sensors`, which checks and stores them and
keeps the latest per sensor); sensors without a stored reading get a simulated one when the server runs with
``simulated_sensors`` (the demo), marked as such. ``POST /api/sensors/readings`` takes a batch of up to
:data:`MAX_READINGS` readings from a feed (role ``sensor`` or ``admin``: the right "ingest"); the reads
(``/latest``, ``/alerts``, ``/feeds``, and ``/rejects``: the messages an MQTT listener refused) need the right
"read".

The latest reading of a sensor is the one with the latest ``time`` (ISO 8601 strings or datetimes; offsets
are compared as instants, times without an offset are taken in UTC), ties and unreadable times going to the
row stored last; a table without a ``time`` column gives each sensor its last stored row. A value that is
not a number is reported as ``None`` with status ``"unknown"``. The latest readings are kept between
requests and only the rows appended since are read again, so a feed of millions of rows stays cheap to poll.

A stored reading older than its kind's :func:`stale_after_s` (:data:`STALE_AFTER_S`, else
:data:`DEFAULT_STALE_AFTER_S`: 15 min) is *stale*: ``/latest`` and ``/alerts`` mark it ``stale`` (True), with
``stale_after_s`` and ``stale_since`` (when it became stale: the last reading's time plus that age), so the map
shows "stale since ..." greyed, instead of a live alarm: a sensor that went offline while in alarm must not
read as in alarm for ever. A silent sensor whose last reading was ok is listed among the alerts too (``level``
"stale"), as is one that never reported once the server has run that long without a reading from it. The age is
taken on the server's clock; the rule (:func:`cim.sensors.stale_after_s`) is shared with ``twin sensors latest``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from cim.sensors import (reading_time, DEFAULT_STALE_AFTER_S, READINGS, STALE_AFTER_S, DuplicateKeyError, ReadingsCache,
                         SensorsCache, count_rejects, latest_per_sensor, read_feeds, read_rejects, sensor_status,
                         stale_after_s, stale_since, store_readings, unique_keys)
from twin_core.errors import ReadingError
from viewer.dependencies import get_state, require
from viewer.geo import frame_to_geojson
from viewer.limits import limited_body_route

__all__ = ["router", "READINGS", "MAX_READINGS", "latest_per_sensor", "simulated_value", "STALE_AFTER_S",
           "DEFAULT_STALE_AFTER_S", "stale_after_s"]

#: the most readings one POST may carry, and the largest body (bytes) it may send them in
MAX_READINGS = 10_000
MAX_BODY = 8 * 1024 * 1024


def _too_large(size: int) -> HTTPException:
    return HTTPException(413, f"the body is {size // 1024} kB, over the limit of {MAX_BODY // (1024 * 1024)} MB; "
                              f"send at most {MAX_READINGS} readings per request")


class _StrictJSONRequest(Request):
    """A request whose JSON body is parsed once, refusing (422) an object that names a key twice, e.g.
    ``{"value": 1, "value": 2}``: Python's parser keeps the last silently, so the reading would be a guess.
    FastAPI parses a route's body with ``request.json()`` and hands the result to the model; the check is
    :func:`cim.sensors.unique_keys`, the one the MQTT listener makes. A body that is not JSON is FastAPI's own
    refusal (422), as before."""

    async def json(self):
        if not hasattr(self, "_strict_json"):
            try:
                self._strict_json = json.loads(await self.body(), object_pairs_hook=unique_keys)
            except DuplicateKeyError as exc:
                raise HTTPException(422, f"an object in the body names the key {exc.key!r} more than once (JSON "
                                         "keeps only the last, so the reading would be a guess); nothing was stored: "
                                         "send each key once per reading and send the batch again") from None
        return self._strict_json


#: the routes' class: a body is read at most :data:`MAX_BODY` bytes far, whether or not it says its length (a
#: body sent in chunks is counted as it comes and refused, 413, once over), and parsed as strict JSON
_LimitedBody = limited_body_route(lambda request: MAX_BODY, lambda size, request: _too_large(size),
                                  request_class=_StrictJSONRequest)


# STALE_AFTER_S, DEFAULT_STALE_AFTER_S and stale_after_s live in cim.sensors (twin sensors latest reads them too)


def _is_stale(when, kind, now: float) -> bool:
    """Whether a reading taken at ``when`` (ISO-8601 text) is older than its kind allows at ``now`` (epoch s);
    a time that cannot be read is not called stale (nothing is known of its age)."""
    t = reading_time(when)
    return t is not None and now - t.timestamp() > stale_after_s(kind)


router = APIRouter(prefix="/api/sensors", tags=["sensors"], route_class=_LimitedBody)
#: a plausible level, swing and resolution (decimals) per sensor kind (unit as in the sensors layer): counters
#: count whole vehicles and people, a rain gauge reads to 0.1 mm/h, a river gauge to the centimetre
_SIM = {"rain_gauge": (2.0, 6.0, 1), "river_level": (1.2, 0.8, 2), "traffic_counter": (900.0, 600.0, 0),
        "air_quality": (45.0, 25.0, 0), "crowd_counter": (300.0, 250.0, 0), "camera": (1.0, 0.0, 0),
        "other": (1.0, 0.5, 2)}


def simulated_value(sensor_id: str, kind: str, t: float) -> float:
    """A smooth deterministic signal per sensor (period 10 min), for the demo feed, at the kind's resolution
    (a traffic counter read 1410.918 veh/h)."""
    level, swing, decimals = _SIM.get(kind, _SIM["other"])
    phase = int(hashlib.sha1(sensor_id.encode()).hexdigest()[:6], 16) / 0xFFFFFF * 2 * math.pi
    return float(round(max(0.0, level + swing * math.sin(2 * math.pi * t / 600.0 + phase)), decimals))


class _SensorsView:
    """What ``/latest`` and ``/alerts`` need of the sensors layer, worked out once per state of the layer (kept
    in the server's :class:`cim.sensors.SensorsCache`, :func:`_known_sensors`): the map polls both, and reading
    and projecting 10,000 sensors took most of each request. Each part is worked out on first use."""

    def __init__(self, frame, crs: str) -> None:
        self.frame = frame  # the layer as read, in the twin's CRS
        self.crs = crs

    @functools.cached_property
    def features(self) -> list[tuple]:
        """Per sensor, in the layer's order: ``(sensor_id, kind, properties, geometry, stale_after_s)``, the
        properties and geometry (lon/lat) as GeoJSON has them; each request copies the properties."""
        fc = frame_to_geojson(self.frame, self.crs)
        out = []
        for f in fc["features"]:
            p = f["properties"]
            out.append((str(p.get("sensor_id")), p.get("kind"), p, f["geometry"], stale_after_s(p.get("kind"))))
        return out

    @functools.cached_property
    def records(self) -> list[dict]:
        """The layer's rows without the geometry (the simulated readings are worked out from them)."""
        return self.frame.drop(columns=self.frame.geometry.name).to_dict("records")

    @functools.cached_property
    def info(self) -> dict[str, dict]:
        """Per sensor id (its first row): ``name``, ``kind``, ``unit`` (text or None) and ``lon``/``lat``."""
        from viewer.geo import reproject_geoms

        sub = self.frame.assign(_sid=self.frame["sensor_id"].astype(str)).drop_duplicates("_sid")
        pts = reproject_geoms(sub.geometry.values, self.crs, "EPSG:4326")
        out = {}
        for sid, rec, pt in zip(sub["_sid"], sub.drop(columns=[sub.geometry.name, "_sid"]).to_dict("records"), pts):
            lon, lat = (None, None) if pt is None or pt.is_empty else (round(pt.x, 7), round(pt.y, 7))
            out[sid] = {**{k: _plain(rec.get(k)) for k in ("name", "kind", "unit")}, "lon": lon, "lat": lat}
        return out


def _refresh(state):
    """The sensors layer as :class:`_SensorsView` (None if the twin has none) and the readings cache brought up
    to date, under the store's lock (the caches are shared by every request). The layer is read again only when
    it changed (:meth:`cim.sensors.SensorsCache.derived`), by this server or another process on the store: a
    sensor added shows at the next poll."""
    with state.lock:
        if not state.store.has_layer("sensors"):
            return None, None
        view = _known_sensors(state).derived(
            state.store, "map", lambda store: _SensorsView(state.twin.layer("sensors"), state.twin.crs))
        cache = state.sensor_readings
        if cache is None:
            cache = state.sensor_readings = ReadingsCache()
        cache.refresh(state.store, view.frame)
        return view, cache


@router.get("/latest", summary="Every sensor with its latest reading (GeoJSON, lon/lat)",
            dependencies=[Depends(require("read"))])
def latest(state=Depends(get_state)) -> dict:
    view, cache = _refresh(state)
    if view is None:
        return {"type": "FeatureCollection", "features": [], "simulated": False}
    last = cache.latest
    now = time.time()
    simulate, stamp = state.settings.simulated_sensors, _stamp(now)
    any_sim = False
    feats = []
    for sid, kind, props, geom, after in view.features:
        p = dict(props)
        if sid in last:
            v, t = last[sid]
            p.update(value=v, time=t, simulated=False, stale=_is_stale(t, kind, now))
        elif simulate:
            p.update(value=simulated_value(sid, kind or "other", now), time=stamp, simulated=True, stale=False)
            any_sim = True
        else:
            p.update(value=None, time=None, simulated=False, stale=False)
        p["stale_after_s"] = after
        p["status"] = sensor_status(p["value"], p.get("warn_threshold"), p.get("alarm_threshold"))
        feats.append({"type": "Feature", "properties": p, "geometry": geom})
    # plain JSON values already (frame_to_geojson): sent as they are, not through FastAPI's encoder (400 ms for
    # 10,000 sensors)
    return JSONResponse({"type": "FeatureCollection", "features": feats, "simulated": any_sim})


@router.get("/alerts", summary="Sensors now in warning or alarm, newest alert first",
            dependencies=[Depends(require("read"))])
def alerts(state=Depends(get_state)) -> dict:
    """Each sensor whose latest stored reading is at or above its warn or alarm threshold: ``status``,
    ``value`` and ``time`` of that reading, the ``threshold`` crossed, ``since`` (UTC: the first reading of
    the run at or above that threshold the latest belongs to), the sensor's ``name``, ``kind``, ``unit`` and
    ``lon``/``lat``, and ``simulated`` (False). Sorted by ``since``, newest first. When the server fills in
    simulated readings (``simulated_sensors``, the demo), sensors without a stored reading whose simulated
    value is at or above a threshold follow, marked ``simulated`` (True) with ``since`` None: the list says
    what the map's sensor colours say.

    Each alert also carries ``stale`` and ``stale_after_s``: a stored reading older than its kind allows
    (:func:`stale_after_s`) is stale, the sensor's last word and not a live alarm (it went offline, or its feed
    did); stale alerts follow the live ones, in the same order, and ``stale`` (top level) counts them."""
    view, cache = _refresh(state)
    if view is None:
        return {"alerts": [], "count": 0}
    rows = [{**a, "simulated": False} for a in cache.alerts()]
    now = time.time()
    if state.settings.simulated_sensors:
        stamp = _stamp(now)
        sim = []
        for rec in view.records:
            sid = str(rec.get("sensor_id"))
            if sid in cache.latest:
                continue
            v = simulated_value(sid, rec.get("kind") or "other", now)
            status = sensor_status(v, rec.get("warn_threshold"), rec.get("alarm_threshold"))
            if status in ("warn", "alarm"):
                thr = rec.get("alarm_threshold") if status == "alarm" else rec.get("warn_threshold")
                sim.append({"sensor_id": sid, "status": status, "value": v, "time": stamp, "threshold": float(thr),
                            "since": None, "simulated": True})
        sim.sort(key=lambda a: (a["status"] != "alarm", a["sensor_id"]))
        rows += sim
    if rows:
        info = view.info
        for a in rows:
            a.update(info[a["sensor_id"]])
        for a in rows:
            stale = not a["simulated"] and _is_stale(a["time"], a["kind"], now)
            a.update(stale=stale, stale_after_s=stale_after_s(a["kind"]), level="stale" if stale else a["status"],
                     stale_since=stale_since(a["time"], a["kind"]) if stale else None)
    rows += _silent(state, view, cache, {a["sensor_id"] for a in rows}, now)
    if rows:
        rows.sort(key=lambda a: a["stale"])  # stable: live alerts first, each part in its order
        return {"alerts": rows, "count": len(rows), "stale": sum(a["stale"] for a in rows)}
    return {"alerts": rows, "count": len(rows)}


def _silent(state, view, cache, listed: set, now: float) -> list[dict]:
    """The stale sensors not in warn or alarm: those whose last stored reading was ok (or not a number) and is
    older than their kind allows, newest gone silent first, then, without simulated readings, those that never
    reported once the server has run longer than that (``since``: the server's start plus that age; ``time``
    None). Each ``level`` and ``status`` "stale" with ``stale_since`` = ``since``, and the last reading."""
    gone, never = [], []
    last = cache.latest
    started = getattr(state.jobs, "started", None) or now
    for sid, info in view.info.items():
        if sid in listed:
            continue
        kind = info.get("kind")
        after = stale_after_s(kind)
        if sid in last:
            v, t = last[sid]
            if not _is_stale(t, kind, now):
                continue
            since = stale_since(t, kind)
            gone.append({"sensor_id": sid, "status": "stale", "level": "stale", "value": v, "time": t,
                         "threshold": None, "since": since, "stale_since": since, "simulated": False, "stale": True,
                         "stale_after_s": after, "last_status": sensor_status(v, *cache_thresholds(cache, sid)),
                         **info})
        elif not state.settings.simulated_sensors and now - started > after:
            since = datetime.fromtimestamp(started + after, timezone.utc).isoformat(timespec="seconds")
            never.append({"sensor_id": sid, "status": "stale", "level": "stale", "value": None, "time": None,
                          "threshold": None, "since": since, "stale_since": since, "simulated": False,
                          "stale": True, "stale_after_s": after, "last_status": None, "never_reported": True,
                          **info})
    gone.sort(key=lambda a: (a["since"] or "", a["sensor_id"]), reverse=True)
    never.sort(key=lambda a: a["sensor_id"])
    return gone + never


def cache_thresholds(cache, sid: str) -> tuple:
    """The warn and alarm thresholds the readings cache holds for ``sensor_id`` (None, None if none)."""
    thr = (getattr(cache, "_thresholds", None) or {}).get(sid)
    return tuple(thr) if thr is not None else (None, None)


@router.get("/feeds", summary="The MQTT feed listeners' states: live, silent, refused, disconnected, stopped",
            dependencies=[Depends(require("read"))])
def feeds(state=Depends(get_state)) -> dict:
    """Each listener (``twin sensors listen``) that has run on this twin: ``feed``, ``broker``, ``topic``,
    ``state`` (``live``; ``silent``: nothing has come for a while, e.g. a broker ACL that denies the topic;
    ``refused``: the broker refused the subscription; ``disconnected``: reconnecting; ``stopped``; ``not
    running``: it stopped writing without saying so, e.g. killed), ``detail`` (what to do), ``since``,
    ``last_message_at``, the counts and ``ok``. Problems first; ``problems`` counts the feeds not ``ok`` but
    stopped ones (a listener stopped on purpose is no alarm). ``for_s``: how long (seconds, on the server's
    clock; None if unknown) the feed has been in its state: a ``silent`` feed since its last message (or since
    it fell silent, if none came), a ``not running`` one since its last heartbeat, any other since ``since``."""
    with state.lock:
        df = read_feeds(state.store)
    rows = [{k: _json_value(v) for k, v in rec.items()} for rec in df.to_dict("records")]
    now = time.time()
    for r in rows:
        start = {"silent": r.get("last_message_at") or r.get("since"), "not running": r.get("updated_at")}.get(
            r["state"], r.get("since"))
        r["for_s"] = _seconds_since(start, now)
    problems = sum(1 for r in rows if not r["ok"] and r["state"] != "stopped")
    return {"feeds": rows, "count": len(rows), "problems": problems}


#: the most rejects one page of ``/rejects`` holds
MAX_REJECTS_PAGE = 200


@router.get("/rejects", summary="Messages a feed could not read or whose reading was refused, newest first",
            dependencies=[Depends(require("read"))])
def rejects(state=Depends(get_state),
            limit: int = Query(50, ge=1, le=MAX_REJECTS_PAGE, description="the most rejects to return"),
            offset: int = Query(0, ge=0, description="how many of the newest to skip (the next page)")) -> dict:
    """The messages an MQTT listener (``twin sensors listen``) kept aside instead of storing them, newest first
    (:func:`cim.sensors.read_rejects`, as ``twin sensors rejects`` lists them): ``topic``, ``payload`` (as text,
    at most :data:`cim.sensors.MAX_REJECT_TEXT` characters), ``reason`` (what was wrong: not JSON, a key named
    twice, a value outside the sensor's plausible range, an unknown sensor ...) and ``received_at`` (UTC).
    ``total`` counts them all; ``limit`` and ``offset`` page through them. Readings refused over HTTP are
    answered to their sender (422) and not kept here."""
    with state.lock:
        total = count_rejects(state.store)
        df = read_rejects(state.store, limit, offset=offset, total=total) if offset < total else None
    rows = [] if df is None else [{k: _json_value(v) for k, v in rec.items()} for rec in df.to_dict("records")]
    return {"rejects": rows, "count": len(rows), "total": total, "limit": limit, "offset": offset}


def _seconds_since(when, now: float) -> float | None:
    try:
        t = datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None
    except ValueError:
        return None
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return round(max(0.0, now - t.timestamp()), 1)


def _json_value(v):
    if v is None or (isinstance(v, float) and v != v):
        return None
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def _stamp(now: float) -> str:
    """A simulated reading's time (UTC, whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _plain(v):
    return None if v is None or (isinstance(v, float) and v != v) else str(v)


# the schema of a reading in the API docs; a batch's readings are checked by cim.sensors.check_readings (see
# _LooseReading below)
class ReadingIn(BaseModel):
    """One reading of one sensor."""

    model_config = ConfigDict(extra="forbid")

    sensor_id: str = Field(..., min_length=1, max_length=200, description="a sensor of the twin's sensors layer",
                           examples=["RG01"])
    time: str = Field(..., min_length=1, max_length=64,
                      description="ISO-8601 instant with an offset (+08:00) or Z; at most 5 min in the future "
                                  "and 1 year in the past",
                      examples=["2026-07-01T08:00:00+08:00"])
    value: Annotated[float, Field(strict=True, allow_inf_nan=False,
                                  description="the reading, in the sensor's unit, within its plausible range "
                                              "(min_value/max_value of the sensors layer, else its kind's default)",
                                  examples=[12.5])]


#: a reading as a batch carries it: documented as :class:`ReadingIn`, but taken as it comes, so that a value of the
#: wrong type (text, ``-1e999``), a missing or extra key is one more bad row in the one report
#: :func:`cim.sensors.check_readings` makes of the batch (every bad row, every unknown sensor), not a refusal of
#: its own that named the first type error alone
_LooseReading = Annotated[Any, WithJsonSchema(ReadingIn.model_json_schema())]


class ReadingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    readings: list[_LooseReading] = Field(..., max_length=MAX_READINGS,
                                          description=f"at most {MAX_READINGS} readings; stored all or none")


def _known_sensors(state) -> SensorsCache:
    """The server's :class:`cim.sensors.SensorsCache`: the sensors layer is read again only when it changed
    (:func:`cim.sensors.sensors_marker`), by this server or another process on the store, not for every batch."""
    cache = getattr(state, "known_sensors", None)
    if cache is None:
        cache = state.known_sensors = SensorsCache()
    return cache


def _out_of_range(exc: ReadingError) -> bool:
    """Whether a reading was refused for its sensor's plausible range (which the layer sets)."""
    return any("plausible" in why for _, why in exc.problems)


@router.post("/readings", status_code=201, summary="Store a batch of readings (all or none)",
             dependencies=[Depends(require("ingest"))],  # size and duplicate keys: _LimitedBody
             responses={413: {"description": "the body is too large"},
                        422: {"description": "a reading is bad (a time more than 1 year old or in the future, a "
                                              "value that is not a finite number or is outside the sensor's "
                                              "plausible range, a key missing, unknown or sent twice), names an "
                                              "unknown sensor, or gives a sensor and time already stored (or "
                                              "sent twice in the batch) with another value: nothing was stored; "
                                              "'problems' lists every bad reading with the reason, "
                                              "'unknown_sensors' every unknown sensor, 'conflicts' every "
                                              "conflicting pair"}})
def ingest(body: ReadingsIn, state=Depends(get_state)) -> dict:
    """Check every reading and store them in one transaction, or refuse them all (422, with the reasons and
    the unknown sensors) so the sender can fix and send the batch again. A reading outside its sensor's
    plausible range (``min_value``/``max_value`` of the sensors layer, else its kind's default,
    :data:`cim.sensors.READING_RANGES`) or more than :data:`cim.sensors.MAX_AGE` old is refused, never clipped;
    old readings are loaded on purpose from Python (``append_readings(..., oldest=...)``), not here.

    A reading is a fact (:func:`cim.sensors.find_repeats`): one with the sensor and time of a stored reading, or
    of another reading of the batch, and the same value is a re-send, accepted and not stored twice
    (``already_stored`` counts them); with another value it is a conflict, and the batch is refused (422) with
    each conflicting pair in ``conflicts`` (``sensor_id``, ``time``, ``value``, ``other_value``, and ``other``:
    ``"stored"`` or the index of the other reading in the batch): an alarm is never replaced silently.
    Answers ``{"stored": n, "already_stored": k}``."""
    try:
        with state.lock:
            known = _known_sensors(state)
            try:
                got = store_readings(state.store, body.readings, sensors=known.get(state.store))
            except ReadingError as exc:
                # refused on the sensors read before: the layer may have changed in a way its marker does not show
                again = known.reload(state.store) if exc.unknown_sensors or _out_of_range(exc) else None
                if again is None:
                    raise
                got = store_readings(state.store, body.readings, sensors=again)
    except ReadingError as exc:
        return JSONResponse({"detail": str(exc), "error": "invalid readings",
                             "problems": [{"index": k, "reason": why} for k, why in exc.problems[:100]],
                             "unknown_sensors": exc.unknown_sensors[:100],
                             "conflicts": getattr(exc, "conflicts", [])[:100]}, status_code=422)
    return {"stored": got.stored, "already_stored": got.already_stored}
