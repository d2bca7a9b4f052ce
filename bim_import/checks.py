"""Recorded compliance checks: the regulator's audit trail, kept in the twin's store.

A recorded check is one row of the table ``bim_checks`` (who, when, which file
with its SHA-256, which rule set, the verdict, the building's footprint and
attributes, the report as JSON with how the model was placed) and two blobs, ``bim_checks/<id>/report.html``
and ``bim_checks/<id>/model.glb``. All three are written in one store
transaction, so a failed save leaves nothing behind. Removing a check
(:func:`delete_check`, the map server's admin role only) leaves a row in
``bim_check_deletions`` saying what went, when and by whom. Both stores (GeoPackage
and PostGIS) hold checks the same way; ``twin check-bim --save`` and the map
server's ``POST /api/bim/checks`` both go through :func:`record_check`.

Examples
--------
>>> import os, tempfile
>>> from cim.store import open_store
>>> from bim_import.samples import BoxBuilding, write_box_building
>>> d = tempfile.mkdtemp()
>>> ifc = write_box_building(BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0), os.path.join(d, "box.ifc"))
>>> store = open_store(os.path.join(d, "t.gpkg"), create=True, crs="EPSG:4544")
>>> rules = {"name": "plot 7", "rules": {"max_height_m": 24},
...          "parcel": {"polygon": [[499980, 3389980], [500040, 3389980], [500040, 3390040], [499980, 3390040]]}}
>>> rec = record_check(store, ifc, rules, ruleset="plot7")
>>> rec["passed"], rec["ruleset_title"], round(rec["height_m"], 2)
(True, 'plot 7', 9.3)
>>> [c["check_id"] for c in list_checks(store)[0]] == [rec["check_id"]]
True
>>> check_html(store, rec["check_id"]).startswith("<!doctype html>")
True
>>> store.close()
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from twin_core.errors import CRSError, GeoreferenceError, LayerNotFoundError

__all__ = ["record_check", "check_unrecorded", "list_checks", "get_check", "check_html", "check_glb", "delete_check",
           "is_check_id", "model_only", "TABLE", "DELETIONS"]

#: the store table that holds one row per recorded check
TABLE = "bim_checks"
#: the store table that records who removed which check, and when
DELETIONS = "bim_check_deletions"
_ID = re.compile(r"[0-9a-f]{16}")
#: columns of a listing (the row without the report JSON and footprint)
_SUMMARY = ["check_id", "created", "filename", "sha256", "size_bytes", "ruleset", "ruleset_title", "passed",
            "n_failed", "building_id", "parcel_id", "source", "checked_by", "has_glb"]
#: the column with how the model was placed (JSON), for a listing; a table made before it has none (its rows'
#: report JSON holds it, or nothing for the checks recorded before the placement was kept)
PLACEMENT = "placement_json"
#: the column saying the check checked nothing (:attr:`~bim_import.compliance.ComplianceReport.checked_nothing`:
#: its IDS requirements applied to no element of the model), for a listing; a table made before it has none
#: (read from its rows' reports then)
NOTHING = "nothing_checked"
#: the ``source`` of a check run and not recorded (:func:`check_unrecorded`)
UNSAVED = "cli_unsaved"


def is_check_id(text: Any) -> bool:
    """Whether ``text`` has the form of a check id (16 lower-case hex digits)."""
    return isinstance(text, str) and bool(_ID.fullmatch(text))


def _blob(check_id: str, name: str) -> str:
    return f"{TABLE}/{check_id}/{name}"


def record_check(store, ifc_path: str, rules, *, ruleset: str | None = None, filename: str | None = None,
                 source: str = "api", checked_by: str = "", anchor=None, twin_crs: str | None = None,
                 method: str = "auto", evaluators: dict | None = None) -> dict:
    """Check the IFC file ``ifc_path`` against ``rules`` and record the check in ``store``.

    Parameters
    ----------
    store : Store
        The twin; the model is placed in its CRS and the parcel may come from its ``parcels`` layer.
    ifc_path : path
        The submitted model (its bytes are hashed with SHA-256 for the record).
    rules : RuleSet, dict or path
        As for :func:`bim_import.compliance.check_compliance`. Rules that check the model alone (:func:`model_only`:
        an IDS file on its own) are recorded even where the model cannot be placed in the city: then with no
        footprint, site, height or mesh, and the record's ``placement`` (and its report) says it was not placed.
        Every other rule set needs the model placed (GeoreferenceError otherwise).
    ruleset : str, optional
        The rule set's name for the record (a shipped name, a file name); default: the rules file's stem.
    filename : str, optional
        The name the model was submitted under (default: the base name of ``ifc_path``).
    source, checked_by : str
        Where the check came from (``"api"``, ``"cli"``) and who ran it.
    twin_crs : str, optional
        Refused unless it is the store's CRS (the record lives in the twin's CRS).
    anchor, method
        Where the model stands when its own georeference does not place it in the twin (``anchor``), and
        which georeference wins (``method``, as for :func:`bim_import.georef.georeference`: ``"anchor"``
        places the model at the anchor even when the file says where it is, as a regulator does who
        picks the site on the map).
    evaluators : dict, optional
        For the rules that need the city, as for :func:`bim_import.compliance.check_compliance`.

    Returns
    -------
    dict
        The record as :func:`get_check` returns it (``check_id``, ``created``, ``passed``, ``report`` ...;
        ``placement``: ``placed``, ``how`` and ``text``, how the model was placed in the city).
    """
    from cim.crs import same_crs

    crs = store.crs
    if crs is None:
        raise CRSError(f"the store {store!r} has no CRS; create the twin with one (twin build / Twin.create)")
    if not same_crs(twin_crs, crs):
        raise CRSError(f"a check recorded in the twin uses the twin's CRS {crs}, not {twin_crs}; drop --crs")
    rs, ruleset = _rule_set(rules, ruleset)
    with open(ifc_path, "rb") as fh:
        data = fh.read()
    given = anchor is not None
    report, b, placement = _check(ifc_path, rs, store=store, crs=crs, anchor=anchor if given else rs.anchor,
                                  given=given, method=method, source=source, evaluators=evaluators, meshes=True)
    doc = json.loads(report.to_json())
    doc["placement"] = placement
    nan = float("nan")
    row = {
        "check_id": uuid.uuid4().hex[:16],
        "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "filename": str(filename or os.path.basename(os.fspath(ifc_path)))[:200],
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "ruleset": str(ruleset or rs.name)[:200],
        "ruleset_title": str(rs.name)[:200],
        "passed": bool(report.passed),
        "n_failed": int(sum(not r.passed for r in report.results)),
        "building_id": str(report.building_id if b is None else b.building_id),
        "parcel_id": "" if report.parcel_id is None else str(report.parcel_id),
        "source": str(source),
        "checked_by": str(checked_by or ""),
        "has_glb": bool(b is not None and b.glb),
        # not placed: no height, ground, origin or footprint in the city (NaN, read back as None)
        "height_m": nan if b is None else float(b.height_m),
        "storeys": None if b is None or b.storeys is None else int(b.storeys),  # None: the model has no storeys
        "ground_elev_m": nan if b is None else float(b.ground_elev_m),
        "origin_x": nan if b is None else float(b.origin[0]),
        "origin_y": nan if b is None else float(b.origin[1]),
        "crs": str(crs),
        "footprint_wkt": "POLYGON EMPTY" if b is None else b.footprint.wkt,
        "report_json": json.dumps(doc, indent=2),
        "placement_json": json.dumps(placement),  # for the listing, which reads no report
        NOTHING: bool(report.checked_nothing),  # a PASS that checked nothing: the listing marks it
    }
    cid = row["check_id"]
    with store.transaction():
        frame = pd.DataFrame([row]).astype({"storeys": "Int64"})  # an integer column even when unknown (null)
        exists = store.has_table(TABLE)
        if exists:  # a table from before a column: its report has what the column would hold
            frame = frame.drop(columns=[c for c in (PLACEMENT, NOTHING) if c not in _columns(store)])
        store.write_table(TABLE, frame, mode="append" if exists else "replace")
        html = report.to_html(record=_record(row))
        store.put_blob(_blob(cid, "report.html"), html.encode("utf-8"), mime="text/html")
        if row["has_glb"]:
            store.put_blob(_blob(cid, "model.glb"), b.glb, mime="model/gltf-binary")
    return _record(row)


def _check(ifc_path, rs, *, store, crs: str, anchor, given: bool, method: str, source: str, evaluators,
           meshes: bool):
    """(report, building or None, placement): ``rs`` checked on the model at ``ifc_path`` placed in ``crs``, as
    :func:`record_check` records it and ``twin check-bim --html`` without ``--save`` reports it. ``meshes``: build
    the model's mesh (GLB) for the record. A rule set that checks the model alone (:meth:`RuleSet.model_alone`) is
    checked unplaced where the model cannot be placed and no anchor was given."""
    from bim_import.building import build_building
    from bim_import.compliance import check_compliance, place_anchor
    from bim_import.georef import georeference
    from bim_import.importer import _note_placement, prepare_building
    from bim_import.model import read_model

    unplaced = None  # the GeoreferenceError of a model checked unplaced
    path = os.fspath(ifc_path)
    # an anchor without a height stands on the twin's DEM (it stood at 0 unless the CLI had grounded it)
    anchor, anchor_z = place_anchor(store, anchor, crs)
    if rs.model_alone(with_store=store is not None):
        # information requirements only: placed where it can be (the footprint on the map), else checked as it is
        model = read_model(path)
        try:
            g = georeference(model, crs, anchor=anchor, method=method)
        except GeoreferenceError as exc:
            if anchor is not None:  # the caller's site or anchor is wrong: say so, as for any rule set
                raise
            b, unplaced = None, exc
        else:
            b = build_building(model, g, meshes=meshes)
        subject = model
    elif meshes:
        b = prepare_building(path, crs, anchor=anchor, method=method)
        subject = path
    else:  # as check_compliance reads it alone (no mesh)
        model = read_model(path)
        b = build_building(model, georeference(model, crs, anchor=anchor, method=method), meshes=False)
        subject = model
    if b is not None:
        _note_placement(b, anchor_z)  # where the anchor's height came from, for the report and the placement
    report = check_compliance(subject, rs, store=store, twin_crs=crs, anchor=anchor, building=b,
                              evaluators=evaluators)
    return report, b, _placement(b, unplaced, given=given, source=source)


def check_unrecorded(ifc_path, rules, *, store=None, twin_crs: str | None = None, anchor=None,
                     ruleset: str | None = None, checked_by: str = "", evaluators: dict | None = None):
    """Check as :func:`record_check` does, recording nothing: ``(report, record)``, the record with what a
    recorded check's report opens with (rule set, time, who, the IFC file's name, size and SHA-256, how the model
    was placed) and ``check_id`` None. ``twin check-bim --html`` without ``--save`` heads its report with it
    (:meth:`~bim_import.compliance.ComplianceReport.to_html`), saying "not recorded" for the id.

    ``rules``, ``anchor``, ``evaluators``: as for :func:`record_check`; ``store``: the twin for the parcel and the
    city (optional); ``twin_crs``: default the rules' ``crs``, the store's, else EPSG:4544 (as
    :func:`~bim_import.compliance.check_compliance`).
    """
    rs, ruleset = _rule_set(rules, ruleset)
    crs = twin_crs or rs.crs or (store.crs if store is not None else None) or "EPSG:4544"
    with open(ifc_path, "rb") as fh:
        data = fh.read()
    given = anchor is not None
    report, _, placement = _check(ifc_path, rs, store=store, crs=crs, anchor=anchor if given else rs.anchor,
                                  given=given, method="auto", source=UNSAVED, evaluators=evaluators, meshes=False)
    return report, {"check_id": None, "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                    "filename": os.path.basename(os.fspath(ifc_path)), "sha256": hashlib.sha256(data).hexdigest(),
                    "size_bytes": len(data), "ruleset": str(ruleset or rs.name), "ruleset_title": str(rs.name),
                    "source": UNSAVED, "checked_by": str(checked_by or ""), "placement": placement}


def _rule_set(rules, ruleset: str | None):
    """``rules`` (a RuleSet, a dict, or a rules file's path) as a :class:`~bim_import.compliance.RuleSet`, and the
    rule set's name for the record (``ruleset``, else a file's name without its suffix)."""
    from bim_import.compliance import RuleSet, load_rules

    if isinstance(rules, RuleSet):
        return rules, ruleset
    if isinstance(rules, dict):
        return RuleSet.from_dict(rules), ruleset
    return load_rules(rules), ruleset or os.path.splitext(os.path.basename(os.fspath(rules)))[0]


def model_only(rules) -> bool:
    """Whether a rule set checks the model alone, so a check of it is recorded even where the model cannot be
    placed in the city: :meth:`~bim_import.compliance.RuleSet.model_alone` with the twin's store (an IDS file
    on its own, ``RuleSet.ids_only``: information requirements only). A rules file naming only ``ids:`` takes
    the limits of the CIM parcel the model stands on, so it needs the model placed, as any limit does."""
    return rules.model_alone(with_store=True)


def _placement(b, unplaced, *, given: bool, source: str) -> dict:
    """How the model was placed in the city, for the record and its report: ``placed``, ``how`` (``site``: picked
    on the map; ``anchor``: given to record_check or --anchor; ``rules_anchor``: the rules' ``anchor:``;
    ``map_conversion`` / ``ifc_site``: the model's own georeference; ``not_placed``) and ``text`` in words."""
    if b is None:
        why = getattr(unplaced, "problem", None) or str(unplaced)
        return {"placed": False, "how": "not_placed",
                "text": f"not placed in the city ({why}); the rules are information requirements (IDS) on the model "
                        "alone, so no footprint, parcel or neighbour was used"}
    g = b.georef
    at = f"the model's 0,0 at {g.c:.2f}, {g.f:.2f} ({g.crs}), its x axis {g.rotation_deg:.1f} deg from grid east"
    if g.method == "anchor":
        how = ("site" if source == "api" else "anchor") if given else "rules_anchor"
        what = {"site": "at the site picked on the map", "anchor": "at the anchor given",
                "rules_anchor": "at the rules' anchor"}[how]
        # where the 0.00 level's height came from: the twin's DEM under an anchor without one, the anchor's Z, or
        # 0 where the twin has no DEM there (bim_import.compliance.place_anchor)
        # (a site picked on the map: the map server takes its height from the DEM itself)
        z = ((b.summary or {}).get("anchor_z") or {}) if how != "site" else {}
        src = {"dem": "the twin's DEM at the anchor", "anchor": "the height given with the anchor",
               "default": z.get("text")}.get(z.get("source"))
        out = {"placed": True, "how": how, "text": f"{what}, {at}, ground {g.z0:.2f} m" + (f", {src}" if src else "")}
        if z:
            out["height_source"] = z["source"]  # dem, anchor or default (0: no DEM there)
        return out
    if g.method == "map_conversion":
        src = g.details.get("source", "IfcMapConversion")
        return {"placed": True, "how": "map_conversion",
                "text": f"by the model's own georeference ({src} in {g.details.get('source_crs', g.crs)}), {at}"}
    return {"placed": True, "how": "ifc_site",
            "text": f"by the model's own georeference (IfcSite RefLatitude {g.details.get('lat', float('nan')):.6f}, "
                    f"RefLongitude {g.details.get('lon', float('nan')):.6f}), {at}"}


def _value(v):
    """A stored value as Python: NumPy scalars as Python values, NaN (a model not placed) as None (JSON-able)."""
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and math.isnan(v) else v


def _plain(row: dict) -> dict:
    """A row with NumPy scalars as Python values and NaN as None (JSON-able)."""
    return {k: _value(v) for k, v in row.items() if k not in ("report_json", PLACEMENT)}


def _nothing_checked(row: dict, report: dict | None) -> bool:
    """The row's ``nothing_checked``, or, in a table made before that column, its report's."""
    v = _value(row.get(NOTHING))
    if v is not None:
        return bool(v)
    from bim_import.compliance import ComplianceReport

    return bool(report) and ComplianceReport.from_dict(report).checked_nothing


def _record(row: dict) -> dict:
    report = json.loads(row["report_json"])
    # checks recorded before the placement was kept have none
    return _plain(row) | {"placement": report.get("placement"), "report": report,
                          NOTHING: _nothing_checked(row, report)}


def _missing(check_id: Any) -> LayerNotFoundError:
    return LayerNotFoundError(f"no BIM check {str(check_id)[:40]!r}: check ids are 16 hex digits "
                              "(list the recorded checks: twin bim checks TARGET, list_checks, or GET /api/bim/checks)")


def _columns(store) -> list[str]:
    return list(store.read_table(TABLE, limit=0).columns)


def list_checks(store, *, limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """(summaries of the recorded checks, newest first, ``limit`` from ``offset``; how many there are). Each has
    its ``placement`` as :func:`get_check` gives it (None for a check recorded before the placement was kept)."""
    if not store.has_table(TABLE):
        return [], 0
    # a table made before the placement (or nothing_checked) column: that is read from the report
    cols = _columns(store)
    extra = PLACEMENT if PLACEMENT in cols else "report_json"
    nothing = [NOTHING] if NOTHING in cols else ["report_json"]
    # newest first, paged in the store; ties of the clock keep the later row first
    page = store.read_table(TABLE, columns=list(dict.fromkeys(_SUMMARY + [extra] + nothing)), order_by="created",
                            descending=True, limit=max(0, int(limit)), offset=max(0, int(offset)))
    rows = []
    for r in page.to_dict("records"):
        report = r.pop("report_json", None)
        report = json.loads(report) if isinstance(report, str) and report else None
        v = r.pop(PLACEMENT, None)
        placement = json.loads(v) if isinstance(v, str) and v else None
        rows.append(_plain(r) | {"placement": placement if extra == PLACEMENT else (report or {}).get("placement"),
                                 NOTHING: _nothing_checked(r, report)})
    return rows, store.count_rows(TABLE)


def get_check(store, check_id: str) -> dict:
    """The recorded check ``check_id`` (LayerNotFoundError if there is none)."""
    if not is_check_id(check_id) or not store.has_table(TABLE):
        raise _missing(check_id)
    df = store.read_table(TABLE, where={"check_id": check_id})
    if not len(df):
        raise _missing(check_id)
    return _record(df.iloc[0].to_dict())


def check_html(store, check_id: str) -> str:
    """The HTML report of a recorded check."""
    get_check(store, check_id)
    return store.get_blob(_blob(check_id, "report.html")).decode("utf-8")


def check_glb(store, check_id: str) -> bytes | None:
    """The checked model as GLB (None when the model had no mesh)."""
    if not get_check(store, check_id)["has_glb"]:
        return None
    return store.get_blob(_blob(check_id, "model.glb"))


def delete_check(store, check_id: str, *, deleted_by: str = "") -> dict:
    """Remove a recorded check (row and blobs) in one transaction; returns what was removed.

    The removal itself is recorded, in the same transaction, as a row of ``bim_check_deletions``
    (the check's id, time, file hash and verdict, when and by whom it was removed).
    """
    with store.transaction():
        rec = get_check(store, check_id)
        gone = {k: rec[k] for k in ("check_id", "created", "filename", "sha256", "ruleset", "passed", "checked_by")}
        gone |= {"deleted": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                 "deleted_by": str(deleted_by or "")}
        store.write_table(DELETIONS, pd.DataFrame([gone]), mode="append" if store.has_table(DELETIONS) else "replace")
        store.delete_rows(TABLE, {"check_id": check_id})
        store.delete_blob(_blob(check_id, "report.html"))
        if rec["has_glb"]:
            store.delete_blob(_blob(check_id, "model.glb"))
    return rec
