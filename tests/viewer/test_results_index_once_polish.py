"""The results index (the store's meta) is read once per call by ``twin.runs()``, ``GET /api/scene`` and
:func:`twin_core.twin.describe_runs` given the index already (review leftovers, 2026-12-05): each read it once
more, for the runs' lines (``describe_runs``) and, in ``twin.runs()``, for the stale chain of used runs. Both
stores. ``twin.meta`` leaves out the store's bookkeeping, the format version among it."""

from __future__ import annotations

import time

from test_results_one_read_leftover import _client, _reads, _save
from test_viewer_stale_chain_fixstale import target  # noqa: F401  (the same small twin, on both stores)

#: the callers that read the whole index for the results (the scenarios' own meta, cim.scenario, the twin's
#: name and extent, and the store's CRS, which a layer's info or read asks for, are other reads)
_INDEX_READERS = ("cim.results", "viewer.routers.results", "viewer.scene.build_scene", "twin_core.twin.runs",
                  "twin_core.twin.describe_runs", "twin_core.twin._warn_empty_filter")


def _index_reads(seen: list[str]) -> list[str]:
    return [w for w in seen if w.startswith(_INDEX_READERS)]


def _two_runs(where) -> None:
    _save(where, "storm50", "flood", {})
    time.sleep(0.02)
    _save(where, "jam", "traffic", {"flooded_by": "storm50"})  # its stale chain needs the flood run's entries


def test_twin_runs_reads_the_results_index_once(target, monkeypatch):
    from twin_core.twin import Twin

    _two_runs(target)
    with Twin(target) as twin:
        seen = _reads(monkeypatch, target)
        runs = twin.runs()
    assert list(runs["run"]) == ["storm50", "jam"] and not runs["stale"].any()
    assert list(runs["about"]) == ["", "flooded by storm50"]  # the lines are still made from the summaries
    # was cim.results.list_results, twin_core.twin.describe_runs and cim.results.index (the stale chain)
    assert len(_index_reads(seen)) == 1, seen


def test_the_scene_reads_the_results_index_once(target, monkeypatch):
    _two_runs(target)
    with _client(target) as client:
        assert client.get("/api/scene").status_code == 200  # warm: the app's first look at the store
        seen = _reads(monkeypatch, target)
        r = client.get("/api/scene")
    assert r.status_code == 200, r.text
    got = {e["run"]: (e["stale"], e["about"]) for e in r.json()["results"]}
    assert got == {"storm50": (False, ""), "jam": (False, "flooded by storm50")}
    # was cim.results.list_results, twin_core.twin.describe_runs and cim.results.index
    assert len(_index_reads(seen)) == 1, seen


def test_the_results_listing_reads_it_once_with_the_runs_lines(target, monkeypatch):
    _two_runs(target)
    with _client(target) as client:
        assert client.get("/api/results").status_code == 200
        seen = _reads(monkeypatch, target)
        r = client.get("/api/results")
    assert r.status_code == 200, r.text
    assert {e["run"]: e["about"] for e in r.json()} == {"storm50": "", "jam": "flooded by storm50"}
    assert len(_index_reads(seen)) == 1, seen  # was viewer.routers.results and twin_core.twin.describe_runs


def test_describe_runs_given_the_index_does_not_read_it(target, monkeypatch):
    from cim.results import list_results
    from twin_core.twin import Twin, describe_runs

    _two_runs(target)
    with Twin(target) as twin:
        meta = twin.store.get_meta()
        df = list_results(twin.store, meta=meta)
        seen = _reads(monkeypatch, target)
        said = describe_runs(twin.store, df, meta=meta)
        assert seen == []
        assert said == {("base", "jam"): "flooded by storm50", ("base", "storm50"): ""}
        assert describe_runs(twin.store, df) == said  # without it: read there, once
        assert len(seen) == 1, seen


def test_twin_meta_leaves_out_the_store_bookkeeping(target):
    from cim.store.base import FORMAT_KEY, FORMAT_VERSION
    from twin_core.twin import Twin

    _two_runs(target)
    with Twin(target) as twin:
        twin.scenarios.create("works")
        twin.store.set_meta({"auth:tokens_issued": True, "source": "survey 2026"})
        everything = twin.store.get_meta()
        assert everything[FORMAT_KEY] == FORMAT_VERSION  # the stamp is there, for the store to check
        meta = twin.meta
    assert FORMAT_KEY not in meta  # was shown as if it were the city's own metadata
    assert not [k for k in meta if k.startswith(("result:", "scenario:", "token:", "auth:"))], meta
    assert meta["source"] == "survey 2026" and meta["crs"] == "EPSG:32648"  # a key a user set stays
    assert meta == {k: v for k, v in everything.items() if k in meta}
