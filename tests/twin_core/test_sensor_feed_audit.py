"""What an attacker or a broken sender can put on the feed (poison payloads, megabytes), and a subscription the
broker's ACL denies (Mosquitto grants it and delivers nothing): the listener says so, and the map can see it."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest

from tests.twin_core.test_sensor_feed import (MOSQUITTO, MOSQUITTO_PASSWD, Publisher, _free_port, _make_twin,
                                              _unavailable, listen_in_thread)

AT = datetime(2026, 7, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("payload, words", [
    (b"[" * 2000 + b"]" * 2000, "nested too deep"),      # RecursionError in json: killed the listener, again at
    (b'{"value": ' + b"[" * 1500 + b"]" * 1500 + b"}", "nested too deep"),   # each restart with --client-id
    (b"1" * 5000, "over the limit of 4096"),
])
def test_a_poison_payload_is_a_reason_never_an_exception(payload, words):
    from twin_core.sensor_feed import decode_message

    reading, why = decode_message("rongtwin/sensors/RG01", payload, AT)
    assert reading is None and words in why


def test_a_number_of_thousands_of_digits_is_said_so(monkeypatch):
    import twin_core.sensor_feed as sf

    monkeypatch.setattr(sf, "MAX_PAYLOAD", 8192)  # under a larger limit: Python will not read 4400 digits
    reading, why = sf.decode_message("rongtwin/sensors/RG01", b"9" * 4400, AT)
    assert reading is None and "thousands of digits" in why  # was 'the payload is not JSON'


def test_an_oversized_payload_is_refused_by_its_size_not_read():
    from twin_core.sensor_feed import MAX_PAYLOAD, decode_message

    reading, why = decode_message("rongtwin/sensors/RG01", b"12.5", AT, size=10 * 1024 * 1024)
    assert reading is None and "10485760 bytes" in why and str(MAX_PAYLOAD) in why
    assert decode_message("rongtwin/sensors/RG01", b"12.5", AT)[0]["value"] == 12.5


def test_poison_and_huge_messages_are_rejected_and_the_listener_runs_on(tmp_path):
    """End to end on the broker: a 10 MB message and one nested 2000 deep are rejects (the reject keeps the
    payload's head and size, not 10 MB), the good message after them is stored."""
    from cim.sensors import read_readings, read_rejects
    from cim.store import open_store
    from tests.twin_core.test_sensor_feed import BROKER

    pytest.importorskip("paho.mqtt.client")
    import socket

    from twin_core.sensor_feed import parse_broker
    try:
        socket.create_connection(parse_broker(BROKER), timeout=3).close()
    except OSError as exc:
        _unavailable(f"no MQTT broker at {BROKER} ({exc})")
    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    topic = f"rongtwin-test/{os.urandom(6).hex()}/sensors"
    th, holder, result = listen_in_thread(target, BROKER, f"{topic}/+", max_messages=3, seconds=30, flush_s=0.2)
    pub = Publisher(BROKER)
    try:
        pub.send(f"{topic}/RG01", b"x" * (10 * 1024 * 1024))
        pub.send(f"{topic}/RG01", b"[" * 2000 + b"]" * 2000)
        pub.send(f"{topic}/RG01", b"7.5")
    finally:
        pub.close()
    th.join(30)
    assert "error" not in result, result.get("error")
    c = result["counts"]
    assert (c.received, c.stored, c.rejected) == (3, 1, 2)
    with open_store(target) as st:
        rej = read_rejects(st)
        assert read_readings(st)["value"].tolist() == [7.5]
    assert rej["reason"].str.contains("nested too deep").iloc[0]
    big = rej.iloc[1]
    assert "10485760 bytes" in big["reason"] and len(big["payload"]) < 2000
    assert big["payload"].endswith("(10485760 bytes in all)")


# ------------------------------------------------------------------ a subscription that gets nothing
class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0


def _feed(store, **kw):
    from twin_core.sensor_feed import MqttFeed

    lines: list[str] = []
    feed = MqttFeed(store, topic="rongtwin/sensors/+", username="feed", warn=lines.append, **kw)
    return feed, lines


def test_a_feed_silent_while_subscribed_is_said_once_and_again_when_messages_return(tmp_path):
    from cim.sensors import read_feeds
    from cim.store import open_store

    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    with open_store(target) as st:
        feed, lines = _feed(st, silence_s=60)
        feed._live_since = 1000.0  # the subscription stands (as on_subscribe sets it)
        feed._watch(1059.0, 0)
        assert lines == [] and feed.state == "live"
        feed._watch(1061.0, 0)
        assert len(lines) == 1 and feed.state == "silent"
        assert "no message has arrived" in lines[0] and "ACL" in lines[0] and "user 'feed'" in lines[0]
        assert "mosquitto_sub" in lines[0] and "-u feed" in lines[0]
        feed._watch(5000.0, 0)
        assert len(lines) == 1  # once, not every turn of the loop
        feed._write_status()
        row = read_feeds(st).iloc[0]
        assert row["state"] == "silent" and not row["ok"] and "ACL" in row["detail"]
        feed._watch(5001.0, 3)
        assert feed.state == "live" and "arrive again" in lines[-1]
        feed._watch(5060.0, 0)
        assert len(lines) == 2  # 59 s since the last message
        feed._watch(5062.0, 0)
        assert len(lines) == 3 and "the last at" in lines[-1] and "stopped publishing" in lines[-1]


def test_no_false_alarm_while_the_broker_is_away_or_when_turned_off(tmp_path):
    from cim.store import open_store

    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    with open_store(target) as st:
        feed, lines = _feed(st, silence_s=60)
        feed._live_since = None  # disconnected: the reconnect lines say so, not this
        feed._set_state("disconnected", "reconnecting")
        feed._watch(99999.0, 0)
        feed._set_state("live")
        feed._live_since = 99990.0  # subscribed again: the silence counts from there
        feed._watch(100040.0, 0)
        assert lines == []
        off, off_lines = _feed(st, silence_s=0)
        off._live_since = 0.0
        off._watch(1e9, 0)
        assert off_lines == []
        with pytest.raises(ValueError, match="silence_s"):
            _feed(st, silence_s=-1)


def test_a_subscription_the_acl_denies_is_said_and_shown_as_silent(tmp_path):
    """A Mosquitto of the test's own whose ACL lets user 'feed' read only 'allowed/#': it grants the subscription to
    'denied/+' (MQTT 5 and 3.1.1 alike) and delivers nothing of what 'pub' publishes there."""
    import getpass

    pytest.importorskip("paho.mqtt.client")
    for tool in (MOSQUITTO, MOSQUITTO_PASSWD):
        if not os.path.exists(tool):
            _unavailable(f"no {tool} to start a broker with an ACL of the test's own")
    from cim.sensors import read_feeds, read_readings
    from cim.store import open_store

    passwd, acl, conf = tmp_path / "passwd", tmp_path / "acl", tmp_path / "mosquitto.conf"
    for user in ("feed", "pub"):
        subprocess.run([MOSQUITTO_PASSWD, "-b", *([] if passwd.exists() else ["-c"]), str(passwd), user, "pw"],
                       check=True, capture_output=True, timeout=30)
    acl.write_text("user feed\ntopic read allowed/#\n\nuser pub\ntopic write #\n")
    port = _free_port()
    conf.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {passwd}\nacl_file {acl}\n")
    log = tmp_path / "mosquitto.log"
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    address = f"127.0.0.1:{port}"
    try:
        import socket

        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.fail(f"mosquitto did not start: {log.read_text()[-500:]}")
                time.sleep(0.1)
        warned: list[str] = []
        stop = threading.Event()
        th, holder, result = listen_in_thread(target, address, "denied/+", username="feed", password="pw",
                                              seconds=30, stop=stop, flush_s=0.2, report_s=0.5, silence_s=2.0,
                                              warn=warned.append)
        pub = Publisher(address, username="pub", password="pw")
        try:
            for _ in range(5):
                pub.send("denied/RG01", 1.0)  # the broker takes it ...
                time.sleep(0.5)
        finally:
            pub.close()
        deadline = time.time() + 10
        while not warned and time.time() < deadline:
            time.sleep(0.1)
        with open_store(target) as st:
            feeds = read_feeds(st)
        stop.set()
        th.join(20)
    finally:
        proc.terminate()
        proc.wait(10)
    assert "error" not in result, result.get("error")
    assert result["counts"].received == 0  # ... and delivers nothing to 'feed'
    assert len(warned) == 1 and "may not let user 'feed' read that topic" in warned[0], warned
    assert feeds["state"].tolist() == ["silent"] and "ACL" in feeds["detail"].iloc[0]
    with open_store(target) as st:
        assert read_feeds(st)["state"].tolist() == ["stopped"]
        assert len(read_readings(st)) == 0


def test_a_message_still_queued_after_a_drop_does_not_call_a_silent_feed_live(tmp_path):
    # the silence was a flag beside the state: silent, then the broker dropped (state 'disconnected', the flag
    # still set), and a message still in the queue set the state to 'live' while the feed was disconnected
    from cim.store import open_store

    target = str(tmp_path / "feed.gpkg")
    _make_twin(target)
    with open_store(target) as st:
        feed, lines = _feed(st, silence_s=60)
        feed._live_since = 1000.0
        feed._watch(1061.0, 0)
        assert feed.state == "silent"
        feed._live_since = None
        feed._set_state("disconnected", "reconnecting")
        feed._watch(1070.0, 2)
        assert feed.state == "disconnected" and not any("arrive again" in ln for ln in lines)
