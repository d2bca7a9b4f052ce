"""GET /api/sensors/latest and /alerts (the map polls both) read the sensors layer again only when it changed,
through the server's cim.sensors.SensorsCache the ingest uses (its sensors_marker): they read the whole layer on
every request before. A sensor added, renamed or moved by the server's process or another one still shows at the
next poll."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely import Point


def _at(minutes_ago: float = 1) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat(timespec="seconds")


def _new_sensor(sid: str, x: float = 409600.0, y: float = 3391000.0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"sensor_id": [sid], "kind": ["rain_gauge"], "unit": ["mm/h"], "name": [f"Gauge {sid}"],
                             "warn_threshold": [20.0], "alarm_threshold": [50.0]},
                            geometry=[Point(x, y)], crs="EPSG:4544")


def _ids(client) -> list[str]:
    r = client.get("/api/sensors/latest")
    assert r.status_code == 200, r.text
    return [f["properties"]["sensor_id"] for f in r.json()["features"]]


@pytest.fixture
def polled(city, monkeypatch):
    """The app on the city (no simulated readings), and a list that grows by one at each read of the rows of the
    sensors layer, by any route."""
    from cim.store.gpkg import GeoPackageStore
    from viewer.app import create_app
    from viewer.settings import Settings

    reads = []
    real = GeoPackageStore.read_layer

    def counting(self, name, *args, **kwargs):
        if name == "sensors" and kwargs.get("limit") != 0:  # limit=0: the column names alone
            reads.append(1)
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(GeoPackageStore, "read_layer", counting)
    with TestClient(create_app(Settings(store=city, prewarm=False, simulated_sensors=False)),
                    raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c, reads


def test_polling_reads_the_layer_once(polled):
    client, reads = polled
    for _ in range(5):
        assert client.get("/api/sensors/latest").status_code == 200
        assert client.get("/api/sensors/alerts").status_code == 200
    assert client.get("/api/sensors/feeds").status_code == 200  # these two do not read the layer at all
    assert client.get("/api/sensors/rejects").status_code == 200
    assert len(reads) == 1, reads  # ten before: one per request
    # batches in between (same cache): the first reads the sensors for its checks (the map's view is made again
    # with them, once), then neither the batches nor the polls read anything
    for k in range(4):
        r = client.post("/api/sensors/readings", json={"readings": [{"sensor_id": "RG01", "time": _at(), "value": 1.0}]})
        assert r.status_code == 201, r.text
        assert client.get("/api/sensors/latest").status_code == 200
        assert client.get("/api/sensors/alerts").status_code == 200
    assert len(reads) == 3, reads


def test_a_sensor_added_by_another_process_shows_at_the_next_poll(polled, city):
    from cim.store import open_store

    client, reads = polled
    before = _ids(client)
    assert "NEW01" not in before and client.get("/api/sensors/alerts").json()["count"] == 0
    with open_store(city) as other:  # another connection, as `twin import` in another process would write
        other.write_layer("sensors", _new_sensor("NEW01"), mode="append")
    assert _ids(client) == before + ["NEW01"]
    r = client.post("/api/sensors/readings", json={"readings": [{"sensor_id": "NEW01", "time": _at(), "value": 60.0}]})
    assert r.status_code == 201, r.text
    feat = {f["properties"]["sensor_id"]: f for f in client.get("/api/sensors/latest").json()["features"]}["NEW01"]
    assert feat["properties"]["value"] == 60.0 and feat["properties"]["status"] == "alarm"
    lon, lat = feat["geometry"]["coordinates"]
    alerts = client.get("/api/sensors/alerts").json()["alerts"]
    assert [(a["sensor_id"], a["status"], a["name"]) for a in alerts] == [("NEW01", "alarm", "Gauge NEW01")]
    assert (alerts[0]["lon"], alerts[0]["lat"]) == (round(lon, 7), round(lat, 7))
    # a replace that keeps the row count: the sensor renamed and moved 500 m east
    with open_store(city) as other:
        layer = other.read_layer("sensors")
        at = layer["sensor_id"] == "NEW01"
        layer.loc[at, "sensor_id"] = "NEW02"
        layer.loc[at, "name"] = "Gauge NEW02"
        layer.loc[at, "geometry"] = Point(410100.0, 3391000.0)
        other.write_layer("sensors", layer)
    ids = _ids(client)
    assert "NEW02" in ids and "NEW01" not in ids
    r = client.post("/api/sensors/readings", json={"readings": [{"sensor_id": "NEW02", "time": _at(), "value": 55.0}]})
    assert r.status_code == 201, r.text
    moved = client.get("/api/sensors/alerts").json()["alerts"]
    assert [(a["sensor_id"], a["name"]) for a in moved] == [("NEW02", "Gauge NEW02")]
    assert moved[0]["lon"] > alerts[0]["lon"]
    n = len(reads)
    _ids(client)
    client.get("/api/sensors/alerts")
    assert len(reads) == n  # and read again only then


def test_a_sensor_added_by_the_servers_own_process_shows_at_the_next_poll(polled):
    client, _ = polled
    before = _ids(client)
    client.app.state.twin_state.store.write_layer("sensors", _new_sensor("NEW03"), mode="append")
    assert _ids(client) == before + ["NEW03"]


def test_a_change_the_marker_misses_shows_once_a_batch_has_the_layer_read_again(polled, city, monkeypatch):
    """A row changed with plain SQL leaves the GeoPackage marker as it was; a batch refused for the unknown sensor
    has the layer read again (cim.sensors.SensorsCache.reload), and the map sees it then too, not a minute later."""
    import cim.sensors as cs
    from cim.store import open_store

    client, _ = polled
    assert "HAND01" not in _ids(client)
    with open_store(city) as other, other._sql_txn():  # its connection has the functions the R-tree triggers call
        other._exec("UPDATE sensors SET sensor_id = 'HAND01' WHERE sensor_id = 'TC04'")
    assert "HAND01" not in _ids(client)  # the marker has not moved: the layer as read before
    monkeypatch.setattr(cs, "SENSORS_RELOAD_S", 0.0)
    r = client.post("/api/sensors/readings", json={"readings": [{"sensor_id": "HAND01", "time": _at(), "value": 1.0}]})
    assert r.status_code == 201, r.text
    ids = _ids(client)
    assert "HAND01" in ids and "TC04" not in ids
