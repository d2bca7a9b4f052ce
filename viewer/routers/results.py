"""Simulation and analysis results by scenario and run, shaped for the map.

- raster results (and NumPy grids) -> bitmaps; a stack of steps (an array of
  shape (steps, rows, cols), or rasters named ``<name>_t<seconds>``) is a
  time series the page's slider walks through;
- layer results -> vector tiles of their stored layer (``ref``);
- table results -> JSON rows, and trajectories (id, t, x, y) -> paths with
  timestamps for deck.gl's TripsLayer and the crowd agents.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Response

from viewer.dependencies import get_state, require
from viewer.routers.rasters import STYLE_Q, default_style, point_value, raster_image

router = APIRouter(prefix="/api/results", tags=["results"], dependencies=[Depends(require("read"))])

_STEP = re.compile(r"^(.+?)_t(\d+)\Z")


def result_catalogue(state, scenario: str | None = None, *, about: bool = False,
                     meta: dict | None = None) -> list[dict]:
    """Results grouped for the map: one entry per (scenario, run, name or series); with ``about``, each says what
    its run was (:func:`twin_core.twin.describe_runs`, which parses every run's summary: the listing and the
    scene ask for it, not the grid routes, which look an entry up for every image of the time bar). ``meta``:
    the store's ``get_meta()`` when the caller read it already (shared with :func:`mark_stale`)."""
    from cim.results import list_results as stored_results
    from twin_core.twin import describe_runs

    if meta is None:  # read here once, for the rows and (about) their runs' lines
        meta = state.store.get_meta()
    df = stored_results(state.store, scenario=scenario, meta=meta)
    out: dict[tuple, dict] = {}
    for row in df.itertuples(index=False):
        m = _STEP.match(row.name) if row.kind == "raster" else None
        base = m.group(1) if m else row.name
        key = (row.scenario, row.run, base)
        e = out.setdefault(key, {"scenario": row.scenario, "run": row.run, "name": base, "kind": row.kind,
                                 "ref": row.ref, "created": row.created, "steps": None, "meta": row.meta})
        if m:
            e["kind"] = "raster_series"
            e.setdefault("_steps", []).append((int(m.group(2)), row.name))
    # the run picker's line: storm, area and agents ...
    said = describe_runs(state.store, df, meta=meta) if about else None
    for e in out.values():
        if said is not None:
            e["about"] = said.get((e["scenario"], e["run"]), "")
        if "_steps" in e:
            e["_steps"].sort()
            e["steps"] = [t for t, _ in e["_steps"]]
            e["members"] = [n for _, n in e.pop("_steps")]
        if e["kind"] == "array":
            made = e.get("meta") if isinstance(e.get("meta"), dict) else {}
            e["steps"] = made.get("times_s") or made.get("snapshot_times_s")
            if e["steps"] is None and e["name"] == "density":  # an older crowd run: its times are in its summary
                grid = _array_grid(state, e)
                e["steps"] = grid.times_s if grid is not None else None
    return sorted(out.values(), key=lambda e: (e["scenario"], e["run"], e["name"]))


def _array_grid(state, e: dict):
    from twin_core.adapters.results_export import array_grid

    return array_grid(state.twin, e["scenario"], e["run"], e["name"], e.get("meta"))


def _path(*parts: str) -> str:
    """URL path segments, percent-encoded (a scenario may be named in any script: /api/results/%E6%9A%B4.../)."""
    return "/".join(quote(p, safe="") for p in parts)


def _entry(state, scenario: str, run: str, name: str) -> dict:
    for e in result_catalogue(state, scenario):
        if e["run"] == run and e["name"] == name:
            return e
    have = [(e["run"], e["name"]) for e in result_catalogue(state, scenario)]
    raise HTTPException(404, f"no result {name!r} for scenario {scenario!r} run {run!r}; results there: {have}")


def _grid_of(state, e: dict):
    """The Raster (grid + values) of one step of a raster/array/series result."""
    from cim.raster import Raster

    meta = e.get("meta") or {}
    if e["kind"] == "raster":
        return state.twin.load_result(e["scenario"], e["run"], e["name"]), None
    if e["kind"] == "raster_series":
        return None, None
    if e["kind"] == "array":
        key = ("array", e["scenario"], e["run"], e["name"])

        def load():
            # the grid from the array's meta, or an older crowd run's summary (its density's rows from the south:
            # turned north-up here, once, and kept with the grid in the cache)
            grid = _array_grid(state, e)
            a = state.twin.load_result(e["scenario"], e["run"], e["name"])
            return grid, (a[..., ::-1, :] if grid is not None and grid.south_first and a.ndim in (2, 3) else a)

        grid, arr = state.images.get_or_make(key, load)
        if arr.ndim not in (2, 3):
            raise HTTPException(400, f"result {e['name']!r} is an array of shape {arr.shape}, not a grid")
        grid_name = meta.get("grid", "dem") if isinstance(meta, dict) else "dem"
        if grid is not None:
            tmpl = Raster(np.zeros(arr.shape[-2:], "float32"), grid.transform, grid.crs)
        else:
            if not state.store.has_raster(grid_name):
                raise HTTPException(400, f"result {e['name']!r} has no georeference (meta 'transform') and no raster "
                                         f"{grid_name!r} to borrow the grid from")
            tmpl = state.twin.raster(grid_name)
            if tmpl.shape != arr.shape[-2:]:
                raise HTTPException(400, f"result {e['name']!r} has grid {arr.shape[-2:]}, the {grid_name!r} raster "
                                         f"{tmpl.shape}; save the result with meta={{'transform': ...}}")
        return tmpl, arr
    raise HTTPException(400, f"result {e['name']!r} is a {e['kind']}, not a grid")


def _step(state, e: dict, step: int):
    """(Raster, values or None, step count) for step ``step``."""
    if e["kind"] == "raster_series":
        n = len(e["members"])
        if step >= n:
            raise HTTPException(400, f"step {step} is out of range: {e['name']!r} has {n} steps (0..{n - 1})")
        return state.twin.load_result(e["scenario"], e["run"], e["members"][step]), None, n
    r, arr = _grid_of(state, e)
    if arr is None:
        if step:
            raise HTTPException(400, f"result {e['name']!r} has one step; use step=0")
        return r, None, 1
    if arr.ndim == 2:
        if step:
            raise HTTPException(400, f"result {e['name']!r} has one step; use step=0")
        return r, arr.astype("float64"), 1
    n = arr.shape[0]
    if step >= n:
        raise HTTPException(400, f"step {step} is out of range: {e['name']!r} has {n} steps (0..{n - 1})")
    return r, arr[step].astype("float64"), n


#: ``?time=`` of the grid routes: a step by its time instead of its index (NaN and infinity refused with a 422)
TIME_Q = Query(None, ge=0, allow_inf_nan=False,
               description="seconds from the start of the run: the latest step at or before it (one of times_s; "
                           "instead of step)")


def _step_at(e: dict, step: int, time: float | None) -> int:
    """The step of ``e`` shown at ``time`` (seconds): the latest whose time is at or before it; ``step`` when no
    time is given."""
    if time is None:
        return step
    if step:
        raise HTTPException(400, f"give step={step} or time={time:g}, not both")
    times = e.get("steps")
    if not times:
        raise HTTPException(400, f"result {e['name']!r} has no step times; choose a step with step=")
    # 1 ms of slack: a time copied from times_s and printed with fewer digits still finds its step
    at = [i for i, t in enumerate(times) if t is not None and float(t) <= time + 1e-3]
    if not at or time > float(times[-1]) + 1e-3:
        raise HTTPException(400, f"time={time:g} s is outside {e['name']!r}, whose steps run from {times[0]:g} s "
                                 f"to {times[-1]:g} s")
    return at[-1]


def mark_stale(state, entries: list[dict], meta: dict | None = None) -> list[dict]:
    """Each entry gets ``stale`` (bool) and ``stale_why`` (None when current): True when its scenario (or a
    parent of it) was edited after the run, a base layer or raster its engine read was written after it, or a
    run it used (``flooded_by``: a traffic, access or crowd run made on a flood run) is stale, was re-run after
    it or deleted. The map does not show an old flood as if it were the scenario's answer. The rules are
    :func:`cim.results.stale_results`, which ``twin.runs()`` and ``twin runs`` share; each scenario, layer,
    raster and used run is looked up once per call; ``meta``: the store's ``get_meta()`` the catalogue read
    (:func:`result_catalogue`), whose results index the chain of used runs reads instead of reading it again."""
    from cim.results import mark_stale as mark

    return mark(state.store, entries, scenarios=state.twin.scenarios, meta=meta)


@router.get("", summary="Results, grouped for the map (stale: made before the scenario's latest edit, before a "
                        "base layer or raster it read was replaced, or on a flood run that is stale or was re-run "
                        "since; stale_why says which)")
def list_results(scenario: str | None = Query(None, max_length=255), state=Depends(get_state)) -> list[dict]:
    meta = state.store.get_meta()  # the results index, read once for the catalogue and the stale chain
    return mark_stale(state, result_catalogue(state, scenario, about=True, meta=meta), meta)


@router.get("/{scenario}/{run}/{name}/meta", summary="Bounds, steps and range of a grid result")
def result_meta(scenario: str, run: str, name: str, step: int = Query(0, ge=0, le=100000), style: str | None = STYLE_Q,
                time: float | None = TIME_Q, state=Depends(get_state)) -> dict:
    e = _entry(state, scenario, run, name)
    step = _step_at(e, step, time)
    s = default_style(name, style)
    r, data, n = _step(state, e, step)
    _, bounds, stats = raster_image(state, r, ("result", scenario, run, name, step), s, None, None, data)
    return {"scenario": scenario, "run": run, "name": name, "kind": e["kind"], "steps": n,
            "times_s": e.get("steps"), "step": step, "style": s, "bounds": bounds, **stats,
            "image": f"/api/results/{_path(scenario, run, name)}/image.png?step={step}&style={s}"}


@router.get("/{scenario}/{run}/{name}/image.png", summary="One step of a grid result as a PNG",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def result_png(scenario: str, run: str, name: str, step: int = Query(0, ge=0, le=100000), style: str | None = STYLE_Q,
               vmin: float | None = Query(None, allow_inf_nan=False), vmax: float | None = Query(None, allow_inf_nan=False),
               time: float | None = TIME_Q, state=Depends(get_state)) -> Response:
    e = _entry(state, scenario, run, name)
    step = _step_at(e, step, time)
    s = default_style(name, style)
    r, data, _ = _step(state, e, step)
    png, bounds, _ = raster_image(state, r, ("result", scenario, run, name, step), s, vmin, vmax, data)
    return Response(png, media_type="image/png", headers={"X-Bounds": ",".join(f"{b:.8f}" for b in bounds)})


@router.get("/{scenario}/{run}/{name}/value", summary="A grid result's value at a point")
def result_value(scenario: str, run: str, name: str, lon: float = Query(..., ge=-180, le=180, allow_inf_nan=False),
                 lat: float = Query(..., ge=-90, le=90, allow_inf_nan=False), step: int = Query(0, ge=0, le=100000),
                 time: float | None = TIME_Q, state=Depends(get_state)) -> dict:
    e = _entry(state, scenario, run, name)
    step = _step_at(e, step, time)
    r, data, _ = _step(state, e, step)
    return {**point_value(state, r, lon, lat, data), "step": step}


@router.get("/{scenario}/{run}/{name}/rows", summary="Rows of a table result (JSON records)")
def result_rows(scenario: str, run: str, name: str, limit: int = Query(1000, ge=1, le=100000),
                offset: int = Query(0, ge=0), state=Depends(get_state)) -> dict:
    e = _entry(state, scenario, run, name)
    if e["kind"] not in ("table", "layer", "json"):
        raise HTTPException(400, f"result {name!r} is a {e['kind']}, not a table")
    obj = state.twin.load_result(scenario, run, name)
    if e["kind"] == "json":
        return {"value": obj}
    df = obj.drop(columns=[obj.geometry.name]) if e["kind"] == "layer" else obj
    page = df.iloc[offset:offset + limit]
    import json

    return {"columns": list(page.columns), "rows": json.loads(page.to_json(orient="records")),
            "total": int(len(df)), "offset": offset}


_ID_COLS = ("vehicle_id", "agent_id", "trip_id", "vehicle", "agent", "person", "id")


@router.get("/{scenario}/{run}/{name}/trajectories", summary="Paths with timestamps (lon/lat, seconds)")
def trajectories(scenario: str, run: str, name: str, limit: int = Query(5000, ge=1, le=200000),
                 max_points: int = Query(200_000, ge=100, le=2_000_000,
                                         description="thin the samples evenly to at most this many points"),
                 state=Depends(get_state)) -> dict:
    """A table with an id column (vehicle_id / agent_id / trip_id / id), ``t`` (s), ``x``, ``y`` in the twin CRS."""
    from viewer.geo import transformer

    e = _entry(state, scenario, run, name)
    if e["kind"] != "table":
        raise HTTPException(400, f"result {name!r} is a {e['kind']}, not a trajectory table")
    df = state.images.get_or_make(("table", scenario, run, name), lambda: state.twin.load_result(scenario, run, name))
    idc = next((c for c in _ID_COLS if c in df.columns), None)
    tcol = next((c for c in ("t", "time_s", "time") if c in df.columns), None)
    if idc is None or tcol is None or not {"x", "y"} <= set(df.columns):
        raise HTTPException(400, f"result {name!r} is not a trajectory table: it needs an id column (one of "
                                 f"{list(_ID_COLS)}), t and x, y; it has {list(df.columns)}")
    d = df.sort_values([idc, tcol])
    if len(d) > max_points:  # keep every k-th sample of each path (and its last one)
        k = -(-len(d) // max_points)
        rank = d.groupby(idc).cumcount()
        last = ~d[idc].duplicated(keep="last")
        d = d[(rank % k == 0) | last]
    lon, lat = transformer(state.twin.crs, "EPSG:4326").transform(d["x"].to_numpy(float), d["y"].to_numpy(float))
    ids = d[idc].to_numpy()
    t = d[tcol].to_numpy(float)
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, len(ids)]
    paths = []
    for s, en in list(zip(starts, ends))[:limit]:
        paths.append({"id": str(ids[s]), "path": np.round(np.column_stack([lon[s:en], lat[s:en]]), 7).tolist(),
                      "timestamps": np.round(t[s:en], 2).tolist()})
    return {"count": len(paths), "t_min": float(t.min()) if len(t) else 0.0,
            "t_max": float(t.max()) if len(t) else 0.0, "trips": paths}
