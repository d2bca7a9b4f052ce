"""Camera bookmarks kept in the twin (GET/POST/DELETE /api/bookmarks): every screen sees the ones a planner
saved (they used to stay in the browser that saved them); who may save and remove; bad input; both stores."""

from __future__ import annotations

import pytest

VIEW = {"longitude": 104.06, "latitude": 30.63, "zoom": 16.5, "pitch": 45, "bearing": -20}


def _client(target: str, **settings):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    return TestClient(create_app(Settings(store=target, prewarm=False, **settings)), raise_server_exceptions=False,
                      base_url="http://127.0.0.1")


@pytest.fixture
def twin_target(store_target) -> str:
    from twin_core.twin import Twin

    Twin.create(store_target, crs="EPSG:4544", name="bm").close()
    return store_target


def test_a_saved_view_is_seen_by_every_client_and_survives_a_restart(twin_target):
    with _client(twin_target) as c:
        assert c.get("/api/bookmarks").json() == []
        r = c.post("/api/bookmarks", json={"name": "九眼桥 river bend", "view": VIEW})
        assert r.status_code == 201, r.text
        b = r.json()
        assert b["name"] == "九眼桥 river bend" and b["view"] == {k: float(v) for k, v in VIEW.items()}
        c.post("/api/bookmarks", json={"name": "station forecourt", "view": dict(VIEW, zoom=18)})
    with _client(twin_target) as other:  # another screen, after a restart
        got = other.get("/api/bookmarks").json()
        assert [x["name"] for x in got] == ["九眼桥 river bend", "station forecourt"]  # oldest first
        assert got[0]["view"]["pitch"] == 45.0 and got[0]["created_by"].startswith("admin")
        assert other.delete(f"/api/bookmarks/{got[0]['id']}").status_code == 204
        assert [x["name"] for x in other.get("/api/bookmarks").json()] == ["station forecourt"]
        assert other.delete(f"/api/bookmarks/{got[0]['id']}").status_code == 404


def test_only_planners_and_admins_save_or_remove(city):
    from viewer.auth import create_token
    from cim.store import open_store

    s = open_store(city)
    try:
        tok = {role: create_token(s, role, name=role) for role in ("viewer", "planner", "regulator")}
    finally:
        s.close()
    with _client(city, auth="required") as c:
        h = {role: {"Authorization": f"Bearer {t}"} for role, t in tok.items()}
        assert c.post("/api/bookmarks", json={"name": "x", "view": VIEW}, headers=h["viewer"]).status_code == 403
        assert c.post("/api/bookmarks", json={"name": "x", "view": VIEW}, headers=h["regulator"]).status_code == 403
        r = c.post("/api/bookmarks", json={"name": "x", "view": VIEW}, headers=h["planner"])
        assert r.status_code == 201, r.text
        assert [b["name"] for b in c.get("/api/bookmarks", headers=h["viewer"]).json()] == ["x"]  # viewers see it
        assert c.delete(f"/api/bookmarks/{r.json()['id']}", headers=h["viewer"]).status_code == 403
        assert c.get("/api/bookmarks").status_code == 401  # no token, no map


@pytest.mark.parametrize("body, words", [
    ({"name": "", "view": VIEW}, "at least 1"),
    ({"name": "   ", "view": VIEW}, "blank"),
    ({"name": "a\u200bb", "view": VIEW}, "ZERO WIDTH SPACE"),
    ({"name": "a\nb", "view": VIEW}, "control"),
    ({"name": "x" * 61, "view": VIEW}, "at most 60"),
    ({"name": "x", "view": dict(VIEW, longitude=200)}, "longitude"),
    ({"name": "x", "view": dict(VIEW, latitude=89)}, "latitude"),
    ({"name": "x", "view": dict(VIEW, zoom=30)}, "zoom"),
    ({"name": "x", "view": dict(VIEW, pitch=90)}, "pitch"),
    ({"name": "x", "view": {"longitude": 104, "latitude": 30}}, "zoom"),
    ({"name": "x", "view": "here"}, "view"),
    ({"name": "x"}, "view"),
])
def test_bad_bookmarks_are_refused_and_nothing_is_kept(client, body, words):
    r = client.post("/api/bookmarks", json=body)
    assert r.status_code == 422, r.text
    assert words in r.text, r.text
    assert client.get("/api/bookmarks").json() == []


def test_non_finite_numbers_are_refused(client):
    r = client.post("/api/bookmarks", content=b'{"name": "x", "view": {"longitude": NaN, "latitude": 30, "zoom": 10}}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert client.get("/api/bookmarks").json() == []


def test_names_are_unique_and_the_list_is_bounded(client, monkeypatch):
    import viewer.routers.bookmarks as bm

    assert client.post("/api/bookmarks", json={"name": "a", "view": VIEW}).status_code == 201
    r = client.post("/api/bookmarks", json={"name": "a", "view": VIEW})
    assert r.status_code == 409 and "already called 'a'" in r.text
    monkeypatch.setattr(bm, "MAX_BOOKMARKS", 2)
    assert client.post("/api/bookmarks", json={"name": "b", "view": VIEW}).status_code == 201
    r = client.post("/api/bookmarks", json={"name": "c", "view": VIEW})
    assert r.status_code == 409 and "remove some first" in r.text
    assert [b["name"] for b in client.get("/api/bookmarks").json()] == ["a", "b"]


@pytest.mark.parametrize("bid", ["zzz", "0123456789ABCDEF", "..%2F..%2Fetc", "0123456789abcdef0"])
def test_hostile_ids_are_refused(client, bid):
    assert client.delete(f"/api/bookmarks/{bid}").status_code in (404, 422)
