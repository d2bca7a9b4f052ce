"""BIM checks: upload an IFC model and a rule set, get the compliance report and the building to highlight."""

from __future__ import annotations

import os
import tempfile
from importlib import resources

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse

from viewer.dependencies import Principal, get_state, require
from viewer.limits import limited_body_route

#: the most bytes an uploaded rules file (YAML or IDS) may have
RULES_MAX_BYTES = 1 << 20
#: what a request body may carry beyond the IFC size limit (``--max-upload-mb``): a rules file
#: (:data:`RULES_MAX_BYTES`) and the form's other fields and part headers
BODY_MARGIN = RULES_MAX_BYTES + (256 << 10)


def _body_too_large(size: int, limit: int) -> HTTPException:
    return HTTPException(413, f"the upload is {size / (1024 * 1024):.0f} MB or more, over the limit of "
                              f"{limit // (1024 * 1024)} MB for the IFC file; send a smaller model or raise "
                              "--max-upload-mb")


def _body_limit(request: Request) -> int | None:
    """The most bytes an upload's body may carry: the IFC limit (the server's ``max_upload_bytes``) plus
    :data:`BODY_MARGIN`. The body is counted as it arrives (:func:`viewer.limits.limited_body_route`), whether or
    not it says its length: FastAPI parses a form whole (files to temporary files) before the endpoint runs."""
    state = getattr(request.app.state, "twin_state", None)
    if state is None:  # pragma: no cover - only if the lifespan did not run
        return None
    return state.settings.max_upload_bytes + BODY_MARGIN


def _upload_too_large(size: int, request: Request) -> HTTPException:
    return _body_too_large(size, request.app.state.twin_state.settings.max_upload_bytes)


_LimitedUpload = limited_body_route(_body_limit, _upload_too_large)


router = APIRouter(prefix="/api/bim", tags=["bim"], route_class=_LimitedUpload)

_STEP_MAGIC = b"ISO-10303-21;"
MAX_PAGE = 500  # most checks one listing returns


def builtin_rulesets() -> dict[str, str]:
    """name -> path of the rule sets shipped with bim_import."""
    try:
        d = resources.files("bim_import") / "rules"
        return {p.name[:-5]: str(p) for p in d.iterdir() if p.name.endswith(".yaml")}
    except (ModuleNotFoundError, FileNotFoundError):
        return {}


async def _read_limited(upload: UploadFile, limit: int, what: str,
                        todo: str = "send a smaller model or raise --max-upload-mb") -> bytes:
    chunks, size = [], 0
    while True:
        chunk = await upload.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"{what} is larger than the limit of {limit // (1024 * 1024)} MB; {todo}")
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/rulesets", summary="Rule sets shipped with the server", dependencies=[Depends(require("read"))])
def rulesets() -> list[dict]:
    import yaml

    out = []
    for name, path in sorted(builtin_rulesets().items()):
        with open(path, encoding="utf-8") as fh:
            d = yaml.safe_load(fh) or {}
        out.append({"name": name, "title": d.get("name", name), "rules": d.get("rules", {})})
    return out


@router.post("/checks", status_code=201, summary="Check an IFC model against a rule set and record the check")
async def check(
    ifc: UploadFile = File(..., description="the IFC (STEP) file"),
    rules: UploadFile | None = File(None, description="a rules YAML, or an IDS file (.ids, buildingSMART "
                                                      "Information Delivery Specification 1.0: its information "
                                                      "requirements are the rules); or name a shipped rule set "
                                                      "with ruleset"),
    ruleset: str | None = Form(None, max_length=60, description="name of a shipped rule set (see /api/bim/rulesets)"),
    site_lon: float | None = Form(None, description="where the model stands (its origin), longitude WGS 84; with "
                                                    "site_lat it places the model there, whatever its file says"),
    site_lat: float | None = Form(None, description="latitude of the site, WGS 84 (with site_lon)"),
    rotation_deg: float = Form(0.0, description="with a site: the model's x axis, degrees counter-clockwise "
                                                "from grid east"),
    state=Depends(get_state),
    who: Principal = Depends(require("bim")),
) -> dict:
    import asyncio

    limit = state.settings.max_upload_bytes  # the whole body was held to it (and a margin) as it came: _LimitedUpload
    data = await _read_limited(ifc, limit, "the IFC file")
    if not data.lstrip()[:len(_STEP_MAGIC)].upper().startswith(_STEP_MAGIC):
        raise HTTPException(400, "the uploaded file is not an IFC (STEP) file: it must start with 'ISO-10303-21;'. "
                                 "Export IFC2x3 or IFC4 from the authoring tool")
    if rules is not None and ruleset:
        raise HTTPException(400, "give either a rules file or a shipped ruleset name, not both")
    if rules is not None:
        raw = await _read_limited(rules, RULES_MAX_BYTES, "the rules file",
                                  "split an IDS's specifications over several files, or trim the YAML")
        upname = os.path.basename(rules.filename or "")[:100]
        if _is_xml(upname, raw):  # an IDS file: its information requirements are the rules
            rules_obj = await _read_ids(raw, upname or "rules.ids")
            name = f"upload:{upname or 'rules.ids'}"
        else:
            rules_obj, name = _yaml_rules(raw), f"upload:{upname or 'rules.yaml'}"
    else:
        shipped = builtin_rulesets()
        name = ruleset or "residential_r2"
        if name not in shipped:
            raise HTTPException(400, f"no shipped rule set {name!r}; choose one of {sorted(shipped)} or upload one")
        rules_obj = shipped[name]
    anchor = _site_anchor(state, site_lon, site_lat, rotation_deg)
    return await asyncio.get_running_loop().run_in_executor(None, _run_check, state, data, rules_obj,
                                                            ifc.filename or "model.ifc", name, _who(who), anchor)


def _is_xml(filename: str, raw: bytes) -> bool:
    """An uploaded rules file to read as an IDS: named ``.ids`` or ``.xml``, or XML (``<`` first; a rules YAML is a
    mapping, so it never starts so)."""
    return filename.lower().endswith((".ids", ".xml")) or raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


async def _read_ids(raw: bytes, filename: str):
    """The uploaded IDS as the rules of its check, read once and safely (:func:`bim_import.compliance.read_ids`: no
    DTD, entity or external reference, valid against the IDS schema, its xs:patterns through the first gate);
    400 saying what is wrong. Its requirements are checked as ``twin check-bim --rules x.ids`` checks them
    (``ids_only``), but in a child process held to :data:`~bim_import.compliance.UPLOAD_IDS_LIMITS`: a pattern is
    a regular expression the uploader wrote, run on the model's text, and one the gate misses may backtrack
    for hours."""
    import asyncio

    from bim_import import compliance
    from twin_core.errors import RuleError

    try:
        ids = await asyncio.get_running_loop().run_in_executor(None, compliance.read_ids, raw, filename)
    except RuleError as exc:
        raise HTTPException(400, str(exc)) from None
    title = str(ids.info.get("title") or os.path.splitext(filename)[0])[:200]
    return compliance.RuleSet(ids=filename, name=title, ids_only=True, ids_spec=ids,
                              ids_limits=compliance.UPLOAD_IDS_LIMITS)


def _yaml_rules(raw: bytes) -> dict:
    """An uploaded rules YAML as a mapping (aliases refused: :func:`~bim_import.compliance.read_rules_yaml`); 400
    saying what is wrong."""
    import yaml

    from bim_import.compliance import read_rules_yaml

    try:
        rules_obj = read_rules_yaml(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise HTTPException(400, f"the rules file is not valid UTF-8 YAML: {exc}") from None
    if not isinstance(rules_obj, dict):
        raise HTTPException(400, "the rules file must be a YAML mapping with a 'rules:' section, or an IDS file "
                                 "(.ids)")
    if rules_obj.get("ids"):
        raise HTTPException(400, "an uploaded rules YAML cannot name an 'ids:' file (the server reads no file a "
                                 "client names); upload the .ids file itself as the rules file instead")
    return rules_obj


def _site_anchor(state, lon: float | None, lat: float | None, rotation_deg: float):
    """The picked site as an :class:`~bim_import.georef.Anchor` in the twin's CRS, at the terrain's height.

    None when no site was given. A site must be a finite lon/lat inside the twin's terrain (or, without a
    terrain, its CRS's area); the model's 0.00 level is put on the ground there.
    """
    import math

    import numpy as np

    from bim_import.georef import Anchor
    from viewer.geo import lonlat_to_twin

    if lon is None and lat is None:
        return None
    if lon is None or lat is None:
        raise HTTPException(400, "give both site_lon and site_lat (WGS 84 degrees), or neither to use the "
                                 "model's own georeference")
    if not all(math.isfinite(v) for v in (lon, lat, rotation_deg)):
        raise HTTPException(400, f"site_lon, site_lat and rotation_deg must be finite numbers, got {lon}, {lat}, "
                                 f"{rotation_deg}")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise HTTPException(400, f"the site ({lon}, {lat}) is not a longitude/latitude in degrees "
                                 "(longitude -180..180, latitude -90..90)")
    if not -360 <= rotation_deg <= 360:
        raise HTTPException(400, f"rotation_deg must be between -360 and 360, got {rotation_deg}")
    crs = state.store.crs
    x, y = lonlat_to_twin(lon, lat, crs)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise HTTPException(400, f"the site ({lon}, {lat}) cannot be placed in the twin's CRS {crs}")
    z = 0.0
    dem = "dem" if state.store.has_raster("dem") else None
    if dem:
        info = state.store.raster_info(dem)
        b = info.get("bounds")
        if b and not (b[0] <= x <= b[2] and b[1] <= y <= b[3]):
            raise HTTPException(400, f"the site ({lon:.6f}, {lat:.6f}) is outside the twin's terrain "
                                     f"(x {b[0]:.0f}..{b[2]:.0f}, y {b[1]:.0f}..{b[3]:.0f} in {crs}); "
                                     "pick a site on the map inside the city")
        r = state.store.read_raster(dem, bounds=(x - 0.01, y - 0.01, x + 0.01, y + 0.01))
        v = np.ma.filled(np.ma.masked_invalid(np.ma.asarray(r.masked(), dtype=float)), np.nan).ravel()
        v = v[np.isfinite(v)]
        if len(v):
            z = float(v[0])
    return Anchor(float(x), float(y), z, float(rotation_deg))


def _who(p: Principal) -> str:
    """The caller as recorded with a check: role, name and token id."""
    return f"{p.role}:{p.name}" + (f" (token {p.token_id})" if p.token_id else "")


def _run_check(state, data: bytes, rules_obj, filename: str, ruleset: str, who: str, anchor=None) -> dict:
    """Check and record. ``rules_obj``: a shipped rule set's path, an uploaded rules YAML's mapping, or an
    uploaded IDS's :class:`~bim_import.compliance.RuleSet` (:func:`_read_ids`)."""
    from bim_import.checks import record_check
    from twin_core.adapters.analysis import COMPLIANCE_EVALUATORS
    from twin_core.errors import GeoreferenceError, TwinError

    safe = "".join(c for c in os.path.basename(filename) if c.isalnum() or c in "._-")[:80] or "model.ifc"
    if not safe.lower().endswith(".ifc"):
        safe += ".ifc"
    with tempfile.TemporaryDirectory(prefix="twin-bim-") as d:
        path = os.path.join(d, safe)
        with open(path, "wb") as fh:
            fh.write(data)
        # computed outside the store lock; recorded in one transaction of the locked store
        try:
            rec = record_check(state.store, path, rules_obj, ruleset=ruleset, filename=filename[:200] or safe,
                               source="api", checked_by=who, anchor=anchor,
                               method="anchor" if anchor is not None else "auto", evaluators=COMPLIANCE_EVALUATORS)
        except TwinError as exc:  # name the upload, not the server's temporary path
            unplaced = isinstance(exc, GeoreferenceError) and anchor is None
            problem = getattr(exc, "problem", None) if unplaced else None
            # a model that does not say where it stands in this city: the map can place it, so its hint comes
            # first, and the Python anchor=Anchor(...) and the CLI's --anchor of the error's advice are left out
            msg = problem or str(exc)
            msg = msg.replace(path, safe).replace(d, "")
            if state.store.uri:  # the server's own file or database is none of the caller's business
                msg = msg.replace(str(state.store.uri), "the twin")
            if "stands on no parcel" in msg:
                msg += ("; or pick the site inside a parcel on the map" if anchor is not None else
                        "; on the map: press 'Pick site' and click the parcel it stands on")
            if unplaced:
                msg += (". On the map: press 'Pick site', click where the building stands and check again; "
                        "over the API: send site_lon and site_lat (WGS 84) with the upload")
                if problem and getattr(exc, "in_model", ""):
                    msg += f". Or fix the model's file: {exc.in_model}"
            if msg == str(exc):
                raise
            try:
                err = type(exc)(msg)
            except Exception:
                err = TwinError(msg)
            raise err from None
    return _entry(rec)


def _entry(rec: dict) -> dict:
    """A recorded check as the page shows it: footprint as GeoJSON and origin in WGS 84, links."""
    import geopandas as gpd
    import shapely

    from viewer.geo import frame_to_geojson, transformer

    rid, crs = rec["check_id"], rec["crs"]
    origin, footprint = None, {"type": "FeatureCollection", "features": []}
    if rec["origin_x"] is not None and rec["origin_y"] is not None:  # else not placed (an IDS check): no site
        fp = gpd.GeoDataFrame({"building_id": [rec["building_id"]], "height_m": [rec["height_m"]],
                               "passed": [rec["passed"]]}, geometry=[shapely.from_wkt(rec["footprint_wkt"])], crs=crs)
        lon, lat = transformer(crs, "EPSG:4326").transform(rec["origin_x"], rec["origin_y"])
        origin = [lon, lat]
        footprint = frame_to_geojson(fp, crs)
    return {
        "id": rid,
        "passed": rec["passed"],
        **{k: rec[k] for k in _RECORD_KEYS},
        "report": rec["report"],
        "building": {"building_id": rec["building_id"], "height_m": rec["height_m"], "storeys": rec["storeys"],
                     "ground_elev_m": rec["ground_elev_m"], "origin": origin, "footprint": footprint},
        "glb_url": f"/api/bim/checks/{rid}/model.glb" if rec["has_glb"] else None,
        "report_url": f"/api/bim/checks/{rid}/report.html",
    }


_RECORD_KEYS = ("created", "filename", "sha256", "size_bytes", "ruleset", "ruleset_title", "n_failed", "parcel_id",
                "source", "checked_by", "placement")


def _found(rid: str, read):
    """``read()`` for check ``rid``, or 404 with a message a person can act on."""
    from twin_core.errors import LayerNotFoundError

    try:
        return read()
    except LayerNotFoundError:
        shown = rid[:40] + ("..." if len(rid) > 40 else "")
        raise HTTPException(404, f"no BIM check {shown!r}: ids are 16 hex digits; "
                                 "GET /api/bim/checks lists the recorded checks") from None


@router.get("/checks", summary="Recorded BIM checks, newest first (total in X-Total-Count)",
            dependencies=[Depends(require("read"))])
def list_checks(response: Response, limit: int = Query(50, ge=1, le=MAX_PAGE), offset: int = Query(0, ge=0, le=10**9),
                state=Depends(get_state)) -> list[dict]:
    from bim_import.checks import list_checks as stored

    rows, total = stored(state.store, limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return [{"id": r["check_id"], "report_url": f"/api/bim/checks/{r['check_id']}/report.html"} | r for r in rows]


@router.get("/checks/{rid}", summary="One recorded BIM check", dependencies=[Depends(require("read"))])
def get_check(rid: str, state=Depends(get_state)) -> dict:
    from bim_import.checks import get_check as stored

    return _entry(_found(rid, lambda: stored(state.store, rid)))


@router.get("/checks/{rid}/report.html", response_class=HTMLResponse, summary="The report as HTML",
            dependencies=[Depends(require("read"))])
def report_html(rid: str, state=Depends(get_state)) -> HTMLResponse:
    from bim_import.checks import check_html

    return HTMLResponse(_found(rid, lambda: check_html(state.store, rid)))


@router.get("/checks/{rid}/model.glb", response_class=Response, summary="The checked model as GLB",
            responses={200: {"content": {"model/gltf-binary": {}}}}, dependencies=[Depends(require("read"))])
def model_glb(rid: str, state=Depends(get_state)) -> Response:
    from bim_import.checks import check_glb

    glb = _found(rid, lambda: check_glb(state.store, rid))
    if not glb:
        raise HTTPException(404, "this model has no mesh to show")
    return Response(glb, media_type="model/gltf-binary")


@router.delete("/checks/{rid}", summary="Remove a recorded BIM check (admin only; the removal itself is recorded)")
def delete_check(rid: str, state=Depends(get_state), who: Principal = Depends(require("admin"))) -> dict:
    from bim_import.checks import delete_check as stored

    rec = _found(rid, lambda: stored(state.store, rid, deleted_by=_who(who)))
    return {"deleted": rid, "sha256": rec["sha256"], "passed": rec["passed"], "created": rec["created"]}
