"""Live sensor readings from an MQTT broker into the twin (``twin sensors listen``).

Each message's topic ends in the sensor id (``rongtwin/sensors/RG01``); its payload is JSON, either a bare
number (the reading, taken at the instant the message arrived) or ``{"value": 1.2, "time":
"2026-07-01T08:00:00+08:00"}`` (``time`` optional, as for a bare number). Messages are gathered and stored
every second or every 500 messages through :func:`cim.sensors.append_readings`, which checks them. A
message that cannot be read or whose reading is refused goes, with the reason, to the table
``sensor_rejects`` (see :func:`cim.sensors.read_rejects`) instead: the good messages of a batch are stored
all the same, and none is dropped.

The broker connection is paho-mqtt's: when the broker drops it, paho reconnects (1 s, doubling to 30 s)
and the listener subscribes again. Messages are subscribed at QoS 1, so the broker resends what it had not
delivered when the connection broke; with a ``client_id`` the session persists (the broker keeps the
messages that arrive while the listener is away). What the listener has received is stored before it stops
(at the end of ``seconds``, after ``max_messages``, on Ctrl-C); only a hard kill loses the up to one second
of messages not yet stored.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from twin_core.errors import FeedError

__all__ = ["MqttFeed", "FeedCounts", "decode_message", "parse_broker", "check_topic"]

#: how many messages a batch holds at most, and how often (s) what is held is stored
BATCH = 500
FLUSH_S = 1.0
#: how often (s) a line of counts is reported
REPORT_S = 10.0
#: how long (s) the known sensor ids are trusted before an unknown one makes the listener read them again
SENSORS_TTL_S = 10.0
#: messages held unstored (the store failing) before the listener gives up
MAX_PENDING = 100_000


def parse_broker(text: str) -> tuple[str, int]:
    """``host[:port]`` (port 1883 when left out; ``[::1]:1883`` for IPv6) as ``(host, port)``.

    Examples
    --------
    >>> parse_broker("127.0.0.1:1883"), parse_broker("mqtt.local"), parse_broker("[::1]:1884")
    (('127.0.0.1', 1883), ('mqtt.local', 1883), ('::1', 1884))
    """
    t = (text or "").strip()
    host, port = t, "1883"
    if t.startswith("["):
        end = t.find("]")
        host, rest = t[1:end], t[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            host = ""
        port = rest[1:] if rest else "1883"
    elif t.count(":") == 1:
        host, port = t.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"broker {text!r} is not host:port (e.g. 127.0.0.1:1883)")
    return host, int(port)


def check_topic(topic: str) -> str:
    """``topic`` if it is a valid MQTT subscription ('+' a whole level, '#' only the last), else a ValueError.

    Examples
    --------
    >>> check_topic("rongtwin/sensors/+")
    'rongtwin/sensors/+'
    """
    levels = (topic or "").split("/")
    if (not topic or "\x00" in topic or any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels)
            or "#" in levels[:-1]):
        raise ValueError(f"topic {topic!r} is not a valid MQTT subscription: '+' stands for one whole level, '#' "
                         "only for the last (e.g. rongtwin/sensors/+)")
    return topic


def decode_message(topic: str, payload: bytes, received_at: datetime) -> tuple[dict | None, str | None]:
    """The reading a message carries (``sensor_id``, ``time``, ``value``), or why it cannot be read.

    The reading is not checked here (unknown sensor, a time without an offset, a value that is not a
    number): :func:`cim.sensors.check_readings` does that for every way in.

    Examples
    --------
    >>> at = datetime(2026, 7, 1, tzinfo=timezone.utc)
    >>> decode_message("rongtwin/sensors/RG01", b"12.5", at)[0]["value"]
    12.5
    >>> decode_message("rongtwin/sensors/RG01", b'{"value": 3, "time": "2026-07-01T08:00:00+08:00"}', at)[0]["time"]
    '2026-07-01T08:00:00+08:00'
    >>> decode_message("rongtwin/sensors/RG01", b"high", at)[1]
    'the payload is not JSON: send a number or {"value": 1.2, "time": "2026-07-01T08:00:00+08:00"}'
    """
    sensor_id = topic.rsplit("/", 1)[-1]
    if not sensor_id:
        return None, f"the topic {topic!r} ends with '/': its last level must be the sensor id"
    if sensor_id in ("+", "#"):
        return None, f"the topic {topic!r} ends in a wildcard, not a sensor id"
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None, 'the payload is not JSON: send a number or {"value": 1.2, "time": "2026-07-01T08:00:00+08:00"}'
    if isinstance(data, dict):
        extra = sorted(k for k in data if k not in ("value", "time"))
        if extra:
            return None, f"the payload has keys other than value and time: {extra}"
        if "value" not in data:
            return None, 'the payload has no "value"'
        t = data.get("time")
        return {"sensor_id": sensor_id, "time": received_at if t is None else t, "value": data["value"]}, None
    if isinstance(data, (list, str)) or data is None:
        return None, (f"the payload is a JSON {type(data).__name__ if data is not None else 'null'}: send a number or "
                      '{"value": 1.2, "time": "..."}')
    return {"sensor_id": sensor_id, "time": received_at, "value": data}, None


@dataclass
class FeedCounts:
    """What a listener did: messages received, readings stored, messages rejected (to ``sensor_rejects``),
    times the broker connection dropped, seconds it ran."""

    received: int = 0
    stored: int = 0
    rejected: int = 0
    disconnects: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"received {self.received}, stored {self.stored}, rejected {self.rejected}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


class MqttFeed:
    """Listen to ``topic`` on an MQTT broker and store the readings in ``store``.

    Parameters
    ----------
    store : Store
        The twin's store (one thread uses it: the one that calls :meth:`run`).
    broker : str
        ``host:port``.
    topic : str
        The subscription; its matches' last level is the sensor id (``rongtwin/sensors/+``).
    qos : int
        0, 1 (default: the broker resends what a dropped connection did not deliver) or 2.
    client_id : str, optional
        A fixed id keeps the session on the broker between runs; default: a fresh id and a clean session.
    report : callable, optional
        Called with a line of counts every :data:`REPORT_S` seconds and with connection news.
    batch, flush_s, report_s : see :data:`BATCH`, :data:`FLUSH_S`, :data:`REPORT_S`.
    """

    def __init__(self, store, *, broker: str = "127.0.0.1:1883", topic: str = "rongtwin/sensors/+", qos: int = 1,
                 client_id: str | None = None, report: Callable[[str], None] | None = None, batch: int = BATCH,
                 flush_s: float = FLUSH_S, report_s: float = REPORT_S) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        check_topic(topic)
        if batch < 1 or flush_s <= 0 or report_s <= 0:
            raise ValueError("batch must be at least 1 and flush_s, report_s above 0")
        self.store = store
        self.host, self.port = parse_broker(broker)
        self.topic, self.qos = topic, qos
        self.client_id = client_id
        self.report = report or (lambda line: None)
        self.batch, self.flush_s, self.report_s = batch, flush_s, report_s
        self.counts = FeedCounts()
        self._q: queue.Queue = queue.Queue()
        self._subscribed = threading.Event()
        self._failure: str | None = None
        self._known = None
        self._known_at = 0.0
        self._closing = False

    # -------------------------------------------------------------------------------- broker
    def _client(self):
        import paho.mqtt.client as mqtt

        persistent = bool(self.client_id)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=self.client_id or f"rongtwin-{secrets.token_hex(6)}",
                             clean_session=not persistent, protocol=mqtt.MQTTv311)
        client.reconnect_delay_set(min_delay=1, max_delay=30)

        def on_connect(c, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                self._failure = f"the broker refused the connection: {reason_code}"
                self.report(f"sensors listen: {self._failure}")
                return
            c.subscribe(self.topic, qos=self.qos)

        def on_subscribe(c, userdata, mid, reason_codes, properties):
            bad = [str(r) for r in reason_codes if r.is_failure]
            if bad:
                self._failure = f"the broker refused the subscription to {self.topic!r}: {', '.join(bad)}"
                self.report(f"sensors listen: {self._failure}")
            elif self._subscribed.is_set():
                self.report(f"sensors listen: connected again to {self.host}:{self.port}, subscribed to {self.topic}")
            self._subscribed.set()

        def on_disconnect(c, userdata, flags, reason_code, properties):
            if self._closing:
                return
            self.counts.disconnects += 1
            self.report(f"sensors listen: the broker connection dropped ({reason_code}); reconnecting")

        def on_message(c, userdata, msg):
            self._q.put((msg.topic, bytes(msg.payload), datetime.now(timezone.utc)))

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_disconnect, client.on_message = on_disconnect, on_message
        return client

    def _connect(self, timeout: float = 10.0):
        client = self._client()
        try:
            client.connect(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise FeedError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}; is it running "
                            "(e.g. systemctl status mosquitto) and is --broker right?") from None
        client.loop_start()
        if not self._subscribed.wait(timeout) or self._failure:
            self._closing = True
            client.disconnect()
            client.loop_stop()
            raise FeedError(self._failure or f"no answer from the MQTT broker at {self.host}:{self.port} within "
                                             f"{timeout:.0f} s (subscribing to {self.topic!r})")
        return client

    # -------------------------------------------------------------------------------- storing
    def _sensors(self, stale_ok: bool = True):
        from cim.sensors import known_sensors

        now = time.monotonic()
        if self._known is None or (not stale_ok and now - self._known_at > SENSORS_TTL_S):
            self._known = set(known_sensors(self.store)["sensor_id"])
            self._known_at = now
        return self._known

    def _check(self, batch: list[tuple[str, bytes, datetime]]):
        """The readings to store and the rejects (dicts for :func:`cim.sensors.append_rejects`)."""
        from cim.sensors import check_readings

        rejects, readings, sources = [], [], []
        for pos, (topic, payload, at) in enumerate(batch):
            reading, why = decode_message(topic, payload, at)
            if why:
                rejects.append((pos, {"topic": topic, "payload": payload, "reason": why, "received_at": at}))
            else:
                readings.append(reading)
                sources.append(pos)
        good, problems = check_readings(readings, self._sensors())
        if problems and any(why.startswith("unknown sensor") for _, why in problems):
            good, problems = check_readings(readings, self._sensors(stale_ok=False))  # a sensor added meanwhile?
        for k, why in problems:
            topic, payload, at = batch[sources[k]]
            rejects.append((sources[k], {"topic": topic, "payload": payload, "reason": why, "received_at": at}))
        rejects = [r for _, r in sorted(rejects, key=lambda pr: pr[0])]  # in the order they arrived
        return good.reset_index(drop=True), rejects

    def _flush(self, pending: list) -> bool:
        """Store what is held: the good readings and the rejects, in one transaction. False if the store
        failed (everything stays held, to be tried again)."""
        from cim.sensors import append_readings, append_rejects

        if not pending:
            return True
        good, rejects = self._check(pending)
        try:
            with self.store.transaction():
                stored = append_readings(self.store, good, sensors=self._known) if len(good) else 0
                append_rejects(self.store, rejects)
        except Exception as exc:  # noqa: BLE001 - the store failed: keep the messages, say so, try again
            msg = f"could not store {len(pending)} messages ({type(exc).__name__}: {exc}); holding them to try again"
            if not self.counts.errors or self.counts.errors[-1] != msg:
                self.counts.errors.append(msg)
                self.report(f"sensors listen: {msg}")
            return False
        self.counts.stored += stored
        self.counts.rejected += len(rejects)
        pending.clear()
        return True

    # -------------------------------------------------------------------------------- running
    def run(self, *, max_messages: int | None = None, seconds: float | None = None,
            stop: threading.Event | None = None, ready: threading.Event | None = None) -> FeedCounts:
        """Listen until ``max_messages`` were received, ``seconds`` passed, ``stop`` is set or Ctrl-C; store
        what is held, disconnect, and return the counts.

        ``ready`` is set once the subscription stands (for scripts and tests that publish then).
        """
        t0 = time.monotonic()
        client = self._connect()
        self.report(f"sensors listen: subscribed to {self.topic!r} on {self.host}:{self.port} (Ctrl-C stops)")
        if ready is not None:
            ready.set()
        pending: list = []
        deadline = None if seconds is None else t0 + seconds
        next_flush, next_report = t0 + self.flush_s, t0 + self.report_s
        try:
            while True:
                now = time.monotonic()
                if max_messages is not None and self.counts.received >= max_messages:
                    break
                if (deadline is not None and now >= deadline) or (stop is not None and stop.is_set()):
                    break
                wait = min(next_flush, next_report, deadline if deadline is not None else next_flush) - now
                try:
                    item = self._q.get(timeout=max(0.0, min(wait, 0.2)))
                    pending.append(item)
                    self.counts.received += 1
                    while len(pending) < self.batch and (max_messages is None or self.counts.received < max_messages):
                        pending.append(self._q.get_nowait())
                        self.counts.received += 1
                except queue.Empty:
                    pass
                now = time.monotonic()
                if len(pending) >= self.batch or now >= next_flush:
                    self._flush(pending)
                    next_flush = now + self.flush_s
                    if len(pending) > MAX_PENDING:
                        raise FeedError(f"the store has failed for a while ({self.counts.errors[-1]}); stopping with "
                                        f"{len(pending)} messages not stored")
                if now >= next_report:
                    self.report(f"sensors listen: {self.counts.line()}")
                    next_report = now + self.report_s
        except KeyboardInterrupt:
            pass
        finally:
            self._closing = True
            client.disconnect()
            client.loop_stop()
            while True:  # what arrived before the connection closed is stored too, not dropped
                try:
                    pending.append(self._q.get_nowait())
                    self.counts.received += 1
                except queue.Empty:
                    break
            stored = self._flush(pending)
            self.counts.seconds = time.monotonic() - t0
        if not stored:
            raise FeedError(f"{len(pending)} messages could not be stored: {self.counts.errors[-1]}")
        return self.counts
