"""Sensor readings: the one place they are checked and stored, and what is read back from them.

Readings live in the table ``sensor_readings`` (``sensor_id`` text, ``time`` text, ``value`` float): one row
per reading, appended by :func:`append_readings`, which both ways in use (the map server's
``POST /api/sensors/readings`` and ``twin sensors listen`` on MQTT). A reading must name a sensor of the
twin's ``sensors`` layer, carry its instant as ISO-8601 text *with* an offset (``+08:00`` or ``Z``) or as a
tz-aware datetime, no more than :data:`MAX_AHEAD` ahead of the clock nor :data:`MAX_AGE` behind it (older readings
are loaded on purpose with ``append_readings(..., oldest=...)``), and a finite number within the sensor's
plausible range: its ``min_value`` and ``max_value`` in the ``sensors`` layer, else its kind's default in
:data:`READING_RANGES` (a rain gauge 0 to 500 mm/h). A reading outside is refused with the reason, never clipped.
A batch is
checked whole and stored whole, in one transaction, or refused whole (:class:`~twin_core.errors.ReadingError`
lists the bad rows): nothing is half-written, and a sender can send it again once fixed. Times are
stored as UTC ISO-8601 text (``2026-07-01T00:00:00+00:00``), which sorts as the instants do, and the table
carries an index on ``(sensor_id, time)`` (:data:`INDEX`, made by the first append; a table made by an older
version gets it at its next append, once its times are checked to be UTC text).

A reading is a fact: a sensor has one value at one instant. A reading whose sensor and time are those of one
already stored (or of an earlier row of the same batch) with the *same* value is a re-send (a sender retrying
after a lost answer, an MQTT message delivered again): it is accepted and not stored twice
(:func:`store_readings` counts it as ``already_stored``). With a *different* value it is a conflict, refused
with the pair named (:func:`find_repeats`), never a silent replacement of the stored value (an alarm
overwritten by a later "all clear" for the same instant): a stored reading that is wrong is deleted on purpose
first (``store.delete_rows("sensor_readings", {"sensor_id": ..., "time": ...})``). The check runs inside the
append's transaction, under the store's write lock (SQLite's ``BEGIN IMMEDIATE``; a PostgreSQL advisory lock on
the table), so two writers cannot both store the same pair. It is not a unique index: stores written before
this check may hold such pairs already, and they open and take new readings as before (a re-send of either
stored value is taken as already stored).

A sensor's status is that of its latest reading against the layer's thresholds: ``"alarm"`` at or above
``alarm_threshold``, else ``"warn"`` at or above ``warn_threshold``, else ``"ok"``; ``"unknown"`` without a
number. :class:`ReadingsCache` keeps each sensor's latest reading and how long it has been at or above each
threshold: it finds them through the index (a few queries for all the sensors together, each reading a few rows
per sensor, however many readings there are), then reads only the rows appended since it last looked, so a feed
of millions of rows stays cheap to poll. Write
readings through :func:`append_readings` only: a table replaced by hand (``write_table``) loses the index and
is read whole again.

Examples
--------
>>> import os, tempfile
>>> import geopandas as gpd
>>> from shapely import Point
>>> from cim.store import open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "s.gpkg"), create=True, crs="EPSG:4544")
>>> store.write_layer("sensors", gpd.GeoDataFrame(
...     {"sensor_id": ["RG01"], "warn_threshold": [20.0], "alarm_threshold": [50.0]},
...     geometry=[Point(409600, 3391000)], crs="EPSG:4544"))
1
>>> from datetime import datetime, timezone
>>> now = datetime(2026, 7, 1, 1, tzinfo=timezone.utc)  # the clock the checks read (default: now)
>>> append_readings(store, [{"sensor_id": "RG01", "time": "2026-07-01T08:00:00+08:00", "value": 12.5},
...                         {"sensor_id": "RG01", "time": "2026-07-01T08:05:00+08:00", "value": 55.0}], now=now)
2
>>> store.read_table("sensor_readings")["time"].tolist()
['2026-07-01T00:00:00+00:00', '2026-07-01T00:05:00+00:00']
>>> cache = ReadingsCache()
>>> cache.refresh(store)["RG01"]
(55.0, '2026-07-01T00:05:00+00:00')
>>> [(a["sensor_id"], a["status"], a["threshold"], a["since"]) for a in cache.alerts()]
[('RG01', 'alarm', 50.0, '2026-07-01T00:05:00+00:00')]
>>> append_readings(store, [{"sensor_id": "RG01", "time": "2026-07-01T08:10:00", "value": 1.0}], now=now)
Traceback (most recent call last):
...
twin_core.errors.ReadingError: refused 1 of 1 readings, nothing stored: row 0: time '2026-07-01T08:10:00' has no offset: add +08:00 (Beijing time) or Z (UTC), e.g. '2026-07-01T08:10:00+08:00'
>>> store.close()
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd

from twin_core.errors import ReadingError, TwinWarning, twin_warn

__all__ = ["READINGS", "REJECTS", "SENSORS", "MAX_AHEAD", "MAX_AGE", "READING_RANGES", "ReadingRange",
           "reading_ranges", "KnownSensors", "DuplicateKeyError", "unique_keys", "MAX_REPORTED", "append_readings", "check_readings",
           "store_readings", "StoredReadings", "find_repeats", "Repeats",
           "known_sensors", "sensor_status", "latest_per_sensor", "ReadingsCache", "sensor_states", "INDEX",
           "has_readings_index", "append_rejects", "read_rejects", "count_rejects", "read_readings", "FEEDS", "FEED_STATES",
           "write_feed_status", "read_feeds", "forget_feed", "sensors_marker", "SensorsCache", "SENSORS_MAX_AGE_S",
           "SENSORS_RELOAD_S", "STALE_AFTER_S", "DEFAULT_STALE_AFTER_S", "stale_after_s", "stale_since"]

#: the table of readings, the table of refused MQTT messages, and the layer the sensors are in
READINGS = "sensor_readings"
REJECTS = "sensor_rejects"
SENSORS = "sensors"
#: how far ahead of the clock a reading's time may be (clocks drift; more is a wrong clock or offset)
MAX_AHEAD = timedelta(minutes=5)
#: how far behind the clock a reading's time may be: an older one is taken for a wrong clock or date (a logger
#: reset to 1970, a year typed wrong) and refused, unless the caller loads old readings on purpose
#: (``append_readings(..., oldest=...)``; HTTP and MQTT keep this limit)
MAX_AGE = timedelta(days=365)
#: how many bad readings an error message names
MAX_REPORTED = 5
COLUMNS = ("sensor_id", "time", "value")
#: the index :func:`append_readings` keeps on the readings: each sensor's readings in time order
INDEX = ("sensor_id", "time")
_EARLIEST = datetime(1678, 1, 1, tzinfo=timezone.utc)  # pandas keeps instants from 1677-09-22
_NAT = np.iinfo(np.int64).min  # the int64 of NaT: the smallest key, so it loses to any real time
_MAX_ID = 200
_MAX_TIME = 64




# ---------------------------------------------------------------------------------------------- plausible ranges
@dataclass(frozen=True)
class ReadingRange:
    """The readings a kind of sensor can plausibly give: ``unit`` (the default applies only to a sensor in that
    unit; None: any unit), ``minimum`` and ``maximum`` (inclusive; None: no bound on that side) and ``source``
    (why: the physical fact or record behind the bounds, quoted when a reading is refused)."""

    unit: str | None
    minimum: float | None
    maximum: float | None
    source: str


#: The default plausible range of a reading per sensor kind, for a sensor whose row in the ``sensors`` layer
#: leaves ``min_value`` / ``max_value`` empty (each bound separately) and whose ``unit`` is the one here. Wide
#: enough for any real sensor of the kind, so that only a unit mix-up, a placeholder (-9999, 1e308) or a broken
#: sensor falls outside; a sensor that can truly read more gives its own bounds in the layer. Kinds not here
#: (``camera``, ``other``) and sensors in another unit get no default.
READING_RANGES: dict[str, ReadingRange] = {
    "rain_gauge": ReadingRange(
        "mm/h", 0.0, 500.0,
        "rain is not negative, and 500 mm/h is about 2.5 times the Chinese record hourly rainfall, 201.9 mm in the "
        "hour to 17:00 at Zhengzhou on 2021-07-20 (China Meteorological Administration); a gauge that reports "
        "1-minute intensities can read more (world 1-minute record: 38 mm, about 2,300 mm/h, Barot, Guadeloupe, "
        "1970, WMO) and needs its own max_value"),
    "river_level": ReadingRange(
        "m", -500.0, 9000.0,
        "a water level, whether a stage or an elevation, lies between the Dead Sea shore (-430 m) and Everest "
        "(8,849 m); give the gauge its own range (e.g. from its bed to above its bank) to catch more"),
    "traffic_counter": ReadingRange(
        "veh/h", 0.0, 10000.0,
        "a count is not negative, and one lane carries at most about 2,200 to 2,400 veh/h (JTG B01-2014; "
        "Highway Capacity Manual 2010, basic freeway segment), so 10,000 veh/h is a group of four lanes at "
        "capacity; a counter over more lanes needs its own max_value"),
    "air_quality": ReadingRange(None, 0.0, None, "a concentration or an air-quality index is not negative"),
    "crowd_counter": ReadingRange(None, 0.0, None, "a count of people is not negative"),
}


def reading_ranges(sensors: pd.DataFrame) -> dict[str, tuple]:
    """Each sensor's plausible readings: ``{sensor_id: (minimum, maximum, unit, why_min, why_max)}``, a bound
    None where there is none.

    A bound is the sensor's own (``min_value``, ``max_value`` of ``sensors``) where it gives one, else the
    default of its ``kind`` in :data:`READING_RANGES` if its ``unit`` is the default's. ``why_*`` says where
    the bound comes from, for the refusal message.

    Examples
    --------
    >>> ranges = reading_ranges(pd.DataFrame({"sensor_id": ["RG01", "RL01"], "kind": ["rain_gauge", "river_level"],
    ...                                       "unit": ["mm/h", "m"], "min_value": [None, 0.0],
    ...                                       "max_value": [None, 12.0]}))
    >>> ranges["RG01"][:2], ranges["RL01"][:2]
    ((0.0, 500.0), (0.0, 12.0))
    """
    n = len(sensors)
    col = lambda c: sensors[c].tolist() if c in sensors.columns else [None] * n  # noqa: E731
    out = {}
    for sid, kind, unit, lo, hi in zip(sensors["sensor_id"].astype(str), col("kind"), col("unit"),
                                       col("min_value"), col("max_value")):
        unit = None if unit is None or (isinstance(unit, float) and unit != unit) else str(unit)
        default = READING_RANGES.get(str(kind)) if isinstance(kind, str) else None
        if default is not None and default.unit is not None and (unit or "").strip().lower() != default.unit:
            default = None  # e.g. a rain gauge that reports mm per 5 min: the mm/h bounds do not apply
        bounds = []
        for own, side, dflt in ((lo, "min_value", None if default is None else default.minimum),
                                (hi, "max_value", None if default is None else default.maximum)):
            own = _limit(own)
            if own is not None:
                bounds.append((own, f"{sid}'s {side} in the '{SENSORS}' layer"))
            elif dflt is not None:
                bounds.append((dflt, f"the default for a {kind} ({default.source}); if {sid} can truly read that, "
                                     f"set its {side} in the '{SENSORS}' layer"))
            else:
                bounds.append((None, ""))
        if bounds[0][0] is not None or bounds[1][0] is not None:
            out[sid] = (bounds[0][0], bounds[1][0], unit, bounds[0][1], bounds[1][1])
    return out


@dataclass(frozen=True, eq=False)
class KnownSensors:
    """The sensors readings may name and their plausible ranges, worked out once from a frame of
    :func:`known_sensors` (``ids``; ``ranges`` as :func:`reading_ranges` gives them), for a caller that checks
    many batches against one read of the layer (the MQTT listener): :func:`check_readings` and
    :func:`append_readings` take it where they take the frame, and do not work the ranges out again.

    Examples
    --------
    >>> known = KnownSensors.of(pd.DataFrame({"sensor_id": ["RG01"], "kind": ["rain_gauge"], "unit": ["mm/h"]}))
    >>> sorted(known.ids), known.ranges["RG01"][:2]
    (['RG01'], (0.0, 500.0))
    """

    ids: frozenset
    ranges: Mapping[str, tuple]

    @classmethod
    def of(cls, sensors: pd.DataFrame) -> "KnownSensors":
        """The ids and ranges of ``sensors`` (``sensor_id``, and ``kind``, ``unit``, ``min_value``,
        ``max_value`` where known)."""
        return cls(frozenset(_sensor_ids(sensors)), reading_ranges(sensors))


def _check_range(sid: str, v: float, ranges: Mapping[str, tuple]) -> str | None:
    """Why ``v`` is not a plausible reading of ``sid``, or None."""
    r = ranges.get(sid)
    if r is None:
        return None
    lo, hi, unit, why_lo, why_hi = r
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None and lo > hi:
        return (f"{sid}'s plausible range is empty (min_value {lo:g} is above max_value {hi:g}): fix the sensor's "
                f"row in the '{SENSORS}' layer")
    if lo is not None and v < lo:
        return (f"value {v:g}{u} is below {lo:g}{u}, the lowest plausible reading of {sid} ({why_lo}): check the "
                "sensor, its unit and its sign")
    if hi is not None and v > hi:
        return (f"value {v:g}{u} is above {hi:g}{u}, the highest plausible reading of {sid} ({why_hi}): check the "
                "sensor and its unit")
    return None


# ---------------------------------------------------------------------------------------------- JSON
class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice: ``json`` would keep the last silently, so it is refused."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears more than once in one JSON object")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """``object_pairs_hook`` for :func:`json.loads` that refuses an object with a duplicate key
    (:class:`DuplicateKeyError`), used by both ways readings come in (HTTP and MQTT).

    Examples
    --------
    >>> import json
    >>> json.loads('{"value": 1, "value": 2}', object_pairs_hook=unique_keys)
    Traceback (most recent call last):
    ...
    cim.sensors.DuplicateKeyError: the key 'value' appears more than once in one JSON object
    """
    out = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKeyError(k)
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------- status
def sensor_status(value, warn, alarm) -> str:
    """``"alarm"``, ``"warn"``, ``"ok"`` or ``"unknown"`` (no value) for ``value`` against the thresholds
    (a missing threshold is never reached).

    Examples
    --------
    >>> [sensor_status(v, 20.0, 50.0) for v in (10.0, 20.0, 50.0, None)]
    ['ok', 'warn', 'alarm', 'unknown']
    """
    if value is None or value != value:
        return "unknown"
    if alarm is not None and alarm == alarm and value >= alarm:
        return "alarm"
    if warn is not None and warn == warn and value >= warn:
        return "warn"
    return "ok"


#: how old (seconds) a sensor's latest stored reading may be before it is *stale* (the map greys it and lists it
#: among the alerts, ``twin sensors latest`` flags it), per sensor kind (the ``kind`` column of the sensors
#: layer). No kind in the twin reports at a fixed interval yet (the MQTT listener stores readings as they come;
#: its own silence alarm is 10 min), so every kind takes :data:`DEFAULT_STALE_AFTER_S`; give a kind that reports
#: at a known interval about twice that interval here, e.g. ``{"rain_gauge": 600}`` for gauges that report
#: every 5 min.
STALE_AFTER_S: dict[str, float] = {}
#: the age after which a reading of a kind not in :data:`STALE_AFTER_S` is stale: 15 min
DEFAULT_STALE_AFTER_S = 15 * 60.0


def stale_after_s(kind) -> float:
    """Seconds after which a reading of a sensor of ``kind`` is stale (:data:`STALE_AFTER_S`, else the default).

    Examples
    --------
    >>> stale_after_s("rain_gauge") == DEFAULT_STALE_AFTER_S
    True
    """
    return float(STALE_AFTER_S.get(str(kind), DEFAULT_STALE_AFTER_S)) if kind is not None else DEFAULT_STALE_AFTER_S


def stale_since(when, kind) -> str | None:
    """When a sensor of ``kind`` whose latest reading was taken at ``when`` (ISO-8601 text; a naive time is
    UTC) became stale, or becomes so: that time plus :func:`stale_after_s`, as UTC ISO-8601 (seconds); None for a
    time that cannot be read.

    Examples
    --------
    >>> stale_since("2026-07-01T08:00:00+08:00", "rain_gauge")
    '2026-07-01T00:15:00+00:00'
    """
    t = reading_time(when)
    if t is None:
        return None
    return (t + timedelta(seconds=stale_after_s(kind))).isoformat(timespec="seconds")


def reading_time(when) -> datetime | None:
    """A reading's time (ISO-8601 text, ``Z`` or an offset; a naive time is UTC) as an aware UTC datetime; None
    for no time or one that cannot be read."""
    if not when:
        return None
    try:
        t = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------- checking
_NUMBERS = ("warn_threshold", "alarm_threshold", "min_value", "max_value")
_TEXTS = ("kind", "unit")


def known_sensors(store) -> pd.DataFrame:
    """``sensor_id``, ``warn_threshold``, ``alarm_threshold``, ``kind``, ``unit``, ``min_value`` and
    ``max_value`` of the sensors in the twin's ``sensors`` layer (the base city; an empty frame when there is no
    such layer), numbers as floats (NaN: none), texts None where missing (:func:`reading_ranges` reads the last
    four)."""
    have = store.read_layer(SENSORS, limit=0).columns if store.has_layer(SENSORS) else []
    if "sensor_id" not in have:
        return pd.DataFrame({"sensor_id": pd.Series([], dtype=object),
                             **{c: pd.Series([], dtype=float) for c in _NUMBERS[:2]},
                             **{c: pd.Series([], dtype=object) for c in _TEXTS},
                             **{c: pd.Series([], dtype=float) for c in _NUMBERS[2:]}})
    cols = [c for c in ("sensor_id",) + _NUMBERS + _TEXTS if c in have]
    layer = store.read_layer(SENSORS, columns=cols)
    out = pd.DataFrame({"sensor_id": layer["sensor_id"].astype(str).to_numpy()})
    for c in _NUMBERS[:2]:
        out[c] = pd.to_numeric(layer[c], errors="coerce").astype(float).to_numpy() if c in layer else np.nan
    for c in _TEXTS:
        out[c] = (layer[c].astype(object).where(layer[c].notna(), None).to_numpy() if c in layer
                  else pd.Series(None, index=out.index, dtype=object))
    for c in _NUMBERS[2:]:
        out[c] = pd.to_numeric(layer[c], errors="coerce").astype(float).to_numpy() if c in layer else np.nan
    return out


def sensors_marker(store) -> tuple | None:
    """A cheap marker of the state of the ``sensors`` layer: it changes when the layer is written, whoever writes
    it (this process or another on the same store); None when there is no such layer.

    On a GeoPackage: the row count, the largest ``fid`` (an append raises it) and the layer's ``last_change`` in
    ``gpkg_contents`` (a replace writes a new one, to the millisecond; GDAL, e.g. QGIS, updates it on every edit).
    On PostGIS: the row count, the largest ``fid``, the newest row version (``xmin``: an insert, an update or a
    replace makes new ones) and the table's oid (a replace makes a new table). One aggregate query, no rows read
    into Python: 0.4 ms on a GeoPackage of 10,000 sensors, where reading them (:func:`known_sensors` with
    :class:`KnownSensors`) takes 140 ms. A row changed by hand with plain SQL on a GeoPackage (``UPDATE sensors
    ...`` in the sqlite3 shell) changes none of these: :class:`SensorsCache` reads the layer again at least every
    :data:`SENSORS_MAX_AGE_S` anyway. Another kind of store gives the row count alone.

    Examples
    --------
    >>> import os, tempfile
    >>> import geopandas as gpd
    >>> from shapely import Point
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "m.gpkg"), create=True, crs="EPSG:4544")
    >>> sensors_marker(store) is None
    True
    >>> layer = gpd.GeoDataFrame({"sensor_id": ["RG01"]}, geometry=[Point(409600, 3391000)], crs="EPSG:4544")
    >>> store.write_layer("sensors", layer)
    1
    >>> before = sensors_marker(store)
    >>> store.write_layer("sensors", layer.assign(sensor_id=["RG02"]), mode="append")
    1
    >>> sensors_marker(store) != before
    True
    >>> store.close()
    """
    if not store.has_layer(SENSORS):
        return None
    kind = getattr(store, "kind", "")
    if kind == "gpkg":
        row = store._exec(f'SELECT count(*), max(fid), (SELECT last_change FROM gpkg_contents WHERE table_name = '
                          f"'{SENSORS}') FROM \"{SENSORS}\"").fetchone()
        return ("gpkg", *row)
    if kind == "postgis":
        from psycopg import sql

        q = sql.SQL("SELECT count(*), max(fid), max(xmin::text::bigint), min(tableoid::oid::bigint) FROM {}").format(
            sql.Identifier(store.schema, SENSORS))
        with store.conn.cursor() as cur:
            cur.execute(q)
            return ("postgis", *cur.fetchone())
    return (kind, store.layer_info(SENSORS)["count"])


#: the longest (seconds) a :class:`SensorsCache` keeps the sensors it read, however still its marker: a row
#: changed by hand, past what :func:`sensors_marker` sees, counts from then on at the latest
SENSORS_MAX_AGE_S = 60.0
#: how soon (seconds) after a read a refused batch may have the layer read again (:meth:`SensorsCache.reload`):
#: a feed that keeps sending an unknown sensor costs one read of the layer a second at most, not one a request
SENSORS_RELOAD_S = 1.0


class SensorsCache:
    """The sensors readings may name, as :class:`KnownSensors`, read from a store once and again only when the
    ``sensors`` layer changed (:func:`sensors_marker`, looked at on every :meth:`get`), or after
    :data:`SENSORS_MAX_AGE_S`. For a server that takes batch after batch (``POST /api/sensors/readings``): it read
    the whole layer for each before (140 ms for 10,000 sensors, 0.4 ms for the marker).

    The map server's reads of the layer (``GET /api/sensors/latest`` and ``/alerts``, polled) keep what they
    work out from it here too (:meth:`derived`), under the same marker.

    Thread-safe. ``reads`` counts the reads of the layer (:meth:`get`'s and :meth:`derived`'s).

    Examples
    --------
    >>> import os, tempfile
    >>> import geopandas as gpd
    >>> from shapely import Point
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "c.gpkg"), create=True, crs="EPSG:4544")
    >>> layer = gpd.GeoDataFrame({"sensor_id": ["RG01"]}, geometry=[Point(409600, 3391000)], crs="EPSG:4544")
    >>> store.write_layer("sensors", layer)
    1
    >>> cache = SensorsCache()
    >>> sorted(cache.get(store).ids), sorted(cache.get(store).ids), cache.reads
    (['RG01'], ['RG01'], 1)
    >>> store.write_layer("sensors", layer.assign(sensor_id=["RG02"]), mode="append")
    1
    >>> sorted(cache.get(store).ids), cache.reads
    (['RG01', 'RG02'], 2)
    >>> store.close()
    """

    def __init__(self, max_age_s: float = SENSORS_MAX_AGE_S) -> None:
        import threading

        self.max_age_s = float(max_age_s)
        self.reads = 0
        self._known: KnownSensors | None = None
        self._marker: tuple | None = None
        self._at = 0.0
        self._derived: dict = {}  # key -> value worked out from the layer as of _derived_marker
        self._derived_marker: tuple | None = None
        self._derived_at = 0.0
        self._lock = threading.Lock()

    def get(self, store) -> KnownSensors:
        """The sensors of ``store``: those read before if the layer has not changed since, else read again."""
        import time

        with self._lock:
            marker = sensors_marker(store)  # before the read: a write between the two is seen at the next get
            if self._known is None or marker != self._marker or time.monotonic() - self._at > self.max_age_s:
                self._load(store, marker)
            return self._known

    def reload(self, store, min_age_s: float | None = None) -> KnownSensors | None:
        """The sensors of ``store`` read again now, unless they were read less than ``min_age_s`` (default
        :data:`SENSORS_RELOAD_S`) ago (None then): for a batch refused on the sensors read before (an unknown
        sensor, a value out of range), in case the layer changed in a way its marker does not show."""
        import time

        min_age_s = SENSORS_RELOAD_S if min_age_s is None else min_age_s
        with self._lock:
            if self._known is not None and time.monotonic() - self._at < min_age_s:
                return None
            self._load(store, sensors_marker(store))
            return self._known

    def derived(self, store, key, make: Callable[[Any], Any]):
        """``make(store)``, a value worked out from the ``sensors`` layer (e.g. the map's GeoJSON of the
        sensors), kept under ``key`` and made again only when the layer changed (:func:`sensors_marker`, looked at
        on every call), after :data:`SENSORS_MAX_AGE_S`, or when the sensors are read again for :meth:`get` or
        :meth:`reload` (a change the marker misses, found by a refused batch, reaches the map then too). ``make``
        runs under the cache's lock: it must not call the cache.

        Examples
        --------
        >>> import os, tempfile
        >>> import geopandas as gpd
        >>> from shapely import Point
        >>> from cim.store import open_store
        >>> store = open_store(os.path.join(tempfile.mkdtemp(), "d.gpkg"), create=True, crs="EPSG:4544")
        >>> layer = gpd.GeoDataFrame({"sensor_id": ["RG01"]}, geometry=[Point(409600, 3391000)], crs="EPSG:4544")
        >>> store.write_layer("sensors", layer)
        1
        >>> cache = SensorsCache()
        >>> ids = lambda store: sorted(store.read_layer("sensors")["sensor_id"])
        >>> cache.derived(store, "ids", ids), cache.derived(store, "ids", ids), cache.reads
        (['RG01'], ['RG01'], 1)
        >>> store.write_layer("sensors", layer.assign(sensor_id=["RG02"]), mode="append")
        1
        >>> cache.derived(store, "ids", ids), cache.reads
        (['RG01', 'RG02'], 2)
        >>> store.close()
        """
        import time

        with self._lock:
            marker = sensors_marker(store)  # before the read, as in get
            now = time.monotonic()
            if marker != self._derived_marker or now - self._derived_at > self.max_age_s:
                self._derived, self._derived_marker, self._derived_at = {}, marker, now
            if key not in self._derived:
                self._derived[key] = make(store)
                self.reads += 1
            return self._derived[key]

    def _load(self, store, marker) -> None:
        import time

        self._known = KnownSensors.of(known_sensors(store))
        self._marker, self._at = marker, time.monotonic()
        self._derived = {}  # read again (the layer may have changed unseen): what was worked out from it too
        self.reads += 1


def _sensor_ids(sensors) -> set[str]:
    if isinstance(sensors, KnownSensors):
        return set(sensors.ids)
    if isinstance(sensors, pd.DataFrame):
        return set(sensors["sensor_id"].astype(str))
    if isinstance(sensors, str):
        return {sensors}
    return {str(s) for s in sensors}


def _check_time(v: Any, now: datetime, oldest: datetime | None = None, *, backfill: bool = False
                ) -> tuple[str | pd.Timestamp | None, str | None]:
    """(the instant as UTC ISO-8601 text, None) or (None, why it is refused): with an offset, not before
    ``oldest`` (UTC; None: any time from 1678) nor :data:`MAX_AHEAD` after ``now``. ``backfill``: ``oldest`` is
    the caller's (``append_readings(oldest=...)``), not :data:`MAX_AGE` before ``now`` (says the message)."""
    example = "2026-07-01T08:00:00+08:00"
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and v != v):
        return None, f"time is missing: give an ISO-8601 instant with an offset, e.g. '{example}'"
    if isinstance(v, str):
        if len(v) > _MAX_TIME:
            return None, f"time {v[:20]!r}... is {len(v)} characters long, not an ISO-8601 instant like '{example}'"
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            return None, f"time {v!r} is not an ISO-8601 instant; write it like '{example}' or '2026-07-01T00:00:00Z'"
        if t.tzinfo is None or t.utcoffset() is None:
            fix = v + "+08:00" if "T" in v or " " in v else example
            return None, f"time {v!r} has no offset: add +08:00 (Beijing time) or Z (UTC), e.g. '{fix}'"
        shown = repr(v)
    elif isinstance(v, (datetime, np.datetime64)):
        t = pd.Timestamp(v) if isinstance(v, np.datetime64) else v
        if t.tzinfo is None or t.utcoffset() is None:
            return None, (f"time {t.isoformat()} is a naive datetime: give it a time zone (e.g. "
                          "tz_localize('Asia/Shanghai') or tzinfo=ZoneInfo('Asia/Shanghai')), or send ISO-8601 text "
                          "with +08:00 or Z")
        shown = t.isoformat()
    else:
        return None, (f"time must be ISO-8601 text with an offset (e.g. '{example}') or a tz-aware datetime, "
                      f"got {type(v).__name__} {_shown(v)}")
    try:
        utc = t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None, f"time {shown} is out of range"
    if utc < _EARLIEST:
        return None, f"time {shown} is before 1678, earlier than the twin can keep; check the sender's clock"
    if oldest is not None and utc < oldest and not backfill:
        return None, (f"time {shown} is {_span(now - utc)} before the clock (now {now.isoformat(timespec='seconds')}); "
                      f"readings more than {_span(MAX_AGE)} old are refused as a wrong clock or date: check the "
                      "sender's clock, or, to load old readings on purpose, call cim.sensors.append_readings(store, "
                      "readings, oldest=<the earliest time to accept>)")
    if oldest is not None and utc < oldest:
        return None, (f"time {shown} is before {oldest.isoformat()}, the oldest this backfill accepts "
                      "(append_readings(..., oldest=...)): pass an earlier oldest to load it")
    if utc > now + MAX_AHEAD:
        ahead = utc - now
        return None, (f"time {shown} is {_span(ahead)} ahead of the clock (now {now.isoformat(timespec='seconds')}); "
                      f"readings more than {_span(MAX_AHEAD)} in the future are refused: check the sender's clock "
                      "and offset (Beijing time sent with Z is 8 h ahead)")
    if isinstance(utc, pd.Timestamp):
        return utc, None  # keeps nanoseconds
    return utc.isoformat(), None


def _span(d: timedelta) -> str:
    s = d.total_seconds()
    if s >= 2 * 365.25 * 86400:
        return f"{s / (365.25 * 86400):.0f} years"
    if s >= 2 * 86400:
        return f"{s / 86400:.1f} days"
    if s >= 2 * 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


def _shown(v: Any, most: int = 60) -> str:
    """``repr(v)`` cut to ``most`` characters: a refusal quotes what was sent, but not a 7 MB value back (twice:
    the message and the problems)."""
    r = repr(v)
    return r if len(r) <= most else r[:most] + f"... ({len(r)} characters)"


def _check_value(v: Any) -> tuple[float | None, str | None]:
    if v is None or v is pd.NA:
        return None, "value is missing: give a number"
    if isinstance(v, (bool, np.bool_)):
        return None, f"value {_shown(v)} is a boolean, not a number; send 1 or 0 if that is what the sensor measures"
    if not isinstance(v, numbers.Real):
        return None, f"value {_shown(v)} ({type(v).__name__}) is not a number"
    try:
        f = float(v)
    except (OverflowError, ValueError, TypeError):
        return None, f"value {_shown(v)} is out of the range of a float"
    if not math.isfinite(f):
        return None, f"value {_shown(v)} is not a finite number"
    return f, None


def _check_id(v: Any, known: set[str]) -> tuple[str | None, str | None]:
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None, "sensor_id is missing"
    if not isinstance(v, str):
        return None, f"sensor_id must be text, got {type(v).__name__} {_shown(v)}"
    if not v or len(v) > _MAX_ID:
        return None, f"sensor_id must be 1 to {_MAX_ID} characters, got {len(v)}"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no sensor's id, and no JSON answer could carry it
        return None, f"sensor_id {ascii(v)[:_MAX_ID]} is not valid text (an unpaired surrogate)"
    if v not in known:
        return None, f"unknown sensor {v!r}"
    return v, None


def _rows(readings) -> tuple[list, list, list, dict[int, str], int]:
    """``readings`` as three columns, plus the reasons rows are bad before any value is looked at."""
    if isinstance(readings, pd.DataFrame):
        missing = [c for c in COLUMNS if c not in readings.columns]
        extra = [c for c in readings.columns if c not in COLUMNS]
        if missing or extra:
            raise ReadingError("readings need exactly the columns sensor_id, time and value"
                               + (f"; missing {missing}" if missing else "")
                               + (f"; other columns {extra} would not be stored: drop them" if extra else ""),
                               total=len(readings))
        return (readings["sensor_id"].tolist(), readings["time"].tolist(), readings["value"].tolist(), {},
                len(readings))
    if isinstance(readings, (str, bytes, Mapping)):
        raise ReadingError(f"readings must be a DataFrame or a list of dicts with sensor_id, time and value, "
                           f"got {type(readings).__name__}")
    rows = list(readings)
    ids, times, values, bad = [], [], [], {}
    for k, r in enumerate(rows):
        if not isinstance(r, Mapping):
            bad[k] = f"a reading must be a dict with sensor_id, time and value, got {type(r).__name__}"
            r = {}
        else:
            missing = [c for c in COLUMNS if c not in r]
            # cut, and at most 10: a refusal names what was sent, not a megabyte of key names back (their repr
            # in the list escapes what JSON could not carry, such as a lone surrogate)
            extra = sorted(str(c) if len(str(c)) <= 40 else str(c)[:40] + "..." for c in r if c not in COLUMNS)[:10]
            if missing:
                bad[k] = f"missing {', '.join(missing)}"
            elif extra:
                bad[k] = f"unexpected key(s) {extra} (a reading has only sensor_id, time and value)"
        ids.append(r.get("sensor_id"))
        times.append(r.get("time"))
        values.append(r.get("value"))
    return ids, times, values, bad, len(rows)


def check_readings(readings, sensors, *, now: datetime | None = None, oldest: datetime | None = None
                   ) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """Check every reading: the good ones as a frame ready to store, and ``(index, reason)`` of the bad ones.

    Parameters
    ----------
    readings : DataFrame or list of dicts
        ``sensor_id``, ``time`` and ``value`` per reading.
    sensors : iterable of ids, a DataFrame with ``sensor_id``, or KnownSensors
        The sensors readings may name. A DataFrame (:func:`known_sensors`) also gives each sensor's plausible
        range (:func:`reading_ranges`: ``kind``, ``unit``, ``min_value``, ``max_value``), and a
        :class:`KnownSensors` the ranges worked out already; plain ids check none.
    now : datetime, optional
        The clock the future and age checks read (default: now, UTC).
    oldest : datetime, optional
        The earliest time accepted (tz-aware), for loading old readings on purpose; default: :data:`MAX_AGE`
        before ``now``.

    Returns
    -------
    good : DataFrame
        ``sensor_id`` (str), ``time`` (UTC ISO-8601 text), ``value`` (float64) of the good readings, indexed by
        their positions in ``readings``.
    problems : list of (int, str)
        Position and reason of each bad reading, in order.
    """
    now = datetime.now(timezone.utc) if now is None else now.astimezone(timezone.utc)
    backfill = oldest is not None
    oldest = _oldest(oldest) if backfill else now - MAX_AGE
    known = _sensor_ids(sensors)
    ranges = (sensors.ranges if isinstance(sensors, KnownSensors)
              else reading_ranges(sensors) if isinstance(sensors, pd.DataFrame) else {})
    ids, times, values, bad, n = _rows(readings)
    keep, out_id, out_t, out_v, problems = [], [], [], [], []
    for k in range(n):
        if k in bad:
            problems.append((k, bad[k]))
            continue
        sid, why_id = _check_id(ids[k], known)
        t, why_t = _check_time(times[k], now, oldest, backfill=backfill)
        v, why_v = _check_value(values[k])
        why_r = _check_range(sid, v, ranges) if sid is not None and v is not None else None
        why = [w for w in (why_id, why_t, why_v, why_r) if w]
        if why:
            problems.append((k, "; ".join(why)))
            continue
        keep.append(k)
        out_id.append(sid)
        out_t.append(t if isinstance(t, str) else t.isoformat())
        out_v.append(v)
    good = pd.DataFrame({"sensor_id": pd.Series(out_id, dtype=object), "time": pd.Series(out_t, dtype=object),
                         "value": pd.Series(out_v, dtype="float64")})
    good.index = pd.Index(keep, dtype="int64")
    return good, problems


def _oldest(oldest) -> datetime | None:
    if oldest is None:
        return None
    if isinstance(oldest, np.datetime64):
        oldest = pd.Timestamp(oldest)
    if not isinstance(oldest, datetime):
        raise TypeError(f"oldest must be a tz-aware datetime (the earliest reading to accept), got "
                        f"{type(oldest).__name__} {oldest!r}")
    if oldest.tzinfo is None or oldest.utcoffset() is None:
        raise ValueError(f"oldest {oldest.isoformat()} is a naive datetime: give it a time zone, e.g. "
                         "datetime(2020, 1, 1, tzinfo=ZoneInfo('Asia/Shanghai'))")
    return oldest.astimezone(timezone.utc)


def _refusal(problems: list[tuple[int, str]], n: int, known: set[str], ids: list) -> ReadingError:
    unknown = sorted({str(ids[k]) for k, why in problems if why.startswith("unknown sensor")})
    shown = "; ".join(f"row {k}: {why}" for k, why in problems[:MAX_REPORTED])
    more = f"; and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    msg = f"refused {len(problems)} of {n} readings, nothing stored: {shown}{more}"
    if unknown:
        some = ", ".join(sorted(known)[:5])
        hint = (f"the twin's '{SENSORS}' layer has {len(known)} sensors (e.g. {some}); fix the ids or add the sensors "
                f"to the layer" if known else f"the twin has no sensors: import the '{SENSORS}' layer first")
        msg += f". Unknown sensors: {', '.join(unknown[:20])}{' ...' if len(unknown) > 20 else ''} ({hint})"
    return ReadingError(msg, problems, unknown, n)


class StoredReadings(NamedTuple):
    """What :func:`store_readings` did: ``stored`` readings appended, ``already_stored`` readings not stored
    again because the same reading (sensor, time and value) was stored before or came earlier in the batch."""

    stored: int
    already_stored: int


def append_readings(store, readings, *, sensors=None, now: datetime | None = None,
                    oldest: datetime | None = None) -> int:
    """Check ``readings`` and append them to :data:`READINGS` in one transaction; returns how many were
    stored. As :func:`store_readings` (which also says how many were already stored), whose parameters it takes.
    """
    return store_readings(store, readings, sensors=sensors, now=now, oldest=oldest).stored


def store_readings(store, readings, *, sensors=None, now: datetime | None = None,
                   oldest: datetime | None = None) -> StoredReadings:
    """Check ``readings`` and append the new ones to :data:`READINGS` in one transaction.

    Parameters
    ----------
    store : Store
        The twin's store (GeoPackage or PostGIS).
    readings : DataFrame or list of dicts
        ``sensor_id`` (a sensor of the ``sensors`` layer), ``time`` (ISO-8601 text with an offset or ``Z``, or a
        tz-aware datetime; at most :data:`MAX_AHEAD` in the future and :data:`MAX_AGE` in the past) and ``value``
        (a finite number within the sensor's plausible range, :func:`reading_ranges`) each.
    sensors : iterable of ids, DataFrame or KnownSensors, optional
        The known sensors (default: read from the store's ``sensors`` layer, :func:`known_sensors`). Their
        plausible ranges come from the frame (or the :class:`KnownSensors`); given plain ids, from the store's
        layer.
    now : datetime, optional
        The clock the future and age checks read (default: now).
    oldest : datetime, optional
        Load old readings on purpose (a backfill): the earliest time accepted, tz-aware, instead of
        :data:`MAX_AGE` before ``now``, e.g. ``oldest=datetime(2020, 1, 1, tzinfo=timezone.utc)``.

    Returns
    -------
    StoredReadings
        ``stored``: how many were appended; ``already_stored``: how many were the same reading (sensor, time and
        value) as one stored before or an earlier row of the batch, accepted and not stored twice.

    Raises
    ------
    ReadingError
        If any reading is bad, or names the sensor and time of a stored reading (or of another row of the batch)
        with another value (a conflict, :func:`find_repeats`): nothing is stored, and the message names up to
        :data:`MAX_REPORTED` bad rows by position with the reason (``problems`` and ``unknown_sensors`` hold them
        all; ``conflicts`` the conflicting pairs, as :class:`Repeats` has them).

    The table is created by the first append (``sensor_id`` text, ``time`` text, ``value`` float); times are
    stored as UTC ISO-8601 text.

    Examples
    --------
    >>> import os, tempfile
    >>> import geopandas as gpd
    >>> from shapely import Point
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "t.gpkg"), create=True, crs="EPSG:4544")
    >>> store.write_layer("sensors", gpd.GeoDataFrame({"sensor_id": ["RL02"]}, geometry=[Point(409600, 3391000)],
    ...                                               crs="EPSG:4544"))
    1
    >>> now = datetime(2026, 7, 1, 1, tzinfo=timezone.utc)
    >>> at = "2026-07-01T08:00:00+08:00"
    >>> store_readings(store, [{"sensor_id": "RL02", "time": at, "value": 2.5}], now=now)
    StoredReadings(stored=1, already_stored=0)
    >>> store_readings(store, [{"sensor_id": "RL02", "time": "2026-07-01T00:00:00Z", "value": 2.5}], now=now)
    StoredReadings(stored=0, already_stored=1)
    >>> store_readings(store, [{"sensor_id": "RL02", "time": at, "value": 0.2}], now=now)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    twin_core.errors.ReadingError: refused 1 of 1 readings, nothing stored: row 0: RL02 at 2026-07-01T00:00:00+00:00: \
value 0.2 conflicts with 2.5 already stored (a sensor has one reading per instant; a stored reading is not ...
    >>> store.close()
    """
    if not isinstance(readings, (pd.DataFrame, str, bytes, Mapping)):
        readings = list(readings)  # read twice below: a generator would be empty the second time
    if sensors is None:
        known = known_sensors(store)
    elif isinstance(sensors, (pd.DataFrame, KnownSensors)):
        known = sensors
    else:  # plain ids: the ranges of those in the layer (an id not in it is still accepted, with none)
        known = pd.DataFrame({"sensor_id": sorted(_sensor_ids(sensors))}).merge(
            known_sensors(store), on="sensor_id", how="left")
    good, problems = check_readings(readings, known, now=now, oldest=oldest)
    if problems:
        ids = readings["sensor_id"].tolist() if isinstance(readings, pd.DataFrame) else [
            r.get("sensor_id") if isinstance(r, Mapping) else None for r in readings]
        raise _refusal(problems, len(good) + len(problems), _sensor_ids(known), ids)
    if not len(good):
        return StoredReadings(0, 0)
    good = good.reset_index(drop=True)
    with store.transaction():
        existed = store.has_table(READINGS)
        have = store.read_table(READINGS, limit=0) if existed else None
        rep = _repeats(store, good, None, have)
        new = good.drop(index=rep.already).reset_index(drop=True)
        if len(new) and not rep.conflicts:
            if have is not None and "time" in have and pd.api.types.is_datetime64_any_dtype(have["time"].dtype):
                new["time"] = pd.to_datetime(new["time"], utc=True, format="ISO8601")  # a table made by hand
            store.write_table(READINGS, new, mode="append")
            _ensure_index(store, existed)
    if rep.conflicts:  # nothing was written: the transaction only looked
        exc = _refusal(rep.conflicts, len(good), _sensor_ids(known), good["sensor_id"].tolist())
        exc.conflicts = rep.pairs
        raise exc
    return StoredReadings(len(new), len(rep.already))


class Repeats(NamedTuple):
    """The readings of a batch that repeat a sensor and time (:func:`find_repeats`): ``already`` (index labels
    of those with the same value as the stored reading or an earlier row: re-sends), ``conflicts`` (``(label,
    reason)`` of those with another value) and ``pairs`` (each conflict as a dict: ``index``, ``sensor_id``,
    ``time``, ``value``, ``other_value`` and ``other``: ``"stored"`` or the label of the earlier row)."""

    already: list
    conflicts: list
    pairs: list


#: how many (sensor, time) pairs one lookup of the stored readings names (SQLite takes 32,766 parameters)
_LOOKUP = 1000


def find_repeats(store, good: pd.DataFrame, *, earlier: Callable[[Any], str] | None = None) -> Repeats:
    """The readings of ``good`` (checked readings, as :func:`check_readings` gives them: ``sensor_id``,
    ``time`` as UTC ISO-8601 text, ``value``) whose sensor and instant are those of a stored reading or of an
    earlier row of ``good``: the same value is a re-send (``already``), another value a conflict.

    A pair with stored readings is judged against them (the same value as any of them: a re-send), else against
    its first row in ``good``. Looks the pairs up through the readings index, a thousand at a time; call it in
    the transaction that appends, under the store's write lock (:func:`store_readings` does), else another writer
    may store a pair between the look and the append. ``earlier(label)`` names an earlier row in a reason
    (default: ``"row {label} of this batch"``).

    Examples
    --------
    >>> good = pd.DataFrame({"sensor_id": ["RG01", "RG01", "RG01"], "value": [1.0, 1.0, 2.0],
    ...                      "time": ["2026-07-01T00:00:00+00:00"] * 3})
    >>> import os, tempfile
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "f.gpkg"), create=True, crs="EPSG:4544")
    >>> rep = find_repeats(store, good)
    >>> rep.already, [k for k, _ in rep.conflicts]
    ([1], [2])
    >>> store.close()
    """
    return _repeats(store, good, earlier, store.read_table(READINGS, limit=0) if store.has_table(READINGS) else None)


def _repeats(store, good: pd.DataFrame, earlier, have: pd.DataFrame | None) -> Repeats:
    """:func:`find_repeats`, ``have`` the readings table's columns (``read_table(limit=0)``; None: no table)."""
    if earlier is None:
        earlier = lambda j: f"row {j} of this batch"  # noqa: E731
    if not len(good):
        return Repeats([], [], [])
    if getattr(store, "kind", "") == "postgis":  # one writer of the readings at a time until this transaction ends
        with store.conn.cursor() as cur:
            store._lock_name(cur, READINGS, "table")
    labels = good.index.tolist()
    sids = good["sensor_id"].astype(str).to_numpy()
    t = _instants(good["time"]).array.asi8
    v = good["value"].to_numpy(dtype=float)
    frame = pd.DataFrame({"s": sids, "t": t, "v": v, "pos": np.arange(len(good))})
    first = frame.groupby(["s", "t"], sort=False)["pos"].transform("first").to_numpy()
    stored = _stored_at(store, good, have)  # {(sensor, instant): [values]}
    already, conflicts, pairs = [], [], []
    texts = good["time"].astype(str).to_numpy()
    for k in np.flatnonzero((first != frame["pos"].to_numpy()) | _has_stored(sids, t, stored)):
        there = stored.get((sids[k], int(t[k])))
        if there is not None:
            if v[k] in there:
                already.append(labels[k])
                continue
            other_v, other, where = there[0], "stored", "already stored"
        else:
            j = first[k]
            if v[k] == v[j]:
                already.append(labels[k])
                continue
            other_v, other, where = v[j], labels[j], f"in {earlier(labels[j])}"
        sid, when = sids[k], texts[k]
        conflicts.append((labels[k], (
            f"{sid} at {when}: value {v[k]:g} conflicts with {other_v:g} {where} (a sensor has one reading per "
            "instant; a stored reading is not replaced: if it is wrong, delete it first with store.delete_rows("
            f"'{READINGS}', {{'sensor_id': {sid!r}, 'time': {when!r}}}))" if other == "stored" else
            f"{sid} at {when}: value {v[k]:g} conflicts with {other_v:g} {where} (a sensor has one reading per "
            "instant: send the right one only)")))
        pairs.append({"index": _plain_int(labels[k]), "sensor_id": sid, "time": when, "value": float(v[k]),
                      "other_value": float(other_v), "other": other if other == "stored" else _plain_int(other)})
    return Repeats(already, conflicts, pairs)


def _plain_int(v):
    return int(v) if isinstance(v, (int, np.integer)) else v


def _has_stored(sids: np.ndarray, t: np.ndarray, stored: dict) -> np.ndarray:
    if not stored:
        return np.zeros(len(sids), dtype=bool)
    return np.fromiter(((s, int(x)) in stored for s, x in zip(sids, t)), dtype=bool, count=len(sids))


def _stored_at(store, good: pd.DataFrame, have: pd.DataFrame | None) -> dict[tuple[str, int], list[float]]:
    """The stored values at the (sensor, instant) pairs of ``good``: ``{(sensor_id, instant ns): [values]}``."""
    if have is None or not {"sensor_id", "time", "value"} <= set(have.columns):
        return {}
    by_text = not pd.api.types.is_datetime64_any_dtype(have["time"].dtype)
    pairs = good[["sensor_id", "time"]].drop_duplicates()
    frames = []
    if by_text and getattr(store, "kind", "") == "postgis":
        # the pairs themselves, joined through the index: PostgreSQL 15 takes only the first of two IN lists as an
        # index condition, so a batch over every sensor read each sensor's whole history (0.3 s at 100,000 rows)
        from psycopg import sql

        q = sql.SQL("SELECT r.sensor_id, r.time, r.value FROM {} AS r JOIN unnest(%s::text[], %s::text[]) AS p(s, t) "
                    "ON r.sensor_id = p.s AND r.time = p.t").format(sql.Identifier(store.schema, READINGS))
        with store.conn.cursor() as cur:
            cur.execute(q, (pairs["sensor_id"].astype(str).tolist(), pairs["time"].astype(str).tolist()))
            rows = cur.fetchall()
        pairs = pairs.iloc[:0]
        frames.append(pd.DataFrame(rows, columns=["sensor_id", "time", "value"], dtype=object))
    for a in range(0, len(pairs), _LOOKUP):
        part = pairs.iloc[a:a + _LOOKUP]
        where = {"sensor_id": sorted(set(part["sensor_id"].astype(str)))}
        if by_text:  # times as append_readings writes them: UTC text, the same for the same instant
            where["time"] = sorted(set(part["time"].astype(str)))
        frames.append(store.read_table(READINGS, where=where, columns=["sensor_id", "time", "value"]))
    got = pd.concat(frames, ignore_index=True)
    if not len(got):
        return {}
    gt = _instants(got["time"]).array.asi8
    gv = pd.to_numeric(got["value"], errors="coerce").to_numpy(dtype=float)
    out: dict[tuple[str, int], list[float]] = {}
    for s, x, val in zip(got["sensor_id"].astype(str), gt, gv):
        out.setdefault((s, int(x)), []).append(float(val))
    return out


def _ensure_index(store, existed: bool) -> None:
    """Index the readings on ``(sensor_id, time)`` if they are not yet: at once on a table this append made, after
    checking that the times of an older table sort as the instants do (UTC ISO-8601 text or datetimes; once: the
    index stays with the table), else the index would give the latest by text and a warning says how to fix."""
    if existed and _indexed(store):  # the table is there: ``existed`` says so, has_readings_index would ask again
        return
    if existed:
        t = store.read_table(READINGS, columns=["time"])["time"]
        bad = _unsortable(t)
        if len(bad):
            twin_warn(
                f"'{READINGS}' holds {len(bad)} times that are not UTC ISO-8601 text (e.g. {bad.iloc[0]!r}), written "
                "around append_readings; the latest readings are found by reading the whole table, which gets slow as "
                "it grows. Store them again through append_readings (which writes UTC text): df = "
                f"store.read_table('{READINGS}'); store.delete_table('{READINGS}'); append_readings(store, df)",
                TwinWarning, stacklevel=3)
            return
    store.create_index(READINGS, list(INDEX))


_UTC_TEXT = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?\+00:00"


def _unsortable(t: pd.Series) -> pd.Series:
    """The times of ``t`` whose order as stored is not that of their instants (all UTC text or datetimes: none)."""
    if pd.api.types.is_datetime64_any_dtype(t.dtype):
        return t.iloc[:0]
    text = t.astype(object)
    ok = text.map(lambda v: isinstance(v, str)).astype(bool) & text.astype(str).str.fullmatch(_UTC_TEXT)
    return text[~ok.to_numpy()]


# ---------------------------------------------------------------------------------------------- reading
def _instants(t: pd.Series) -> pd.Series:
    """Times (ISO-8601 text or datetimes) as UTC instants; NaT where unreadable; no offset: taken as UTC."""
    if not pd.api.types.is_datetime64_any_dtype(t):
        t = pd.to_datetime(t.astype(object).where(t.notna(), None), utc=True, format="ISO8601", errors="coerce")
    elif t.dt.tz is None:
        t = t.dt.tz_localize("UTC")
    else:
        t = t.dt.tz_convert("UTC")
    return t.astype("datetime64[ns, UTC]")


def _newest(store, cols: list[str], k: int) -> pd.DataFrame:
    """The newest ``k`` rows of the readings (by the store's row order), oldest first: one indexed read."""
    if k <= 0:
        return store.read_table(READINGS, columns=cols, limit=0)
    return store.read_table(READINGS, columns=cols, descending=True, limit=k).iloc[::-1].reset_index(drop=True)


def read_readings(store, sensor_ids=None, *, since=None, until=None) -> pd.DataFrame:
    """The stored readings of ``sensor_ids`` (all sensors if None) with ``since <= time <= until`` (tz-aware
    datetimes or ISO-8601 text with an offset; either may be None), in time order: ``sensor_id``, ``time``
    (UTC Timestamps), ``value``. Uses the readings index on (sensor_id, time) where there is one."""
    cols = ["sensor_id", "time", "value"]
    if not store.has_table(READINGS):
        return pd.DataFrame({"sensor_id": pd.Series(dtype=object), "time": pd.Series(dtype="datetime64[ns, UTC]"),
                             "value": pd.Series(dtype=float)})
    bounds = []
    for v, what in ((since, "since"), (until, "until")):
        if v is None:
            bounds.append(None)
            continue
        t, why = _check_time(v, datetime.max.replace(tzinfo=timezone.utc) - MAX_AHEAD)
        if why:
            raise ReadingError(f"{what}: {why}")
        bounds.append(pd.Timestamp(t))
    where: dict[str, Any] = {}
    if sensor_ids is not None:
        where["sensor_id"] = [str(x) for x in sensor_ids]
    if bounds[0] is not None:  # UTC ISO text sorts as the instants do
        where["time"] = (">=", bounds[0].isoformat())
    df = store.read_table(READINGS, where=where or None, columns=cols)
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype(float)
    if bounds[0] is not None:
        df = df[df["time"] >= bounds[0]]
    if bounds[1] is not None:
        df = df[df["time"] <= bounds[1]]
    return df.sort_values(["time", "sensor_id"], kind="stable").reset_index(drop=True)


def has_readings_index(store) -> bool:
    """Whether :data:`READINGS` has an index led by ``(sensor_id, time)`` (:data:`INDEX`), which
    :func:`append_readings` makes and the latest-reading lookups use."""
    return store.has_table(READINGS) and _indexed(store)


def _indexed(store) -> bool:
    """Whether the readings table, which is there, has an index led by :data:`INDEX`."""
    return any(cols[:len(INDEX)] == list(INDEX) for cols in store.list_indexes(READINGS).values())


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
        t = _instants(df["time"])
        key = t.array.asi8  # NaT is the smallest int64: it loses to any real time
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


def _time_text(v, t) -> str | None:
    """A reading's time as shown: its stored text, else the instant in ISO-8601."""
    if isinstance(v, str):
        return v
    if t is not None and t == t:  # not NaT
        return pd.Timestamp(t).isoformat()
    return None if v is None or v != v else str(v)


def _iso(key: int) -> str | None:
    return None if key == _NAT else pd.Timestamp(key, tz="UTC").isoformat()


def _read_pages(store, cols: list[str], ids: list[str], offset: int, size: int) -> pd.DataFrame:
    """Of each sensor of ``ids``, its readings ``offset`` to ``offset + size`` newest first (by ``time``, ties: the
    row stored last first, as ``read_table(order_by="time", descending=True)`` orders them), in one query through
    the readings index: the columns ``cols`` as ``read_table`` gives them, and ``_k``, the sensor's position in
    ``ids``; sorted by ``_k``, then newest first. A store other than a GeoPackage or PostGIS: one read a sensor."""
    kind = getattr(store, "kind", "")
    if kind == "gpkg":
        import json

        from cim.store.gpkg import _column, _qi

        decl = dict(store._columns(READINGS))
        t = _qi(READINGS)
        pick = ", ".join(f"r.{_qi(c)}" for c in cols)
        q = (f"SELECT s.key, {pick} FROM json_each(?) AS s JOIN {t} AS r ON r.fid IN ("
             f"SELECT fid FROM {t} WHERE \"sensor_id\" = s.value ORDER BY \"time\" DESC, fid DESC LIMIT ? OFFSET ?) "
             "ORDER BY s.key, r.\"time\" DESC, r.fid DESC")
        got = store._exec(q, (json.dumps(ids), int(size), int(offset))).fetchall()
        out = pd.DataFrame({c: _column([r[j + 1] for r in got], decl[c]) for j, c in enumerate(cols)},
                           index=pd.RangeIndex(len(got)))
        out["_k"] = np.array([r[0] for r in got], dtype=np.int64)
        return out
    if kind == "postgis":
        from psycopg import sql

        from cim.store.postgis import _from_pg

        with store.conn.cursor() as cur:
            types = store._table_columns(cur, READINGS)
            # as read_table orders: text byte-wise (COLLATE "C"), NULL last
            order = sql.SQL('{}{} DESC NULLS LAST, {}.fid DESC')
            collate = sql.SQL(' COLLATE "C"' if types["time"] == "text" else "")
            q = sql.SQL("SELECT s.k - 1, {pick} FROM unnest(%s::text[]) WITH ORDINALITY AS s(id, k) "
                        "CROSS JOIN LATERAL (SELECT {cols}, fid FROM {t} WHERE sensor_id = s.id ORDER BY {inner} "
                        "LIMIT %s OFFSET %s) AS r ORDER BY s.k, {outer}").format(
                pick=sql.SQL(", ").join(sql.Identifier("r", c) for c in cols),
                cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                t=sql.Identifier(store.schema, READINGS),
                inner=order.format(sql.Identifier("time"), collate, sql.Identifier(READINGS)),
                outer=order.format(sql.Identifier("r", "time"), collate, sql.Identifier("r")))
            cur.execute(q, (list(ids), int(size), int(offset)))
            got = cur.fetchall()
        out = pd.DataFrame({c: _from_pg([r[j + 1] for r in got], types[c]) for j, c in enumerate(cols)},
                           index=pd.RangeIndex(len(got)))
        out["_k"] = np.array([r[0] for r in got], dtype=np.int64)
        return out
    frames = []
    for k, sid in enumerate(ids):
        page = store.read_table(READINGS, where={"sensor_id": sid}, columns=cols, order_by="time", descending=True,
                                limit=size, offset=offset)
        frames.append(page.assign(_k=np.full(len(page), k, dtype=np.int64)))
    if not frames:
        return store.read_table(READINGS, columns=cols, limit=0).assign(_k=np.empty(0, dtype=np.int64))
    return pd.concat(frames, ignore_index=True)


class _Run:
    """A sensor's readings against one threshold: the latest key (instant, row) below it (or without a number),
    and the keys at or above it after that one: the current run, whose first key is the since-time."""

    __slots__ = ("below", "t", "i")

    def __init__(self) -> None:
        self.below = (_NAT, -1)
        self.t = np.empty(0, dtype=np.int64)
        self.i = np.empty(0, dtype=np.int64)

    def add(self, t: np.ndarray, i: np.ndarray, at: np.ndarray) -> None:
        if (~at).any():
            tb, ib = t[~at], i[~at]
            top = tb.max()
            key = (int(top), int(ib[tb == top].max()))
            if key > self.below:
                self.below = key
        ta, ia = np.concatenate([self.t, t[at]]), np.concatenate([self.i, i[at]])
        bt, bi = self.below
        keep = (ta > bt) | ((ta == bt) & (ia > bi))
        self.t, self.i = ta[keep], ia[keep]

    def since(self) -> str | None:
        return _iso(int(self.t.min())) if len(self.t) else None


class ReadingsCache:
    """Each sensor's latest reading, and since when it has been at or above its thresholds, kept between calls.

    :meth:`refresh` brings it up to date. The first time (or when the table was rewritten, or the thresholds
    changed) it looks at every sensor: on a table with the index on ``(sensor_id, time)`` that
    :func:`append_readings` keeps, by a few queries for all the sensors of the ``sensors`` layer together (each
    sensor's latest reading, then the run of readings at or above its thresholds that leads to it, a page at a
    time through the index), so its cost does not grow with the table (10,000 sensors of 10 readings: about
    1 s, where a query per sensor took 11 s on a GeoPackage and 40 s on PostGIS); on a table written around
    :func:`append_readings` (no such index), by reading the whole table. Afterwards it reads only the rows
    appended since (the newest rows, by the store's row order). It is not thread-safe: hold a lock around it.
    """

    #: how many of the newest rows are kept to recognise the end of the table at the next refresh
    TAIL = 4

    def __init__(self) -> None:
        self._n = 0
        self._tail: pd.DataFrame | None = None  # the newest TAIL rows as of the last refresh
        self._rows: pd.DataFrame | None = None  # the latest row per sensor, with _t
        self._latest: dict[str, tuple] = {}
        self._thresholds: dict[str, tuple[float, float]] | None = None
        self._runs: dict[tuple[str, int], _Run] = {}

    @property
    def latest(self) -> dict[str, tuple]:
        """``{sensor_id: (value or None, time text or None)}`` as of the last :meth:`refresh`."""
        return self._latest

    def refresh(self, store, sensors: pd.DataFrame | None = None) -> dict[str, tuple]:
        """Bring the cache up to date with ``store``; returns :attr:`latest`.

        ``sensors`` (``sensor_id``, ``warn_threshold``, ``alarm_threshold``; default: :func:`known_sensors`)
        gives the thresholds the since-times are kept against.
        """
        sensors = known_sensors(store) if sensors is None else sensors
        thresholds = {str(s): (_limit(w), _limit(a)) for s, w, a in zip(
            sensors["sensor_id"], sensors.get("warn_threshold", [np.nan] * len(sensors)),
            sensors.get("alarm_threshold", [np.nan] * len(sensors)))}
        if not store.has_table(READINGS):
            self._reset(thresholds)
            return self._latest
        n = store.count_rows(READINGS)
        cols = store.read_table(READINGS, limit=0).columns
        if n == 0 or not {"sensor_id", "value"} <= set(cols):
            self._reset(thresholds)
            return self._latest
        cols = [c for c in COLUMNS if c in cols]
        if thresholds == self._thresholds and self._rows is not None and self._tail is not None:
            for _ in range(2):  # a second look if rows were appended between counting and reading them
                new = self._appended(store, cols, n)
                if new is not None:
                    if len(new):
                        self._fold(new, self._n)
                        self._set_rows(latest_per_sensor(pd.concat([self._rows[cols], new], ignore_index=True)), n)
                    return self._latest
                n = store.count_rows(READINGS)
        self._reset(thresholds)
        if "time" in cols and has_readings_index(store):
            tail = _newest(store, cols, self.TAIL)  # before the lookups: a row appended meanwhile is read again
            rows = self._load_indexed(store, cols, n, list(thresholds))  # next time, which changes nothing
        else:
            every = store.read_table(READINGS, columns=cols)
            n, tail = len(every), every.iloc[-self.TAIL:].reset_index(drop=True)
            self._fold(every, 0)
            rows = latest_per_sensor(every)
        self._tail = tail
        self._set_rows(rows, n)
        return self._latest

    def _appended(self, store, cols: list[str], n: int) -> pd.DataFrame | None:
        """The rows appended since the last refresh (``n`` rows now), or None if the newest rows then are not
        where they should be (the table was rewritten, or rows arrived after it was counted)."""
        k, r = n - self._n, len(self._tail)
        if k < 0:
            return None
        got = _newest(store, cols, k + r)
        if len(got) != k + r or not got.iloc[:r].reset_index(drop=True).equals(self._tail):
            return None
        self._tail = got.iloc[-self.TAIL:].reset_index(drop=True)
        return got.iloc[r:].reset_index(drop=True)

    def _set_rows(self, rows: pd.DataFrame, n: int) -> None:
        values = pd.to_numeric(rows["value"], errors="coerce").astype(float)
        times = rows["time"] if "time" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
        self._latest = {
            str(sid): (None if not math.isfinite(v) else v, _time_text(tv, tt))
            for sid, v, tv, tt in zip(rows["sensor_id"], values, times, rows["_t"])
        }
        self._n, self._rows = n, rows.reset_index(drop=True)

    def _load_indexed(self, store, cols: list[str], n: int, ids: list[str]) -> pd.DataFrame:
        """The latest row of each sensor of ``ids`` and its runs at or above its thresholds, read newest first
        through the ``(sensor_id, time)`` index (times as UTC text sort as the instants do; ties: the row
        stored last first), a page at a time until each run has ended.

        Each page is one query for every sensor still in a run (:func:`_read_pages`): the newest reading of
        each sensor first, then 16, 64, ... (at most 4096) more of those whose readings so far are all at or
        above a threshold. 10,000 sensors take a few queries, not one (or more) each."""
        thr = [self._thresholds.get(sid, (None, None)) for sid in ids]
        lim = np.array([[np.nan if x is None else x for x in pair] for pair in thr], dtype=float).reshape(-1, 2)
        has_limit = ~np.isnan(lim)  # per sensor and level (warn, alarm): whether it has that threshold
        alive = has_limit.copy()  # the runs, per sensor and level, not known to have ended yet
        parts, sizes = [], np.zeros(len(ids), dtype=np.int64)
        pending, offset, size = np.arange(len(ids)), 0, 1
        while len(pending):
            page = _read_pages(store, cols, [ids[k] for k in pending], offset, size)
            owner = pending[page.pop("_k").to_numpy(dtype=np.int64)]
            page["_s"] = owner
            parts.append(page)
            got = np.bincount(owner, minlength=len(ids))
            sizes += got
            v = pd.to_numeric(page["value"], errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                below = ~(v[:, None] >= lim[owner])  # NaN: not known to be above, ends a run
            ended = np.zeros_like(alive)
            np.logical_or.at(ended, owner, below)
            alive &= ~ended
            full = got[pending] == size  # a short page: no more readings of that sensor
            pending = pending[full & alive[pending].any(axis=1)]
            offset, size = offset + size, min(max(size * 4, 16), 4096)
        every = pd.concat(parts or [_read_pages(store, cols, [], 0, 1).assign(_s=np.empty(0, dtype=np.int64))],
                          ignore_index=True)
        every = every.iloc[np.argsort(every["_s"].to_numpy(), kind="stable")].drop(columns="_s").reset_index(drop=True)
        t = _instants(every["time"]).array.asi8
        v = pd.to_numeric(every["value"], errors="coerce").to_numpy(dtype=float)
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        owner = np.repeat(np.arange(len(ids)), sizes)
        pos = np.arange(len(every), dtype=np.int64) - starts[owner]  # 0: the sensor's newest reading
        for level in range(2):
            with np.errstate(invalid="ignore"):
                at = v >= lim[owner, level]
            ends = sizes.copy()  # where the run ends: the newest reading below (NaN: not known above), else all
            np.minimum.at(ends, owner[~at], pos[~at])
            for k in np.flatnonzero(has_limit[:, level] & (sizes > 0)).tolist():
                a, end = int(starts[k]), int(ends[k])
                run = self._runs.setdefault((ids[k], level), _Run())
                if end < sizes[k]:
                    run.below = (int(t[a + end]), n - 1 - end)  # row keys below any appended later, in stored order
                run.t, run.i = t[a:a + end].copy(), n - 1 - np.arange(end, dtype=np.int64)
        first = starts[:-1][starts[1:] > starts[:-1]]
        rows = every.iloc[first].reset_index(drop=True)
        rows["_t"] = pd.Series(t[first], dtype="int64").astype("datetime64[ns]").dt.tz_localize("UTC").to_numpy()
        return rows

    def _reset(self, thresholds) -> None:
        self._n, self._tail, self._rows, self._latest = 0, None, None, {}
        self._thresholds = thresholds
        self._runs = {}

    def _fold(self, df: pd.DataFrame, start: int) -> None:
        """Add rows ``start``... of the table to each sensor's runs above its warn and alarm thresholds."""
        if not len(df):
            return
        sids = df["sensor_id"].astype(str)
        t = _instants(df["time"]).array.asi8 if "time" in df.columns else np.full(len(df), _NAT, dtype=np.int64)
        i = np.arange(start, start + len(df), dtype=np.int64)
        v = pd.to_numeric(df["value"], errors="coerce").astype(float).to_numpy()
        codes, uniques = pd.factorize(sids)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        for c, sid in enumerate(uniques):
            rows = order[bounds[c]:bounds[c + 1]]
            thr = self._thresholds.get(sid)
            if thr is None:
                continue
            for level, limit in enumerate(thr):
                if limit is None:
                    continue
                with np.errstate(invalid="ignore"):
                    at = v[rows] >= limit  # NaN: not known to be above, ends a run
                self._runs.setdefault((sid, level), _Run()).add(t[rows], i[rows], at)

    def alerts(self) -> list[dict]:
        """The sensors whose latest reading is at or above a threshold, newest alert first.

        Each: ``sensor_id``, ``status`` (``"alarm"`` or ``"warn"``), ``value``, ``time`` (of the latest
        reading), ``threshold`` (the one crossed) and ``since`` (UTC ISO-8601: the first reading of the run at
        or above that threshold that the latest belongs to, by time; None if its time cannot be read).
        Sorted by ``since``, then ``time``, newest first. As of the last :meth:`refresh`.
        """
        out = []
        for sid, (value, when) in self._latest.items():
            thr = (self._thresholds or {}).get(sid)
            if thr is None:
                continue
            status = sensor_status(value, *thr)
            if status not in ("warn", "alarm"):
                continue
            level = 1 if status == "alarm" else 0
            run = self._runs.get((sid, level))
            out.append({"sensor_id": sid, "status": status, "value": value, "time": when, "threshold": thr[level],
                        "since": run.since() if run is not None else None})
        key_since = {a["sensor_id"]: _sort_key(a["since"]) for a in out}
        key_time = {a["sensor_id"]: _sort_key(a["time"]) for a in out}
        out.sort(key=lambda a: (key_since[a["sensor_id"]], key_time[a["sensor_id"]], a["sensor_id"]), reverse=True)
        return out


def _limit(v) -> float | None:
    """A threshold or a reading bound as a float, None where there is none (not NaN: the cache compares
    thresholds for equality)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _sort_key(text: str | None) -> int:
    if text is None:
        return _NAT
    t = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return _NAT if t is pd.NaT else int(t.value)


def sensor_states(store, cache: ReadingsCache | None = None) -> pd.DataFrame:
    """Every sensor of the ``sensors`` layer with its latest reading and status.

    Columns: those of the layer but the geometry, then ``value`` (None: no reading or not a number), ``time``
    and ``status`` (:func:`sensor_status`). An empty frame when the twin has no sensors.
    """
    if not store.has_layer(SENSORS):
        return pd.DataFrame(columns=["sensor_id", "value", "time", "status"])
    layer = store.read_layer(SENSORS)
    frame = pd.DataFrame(layer.drop(columns=[layer.geometry.name]))
    cache = cache if cache is not None else ReadingsCache()
    last = cache.refresh(store, known_sensors(store))
    got = [last.get(str(s), (None, None)) for s in frame["sensor_id"]]
    frame["value"] = pd.Series([g[0] for g in got], index=frame.index, dtype=object)
    frame["time"] = pd.Series([g[1] for g in got], index=frame.index, dtype=object)
    warn = frame["warn_threshold"] if "warn_threshold" in frame else pd.Series(np.nan, index=frame.index)
    alarm = frame["alarm_threshold"] if "alarm_threshold" in frame else pd.Series(np.nan, index=frame.index)
    frame["status"] = [sensor_status(v, _limit(w), _limit(a)) for v, w, a in zip(frame["value"], warn, alarm)]
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- rejects
REJECT_COLUMNS = ("topic", "payload", "reason", "received_at")
#: the most characters of a rejected message's topic, payload or reason that are kept (a reading is a few dozen;
#: a sender, or an attacker, that sends megabytes must not fill the disk with them)
MAX_REJECT_TEXT = 1000


def _text(v: Any, limit: int | None = None) -> str:
    """Text a store keeps whole: bytes decoded (undecodable bytes as \\x.. escapes), NUL written as \\x00; over
    ``limit`` characters, the first ``limit`` and how long it was."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if limit is not None and len(b) > 4 * limit:
            n, b = len(b), b[:4 * limit]
            return _text(b, limit)[:limit] + f"... ({n} bytes in all)"
        v = b.decode("utf-8", "backslashreplace")
    t = str(v).replace("\x00", "\\x00")
    if limit is not None and len(t) > limit:
        t = t[:limit] + f"... ({len(t)} characters in all)"
    return t


def append_rejects(store, rejects: Iterable[Mapping]) -> int:
    """Append messages a feed could not read or whose reading was refused to :data:`REJECTS` (``topic``,
    ``payload`` as text, ``reason``, ``received_at`` as UTC ISO-8601 text), so that none is lost; returns how
    many. ``received_at`` may be a tz-aware datetime or text. A text over :data:`MAX_REJECT_TEXT` characters is
    kept as its beginning and its length."""
    rows = []
    for r in rejects:
        at = r.get("received_at")
        if isinstance(at, datetime):
            at = at.astimezone(timezone.utc).isoformat()
        rows.append({"topic": _text(r.get("topic", ""), MAX_REJECT_TEXT),
                     "payload": _text(r.get("payload", ""), MAX_REJECT_TEXT),
                     "reason": _text(r.get("reason", ""), MAX_REJECT_TEXT),
                     "received_at": _text(at if at is not None else "", 64)})
    if not rows:
        return 0
    with store.transaction():
        store.write_table(REJECTS, pd.DataFrame(rows, columns=list(REJECT_COLUMNS)), mode="append")
    return len(rows)


def read_rejects(store, limit: int | None = None, *, offset: int = 0, total: int | None = None) -> pd.DataFrame:
    """The rejected messages, newest first: at most ``limit`` of them, after skipping the ``offset`` newest (a
    page); an empty frame when there are none. :func:`count_rejects` says how many there are in all; a caller
    that has counted them already (to show the total beside a page) passes that count as ``total``, read in the
    same transaction or under the same lock, and they are not counted again.

    Examples
    --------
    >>> import os, tempfile
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "r.gpkg"), create=True, crs="EPSG:4544")
    >>> append_rejects(store, [{"topic": f"t/{k}", "payload": "x", "reason": "bad"} for k in range(5)])
    5
    >>> read_rejects(store, 2, offset=1)["topic"].tolist()
    ['t/3', 't/2']
    >>> n = count_rejects(store)
    >>> n, read_rejects(store, 1, total=n)["topic"].tolist()
    (5, ['t/4'])
    >>> store.close()
    """
    if (limit is not None and int(limit) < 0) or int(offset) < 0 or (total is not None and int(total) < 0):
        raise ValueError(f"limit ({limit}), offset ({offset}) and total ({total}) must be 0 or more")
    n = count_rejects(store) if total is None else int(total)
    if not n:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in REJECT_COLUMNS})
    end = max(0, n - int(offset))
    start = 0 if limit is None else max(0, end - int(limit))
    df = store.read_table(REJECTS, offset=start, limit=end - start)
    return df.iloc[::-1].reset_index(drop=True)


def count_rejects(store) -> int:
    """How many rejected messages are kept (0 when there is no table of them)."""
    return store.count_rows(REJECTS) if store.has_table(REJECTS) else 0


# ---------------------------------------------------------------------------------------------- feeds
#: the table where each running listener (``twin sensors listen``) keeps its state, for the map and the CLI
FEEDS = "sensor_feeds"
FEED_COLUMNS = ("feed", "broker", "topic", "state", "detail", "since", "last_message_at", "received", "stored",
                "rejected", "updated_at", "heartbeat_s")
#: the states a feed reports: ``live`` is the only one that needs no person
FEED_STATES = ("live", "silent", "refused", "disconnected", "stopped")


def write_feed_status(store, status: Mapping) -> None:
    """Keep ``status`` (a dict of :data:`FEED_COLUMNS`; ``feed`` its key) as the one row of its feed in :data:`FEEDS`.

    A listener writes it as it starts, when its state changes and every ``heartbeat_s`` seconds, so a reader
    can tell a listener that stopped writing (killed) from one that is running (:func:`read_feeds`)."""
    row = {c: status.get(c) for c in FEED_COLUMNS}
    if row["state"] not in FEED_STATES:
        raise ValueError(f"state must be one of {', '.join(FEED_STATES)}, got {row['state']!r}")
    for c in ("since", "last_message_at", "updated_at"):
        if isinstance(row[c], datetime):
            row[c] = row[c].astimezone(timezone.utc).isoformat()
    df = pd.DataFrame([row], columns=list(FEED_COLUMNS))
    df = df.astype({"feed": object, "broker": object, "topic": object, "state": object, "detail": object,
                    "since": object, "last_message_at": object, "updated_at": object, "received": "int64",
                    "stored": "int64", "rejected": "int64", "heartbeat_s": "float64"})
    with store.transaction():
        if store.has_table(FEEDS):
            store.delete_rows(FEEDS, {"feed": str(row["feed"])})
        store.write_table(FEEDS, df, mode="append")


def forget_feed(store, which: str, *, now: datetime | None = None) -> str:
    """Delete the row of a feed listener that is gone for good (``twin sensors feeds --forget``): its row stayed
    a "not running" alert for ever. ``which`` is the feed as :func:`read_feeds` names it, or its MQTT client id
    (the name's ``(CLIENT_ID)``). Only a listener that is not running or stopped may be forgotten (a running one
    writes its row again at its next heartbeat). Returns the feed forgotten; a ValueError says why not."""
    df = read_feeds(store, now=now)
    names = df["feed"].astype(str).tolist()
    hit = df[(df["feed"].astype(str) == which) | df["feed"].astype(str).str.endswith(f" ({which})")]
    if not len(hit):
        raise ValueError(f"no feed {which!r}; the feeds: {names or 'none'} (give one of them, or its client id)")
    if len(hit) > 1:
        raise ValueError(f"{len(hit)} feeds match {which!r}: {hit['feed'].tolist()}; give the whole name")
    row = hit.iloc[0]
    if row["state"] not in ("not running", "stopped"):
        raise ValueError(f"feed {row['feed']!r} is {row['state']}, still running: stop its listener first (it "
                         "writes its row again at its next heartbeat)")
    store.delete_rows(FEEDS, {"feed": str(row["feed"])})
    return str(row["feed"])


def read_feeds(store, *, now: datetime | None = None) -> pd.DataFrame:
    """Every feed listener's last state (:data:`FEEDS`), problems first, with ``ok`` (bool: live and writing).

    A listener that has not written for three of its heartbeats (at least a minute) and did not say it stopped
    was killed or hangs: its ``state`` reads ``"not running"`` (its last word stays in ``detail``)."""
    cols = list(FEED_COLUMNS) + ["ok"]
    if not store.has_table(FEEDS):
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    now = datetime.now(timezone.utc) if now is None else now.astimezone(timezone.utc)
    df = store.read_table(FEEDS)
    for c in FEED_COLUMNS:
        if c not in df.columns:
            df[c] = None
    upd = pd.to_datetime(df["updated_at"], utc=True, format="ISO8601", errors="coerce")
    beat = pd.to_numeric(df["heartbeat_s"], errors="coerce").fillna(10.0).clip(lower=20.0)
    age = (pd.Timestamp(now) - upd).dt.total_seconds()
    dead = (df["state"] != "stopped") & (age.isna() | (age > 3 * beat)).to_numpy()
    df.loc[dead, "state"] = "not running"
    df["ok"] = (df["state"] == "live").to_numpy()
    df = df.sort_values(["ok", "feed"], kind="stable").reset_index(drop=True)
    return df[cols]
