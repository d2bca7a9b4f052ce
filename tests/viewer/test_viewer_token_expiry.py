"""Tokens that expire: ``create_token(..., expires_in=)``, ``twin token create --expires 30d``, list and prune.

The clock is :func:`viewer.auth._now`; the tests move it instead of sleeping.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.errors import AuthError

T0 = datetime(2026, 3, 1, 8, 0, 0, 250_000, tzinfo=timezone.utc)


class Clock:
    def __init__(self, monkeypatch, at: datetime = T0) -> None:
        import viewer.auth

        self.now = at
        monkeypatch.setattr(viewer.auth, "_now", lambda: self.now)

    def forward(self, **kw) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def store_path(store_target) -> str:
    """A twin in a GeoPackage file or a PostGIS schema (tokens live in the store's metadata in both)."""
    from twin_core.twin import Twin

    Twin.create(store_target, name="tokens").close()
    return store_target


def test_a_token_with_expires_in_stops_working_at_its_expiry(store_path, clock):
    from cim.store import open_store
    from viewer.auth import create_token, list_tokens, verify_token

    with open_store(store_path) as st:
        short = create_token(st, "planner", name="storm desk", expires_in=timedelta(minutes=90))
        forever = create_token(st, "viewer", name="wall screen")
        rec = verify_token(st, short)
        assert rec["role"] == "planner"
        # stored as an ISO-8601 UTC instant, in whole seconds and never before the time asked for
        expires = datetime.fromisoformat(rec["expires"])
        assert expires.utcoffset() == timedelta(0)
        assert expires == datetime(2026, 3, 1, 9, 30, 1, tzinfo=timezone.utc)
        assert verify_token(st, forever)["expires"] is None
        rows = {r["name"]: r for r in list_tokens(st)}
        assert rows["storm desk"]["expires"] == "2026-03-01T09:30:01+00:00" and not rows["storm desk"]["expired"]
        assert rows["wall screen"]["expires"] is None and not rows["wall screen"]["expired"]

        clock.forward(minutes=90)  # 09:30:00.25: still inside
        assert verify_token(st, short) is not None
        clock.forward(seconds=1)  # 09:30:01.25: past
        assert verify_token(st, short) is None
        assert verify_token(st, forever)["role"] == "viewer"
        rows = {r["name"]: r for r in list_tokens(st)}
        assert rows["storm desk"]["expired"] and not rows["wall screen"]["expired"]
        assert all("hash" not in r for r in rows.values())
        clock.forward(days=365 * 50)
        assert verify_token(st, forever) is not None  # no expiry: never expires


def test_tokens_from_before_expiry_existed_keep_working(store_path, clock):
    import hashlib

    from cim.store import open_store
    from viewer.auth import list_tokens, verify_token

    secret = "s" * 43
    with open_store(store_path) as st:  # a record as the earlier code wrote it: no 'expires'
        digest = hashlib.sha256(secret.encode()).hexdigest()
        st.set_meta({"token:0a1b2c3d": {"role": "admin", "name": "ops", "hash": digest,
                                        "created": "2025-01-01T00:00:00+00:00"}})
        clock.forward(days=3650)
        assert verify_token(st, f"rt_0a1b2c3d_{secret}")["role"] == "admin"
        assert list_tokens(st) == [{"id": "0a1b2c3d", "role": "admin", "name": "ops",
                                     "created": "2025-01-01T00:00:00+00:00", "expires": None, "expired": False}]


def test_an_unreadable_expiry_fails_closed(store_path, clock):
    from cim.store import open_store
    from viewer.auth import create_token, list_tokens, verify_token

    with open_store(store_path) as st:
        tok = create_token(st, "viewer", expires_in=timedelta(days=1))
        key = "token:" + tok.split("_")[1]
        st.set_meta({key: {**st.get_meta()[key], "expires": "next tuesday"}})
        assert verify_token(st, tok) is None
        assert list_tokens(st)[0]["expired"] is True


@pytest.mark.parametrize("bad, words", [
    (timedelta(0), "more than 0"), (timedelta(seconds=-5), "more than 0"),
    (timedelta(days=3654), "at most 10 years"),
])
def test_create_token_refuses_expiries_that_make_no_sense(store_path, bad, words):
    from cim.store import open_store
    from viewer.auth import create_token, list_tokens

    with open_store(store_path) as st:
        with pytest.raises(AuthError, match=words) as e:
            create_token(st, "viewer", expires_in=bad)
        assert "timedelta(days=30)" in str(e.value) and "None" in str(e.value)
        with pytest.raises(TypeError, match="timedelta"):
            create_token(st, "viewer", expires_in=30)
        assert list_tokens(st) == []  # nothing was stored


def test_an_expired_token_gets_a_401_that_says_so(city, monkeypatch):
    from fastapi.testclient import TestClient

    from cim.store import open_store
    from viewer.app import create_app
    from viewer.auth import create_token
    from viewer.settings import Settings

    clock = Clock(monkeypatch, datetime.now(timezone.utc))
    with open_store(city) as st:
        short = create_token(st, "viewer", name="visitor", expires_in=timedelta(hours=1))
        forever = create_token(st, "viewer", name="staff")
    tid = short.split("_")[1]
    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        def get(tok, **kw):
            return c.get("/api/layers", headers={"Authorization": f"Bearer {tok}"}, **kw)

        assert get(short).status_code == 200
        clock.forward(hours=1, seconds=1)
        r = get(short)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        detail = r.json()["detail"]
        assert "expired" in detail and "ask an admin for a new one" in detail and tid in detail, detail
        assert get(forever).status_code == 200
        # the page's images and job streams send the token in the URL: the same answer
        r = c.get(f"/api/layers?access_token={short}")
        assert r.status_code == 401 and "expired" in r.json()["detail"]
        # a guess learns nothing: the expired token's id with another secret, or an id that never existed
        for guess in (f"rt_{tid}_" + "x" * 43, "rt_00000000_" + "x" * 43):
            r = get(guess)
            assert r.status_code == 401 and "expired" not in r.json()["detail"], r.text
            assert "not valid" in r.json()["detail"]


# ------------------------------------------------------------------ CLI
def _cli(*args):
    return CliRunner().invoke(get_app(), [str(a) for a in args])


@pytest.mark.parametrize("text, delta", [
    ("90m", timedelta(minutes=90)), ("90min", timedelta(minutes=90)), ("12h", timedelta(hours=12)), ("30d", timedelta(days=30)),
    ("2w", timedelta(weeks=2)), ("3653d", timedelta(days=3653)), (" 1m ", timedelta(minutes=1)),
])
def test_cli_expires_takes_minutes_hours_days_weeks(store_path, clock, text, delta):
    r = _cli("token", "create", store_path, "--role", "viewer", f"--expires={text}", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    want = T0.replace(microsecond=0) + timedelta(seconds=1) + delta
    assert datetime.fromisoformat(created["expires"]) == want
    rows = json.loads(_cli("token", "list", store_path, "--json").stdout)
    assert [(x["id"], x["expires"], x["expired"]) for x in rows] == [(created["id"], want.isoformat(), False)]


@pytest.mark.parametrize("text, words", [
    ("0d", "above zero"), ("0m", "above zero"), ("-5d", "past"), ("5", "not a duration"), ("d", "not a duration"),
    ("1.5h", "not a duration"), ("5y", "not a duration"), ("30 days", "not a duration"), ("", "not a duration"),
    ("3654d", "more than 10 years"), ("522w", "more than 10 years"), ("99999999999999999999w", "more than 10 years"),
])
def test_cli_refuses_bad_expiries_naming_the_accepted_forms(store_path, text, words):
    r = _cli("token", "create", store_path, "--role", "viewer", f"--expires={text}")
    assert r.exit_code == 2, r.output
    out = " ".join(r.output.split())  # the usage error box wraps lines
    assert "--expires" in out and words in out, out
    for form in ("90m", "12h", "30d", "2w"):
        assert form in out, out
    assert json.loads(_cli("token", "list", store_path, "--json").stdout) == []  # nothing was created


def test_cli_list_shows_expiry_and_prune_removes_the_expired(store_path, clock):
    ids = {}
    for name, exp in (("staff", None), ("visitor", "1h"), ("contractor", "2d")):
        args = ["token", "create", store_path, "--role", "viewer", "--name", name, "--json"]
        r = _cli(*args, *(["--expires", exp] if exp else []))
        assert r.exit_code == 0, r.output
        ids[name] = json.loads(r.stdout)["id"]
    human = _cli("token", "create", store_path, "--role", "planner", "--name", "desk", "--expires", "12h").stdout
    assert "expires 2026-03-01T20:00:01+00:00" in human
    ids["desk"] = next(r["id"] for r in json.loads(_cli("token", "list", store_path, "--json").stdout)
                       if r["name"] == "desk")
    clock.forward(hours=13)
    rows = {r["name"]: r for r in json.loads(_cli("token", "list", store_path, "--json").stdout)}
    assert {n: r["expired"] for n, r in rows.items()} == {"staff": False, "visitor": True, "contractor": False,
                                                          "desk": True}
    listing = _cli("token", "list", store_path).stdout
    line = {n: next(ln for ln in listing.splitlines() if ln.startswith(ids[n])) for n in ids}
    assert "never" in line["staff"] and "expired" not in line["staff"]
    assert "2026-03-01T09:00:01+00:00" in line["visitor"] and "expired" in line["visitor"]
    assert "2026-03-03T08:00:01+00:00" in line["contractor"] and "expired" not in line["contractor"]

    r = _cli("token", "prune", store_path, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"removed": 2, "ids": sorted([ids["visitor"], ids["desk"]]), "left": 2}
    left = json.loads(_cli("token", "list", store_path, "--json").stdout)
    assert {r["name"] for r in left} == {"staff", "contractor"}
    r = _cli("token", "prune", store_path)
    assert r.exit_code == 0 and "no expired tokens" in r.stdout
    clock.forward(days=2)
    assert _cli("token", "revoke", store_path, ids["staff"]).exit_code == 0
    r = _cli("token", "prune", store_path)
    assert r.exit_code == 0 and "removed 1 expired token" in r.stdout, r.output
    # the last token is gone: say what that means for a server on this twin
    assert "no token is left" in r.stdout and "twin token create" in r.stdout
