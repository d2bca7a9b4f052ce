"""Scenarios: list, create, edit, diff, delete (edits never touch the base).

Scenario names may be in any script (``暴雨50年``; see :func:`cim.scenario.check_scenario_name`): in a path
or a query string they travel percent-encoded (``/api/scenarios/%E6%9A%B4%E9%9B%A850%E5%B9%B4``), and
every name given is taken in Unicode NFC, the form the store keeps.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field, field_validator

from cim.scenario import BASE, OutsideAreaError, check_scenario_name, normalise_scenario_name
from viewer.dependencies import ScenarioQuery, get_state, require
from viewer.jobs import UnknownEngine, adapter_engine
from viewer.limits import limited_body_route

#: the most an edit's body may carry: 100,000 ids (``EditIn.ids``) of up to 60 characters, or a layer's worth of
#: drawn or imported features as GeoJSON
EDIT_BODY = 16 * 1024 * 1024


def _edit_too_large(size: int, request) -> HTTPException:
    limit = f"over the limit of {EDIT_BODY // (1024 * 1024)} MB"
    if not request.url.path.rstrip("/").endswith("/edits"):  # creating a scenario is no edit: its body is small
        return HTTPException(413, f"the request body is {size // 1024} kB, {limit}; a scenario is created with a "
                                  "name, a description (at most 2000 characters) and a parent: record its edits "
                                  "afterwards (POST /api/scenarios/NAME/edits)")
    return HTTPException(413, f"the edit is {size // 1024} kB, {limit}; send it in parts (several edits), or import "
                              "a large layer with `twin import`")


router = APIRouter(prefix="/api/scenarios", tags=["scenarios"],
                   route_class=limited_body_route(lambda request: EDIT_BODY, _edit_too_large))


class ScenarioIn(BaseModel):
    # room for a decomposed spelling of a 63-character name; the check counts the NFC form
    name: str = Field(..., max_length=255, description="letters and digits of any script, '_' or '-', starting with "
                                                       "a letter or digit, at most 63 (not 'base' or 'diff')",
                      examples=["levee_2m", "暴雨50年"])
    description: str = Field("", max_length=2000)
    parent: str = Field("base", max_length=255)

    @field_validator("name")
    @classmethod
    def _scenario_name(cls, v: str) -> str:
        # the store's own check (a ScenarioError is a ValueError: a 422 naming what is wrong), which also
        # keeps out 'diff' (the route /api/scenarios/diff) and 'base' (the city itself) in any case
        return check_scenario_name(v)

    @field_validator("parent")
    @classmethod
    def _nfc(cls, v: str) -> str:
        return normalise_scenario_name(v)


class EditIn(BaseModel):
    """One edit. ``features`` are GeoJSON in lon/lat; ``polygon`` a GeoJSON Polygon in lon/lat."""

    op: Literal["add", "remove", "modify", "set_param", "close_roads", "raise_ground"]
    layer: str | None = Field(None, max_length=60)
    features: dict[str, Any] | None = None
    ids: list[str] | None = Field(None, max_length=100000)
    key: str | None = Field(None, max_length=100)
    value: Any = None
    polygon: dict[str, Any] | None = None
    raster: str = Field("dem", max_length=60)
    delta: float | None = Field(None, ge=-1000, le=1000, allow_inf_nan=False)


def _scenario(state, name: str, *, change: str | None = None):
    """The scenario ``name`` names (in any spelling that is the same in NFC), or a 404; ``change`` (what a
    request would do to it, e.g. "edited"): the base is refused with a 409 that says what to do instead."""
    name = normalise_scenario_name(name)
    if change is not None and isinstance(name, str) and name.casefold() == BASE:
        raise HTTPException(409, f"{name!r} is the city itself, which is never {change}: a scenario records its "
                                 "edits over the city and leaves the city as it is. To try a change, create a scenario "
                                 "(POST /api/scenarios {\"name\": \"...\"}) and edit that")
    if name == BASE or name not in state.twin.scenarios:
        raise HTTPException(404, f"no scenario {name!r}; scenarios: {state.twin.scenarios.names()}")
    return state.twin.scenarios.get(name)


def _check_param(key: str, value: Any, state) -> None:
    """A 422 for a scenario parameter no engine reads (with the one meant: a scenario parameter, or a job
    parameter given in the wrong place) or for a value of a type the engine does not take: the map records
    nothing that would change no run, or make the run fail later (link ids are checked against the edited
    scenario's road links by its ``set_param``, the twin's check)."""
    import difflib

    from cim.scenario import did_you_mean

    from twin_core.adapters.scenario_params import check_scenario_param, scenario_params
    from twin_core.errors import ParameterError

    known = scenario_params()
    if key not in known:
        hint = did_you_mean(key, known)
        if not hint:  # a job's parameter (drainage_mm_h of a flood run) set on the scenario instead
            for engine in state.jobs.available():
                try:
                    taken = getattr(state.jobs.engines.get(engine) or adapter_engine(engine), "parameters", None)
                except UnknownEngine:
                    continue
                near = difflib.get_close_matches(key, taken or [], n=1, cutoff=0.8)
                if near:
                    hint = (f"; {near[0]!r} is a parameter of the {engine} run, not of the scenario: give it when "
                            f"you start the run (POST /api/jobs {{\"engine\": \"{engine}\", \"scenario\": ..., "
                            f"\"params\": {{\"{near[0]}\": ...}}}})")
                    break
        raise HTTPException(422, f"nothing was recorded: no engine reads scenario parameter {key!r}, so it would "
                                 f"change no run; the engines read {', '.join(sorted(known))}" + hint)
    try:
        check_scenario_param(key, value)
    except ParameterError as exc:
        raise HTTPException(422, f"nothing was recorded: {exc}") from None


def _invalidate_with_children(state, name: str) -> None:
    """Forget the cached tiles and images of ``name`` and of every scenario built on it: a parent's edit
    changes what its children show too."""
    meta = state.twin.scenarios.list()
    parent = dict(zip(meta["name"], meta["parent"]))
    family, grew = {name}, True
    while grew:
        kids = {n for n, p in parent.items() if p in family} - family
        family |= kids
        grew = bool(kids)
    for n in sorted(family):
        state.invalidate(n)


def _records(df) -> list[dict]:
    return json.loads(df.to_json(orient="records", date_format="iso")) if len(df) else []


@router.get("", summary="List the scenarios", dependencies=[Depends(require("read"))])
def list_scenarios(state=Depends(get_state)) -> list[dict]:
    return _records(state.twin.scenarios.list())


@router.post("", status_code=201, summary="Create a scenario", dependencies=[Depends(require("scenarios"))])
def create_scenario(body: ScenarioIn, state=Depends(get_state)) -> dict:
    with state.lock:  # checked and created together: no other request makes the name in between
        scenarios = state.twin.scenarios
        if body.name in scenarios:
            # the store's refusal tells a notebook user about create(..., exist_ok=True / replace=True);
            # a map user can only pick another name or delete the scenario
            n = scenarios.get(body.name).n_edits  # edits as undo takes them back, as the list counts them
            raise HTTPException(409, f"a scenario {body.name!r} exists already ({n} edit{'' if n == 1 else 's'}); "
                                     "pick another name or delete it first")
        twin = next((n for n in scenarios.names() if n != body.name and _skeleton(n) == _skeleton(body.name)), None)
        if twin is not None:  # "Levee" beside "levee", or a Cyrillic "е" for a Latin "e": two names read as one
            raise HTTPException(409, f"scenario name {body.name!r} reads as the existing scenario {twin!r} (they differ "
                                     "only in case or in letters that look alike); use that scenario, or pick a name "
                                     "that reads differently")
        s = scenarios.create(body.name, body.description, parent=body.parent)
    return {"name": s.name, "description": body.description, "parent": body.parent}  # the names in NFC


#: letters of other scripts that look like Latin ones (Cyrillic, Greek), as their Latin look-alike, after casefold
_LOOKALIKE = str.maketrans({"а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
                            "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
                            "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "α": "a", "β": "b", "ε": "e", "η": "n",
                            "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
                            "ѵ": "v", "ɡ": "g"})


def _skeleton(name: str) -> str:
    """A scenario name as it reads: NFKC, case folded, letters of other scripts that look like Latin ones as those
    (``"Levee"`` and ``"lеvee"`` with a Cyrillic "е" read as ``"levee"``)."""
    import unicodedata

    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).translate(_LOOKALIKE)


@router.get("/diff", summary="What differs between two scenarios", dependencies=[Depends(require("read"))])
def diff(a: ScenarioQuery, b: ScenarioQuery, state=Depends(get_state)) -> dict:
    for n in (a, b):
        if n not in state.twin.scenarios:
            raise HTTPException(404, f"no scenario {n!r}; scenarios: {['base'] + state.twin.scenarios.names()}")
    rows = _records(state.twin.scenarios.diff(a, b))
    return {"a": a, "b": b, "changes": rows, "count": len(rows)}


@router.get("/{name}", summary="A scenario with its edits and parameters", dependencies=[Depends(require("read"))])
def get_scenario(name: str, state=Depends(get_state)) -> dict:
    s = _scenario(state, name)
    meta = state.twin.scenarios.list()
    row = meta[meta["name"] == s.name].iloc[0]
    edits = s.edits().drop(columns=["geom_wkb"], errors="ignore")
    return {"name": s.name, "description": row["description"], "parent": row["parent"], "params": s.params(),
            "edits": _records(edits)}


@router.delete("/{name}", summary="Delete a scenario, its edits and its stored results", dependencies=[Depends(require("scenarios"))])
def delete_scenario(name: str, state=Depends(get_state)) -> dict:
    with state.lock:  # no edit is recorded between the check and the delete
        name = _scenario(state, name, change="deleted").name
        jobs = getattr(state, "jobs", None)
        busy = [j for j in (list(jobs.jobs.values()) if jobs is not None else [])
                if j.scenario == name and j.status in ("queued", "running")]
        if busy:  # the job would fail once its scenario is gone (or save runs under a scenario that is not)
            listed = ", ".join(f"{j.id} ({j.engine} run {j.run}, {j.status})" for j in busy[:5])
            more = f" and {len(busy) - 5} more" if len(busy) > 5 else ""
            raise HTTPException(409, f"scenario {name!r} has {len(busy)} job(s) queued or running on it: "
                                     f"{listed}{more}; cancel {'it' if len(busy) == 1 else 'them'} first "
                                     "(DELETE /api/jobs/JOB_ID) or wait for them to end, then delete the scenario")
        state.twin.scenarios.delete(name)
    state.invalidate(name)
    return {"deleted": name}


@router.post("/{name}/edits", status_code=201, summary="Record an edit in a scenario",
             dependencies=[Depends(require("scenarios"))])
def add_edit(name: str, edit: EditIn, state=Depends(get_state)) -> dict:
    # the whole check-and-record under the store's lock: concurrent edits get distinct, ordered sequence
    # numbers, a duplicate add is refused, and a scenario deleted meanwhile gets no orphaned edits
    with state.lock:
        out = _add_edit(name, edit, state)
    _invalidate_with_children(state, out["scenario"])  # the name in NFC, as the cached tiles and images are keyed
    return out


@router.delete("/{name}/edits/last", summary="Take back a scenario's latest edit",
               dependencies=[Depends(require("scenarios"))])
def undo_edit(name: str, state=Depends(get_state)) -> dict:
    """Take back the latest edit of the scenario (all the roads one area closed, one levee, ...): the
    scenario is then as it was before that edit. A parent's edits are taken back on the parent. 409 when the
    scenario has no edits of its own left."""
    with state.lock:  # no other edit lands between finding the last one and deleting it
        s = _scenario(state, name, change="edited")
        gone = s.undo(missing_ok=True)
        if not len(gone):
            raise HTTPException(409, f"scenario {s.name!r} has no edits of its own to undo"
                                     + ("" if s.scenarios.list().set_index("name").loc[s.name, "parent"] == "base"
                                        else "; its parent's edits are undone on the parent"))
        left = s.n_edits
    _invalidate_with_children(state, s.name)
    ops = sorted(set(gone["op"]))
    return {"scenario": s.name, "undone": {"op": ops[0] if len(ops) == 1 else ops,
                                           "targets": sorted(set(gone["target"].astype(str))), "rows": int(len(gone)),
                                           "created": str(gone["created"].iloc[-1])},
            "edits": left}


def _lonlat_ok(geoms) -> bool:
    import numpy as np
    import shapely

    xy = shapely.get_coordinates(geoms)
    return bool(np.isfinite(xy).all() and (np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all())


def _outside_for_the_map(exc: OutsideAreaError, drawn=None) -> str:
    """An edit drawn outside the area the twin's CRS covers, in the words of the map's edit form; ``drawn``: the
    features as they came, in lon/lat (where they are is said in the degrees the user drew them in, not as
    the projected box's corners taken back to lon/lat)."""
    from cim.crs import fmt_box

    n = len(exc.ids)
    box = exc.lonlat
    if drawn is not None and len(drawn):
        wanted = {str(i) for i in exc.ids}
        rows = next((drawn[drawn[c].astype(str).isin(wanted)] for c in drawn.columns
                     if c != drawn.geometry.name and drawn[c].astype(str).isin(wanted).any()), drawn)
        box = tuple(round(float(v), 5) for v in rows.total_bounds)
    where = f" at lon/lat {fmt_box(box)}," if box is not None else ""
    return (f"the drawn {'shape' if n == 1 else f'{n} shapes'} for {exc.layer!r} ({exc.named()}) "
            f"{'lies' if n == 1 else 'lie'}{where} outside the area this twin's map covers (its CRS "
            f"{exc.crs_name} is for {exc.area}); draw inside the city. Nothing was recorded")


def _add_edit(name: str, edit: EditIn, state) -> dict:
    import geopandas as gpd
    import shapely

    s = _scenario(state, name, change="edited")
    crs = state.twin.crs
    need_layer = edit.op in ("add", "remove", "modify", "close_roads")
    layer = edit.layer or ("road_links" if edit.op == "close_roads" else None)
    if need_layer and (layer is None or not state.store.has_layer(layer)):
        raise HTTPException(400 if layer is None else 404, f"edit {edit.op!r} needs an existing 'layer'; "
                                                           f"layers: {[n for n in state.store.list_layers() if not n.startswith('res_')]}")

    def frame(with_geom: bool):
        if not edit.features or edit.features.get("type") != "FeatureCollection":
            raise HTTPException(400, f"edit {edit.op!r} needs 'features': a GeoJSON FeatureCollection in lon/lat")
        try:
            g = gpd.GeoDataFrame.from_features(edit.features["features"], crs="EPSG:4326")
        except Exception as exc:
            raise HTTPException(400, f"'features' is not valid GeoJSON: {exc}") from None
        if not len(g):
            raise HTTPException(400, "'features' is empty")
        if not _lonlat_ok(g.geometry.values[g.geometry.notna().to_numpy()]):
            raise HTTPException(400, "'features' must be GeoJSON in lon/lat (longitude -180..180, latitude -90..90)")
        drawn.append(g)
        if with_geom or g.geometry.notna().all():
            return g.to_crs(crs)
        return g.drop(columns=[g.geometry.name])

    def polygon():
        if not edit.polygon:
            raise HTTPException(400, f"edit {edit.op!r} needs 'polygon': a GeoJSON Polygon in lon/lat")
        try:
            poly = shapely.from_geojson(json.dumps(edit.polygon))
        except Exception as exc:
            raise HTTPException(400, f"'polygon' is not valid GeoJSON: {exc}") from None
        if poly.geom_type not in ("Polygon", "MultiPolygon") or poly.is_empty:
            raise HTTPException(400, f"'polygon' must be a non-empty Polygon, got "
                                     f"{'an empty ' if poly.is_empty else 'a '}{poly.geom_type}")
        if not _lonlat_ok([poly]):
            raise HTTPException(400, "'polygon' must be in lon/lat (longitude -180..180, latitude -90..90)")
        from viewer.geo import reproject_geoms

        return reproject_geoms([poly], "EPSG:4326", crs)[0]

    result: Any = None
    drawn: list = []  # the features in lon/lat, as they were drawn
    if edit.op in ("add", "modify"):
        g = frame(edit.op == "add")
        try:
            (s.add_features if edit.op == "add" else s.modify_features)(layer, g)
        except OutsideAreaError as exc:  # the core's message tells Python to reproject; the map user drew it
            raise HTTPException(400, _outside_for_the_map(exc, drawn[0] if drawn else None)) from None
    elif edit.op == "remove":
        if not edit.ids:
            raise HTTPException(400, "edit 'remove' needs 'ids': the feature ids to remove")
        s.remove_features(layer, edit.ids)
    elif edit.op == "set_param":
        if not edit.key:
            raise HTTPException(400, "edit 'set_param' needs 'key' (and 'value')")
        from twin_core.errors import ParameterError

        _check_param(edit.key, edit.value, state)
        try:
            s.set_param(edit.key, edit.value)  # the twin's check too: link ids against the scenario's roads
        except ParameterError as exc:
            raise HTTPException(422, f"nothing was recorded: {exc}") from None
    elif edit.op == "close_roads":
        result = s.close_roads(polygon(), layer=layer)
    else:  # raise_ground
        if edit.delta is None:
            raise HTTPException(400, "edit 'raise_ground' needs 'delta' (metres, may be negative) and 'polygon'")
        if not state.store.has_raster(edit.raster):
            raise HTTPException(404, f"no raster {edit.raster!r} to raise")
        w = s.patch_raster(edit.raster, polygon(), delta=edit.delta)
        result = {"window": [w.row_off, w.col_off, w.height, w.width]}
    e = s.edits()
    # "edits": the scenario's own edits as the list counts them and an undo takes them back (one a call)
    return {"scenario": s.name, "op": edit.op, "result": result, "edits": s.n_edits,
            "created": str(e["created"].iloc[-1]) if len(e) else None}  # the edit's key for an undo
