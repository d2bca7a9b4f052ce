"""A QoS 1 message the broker delivers again (MQTT's DUP flag, after a reconnect) is not stored twice, even as a
bare number, whose time is its arrival; a new message with the same value is a new reading. Driven through the
listener's own message and disconnect handlers, no broker needed."""

from __future__ import annotations

import geopandas as gpd
import paho.mqtt.client as mqtt
import pytest
from shapely import Point

from cim.sensors import READINGS
from cim.store import open_store
from twin_core.sensor_feed import REDELIVERY_S, MqttFeed


class FakeClient:
    """Stands for the paho client the listener acknowledges through."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append((mid, qos))


@pytest.fixture
def feed(tmp_path):
    store = open_store(str(tmp_path / "feed.gpkg"), create=True, crs="EPSG:4544")
    store.write_layer("sensors", gpd.GeoDataFrame(
        {"sensor_id": ["RG01", "RG02"], "kind": ["rain_gauge"] * 2, "unit": ["mm/h"] * 2},
        geometry=[Point(409600, 3391000), Point(409700, 3391000)], crs="EPSG:4544"))
    f = MqttFeed(store)  # MQTT 5, QoS 1: acknowledged once stored
    handlers = f._client_new()  # the paho client with the listener's handlers; never connected
    f._client = FakeClient()
    f._connected = True
    f._answered.set()
    yield f, handlers
    store.close()


def _message(topic: str, payload: bytes, mid: int, *, dup: bool = False, qos: int = 1):
    msg = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    msg.payload, msg.qos, msg.dup = payload, qos, dup
    return msg


def _deliver(f, handlers, *msgs) -> list:
    for m in msgs:
        handlers.on_message(handlers, None, m)
    pending: list = []
    f._drain(pending)
    return pending


def _stored(f) -> list:
    return f.store.read_table(READINGS)["value"].tolist() if f.store.has_table(READINGS) else []


def test_a_bare_number_delivered_again_after_a_reconnect_is_stored_once(feed):
    f, handlers = feed
    pending = _deliver(f, handlers, _message("rongtwin/sensors/RG01", b"12.5", 1))
    # the connection drops while the reading is held: it is stored, but its acknowledgement cannot go out
    handlers.on_disconnect(handlers, None, None, mqtt.ReasonCode(mqtt.PacketTypes.DISCONNECT, identifier=0), None)
    assert f._flush(pending) and _stored(f) == [12.5] and f._client.acks == []
    # the broker sends it again on the new connection (DUP, the same packet id), with new messages
    pending = _deliver(f, handlers,
                       _message("rongtwin/sensors/RG01", b"12.5", 1, dup=True),   # the re-delivery
                       _message("rongtwin/sensors/RG01", b"12.5", 2),             # a new reading, the same value
                       _message("rongtwin/sensors/RG02", b"3", 3, dup=True))      # sent again, first copy lost
    assert f._flush(pending)
    assert _stored(f) == [12.5, 12.5, 3.0]  # the re-delivery is not a third reading of RG01
    assert (f.counts.stored, f.counts.already_stored) == (3, 1)
    assert f._client.acks == [(1, 1), (2, 1), (3, 1)]  # and all three are acknowledged on the new connection
    times = f.store.read_table(READINGS)["time"].tolist()
    assert len(set(times)) == 3


def test_a_duplicate_before_the_first_copy_is_stored_is_dropped_too(feed):
    """Both copies in one batch (the broker re-sent before the listener stored the first)."""
    f, handlers = feed
    pending = _deliver(f, handlers, _message("rongtwin/sensors/RG01", b'{"value": 4}', 7),
                       _message("rongtwin/sensors/RG01", b'{"value": 4}', 7, dup=True))
    assert f._flush(pending) and _stored(f) == [4.0] and f.counts.already_stored == 1


@pytest.mark.parametrize("first, again, why", [
    (("rongtwin/sensors/RG01", b"5", 9, 1), ("rongtwin/sensors/RG01", b"6", 9, 1), "another payload"),
    (("rongtwin/sensors/RG02", b"5", 9, 1), ("rongtwin/sensors/RG01", b"5", 9, 1), "another topic"),
    (("rongtwin/sensors/RG01", b"5", 9, 1), ("rongtwin/sensors/RG01", b"5", 10, 1), "another packet id"),
    (("rongtwin/sensors/RG01", b"5", 9, 0), ("rongtwin/sensors/RG01", b"5", 9, 0), "QoS 0: no packet id"),
])
def test_only_the_same_message_sent_again_counts_as_a_redelivery(feed, first, again, why):
    f, _ = feed
    topic, payload, mid, qos = first
    assert not f._redelivered(topic, payload, len(payload), mid, qos, False, now=100.0)
    topic, payload, mid, qos = again
    assert not f._redelivered(topic, payload, len(payload), mid, qos, True, now=101.0), why


def test_a_redelivery_is_recognised_within_the_window_only(feed):
    """A packet id is reused by the broker only after 65,535 others: past REDELIVERY_S, a DUP message with the id,
    topic and value of an old one is taken as a new reading (a genuine repeat is never dropped), not matched."""
    f, _ = feed
    assert not f._redelivered("t/RG01", b"5", 1, 4, 1, False, now=0.0)
    assert f._redelivered("t/RG01", b"5", 1, 4, 1, True, now=REDELIVERY_S)
    assert not f._redelivered("t/RG01", b"5", 1, 4, 1, True, now=REDELIVERY_S + 1.0)
    # the same id on a new message (dup clear) replaces the one remembered
    assert not f._redelivered("t/RG01", b"7", 1, 4, 1, False, now=REDELIVERY_S + 2.0)
    assert not f._redelivered("t/RG01", b"5", 1, 4, 1, True, now=REDELIVERY_S + 3.0)
