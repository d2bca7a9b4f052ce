"""Map server review fixes: cross-site writes refused (CSRF), a read-only twin's writes a clear 503, job
parameters a job cannot send refused up front, job ids unique across restarts, non-finite step times refused."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

EVIL = "http://evil.example"


def _app_client(store: str, **settings):
    from viewer.app import create_app
    from viewer.settings import Settings

    return TestClient(create_app(Settings(store=store, prewarm=False, **settings)), raise_server_exceptions=False,
                      base_url="http://127.0.0.1")


# -- 1. cross-site request forgery ---------------------------------------------------------------------------


def test_a_cross_site_form_post_records_no_bim_check(client, ifc_path):
    before = client.get("/api/bim/checks").json()
    with open(ifc_path, "rb") as f:
        r = client.post("/api/bim/checks", headers={"Origin": EVIL},
                        files={"ifc": ("m.ifc", f, "application/octet-stream")}, data={"ruleset": "residential_r2"})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "cross-site request refused"
    assert "evil.example" in r.json()["detail"] and "no Origin header" in r.json()["detail"]
    assert client.get("/api/bim/checks").json() == before  # nothing recorded


@pytest.mark.parametrize("headers", [
    {"Origin": EVIL},
    {"Origin": "null"},  # a sandboxed frame or a local file
    {"Origin": "http://127.0.0.1:9999"},  # another local app on another port: same site, not same origin
    {"Origin": "http://localhost"},  # another name of loopback is another origin
    {"Origin": "http://127.0.0.1:443"},  # https's port under http: another local service, not the default port
    {"Sec-Fetch-Site": "cross-site"},  # a browser that sent no Origin still says where it comes from
    {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "cross-site"},
])
def test_state_changing_requests_from_another_site_are_refused(client, headers):
    name = "x" + uuid.uuid4().hex[:6]
    assert client.post("/api/scenarios", json={"name": name}, headers=headers).status_code == 403
    assert client.put(f"/api/scenarios/{name}", json={}, headers=headers).status_code == 403
    assert client.delete("/api/scenarios/levee", headers=headers).status_code == 403
    assert client.post("/api/jobs", json={"engine": "flood"}, headers=headers).status_code == 403
    assert name not in [s["name"] for s in client.get("/api/scenarios").json()]
    assert "levee" in [s["name"] for s in client.get("/api/scenarios").json()]
    # reading is not changing: any origin may (the browser keeps the answer from the page without CORS)
    assert client.get("/api/layers", headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [
    {},  # curl, scripts, sensor bridges
    {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"},  # the map's own page
    {"Origin": "http://127.0.0.1:80"},  # the default port written out
    {"Origin": "https://127.0.0.1:443"},  # ... of https (a TLS proxy in front)
    {"Sec-Fetch-Site": "none"},  # typed by the user
])
def test_own_page_and_scripts_may_change_the_twin(client, headers):
    name = "x" + uuid.uuid4().hex[:6]
    r = client.post("/api/scenarios", json={"name": name}, headers=headers)
    assert r.status_code == 201, r.text


def test_with_tokens_too_and_an_allowed_name_is_an_origin(city):
    from cim.store import open_store
    from viewer.auth import create_token

    with open_store(city) as st:
        tok = create_token(st, "admin", name="ops")
    auth = {"Authorization": f"Bearer {tok}"}
    with _app_client(city, port=8800, allow_hosts=["twin-map.cd.gov.cn"]) as c:
        r = c.post("/api/scenarios", json={"name": "evil"}, headers={"Origin": EVIL, **auth})
        assert r.status_code == 403, r.text
        # a reverse proxy forwards https://twin-map.cd.gov.cn/ with the Host it was given or with its own
        for host in ("twin-map.cd.gov.cn", "127.0.0.1:8800"):
            r = c.post("/api/scenarios", json={"name": "p" + uuid.uuid4().hex[:6]},
                       headers={"Host": host, "Origin": "https://twin-map.cd.gov.cn", **auth})
            assert r.status_code == 201, (host, r.text)


# -- 5. non-finite times and points ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_a_non_finite_time_or_point_is_a_422_naming_it(shared_client, bad):
    c = shared_client
    base = "/api/results/base/r1/flood_depth"
    for path, query, name in ((f"{base}/image.png", f"time={bad}", "time"), (f"{base}/meta", f"time={bad}", "time"),
                              (f"{base}/value", f"lon=104.06&lat=30.65&time={bad}", "time"),
                              (f"{base}/value", f"lon={bad}&lat=30.65", "lon"),
                              ("/api/rasters/dem/value", f"lon=104.06&lat={bad}", "lat"),
                              ("/api/jobs/job-1/events", f"timeout={bad}", "timeout")):
        r = c.get(f"{path}?{query}")
        assert r.status_code == 422, (path, query, r.status_code)
        assert f"query.{name}: Input should be a finite number" in r.json()["detail"], (path, r.text)


def test_time_picks_the_step_at_or_before_it(shared_client):
    c = shared_client
    base = "/api/results/base/r1/flood_depth"  # steps at 0, 600 and 1200 s (conftest)
    for t, step in ((0, 0), (600, 1), (599.9, 0), (1199, 1), (1200, 2)):
        meta = c.get(f"{base}/meta?time={t}").json()
        assert meta["step"] == step, (t, meta)
    by_time = c.get(f"{base}/image.png?time=600")
    assert by_time.status_code == 200 and by_time.content == c.get(f"{base}/image.png?step=1").content
    for q in ("time=1800", "time=600&step=1"):
        r = c.get(f"{base}/meta?{q}")
        assert r.status_code == 400 and ("outside" in r.json()["detail"] or "not both" in r.json()["detail"]), q


# -- 3. job parameters a job cannot send ------------------------------------------------------------------------


def test_params_is_no_job_parameter(shared_client):
    c = shared_client
    r = c.post("/api/jobs", json={"engine": "flood", "params": {"strom": "50y"}})
    assert r.status_code == 400, r.text
    assert "did you mean 'storm'" in r.json()["detail"] and "'params'" not in r.json()["detail"]
    n = len(c.get("/api/jobs").json())
    for engine in ("flood", "crowd"):
        r = c.post("/api/jobs", json={"engine": engine, "params": {"duration": "10min", "params": {"bogus": 1}}
                                      if engine == "flood" else {"params": {"bogus": 1}}})
        assert r.status_code == 400, r.text  # not a 202 and a job that fails once it runs
        assert "take a Python object" in r.json()["detail"] and "job parameters instead" in r.json()["detail"]
    assert len(c.get("/api/jobs").json()) == n  # no job queued


# -- 4. job ids across restarts ---------------------------------------------------------------------------------


def test_job_ids_are_unique_across_restarts_and_an_old_one_says_why_it_is_gone(city):
    ids = []
    for _ in range(2):  # one store, the server started twice (within a second, as tests do)
        with _app_client(city) as c:
            r = c.post("/api/jobs", json={"engine": "access", "params": {"within": "5min"}})
            assert r.status_code == 202, r.text
            jid = r.json()["id"]
            assert re.fullmatch(r"job-\d{8}-\d{6}-[0-9a-f]{4}-1", jid), jid
            assert c.get(f"/api/jobs/{jid}").status_code == 200
            if ids:
                r = c.get(f"/api/jobs/{ids[-1]}")
                assert r.status_code == 404, r.text
                assert "jobs of an earlier start are not kept" in r.json()["detail"]
                assert "GET /api/results" in r.json()["detail"]
                assert c.get("/api/jobs/job-1").status_code == 404
            ids.append(jid)
    assert ids[0] != ids[1]


# -- 2. a twin the server may not write ---------------------------------------------------------------------------


@pytest.fixture
def pg_reader(pg_dsn, pg_server):
    """A sample city in PostGIS and a DSN of a role that may only read it (dropped after)."""
    import psycopg
    import sample_city
    from psycopg import sql

    sample_city.build_into(pg_dsn, "small", seed=0)
    schema = urlsplit(pg_dsn).query.split("schema=")[1]
    role = "fixapi_ro_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(role)))
    parts = urlsplit(pg_dsn)
    try:
        yield f"postgresql://{role}@{parts.netloc.rsplit('@', 1)[-1]}{parts.path}?{parts.query}"
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.postgis
def test_a_read_only_role_gets_a_503_that_says_to_connect_as_one_that_may_write(pg_reader, caplog):
    with caplog.at_level(logging.WARNING, logger="viewer"):
        with _app_client(pg_reader) as c:
            assert c.get("/api/layers").status_code == 200  # reading works
            sid = c.get("/api/sensors/latest").json()["features"][0]["properties"]["sensor_id"]
            now = datetime.now(timezone.utc).isoformat()
            for r in (c.post("/api/scenarios", json={"name": "works"}),
                      c.post("/api/bookmarks", json={"name": "b", "view": {"longitude": 104.06, "latitude": 30.65,
                                                                           "zoom": 14}}),
                      c.post("/api/sensors/readings", json={"readings": [{"sensor_id": sid, "time": now, "value": 1}]}),
                      c.post("/api/jobs", json={"engine": "access"})):  # refused now, not a job that fails
                assert r.status_code == 503, r.text
                d = r.json()["detail"]
                assert "permission denied" in d and "Connect as a role that may write" in d, d
            assert c.get("/api/jobs").json() == []
    assert any("cannot be written" in m and "may not write this twin" in m for m in caplog.messages), caplog.messages


def test_a_read_only_geopackage_is_warned_of_at_startup_and_its_writes_are_a_503(city, caplog):
    import os
    import shutil
    import stat
    import subprocess

    # as root, permission bits do not stop a write: the file is made immutable (chattr +i) instead
    as_root = os.geteuid() == 0
    if as_root and (shutil.which("chattr") is None
                    or subprocess.run(["chattr", "+i", city], capture_output=True).returncode != 0):
        pytest.skip("running as root where chattr +i is not available: cannot make the file read-only")
    mode = os.stat(city).st_mode
    if not as_root:
        os.chmod(city, stat.S_IRUSR)
    try:
        with caplog.at_level(logging.WARNING, logger="viewer"):
            with _app_client(city) as c:
                assert c.get("/api/layers").status_code == 200
                for r in (c.post("/api/scenarios", json={"name": "works"}), c.post("/api/jobs", json={"engine": "access"})):
                    assert r.status_code == 503, r.text
                    assert "read-only" in r.json()["detail"] and "nothing was changed" in r.json()["detail"]
                assert "checked before an access job started" in r.json()["detail"]
        assert any("cannot be written" in m and "read-only" in m for m in caplog.messages), caplog.messages
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", city], check=True)
        else:
            os.chmod(city, mode)
