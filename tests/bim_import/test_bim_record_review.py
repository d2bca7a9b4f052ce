"""Recorded checks as a regulator's record (review 2): an IDS-only check is recorded without placing the model, the
report says who checked which file (SHA-256) when, against which rule set and how the model was placed, ratios
print no unit "1", and the map's upload leads a georeference refusal with the map's own hint."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from tests.bim_import.conftest import PARCEL
from tests.bim_import.test_bim_compliance import RULES
from twin_core.errors import GeoreferenceError

PLOT = {"name": "test plot R2", "rules": RULES, "parcel": {"polygon": PARCEL, "parcel_id": "P-7"}}
PERMIT_IDS = os.path.join(os.path.dirname(__file__), "..", "..", "bim_import", "rules", "permit_minimum.ids")


def _sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _self_contained(html: str) -> None:
    """No resource the page would fetch: no src/href, no CSS url() or @import."""
    assert not re.search(r"<[^>]*\b(src|href)\s*=|url\(|@import", html, re.I), html


def test_an_ids_check_is_recorded_without_placing_the_model(store, boxes):
    """Before, record_check always placed the model: a model without georeference (or one placed elsewhere) could
    not have its IDS check recorded (GeoreferenceError), though an IDS needs no parcel."""
    from bim_import.checks import check_glb, check_html, get_check, list_checks, record_check

    path = boxes["nogeo"][0]
    rec = record_check(store, path, PERMIT_IDS, source="cli", checked_by="li")
    got = get_check(store, rec["check_id"])
    assert got["placement"]["placed"] is False and got["placement"]["how"] == "not_placed"
    assert "not placed in the city" in got["placement"]["text"] and "no IfcMapConversion" in got["placement"]["text"]
    assert got["report"]["placement"] == got["placement"]  # the report JSON says so too
    # stored with no footprint, site, height or mesh (None, not NaN: the record is plain JSON)
    assert got["footprint_wkt"] == "POLYGON EMPTY" and got["has_glb"] is False
    assert [got[k] for k in ("height_m", "ground_elev_m", "origin_x", "origin_y", "storeys")] == [None] * 5
    json.dumps(got, allow_nan=False)
    assert got["parcel_id"] == "" and got["report"]["parcel_id"] is None
    assert got["ruleset"] == "permit_minimum" and got["sha256"] == _sha(path)
    assert [r["rule"] for r in got["report"]["results"]] == ["ids:External walls declare IsExternal",
                                                             "ids:Doors say whether they are fire exits"]
    assert check_glb(store, rec["check_id"]) is None
    assert [r["check_id"] for r in list_checks(store)[0]] == [rec["check_id"]]
    html = check_html(store, rec["check_id"])
    assert "not placed in the city" in html and 'class="warn"' in html
    _self_contained(html)


def test_rules_that_need_the_site_still_refuse_an_unplaced_model(store, boxes, tmp_path):
    from bim_import.checks import TABLE, model_only, record_check
    from bim_import.compliance import RuleSet, load_rules

    with pytest.raises(GeoreferenceError, match="cannot be placed"):
        record_check(store, boxes["nogeo"][0], PLOT)
    # a rules YAML naming only an IDS takes, with the twin, the limits of the CIM parcel it stands on: placed
    only_ids = tmp_path / "only_ids.yaml"
    only_ids.write_text(json.dumps({"ids": os.path.abspath(PERMIT_IDS)}))
    assert not model_only(load_rules(only_ids)) and model_only(load_rules(PERMIT_IDS))
    assert not model_only(RuleSet.from_dict(PLOT))
    with pytest.raises(GeoreferenceError, match="cannot be placed"):
        record_check(store, boxes["nogeo"][0], only_ids)
    assert not store.has_table(TABLE) or store.count_rows(TABLE) == 0


def test_an_ids_check_of_a_placeable_model_keeps_its_placement(store, boxes):
    from bim_import.checks import get_check, record_check
    from bim_import.georef import Anchor

    own = get_check(store, record_check(store, boxes["ok"][0], PERMIT_IDS)["check_id"])
    assert own["placement"]["placed"] is True and own["placement"]["how"] == "map_conversion"
    assert "own georeference" in own["placement"]["text"] and own["footprint_wkt"] != "POLYGON EMPTY"
    assert "the model's 0,0 at 500000.00, 3390000.00 (EPSG:4544)" in own["placement"]["text"] and own["has_glb"]
    at = get_check(store, record_check(store, boxes["nogeo"][0], PERMIT_IDS, source="api",
                                       anchor=Anchor(500100.0, 3390100.0))["check_id"])
    assert at["placement"]["how"] == "site" and "picked on the map" in at["placement"]["text"]
    assert "the model's 0,0 at 500100.00, 3390100.00" in at["placement"]["text"]
    assert (at["origin_x"], at["origin_y"]) == pytest.approx((500110.0, 3390105.0))  # the footprint's centre
    cli = get_check(store, record_check(store, boxes["nogeo"][0], PLOT, source="cli",
                                        anchor=Anchor(500000.0, 3390000.0))["check_id"])
    assert cli["placement"]["how"] == "anchor" and "at the anchor given" in cli["placement"]["text"]


def test_the_recorded_report_says_what_was_checked_by_whom_when(tmp_path, boxes):
    """The HTML report named only the model and the rules: not the rule set, time, checker, file hash or placement."""
    from bim_import.checks import check_html, get_check, record_check
    from cim.store import open_store

    st = open_store(str(tmp_path / "t.gpkg"), create=True, crs="EPSG:4544")
    try:
        rec = record_check(st, boxes["dense"][0], PLOT, ruleset="plot7", filename='<img src=x onerror="alert(1)">.ifc',
                           checked_by="regulator:<b>wang</b>", source="api")
        html = check_html(st, rec["check_id"])
        got = get_check(st, rec["check_id"])
    finally:
        st.close()
    assert "test plot R2 (plot7)" in html and rec["sha256"] in html and rec["check_id"] in html
    when = rec["created"][:10] + " " + rec["created"][11:19] + " UTC"
    assert f"<th>checked</th><td>{when}</td>" in html
    assert "regulator:&lt;b&gt;wang&lt;/b&gt;, through the map server" in html  # escaped (autoescape on)
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.ifc" in html and "<img" not in html and "<b>" not in html
    assert "by the model&#39;s own georeference (IfcMapConversion" in html
    assert got["placement"]["how"] == "map_conversion"
    _self_contained(html)
    # a ratio prints no unit "1" (was "1.333 1" and "1.2 1"); metres still say m
    far = html[html.index("<td>max_far</td>"):]
    far = far[:far.index("</tr>")]
    assert "<td>1.333</td>" in far and "<td>1.2</td>" in far and " 1<" not in far
    height = html[html.index("<td>max_height_m</td>"):]
    assert "<td>12.300 m</td>" in height[:height.index("</tr>")]


def test_cli_save_of_an_ids_check_and_its_report(store_target, boxes, tmp_path):
    """`twin check-bim MODEL --rules x.ids --store G --save` failed with GeoreferenceError where the same command
    without --save passed; its --html now is the recorded page."""
    from typer.testing import CliRunner

    from bim_import.checks import check_html, get_check
    from cim.store import open_store
    from twin_core.cli import get_app

    open_store(store_target, create=True, crs="EPSG:4544").close()
    html = tmp_path / "r.html"
    run = CliRunner()
    res = run.invoke(get_app(), ["check-bim", boxes["nogeo"][0], "--rules", PERMIT_IDS, "--store", store_target,
                                 "--save", "--html", str(html)])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "recorded as check" in res.output and "not placed in the city" in res.output
    cid = re.search(r"recorded as check ([0-9a-f]{16})", res.output).group(1)
    with open_store(store_target) as st:
        assert html.read_text() == check_html(st, cid)
        assert get_check(st, cid)["source"] == "cli"
    assert "<th>by</th><td>" in html.read_text() and "with twin check-bim --save" in html.read_text()
    shown = run.invoke(get_app(), ["bim", "checks", store_target, cid])
    assert shown.exit_code == 0 and "  not placed in the city" in shown.output
    doc = json.loads(run.invoke(get_app(), ["bim", "checks", store_target, cid, "--json"]).stdout)
    assert doc["placement"]["placed"] is False and doc["origin_x"] is None


def test_the_georeference_error_splits_problem_and_what_to_fix_in_the_file(boxes):
    from bim_import.georef import georeference
    from bim_import.model import read_model

    with pytest.raises(GeoreferenceError) as ei:
        georeference(read_model(boxes["nogeo"][0]), "EPSG:4544")
    e = ei.value
    assert str(e).startswith(e.problem + ". Options:") and "anchor=Anchor" in str(e)  # Python and CLI callers
    assert "anchor" not in e.problem and "anchor" not in e.in_model and "IfcMapConversion" in e.in_model


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    from cim.store import open_store
    from viewer.app import create_app
    from viewer.settings import Settings

    path = str(tmp_path / "city.gpkg")
    open_store(path, create=True, crs="EPSG:4544").close()
    with TestClient(create_app(Settings(store=path)), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c


def test_map_upload_of_an_ids_and_its_record(client, boxes):
    """POST /api/bim/checks with an IDS and a model that does not say where it stands: 400 GeoreferenceError before;
    now recorded, without a site, and its JSON and HTML say how it was (not) placed and by whom."""
    with open(boxes["nogeo"][0], "rb") as fh:
        data = fh.read()
    with open(PERMIT_IDS, "rb") as fh:
        ids = fh.read()
    r = client.post("/api/bim/checks", files={"ifc": ("nogeo.ifc", data), "rules": ("permit.ids", ids)})
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["placement"]["placed"] is False and d["building"]["origin"] is None
    assert d["building"]["footprint"] == {"type": "FeatureCollection", "features": []} and d["glb_url"] is None
    assert d["ruleset_title"] == "RongTwin permit: minimum model information" and d["sha256"] == hashlib.sha256(
        data).hexdigest()
    assert client.get(f"/api/bim/checks/{d['id']}").json()["placement"] == d["placement"]
    assert [c["id"] for c in client.get("/api/bim/checks").json()] == [d["id"]]
    html = client.get(d["report_url"]).text
    assert d["checked_by"] and f"{d['checked_by']}, through the map server" in html.replace("&#39;", "'")
    assert "not placed in the city" in html


def test_map_upload_refusal_leads_with_the_map_hint(client, boxes):
    """The map's refusal of a model without georeference told a browser user about anchor=Anchor(...) and the CLI's
    --anchor before saying 'Pick site'."""
    with open(boxes["nogeo"][0], "rb") as fh:
        data = fh.read()
    r = client.post("/api/bim/checks", files={"ifc": ("nogeo.ifc", data)}, data={"ruleset": "residential_r2"})
    assert r.status_code == 400 and r.json()["error"] == "GeoreferenceError"
    msg = r.json()["detail"]
    assert msg.startswith("the model cannot be placed") and "anchor=Anchor" not in msg and "--anchor" not in msg
    assert msg.index("Pick site") < msg.index("site_lon") < msg.index("fix the model's file")
    assert "IfcMapConversion" in msg[msg.index("fix the model's file"):]
