"""Live sensor readings from an MQTT broker into the twin (``twin sensors listen``).

Each message's topic ends in the sensor id (``rongtwin/sensors/RG01``); its payload is JSON, either a bare
number (the reading, taken at the instant the message arrived) or ``{"value": 1.2, "time":
"2026-07-01T08:00:00+08:00"}`` (``time`` optional, as for a bare number). A *retained* message (the broker
keeps it and hands it to every listener that subscribes, hours or days later) is timed by its ``time`` only:
without one it is refused to ``sensor_rejects`` with the reason, never stamped with its arrival, which would make
a gauge's old alarm read as current at every start of a listener; with one it is stored once, and its
re-delivery at the next start is the same reading again, not stored twice (:func:`cim.sensors.find_repeats`).
A message with the sensor and time of a stored reading (or of an earlier message) and another value is a
conflict: it goes to ``sensor_rejects`` with the reason, and the stored reading stands. Messages are gathered
and stored every second or every 500 messages through :func:`cim.sensors.append_readings`, which checks them. A
message that cannot be read or whose reading is refused goes, with the reason, to the table
``sensor_rejects`` (see :func:`cim.sensors.read_rejects`) instead: the good messages of a batch are stored
all the same, and none is dropped.

Login and TLS
-------------
A broker that wants a login gets ``username`` and ``password``. The command line takes the user name
(``--username``) but never the password, which ``ps`` would show to every user of the machine: it reads it
from the environment variable :data:`PASSWORD_ENV` (``TWIN_MQTT_PASSWORD``) or from the first line of a file
(``--password-file``, best readable by the listener's user only), see :func:`broker_password`. TLS
(``tls=True``, implied by a CA or client certificate file) checks the broker's certificate against the
system's CAs or ``ca_file`` (a private CA), and the host name against it; ``cert_file`` and ``key_file`` log
the listener in with a client certificate where the broker asks for one. There is no "insecure" switch: a
listener that does not check the broker's certificate hands its password to whoever answers on the address,
so a broker with a certificate of its own CA is reached with ``ca_file``, and one whose certificate names
another host by that name. A refused login, a refused subscription and a failed TLS handshake each stop the
listener as it starts with a line that says what went wrong and what to do (later, on a reconnect, the line is
reported and paho keeps trying, and the feed's state reads ``refused``). Mosquitto (2.0 too, over MQTT 5 as
well) grants a subscription to a topic its ACL does not let the user read and then delivers nothing on it:
the listener cannot tell that from a quiet feed, so when the subscription has stood ``silence_s``
(:data:`SILENCE_S`, 10 min; ``--silence``) with no message it says so, once, naming the ACL and how to check
it (and again when messages come back); set it to the longest quiet spell the feed may have, or 0 for never.

The feed's state
----------------
The listener keeps its state in the table ``sensor_feeds`` (:func:`cim.sensors.write_feed_status`): ``live``,
``silent`` (nothing for ``silence_s``), ``refused`` (the broker refused the subscription on a reconnect),
``disconnected`` (reconnecting) or ``stopped``, with what to do, the time of the last message and the counts,
written as it changes and every ``report_s`` seconds as a heartbeat, so the map (``GET /api/sensors/feeds``)
and ``twin sensors feeds`` also tell a listener that was killed (``not running``).

Acknowledging only what is stored
---------------------------------
Messages are subscribed at QoS 1 over MQTT 5 (the default): the broker keeps each message until the
listener acknowledges it, and the listener acknowledges a message only once the transaction that stored it
(or its reject) has committed (paho-mqtt's ``manual_ack``). The listener tells the broker it may hold up to
:data:`RECEIVE_MAX` messages unacknowledged (MQTT 5's Receive Maximum; without it Mosquitto sends 20, then
waits, and a one-second batch would throttle the feed to 20 messages a second). So with a ``client_id`` (a
persistent session, kept by the broker while the listener is away) no message is lost between the broker and
the store: after a hard kill (``kill -9``, a power cut, the store failing as the listener stops) the broker
sends what was received but not stored again when the listener comes back with the same ``client_id``. The
price is at-least-once delivery: after a kill between the commit and the acknowledgement, or a broker connection
that drops while readings are held, the broker sends those messages again (a payload with a ``time`` gives the
same reading again, which is not stored twice). A bare number (or a payload without a ``time``) is timed at its
arrival, so its second arrival would be a second reading: the listener tells a re-delivery by what MQTT says of
it, the DUP flag the broker sets on a message it sends again, with the packet id (``mid``) and the same topic and
payload as a message this listener received (on this or an earlier connection of the session) less than
:data:`REDELIVERY_S` before; such a message is counted as already stored and acknowledged, not stored again. A new
message with the same value (the DUP flag clear, or another packet id) is a new reading and stored. A listener
killed between its commit and its acknowledgement starts with no memory of what it received, so the broker's
re-delivery to the next listener is stored a second time.
While the listener is away the broker keeps new messages only up to its own limit (Mosquitto:
``max_queued_messages``, 1000 per client by default). Without a ``client_id`` the session is clean: the
broker forgets the unacknowledged messages when the connection goes, so a hard kill loses what was held (at
most about a second of messages), as does a listener that is simply not running.

QoS 2 and MQTT 3.1.1 (``mqtt_version="3.1.1"``, for a broker that does not speak MQTT 5) acknowledge each
message as it arrives, as before: under QoS 2 the broker considers a message delivered once its handshake
ends, before the reading can be stored, and paho keeps no state on disk to finish that handshake after a
restart; under MQTT 3.1.1 the client cannot raise the broker's in-flight window (Mosquitto:
``max_inflight_messages``, 20), so holding acknowledgements would stall the feed. There the hard-kill window
of up to one second of unstored messages remains.

The broker connection is paho-mqtt's: when the broker drops it, paho reconnects (1 s, doubling to 30 s) and
the listener subscribes again. What the listener has received is stored before it stops (at the end of
``seconds``, after ``max_messages``, on Ctrl-C) and then acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import secrets
import ssl
import stat
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from twin_core.errors import FeedError, TwinWarning, twin_warn
from twin_core.net import is_loopback

__all__ = ["MqttFeed", "FeedCounts", "decode_message", "parse_broker", "check_topic", "broker_password",
           "PASSWORD_ENV", "MQTT_VERSIONS", "MAX_PAYLOAD", "SILENCE_S"]

#: how many messages a batch holds at most, and how often (s) what is held is stored
BATCH = 500
FLUSH_S = 1.0
#: how often (s) a line of counts is reported
REPORT_S = 10.0
#: how long (s) after a read of the sensors layer an unknown sensor (or a value out of range) may make the listener
#: read it again; a change the layer's marker shows (:func:`cim.sensors.sensors_marker`: a sensor added, removed,
#: a layer replaced) is read at the next batch
SENSORS_TTL_S = 10.0
#: messages held unstored (the store failing) before the listener gives up
MAX_PENDING = 100_000
#: the largest payload (bytes) read as a reading; a reading is a few dozen bytes, so a larger one is refused
#: unread, and only its first :data:`KEEP_BYTES` are held (and kept in ``sensor_rejects``) with its size
MAX_PAYLOAD = 4096
KEEP_BYTES = 256
#: how long (s) the subscription may stand with no message before the listener says so (see :class:`MqttFeed`)
SILENCE_S = 600.0
#: the environment variable the password is read from (the command line never takes it)
PASSWORD_ENV = "TWIN_MQTT_PASSWORD"
#: the MQTT versions the listener speaks (5: acknowledges after storing; 3.1.1: on arrival)
MQTT_VERSIONS = ("5", "3.1.1")
#: how many unacknowledged messages the broker may send (MQTT 5 Receive Maximum; 65535 is the most)
RECEIVE_MAX = 65535
#: how long (s) after a QoS 1 or 2 message the listener takes a message the broker marks as sent again (DUP, the same
#: packet id, topic and payload) for a re-delivery of it: a broker re-sends after a reconnect (seconds; the listener
#: retries for up to 30 s), and Mosquitto gives a client's messages packet ids in turn, reusing one only after
#: 65,535 others, so a genuine later reading with the same value, topic and id is taken for a re-delivery only if
#: that many messages came within this window and its own first sending was lost
REDELIVERY_S = 600.0
#: a persistent session's expiry (MQTT 5): never, as an MQTT 3.1.1 session with clean_session=False
_SESSION_FOREVER = 0xFFFFFFFF


def parse_broker(text: str, default_port: int = 1883) -> tuple[str, int]:
    """``host[:port]`` (``default_port`` when left out; ``[::1]:1883`` for IPv6) as ``(host, port)``.

    Examples
    --------
    >>> parse_broker("127.0.0.1:1883"), parse_broker("mqtt.local"), parse_broker("[::1]:1884")
    (('127.0.0.1', 1883), ('mqtt.local', 1883), ('::1', 1884))
    >>> parse_broker("mqtt.local", default_port=8883)
    ('mqtt.local', 8883)
    """
    t = (text or "").strip()
    host, port = t, str(default_port)
    if t.startswith("["):
        end = t.find("]")
        host, rest = t[1:end], t[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            host = ""
        port = rest[1:] if rest else str(default_port)
    elif t.count(":") == 1:
        host, port = t.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"broker {text!r} is not host:port (e.g. 127.0.0.1:1883)")
    return host, int(port)


def broker_password(password_file: str | os.PathLike | None = None,
                    environ: Mapping[str, str] | None = None) -> str | None:
    """The broker password: the first line of ``password_file``, else :data:`PASSWORD_ENV` from ``environ``
    (default: the process environment), else None. Never from the command line (``ps`` shows it).

    A file that others may read is taken with a warning; an empty or unreadable one, or both ways at once, is
    a ValueError that says what to do.

    Examples
    --------
    >>> broker_password(environ={"TWIN_MQTT_PASSWORD": "s3cret"})
    's3cret'
    >>> broker_password(environ={}) is None
    True
    """
    env = os.environ if environ is None else environ
    from_env = env.get(PASSWORD_ENV)
    if password_file is None:
        if from_env is not None and not from_env:
            raise ValueError(f"{PASSWORD_ENV} is set but empty: set it to the broker password, or unset it")
        return from_env
    if from_env is not None:
        raise ValueError(f"the password is given twice, in {PASSWORD_ENV} and in --password-file "
                         f"{os.fspath(password_file)}: give it one way (unset {PASSWORD_ENV}, or drop --password-file)")
    path = os.fspath(password_file)
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the password file {path}: {exc}") from None
    if stat.S_ISREG(mode) and mode & 0o077:
        twin_warn(f"the password file {path} may be read by other users (mode {stat.S_IMODE(mode):o}); make it "
                      f"the listener's own: chmod 600 {path}", TwinWarning, stacklevel=2)
    password = first.rstrip("\r\n")
    if not password:
        raise ValueError(f"the password file {path} is empty (its first line is the password)")
    return password


def _tls_context(ca_file, cert_file, key_file) -> ssl.SSLContext:
    """A client TLS context that checks the broker's certificate (against ``ca_file`` only, if given, else the
    system's CAs) and its host name; with ``cert_file`` (and ``key_file``) a client certificate. FeedError,
    saying which file and what to do, if one cannot be used."""
    if key_file is not None and cert_file is None:
        raise FeedError("--key-file is the key of a client certificate: give the certificate too (--cert-file)")
    try:
        cafile = None if ca_file is None else os.fspath(ca_file)
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise FeedError(f"cannot use the CA file {os.fspath(ca_file)}: {_ssl_text(exc)}; give the PEM file of the CA "
                        "that signed the broker's certificate") from None
    if ctx.minimum_version < ssl.TLSVersion.TLSv1_2:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        def no_passphrase():  # an encrypted key would prompt on the terminal, which a service has not
            raise FeedError(f"the client key {os.fspath(key_file or cert_file)} is encrypted: give an unencrypted "
                            "key (e.g. openssl pkey -in KEY -out KEY.plain), readable only by the listener's user")

        try:
            ctx.load_cert_chain(os.fspath(cert_file), None if key_file is None else os.fspath(key_file),
                                password=no_passphrase)
        except FeedError:
            raise
        except (OSError, ssl.SSLError) as exc:
            what = f"{os.fspath(cert_file)}" + (f" with the key {os.fspath(key_file)}" if key_file else "")
            hint = ("the key does not belong to the certificate" if "KEY_VALUES_MISMATCH" in str(exc) else
                    "give the certificate as PEM and its key (--key-file) unless the PEM holds both")
            raise FeedError(f"cannot use the client certificate {what}: {_ssl_text(exc)}; {hint}") from None
    return ctx


def _ssl_text(exc: BaseException) -> str:
    return (getattr(exc, "verify_message", None) or getattr(exc, "strerror", None) or getattr(exc, "reason", None)
            or str(exc))


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


def decode_message(topic: str, payload: bytes, received_at: datetime, size: int | None = None, *,
                   retained: bool = False) -> tuple[dict | None, str | None]:
    """The reading a message carries (``sensor_id``, ``time``, ``value``), or why it cannot be read.

    ``size`` is the payload's size in bytes where ``payload`` holds only its first bytes (a message over
    :data:`MAX_PAYLOAD`, refused unread). ``retained``: the message came with MQTT's retain flag (paho's
    ``msg.retain``: the broker kept it, maybe for days), so it is refused unless its payload gives a ``time``
    (the instant it arrived is not when it was measured). No payload raises: whatever it holds (nesting 100,000
    deep, a number of 5,000 digits) is a reason, never an exception that would stop the listener.

    The reading is not checked here (unknown sensor, a time without an offset, a value that is not a
    number, out of the sensor's plausible range): :func:`cim.sensors.check_readings` does that for every way
    in. A JSON object that names a key twice is refused here (``json`` would keep the last silently).

    Examples
    --------
    >>> at = datetime(2026, 7, 1, tzinfo=timezone.utc)
    >>> decode_message("rongtwin/sensors/RG01", b"12.5", at)[0]["value"]
    12.5
    >>> decode_message("rongtwin/sensors/RG01", b'{"value": 3, "time": "2026-07-01T08:00:00+08:00"}', at)[0]["time"]
    '2026-07-01T08:00:00+08:00'
    >>> decode_message("rongtwin/sensors/RG01", b"high", at)[1]
    'the payload is not JSON: send a number or {"value": 1.2, "time": "2026-07-01T08:00:00+08:00"}'
    >>> decode_message("rongtwin/sensors/RG01", b"12.5", at, retained=True)[1][:52]
    'a retained message without a time: the broker keeps '
    """
    sensor_id = topic.rsplit("/", 1)[-1]
    if not sensor_id:
        return None, f"the topic {topic!r} ends with '/': its last level must be the sensor id"
    if sensor_id in ("+", "#"):
        return None, f"the topic {topic!r} ends in a wildcard, not a sensor id"
    size = len(payload) if size is None else size
    if size > MAX_PAYLOAD:
        return None, (f"the payload is {size} bytes, over the limit of {MAX_PAYLOAD}: send one reading per message, "
                      'a number or {"value": 1.2, "time": "2026-07-01T08:00:00+08:00"}')
    from cim.sensors import DuplicateKeyError, unique_keys

    try:
        data = json.loads(payload, object_pairs_hook=unique_keys)
    except DuplicateKeyError as exc:
        return None, (f"the payload names the key {exc.key!r} more than once (which one holds the reading?): send "
                      'each key once, e.g. {"value": 1.2, "time": "2026-07-01T08:00:00+08:00"}')
    except RecursionError:
        return None, 'the payload is JSON nested too deep: send a number or {"value": 1.2, "time": "..."}'
    except ValueError as exc:
        if "digits" in str(exc):  # Python refuses to read an integer of more than 4300 digits
            return None, "the payload is a number of thousands of digits, out of the range of a reading"
        return None, 'the payload is not JSON: send a number or {"value": 1.2, "time": "2026-07-01T08:00:00+08:00"}'
    except Exception as exc:  # noqa: BLE001 - whatever a payload does, it is refused, not fatal
        return None, f"the payload cannot be read ({type(exc).__name__}): send a number or {{\"value\": 1.2}}"
    if isinstance(data, dict):
        extra = sorted(k for k in data if k not in ("value", "time"))
        if extra:
            return None, f"the payload has keys other than value and time: {extra}"
        if "value" not in data:
            return None, 'the payload has no "value"'
        t = data.get("time")
        if t is None and retained:
            return None, _RETAINED_WITHOUT_TIME.format(topic=topic)
        return {"sensor_id": sensor_id, "time": received_at if t is None else t, "value": data["value"]}, None
    if isinstance(data, (list, str)) or data is None:
        return None, (f"the payload is a JSON {type(data).__name__ if data is not None else 'null'}: send a number or "
                      '{"value": 1.2, "time": "..."}')
    if retained:
        return None, _RETAINED_WITHOUT_TIME.format(topic=topic)
    return {"sensor_id": sensor_id, "time": received_at, "value": data}, None


_RETAINED_WITHOUT_TIME = (
    "a retained message without a time: the broker keeps it and hands it to every listener as it subscribes, so "
    "the instant it arrives is not when it was measured (an old alarm would read as current); publish with a time, "
    '{{"value": 1.2, "time": "2026-07-01T08:00:00+08:00"}}, or without the retain flag, and clear this one: '
    "mosquitto_pub -t '{topic}' -r -n")


@dataclass
class FeedCounts:
    """What a listener did: messages received, readings stored, messages rejected (to ``sensor_rejects``),
    times the broker connection dropped, seconds it ran, and ``already_stored``: messages whose reading (sensor,
    time and value) was stored already (a retained message at a new start, a message the broker sent again), taken
    and not stored twice."""

    received: int = 0
    stored: int = 0
    rejected: int = 0
    disconnects: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    already_stored: int = 0

    def line(self) -> str:
        again = f", already stored {self.already_stored}" if self.already_stored else ""
        return f"received {self.received}, stored {self.stored}, rejected {self.rejected}{again}"

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
        ``host[:port]``; the port is 1883 when left out, 8883 with TLS.
    topic : str
        The subscription; its matches' last level is the sensor id (``rongtwin/sensors/+``).
    qos : int
        0, 1 (default: the broker keeps each message until it is stored, see the module notes) or 2.
    client_id : str, optional
        A fixed id keeps the session on the broker between runs (and the messages that arrive, or were held
        unstored, while the listener is away); default: a fresh id and a clean session.
    username, password : str, optional
        The broker login (see :func:`broker_password` for where a script keeps the password).
    tls : bool
        Speak TLS, checking the broker's certificate and host name (implied by ``ca_file`` or ``cert_file``).
    ca_file : path, optional
        PEM file of the CA(s) that signed the broker's certificate (default: the system's CAs).
    cert_file, key_file : path, optional
        A client certificate (PEM) and its key, for a broker that logs clients in by certificate.
    mqtt_version : {"5", "3.1.1"}
        MQTT 5 (default) acknowledges a QoS 1 message once it is stored; 3.1.1 as it arrives.
    report : callable, optional
        Called with a line of counts every :data:`REPORT_S` seconds and with connection news.
    batch, flush_s, report_s : see :data:`BATCH`, :data:`FLUSH_S`, :data:`REPORT_S`.
    """

    def __init__(self, store, *, broker: str = "127.0.0.1", topic: str = "rongtwin/sensors/+", qos: int = 1,
                 client_id: str | None = None, username: str | None = None, password: str | None = None,
                 tls: bool = False, ca_file=None, cert_file=None, key_file=None, mqtt_version: str = "5",
                 report: Callable[[str], None] | None = None, batch: int = BATCH, flush_s: float = FLUSH_S,
                 report_s: float = REPORT_S, silence_s: float | None = SILENCE_S,
                 warn: Callable[[str], None] | None = None) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        if mqtt_version not in MQTT_VERSIONS:
            raise ValueError(f"mqtt_version must be one of {', '.join(MQTT_VERSIONS)}, got {mqtt_version!r}")
        check_topic(topic)
        if batch < 1 or flush_s <= 0 or report_s <= 0:
            raise ValueError("batch must be at least 1 and flush_s, report_s above 0")
        if silence_s is not None and not (silence_s >= 0 and math.isfinite(silence_s)):
            raise ValueError(f"silence_s must be a number of seconds >= 0 (0: never say so), got {silence_s!r}")
        if password is not None and not username:
            raise ValueError("a password needs a user name (--username)")
        if username is not None and (not username.strip() or "\x00" in username):
            raise ValueError("the user name must be non-empty text")
        self.store = store
        self.tls = bool(tls or ca_file is not None or cert_file is not None or key_file is not None)
        self.host, self.port = parse_broker(broker, 8883 if self.tls else 1883)
        self.topic, self.qos = topic, qos
        self.client_id = client_id
        self.username, self._password = username, password
        self.mqtt_version = mqtt_version
        self._ssl = _tls_context(ca_file, cert_file, key_file) if self.tls else None
        self._client_cert = cert_file is not None
        if password is not None and not self.tls and not is_loopback(self.host):
            twin_warn(f"the password goes to {self.host} unencrypted: anyone on the way can read it; use TLS "
                          "(--tls, and --ca-file for a broker with a certificate of its own CA)", TwinWarning,
                          stacklevel=2)
        #: acknowledge a message only once stored (MQTT 5, QoS 1; see the module notes)
        self.ack_after_store = mqtt_version == "5" and qos == 1
        self.report = report or (lambda line: None)
        self.warn = warn or self.report
        self.batch, self.flush_s, self.report_s = batch, flush_s, report_s
        self.silence_s = silence_s or None
        #: the feed's state as the map sees it (:func:`cim.sensors.read_feeds`): one of FEED_STATES
        self.state, self.detail = "live", ""
        self._state_since = datetime.now(timezone.utc)
        self._status_due = True  # write the state to the store at the next turn of the loop
        self._live_since: float | None = None  # when the subscription last stood (monotonic); None: it does not
        self._last_msg: float | None = None  # when the last message came (monotonic)
        self._last_msg_at: datetime | None = None
        self.counts = FeedCounts()
        self._q: queue.Queue = queue.Queue()
        self._answered = threading.Event()  # the first subscription stands, or the broker said no
        self._subscribed = False
        self._connected = False
        self._failure: str | None = None
        self._socket_error: str | None = None
        self._known = None
        self._known_cache = None  # cim.sensors.SensorsCache, made at the first batch
        self._closing = False
        self._client = None
        self._gen = 0  # the broker connection messages came on (acknowledgements go only to that one)
        self._seen: dict[int, tuple] = {}  # packet id -> (topic, size, payload digest, monotonic arrival), QoS 1 and 2
        self._ack_lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    # -------------------------------------------------------------------------------- broker
    def _client_new(self):
        import paho.mqtt.client as mqtt

        persistent = bool(self.client_id)
        cid = self.client_id or f"rongtwin-{secrets.token_hex(6)}"
        if self.mqtt_version == "5":
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5,
                                 manual_ack=self.ack_after_store)
        else:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=not persistent,
                                 protocol=mqtt.MQTTv311)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if self.username is not None:
            client.username_pw_set(self.username, self._password)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)

        def on_connect(c, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                self._failure = self._refusal(reason_code)
                self.report(f"sensors listen: {self._failure}")
                self._answered.set()
                return
            self._connected = True
            c.subscribe(self.topic, qos=self.qos)

        def on_subscribe(c, userdata, mid, reason_codes, properties):
            bad = [str(r) for r in reason_codes if r.is_failure]
            if bad:
                self._failure = (f"the broker at {self.address} refused the subscription to {self.topic!r} "
                                 f"({', '.join(bad)}): the broker's ACL may not let {self._who} read "
                                 "it; ask its administrator, or check --topic")
                if self._answered.is_set():  # on a reconnect: the listener runs on, receiving nothing
                    self._live_since = None
                    self._set_state("refused", f"{self._failure}. Nothing arrives until that is fixed and the "
                                               "listener is started again")
                    self.warn(f"sensors listen: {self.detail}")
                else:
                    self.report(f"sensors listen: {self._failure}")
            else:
                if self._subscribed:
                    self.report(f"sensors listen: connected again to {self.address}, subscribed to {self.topic}")
                self._live_since = time.monotonic()
                if self.state in ("disconnected", "refused", "silent"):
                    self._set_state("live", "subscribed again" if self._subscribed else "")
            self._subscribed = True
            self._answered.set()

        def on_disconnect(c, userdata, flags, reason_code, properties):
            with self._ack_lock:
                self._gen += 1  # before paho connects again: no acknowledgement of these messages goes out now
            if self._closing:
                return
            if not self._connected and not self._answered.is_set():
                self._failure = self._dropped(reason_code)
                self._answered.set()
                return
            self.counts.disconnects += 1
            self._live_since = None
            self._set_state("disconnected", f"the broker connection dropped ({reason_code}); reconnecting")
            self.report(f"sensors listen: the broker connection dropped ({reason_code}); reconnecting")

        def on_message(c, userdata, msg):
            payload = msg.payload
            size = len(payload)
            if size > MAX_PAYLOAD:  # refused unread: hold only its head, not megabytes per message
                payload = payload[:KEEP_BYTES]
            again = self._redelivered(msg.topic, bytes(payload), size, msg.mid, msg.qos, bool(getattr(msg, "dup", 0)))
            self._q.put((msg.topic, bytes(payload), datetime.now(timezone.utc), size, msg.mid, msg.qos, self._gen,
                         bool(msg.retain), again))

        def on_log(c, userdata, level, buf):
            if buf.startswith("failed to receive on socket"):
                self._socket_error = buf.split(":", 1)[1].strip()

        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_disconnect, client.on_message, client.on_log = on_disconnect, on_message, on_log
        return client

    def _redelivered(self, topic: str, payload: bytes, size: int, mid: int, qos: int, dup: bool,
                     now: float | None = None) -> bool:
        """Whether a message is the broker's re-delivery of one this listener received already: the DUP flag set,
        and the packet id, topic and payload of a message received less than :data:`REDELIVERY_S` before (a QoS 0
        message has neither id nor re-delivery). Called once per message, in the order they arrive (paho's
        thread); remembers each QoS 1 or 2 message by its packet id (at most 65,535: the ids an MQTT session has)."""
        if not qos:
            return False
        now = time.monotonic() if now is None else now
        key = (topic, size, hashlib.blake2b(payload, digest_size=16).digest())
        seen = self._seen.get(mid)
        if dup and seen is not None and seen[:3] == key and now - seen[3] <= REDELIVERY_S:
            return True  # the first arrival's time stands: a third delivery is still within the window of the first
        self._seen[mid] = (*key, now)
        return False

    @property
    def _who(self) -> str:
        if self.username:
            return f"user {self.username!r}"
        return "the client certificate's user" if self._client_cert else "an anonymous client"

    def _set_state(self, state: str, detail: str = "") -> None:
        if state != self.state:
            self._state_since = datetime.now(timezone.utc)
        self.state, self.detail = state, detail
        self._status_due = True

    def _silence_text(self, quiet: float) -> str:
        span = f"{quiet / 60:.0f} min" if quiet >= 120 else f"{quiet:.0f} s"
        check = (f"mosquitto_sub -h {self.host} -p {self.port}{' -u ' + self.username if self.username else ''} "
                 f"-t '{self.topic}' -v")
        if self._last_msg_at is None:
            return (f"no message has arrived on {self.topic!r} at {self.address} in the {span} since subscribing. If "
                    f"the sensors publish there, the broker may not let {self._who} read that topic (Mosquitto grants a "
                    f"subscription its ACL denies, then delivers nothing): check the ACL (acl_file) and --topic "
                    f"against the topics the sensors publish to, e.g. with {check}")
        return (f"no message on {self.topic!r} at {self.address} for {span} (the last at "
                f"{self._last_msg_at.isoformat(timespec='seconds')}): the sensors or their gateway may have stopped "
                f"publishing, or the broker's ACL changed; check with {check}")

    def _watch(self, now: float, got: int) -> None:
        """Note messages arriving; say so (once) when the subscription has stood ``silence_s`` with none, and
        again when they come back. Only while subscribed: a broker that is away is said so by the reconnects."""
        if got:
            self._last_msg, self._last_msg_at = now, datetime.now(timezone.utc)
            if self.state == "silent":  # not after a drop: a message still queued is no sign of a live feed
                self._set_state("live", "messages arrive again")
                self.warn(f"sensors listen: messages arrive again on {self.topic!r}")
            return
        if not self.silence_s or self._live_since is None or self.state != "live":
            return
        quiet = now - max(self._live_since, self._last_msg or 0.0)
        if quiet >= self.silence_s:
            self._set_state("silent", self._silence_text(quiet))
            self.warn(f"sensors listen: {self.detail}")

    def _write_status(self) -> None:
        """The feed's state into the store (cim.sensors.FEEDS), for the map; a failing store is said once by _flush."""
        from cim.sensors import write_feed_status

        self._status_due = False
        try:
            write_feed_status(self.store, {
                "feed": f"{self.address} {self.topic}" + (f" ({self.client_id})" if self.client_id else ""),
                "broker": self.address, "topic": self.topic, "state": self.state, "detail": self.detail,
                "since": self._state_since, "last_message_at": self._last_msg_at, "received": self.counts.received,
                "stored": self.counts.stored, "rejected": self.counts.rejected,
                "updated_at": datetime.now(timezone.utc), "heartbeat_s": self.report_s})
        except Exception as exc:  # noqa: BLE001 - the state is for people; the readings matter more
            msg = f"could not write the feed's state to the store ({type(exc).__name__}: {exc})"
            if msg not in self.counts.errors:
                self.counts.errors.append(msg)
                self.report(f"sensors listen: {msg}")

    def _refusal(self, reason_code) -> str:
        """What a refused CONNECT means and what to do (MQTT 5 reason codes; paho maps 3.1.1's onto them)."""
        code = getattr(reason_code, "value", reason_code)
        at = f"the broker at {self.address} refused the connection ({reason_code})"
        if code in (134, 135):  # bad user name or password; not authorised (Mosquitto says the latter for both)
            if self.username is None and not self._client_cert:
                return (f"{at}: it wants a login. Give --username and the password in ${PASSWORD_ENV} or in a file "
                        "named by --password-file (or a client certificate: --cert-file, --key-file)")
            who = f"user {self.username!r}" if self.username is not None else "the client certificate"
            return (f"{at}: it did not accept the login of {who}: the user name or password is wrong, or the broker "
                    f"does not let this user connect. Check --username and the password (${PASSWORD_ENV} or "
                    "--password-file) against the broker's password file and ACL")
        if code == 132:
            return f"{at}: it does not speak MQTT {self.mqtt_version}; try --mqtt-version 3.1.1"
        if code == 133:
            return f"{at}: the client id {self.client_id!r} is not acceptable to it; pick another --client-id"
        if code in (136, 137, 159):
            return f"{at}: it is unavailable or busy now; try again later"
        if code == 138:
            return f"{at}: this client is banned there; ask the broker's administrator"
        return f"{at}; check the broker's log"

    def _dropped(self, reason_code) -> str:
        """Why the broker may have closed the connection before answering the CONNECT."""
        said = f" ({self._socket_error})" if self._socket_error else ""
        at = f"the broker at {self.address} closed the connection before answering the login{said}"
        low = (self._socket_error or "").lower()
        if self.tls:
            if "certificate required" in low or "handshake failure" in low:
                return (f"{at}: it requires a client certificate; give --cert-file and --key-file with a certificate "
                        "signed by a CA the broker trusts")
            if "unknown ca" in low or "bad certificate" in low or "certificate unknown" in low:
                return (f"{at}: it does not accept the client certificate (not signed by a CA it trusts, or "
                        "expired); check --cert-file against the broker's cafile")
            if "expired" in low:
                return f"{at}: it finds the client certificate expired; renew it"
            if not self._client_cert:  # the alert that says so does not always arrive before the connection closes
                return (f"{at}: it may require a client certificate (give --cert-file and --key-file), or refuse this "
                        "TLS connection for another reason: see the broker's log")
            return f"{at}: check the TLS settings (--ca-file, --cert-file, --key-file) and the broker's log"
        return (f"{at}: if that port takes TLS (usually 8883), add --tls (and --ca-file for a broker with a "
                "certificate of its own CA); else check the broker's log")

    def _tls_failure(self, exc: BaseException) -> str:
        at = f"the TLS handshake with the MQTT broker at {self.address} failed"
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = exc.verify_message or str(exc)
            code = exc.verify_code
            if code == 62 or "hostname mismatch" in why.lower() or "ip address mismatch" in why.lower():
                return (f"{at}: its certificate is not for {self.host!r} ({why}); connect by the name the certificate "
                        "was issued for (--broker NAME:PORT)")
            if code == 10 or "expired" in why.lower():
                return f"{at}: its certificate has expired ({why}); the broker's administrator must renew it"
            if code == 9 or "not yet valid" in why.lower():
                return f"{at}: its certificate is not valid yet ({why}); check the clocks of both machines"
            return (f"{at}: its certificate is not signed by a CA this listener trusts ({why}); give the CA that "
                    "signed it with --ca-file")
        if isinstance(exc, ssl.SSLError):
            if "wrong version number" in str(exc).lower() or "packet length too long" in str(exc).lower():
                return f"{at}: it does not speak TLS on port {self.port}; use its TLS port (usually 8883)"
            return f"{at}: {_ssl_text(exc)}; check --ca-file, --cert-file, --key-file and the broker's TLS settings"
        return (f"{at}: the connection was closed during the handshake ({exc}); is port {self.port} its TLS port "
                "(usually 8883; 1883 is plain MQTT)?")

    def _connect(self, timeout: float = 10.0):
        client = self._client = self._client_new()
        kw: dict[str, Any] = {}
        if self.mqtt_version == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = RECEIVE_MAX
            props.SessionExpiryInterval = _SESSION_FOREVER if self.client_id else 0
            kw = {"clean_start": not self.client_id, "properties": props}
        try:
            client.connect(self.host, self.port, keepalive=30, **kw)
        except ssl.SSLError as exc:  # includes the certificate checks
            raise FeedError(self._tls_failure(exc)) from None
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            if self.tls:
                raise FeedError(self._tls_failure(exc)) from None
            raise FeedError(f"the MQTT broker at {self.address} closed the connection at once ({exc}); check "
                            "--broker and the broker's log") from None
        except (OSError, ValueError) as exc:
            raise FeedError(f"cannot reach the MQTT broker at {self.address}: {exc}; is it running "
                            "(e.g. systemctl status mosquitto) and is --broker right?") from None
        client.loop_start()
        if not self._answered.wait(timeout) or self._failure:
            self._closing = True
            client.disconnect()
            client.loop_stop()
            raise FeedError(self._failure or f"no answer from the MQTT broker at {self.address} within "
                                             f"{timeout:.0f} s (subscribing to {self.topic!r})")
        return client

    def _ack(self, items: list) -> None:
        """Acknowledge stored messages to the broker, on the connection they came on only (after a reconnect a
        message id may name another message; a persistent session sends the old ones again)."""
        if not self.ack_after_store or self._client is None:
            return
        with self._ack_lock:
            for item in items:  # (topic, payload, received_at, size, mid, qos, gen[, retain, redelivered])
                mid, qos, gen = item[4:7]
                if qos == 1 and gen == self._gen:
                    self._client.ack(mid, qos)

    # -------------------------------------------------------------------------------- storing
    def _sensors(self, stale_ok: bool = True):
        """The sensors layer's ids and plausible ranges (:class:`cim.sensors.KnownSensors` of
        :func:`cim.sensors.known_sensors`), worked out once per read of the layer: checking a batch and storing
        it use the same ranges. The layer is read again when its marker changed (:class:`cim.sensors.SensorsCache`:
        a sensor added or removed, the layer replaced, by any process), and, with ``stale_ok`` False (a batch
        refused), when the last read is over :data:`SENSORS_TTL_S` old."""
        from cim.sensors import SensorsCache

        if self._known_cache is None:
            self._known_cache = SensorsCache()
        if stale_ok or self._known is None:
            self._known = self._known_cache.get(self.store)
        else:
            self._known = self._known_cache.reload(self.store, SENSORS_TTL_S) or self._known
        return self._known

    def _check(self, batch: list[tuple], now: datetime | None = None):
        """The readings to store and the rejects (dicts for :func:`cim.sensors.append_rejects`), checked on the
        clock ``now`` (default: now; :meth:`_flush` stores them on the same clock, so a reading that passed the
        age check is not refused a moment later, which would hold the whole batch for ever).

        Also how many readings were stored already (:func:`cim.sensors.find_repeats`: the same sensor, time and
        value; a re-delivery) or were re-delivered by the broker (:meth:`_redelivered`: a bare number's time is its
        arrival, so only MQTT's DUP flag and packet id tell), which are neither stored nor rejected; a reading with a stored reading's sensor and
        time (or an earlier message's) but another value is a reject. Call it in the transaction that stores."""
        from cim.sensors import check_readings, find_repeats

        rejects, readings, sources, again = [], [], [], 0
        for pos, (topic, payload, at, size, *rest) in enumerate(batch):
            if len(rest) > 4 and rest[4]:  # (mid, qos, gen, retain, redelivered): sent again (_redelivered)
                again += 1
                continue
            if size == 0:  # an empty payload is MQTT's way to clear a retained message (mosquitto_pub -r -n): no
                continue   # reading, and nothing wrong with it (it was a reject "the payload is not JSON")
            retained = len(rest) > 3 and bool(rest[3])
            reading, why = decode_message(topic, payload, at, size, retained=retained)
            if why:
                if size > len(payload):
                    payload = bytes(payload) + f"... ({size} bytes in all)".encode()
                rejects.append((pos, {"topic": topic, "payload": payload, "reason": why, "received_at": at}))
            else:
                readings.append(reading)
                sources.append(pos)
        now = datetime.now(timezone.utc) if now is None else now
        known = self._sensors()
        good, problems = check_readings(readings, known, now=now)
        # a sensor added or its range changed meanwhile? (the layer is read again at most every SENSORS_TTL_S)
        if problems and self._sensors(stale_ok=False) is not known:
            good, problems = check_readings(readings, self._known, now=now)
        rep = find_repeats(self.store, good, earlier=lambda j: f"a message on {batch[sources[j]][0]!r} just before")
        for k, why in problems + rep.conflicts:
            topic, payload, at, *_ = batch[sources[k]]
            rejects.append((sources[k], {"topic": topic, "payload": payload, "reason": why, "received_at": at}))
        rejects = [r for _, r in sorted(rejects, key=lambda pr: pr[0])]  # in the order they arrived
        good = good.drop(index=rep.already + [k for k, _ in rep.conflicts])
        return good.reset_index(drop=True), rejects, len(rep.already) + again

    def _flush(self, pending: list) -> bool:
        """Store what is held: the good readings and the rejects, in one transaction, then acknowledge them to
        the broker. False if the store failed (everything stays held and unacknowledged, to be tried again)."""
        from cim.sensors import append_readings, append_rejects

        if not pending:
            return True
        now = datetime.now(timezone.utc)
        try:
            with self.store.transaction():  # the check too: it looks up the readings stored at the same times
                good, rejects, already = self._check(pending, now)
                stored = append_readings(self.store, good, sensors=self._known, now=now) if len(good) else 0
                append_rejects(self.store, rejects)
        except Exception as exc:  # noqa: BLE001 - the store failed: keep the messages, say so, try again
            msg = f"could not store {len(pending)} messages ({type(exc).__name__}: {exc}); holding them to try again"
            if not self.counts.errors or self.counts.errors[-1] != msg:
                self.counts.errors.append(msg)
                self.report(f"sensors listen: {msg}")
            return False
        self._ack(pending)
        self.counts.stored += stored
        self.counts.rejected += len(rejects)
        self.counts.already_stored += already
        pending.clear()
        return True

    def _drain(self, pending: list) -> int:
        n = 0
        while True:
            try:
                pending.append(self._q.get_nowait())
            except queue.Empty:
                return n
            n += 1

    # -------------------------------------------------------------------------------- running
    def run(self, *, max_messages: int | None = None, seconds: float | None = None,
            stop: threading.Event | None = None, ready: threading.Event | None = None) -> FeedCounts:
        """Listen until ``max_messages`` were received, ``seconds`` passed, ``stop`` is set or Ctrl-C; store
        what is held, acknowledge it, disconnect, and return the counts.

        ``ready`` is set once the subscription stands (for scripts and tests that publish then).
        """
        t0 = time.monotonic()
        client = self._connect()
        self.report(f"sensors listen: subscribed to {self.topic!r} on {self.address}"
                    f"{' (TLS)' if self.tls else ''} (Ctrl-C stops)")
        if ready is not None:
            ready.set()
        pending: list = []
        self._write_status()
        deadline = None if seconds is None else t0 + seconds
        next_flush, next_report = t0 + self.flush_s, t0 + self.report_s
        stored = True
        try:
            while True:
                now = time.monotonic()
                if max_messages is not None and self.counts.received >= max_messages:
                    break
                if (deadline is not None and now >= deadline) or (stop is not None and stop.is_set()):
                    break
                wait = min(next_flush, next_report, deadline if deadline is not None else next_flush) - now
                before = self.counts.received
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
                self._watch(now, self.counts.received - before)
                if len(pending) >= self.batch or now >= next_flush:
                    self._flush(pending)
                    next_flush = now + self.flush_s
                    if len(pending) > MAX_PENDING:
                        raise FeedError(f"the store has failed for a while ({self.counts.errors[-1]}); stopping with "
                                        f"{len(pending)} messages not stored")
                if now >= next_report:
                    self.report(f"sensors listen: {self.counts.line()}")
                    next_report = now + self.report_s
                    self._status_due = True  # the heartbeat that tells the map the listener runs
                if self._status_due:
                    self._write_status()
        except KeyboardInterrupt:
            pass
        finally:
            # what arrived is stored and acknowledged before the connection closes (the acknowledgements go out
            # ahead of the DISCONNECT) ...
            try:
                self.counts.received += self._drain(pending)
                stored = self._flush(pending)
            finally:
                self._closing = True
                client.disconnect()
                client.loop_stop()
            late: list = []
            self._drain(late)
            if late and self.ack_after_store and self.client_id:
                # ... what came after that is left to the broker, which sends it again at the next start
                self.report(f"sensors listen: {len(late)} messages arrived while stopping; the broker keeps them "
                            f"for the next start with --client-id {self.client_id}")
            elif late:  # ... or stored: acknowledged on arrival, or a clean session the broker forgets
                self.counts.received += len(late)
                pending.extend(late)
                stored = self._flush(pending)
            self.counts.seconds = time.monotonic() - t0
            self._set_state("stopped", "the listener stopped" if stored else
                            f"the listener stopped: {self.counts.errors[-1]}")
            self._write_status()
        if not stored:
            kept = (" They were not acknowledged: the broker sends them again when the listener starts with "
                    f"--client-id {self.client_id}." if self.ack_after_store and self.client_id else "")
            raise FeedError(f"{len(pending)} messages could not be stored: {self.counts.errors[-1]}.{kept}")
        return self.counts
