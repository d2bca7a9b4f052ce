"""Shared fixtures.

- ``pg_dsn``: a PostGIS DSN with a fresh schema per test (dropped afterwards).
  Skips on a laptop without a server; in CI (``CI`` set) it fails instead.
- ``store``: parametrised over both stores (``gpkg`` and ``postgis``).
- ``small_city``: the small sample city, built once per session.
- ``small_city_gpkg``: a copy of the small city in a GeoPackage, per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

PG_DSN = os.environ.get("TWIN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/twin_test")


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT postgis_lib_version()")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@pytest.fixture(scope="session")
def pg_server() -> str:
    why = _pg_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostGIS tests must run in CI, but {PG_DSN} is not usable: {why}")
        pytest.skip(f"no PostGIS at {PG_DSN}: {why}")
    return PG_DSN


@pytest.fixture
def pg_dsn(pg_server):
    import psycopg
    from psycopg import sql

    schema = "t_" + uuid.uuid4().hex[:12]
    yield f"{pg_server}?schema={schema}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["gpkg", "postgis"])
def store_target(request, tmp_path):
    if request.param == "gpkg":
        return str(tmp_path / "store.gpkg")
    return request.getfixturevalue("pg_dsn")


@pytest.fixture
def store(store_target):
    from cim.store import open_store

    s = open_store(store_target, create=True, crs="EPSG:4544")
    yield s
    s.close()


@pytest.fixture(scope="session")
def small_city():
    import sample_city

    return sample_city.build("small", seed=0)


@pytest.fixture(scope="session")
def _small_city_gpkg_master(tmp_path_factory, small_city):
    import sample_city

    path = tmp_path_factory.mktemp("city") / "small.gpkg"
    sample_city.build_into(str(path), city=small_city)
    return path


@pytest.fixture
def small_city_gpkg(_small_city_gpkg_master, tmp_path):
    dst = tmp_path / "small.gpkg"
    shutil.copyfile(_small_city_gpkg_master, dst)
    return str(dst)


@pytest.fixture
def python_run():
    """Run Python code in a fresh interpreter: ``python_run(code, jit=False)`` runs it under
    ``NUMBA_DISABLE_JIT=1`` (the kernels as plain Python); returns the ``CompletedProcess`` (text)."""
    def run(code: str, jit: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        env = dict(os.environ) if jit else dict(os.environ, NUMBA_DISABLE_JIT="1")
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def offline_page():
    """Open a saved HTML file in headless Chromium with every network request refused (skips without
    /usr/bin/chromium): ``with offline_page(path, settle_ms=3000) as (page, asked, errors): ...``, then
    assert on ``asked`` (the refused URLs) and ``errors`` (page errors) after the block. The page is the
    offline deck of ``twin.view()``; it is looked at once ``window.__deckReady`` and ``settle_ms`` later."""
    from contextlib import contextmanager

    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("no /usr/bin/chromium")

    @contextmanager
    def open_page(path, settle_ms: int = 3000, viewport=(900, 600)):
        from playwright.sync_api import sync_playwright

        asked: list[str] = []
        errors: list[str] = []
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=chromium,
                                   args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            try:
                ctx = b.new_context(viewport={"width": viewport[0], "height": viewport[1]})

                def route(r):
                    if r.request.url.startswith(("file://", "data:", "blob:")):
                        r.continue_()
                    else:
                        asked.append(r.request.url)
                        r.abort()

                ctx.route("**/*", route)
                page = ctx.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(path.as_uri())
                page.wait_for_function("window.__deckReady === true", timeout=30000)
                page.wait_for_timeout(settle_ms)
                yield page, asked, errors
            finally:
                b.close()

    return open_page


@pytest.fixture
def two_roads():
    """Two road links in EPSG:4544 meeting at a right angle ('a' 100 m east, 'b' 200 m north from its end),
    for small hand-made twins."""
    import geopandas as gpd
    import shapely

    return gpd.GeoDataFrame(
        {"link_id": ["a", "b"], "from_node": ["1", "2"], "to_node": ["2", "3"], "lanes": [2, 3],
         "speed_limit_kmh": [50.0, 60.0], "capacity_vph": [1800.0, 2700.0]},
        geometry=[shapely.LineString([(410000, 3395000), (410100, 3395000)]),
                  shapely.LineString([(410100, 3395000), (410100, 3395200)])], crs="EPSG:4544")


@pytest.fixture
def save_crowd_density():
    """``save_crowd_density(twin)`` stores a hand-made crowd run 'crowd-1' on the base: a density stack of
    2 times x 3 x 4 cells of 1 m at (410000, 3395000), rows from the south as the engine stores them, with
    2 persons/m2 on the southernmost row at the second time, and its grid and times in the run's summary."""
    import numpy as np

    def save(twin, run: str = "crowd-1"):
        dens = np.zeros((2, 3, 4), dtype="float32")
        dens[1, 0, :] = 2.0  # the southernmost row at the second time
        twin.save_result("base", run, "density", dens)
        twin.save_result("base", run, "summary", {"density_grid": {"x0": 410000.0, "y0": 3395000.0, "cell": 1.0,
                                                                     "nx": 4, "ny": 3},
                                                    "density_times_s": [0.0, 2.0]})

    return save
