"""Fixtures of the viewer tests: a small sample city with results, the app, a live server."""

from __future__ import annotations

import contextlib

import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest


def asgi_post(app, path: str, headers: dict, receive) -> tuple[int, bytes]:
    """POST ``path`` straight to the ASGI ``app``, its body handed over by ``receive`` only as the app asks for it,
    as a server does (the TestClient reads a generator body whole before it sends it): (status, response body)."""
    import asyncio

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "127.0.0.1", **headers}.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "state": {}}
    out = {"status": None, "body": b""}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["body"]


def save_flood_closed_traffic_run(twin, run: str = "traffic-r9"):
    """A traffic run on the base whose every link a flood closed from 600 s to 1200 s (green, V/C 0.1,
    otherwise), with one vehicle along the first link over 0-1800 s; returns the road links."""
    import pandas as pd

    links = twin.layer("road_links")
    loads = links[["link_id", "geometry"]].copy()
    loads["vc"] = 0.1
    loads["closed"] = False
    loads["closed_from_s"] = 600.0
    loads["closed_until_s"] = 1200.0
    twin.save_result("base", run, "link_loads", loads)
    (xa, ya), (xb, yb) = np.asarray(links.geometry.values[0].coords)[[0, -1]]
    twin.save_result("base", run, "trajectories", pd.DataFrame(
        {"vehicle_id": ["v0", "v0"], "t": [0.0, 1800.0], "x": [xa, xb], "y": [ya, yb]}))
    return links


def _add_results(path: str) -> dict:
    """Flood depth steps, vehicle trips, crowd agents, link loads and a BIM building, in a real store."""
    import pandas as pd

    from bim_import.importer import import_ifc
    from bim_import.samples import BoxBuilding, write_box_building
    from twin_core.twin import Twin

    with Twin.open(path) as twin:
        dem = twin.raster("dem")
        rows, cols = dem.shape
        rr, cc = np.mgrid[0:rows, 0:cols]
        # a pond spreading from the centre, three steps of 10 minutes
        dist = np.hypot(rr - rows / 2, cc - cols / 2)
        steps = np.stack([np.clip((r - dist) / 20.0, 0, None) for r in (10.0, 50.0, 90.0)]).astype("float32")
        twin.save_result("base", "r1", "flood_depth", steps, meta={"times_s": [0, 600, 1200], "grid": "dem"})
        lev = twin.scenarios.create("levee", "a levee north of the river")
        twin.save_result("levee", "r1", "flood_depth", steps * 0.3, meta={"times_s": [0, 600, 1200], "grid": "dem"})
        links = twin.layer("road_links").head(60)
        x0, y0, x1, y1 = twin.extent
        trips = []
        for i, g in enumerate(links.geometry.values[:30]):
            pts = np.asarray(g.coords)
            for k, (x, y) in enumerate(pts):
                trips.append({"vehicle_id": f"v{i}", "t": float(k * 30 + i * 10), "x": x, "y": y})
        twin.save_result("base", "r2", "vehicle_trips", pd.DataFrame(trips))
        agents = [{"agent_id": f"a{i}", "t": float(t), "x": x0 + 300 + i * 2 + t * 0.5, "y": y0 + 400 + i}
                  for i in range(20) for t in range(0, 120, 20)]
        twin.save_result("base", "r3", "crowd_agents", pd.DataFrame(agents))
        loads = links[["link_id", "geometry"]].copy()
        loads["vc"] = np.linspace(0.1, 1.3, len(loads))
        twin.save_result("base", "r2", "link_flows", loads)
        ifc = os.path.join(os.path.dirname(path), "box.ifc")
        parcels = twin.layer("parcels")
        big = parcels.geometry.values[int(np.argmax(parcels.geometry.area.values))]
        p = big.representative_point()
        cx, cy = p.x - 10.0, p.y - 6.0  # the 20 m x 12 m box stands on the largest parcel
        write_box_building(BoxBuilding(width=20, depth=12, storeys=3, storey_height=3.0, eastings=cx, northings=cy,
                                       orthogonal_height=500.0, name="Test box"), ifc)
        import_ifc(ifc, twin.store, building_id="BIM-TEST")
        del lev
    return {"ifc": ifc}


@pytest.fixture(scope="session")
def city_template(tmp_path_factory) -> dict:
    """The small sample city (built once per session) with results; copy before changing."""
    import sample_city

    d = tmp_path_factory.mktemp("viewer_city")
    path = str(d / "small.gpkg")
    sample_city.build_into(path, "small", seed=0)
    extra = _add_results(path)
    return {"path": path, **extra}


@pytest.fixture
def city(city_template, tmp_path) -> str:
    """A private copy of the city for a test that writes."""
    dst = str(tmp_path / "city.gpkg")
    shutil.copy(city_template["path"], dst)
    return dst


@pytest.fixture(scope="session")
def ifc_path(city_template) -> str:
    return city_template["ifc"]


@pytest.fixture(scope="session")
def shared_client(city_template, tmp_path_factory):
    """One TestClient over a read-mostly copy of the city (tests that write use ``client``)."""
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    d = tmp_path_factory.mktemp("viewer_shared")
    path = str(d / "city.gpkg")
    shutil.copy(city_template["path"], path)
    with TestClient(create_app(Settings(store=path)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def client(city):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, store: str, **settings) -> None:
        import uvicorn

        from viewer.app import create_app
        from viewer.settings import Settings

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(Settings(store=store, port=self.port, **settings))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the map server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextlib.contextmanager
def private_server(city_template, tmp_path_factory, name: str, **settings):
    """A live server over a private copy of the small city, for a module whose tests write: (server, path)."""
    path = str(tmp_path_factory.mktemp(name) / "city.gpkg")
    shutil.copy(city_template["path"], path)
    with LiveServer(path, **settings) as srv:
        yield srv, path


@pytest.fixture(scope="session")
def live_server(city_template, tmp_path_factory):
    d = tmp_path_factory.mktemp("viewer_live")
    path = str(d / "city.gpkg")
    shutil.copy(city_template["path"], path)
    with LiveServer(path) as srv:
        yield srv
