"""MQTT readings end to end against a real broker (Mosquitto): ``twin sensors listen`` in-process, publishing with
paho to a topic prefix of the test's own.

The broker is ``TWIN_TEST_MQTT`` (default 127.0.0.1:1883). Without one the tests skip, but in CI (``CI`` set)
they fail, as the PostGIS tests do. The reconnect test starts a Mosquitto of its own on a free port.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import pytest
from shapely import Point
from typer.testing import CliRunner

from twin_core.cli import get_app

BROKER = os.environ.get("TWIN_TEST_MQTT", "127.0.0.1:1883")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
ROOT = Path(__file__).resolve().parents[2]


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the MQTT tests must run in CI, but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def broker() -> str:
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'paho-mqtt>=2.0')")
    from twin_core.sensor_feed import parse_broker

    host, port = parse_broker(BROKER)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        _unavailable(f"no MQTT broker at {BROKER} ({exc}); start Mosquitto or set TWIN_TEST_MQTT")
    return BROKER


@pytest.fixture
def prefix() -> str:
    return f"rongtwin-test/{uuid.uuid4().hex[:12]}/sensors"


def _target(request, tmp_path, kind: str) -> str:
    return str(tmp_path / "feed.gpkg") if kind == "gpkg" else request.getfixturevalue("pg_dsn")


@pytest.fixture(params=["gpkg", "postgis"])
def twin_target(request, tmp_path) -> str:
    target = _target(request, tmp_path, request.param)
    _make_twin(target)
    return target


@pytest.fixture
def gpkg_twin(tmp_path) -> str:
    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    return target


def _make_twin(target: str) -> None:
    from cim.store import open_store

    with open_store(target, create=True, crs="EPSG:4544") as st:
        st.write_layer("sensors", gpd.GeoDataFrame(
            {"sensor_id": ["RG01", "RG02", "RL01"], "kind": ["rain_gauge", "rain_gauge", "river_level"],
             "unit": ["mm/h", "mm/h", "m"], "warn_threshold": [20.0, 20.0, 1.8], "alarm_threshold": [50.0, 50.0, 2.3]},
            geometry=[Point(409600, 3391000), Point(409700, 3391000), Point(409800, 3391000)], crs="EPSG:4544"))


class Publisher:
    def __init__(self, broker: str, *, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        from twin_core.sensor_feed import parse_broker

        host, port = parse_broker(broker)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=ca_file)
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, topic: str, payload, *, retain: bool = False) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), topic

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker):
    p = Publisher(broker)
    yield p
    p.close()


def listen_in_thread(target, broker, topic, **kw):
    """Run an MqttFeed in a thread of its own (its own store connection); returns (thread, feed, result, ready)."""
    from cim.store import open_store
    from twin_core.sensor_feed import MqttFeed

    run_kw = {k: kw.pop(k) for k in ("max_messages", "seconds", "stop") if k in kw}
    ready = threading.Event()
    result: dict = {}
    holder: dict = {}

    def go():
        try:
            with open_store(target) as store:
                feed = holder["feed"] = MqttFeed(store, broker=broker, topic=topic, **kw)
                result["counts"] = feed.run(ready=ready, **run_kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc
            ready.set()

    th = threading.Thread(target=go, daemon=True)
    th.start()
    assert ready.wait(15), "the listener did not subscribe"
    assert "error" not in result, result.get("error")
    return th, holder, result


NOW = datetime.now(timezone.utc)
#: the listener checks readings on the real clock (at most cim.sensors.MAX_AGE old, at most 5 min ahead) and has
#: no clock to pass, so the readings' times are relative to it, sent in Beijing time: an hour ago, whole seconds
CST = timezone(timedelta(hours=8))
HOUR_AGO = (NOW - timedelta(hours=1)).replace(microsecond=0)
MESSAGES = [  # (sensor, payload, stored?)
    ("RG01", 12.5, True),                                                                  # a bare number
    ("RG02", {"value": 60, "time": HOUR_AGO.astimezone(CST).isoformat()}, True),           # value and time
    ("RL01", {"value": 2.0}, True),                                                        # no time: received at
    ("NOPE", 1.0, False),                                                                  # unknown sensor
    ("RG01", {"value": 1.0, "time": "2026-07-01T08:00:00"}, False),                        # no offset
    ("RG01", b"high", False),                                                              # not JSON
    ("RG01", b"true", False),                                                              # a boolean
    ("RG01", {"value": 1.0, "unit": "mm"}, False),                                         # a key too many
    ("RG01", [1, 2], False),                                                               # a list
    ("RG01", {"value": 3.0, "time": (NOW + timedelta(hours=8)).isoformat()}, False),       # the future
    ("RG01", b"\xff\x00binary", False),                                                    # bytes
    ("RL01", "1.5", True),                                                                 # good after the bad
]


def test_listener_stores_good_messages_and_rejects_bad_ones(twin_target, broker, publisher, prefix):
    """One batch holds good and bad messages: the good are stored, each bad one goes to sensor_rejects with why."""
    from cim.store import open_store

    th, holder, result = listen_in_thread(twin_target, broker, f"{prefix}/+", max_messages=len(MESSAGES), seconds=30,
                                          flush_s=60)  # everything in one batch, stored as the listener stops
    t0 = datetime.now(timezone.utc)
    for sid, payload, _ in MESSAGES:
        publisher.send(f"{prefix}/{sid}", payload)
    th.join(40)
    assert not th.is_alive() and "error" not in result, result
    counts = result["counts"]
    good = [m for m in MESSAGES if m[2]]
    assert (counts.received, counts.stored, counts.rejected) == (len(MESSAGES), len(good), len(MESSAGES) - len(good))
    with open_store(twin_target) as st:
        readings = st.read_table("sensor_readings")
        rejects = st.read_table("sensor_rejects")
    assert readings["sensor_id"].tolist() == ["RG01", "RG02", "RL01", "RL01"]
    assert readings["value"].tolist() == [12.5, 60.0, 2.0, 1.5]
    assert readings["time"][1] == HOUR_AGO.isoformat() and HOUR_AGO.isoformat().endswith("+00:00")
    for k in (0, 2, 3):  # no time given: the instant the message arrived, in UTC
        at = datetime.fromisoformat(readings["time"][k])
        assert at.utcoffset() == timedelta(0) and t0 - timedelta(seconds=5) < at < datetime.now(timezone.utc)
    assert rejects["topic"].tolist() == [f"{prefix}/{sid}" for sid, _, ok in MESSAGES if not ok]  # in order
    reasons = rejects["reason"].tolist()
    assert reasons[0] == "unknown sensor 'NOPE'"
    assert "has no offset: add +08:00" in reasons[1]
    assert "not JSON" in reasons[2] and "boolean" in reasons[3] and "['unit']" in reasons[4]
    assert "JSON list" in reasons[5] and "ahead of the clock" in reasons[6] and "not JSON" in reasons[7]
    assert rejects["payload"].tolist()[:3] == ["1.0", '{"value": 1.0, "time": "2026-07-01T08:00:00"}', "high"]
    assert rejects["payload"].tolist()[7] == "\\xff\\x00binary"  # kept as text, nothing lost
    assert all(datetime.fromisoformat(t).utcoffset() == timedelta(0) for t in rejects["received_at"])


def test_readings_are_stored_every_second_while_listening(gpkg_twin, broker, publisher, prefix):
    from cim.store import open_store

    stop = threading.Event()
    lines: list[str] = []
    th, holder, result = listen_in_thread(gpkg_twin, broker, f"{prefix}/+", seconds=30, stop=stop, report=lines.append,
                                          report_s=0.5)
    try:
        for k in range(3):
            publisher.send(f"{prefix}/RG01", k + 1.0)
        deadline = time.time() + 10
        n = 0
        while time.time() < deadline:
            with open_store(gpkg_twin) as st:
                n = st.count_rows("sensor_readings") if st.has_table("sensor_readings") else 0
            if n == 3:
                break
            time.sleep(0.2)
        assert n == 3, "the readings were not stored while the listener ran"
        time.sleep(0.7)
    finally:
        stop.set()
        th.join(20)
    assert result["counts"].stored == 3
    assert any(line.endswith("received 3, stored 3, rejected 0") for line in lines), lines  # the line of counts


def test_ctrl_c_stores_what_the_listener_holds(gpkg_twin, broker, publisher, prefix):
    from cim.store import open_store

    def interrupt(line: str) -> None:  # Ctrl-C arrives while three messages are held, none stored yet
        if "received 3" in line:
            raise KeyboardInterrupt

    th, holder, result = listen_in_thread(gpkg_twin, broker, f"{prefix}/+", seconds=30, flush_s=60, report_s=0.2,
                                          report=interrupt)
    for k in range(3):
        publisher.send(f"{prefix}/RL01", {"value": 1.0 + k})
    th.join(20)
    assert "error" not in result, result
    assert (result["counts"].received, result["counts"].stored) == (3, 3)
    with open_store(gpkg_twin) as st:
        assert st.read_table("sensor_readings")["value"].tolist() == [1.0, 2.0, 3.0]


def test_cli_listen_latest_and_rejects(gpkg_twin, broker, publisher, prefix):
    """The commands as a script runs them: retained messages wait on the broker for the listener."""
    runner = CliRunner()
    at = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)  # the real clock: see HOUR_AGO
    sent = [("RG01", {"value": 55.0, "time": at.astimezone(CST).isoformat()}),
            ("RL01", {"value": 1.0, "time": at.isoformat()}), ("RG02", b'"oops"')]  # retained: with a time
    for sid, payload in sent:
        publisher.send(f"{prefix}/{sid}", payload, retain=True)
    try:
        res = runner.invoke(get_app(), ["sensors", "listen", gpkg_twin, "--broker", broker, "--topic", f"{prefix}/+",
                                        "--max-messages", "3", "--seconds", "30", "--json", "--quiet"])
    finally:
        for sid, _ in sent:
            publisher.send(f"{prefix}/{sid}", b"", retain=True)  # clears the retained message
    assert res.exit_code == 0, (res.output, res.exception)
    counts = json.loads(res.stdout)
    assert (counts["received"], counts["stored"], counts["rejected"], counts["errors"]) == (3, 2, 1, [])
    res = runner.invoke(get_app(), ["sensors", "latest", gpkg_twin, "--json"])
    assert res.exit_code == 0, res.output
    latest = {r["sensor_id"]: r for r in json.loads(res.stdout)}
    assert (latest["RG01"]["value"], latest["RG01"]["status"], latest["RG01"]["time"]) == (
        55.0, "alarm", at.isoformat())
    assert latest["RL01"]["status"] == "ok" and (latest["RG02"]["value"], latest["RG02"]["status"]) == (None, "unknown")
    res = runner.invoke(get_app(), ["sensors", "latest", gpkg_twin])
    assert res.exit_code == 0 and "RG01" in res.stdout and "alarm" in res.stdout
    res = runner.invoke(get_app(), ["sensors", "rejects", gpkg_twin, "--json"])
    rejects = json.loads(res.stdout)
    assert [(r["topic"], r["payload"]) for r in rejects] == [(f"{prefix}/RG02", '"oops"')]
    assert "JSON str" in rejects[0]["reason"]
    res = runner.invoke(get_app(), ["sensors", "rejects", gpkg_twin])
    assert res.exit_code == 0 and f"{prefix}/RG02" in res.stdout


def test_cli_listen_reports_counts_unless_quiet(gpkg_twin, broker, prefix):
    res = CliRunner().invoke(get_app(), ["sensors", "listen", gpkg_twin, "--broker", broker, "--topic", f"{prefix}/+",
                                         "--seconds", "0.5"])
    assert res.exit_code == 0, res.output
    assert f"subscribed to '{prefix}/+'" in res.stderr
    assert "sensors listen: received 0, stored 0, rejected 0 in 0." in res.stdout


@pytest.mark.parametrize("args, words", [
    (["--broker", "127.0.0.1:1"], "cannot reach the MQTT broker at 127.0.0.1:1"),
    (["--broker", "127.0.0.1:notaport"], "is not host:port"),
    (["--topic", "a/#/b"], "not a valid MQTT subscription"),
])
def test_cli_listen_bad_input_is_one_clear_line(gpkg_twin, args, words, capsys):
    pytest.importorskip("paho.mqtt.client")
    from twin_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["sensors", "listen", gpkg_twin, "--seconds", "1", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize("sig, inherited_sigint", [(signal.SIGINT, signal.SIG_DFL), (signal.SIGTERM, signal.SIG_DFL),
                                                    (signal.SIGINT, signal.SIG_IGN)])
def test_a_stop_signal_stops_the_command_cleanly(gpkg_twin, broker, publisher, prefix, sig, inherited_sigint):
    """A real Ctrl-C (SIGINT) or a service manager's stop (SIGTERM) to `twin sensors listen`: it stores what it
    holds and exits 0 with its counts. SIGTERM used to kill it with its batch unstored, and a listener started in
    the background of a script (SIGINT inherited as ignored, as a shell does for `cmd &`) ignored Ctrl-C."""
    from cim.store import open_store

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "twin_core.cli", "sensors", "listen", gpkg_twin, "--broker", broker,
                             "--topic", f"{prefix}/+", "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, inherited_sigint))
    try:
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline and "subscribed to" not in line:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
        assert "subscribed to" in line, (line, proc.poll())
        for k in range(4):
            publisher.send(f"{prefix}/RG01", float(k))
        time.sleep(0.3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["stored"] == 4
    with open_store(gpkg_twin) as st:
        assert st.read_table("sensor_readings")["value"].tolist() == [0.0, 1.0, 2.0, 3.0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnBroker:
    """A Mosquitto of the test's own, to stop and start again."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log, self.proc = port, log, None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-p", str(self.port)], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.log.read_text()[-500:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def test_the_listener_reconnects_when_the_broker_drops(gpkg_twin, tmp_path):
    pytest.importorskip("paho.mqtt.client")
    if not os.path.exists(MOSQUITTO):
        _unavailable(f"no mosquitto binary ({MOSQUITTO}) to start a broker of the test's own")
    from cim.store import open_store

    port = _free_port()
    own = OwnBroker(port, tmp_path / "mosquitto.log")
    own.start()
    address = f"127.0.0.1:{port}"
    lines: list[str] = []
    stop = threading.Event()
    try:
        th, holder, result = listen_in_thread(gpkg_twin, address, "feed/+", seconds=60, stop=stop, report=lines.append,
                                              flush_s=0.2)
        pub = Publisher(address)
        pub.send("feed/RG01", 1.0)
        pub.close()
        deadline = time.time() + 10
        while holder["feed"].counts.stored < 1 and time.time() < deadline:
            time.sleep(0.1)
        own.stop()  # the broker goes away ...
        deadline = time.time() + 10
        while holder["feed"].counts.disconnects < 1 and time.time() < deadline:
            time.sleep(0.1)
        assert holder["feed"].counts.disconnects == 1, lines
        own.start()  # ... and comes back: paho reconnects, the listener subscribes again
        deadline = time.time() + 40
        while not any("connected again" in ln for ln in lines) and time.time() < deadline:
            time.sleep(0.2)
        assert any("connected again" in ln for ln in lines), lines
        pub = Publisher(address)
        pub.send("feed/RG01", 2.0)
        pub.close()
        deadline = time.time() + 10
        while holder["feed"].counts.stored < 2 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        th.join(20)
        own.stop()
    counts = result["counts"]
    assert (counts.received, counts.stored, counts.rejected, counts.disconnects) == (2, 2, 0, 1)
    assert any("the broker connection dropped" in ln for ln in lines)
    with open_store(gpkg_twin) as st:
        assert st.read_table("sensor_readings")["value"].tolist() == [1.0, 2.0]


# ------------------------------------------------------------------ acknowledged only once stored
def _forget_session(broker: str, client_id: str) -> None:
    """Remove a persistent session a test left on the shared broker (a clean start with that id)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from twin_core.sensor_feed import parse_broker

    host, port = parse_broker(broker)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    done = threading.Event()
    c.on_connect = lambda *a: done.set()
    c.connect(host, port, clean_start=True, properties=props)
    c.loop_start()
    done.wait(5)
    c.disconnect()
    c.loop_stop()


KILLED_LISTENER = """
import sys
from cim.store import open_store
from twin_core.sensor_feed import MqttFeed

target, broker, topic, client_id = sys.argv[1:5]
with open_store(target) as store:  # holds what it receives for an hour: a kill comes first
    MqttFeed(store, broker=broker, topic=topic, client_id=client_id, flush_s=3600, report_s=0.1,
             report=lambda line: print(line, flush=True)).run()
"""


def test_a_killed_listener_gets_what_it_had_not_stored_again(gpkg_twin, broker, publisher, prefix):
    """kill -9 between receiving and storing: the broker had no acknowledgement, so it sends the messages again
    when the listener comes back with the same client id; once they are stored and acknowledged, never again."""
    from cim.store import open_store

    client_id = f"rongtwin-test-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_LISTENER, gpkg_twin, broker, f"{prefix}/+", client_id],
                            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line, deadline = "", time.time() + 60
        while "subscribed to" not in line and time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert "subscribed to" in line, (line, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        at = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)  # the real clock: see HOUR_AGO
        for k in range(3):
            publisher.send(f"{prefix}/RG01", {"value": 1.0 + k,
                                              "time": (at + timedelta(minutes=k)).astimezone(CST).isoformat()})
        while "received 3," not in line and time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert "received 3, stored 0" in line, line  # held, not stored ...
        proc.kill()  # ... when the listener dies
        proc.wait(10)
        with open_store(gpkg_twin) as st:
            assert not st.has_table("sensor_readings") or st.count_rows("sensor_readings") == 0
        th, holder, result = listen_in_thread(gpkg_twin, broker, f"{prefix}/+", client_id=client_id, max_messages=3,
                                              seconds=8)
        th.join(20)
        assert "error" not in result, result
        assert (result["counts"].received, result["counts"].stored) == (3, 3), result["counts"]
        with open_store(gpkg_twin) as st:
            assert st.read_table("sensor_readings")["value"].tolist() == [1.0, 2.0, 3.0]
        # stored and acknowledged as the listener stopped: the broker sends nothing again
        th, holder, result = listen_in_thread(gpkg_twin, broker, f"{prefix}/+", client_id=client_id, seconds=1.5)
        th.join(20)
        assert result["counts"].received == 0, result["counts"]
    finally:
        if proc.poll() is None:
            proc.kill()
        _forget_session(broker, client_id)


def test_messages_the_store_refused_are_not_acknowledged(gpkg_twin, broker, publisher, prefix, monkeypatch):
    """The store fails as the listener stops: it says the messages were not stored, and the broker sends them
    again to the next listener with that client id."""
    import cim.sensors
    from cim.store import open_store
    from twin_core.errors import FeedError

    client_id = f"rongtwin-test-{uuid.uuid4().hex[:8]}"

    def broken(*a, **kw):
        raise OSError("disk full")

    try:
        monkeypatch.setattr(cim.sensors, "append_readings", broken)
        th, holder, result = listen_in_thread(gpkg_twin, broker, f"{prefix}/+", client_id=client_id,
                                              max_messages=2, seconds=20, flush_s=60)
        publisher.send(f"{prefix}/RL01", 1.5)
        publisher.send(f"{prefix}/RL01", 1.6)
        th.join(20)
        assert isinstance(result.get("error"), FeedError), result
        assert "2 messages could not be stored" in str(result["error"]) and "not acknowledged" in str(result["error"])
        monkeypatch.undo()
        th, holder, result = listen_in_thread(gpkg_twin, broker, f"{prefix}/+", client_id=client_id, max_messages=2,
                                              seconds=8)
        th.join(20)
        assert (result["counts"].received, result["counts"].stored) == (2, 2), result
        with open_store(gpkg_twin) as st:
            assert st.read_table("sensor_readings")["value"].tolist() == [1.5, 1.6]
    finally:
        _forget_session(broker, client_id)


def test_holding_acknowledgements_does_not_throttle_the_feed(gpkg_twin, broker, publisher, prefix):
    """Mosquitto sends an MQTT 3.1.1 client at most 20 unacknowledged messages; the listener asks for more (MQTT 5
    Receive Maximum), so a batch held for its second still fills."""
    th, holder, result = listen_in_thread(gpkg_twin, broker, f"{prefix}/+", max_messages=120, seconds=30, flush_s=60)
    for k in range(120):
        publisher.client.publish(f"{prefix}/RG02", str(k % 40), qos=1)
    th.join(40)
    assert "error" not in result, result
    assert (result["counts"].received, result["counts"].stored) == (120, 120)


def test_cli_listen_over_mqtt_3_1_1(gpkg_twin, broker, publisher, prefix):
    at = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    publisher.send(f"{prefix}/RG01", {"value": 7.0, "time": at}, retain=True)  # retained: with a time
    try:
        res = CliRunner().invoke(get_app(), ["sensors", "listen", gpkg_twin, "--broker", broker, "--topic",
                                             f"{prefix}/+", "--mqtt-version", "3.1.1", "--max-messages", "1",
                                             "--seconds", "20", "--json", "--quiet"])
    finally:
        publisher.send(f"{prefix}/RG01", b"", retain=True)
    assert res.exit_code == 0, (res.output, res.exception)
    assert json.loads(res.stdout)["stored"] == 1


# ------------------------------------------------------------------ login and TLS: a Mosquitto of the test's own
PASSWORD = "s3cret-pw"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_certs(d: Path) -> None:
    """A CA, a broker certificate for DNS:localhost only (so 127.0.0.1 is a wrong name) and a client one."""
    (d / "ext.cnf").write_text("[srv]\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
                               "[cli]\nextendedKeyUsage=clientAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=rongtwin test CA",
             cwd=d)
    for name, ext, cn in (("server", "srv", "localhost"), ("client", "cli", "listener")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", "ext.cnf", "-extensions", ext, cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)


class SecureBroker:
    """Mosquitto with a password file (user 'feed') on three ports: plain MQTT, TLS, and TLS that requires a
    client certificate; the certificates from :func:`_make_certs`."""

    def __init__(self, d: Path) -> None:
        import getpass

        self.dir = d
        self.plain, self.tls, self.mtls = _free_port(), _free_port(), _free_port()
        self.ca = str(d / "ca.crt")
        passwd = d / "passwd"
        subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(passwd), "feed", PASSWORD], check=True, capture_output=True,
                       timeout=30)
        certs = f"cafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n"
        (d / "mosquitto.conf").write_text(
            f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\n"
            f"password_file {passwd}\n"
            f"listener {self.plain} 127.0.0.1\n"
            f"listener {self.tls} 127.0.0.1\n{certs}"
            f"listener {self.mtls} 127.0.0.1\n{certs}require_certificate true\n")
        self.log = d / "mosquitto.log"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(d / "mosquitto.conf")], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        for port in (self.plain, self.tls, self.mtls):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or self.proc.poll() is not None:
                        self.stop()
                        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-800:]}")
                    time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    pytest.importorskip("paho.mqtt.client")
    for tool in (MOSQUITTO, MOSQUITTO_PASSWD):
        if not os.path.exists(tool):
            _unavailable(f"no {tool} to start a broker with a password file of the test's own")
    if shutil.which("openssl") is None:
        _unavailable("no openssl to make the test's certificates")
    d = tmp_path_factory.mktemp("mqtt-secure")
    _make_certs(d)
    b = SecureBroker(d)
    yield b
    b.stop()


@pytest.fixture
def password_file(tmp_path) -> str:
    f = tmp_path / "mqtt.pw"
    f.write_text(PASSWORD + "\n")
    f.chmod(0o600)
    return str(f)


def _listen(target, *args, env=None):
    """`twin sensors listen` as the console script runs it: (exit code, stdout, stderr, seconds)."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "sensors", "listen", target, *args], cwd=ROOT,
                          env={**{k: v for k, v in os.environ.items() if k != "TWIN_MQTT_PASSWORD"}, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr, time.time() - t0


def _retained(broker: str, topic: str, payload, **login) -> None:
    p = Publisher(broker, **login)
    try:
        p.send(topic, payload, retain=True)
    finally:
        p.close()


@pytest.mark.parametrize("how", ["file", "env"])
def test_listen_logs_in_with_a_password_from_a_file_or_the_environment(secure, gpkg_twin, password_file, prefix, how):
    from cim.store import open_store

    login = {"username": "feed", "password": PASSWORD}
    at = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    _retained(f"127.0.0.1:{secure.plain}", f"{prefix}/RG01", {"value": 12.5, "time": at}, **login)  # with a time
    try:
        args = ["--broker", f"127.0.0.1:{secure.plain}", "--topic", f"{prefix}/+", "--username", "feed",
                "--max-messages", "1", "--seconds", "20", "--json"]
        if how == "file":
            code, out, err, _ = _listen(gpkg_twin, *args, "--password-file", password_file)
        else:
            code, out, err, _ = _listen(gpkg_twin, *args, env={"TWIN_MQTT_PASSWORD": PASSWORD})
    finally:
        _retained(f"127.0.0.1:{secure.plain}", f"{prefix}/RG01", b"", **login)
    assert code == 0, err
    assert json.loads(out)["stored"] == 1 and PASSWORD not in out + err
    with open_store(gpkg_twin) as st:
        assert st.read_table("sensor_readings")["value"].tolist() == [12.5]


@pytest.mark.parametrize("login, words", [
    (["--username", "feed"], "did not accept the login of user 'feed': the user name or password is wrong"),
    ([], "it wants a login. Give --username and the password in $TWIN_MQTT_PASSWORD"),
])
def test_a_refused_login_is_one_line_that_says_what_to_do(secure, gpkg_twin, tmp_path, login, words):
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    code, out, err, took = _listen(gpkg_twin, "--broker", f"127.0.0.1:{secure.plain}", "--seconds", "5",
                                   *(login + ["--password-file", str(wrong)] if login else []))
    assert code == 2 and words in err and "Traceback" not in err, err
    assert "not-the-password" not in err and took < 8  # at once, not after the 10 s wait for an answer


@pytest.mark.parametrize("args, env, words", [
    (["--password", "x"], {}, "No such option: --password"),  # never on the command line
    (["--username", "feed", "--password-file", "{empty}"], {}, "is empty"),
    (["--username", "feed", "--password-file", "{missing}"], {}, "cannot read the password file"),
    (["--username", "feed", "--password-file", "{pw}"], {"TWIN_MQTT_PASSWORD": "x"}, "the password is given twice"),
    ([], {"TWIN_MQTT_PASSWORD": "x"}, "a password (TWIN_MQTT_PASSWORD) needs a user name"),
    (["--key-file", "{pw}"], {}, "give --cert-file too"),
    (["--ca-file", "{missing}"], {}, "cannot use the CA file"),
    (["--mqtt-version", "4"], {}, "'4' is not one of 5, 3.1.1"),
    (["--username", " "], {}, "the user name must be non-empty text"),
])
def test_bad_login_and_tls_settings_are_one_clear_line(gpkg_twin, tmp_path, password_file, args, env, words):
    pytest.importorskip("paho.mqtt.client")
    (tmp_path / "empty.pw").write_text("\n")
    args = [a.format(empty=tmp_path / "empty.pw", missing=tmp_path / "nope", pw=password_file) for a in args]
    code, out, err, _ = _listen(gpkg_twin, "--broker", "127.0.0.1:1", "--seconds", "1", *args, env=env)
    flat = " ".join(err.translate({ord(ch): " " for ch in "│╭╮╰╯─"}).split())  # rich boxes and wraps usage errors
    assert code == 2 and words in flat, err
    assert "Traceback" not in err


def test_a_password_file_others_may_read_is_warned_about(gpkg_twin, password_file):
    pytest.importorskip("paho.mqtt.client")
    os.chmod(password_file, 0o644)
    code, out, err, _ = _listen(gpkg_twin, "--broker", "127.0.0.1:1", "--seconds", "1", "--username", "feed",
                                "--password-file", password_file)
    assert "warning: the password file" in err and f"chmod 600 {password_file}" in err, err
    assert code == 2 and "cannot reach the MQTT broker" in err  # and then it goes on as usual


def test_a_password_sent_in_clear_to_another_host_is_warned_about(gpkg_twin):
    pytest.importorskip("paho.mqtt.client")
    from cim.store import open_store
    from twin_core.errors import TwinWarning
    from twin_core.sensor_feed import MqttFeed

    with open_store(gpkg_twin) as st:
        with pytest.warns(TwinWarning, match="goes to mqtt.example unencrypted"):
            MqttFeed(st, broker="mqtt.example", username="feed", password="x")
        feed = MqttFeed(st, broker="mqtt.example", username="feed", password="x", tls=True)
        assert (feed.port, feed.tls) == (8883, True)  # TLS's port when none is given


def test_listen_over_tls_with_a_client_certificate(secure, gpkg_twin, password_file, prefix):
    from cim.store import open_store

    login = {"username": "feed", "password": PASSWORD, "ca_file": secure.ca}
    at = (datetime.now(timezone.utc) - timedelta(hours=1)).astimezone(CST)  # the real clock: see HOUR_AGO
    _retained(f"localhost:{secure.tls}", f"{prefix}/RL01", {"value": 2.5, "time": at.isoformat(timespec="seconds")},
              **login)
    try:
        code, out, err, _ = _listen(gpkg_twin, "--broker", f"localhost:{secure.mtls}", "--ca-file", secure.ca,
                                    "--cert-file", str(secure.dir / "client.crt"), "--key-file",
                                    str(secure.dir / "client.key"), "--username", "feed", "--password-file",
                                    password_file, "--topic", f"{prefix}/+", "--max-messages", "1", "--seconds", "20",
                                    "--json")
    finally:
        _retained(f"localhost:{secure.tls}", f"{prefix}/RL01", b"", **login)
    assert code == 0, err
    assert "(TLS)" in err and json.loads(out)["stored"] == 1
    with open_store(gpkg_twin) as st:
        assert st.read_table("sensor_readings")["value"].tolist() == [2.5]


@pytest.mark.parametrize("where, args, words", [
    ("localhost:{tls}", ["--tls"], "not signed by a CA this listener trusts (self-signed certificate in certificate "
                                   "chain); give the CA that signed it with --ca-file"),
    ("127.0.0.1:{tls}", ["--ca-file", "{ca}"], "its certificate is not for '127.0.0.1'"),
    ("localhost:{plain}", ["--ca-file", "{ca}"], "is port {plain} its TLS port"),
    ("localhost:{tls}", [], "if that port takes TLS (usually 8883), add --tls"),
    # the alert may come before the EOF ("it requires a client certificate") or after it ("it may require ...")
    ("localhost:{mtls}", ["--ca-file", "{ca}"], re.compile(r"it (requires|may require) a client certificate")),
])
def test_tls_failures_say_what_is_wrong(secure, gpkg_twin, password_file, where, args, words):
    ports = {"tls": secure.tls, "plain": secure.plain, "mtls": secure.mtls, "ca": secure.ca}
    code, out, err, took = _listen(gpkg_twin, "--broker", where.format(**ports), *[a.format(**ports) for a in args],
                                   "--username", "feed", "--password-file", password_file, "--seconds", "5")
    found = words.search(err) if isinstance(words, re.Pattern) else words.format(**ports) in err
    assert code == 2 and found and "Traceback" not in err, err
    assert took < 8
