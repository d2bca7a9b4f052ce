"""MQTT readings end to end against a real broker (Mosquitto): ``twin sensors listen`` in-process, publishing with
paho to a topic prefix of the test's own.

The broker is ``TWIN_TEST_MQTT`` (default 127.0.0.1:1883). Without one the tests skip, but in CI (``CI`` set)
they fail, as the PostGIS tests do. The reconnect test starts a Mosquitto of its own on a free port.
"""

from __future__ import annotations

import json
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
    def __init__(self, broker: str) -> None:
        import paho.mqtt.client as mqtt

        from twin_core.sensor_feed import parse_broker

        host, port = parse_broker(broker)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
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
MESSAGES = [  # (sensor, payload, stored?)
    ("RG01", 12.5, True),                                                                  # a bare number
    ("RG02", {"value": 60, "time": "2026-07-01T08:00:00+08:00"}, True),                     # value and time
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
    assert readings["time"][1] == "2026-07-01T00:00:00+00:00"
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
    sent = [("RG01", {"value": 55.0, "time": "2026-07-01T08:00:00+08:00"}), ("RL01", 1.0), ("RG02", b'"oops"')]
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
        55.0, "alarm", "2026-07-01T00:00:00+00:00")
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


def test_sigint_stops_the_command_cleanly(gpkg_twin, broker, publisher, prefix):
    """A real Ctrl-C (SIGINT) to `twin sensors listen`: it stores what it holds and exits 0 with its counts."""
    from cim.store import open_store

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "twin_core.cli", "sensors", "listen", gpkg_twin, "--broker", broker,
                             "--topic", f"{prefix}/+", "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
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
        proc.send_signal(signal.SIGINT)
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
