"""``twin check-bim`` and ``twin bim ...``: IFC models into the twin, compliance checks."""

from __future__ import annotations

import os
from typing import List, Optional

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, check_output_path, emit

ANCHOR_OPT = typer.Option(None, "--anchor", help="Place a model without georeference: X,Y[,Z[,ROTATION_DEG]] in the "
                          "twin CRS (metres, not lon/lat); Z left out or empty (X,Y,,ROTATION_DEG): height 0.")
CHECK_ANCHOR_OPT = typer.Option(
    None, "--anchor", help="Place a model without georeference: X,Y[,Z[,ROTATION_DEG]] in the twin CRS (metres, not "
    "lon/lat); without Z, or with an empty one (X,Y,,ROTATION_DEG), the model stands on the terrain of the twin "
    "given by --store (its DEM's height at X,Y), at 0 without one.")
CRS_OPT = typer.Option(None, "--crs", help="Twin CRS (default: the store's, or the rules' crs, or EPSG:4544).")
IMPORT_CRS_OPT = typer.Option(None, "--crs", help="Twin CRS (default: the store's, or EPSG:4544).")


def _anchor(text: str | None):
    if not text:
        return None
    from bim_import.georef import Anchor
    from twin_core.errors import GeoreferenceError

    parts = text.split(",")
    if not 2 <= len(parts) <= 4:
        raise GeoreferenceError(f"--anchor must be X,Y[,Z[,ROTATION_DEG]], got {len(parts)} values ({text!r})")
    try:  # an empty Z (X,Y,,ROTATION_DEG): the height from the twin's terrain, as when Z is left out
        vals = [None if i == 2 and not v.strip() else float(v) for i, v in enumerate(parts)]
    except ValueError:
        raise GeoreferenceError(f"--anchor must be X,Y[,Z[,ROTATION_DEG]] numbers (Z may be empty: X,Y,,ROTATION_DEG "
                                f"takes the height from the terrain), got {text!r}") from None
    return Anchor(*vals)


def _check_anchor(anchor, crs, what: str = "--anchor") -> None:
    """Refuse an anchor (without a CRS of its own) outside the area the twin's CRS ``crs`` covers, saying where
    it looks like lon/lat and where that point is in ``crs``, as ``twin crowd --anchor`` and the inflows do
    (:func:`twin_core.adapters.crowd._check_in_crs`): it stood hundreds of kilometres from the city, off the
    terrain and on no parcel."""
    if anchor is None or anchor.crs is not None:
        return
    from twin_core.adapters.crowd import _check_in_crs

    _check_in_crs([(anchor.x, anchor.y)], crs, what)


def _utc(created) -> str:
    """A recorded check's time as ``2026-12-05 15:24:41 UTC`` (the record keeps UTC, as ``twin runs`` shows its
    "created (UTC)"); a time without a zone is taken as UTC, as it was recorded."""
    from datetime import datetime, timezone

    try:
        t = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
    except ValueError:
        return str(created)
    t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _os_user() -> str:
    """Who runs the command, for a recorded check or removal: the OS user, or "" where there is none to name
    (a container's uid without a passwd entry); the record says the CLI did it either way (source "cli")."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # getpass raises KeyError / OSError when neither $USER nor the passwd database names one
        return ""


def _result_lines(report) -> list[str]:
    """A compliance report's rules, a line each (with the offending elements and the note of a failure, and
    always that of a rule measured against the city's buildings: which it left out as replaced, what it assumed)."""
    from bim_import.compliance import NEIGHBOUR_RULES

    lines = []
    for r in report.results:
        lines.append(f"  {'ok  ' if r.passed else 'FAIL'} {r.rule}: {r.reading()}"
                     + (f" offending: {', '.join(r.offending[:10])}" if r.offending else "")
                     + (f" and {len(r.offending) - 10} more (--out / --html: all)" if len(r.offending) > 10 else ""))
        if r.limit_source:  # the rules file, the parcel, or both with the stricter applied
            lines.append(f"       limit: {r.limit_source}")
        # and where nothing was there to measure, and an IDS requirement that applied to nothing
        if r.note and (not r.passed or r.limit == 0 or r.measured is None or r.rule in NEIGHBOUR_RULES):
            lines.append(f"       {r.note}")
    return lines


def _verdict_line(report) -> str:
    """``model.ifc: PASS`` with the parcel it was checked on, where it has one; ``PASS (nothing checked)`` where
    its IDS requirements applied to no element of the model."""
    return (f"{report.model}: {'PASS' if report.passed else 'FAIL'}"
            + (" (nothing checked)" if report.passed and report.checked_nothing else "")
            + (f" (parcel {report.parcel_id})" if report.parcel_id else ""))


def register(app: typer.Typer) -> None:
    bim = typer.Typer(help="BIM/IFC models: import into the twin, floor plans.", no_args_is_help=True)
    app.add_typer(bim, name="bim")

    @app.command("check-bim")
    def check_bim(
        model: str = typer.Argument(..., help="The submitted IFC model."),
        rules: str = typer.Option(..., "--rules", "-r", help="Rules YAML (limits, optional ids:, parcel), or an IDS file on its own (information requirements only)."),
        store: Optional[str] = typer.Option(None, "--store", help="Twin store for the parcel the model stands on."),
        html: Optional[str] = typer.Option(None, "--html", help="Write a readable HTML report here."),
        out: Optional[str] = typer.Option(None, "--out", help="Write the JSON report here."),
        crs: Optional[str] = CRS_OPT,
        anchor: Optional[str] = CHECK_ANCHOR_OPT,
        save: bool = typer.Option(False, "--save", help="Record the check (report, HTML, model, file hash) in the "
                                  "twin given by --store, as the map server does; prints its id."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Check an IFC model against the plot's planning rules; exit code 1 when a rule fails."""
        from bim_import.compliance import ComplianceReport, check_compliance, load_rules
        from twin_core.adapters.analysis import COMPLIANCE_EVALUATORS

        if save and not store:
            from twin_core.errors import StoreError

            raise StoreError("--save records the check in a twin: name it with --store city.gpkg (or a PostGIS DSN)")
        for opt, path in (("--html", html), ("--out", out)):  # before the check: --save must not record a check
            check_output_path(f"{opt} {path}", path)          # whose report then cannot be written
        rs = load_rules(rules)
        st = None
        rec = None
        page = None  # the HTML report
        if store:
            from cim.store import open_store

            st = open_store(store)
        try:
            # an X,Y anchor (or the rules' anchor: [x, y]) stands on the twin's ground, as twin bim import --anchor X,Y
            # puts it: the checks take its height from the DEM (bim_import.compliance.place_anchor) and say so
            placed_at = _anchor(anchor)
            twin_crs = crs or rs.crs or (st.crs if st is not None else None) or "EPSG:4544"
            if placed_at is not None:
                _check_anchor(placed_at, twin_crs)
            else:  # the rules file's anchor: [x, y] places it
                _check_anchor(rs.anchor, twin_crs, f"the anchor of the rules file {rules} ('anchor:')")
            if save:
                from bim_import.checks import check_html, record_check

                rec = record_check(st, model, rs, ruleset=os.path.splitext(os.path.basename(rules))[0],
                                   source="cli", checked_by=_os_user(), anchor=placed_at, twin_crs=crs,
                                   evaluators=COMPLIANCE_EVALUATORS)
                report = ComplianceReport.from_dict(rec["report"])
                if html:  # the recorded page: who checked which file (SHA-256) when, and how the model was placed
                    page = check_html(st, rec["check_id"])
            elif html:  # the page opens as a recorded one does (rule set, time, who, file, placement), "not recorded"
                from bim_import.checks import check_unrecorded

                report, unsaved = check_unrecorded(model, rs, store=st, twin_crs=crs, anchor=placed_at,
                                                   ruleset=os.path.splitext(os.path.basename(rules))[0],
                                                   checked_by=_os_user(), evaluators=COMPLIANCE_EVALUATORS)
                page = report.to_html(record=unsaved)
            else:
                report = check_compliance(model, rs, store=st, twin_crs=crs, anchor=placed_at,
                                          evaluators=COMPLIANCE_EVALUATORS)
        finally:
            if st is not None:
                st.close()
        if html:
            with open(html, "w", encoding="utf-8") as fh:
                fh.write(page)
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(report.to_json())
        lines = [_verdict_line(report)] + _result_lines(report)
        if report.anchor_z and report.anchor_z.get("text") and rec is None:  # a recorded check says it below
            lines.append(f"  placed at the anchor, {report.anchor_z['text']}")
        import json

        doc = json.loads(report.to_json())
        if rec is not None:
            doc["check_id"] = rec["check_id"]
            doc["sha256"] = rec["sha256"]
            doc["placement"] = rec["placement"]
            lines.append(f"recorded as check {rec['check_id']} (sha256 {rec['sha256'][:16]}...) in the twin")
            lines.append(f"  placed {rec['placement']['text']}" if rec["placement"]["placed"] else
                         f"  {rec['placement']['text']}")
        emit(doc, as_json, human="\n".join(lines))
        if not report.passed:
            raise typer.Exit(1)

    @bim.command("import")
    def bim_import_cmd(
        target: str = STORE_ARG,
        files: List[str] = typer.Argument(..., help="IFC files."),
        crs: Optional[str] = IMPORT_CRS_OPT,
        anchor: Optional[str] = typer.Option(
            None, "--anchor", help="Place a model without georeference: X,Y[,Z[,ROTATION_DEG]] in the twin CRS "
            "(metres, not lon/lat); without Z, or with an empty one (X,Y,,ROTATION_DEG), the model stands on the "
            "twin's terrain (its DEM's height at X,Y)."),
        building_id: Optional[str] = typer.Option(None, "--building-id", help="Import the (one) file under this "
                                                  "building id (default: bim- and its IfcBuilding GlobalId)."),
        replace: bool = typer.Option(False, "--replace", help="Replace an earlier import of the same building id "
                                     "(its buildings feature, element rows and glTF models) in the same transaction."),
        workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Processes (default: one per file, up to the cores)."),
        quiet: bool = QUIET_OPT,
        as_json: bool = JSON_OPT,
    ) -> None:
        """Import IFC files into a twin (one process per file); exit code 1 if a file failed."""
        from bim_import.importer import import_many
        from cim.store import open_store
        from twin_core.progress import progress_bar

        if building_id is not None and len(files) != 1:
            from twin_core.errors import TwinError

            raise TwinError(f"--building-id names one building: import one file with it, not {len(files)}")
        placed_at = _anchor(anchor)
        with open_store(target) as st:
            _check_anchor(placed_at, crs or st.crs or "EPSG:4544")
            with progress_bar("importing IFC", len(files), quiet=quiet or as_json) as progress:
                summary = import_many(files, st, twin_crs=crs, anchor=placed_at, workers=workers,
                                      progress=progress, building_id=building_id, replace=replace)
        d = summary.to_dict()
        lines = [f"{len(summary.files)} of {len(files)} file(s) imported in {summary.seconds:.1f} s, "
                 f"{summary.elements_read} elements read, {len(summary.failed_elements)} without geometry"]
        for f in summary.files:
            lines.append(f"  {f['building_id']}: {f['elements']} elements, height {f['height_m']:.2f} m, "
                         f"{'unknown' if f['storeys'] is None else f['storeys']} storeys, {len(f['failed'])} failed "
                         f"({f['file']})")
            if f.get("anchor_z", {}).get("text"):
                lines.append(f"    placed at the anchor, {f['anchor_z']['text']}")
            r = f.get("replaced")
            if r:
                lines.append(f"    replaced the earlier import of {r['building_id']}"
                             + (f" (from {r['file']})" if r["file"] else "")
                             + f": {r['feature']} feature(s), {r['elements']} element row(s), {r['blobs']} glTF blob(s)"
                             + ("" if r["feature"] else " (a stale record: its feature had gone with the buildings "
                                                        "layer)"))
        for x in summary.failed_elements[:20]:
            lines.append(f"    no geometry: {x['global_id']} {x['ifc_class']}: {x['reason']}")
        for e in summary.errors:
            lines.append(f"  error: {e['file']}: {e['error']}")
        emit(d, as_json, human="\n".join(lines))
        if summary.errors:
            raise typer.Exit(1)

    @bim.command("delete")
    def bim_delete_cmd(
        target: str = STORE_ARG,
        building_id: str = typer.Argument(..., help="The imported building's id (as `twin bim import` printed it)."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Remove an imported BIM building: its buildings feature, element rows and glTF models (one transaction)."""
        from bim_import.importer import delete_building
        from cim.store import open_store

        with open_store(target) as st:
            r = delete_building(st, building_id)
        emit(r, as_json, human=f"removed {r['building_id']}" + (f" (from {r['file']})" if r["file"] else "")
             + f": {r['feature']} buildings feature(s), {r['elements']} element row(s), {r['blobs']} glTF blob(s)"
             + ("" if r["feature"] else " (its feature was no longer in the buildings layer)"))

    @bim.command("cityjson")
    def bim_cityjson(
        output: str = typer.Argument(..., help="CityJSON 2.0 file to write."),
        files: Optional[List[str]] = typer.Argument(None, help="IFC files to export (or --store)."),
        store: Optional[str] = typer.Option(None, "--store", help="Export the BIM buildings imported into this twin."),
        crs: Optional[str] = IMPORT_CRS_OPT,
        anchor: Optional[str] = ANCHOR_OPT,
    ) -> None:
        """Export BIM buildings as CityJSON 2.0 (LoD1 + LoD2-style Ground/Wall/Roof surfaces) in the twin CRS."""
        import json

        from bim_import.cityjson import from_store, to_cityjson
        from bim_import.importer import prepare_building
        from twin_core.errors import ImportFormatError

        if bool(files) == bool(store):
            raise ImportFormatError("give IFC files or --store STORE (the buildings imported there), not both or neither")
        if store:
            from cim.store import open_store

            with open_store(store) as st:
                doc = from_store(st)
        else:
            doc = to_cityjson([prepare_building(f, crs or "EPSG:4544", anchor=_anchor(anchor)) for f in files])
        with open(output, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        typer.echo(f"wrote {len(doc['CityObjects'])} building(s) to {output}")

    @bim.command("floorplan")
    def bim_floorplan(
        model: str = typer.Argument(..., help="IFC model."),
        storey: str = typer.Argument(..., help="Storey name, GlobalId or index (0 = lowest, -1 = highest; "
                                     "write a negative index after --, e.g. `-- -1`)."),
        cut: float = typer.Option(1.0, "--cut", help="Cut height above the storey floor (m)."),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Write GeoJSON here (default: stdout)."),
        crs: Optional[str] = typer.Option(None, "--crs", help="Georeference into this CRS (default: model metres)."),
        anchor: Optional[str] = ANCHOR_OPT,
    ) -> None:
        """Cut a storey into walkable area, walls and doors (GeoJSON) for crowd simulation."""
        import json

        from shapely.geometry import mapping

        from bim_import.floorplan import storey_floorplan

        key = int(storey) if storey.lstrip("-").isdigit() else storey
        p = storey_floorplan(model, key, cut, twin_crs=crs, anchor=_anchor(anchor))
        feats = [{"type": "Feature", "geometry": mapping(p.walkable), "properties": {"kind": "walkable"}}]
        feats += [{"type": "Feature", "geometry": mapping(w), "properties": {"kind": "wall"}} for w in p.walls]
        feats += [{"type": "Feature", "geometry": mapping(d),
                   "properties": {"kind": "door", "global_id": g, "exit": i in p.exits}}
                  for i, (d, g) in enumerate(zip(p.doors, p.door_ids))]
        feats += [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [list(a), list(b)]},
                   "properties": {"kind": "exit", "global_id": g}} for g, (a, b) in p.exit_lines.items()]
        doc = {"type": "FeatureCollection", "features": feats,
               "properties": {"storey": p.storey, "elevation_m": p.elevation_m, "cut_z_m": p.cut_z_m,
                              "crs": p.crs, "crs_offset": p.crs_offset, "floor_source": p.floor_source}}
        text = json.dumps(doc)
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(text)
            typer.echo(f"storey {p.storey}: walkable {p.walkable.area:.1f} m2, {len(p.walls)} walls, "
                       f"{len(p.doors)} doors ({len(p.exits)} exits) -> {out}")
        else:
            typer.echo(text)

    @bim.command("checks")
    def bim_checks(
        target: str = STORE_ARG,
        check_id: Optional[str] = typer.Argument(None, help="One recorded check (16 hex digits); without it, "
                                                 "the list, newest first."),
        html: Optional[str] = typer.Option(None, "--html", help="With CHECK_ID: write its HTML report here."),
        glb: Optional[str] = typer.Option(None, "--glb", help="With CHECK_ID: write the checked model (GLB) here."),
        delete: bool = typer.Option(False, "--delete", help="With CHECK_ID: remove the check; the removal is "
                                    "recorded (who, when, the file's hash and verdict) in bim_check_deletions."),
        limit: int = typer.Option(50, "--limit", min=1, help="How many to list."),
        offset: int = typer.Option(0, "--offset", min=0, help="Skip this many of the newest first."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """The recorded compliance checks (check-bim --save, the map): list them, show one, or write its report."""
        from bim_import.checks import check_glb, check_html, delete_check, get_check, list_checks
        from cim.store import open_store
        from twin_core.errors import TwinError

        if check_id is None and (html or glb or delete):
            raise TwinError("--html, --glb and --delete act on one check: give its id (twin bim checks "
                            f"{target} CHECK_ID ...); `twin bim checks {target}` lists them")
        for opt, path in (("--html", html), ("--glb", glb)):
            check_output_path(f"{opt} {path}", path)
        if delete and (html or glb):
            raise TwinError("--delete removes the check: write its --html or --glb first, in a command of its own")
        with open_store(target) as st:
            if check_id is None:
                rows, total = list_checks(st, limit=limit, offset=offset)
                lines = [f"{total} recorded check(s)" + (f", {offset + 1}-{offset + len(rows)} shown" if rows and
                                                          (offset or len(rows) < total) else "")]
                for r in rows:
                    # a PASS that checked nothing (IDS requirements that applied to no element) is no approval
                    verdict = ("PASS (nothing checked)" if r.get("nothing_checked") else "PASS") if r["passed"] \
                        else f"FAIL ({r['n_failed']} failed)"
                    lines.append(f"  {r['check_id']}  {_utc(r['created'])}  {verdict}  {r['filename']}  "
                                 f"rules {r['ruleset']}  by {r['checked_by'] or '-'} ({r['source']})")
                emit({"total": total, "offset": offset, "checks": rows}, as_json, human="\n".join(lines))
                return
            if delete:
                rec = delete_check(st, check_id, deleted_by=_os_user())
                emit({"deleted": rec["check_id"]}, as_json,
                     human=f"removed check {rec['check_id']} ({rec['filename']}); the removal is recorded")
                return
            rec = get_check(st, check_id)
            wrote = []
            if html:
                with open(html, "w", encoding="utf-8") as fh:
                    fh.write(check_html(st, check_id))
                wrote.append(html)
            if glb:
                data = check_glb(st, check_id)
                if data is None:
                    raise TwinError(f"check {check_id} kept no model mesh (its model had no geometry): no --glb")
                with open(glb, "wb") as fh:
                    fh.write(data)
                wrote.append(glb)
        from bim_import.compliance import ComplianceReport

        verdict = ("PASS (nothing checked)" if rec.get("nothing_checked") else "PASS") if rec["passed"] else "FAIL"
        lines = [f"check {rec['check_id']}: {verdict}, {rec['filename']} "
                 f"(sha256 {rec['sha256'][:16]}...), rules {rec['ruleset']}"
                 + (f", parcel {rec['parcel_id']}" if rec.get("parcel_id") else "")
                 + f", {_utc(rec['created'])}, "
                 f"by {rec['checked_by'] or '-'} ({rec['source']})"]
        placement = rec.get("placement")  # None: recorded before the placement was kept
        if placement:
            lines.append(f"  placed {placement['text']}" if placement["placed"] else f"  {placement['text']}")
        lines += _result_lines(ComplianceReport.from_dict(rec["report"]))
        lines += [f"wrote {p}" for p in wrote]
        emit(rec, as_json, human="\n".join(lines))
