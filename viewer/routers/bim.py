"""BIM checks: upload an IFC model and a rule set, get the compliance report and the building to highlight."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from importlib import resources

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import HTMLResponse

from viewer.dependencies import get_state, require

router = APIRouter(prefix="/api/bim", tags=["bim"])

_STEP_MAGIC = b"ISO-10303-21;"
KEEP = 50


def builtin_rulesets() -> dict[str, str]:
    """name -> path of the rule sets shipped with bim_import."""
    try:
        d = resources.files("bim_import") / "rules"
        return {p.name[:-5]: str(p) for p in d.iterdir() if p.name.endswith(".yaml")}
    except (ModuleNotFoundError, FileNotFoundError):
        return {}


async def _read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = await upload.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"{what} is larger than the limit of {limit // (1024 * 1024)} MB; "
                                     "send a smaller model or raise --max-upload-mb")
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


@router.post("/checks", status_code=201, summary="Check an IFC model against a rule set",
             dependencies=[Depends(require("bim"))])
async def check(
    request: Request,
    ifc: UploadFile = File(..., description="the IFC (STEP) file"),
    rules: UploadFile | None = File(None, description="a rules YAML; or name a shipped one with ruleset"),
    ruleset: str | None = Form(None, max_length=60, description="name of a shipped rule set (see /api/bim/rulesets)"),
    state=Depends(get_state),
) -> dict:
    import asyncio

    limit = state.settings.max_upload_bytes
    clen = request.headers.get("content-length")
    if clen and clen.isdigit() and int(clen) > limit + 1_000_000:
        raise HTTPException(413, f"the upload is {int(clen) // (1024 * 1024)} MB, over the limit of "
                                 f"{limit // (1024 * 1024)} MB")
    data = await _read_limited(ifc, limit, "the IFC file")
    if not data.lstrip()[:len(_STEP_MAGIC)].upper().startswith(_STEP_MAGIC):
        raise HTTPException(400, "the uploaded file is not an IFC (STEP) file: it must start with 'ISO-10303-21;'. "
                                 "Export IFC2x3 or IFC4 from the authoring tool")
    if rules is not None and ruleset:
        raise HTTPException(400, "give either a rules file or a shipped ruleset name, not both")
    if rules is not None:
        import yaml

        raw = await _read_limited(rules, 1 << 20, "the rules file")
        try:
            rules_obj = yaml.safe_load(raw.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise HTTPException(400, f"the rules file is not valid UTF-8 YAML: {exc}") from None
        if not isinstance(rules_obj, dict):
            raise HTTPException(400, "the rules file must be a YAML mapping with a 'rules:' section")
        if rules_obj.get("ids"):
            raise HTTPException(400, "an uploaded rules file cannot name an 'ids:' file; use a shipped rule set for IDS")
    else:
        shipped = builtin_rulesets()
        name = ruleset or "residential_r2"
        if name not in shipped:
            raise HTTPException(400, f"no shipped rule set {name!r}; choose one of {sorted(shipped)} or upload one")
        rules_obj = shipped[name]
    return await asyncio.get_running_loop().run_in_executor(None, _run_check, state, data, rules_obj,
                                                            ifc.filename or "model.ifc")


def _run_check(state, data: bytes, rules_obj, filename: str) -> dict:
    from bim_import.compliance import RuleSet, check_compliance
    from bim_import.importer import prepare_building

    from viewer.geo import frame_to_geojson, transformer

    safe = "".join(c for c in os.path.basename(filename) if c.isalnum() or c in "._-")[:80] or "model.ifc"
    if not safe.lower().endswith(".ifc"):
        safe += ".ifc"
    crs = state.twin.crs
    with tempfile.TemporaryDirectory(prefix="twin-bim-") as d:
        path = os.path.join(d, safe)
        with open(path, "wb") as fh:
            fh.write(data)
        rs = RuleSet.from_dict(rules_obj) if isinstance(rules_obj, dict) else rules_obj
        b = prepare_building(path, crs)
        report = check_compliance(path, rs, store=state.store, twin_crs=crs, building=b)
    rid = uuid.uuid4().hex[:12]
    import geopandas as gpd

    fp = gpd.GeoDataFrame({"building_id": [b.building_id], "height_m": [b.height_m], "passed": [report.passed]},
                          geometry=[b.footprint], crs=crs)
    lon, lat = transformer(crs, "EPSG:4326").transform(*b.origin)
    entry = {
        "id": rid,
        "passed": report.passed,
        "report": json.loads(report.to_json()),
        "building": {"building_id": b.building_id, "height_m": b.height_m, "storeys": b.storeys,
                     "ground_elev_m": b.ground_elev_m, "origin": [lon, lat],
                     "footprint": frame_to_geojson(fp, crs)},
        "glb_url": f"/api/bim/checks/{rid}/model.glb" if b.glb else None,
        "report_url": f"/api/bim/checks/{rid}/report.html",
    }
    store = state.bim_reports
    store[rid] = {"entry": entry, "glb": b.glb, "html": report.to_html()}
    while len(store) > KEEP:
        del store[next(iter(store))]
    return entry


def _get(state, rid: str) -> dict:
    r = state.bim_reports.get(rid)
    if r is None:
        raise HTTPException(404, f"no BIM check {rid!r} (checks are kept while the server runs)")
    return r


@router.get("/checks", summary="BIM checks run since the server started", dependencies=[Depends(require("read"))])
def list_checks(state=Depends(get_state)) -> list[dict]:
    return [{k: r["entry"][k] for k in ("id", "passed", "report_url")} | {"building_id": r["entry"]["building"]["building_id"]}
            for r in state.bim_reports.values()]


@router.get("/checks/{rid}", summary="One BIM check", dependencies=[Depends(require("read"))])
def get_check(rid: str, state=Depends(get_state)) -> dict:
    return _get(state, rid)["entry"]


@router.get("/checks/{rid}/report.html", response_class=HTMLResponse, summary="The report as HTML",
            dependencies=[Depends(require("read"))])
def report_html(rid: str, state=Depends(get_state)) -> HTMLResponse:
    return HTMLResponse(_get(state, rid)["html"])


@router.get("/checks/{rid}/model.glb", response_class=Response, summary="The checked model as GLB",
            responses={200: {"content": {"model/gltf-binary": {}}}}, dependencies=[Depends(require("read"))])
def model_glb(rid: str, state=Depends(get_state)) -> Response:
    r = _get(state, rid)
    if not r["glb"]:
        raise HTTPException(404, "this model has no mesh to show")
    return Response(r["glb"], media_type="model/gltf-binary")
