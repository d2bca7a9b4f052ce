"""Recorded compliance checks (bim_import.checks) in both stores, atomic saves, and ``twin check-bim --save``."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.bim_import.conftest import PARCEL
from tests.bim_import.test_bim_compliance import EXPECTED, RULES
from twin_core.errors import LayerNotFoundError

PLOT = {"name": "test plot R2", "rules": RULES, "parcel": {"polygon": PARCEL, "parcel_id": "P-7"}}

HOSTILE = ["", "zzz", "../../etc/passwd", "'; DROP TABLE bim_checks; --", "0" * 15, "0" * 17, "A" * 16,
           "0123456789abcdeg", "0123456789abcde\x00", "0123456789abcdef\n", "%00" * 6, "x" * 10_000, "é" * 16]


def _sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_record_list_read_on_both_stores(store, boxes):
    from bim_import.checks import TABLE, check_glb, check_html, get_check, list_checks, record_check

    assert list_checks(store) == ([], 0)
    ok = record_check(store, boxes["ok"][0], PLOT, ruleset="plot7", filename="ok.ifc", checked_by="tester")
    tall = record_check(store, boxes["tall"][0], PLOT, ruleset="plot7", source="cli")
    # verdicts and measures as computed by hand in test_bim_compliance.EXPECTED
    for rec, name in ((ok, "ok"), (tall, "tall")):
        got = get_check(store, rec["check_id"])
        assert got["passed"] is all(p for _, p in EXPECTED[name].values())
        assert got["sha256"] == _sha(boxes[name][0])
        assert got["report"]["results"] == rec["report"]["results"]
        rules = {r["rule"]: r for r in got["report"]["results"]}
        for rule, (value, passed) in EXPECTED[name].items():
            assert rules[rule]["measured"] == pytest.approx(value, rel=0.01) and rules[rule]["passed"] is passed
        assert got["height_m"] == pytest.approx(EXPECTED[name]["max_height_m"][0], abs=0.01)
        assert got["crs"] == store.crs and got["parcel_id"] == "P-7"
        assert got["n_failed"] == sum(not p for _, p in EXPECTED[name].values())
    ok_rec = get_check(store, ok["check_id"])
    assert (ok_rec["filename"], ok_rec["ruleset"], ok_rec["ruleset_title"], ok_rec["checked_by"], ok_rec["source"]) \
        == ("ok.ifc", "plot7", "test plot R2", "tester", "api")
    assert ok_rec["created"].endswith("+00:00") and ok_rec["storeys"] == 3
    # the footprint is the 20 x 10 m box at (500000, 3390000) in the twin CRS
    import shapely

    fp = shapely.from_wkt(ok_rec["footprint_wkt"])
    assert fp.area == pytest.approx(200.0, rel=1e-3)
    assert fp.bounds == pytest.approx((500000.0, 3390000.0, 500020.0, 3390010.0), abs=0.01)
    html = check_html(store, tall["check_id"])
    assert "FAIL" in html and "max_height_m" in html
    assert check_glb(store, ok["check_id"])[:4] == b"glTF"
    # newest first, paginated, with the total
    rows, total = list_checks(store)
    assert total == 2 and [r["check_id"] for r in rows] == [tall["check_id"], ok["check_id"]]
    assert "report_json" not in rows[0] and rows[1]["sha256"] == _sha(boxes["ok"][0])
    assert [r["check_id"] for r in list_checks(store, limit=1, offset=1)[0]] == [ok["check_id"]]
    assert list_checks(store, limit=5, offset=9) == ([], 2)
    assert store.has_table(TABLE) and len(store.list_blobs(f"{TABLE}/")) == 4  # 2 HTML + 2 GLB


def test_unknown_and_hostile_ids_are_not_found(store, boxes):
    from bim_import.checks import TABLE, check_glb, check_html, delete_check, get_check, record_check

    with pytest.raises(LayerNotFoundError, match="no BIM check"):
        get_check(store, "0123456789abcdef")  # before any table exists
    rec = record_check(store, boxes["ok"][0], PLOT)
    cid = rec["check_id"]
    # the id with its last digit changed, and upper-cased (when it has a letter: an id of 16 digits,
    # about 1 in 1,100 uuid4 draws, is its own upper case)
    near = [cid[:-1] + ("1" if cid[-1] == "0" else "0")] + ([cid.upper()] if cid.upper() != cid else [])
    for bad in HOSTILE + ["0123456789abcdef"] + near:
        for fn in (get_check, check_html, check_glb, delete_check):
            with pytest.raises(LayerNotFoundError, match="no BIM check") as ei:
                fn(store, bad)
            assert len(str(ei.value)) < 200  # a 10 kB id is not echoed back whole
    assert len(store.read_table(TABLE)) == 1 and get_check(store, rec["check_id"])["passed"] is True


class _FailingGlb:
    """The store, except that writing a GLB blob fails (a full disk, a dropped connection)."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def put_blob(self, key, data, **kw):
        if key.endswith(".glb"):
            raise OSError("no space left on device")
        return self._store.put_blob(key, data, **kw)


def test_failed_save_leaves_nothing(store, boxes):
    from bim_import.checks import TABLE, list_checks, record_check

    with pytest.raises(OSError, match="no space"):
        record_check(_FailingGlb(store), boxes["ok"][0], PLOT)
    assert not store.has_table(TABLE) and len(store.list_blobs(f"{TABLE}/")) == 0
    first = record_check(store, boxes["ok"][0], PLOT)
    with pytest.raises(OSError, match="no space"):
        record_check(_FailingGlb(store), boxes["tall"][0], PLOT)
    rows, total = list_checks(store)
    assert total == 1 and rows[0]["check_id"] == first["check_id"]
    assert sorted(store.list_blobs(f"{TABLE}/")["key"]) == [f"{TABLE}/{first['check_id']}/model.glb",
                                                            f"{TABLE}/{first['check_id']}/report.html"]


def test_delete_removes_row_and_blobs_and_records_the_removal(store, boxes):
    from bim_import.checks import DELETIONS, TABLE, delete_check, get_check, list_checks, record_check

    a = record_check(store, boxes["ok"][0], PLOT)
    b = record_check(store, boxes["tall"][0], PLOT)
    assert delete_check(store, a["check_id"], deleted_by="admin:carol")["sha256"] == _sha(boxes["ok"][0])
    gone = store.read_table(DELETIONS)
    assert gone[["check_id", "sha256", "deleted_by"]].values.tolist() == [[a["check_id"], _sha(boxes["ok"][0]),
                                                                           "admin:carol"]]
    assert bool(gone["passed"].iloc[0]) is True and gone["deleted"].iloc[0] > gone["created"].iloc[0]
    rows, total = list_checks(store)
    assert total == 1 and rows[0]["check_id"] == b["check_id"] and rows[0]["passed"] is False
    assert get_check(store, b["check_id"])["report"]["results"] == b["report"]["results"]
    assert all(a["check_id"] not in k for k in store.list_blobs(f"{TABLE}/")["key"])
    delete_check(store, b["check_id"])
    assert list_checks(store) == ([], 0) and len(store.list_blobs(f"{TABLE}/")) == 0
    assert store.read_table(DELETIONS)["check_id"].tolist() == [a["check_id"], b["check_id"]]
    # a removal that fails half-way leaves the check and writes no deletion record
    c = record_check(store, boxes["ok"][0], PLOT)

    class FailingBlobDelete(_FailingGlb):
        def delete_blob(self, key):
            raise OSError("connection lost")

    with pytest.raises(OSError, match="connection lost"):
        delete_check(FailingBlobDelete(store), c["check_id"])
    assert get_check(store, c["check_id"])["sha256"] == _sha(boxes["ok"][0])
    assert len(store.read_table(DELETIONS)) == 2 and len(store.list_blobs(f"{TABLE}/")) == 2


def test_record_refuses_another_crs(store, boxes):
    from bim_import.checks import TABLE, record_check
    from twin_core.errors import CRSError

    with pytest.raises(CRSError, match="twin's CRS EPSG:4544"):
        record_check(store, boxes["ok"][0], PLOT, twin_crs="EPSG:32648")
    assert not store.has_table(TABLE)


def test_cli_check_bim_save(store_target, boxes, tmp_path):
    from typer.testing import CliRunner

    from bim_import.checks import check_html, get_check, list_checks
    from cim.store import open_store
    from twin_core.cli import get_app
    from twin_core.errors import StoreError

    open_store(store_target, create=True, crs="EPSG:4544").close()
    rules = tmp_path / "plot7.yaml"
    rules.write_text(json.dumps(PLOT))
    run = CliRunner()
    html = tmp_path / "r.html"
    ok = run.invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(rules), "--store", store_target,
                                "--save", "--html", str(html)])
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output and "recorded as check" in ok.output
    bad = run.invoke(get_app(), ["check-bim", boxes["dense"][0], "--rules", str(rules), "--store", store_target,
                                 "--save", "--json"])
    assert bad.exit_code == 1, bad.output
    d = json.loads(bad.stdout)
    assert {r["rule"] for r in d["results"] if not r["passed"]} == {"max_far", "max_site_coverage"}
    assert d["sha256"] == _sha(boxes["dense"][0])
    with open_store(store_target) as st:
        rows, total = list_checks(st)
        assert total == 2 and rows[0]["check_id"] == d["check_id"] and rows[0]["passed"] is False
        rec = get_check(st, rows[1]["check_id"])
        assert (rec["source"], rec["ruleset"], rec["ruleset_title"], rec["passed"]) == ("cli", "plot7", "test plot R2",
                                                                                        True)
        assert check_html(st, rec["check_id"]) == html.read_text()
    # without --save nothing is recorded; --save needs the twin; another CRS than the twin's is refused
    assert run.invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(rules), "--store", store_target]
                      ).exit_code == 0
    nostore = run.invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(rules), "--save"])
    assert isinstance(nostore.exception, StoreError) and "--store" in str(nostore.exception)
    crs = run.invoke(get_app(), ["check-bim", boxes["ok"][0], "--rules", str(rules), "--store", store_target,
                                 "--save", "--crs", "EPSG:32648"])
    assert crs.exit_code != 0 and "twin's CRS" in str(crs.exception)
    with open_store(store_target) as st:
        assert list_checks(st)[1] == 2


def test_a_recorded_check_warns_about_the_georeference_once(tmp_path, store):
    # record_check placed the model, then check_compliance placed it again: `check-bim --save` printed the
    # "outside the area of the twin CRS ... placed with the anchor" warning twice
    import warnings

    from bim_import.checks import record_check
    from bim_import.georef import Anchor
    from tests.bim_import.conftest import FZK, need

    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        record_check(store, need(FZK), PLOT, anchor=Anchor(500000.0, 3390000.0))
    placed = [w for w in got if "outside the area of the twin CRS" in str(w.message)]
    assert len(placed) == 1, [str(w.message) for w in got]


def test_cli_bim_checks_lists_shows_writes_and_deletes(store_target, boxes, tmp_path):
    """``twin bim checks``: a regulator who recorded checks with ``check-bim --save`` could list or reread them only
    from Python or the map's API."""
    from typer.testing import CliRunner

    from bim_import.checks import DELETIONS, check_glb, check_html, record_check
    from cim.store import open_store
    from twin_core.cli import get_app
    from twin_core.errors import LayerNotFoundError, TwinError

    with open_store(store_target, create=True, crs="EPSG:4544") as st:
        first = record_check(st, boxes["ok"][0], PLOT, ruleset="plot7", checked_by="li")
        second = record_check(st, boxes["dense"][0], PLOT, ruleset="plot7", checked_by="wang")
    run = CliRunner()
    app = get_app()
    listed = run.invoke(app, ["bim", "checks", store_target])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "2 recorded check(s)"
    # newest first; the time is UTC and says so (it was printed bare, as 2026-12-05T15:24:41)
    assert lines[1].split()[:6] == [second["check_id"], second["created"][:10], second["created"][11:19], "UTC",
                                    "FAIL", "(2"]
    assert lines[2].split()[:5] == [first["check_id"], first["created"][:10], first["created"][11:19], "UTC",
                                    "PASS"] and "by li" in lines[2]
    page = json.loads(run.invoke(app, ["bim", "checks", store_target, "--limit", "1", "--offset", "1", "--json"]).stdout)
    assert page["total"] == 2 and [c["check_id"] for c in page["checks"]] == [first["check_id"]]
    assert "2-2 shown" in run.invoke(app, ["bim", "checks", store_target, "--offset", "1"]).output

    html, glb = tmp_path / "r.html", tmp_path / "m.glb"
    one = run.invoke(app, ["bim", "checks", store_target, second["check_id"], "--html", str(html), "--glb", str(glb)])
    assert one.exit_code == 0, one.output
    assert one.output.startswith(f"check {second['check_id']}: FAIL, dense.ifc (sha256 {second['sha256'][:16]}")
    assert "  FAIL max_far: 1.333 (limit 1.2)" in one.output
    with open_store(store_target) as st:
        assert html.read_text() == check_html(st, second["check_id"]) and glb.read_bytes() == check_glb(
            st, second["check_id"])
    shown = json.loads(run.invoke(app, ["bim", "checks", store_target, first["check_id"], "--json"]).stdout)
    assert shown["passed"] is True and shown["report"]["parcel_id"] == "P-7"

    # bad input: a check that is not there, an id-less --html, --delete with --html; nothing is removed
    missing = run.invoke(app, ["bim", "checks", store_target, "0" * 16])
    assert isinstance(missing.exception, LayerNotFoundError) and "twin bim checks" in str(missing.exception)
    idless = run.invoke(app, ["bim", "checks", store_target, "--html", str(tmp_path / "x.html")])
    assert isinstance(idless.exception, TwinError) and "give its id" in str(idless.exception)
    both = run.invoke(app, ["bim", "checks", store_target, first["check_id"], "--delete", "--html", str(html)])
    assert isinstance(both.exception, TwinError) and "first" in str(both.exception)
    gone = run.invoke(app, ["bim", "checks", store_target, first["check_id"], "--delete"])
    assert gone.exit_code == 0 and "the removal is recorded" in gone.output
    with open_store(store_target) as st:
        assert st.read_table(DELETIONS)["check_id"].tolist() == [first["check_id"]]
    assert json.loads(run.invoke(app, ["bim", "checks", store_target, "--json"]).stdout)["total"] == 1
