"""POST /api/scenarios for a name that exists: a short message a map user can act on (no Python advice)."""

from __future__ import annotations


def test_posting_an_existing_name_says_so_in_the_map_users_words(client):
    c = client
    assert c.post("/api/scenarios", json={"name": "levee_2m", "description": "a 2 m levee"}).status_code == 201
    assert c.post("/api/scenarios/levee_2m/edits", json={"op": "set_param", "key": "height_m", "value": 2}).status_code == 201
    assert c.post("/api/scenarios/levee_2m/edits", json={"op": "set_param", "key": "width_m", "value": 5}).status_code == 201
    r = c.post("/api/scenarios", json={"name": "levee_2m", "description": "another"})
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == ("a scenario 'levee_2m' exists already (2 edits); pick another name or "
                                  "delete it first")
    # nothing changed
    rows = {s["name"]: s for s in c.get("/api/scenarios").json()}
    assert rows["levee_2m"]["description"] == "a 2 m levee" and rows["levee_2m"]["edits"] == 2


def test_an_existing_name_without_edits_and_in_another_spelling(client):
    c = client
    assert c.post("/api/scenarios", json={"name": "caf\u00e9_plan"}).status_code == 201
    r = c.post("/api/scenarios", json={"name": "cafe\u0301_plan"})  # the same name in NFD
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail == "a scenario 'caf\u00e9_plan' exists already (0 edits); pick another name or delete it first"
    assert "exist_ok" not in detail and "Python" not in detail
