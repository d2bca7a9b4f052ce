"""The map's BIM checks (fix_bim): an uploaded IDS is read once and checked in a child process held to CPU, memory
and time limits, so a slow xs:pattern the first gate misses is stopped with a 400 saying what to do; the list of
recorded checks gives each one's placement."""

from __future__ import annotations

import time

import pytest

from tests.bim_import.test_bim_fixbim import PERMIT_IDS, SLOW, ids_with_pattern


@pytest.fixture(scope="module")
def boxes(tmp_path_factory) -> dict:
    """Georeferenced sample boxes in EPSG:4544 as IFC bytes: "ok", and "aaa" whose building is named 'a' * 30."""
    from bim_import.samples import BoxBuilding, write_box_building

    d = tmp_path_factory.mktemp("fixbim")
    out = {}
    for key, name in (("ok", "ok"), ("aaa", "a" * 30)):
        p = write_box_building(BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0, name=name), d / f"{key}.ifc")
        with open(p, "rb") as fh:
            out[key] = fh.read()
    return out


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    from twin_core.twin import Twin
    from viewer.app import create_app
    from viewer.settings import Settings

    target = str(tmp_path / "twin.gpkg")
    Twin.create(target, crs="EPSG:4544", name="fixbim").close()
    with TestClient(create_app(Settings(store=target, prewarm=False)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        yield c


def _post(c, ifc: bytes, rules: bytes, rules_name: str = "names.ids", **form):
    return c.post("/api/bim/checks", data={k: str(v) for k, v in form.items()},
                  files={"ifc": ("m.ifc", ifc, "application/octet-stream"),
                         "rules": (rules_name, rules, "application/xml")})


@pytest.mark.timeout(300)
def test_a_slow_pattern_the_gate_misses_is_stopped_with_a_400(client, boxes, monkeypatch):
    """'(a|a)*b' against a 30-letter building name is 2**30 steps of backtracking (a minute and more, the GIL held:
    every request of the server waited); it passed the nested-repeat gate. Now the check's child process is
    stopped at its CPU limit and the map shows why, and nothing is recorded."""
    from bim_import import compliance

    monkeypatch.setattr(compliance, "UPLOAD_IDS_LIMITS", compliance.IdsLimits(cpu_s=1, wall_s=60))
    t = time.monotonic()
    r = _post(client, boxes["aaa"], ids_with_pattern(SLOW))
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "the IDS file 'names.ids' took more than 1 s of CPU to check against the model" in detail, detail
    assert "simplify its patterns" in detail and time.monotonic() - t < 60
    assert client.get("/api/bim/checks").headers["x-total-count"] == "0"
    # the same pattern on a name it matches at once is checked as before
    ok = _post(client, boxes["ok"], ids_with_pattern("[a-z]+"))
    assert ok.status_code == 201 and ok.json()["passed"] is True, ok.text


def test_an_uploaded_ids_is_read_once(client, boxes, monkeypatch):
    """The route read the IDS (read_ids), then the check read it again from a temporary file (load_ids)."""
    from bim_import import compliance

    calls = []
    real = compliance.read_ids
    monkeypatch.setattr(compliance, "read_ids", lambda *a, **k: calls.append(a[1:]) or real(*a, **k))
    with open(PERMIT_IDS, "rb") as fh:
        r = _post(client, boxes["ok"], fh.read(), rules_name="permit.ids")
    assert r.status_code == 201, r.text
    assert [x["rule"] for x in r.json()["report"]["results"]] == ["ids:External walls declare IsExternal",
                                                                  "ids:Doors say whether they are fire exits"]
    assert calls == [("permit.ids",)]


def test_listed_checks_carry_their_placement(client, boxes):
    """GET /api/bim/checks/{id} gave how the model was placed, the list did not."""
    placed = _post(client, boxes["ok"], b"rules: {max_height_m: 24}\nparcel: {polygon: [[499980, 3389980], "
                                        b"[500040, 3389980], [500040, 3390040], [499980, 3390040]]}\n",
                   rules_name="plot.yaml")
    assert placed.status_code == 201, placed.text
    site = _post(client, boxes["ok"], ids_with_pattern("[a-z]+"), site_lon=105.0, site_lat=30.6)
    assert site.status_code == 201, site.text
    rows = {r["id"]: r for r in client.get("/api/bim/checks").json()}
    for made in (placed.json(), site.json()):
        one = client.get(f"/api/bim/checks/{made['id']}").json()
        assert rows[made["id"]]["placement"] == one["placement"] == made["placement"] is not None
    assert rows[placed.json()["id"]]["placement"]["how"] == "map_conversion"
    assert rows[site.json()["id"]]["placement"]["how"] == "site"
