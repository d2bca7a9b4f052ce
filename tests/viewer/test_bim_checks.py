"""BIM checks recorded in the twin's store: they survive a server restart, on both stores; bad ids; who may delete."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

# a 60 m x 60 m plot in EPSG:4544 and the authored boxes that stand on it (as in tests/bim_import/conftest.py)
PARCEL = [[499980.0, 3389980.0], [500040.0, 3389980.0], [500040.0, 3390040.0], [499980.0, 3390040.0]]
RULES = {"name": "plot 7", "rules": {"max_height_m": 24, "min_setback_m": 3},
         "parcel": {"polygon": PARCEL, "parcel_id": "P-7"}}


@pytest.fixture(scope="module")
def boxes(tmp_path_factory) -> dict:
    """name -> IFC bytes: 'ok' is 3 storeys (9.3 m), 'tall' 8 storeys (24.3 m > 24 m)."""
    from bim_import.samples import BoxBuilding, write_box_building

    d = tmp_path_factory.mktemp("boxes")
    out = {}
    for name, storeys in (("ok", 3), ("tall", 8)):
        p = write_box_building(BoxBuilding(20, 10, storeys, 3.0, 500000.0, 3390000.0, name=name), d / f"{name}.ifc")
        with open(p, "rb") as fh:
            out[name] = fh.read()
    return out


@pytest.fixture
def twin_target(store_target) -> str:
    """An empty twin in EPSG:4544, a GeoPackage or a PostGIS schema."""
    from twin_core.twin import Twin

    Twin.create(store_target, crs="EPSG:4544", name="bimtest").close()
    return store_target


def _client(target: str, **settings):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    return TestClient(create_app(Settings(store=target, prewarm=False, **settings)), raise_server_exceptions=False, base_url="http://127.0.0.1")


def _post(c, name: str, data: bytes, headers=None):
    return c.post("/api/bim/checks", headers=headers or {},
                  files={"ifc": (f"{name}.ifc", data, "application/octet-stream"),
                         "rules": ("plot7.yaml", json.dumps(RULES).encode(), "text/yaml")})


def test_checks_survive_a_restart(twin_target, boxes):
    with _client(twin_target) as c:
        ok = _post(c, "ok", boxes["ok"])
        assert ok.status_code == 201, ok.text
        tall = _post(c, "tall", boxes["tall"])
        assert tall.status_code == 201, tall.text
        ok, tall = ok.json(), tall.json()
        glb = c.get(ok["glb_url"]).content
        html = c.get(tall["report_url"]).text
    assert ok["passed"] is True and tall["passed"] is False
    # a fresh app over the same store: nothing kept in memory carries over
    with _client(twin_target) as c:
        r = c.get("/api/bim/checks")
        assert r.status_code == 200 and r.headers["x-total-count"] == "2"
        listed = r.json()
        assert [x["id"] for x in listed] == [tall["id"], ok["id"]]  # newest first
        assert listed[1]["sha256"] == hashlib.sha256(boxes["ok"]).hexdigest()
        assert (listed[1]["filename"], listed[1]["ruleset"], listed[1]["ruleset_title"]) == \
            ("ok.ifc", "upload:plot7.yaml", "plot 7")
        assert listed[0]["created"] >= listed[1]["created"] and listed[0]["created"].endswith("+00:00")
        got = c.get(f"/api/bim/checks/{tall['id']}").json()
        assert got == tall
        rules = {x["rule"]: x for x in got["report"]["results"]}
        # 8 storeys of 3.0 m plus a 0.3 m roof slab = 24.3 m (bim_import.samples.BoxBuilding)
        height = rules["max_height_m"]
        assert height["measured"] == pytest.approx(24.3, abs=0.01) and height["passed"] is False
        assert got["building"]["footprint"]["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
        lon, lat = got["building"]["origin"]
        assert 104.9 < lon < 105.1 and 30.5 < lat < 30.8  # EPSG:4544 false easting 500 km = CM 105E
        assert c.get(ok["glb_url"]).content == glb and glb[:4] == b"glTF"
        r = c.get(tall["report_url"])
        assert r.text == html and "FAIL" in html and r.headers["content-type"].startswith("text/html")
        page = c.get("/api/bim/checks", params={"limit": 1, "offset": 1}).json()
        assert [x["id"] for x in page] == [ok["id"]]
        assert c.get("/api/bim/checks", params={"offset": 5}).json() == []


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"limit": -1}, {"offset": -1}, {"limit": "ten"}])
def test_listing_is_bounded(shared_client, params):
    r = shared_client.get("/api/bim/checks", params=params)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("rid", ["zzz", "0123456789abcdef", "0123456789ABCDEF", "..%5C..%5Cetc%5Cpasswd",
                                 "%27%3B%20DROP%20TABLE%20bim_checks%3B--", "%00", "x" * 3000, "%C3%A9" * 16])
@pytest.mark.parametrize("tail", ["", "/report.html", "/model.glb"])
def test_unknown_or_hostile_ids_are_404(shared_client, rid, tail):
    r = shared_client.get(f"/api/bim/checks/{rid}{tail}")
    assert r.status_code == 404, r.text
    detail = r.json()["detail"]
    assert "no BIM check" in detail and "16 hex digits" in detail and len(detail) < 300
    assert "Traceback" not in r.text


def test_path_traversal_matches_no_check(shared_client):
    for url in ("/api/bim/checks/..%2F..%2Fetc%2Fpasswd", "/api/bim/checks/../../etc/passwd",
                "/api/bim/checks/%2e%2e/report.html/model.glb"):
        r = shared_client.get(url)
        assert r.status_code == 404 and "Traceback" not in r.text and "root:" not in r.text


def test_only_admin_may_delete(city, boxes):
    from cim.store import open_store
    from viewer.auth import create_token

    with open_store(city) as st:
        tok = {role: create_token(st, role, name=role) for role in ("viewer", "regulator", "admin")}

    def h(role):
        return {"Authorization": f"Bearer {tok[role]}"}

    with _client(city) as c:
        r = _post(c, "ok", boxes["ok"], headers=h("regulator"))
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert r.json()["checked_by"].startswith("regulator:regulator")
        for role in ("viewer", "regulator"):
            r = c.delete(f"/api/bim/checks/{rid}", headers=h(role))
            assert r.status_code == 403 and "admin" in r.json()["detail"]
        assert c.get(f"/api/bim/checks/{rid}", headers=h("viewer")).status_code == 200
        assert c.delete("/api/bim/checks/0123456789abcdef", headers=h("admin")).status_code == 404
        r = c.delete(f"/api/bim/checks/{rid}", headers=h("admin"))
        assert r.status_code == 200 and r.json()["sha256"] == hashlib.sha256(boxes["ok"]).hexdigest()
        assert c.get(f"/api/bim/checks/{rid}", headers=h("viewer")).status_code == 404
        assert c.get(f"/api/bim/checks/{rid}/model.glb", headers=h("viewer")).status_code == 404
    with open_store(city) as st:
        gone = st.read_table("bim_check_deletions")
    assert gone["check_id"].tolist() == [rid] and gone["deleted_by"].iloc[0].startswith("admin:admin (token ")


def test_concurrent_checks_and_reads_share_the_store(city, boxes):
    """Checks posted at once while other handlers read: every check is recorded, once, intact."""
    with _client(city) as c:
        def post(i):
            return _post(c, f"m{i}", boxes["ok" if i % 2 else "tall"])

        def read(_):
            return c.get("/api/layers")

        with ThreadPoolExecutor(6) as ex:
            posts = [ex.submit(post, i) for i in range(4)]
            reads = [ex.submit(read, i) for i in range(8)]
            posts, reads = [f.result() for f in posts], [f.result() for f in reads]
        assert all(r.status_code == 201 for r in posts), [r.text for r in posts]
        assert all(r.status_code == 200 for r in reads)
        listed = c.get("/api/bim/checks").json()
        assert sorted(x["id"] for x in listed) == sorted(r.json()["id"] for r in posts)
        for r in posts:
            assert c.get(r.json()["report_url"]).status_code == 200
            assert c.get(r.json()["glb_url"]).content[:4] == b"glTF"


def test_failed_save_is_not_listed(city, boxes, monkeypatch):
    """The report is computed, then storing it fails: the client gets an error and nothing is half-recorded."""
    from cim.store import open_store

    import bim_import.compliance as compliance

    with _client(city) as c:
        real = compliance.ComplianceReport.to_html
        monkeypatch.setattr(compliance.ComplianceReport, "to_html",
                            lambda self, **kw: (_ for _ in ()).throw(OSError("no space left on device")))
        r = _post(c, "ok", boxes["ok"])
        assert r.status_code == 500 and "Traceback" not in r.text
        monkeypatch.setattr(compliance.ComplianceReport, "to_html", real)
        assert c.get("/api/bim/checks").json() == []
    with open_store(city) as st:
        assert len(st.list_blobs("bim_checks/")) == 0
        assert not st.has_table("bim_checks") or len(st.read_table("bim_checks")) == 0
