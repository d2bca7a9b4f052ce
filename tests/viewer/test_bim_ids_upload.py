"""A regulator uploads an IDS file (buildingSMART Information Delivery Specification) as the rules of a BIM check.

POST /api/bim/checks takes a ``.ids`` in the ``rules`` field: its information requirements are checked as
``twin bim check --rules x.ids`` checks them. The XML is not trusted: a DTD, entity or external reference is
refused before anything reads it (XXE, billion laughs), nothing is fetched, an XML that is not a valid IDS says
why, and a file over the limit is refused; none of these records a check.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
from test_viewer_browser import browser  # noqa: F401  (the module's Chromium fixture)

PERMIT_IDS = os.path.join(os.path.dirname(__import__("bim_import").__file__), "rules", "permit_minimum.ids")
IFC_DIR = os.environ.get("TWIN_IFC_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "ifc"))
FZK = os.path.join(IFC_DIR, "AC20-FZK-Haus.ifc")
IDS_NS = "http://standards.buildingsmart.org/IDS"
#: a minimal valid IDS body after the root's start tag (one requirement the sample boxes' doors meet)
BODY = ("<info><title>{title}</title></info><specifications>"
        "<specification name=\"Doors say whether they are fire exits\" ifcVersion=\"IFC2X3 IFC4\">"
        "<applicability minOccurs=\"0\" maxOccurs=\"unbounded\"><entity><name><simpleValue>IFCDOOR</simpleValue>"
        "</name></entity></applicability><requirements><property dataType=\"IFCBOOLEAN\" cardinality=\"required\">"
        "<propertySet><simpleValue>Pset_DoorCommon</simpleValue></propertySet><baseName><simpleValue>FireExit"
        "</simpleValue></baseName></property></requirements></specification></specifications></ids>")


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> bytes:
    """A georeferenced 3-storey box in EPSG:4544 (bim_import.samples), as IFC bytes."""
    from bim_import.samples import BoxBuilding, write_box_building

    p = write_box_building(BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0, name="ok"),
                           tmp_path_factory.mktemp("ids-box") / "ok.ifc")
    with open(p, "rb") as fh:
        return fh.read()


@pytest.fixture
def twin(tmp_path) -> str:
    """An empty twin in EPSG:4544 (a GeoPackage)."""
    from twin_core.twin import Twin

    target = str(tmp_path / "twin.gpkg")
    Twin.create(target, crs="EPSG:4544", name="idstest").close()
    return target


@pytest.fixture
def client(twin):
    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=twin, prewarm=False)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every attempt to open a connection or look up a host, recorded and refused; a local (AF_UNIX) socket, which
    reaches no network, is let through (the forkserver that starts the IDS check's child process listens on one)."""
    tried = []
    connect = socket.socket.connect

    def refuse(*args, **kwargs):
        tried.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect",
                        lambda self, *a: connect(self, *a) if self.family == socket.AF_UNIX else refuse(*a))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return tried


def _post(c, ifc: bytes, rules: bytes, rules_name: str = "permit.ids", ifc_name: str = "ok.ifc", **form):
    return c.post("/api/bim/checks", data={k: str(v) for k, v in form.items()},
                  files={"ifc": (ifc_name, ifc, "application/octet-stream"),
                         "rules": (rules_name, rules, "application/xml")})


def _nothing_stored(c, twin: str, *secrets: bytes) -> None:
    r = c.get("/api/bim/checks")
    assert r.status_code == 200 and r.headers["x-total-count"] == "0" and r.json() == []
    with open(twin, "rb") as fh:
        stored = fh.read()
    for s in secrets:
        assert s not in stored


def _ids(title: str = "uploaded", head: str = "", attrs: str = "") -> bytes:
    return (f"<?xml version='1.0' encoding='utf-8'?>\n{head}<ids xmlns=\"{IDS_NS}\"{attrs}>"
            + BODY.format(title=title)).encode()


def _verdicts(results) -> list:
    return [(x["rule"], x["passed"], x["measured"], x["limit"], sorted(x["offending"])) for x in results]


def test_an_uploaded_ids_checks_the_model_as_the_cli_does(client, twin):
    """FZK-Haus against the shipped permit IDS, placed on the map: 13 walls without IsExternal fail, 1 of 5 doors
    says FireExit; the record, the report JSON and the HTML say what ``twin bim check --rules x.ids`` says."""
    from bim_import.compliance import check_compliance, load_rules

    if not os.path.isfile(FZK):
        pytest.skip(f"no AC20-FZK-Haus.ifc in {IFC_DIR} (set TWIN_IFC_DIR to the real IFC models)")
    cli = check_compliance(FZK, load_rules(PERMIT_IDS)).to_dict()
    with open(FZK, "rb") as fh:
        ifc = fh.read()
    with open(PERMIT_IDS, "rb") as fh:
        ids = fh.read()
    r = _post(client, ifc, ids, ifc_name="AC20-FZK-Haus.ifc", site_lon=105.0, site_lat=30.6)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["passed"] is False and cli["passed"] is False
    assert _verdicts(got["report"]["results"]) == _verdicts(cli["results"])
    assert [x["rule"] for x in got["report"]["results"]] == ["ids:External walls declare IsExternal",
                                                             "ids:Doors say whether they are fire exits"]
    assert (got["ruleset"], got["ruleset_title"]) == ("upload:permit.ids", "RongTwin permit: minimum model information")
    assert got["n_failed"] == 2
    listed = client.get("/api/bim/checks").json()
    assert [x["id"] for x in listed] == [got["id"]] and listed[0]["ruleset"] == "upload:permit.ids"
    html = client.get(got["report_url"]).text
    assert "External walls declare IsExternal" in html and "Doors say whether they are fire exits" in html
    assert "FAIL" in html


def test_an_ids_recognised_by_its_xml_whatever_its_name(client, box):
    """A rules upload that is XML is read as an IDS (a rules YAML is a mapping and never starts with '<')."""
    r = _post(client, box, _ids("doors"), rules_name="requirements.txt")
    assert r.status_code == 201, r.text
    assert r.json()["passed"] is True and r.json()["ruleset"] == "upload:requirements.txt"
    assert [x["rule"] for x in r.json()["report"]["results"]] == ["ids:Doors say whether they are fire exits"]


def test_xxe_reading_a_local_file_is_refused_and_the_file_never_shows(client, twin, box, tmp_path):
    secret = f"TOPSECRET-{os.getpid()}-{time.time_ns()}"
    path = tmp_path / "secret.txt"
    path.write_text(secret)
    uri = path.as_uri()
    payloads = [
        _ids(title="&x;", head=f"<!DOCTYPE ids [<!ENTITY x SYSTEM \"{uri}\">]>\n"),
        _ids(title="&x;", head=f"<!DOCTYPE ids [<!ENTITY % p SYSTEM \"{uri}\"> %p; <!ENTITY x \"y\">]>\n"),
        _ids(title="&x;", head=f"<!DOCTYPE ids SYSTEM \"{uri}\">\n"),
    ]
    for p in payloads:
        r = _post(client, box, p, rules_name="evil.ids")
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert "refused" in detail and "DTD" in detail and "remove the <!DOCTYPE" in detail, detail
        assert secret not in r.text and str(path) not in r.text
    # XInclude is not processed either: the element is not IDS, and the file stays unread
    xi = _ids(attrs=" xmlns:xi=\"http://www.w3.org/2001/XInclude\"").replace(
        b"<title>uploaded</title>", f"<title><xi:include href=\"{uri}\" parse=\"text\"/></title>".encode())
    r = _post(client, box, xi, rules_name="evil.ids")
    assert r.status_code == 400 and "not a valid IDS" in r.json()["detail"] and secret not in r.text, r.text
    _nothing_stored(client, twin, secret.encode())


def test_the_cli_refuses_an_xxe_ids_too(box, tmp_path):
    """``twin bim check --rules evil.ids`` reads the IDS the same way (bim_import.compliance.load_ids)."""
    from bim_import.compliance import check_compliance
    from twin_core.errors import RuleError

    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    ifc, ids = tmp_path / "ok.ifc", tmp_path / "evil.ids"
    ifc.write_bytes(box)
    ids.write_bytes(_ids(title="&x;", head=f"<!DOCTYPE ids [<!ENTITY x SYSTEM \"{secret.as_uri()}\">]>\n"))
    with pytest.raises(RuleError, match=r"evil\.ids' is refused: it has a DTD") as err:
        check_compliance(str(ifc), str(ids))
    assert "TOPSECRET" not in str(err.value)


def test_billion_laughs_is_refused_at_once(client, twin, box):
    lol = "<!DOCTYPE ids [<!ENTITY lol \"lol\">" + "".join(
        f"<!ENTITY lol{i} \"{('&lol' + (str(i - 1) if i > 1 else '') + ';') * 10}\">" for i in range(1, 10)) + "]>\n"
    t = time.monotonic()
    r = _post(client, box, _ids(title="&lol9;", head=lol), rules_name="lol.ids")
    assert time.monotonic() - t < 10
    assert r.status_code == 400 and "refused" in r.json()["detail"] and "DTD" in r.json()["detail"], r.text
    assert "lollol" not in r.text
    _nothing_stored(client, twin)


def test_nothing_is_fetched_for_an_external_dtd_or_schema_location(client, twin, box, no_network):
    """An external DTD over http is refused without trying; an xsi:schemaLocation hint is ignored (the IDS schema
    is ifctester's own copy), so a good IDS that names a remote schema is checked, offline and at once."""
    t = time.monotonic()
    dtd = _ids(head="<!DOCTYPE ids SYSTEM \"http://127.0.0.1:9/ids.dtd\">\n")
    r = _post(client, box, dtd, rules_name="dtd.ids")
    assert r.status_code == 400 and "DTD" in r.json()["detail"], r.text
    _nothing_stored(client, twin)
    hint = _ids(attrs=" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation="
                      f"\"{IDS_NS} http://127.0.0.1:9/evil/ids.xsd\"")
    r = _post(client, box, hint, rules_name="hint.ids")
    assert r.status_code == 201, r.text
    assert time.monotonic() - t < 60 and no_network == []


@pytest.mark.parametrize("rules, name, says", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "rules.ids", "not well-formed XML"),
    (b"<ids><specifications>", "cut.ids", "not well-formed XML"),
    (b"<?xml version='1.0'?><project><name>x</name></project>", "project.xml", "is not an IDS: its root element is "
                                                                               "<project> in no namespace"),
    (b"<ids><info><title>no namespace</title></info></ids>", "plain.ids", "root element is <ids> in no namespace"),
    (b"<ids xmlns='http://standards.buildingsmart.org/IDS/0.9'/>", "old.ids",
     "<ids> in the namespace 'http://standards.buildingsmart.org/IDS/0.9'"),
    (f"<ids xmlns=\"{IDS_NS}\"><info>{'<info>' * 5000}{'</info>' * 5000}</info></ids>".encode(), "deep.ids",
     "an IDS nests its elements a few levels deep"),
    (f"<ids xmlns=\"{IDS_NS}\"><info/><specifications/></ids>".encode(), "empty.ids",
     "is not a valid IDS: The content of element"),
])
def test_what_is_not_an_ids_is_a_400_saying_why(client, twin, box, rules, name, says):
    r = _post(client, box, rules, rules_name=name)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert says in detail and repr(name) in detail and "Traceback" not in r.text, detail
    _nothing_stored(client, twin)


def test_an_invalid_ids_names_the_schema_error_and_where(client, twin, box):
    bad = _ids().replace(b"cardinality=\"required\"", b"cardinality=\"sometimes\"")
    r = _post(client, box, bad, rules_name="bad.ids")
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "'bad.ids' is not a valid IDS" in detail and "sometimes" in detail and "/property" in detail, detail
    assert "IDS 1.0 schema" in detail
    _nothing_stored(client, twin)


def test_an_oversize_ids_is_refused(client, twin, box):
    big = _ids().replace(b"</info>", b"<description>" + b"x" * (1 << 20) + b"</description></info>")
    r = _post(client, box, big, rules_name="big.ids")
    assert r.status_code == 413, r.text
    assert "the rules file is larger than the limit of 1 MB" in r.json()["detail"]
    assert "--max-upload-mb" not in r.json()["detail"]  # raising the IFC limit would not help
    _nothing_stored(client, twin)


def test_read_ids_limits_its_input_whoever_calls_it():
    from bim_import.compliance import MAX_IDS_BYTES, read_ids
    from twin_core.errors import RuleError

    with pytest.raises(RuleError, match=r"'huge\.ids' is 16\.0 MiB, over the limit of 16 MiB"):
        read_ids(b" " * (MAX_IDS_BYTES + 1), "huge.ids")
    ids = read_ids(_ids("doors"), "doors.ids")
    assert [s.name for s in ids.specifications] == ["Doors say whether they are fire exits"]


def test_a_rules_yaml_still_works_and_may_not_name_an_ids_file(client, box):
    import json

    rules = {"name": "plot", "rules": {"max_height_m": 24},
             "parcel": {"polygon": [[499980, 3389980], [500040, 3389980], [500040, 3390040], [499980, 3390040]]}}
    r = _post(client, box, json.dumps(rules).encode(), rules_name="plot.yaml")
    assert r.status_code == 201 and r.json()["ruleset"] == "upload:plot.yaml", r.text
    r = _post(client, box, json.dumps(rules | {"ids": "/etc/passwd"}).encode(), rules_name="plot.yaml")
    assert r.status_code == 400 and "upload the .ids file itself" in r.json()["detail"], r.text


def _yaml_laughs() -> bytes:
    """A rules YAML of 700 bytes whose max_height_m names 10**9 values through nested aliases ("billion laughs")."""
    doc = "x0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        doc += f"x{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n"
    return (doc + "name: lol\nrules:\n  max_height_m: *l8\n").encode()


def test_a_rules_yaml_with_aliases_is_refused_at_once(client, twin, box, tmp_path):
    """A security review: YAML aliases nested ten deep, uploaded as rules, made the check walk a billion values
    (a server thread and the GIL held for good). A rules file needs no aliases: they are refused, on the map and in
    the CLI."""
    import time

    from bim_import.compliance import load_rules
    from twin_core.errors import RuleError

    t = time.perf_counter()
    r = _post(client, box, _yaml_laughs(), rules_name="lol.yaml")
    assert r.status_code == 400 and "may not use YAML aliases (*name), found *l" in r.json()["detail"], r.text
    assert time.perf_counter() - t < 10
    _nothing_stored(client, twin)
    path = tmp_path / "lol.yaml"
    path.write_bytes(_yaml_laughs())
    with pytest.raises(RuleError, match=r"is not valid YAML: a rules file may not use YAML aliases"):
        load_rules(path)


@pytest.mark.browser
@pytest.mark.slow
def test_the_maps_form_sends_an_ids_as_the_rules(browser, live_server, ifc_path):
    """The BIM form's rules file takes an .ids (and says so); chosen, it is sent in place of the shipped rule set,
    whose list is greyed out, and the report shows the IDS's requirements."""
    from test_viewer_browser import Page

    page = Page(browser, live_server).open()
    try:
        p = page.page
        accept = p.get_attribute("#bim-rules", "accept").split(",")
        assert {".ids", ".yaml", ".yml"} <= set(accept)
        assert ".ids" in p.inner_text("#bim-rules-label") and ".yaml" in p.inner_text("#bim-rules-label")
        p.set_input_files("#bim-file", ifc_path)
        p.set_input_files("#bim-rules", PERMIT_IDS)
        assert p.is_disabled("#bim-ruleset")
        p.click("#bim-submit")
        p.wait_for_selector("#bim-verdict", timeout=60000)
        cells = p.eval_on_selector_all("#bim-table td:first-child", "ts => ts.map((c) => c.textContent)")
        assert cells and all("Doors say whether" in c or "External walls" in c for c in cells), cells
        assert p.evaluate("window.__twin.bim.id")
        p.set_input_files("#bim-rules", [])
        assert not p.is_disabled("#bim-ruleset")
        assert page.errors == [] and page.foreign == []
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_map_shows_an_ids_check_of_a_model_it_cannot_place(browser, live_server):
    """FZK-Haus stands in Germany by its own georeference: checked against an IDS it is recorded unplaced. The page
    flew the map to the check's origin and failed on it (null: a TypeError shown as an error); it now stays where
    it is and says why the model is not on the map."""
    from test_viewer_browser import Page

    if not os.path.exists(FZK):
        pytest.skip(f"no AC20-FZK-Haus.ifc in {IFC_DIR} (set TWIN_IFC_DIR to the real IFC models)")
    page = Page(browser, live_server).open()
    try:
        p = page.page
        p.set_input_files("#bim-file", FZK)
        p.set_input_files("#bim-rules", PERMIT_IDS)
        p.click("#bim-submit")
        p.wait_for_selector("#bim-verdict", timeout=90000)
        assert "not placed in the city" in p.inner_text("#bim-placement")
        assert p.evaluate("window.__twin.bim.id")
        assert not p.query_selector("#bim-error")
        assert page.errors == [] and page.foreign == []
    finally:
        page.close()


def _ids_with_pattern(pattern: str) -> bytes:
    """An IDS asking that every building's Name match ``pattern`` (an xs:pattern, escaped for XML)."""
    from xml.sax.saxutils import quoteattr

    return (f"<ids xmlns=\"{IDS_NS}\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"><info><title>t</title></info>"
            "<specifications><specification name=\"names\" ifcVersion=\"IFC2X3 IFC4\"><applicability minOccurs=\"0\" "
            "maxOccurs=\"unbounded\"><entity><name><simpleValue>IFCBUILDING</simpleValue></name></entity>"
            "</applicability><requirements><attribute cardinality=\"required\"><name><simpleValue>Name</simpleValue>"
            f"</name><value><xs:restriction base=\"xs:string\"><xs:pattern value={quoteattr(pattern)}/>"
            "</xs:restriction></value></attribute></requirements></specification></specifications></ids>").encode()


@pytest.mark.parametrize("pattern, says", [
    ("(a*)*b", "a repeated group that repeats again"),        # hours of backtracking on 'aaaa...a' (GIL held)
    ("((a+))+", "a repeated group that repeats again"),
    ("[", "no XML Schema regular expression"),                 # failed mid-check: a 500
    ("(a)\\1", "no XML Schema regular expression"),            # a back reference, which XSD has not
    ("a" * 600, "at most 500 are taken"),                      # kept in ifctester's unbounded cache
])
def test_an_xs_pattern_ifctester_cannot_run_safely_is_refused_up_front(client, twin, box, pattern, says):
    """A code review: an uploaded IDS's patterns were run by ifctester with Python's re against the uploaded model's
    text, so '(a*)*b' against a 26-letter building name froze the server for 3 s (every 2 letters 4x more), and
    an invalid pattern failed the check with a 500. They are refused with a 400 before the model is read."""
    r = _post(client, box, _ids_with_pattern(pattern))
    assert r.status_code == 400 and says in r.json()["detail"], r.text
    _nothing_stored(client, twin)


def test_a_plain_pattern_is_checked(client, box):
    r = _post(client, box, _ids_with_pattern("[A-Za-z0-9 _-]+"))
    assert r.status_code == 201, r.text
