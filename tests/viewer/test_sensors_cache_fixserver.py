"""POST /api/sensors/readings reads the sensors layer again only when it changed (cim.sensors.SensorsCache with
its sensors_marker), not for every batch: a sensor added, removed or given another range after the server
started, by the server's process or by another on the same store, still counts at once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely import Point


def _at(minutes_ago: float = 30) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


def _post(client, sid: str, value: float = 1.0):
    return client.post("/api/sensors/readings", json={"readings": [{"sensor_id": sid, "time": _at(), "value": value}]})


def _new_sensor(sid: str, **cols) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"sensor_id": [sid], "kind": ["rain_gauge"], "unit": ["mm/h"], **cols},
                            geometry=[Point(409600, 3391000)], crs="EPSG:4544")


@pytest.fixture
def counted(city, monkeypatch):
    """The app on the city, and a list that grows by one at each read of the sensors layer for the readings'
    checks (cim.sensors.known_sensors)."""
    import cim.sensors as cs
    from viewer.app import create_app
    from viewer.settings import Settings

    reads = []
    real = cs.known_sensors
    monkeypatch.setattr(cs, "known_sensors", lambda store: reads.append(1) or real(store))
    with TestClient(create_app(Settings(store=city, prewarm=False)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        yield c, reads


def test_the_sensors_layer_is_read_once_for_many_batches(counted):
    client, reads = counted
    for k in range(5):
        r = _post(client, "RG01")  # checked each time (within a second: the same reading again, already stored)
        assert r.status_code == 201, r.text
    assert len(reads) == 1  # five before: one per batch


def test_a_sensor_added_by_another_process_is_accepted_at_once(counted, city):
    from cim.store import open_store

    client, reads = counted
    assert _post(client, "RG01").status_code == 201
    r = _post(client, "NEW01")
    assert r.status_code == 422 and r.json()["unknown_sensors"] == ["NEW01"], r.text
    with open_store(city) as other:  # another connection, as `twin import` in another process would write
        other.write_layer("sensors", _new_sensor("NEW01"), mode="append")
    assert _post(client, "NEW01").status_code == 201
    # and a replace that keeps the row count (a sensor renamed in the file the layer is imported from)
    with open_store(city) as other:
        layer = other.read_layer("sensors")
        layer.loc[layer["sensor_id"] == "NEW01", "sensor_id"] = "NEW02"
        other.write_layer("sensors", layer)
    assert _post(client, "NEW02").status_code == 201
    r = _post(client, "NEW01")
    assert r.status_code == 422 and r.json()["unknown_sensors"] == ["NEW01"], r.text
    n = len(reads)
    assert _post(client, "NEW02").status_code == 201 and _post(client, "RG01").status_code == 201
    assert len(reads) == n  # still: read again only when the layer changed


def test_a_sensor_added_or_narrowed_by_the_servers_own_process(counted):
    client, reads = counted
    store = client.app.state.twin_state.store
    assert _post(client, "RG01", 80.0).status_code == 201
    store.write_layer("sensors", _new_sensor("NEW03"), mode="append")
    assert _post(client, "NEW03", 80.0).status_code == 201
    # a range given to a sensor (a replace of the layer): a value outside it is refused from then on
    layer = store.read_layer("sensors")
    layer["max_value"] = 50.0
    store.write_layer("sensors", layer)
    r = _post(client, "NEW03", 80.0)
    assert r.status_code == 422 and "above 50 mm/h, the highest plausible reading of NEW03" in r.text, r.text
    # a sensor removed: refused
    store.write_layer("sensors", layer[layer["sensor_id"] != "NEW03"])
    r = _post(client, "NEW03", 10.0)
    assert r.status_code == 422 and r.json()["unknown_sensors"] == ["NEW03"], r.text


def test_a_change_the_marker_misses_is_caught_when_a_batch_is_refused(counted, city, monkeypatch):
    """A row changed with plain SQL (the sqlite3 shell) leaves the count, the largest fid and last_change as they
    were: a batch refused on the sensors read before has them read again (at most once a second)."""
    import cim.sensors as cs

    client, reads = counted
    assert _post(client, "RG01").status_code == 201
    from cim.store import open_store

    with open_store(city) as other, other._sql_txn():  # its connection has the functions the R-tree triggers call
        other._exec("UPDATE sensors SET sensor_id = 'HAND01' WHERE sensor_id = 'TC04'")
    monkeypatch.setattr(cs, "SENSORS_RELOAD_S", 0.0, raising=False)
    n = len(reads)
    r = _post(client, "HAND01")
    assert r.status_code == 201, r.text
    assert len(reads) == n + 1
    monkeypatch.setattr(cs, "SENSORS_RELOAD_S", 3600.0, raising=False)  # a feed that keeps sending an unknown id: no read each time
    for _ in range(3):
        assert _post(client, "NOPE").status_code == 422
    assert len(reads) == n + 1


def test_the_marker_sees_appends_replaces_and_updates(store_target):
    """On both stores: the marker changes with each kind of write to the layer, and not with readings."""
    from cim.sensors import append_readings, sensors_marker
    from cim.store import open_store

    with open_store(store_target, create=True, crs="EPSG:4544") as st:
        assert sensors_marker(st) is None
        st.write_layer("sensors", _new_sensor("A1"))
        seen = [sensors_marker(st)]
        append_readings(st, [{"sensor_id": "A1", "time": _at(), "value": 1.0}])
        assert sensors_marker(st) == seen[-1]  # readings are not the layer
        st.write_layer("sensors", _new_sensor("A2"), mode="append")
        seen.append(sensors_marker(st))
        st.write_layer("sensors", _new_sensor("B1"))  # replaced, one row as at first
        seen.append(sensors_marker(st))
        if st.kind == "postgis":  # an update in place (GeoPackage: see the refused-batch test above)
            from psycopg import sql

            st.conn.execute(sql.SQL("UPDATE {} SET sensor_id = 'B2'").format(sql.Identifier(st.schema, "sensors")))
            seen.append(sensors_marker(st))
        assert len(set(seen)) == len(seen), seen
        st.delete_layer("sensors")
        assert sensors_marker(st) is None


def test_the_mqtt_listener_sees_a_sensor_removed_or_added(tmp_path):
    """`twin sensors listen` uses the same cache: it kept the sensors of its first batch for good (a sensor
    removed from the layer was still stored), reading them again only when a batch had an unknown one."""
    from cim.sensors import READINGS
    from cim.store import open_store
    from twin_core.sensor_feed import MqttFeed

    path = str(tmp_path / "feed.gpkg")
    now = datetime.now(timezone.utc)

    def msg(sid, k):
        return (f"rongtwin/sensors/{sid}", b"2.5", now, 3, k, 1, 0)

    with open_store(path, create=True, crs="EPSG:4544") as store:
        store.write_layer("sensors", _new_sensor("RG01"))
        feed = MqttFeed(store)
        assert feed._flush([msg("RG01", 0)]) and (feed.counts.stored, feed.counts.rejected) == (1, 0)
        with open_store(path) as other:  # another process replaces the layer: RG01 gone, RG02 new
            other.write_layer("sensors", _new_sensor("RG02"))
        assert feed._flush([msg("RG01", 1), msg("RG02", 2)])
        assert (feed.counts.stored, feed.counts.rejected) == (2, 1)
        assert store.read_table(READINGS)["sensor_id"].tolist() == ["RG01", "RG02"]
