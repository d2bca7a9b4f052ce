"""GET /api/results reads the results index (the store's meta) once for the catalogue and the stale chain of
used runs (review leftovers, 2026-12-05): the chain read it once more for a run made on a flood run."""

from __future__ import annotations

import sys
import time

from test_viewer_stale_chain_fixstale import target  # noqa: F401  (the same small twin, on both stores)

#: modules whose frames stand between a caller and the store's own get_meta (the map's locked store)
_PASS_THROUGH = ("viewer.state", "cim.store")


def _client(where):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    return TestClient(create_app(Settings(store=where)), raise_server_exceptions=False, base_url="http://127.0.0.1")


def _save(where, run: str, engine: str, summary: dict) -> None:
    from twin_core.twin import Twin

    with Twin(where) as twin:
        twin.save_result(None, run, "summary", {"engine": engine, **summary}, meta={"engine": f"simulation.{engine}"})


def _reads(monkeypatch, where) -> list[str]:
    """Who calls the store's get_meta (``module.function`` of the first frame outside the store and its lock;
    ``store.crs`` for the store's own CRS look-up, whoever asked for it)."""
    from cim.store.gpkg import GeoPackageStore
    from cim.store.postgis import PostGISStore

    cls = GeoPackageStore if where.endswith(".gpkg") else PostGISStore
    real = cls.get_meta
    seen: list[str] = []

    def get_meta(self, *a, **kw):
        f = sys._getframe(1)
        if f.f_code.co_name == "crs" and f.f_globals.get("__name__", "").startswith("cim.store"):
            seen.append("store.crs")
            return real(self, *a, **kw)
        while f is not None and f.f_globals.get("__name__", "").startswith(_PASS_THROUGH):
            f = f.f_back
        seen.append(f"{f.f_globals.get('__name__')}.{f.f_code.co_name}")
        return real(self, *a, **kw)

    monkeypatch.setattr(cls, "get_meta", get_meta)
    return seen


def test_the_results_index_is_read_once_a_request(target, monkeypatch):
    _save(target, "storm50", "flood", {})
    time.sleep(0.02)
    _save(target, "jam", "traffic", {"flooded_by": "storm50"})  # its stale chain needs the flood run's entries
    with _client(target) as client:
        assert client.get("/api/results").status_code == 200  # warm: the app's first look at the store
        seen = _reads(monkeypatch, target)
        r = client.get("/api/results")
    assert r.status_code == 200, r.text
    assert {e["run"]: e["stale"] for e in r.json()} == {"storm50": False, "jam": False}
    # the scenarios' own meta (cim.scenario) and the runs' lines (twin_core.twin.describe_runs) are other reads
    index_reads = [w for w in seen if w.startswith(("cim.results", "viewer.routers.results"))]
    assert len(index_reads) == 1, seen  # was cim.results.list_results and cim.results.index
