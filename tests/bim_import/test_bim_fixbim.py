"""BIM check leftovers (fix_bim): an IDS check in a child process held to CPU, memory and time limits; one
definition of "the rules check the model alone"; the placement in the list of recorded checks; the header of an
unsaved ``twin check-bim --html`` report."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from html import unescape

import pytest

from tests.bim_import.conftest import FZK, PARCEL
from tests.bim_import.test_bim_compliance import RULES

PLOT = {"name": "test plot R2", "rules": RULES, "parcel": {"polygon": PARCEL, "parcel_id": "P-7"}}
PERMIT_IDS = os.path.join(os.path.dirname(__file__), "..", "..", "bim_import", "rules", "permit_minimum.ids")
#: overlapping alternatives repeated: Python's re tries both ways at every letter, so a name of n letters 'a'
#: takes 2**n steps (20 letters 0.04 s here, doubling with each letter); the nested-repeat gate lets it through
SLOW = "(a|a)*b"


# -- run_limited: the child process and its limits ----------------------------------------------------------------


def test_a_child_answers_with_its_result():
    from bim_import.compliance import IdsLimits, run_limited

    assert run_limited(functools.partial(divmod, 17, 5), limits=IdsLimits(cpu_s=5)) == (3, 2)
    assert run_limited(functools.partial(len), prepare=functools.partial(str, "abcd"),
                       limits=IdsLimits(cpu_s=5)) == 4


@pytest.mark.timeout(120)
def test_a_child_over_its_cpu_limit_is_stopped():
    """2**40 steps of backtracking (hours) stop after the 1 s of CPU given (plus the second to SIGKILL, and a
    busy machine's wait)."""
    from bim_import.compliance import IdsLimits, LimitExceeded, _nested_repeat, run_limited

    assert not _nested_repeat(SLOW)  # the gate misses it
    t = time.monotonic()
    with pytest.raises(LimitExceeded) as exc:
        run_limited(functools.partial(re.fullmatch, SLOW, "a" * 40), limits=IdsLimits(cpu_s=1, wall_s=60))
    assert exc.value.reason == "cpu" and time.monotonic() - t < 60


def test_a_child_over_its_memory_limit_is_stopped():
    from bim_import.compliance import IdsLimits, LimitExceeded, run_limited

    with pytest.raises(LimitExceeded) as exc:
        run_limited(functools.partial(bytearray, 4 << 30), limits=IdsLimits(cpu_s=10, memory_mb=256))
    assert exc.value.reason == "memory"


def test_a_child_past_the_parents_clock_is_killed():
    """Asleep, it uses no CPU: the parent's clock stops it."""
    from bim_import.compliance import IdsLimits, LimitExceeded, run_limited

    t = time.monotonic()
    with pytest.raises(LimitExceeded) as exc:
        run_limited(functools.partial(time.sleep, 60), limits=IdsLimits(cpu_s=1, wall_s=1))
    assert exc.value.reason == "wall" and time.monotonic() - t < 30


def test_a_childs_exception_comes_back():
    from bim_import.compliance import ChildError, IdsLimits, run_limited

    with pytest.raises(ChildError) as exc:
        run_limited(functools.partial(int, "x"), limits=IdsLimits(cpu_s=5))
    assert exc.value.kind == "ValueError" and "invalid literal" in exc.value.text


def ids_with_pattern(pattern: str) -> bytes:
    """An IDS asking that every building's Name match ``pattern`` (an xs:pattern, escaped for XML)."""
    from xml.sax.saxutils import quoteattr

    return ("<ids xmlns=\"http://standards.buildingsmart.org/IDS\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">"
            "<info><title>t</title></info><specifications><specification name=\"names\" ifcVersion=\"IFC2X3 IFC4\">"
            "<applicability minOccurs=\"0\" maxOccurs=\"unbounded\"><entity><name><simpleValue>IFCBUILDING"
            "</simpleValue></name></entity></applicability><requirements><attribute cardinality=\"required\"><name>"
            "<simpleValue>Name</simpleValue></name><value><xs:restriction base=\"xs:string\">"
            f"<xs:pattern value={quoteattr(pattern)}/></xs:restriction></value></attribute></requirements>"
            "</specification></specifications></ids>").encode()


def _slow_ids() -> bytes:
    return ids_with_pattern(SLOW)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("limits, says", [
    ({"cpu_s": 1, "wall_s": 60}, "took more than 1 s of CPU to check against the model"),
    ({"cpu_s": 600, "wall_s": 2}, "took more than 2 s to check against the model"),  # the parent's clock
])
def test_an_ids_checked_with_limits_stops_and_says_what_to_do(tmp_path, limits, says):
    """An IDS whose pattern backtracks on the model's building name ('a' * 40: 2**40 steps) is stopped at its CPU
    limit, or the parent's clock, with a RuleError naming the file, the limit and what to change."""
    from bim_import.compliance import IdsLimits, RuleSet, check_compliance, read_ids
    from bim_import.samples import BoxBuilding, write_box_building
    from twin_core.errors import RuleError

    ifc = write_box_building(BoxBuilding(20, 10, 1, 3.0, 500000.0, 3390000.0, name="a" * 40), tmp_path / "a.ifc")
    rs = RuleSet(ids="names.ids", ids_only=True, ids_spec=read_ids(_slow_ids(), "names.ids"),
                 ids_limits=IdsLimits(**limits))
    t = time.monotonic()
    with pytest.raises(RuleError) as exc:
        check_compliance(str(ifc), rs)
    msg = str(exc.value)
    assert f"the IDS file 'names.ids' {says}" in msg, msg
    assert "simplify its patterns" in msg and time.monotonic() - t < 60


def test_an_ids_checked_in_a_child_gives_what_it_gives_in_process(boxes):
    """The same results, field for field (FZK-Haus: 13 walls, 4 of 5 doors fail; the sample box: all pass)."""
    from bim_import.compliance import IdsLimits, RuleSet, check_compliance, load_ids

    models = [boxes["ok"][0], boxes["nogeo"][0]] + ([FZK] if os.path.isfile(FZK) else [])
    for path in models:
        here = check_compliance(path, PERMIT_IDS).to_dict()
        rs = RuleSet(ids=PERMIT_IDS, ids_only=True, ids_spec=load_ids(PERMIT_IDS), ids_limits=IdsLimits(cpu_s=20))
        there = check_compliance(path, rs).to_dict()
        assert there == here
    assert os.path.isfile(FZK) is False or here["passed"] is False


# -- one definition of "the rules check the model alone" ----------------------------------------------------------


@pytest.mark.parametrize("rules, alone_with_store, alone_without", [
    ({"ids": "x.ids", "ids_only": True}, True, True),          # an IDS file on its own
    ({"ids": "x.ids"}, False, True),                           # rules naming only ids: take the CIM parcel's limits
    ({"ids": "x.ids", "limits": {"max_far": 2.0}}, False, False),
    ({"ids": "x.ids", "ids_only": True, "parcel": {"parcel_id": "P-1"}}, False, False),
    ({"limits": {"max_far": 2.0}}, False, False),
])
def test_model_alone_is_one_definition(rules, alone_with_store, alone_without):
    from bim_import.checks import model_only
    from bim_import.compliance import RuleSet

    rs = RuleSet(**rules)
    assert rs.model_alone(with_store=True) is alone_with_store and model_only(rs) is alone_with_store
    assert rs.model_alone(with_store=False) is alone_without


def test_check_compliance_and_record_check_follow_the_one_definition(store, boxes, monkeypatch):
    """Before, record_check (model_only) and check_compliance each wrote the test out: changing one left the other.
    With RuleSet.model_alone saying no, an IDS file on its own needs the model placed in both."""
    from bim_import.checks import record_check
    from bim_import.compliance import RuleSet, check_compliance, load_rules
    from twin_core.errors import GeoreferenceError

    path = boxes["nogeo"][0]
    rs = load_rules(PERMIT_IDS)
    assert [r.rule for r in check_compliance(path, rs, store=store).results][0].startswith("ids:")
    monkeypatch.setattr(RuleSet, "model_alone", lambda self, *, with_store: False)
    with pytest.raises(GeoreferenceError):
        check_compliance(path, rs, store=store)
    with pytest.raises(GeoreferenceError):
        record_check(store, path, rs)


# -- the placement in the list of recorded checks -----------------------------------------------------------------


def test_listed_checks_carry_their_placement(store, boxes):
    from bim_import.checks import get_check, list_checks, record_check

    placed = record_check(store, boxes["ok"][0], PLOT, ruleset="plot7")
    unplaced = record_check(store, boxes["nogeo"][0], PERMIT_IDS)
    rows = {r["check_id"]: r for r in list_checks(store)[0]}
    for rec in (placed, unplaced):
        assert rows[rec["check_id"]]["placement"] == get_check(store, rec["check_id"])["placement"] is not None
    assert rows[placed["check_id"]]["placement"]["how"] == "map_conversion"
    assert rows[unplaced["check_id"]]["placement"]["placed"] is False
    assert "report_json" not in rows[placed["check_id"]] and "placement_json" not in rows[placed["check_id"]]
    assert "placement_json" not in get_check(store, placed["check_id"])


def test_a_table_from_before_the_placement_column_lists_too(store, boxes):
    """A twin whose bim_checks has no placement column (older records): its rows list the placement their report
    holds, None for one recorded before the placement was kept; a new check is still appended to it."""
    from bim_import.checks import TABLE, get_check, list_checks, record_check

    kept = record_check(store, boxes["ok"][0], PLOT, ruleset="plot7")
    oldest = record_check(store, boxes["ok"][0], PLOT, ruleset="plot7")
    old = store.read_table(TABLE).drop(columns=["placement_json"])
    at = old.index[old["check_id"] == oldest["check_id"]][0]
    report = json.loads(old.at[at, "report_json"])
    del report["placement"]
    old.at[at, "report_json"] = json.dumps(report)
    store.write_table(TABLE, old, mode="replace")
    new = record_check(store, boxes["nogeo"][0], PERMIT_IDS)
    assert "placement_json" not in store.read_table(TABLE, limit=0).columns
    rows = {r["check_id"]: r for r in list_checks(store)[0]}
    assert rows[oldest["check_id"]]["placement"] is None is get_check(store, oldest["check_id"])["placement"]
    assert rows[kept["check_id"]]["placement"] == kept["placement"]
    assert rows[new["check_id"]]["placement"] == get_check(store, new["check_id"])["placement"]
    assert rows[new["check_id"]]["placement"]["placed"] is False


# -- the header of an unsaved check-bim --html report -------------------------------------------------------------


def _header(html: str) -> dict:
    table = re.search(r'<table class="record">(.*?)</table>', html, re.S)
    assert table, html[:600]
    return {k: unescape(re.sub(r"<[^>]+>", "", v)).strip()
            for k, v in re.findall(r"<th>(.*?)</th><td>(.*?)</td>", table[1])}


@pytest.mark.parametrize("which, rules, ruleset", [("ok", "plot", "test plot R2 (plot7)"),
                                                   ("nogeo", "ids", "permit_minimum")])
def test_an_unsaved_html_report_opens_with_the_record_header(boxes, tmp_path, which, rules, ruleset):
    """`twin check-bim MODEL --rules R --html r.html` (no --save) wrote a page without the header a saved one
    opens with; now the same header, the id "not recorded"."""
    from datetime import datetime, timedelta, timezone

    from typer.testing import CliRunner

    from twin_core.cli import get_app

    path = boxes[which][0]
    if rules == "plot":
        rules_path = tmp_path / "plot7.yaml"
        rules_path.write_text(json.dumps(PLOT))
    else:
        rules_path = PERMIT_IDS
    html = tmp_path / "r.html"
    before = datetime.now(timezone.utc).replace(microsecond=0)
    res = CliRunner().invoke(get_app(), ["check-bim", str(path), "--rules", str(rules_path), "--html", str(html)])
    assert res.exit_code in (0, 1), res.output
    page = html.read_text()
    head = _header(page)
    assert head["check"].startswith("not recorded")
    assert head["rule set"] == ruleset
    when = datetime.strptime(head["checked"], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=timezone.utc)
    assert before <= when <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert "with twin check-bim, not saved" in head["by"]
    with open(path, "rb") as fh:
        data = fh.read()
    assert head["IFC file"] == (f"{os.path.basename(path)}, {len(data)} bytes, SHA-256 "
                                f"{hashlib.sha256(data).hexdigest()}")
    if which == "ok":
        assert head["placed"].startswith("by the model's own georeference (IfcMapConversion")
    else:
        assert head["placed"].startswith("not placed in the city") and 'class="warn"' in page
    # the verdicts are those of the plain check
    assert ("Overall: PASS" in page) is (res.exit_code == 0)
