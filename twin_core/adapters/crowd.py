"""Crowd adapter: a twin (plaza area or IFC storey) -> :mod:`simulation.crowd` -> results in the store.

Walkable areas come from

- the CIM: an ``areas`` feature (a plaza, a station forecourt) minus the
  buildings standing in it, as of a scenario; exits are where its outline
  meets the road network (the stretches of the outline within ``road_reach``
  of a road link), or given explicitly;
- an IFC storey: :func:`bim_import.storey_floorplan` (the floor minus walls and
  columns; external doors are the exits).

Scenario edits apply: buildings added or removed in a scenario change the
plaza, and the scenario parameter ``crowd_closed_exits`` (an exit name or a
list of them, ``twin scenario set city.gpkg NAME crowd_closed_exits '["..."]'``)
closes exits.

Results saved under ``scenario`` + ``run`` (see :func:`cim.results.save_result`):
``summary`` (dict), tables ``evacuation_curve``, ``exit_usage``, ``jams``,
``trajectories`` (every ``trajectory_interval`` s, for the viewer),
``waypoint_passages`` (when agents on a route reached each waypoint),
``line_crossings`` (each crossing of a measurement line: time, agent, line,
direction, speed; when the run had measurement lines), array
``density`` (time, rows, cols; persons/m2: density maps over time) stored as a
flood's ``depth_snapshots``: rows from the north, its grid and times in its meta
(runs stored before 2026-12-05 kept the engine's rows from the south and the grid
only in the summary's ``density_grid``; ``twin.snapshots(run)`` and
``twin.export_result`` read either, north-up), raster ``max_density``, and table
``fundamental_diagram`` (per trajectory frame and occupied density cell:
density and mean speed, see ``CrowdResult.fundamental_diagram_cells``).

Examples
--------
>>> from shapely.geometry import box
>>> exits = exits_from_roads(box(0, 0, 20, 10), [((25, -5), (25, 15))], road_reach=6.0, min_width=2.0)
>>> exits
{'road0:0': [(20.0, 0.0), (20.0, 10.0)]}
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from twin_core.errors import GeometryError, LayerNotFoundError, ParameterError, TwinWarning, twin_warn
from twin_core.units import as_count, parse_duration

__all__ = ["CrowdRun", "plaza_area", "storey_area", "exits_from_roads", "run_crowd", "save_crowd_result",
           "flood_walkable", "CLOSED_EXITS_PARAM", "WADING_DEPTH_M", "WADING_DV_M2_S"]

CLOSED_EXITS_PARAM = "crowd_closed_exits"


def exits_from_roads(polygon, roads, *, road_reach: float = 10.0, min_width: float = 1.0,
                     names=None) -> dict[str, list[tuple[float, float]]]:
    """Exit lines where the outline of ``polygon`` comes within ``road_reach`` of a road.

    ``roads`` is a sequence of LineStrings or coordinate lists (road centrelines);
    ``names`` their ids. Each straight piece of the outline near the roads
    becomes one exit, named ``"<nearest road>:<k>"`` (two carriageways of one
    street give one set of exits); pieces shorter than ``min_width`` are dropped.
    """
    import shapely
    from shapely.geometry import LineString, Point

    polys = list(getattr(polygon, "geoms", [polygon]))
    outline = shapely.union_all([p.exterior for p in polys])
    names = list(names) if names is not None else [f"road{k}" for k in range(len(roads))]
    lines = [r if isinstance(r, LineString) else LineString(r) for r in roads]
    if not lines:
        return {}
    near = outline.intersection(shapely.union_all([ln.buffer(road_reach) for ln in lines]))
    near = shapely.line_merge(near) if near.geom_type == "MultiLineString" else near
    exits: dict[str, list[tuple[float, float]]] = {}
    counts: dict[str, int] = {}
    for piece in getattr(near, "geoms", [near]):
        if piece.is_empty or not hasattr(piece, "coords"):
            continue
        c = np.asarray(piece.coords)[:, :2]
        for a, b in zip(c[:-1], c[1:]):
            if math.hypot(*(b - a)) < min_width:
                continue
            mid = Point((a + b) / 2)
            road = names[int(np.argmin([ln.distance(mid) for ln in lines]))]
            k = counts.get(road, 0)
            counts[road] = k + 1
            exits[f"{road}:{k}"] = [(float(a[0]), float(a[1])), (float(b[0]), float(b[1]))]
    return exits


def _pick_area(gdf, area: str):
    ids = gdf["area_id"].astype(str)
    names = gdf["name"].fillna("").astype(str) if "name" in gdf else pd.Series([""] * len(gdf), index=gdf.index)
    hit = gdf[(ids == area) | (names.str.lower() == str(area).lower())]
    if hit.empty:
        hit = gdf[names.str.lower().str.contains(str(area).lower(), regex=False) & (str(area) != "")]
    if len(hit) != 1:
        choices = [f"{i} ({n})" for i, n in zip(ids, names)]
        what = "no" if hit.empty else f"{len(hit)}"
        raise LayerNotFoundError(f"{what} area matches {area!r}; choose one of {choices} (id or name)")
    return hit.iloc[0]


def plaza_area(twin, area: str, *, scenario: str | None = None, exits: dict | None = None,
               road_reach: float = 10.0, min_part_m2: float = 20.0):
    """The walkable area of a plaza (an ``areas`` feature) minus its buildings, with exits.

    Returns ``(WalkableArea, info)``; ``info`` has the area's id, name, kind,
    the buildings removed and where the exits came from.
    """
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    from simulation.crowd import WalkableArea

    areas = twin.layer("areas", scenario)
    row = _pick_area(areas, area)
    geom = row.geometry
    bld_ids: list[str] = []
    if "buildings" in twin.layers():
        b = twin.layer("buildings", scenario, bbox=tuple(geom.bounds))
        if len(b):
            b = b[b.intersects(geom)]
            bld_ids = b["building_id"].astype(str).tolist() if "building_id" in b else []
            if len(b):
                geom = geom.difference(shapely.union_all(b.geometry.values))
    parts = [p for p in getattr(geom, "geoms", [geom]) if isinstance(p, Polygon) and p.area >= min_part_m2]
    if not parts:
        raise GeometryError(f"area {row['area_id']!r} has no open ground left once its buildings are removed")
    parts.sort(key=lambda p: -p.area)
    # keep the largest connected part: crowds in enclosed courtyards cannot reach the plaza's exits
    walk = parts[0]
    walk = shapely.set_precision(walk, 0.01)
    if isinstance(walk, MultiPolygon):
        walk = max(walk.geoms, key=lambda p: p.area)
    source = "explicit"
    if exits is None:
        source = "roads"
        roads = twin.layer("road_links", scenario, bbox=tuple(walk.buffer(road_reach).bounds)) \
            if "road_links" in twin.layers() else None
        if roads is None or roads.empty:
            raise GeometryError(f"no road comes within {road_reach} m of area {row['area_id']!r}, so no exit can be "
                                "derived; pass exits={'name': [(x1, y1), (x2, y2)]} or a larger road_reach")
        exits = exits_from_roads(walk, list(roads.geometry.values), road_reach=road_reach,
                                 names=roads["link_id"].astype(str).tolist())
        if not exits:
            raise GeometryError(f"no road comes within {road_reach} m of the outline of area {row['area_id']!r}; "
                                "pass exits= or a larger road_reach")
    info = {"area_id": str(row["area_id"]), "name": row.get("name"), "kind": row.get("kind"),
            "buildings_removed": bld_ids, "exits_from": source, "walkable_m2": float(walk.area)}
    return WalkableArea(walk, exits=exits), info


def storey_area(model_or_path, storey, *, cut_height: float = 1.0, twin_crs: str | None = None, anchor=None):
    """The walkable area of one IFC storey (doors on the outline are the exits).

    ``storey`` is a storey name, GlobalId or index (0: the lowest). With ``twin_crs`` the plan is placed in
    the twin's CRS (from the model's georeference, or ``anchor``, a :class:`bim_import.Anchor`, for a model
    without one or outside the CRS's area); without it, it stays in model coordinates (``info["crs"]`` None).
    Returns ``(WalkableArea, info)``.
    """
    from bim_import import storey_floorplan

    from simulation.crowd import WalkableArea

    plan = storey_floorplan(model_or_path, storey, cut_height=cut_height, twin_crs=twin_crs, anchor=anchor)
    if not plan.exit_lines:
        raise GeometryError(f"storey {plan.storey!r} has no external door; a crowd cannot leave it")
    walk = plan.walkable
    if hasattr(walk, "geoms"):
        walk = max(walk.geoms, key=lambda p: p.area)
    info = {"storey": plan.storey, "walkable_m2": float(walk.area), "doors": len(plan.doors), "crs": plan.crs}
    return WalkableArea(walk, exits=plan.exit_lines), info


#: water a crowd does not walk through. AIDR (2017), Australian Disaster Resilience Guideline 7-3 "Flood
#: Hazard", Table 3 and Figure 6 (the general flood hazard vulnerability curves): beyond class H2 (depth 0.5 m,
#: depth x velocity 0.6 m2/s) water is H3, "unsafe for vehicles, children and the elderly", whom a crowd includes
WADING_DEPTH_M = 0.5
WADING_DV_M2_S = 0.6


def _flood_grids(twin, scen: str, flood_run: str, flood_time):
    """(depth, depth x velocity or None, transform, what) of flood run ``flood_run``: its peaks (``flood_time``
    None), or its depth at ``flood_time`` s after the storm began, interpolated between its snapshots."""
    from cim.results import check_run_id, list_results
    from twin_core.adapters.flood import load_depth_snapshots, warn_after_flood_end

    check_run_id(flood_run)
    have = list_results(twin.store, scenario=scen, run=flood_run)
    names = set(have["name"])
    if "max_depth" not in names:
        elsewhere = sorted(set(list_results(twin.store, run=flood_run, name="max_depth")["scenario"]))
        raise ParameterError(f"no flood run {flood_run!r} under scenario {scen!r}"
                             + (f" (it is under {elsewhere}: run the crowd there)" if elsewhere else
                                "; run `twin flood` first and give its run id"))
    if flood_time is None:
        d = twin.load_result(scen, flood_run, "max_depth")
        dv = twin.load_result(scen, flood_run, "hazard") if "hazard" in names else None
        return (np.asarray(d.data, float), None if dv is None else np.asarray(dv.data, float), d.transform,
                "the flood's peak depth and depth x velocity")
    t = parse_duration(flood_time, "flood_time")
    if t < 0:
        raise ParameterError(f"flood_time is the time after the storm began (>= 0), got {flood_time!r}")
    snaps, times, tr = load_depth_snapshots(
        twin, scen, flood_run, have, missing=f"its depth at {t:g} s is not known; leave flood_time out (the "
                                             "flood's peak) or run the flood again")
    warn_after_flood_end(t, flood_run, float(times[-1]), "its last depths are used")
    k = int(np.searchsorted(times, t))
    if k == 0:
        d = snaps[0] * (t / times[0] if times[0] > 0 else 1.0)  # dry ground at the storm's start
    elif k >= len(times):
        d = snaps[-1]
    else:
        w = (t - times[k - 1]) / (times[k] - times[k - 1])
        d = (1 - w) * snaps[k - 1] + w * snaps[k]
    # the snapshots keep depths only: velocity at that moment is not known, so only the depth criterion applies
    at = f"{t:g} s" if t <= times[-1] else f"{times[-1]:g} s, the end of the run (asked: {t:g} s)"
    return d, None, tr, f"the flood's depth at {at} (depth only: no velocities then)"


def flood_walkable(twin, walkable, info: dict | None, *, scenario: str | None, flood_run: str, flood_time=None,
                   wading_depth: float = WADING_DEPTH_M, max_dv: float = WADING_DV_M2_S,
                   min_exit_width: float = 1.0, min_part_m2: float = 1.0):
    """The walkable area as a flood run leaves it: the cascade "evacuate the plaza in the storm".

    Water deeper than ``wading_depth`` m, or with depth x velocity above ``max_dv`` m2/s, is no floor (see
    :data:`WADING_DEPTH_M`). An exit keeps its longest dry stretch if that is at least ``min_exit_width`` m wide,
    else it is under water and closed. Dry ground from which no open exit can be reached is cut off: its people
    wait for rescue and are not simulated.

    Returns ``(walkable, info, cut_off_share)``: the dry, reachable area with its usable exits; ``info`` with
    ``flooded_by``, ``flood_time_s``, ``water_m2``, ``cut_off_m2``, ``exits_under_water``, ``exits_narrowed``;
    the share of the dry ground that is cut off.
    """
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import LineString, shape

    from simulation.crowd import WalkableArea

    for v, what in ((wading_depth, "wading_depth"), (max_dv, "max_dv"), (min_exit_width, "min_exit_width")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ParameterError(f"{what} must be a number > 0, got {v!r}")
    scen = scenario or "base"
    depth, dv, tr, what = _flood_grids(twin, scen, flood_run, flood_time)
    poly = walkable.polygon
    h, w = depth.shape
    gx = sorted((tr.c, tr.c + tr.a * w))
    gy = sorted((tr.f, tr.f + tr.e * h))
    grid = shapely.box(gx[0], gy[0], gx[1], gy[1])
    if not poly.intersects(grid):
        x0, y0, x1, y1 = poly.bounds
        raise ParameterError(f"the walkable area ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}) lies outside flood run "
                             f"{flood_run!r}'s grid ({gx[0]:.0f}, {gy[0]:.0f})-({gx[1]:.0f}, {gy[1]:.0f}); is it in the "
                             "twin's CRS (an IFC storey: twin.crowd(ifc=..., storey=...) places it)?")
    outside = poly.difference(grid).area
    if outside > 0.01 * poly.area:
        twin_warn(f"{100 * outside / poly.area:.0f} % of the walkable area lies outside flood run {flood_run!r}'s grid "
                  "and is taken as dry", TwinWarning, stacklevel=3)
    # the cells round the area only: a city-wide grid is not polygonised for one plaza
    inv = ~tr
    x0, y0, x1, y1 = poly.bounds
    cs = [inv * (x, y) for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))]
    c0 = max(int(math.floor(min(c for c, _ in cs))) - 1, 0)
    r0 = max(int(math.floor(min(r for _, r in cs))) - 1, 0)
    c1 = min(int(math.ceil(max(c for c, _ in cs))) + 1, depth.shape[1])
    r1 = min(int(math.ceil(max(r for _, r in cs))) + 1, depth.shape[0])
    water = wet_cells = shapely.Polygon()
    if c1 > c0 and r1 > r0:
        d = np.nan_to_num(depth[r0:r1, c0:c1], nan=0.0)
        wet = d > wading_depth
        if dv is not None:
            wet |= np.nan_to_num(dv[r0:r1, c0:c1], nan=0.0) > max_dv
        if wet.any():
            sub = tr * tr.translation(c0, r0)
            cells = [shape(g) for g, v in shapes(wet.astype("uint8"), mask=wet, transform=sub) if v == 1]
            wet_cells = shapely.union_all(cells)
            water = wet_cells.intersection(poly)
    info = dict(info or {})
    info.update({"flooded_by": flood_run, "flood_time_s": None if flood_time is None else parse_duration(flood_time, "flood_time"),
                 "flood_used": what, "wading_depth_m": float(wading_depth), "max_dv_m2_s": float(max_dv),
                 "water_m2": float(water.area), "exits_under_water": [], "exits_narrowed": [], "cut_off_m2": 0.0})
    if water.is_empty or water.area < 1e-6:
        return walkable, info, 0.0
    dry = shapely.set_precision(poly.difference(water), 0.01)
    parts = [p for p in getattr(dry, "geoms", [dry]) if p.geom_type == "Polygon" and p.area >= min_part_m2]
    if not parts:
        raise GeometryError(f"the whole walkable area ({poly.area:.0f} m2) is under water deeper than "
                            f"{wading_depth:g} m in flood run {flood_run!r} ({what}); nobody stands there to evacuate")
    exits: dict = {}
    for name, seg in zip(walkable.exit_names, walkable.exit_segments):
        line = LineString(seg.reshape(2, 2))
        # the wet cells themselves, not their part inside the area: a door on the outline lies on its rim
        left = line.difference(wet_cells)
        pieces = [g for g in getattr(left, "geoms", [left]) if g.geom_type == "LineString" and not g.is_empty]
        best = max(pieces, key=lambda g: g.length) if pieces else None
        if best is None or best.length < min_exit_width:
            info["exits_under_water"].append(name)
            continue
        if best.length < line.length - 1e-6:
            info["exits_narrowed"].append(name)
        c = np.asarray(best.coords)
        exits[name] = [tuple(c[0]), tuple(c[-1])]
    total = sum(p.area for p in parts)
    reach = [p for p in parts if any(p.boundary.distance(LineString(e)) < 0.05 for e in exits.values())]
    cut = total - sum(p.area for p in reach)
    info["cut_off_m2"] = float(cut)
    if not reach:
        raise GeometryError(f"every exit of the area is under water deeper than {wading_depth:g} m in flood run "
                            f"{flood_run!r} ({what}): exits {info['exits_under_water']}; the {total:.0f} m2 of dry "
                            "ground is cut off. Nobody can walk out: plan a rescue, or try another flood_time")
    dry_reach = reach[0] if len(reach) == 1 else shapely.MultiPolygon(reach)
    exits = {n: e for n, e in exits.items() if dry_reach.boundary.distance(LineString(e)) < 0.05}
    info["walkable_m2"] = float(dry_reach.area)
    return WalkableArea(dry_reach, exits=exits, waypoints=walkable.waypoints,
                        waypoint_radius=walkable.waypoint_radius), info, cut / total


#: the demo's crowd: the sample plaza's evening crowd leaving at once
DEMO_CROWD = {"area": "A001", "agents": 2000, "until": "15min", "run": "demo-crowd"}


def run_crowd_demo(twin, progress: Callable[[float, float], None] | None = None) -> "CrowdRun":
    """The demo's crowd (run ``demo-crowd``): 2,000 people leave the sample plaza (``A001``), with the
    default collision-free speed model; the map shows them walking out."""
    kw = dict(DEMO_CROWD)
    return run_crowd(twin, kw.pop("area"), progress=progress, **kw)


class RunSummary(dict):
    """A run's summary (a dict). Calling it, as ``CrowdRun.summary()`` once was, still works with a warning."""

    def __call__(self) -> "RunSummary":
        twin_warn("CrowdRun.summary is a dict now, as FloodRun.summary and TrafficRun.summary are; "
                      "write run.summary, not run.summary()", FutureWarning, stacklevel=2)
        return self


@dataclass
class CrowdRun:
    """A finished crowd run: the engine result, where it was saved, what it used.

    ``summary`` is a dict with the keys every engine's run has (``engine``, ``scenario``, ``run``,
    ``sim_time_s``, ``engine_wall_s``, ``total_wall_s``) and the crowd's own (``status``, ``agents``,
    ``evacuated``, ``evacuation_time_s``, ``jams``, ``exits``, the area's description).
    """

    scenario: str
    run: str
    result: object
    info: dict
    saved: list
    summary: RunSummary = field(default_factory=RunSummary)

    def __repr__(self) -> str:  # the dataclass repr printed every agent's exit time and the trajectories
        from twin_core._display import run_repr

        return run_repr(self, ("status", "agents", "evacuated", "evacuation_time_s", "sim_time_s", "model"))

    def _repr_html_(self) -> str:
        from twin_core._display import run_repr_html

        return run_repr_html(self, saved=bool(self.saved))


def _engine_summary(res) -> dict:
    """The engine's summary with the keys named as in the other engines' runs (time_s: sim_time_s)."""
    s = res.summary()
    s["sim_time_s"] = s.pop("time_s")
    return s


def run_crowd(twin, area: str | None = None, *, agents: int | None = None, density: float | None = None,
              scenario: str | None = None, run: str | None = None, model: str = "csm", until: float | str = 1800.0,
              exits: dict | None = None, closed_exits=(), params=None, walkable=None, info: dict | None = None,
              seed: int = 0, trajectory_interval: float = 1.0, save: bool = True,
              waypoints: dict | None = None, route=None, measurement_lines: dict | None = None,
              flooded_by: str | None = None, flood_time=None, wading_depth: float = WADING_DEPTH_M,
              progress: Callable[[float, float], None] | None = None) -> CrowdRun:
    """Evacuate a plaza (``area``) or a given ``walkable`` area (an IFC storey: :func:`storey_area`, or
    ``twin.crowd(ifc=..., storey=...)``) and save the results.

    Parameters
    ----------
    area : an ``areas`` feature id or name (``"A001"``, the sample plaza); its exits are where it meets roads
    agents, density : how many people: a whole number, at least 1 (``200.0`` is fine, ``"200"`` is not), or
        persons per m2 (give one)
    scenario, run : where the results are saved (None: the base; a new run id)
    model : ``"csm"`` (collision-free speed model, the default, RiMEA-verified) or ``"sfm"`` (social force)
    until : how long at most: seconds or a duration such as ``"30min"``
    walkable, info : a ready :class:`~simulation.crowd.WalkableArea` (and its description) instead
    exits : ``{name: [(x1, y1), (x2, y2)]}`` instead of the exits found from the roads
    closed_exits : exit names kept shut (with those of the scenario parameter ``crowd_closed_exits``)
    waypoints, route : name -> point, line or polygon (see :class:`~simulation.crowd.WalkableArea`) added to
        the area; everybody passes ``route`` (waypoint names, default: every waypoint of the area in its
        order) before heading for an exit
    measurement_lines : name -> [(x1, y1), (x2, y2)]: flow and speed, saved as ``line_crossings``
    flooded_by, flood_time, wading_depth : the cascade "evacuate in the storm": a flood run under the same
        scenario whose water deeper than ``wading_depth`` m (0.5, or depth x velocity above 0.6 m2/s) is no
        floor (:func:`flood_walkable`), at its peak or ``flood_time`` (s or ``"45min"`` after the storm began).
        Exits under water are closed; people on dry ground cut off from every exit are counted
        (``cut_off_persons``), not simulated
    seed, trajectory_interval, params, save, progress : as the other engines

    Returns
    -------
    CrowdRun: ``.scenario``, ``.run``, ``.summary`` (dict), ``.result`` (the engine's
    :class:`~simulation.crowd.CrowdResult`), ``.saved`` (the result names stored)
    """
    from cim.results import claim_run
    from simulation.crowd import Agents, CrowdParameters, CrowdSimulation, WalkableArea

    t0 = time.perf_counter()
    until = parse_duration(until, "until")
    if agents is not None:  # here, not in Twin.crowd: the CLI and scripts call this directly
        agents = as_count(agents, "agents", "people", minimum=1)
    if seed is not None:  # None: a fresh random placement (NumPy's default_rng(None)), recorded as null
        seed = as_count(seed, "seed", None, minimum=0)
    from cim.scenario import normalise_scenario_name

    scenario = normalise_scenario_name(scenario)  # NFC: one name typed two ways is one scenario
    scen = scenario or "base"
    run_id = claim_run(twin.store, scen, run, ENGINE, "crowd", save=save)  # a bad or taken id fails here
    if walkable is None:
        if area is None:
            raise ParameterError("give area= (an areas feature id or name) or walkable= (a WalkableArea; for an "
                                 "IFC storey twin.crowd(ifc=PATH, storey=NAME))")
        walkable, info = plaza_area(twin, area, scenario=scenario, exits=exits)
    elif info is not None and "crs" in info and info["crs"] is None and save:
        # storey_area(...) without twin_crs: the plan is in the model's own coordinates, and the saved
        # max_density raster and trajectories would be placed in the twin's CRS, far from the building
        twin_warn("the walkable area is in the IFC model's own coordinates (its info has crs None), but the "
                      f"results are saved in the twin's CRS {twin.crs}, where they land in the wrong place. Use "
                      "twin.crowd(ifc=PATH, storey=NAME) or storey_area(..., twin_crs=twin.crs) (with anchor= if the "
                      "model has no georeference)", TwinWarning, stacklevel=2)
    if waypoints:
        walkable = WalkableArea(walkable.polygon, exits=walkable.exits, waypoints={**walkable.waypoints, **waypoints},
                                waypoint_radius=walkable.waypoint_radius)
    cut_share = 0.0
    if flooded_by is not None:
        twin.scenario(scenario)  # an unknown scenario fails here, before the flood is read
        walkable, info, cut_share = flood_walkable(twin, walkable, info, scenario=scenario, flood_run=flooded_by,
                                                   flood_time=flood_time, wading_depth=wading_depth)
    elif flood_time is not None:
        raise ParameterError("flood_time needs flooded_by (the flood run whose depth at that time is used)")
    elif wading_depth != WADING_DEPTH_M:
        raise ParameterError(f"wading_depth={wading_depth!r} needs flooded_by (CLI: --flooded-by RUN), the flood run "
                             "whose water deeper than that is no floor; without it there is no water to wade")
    route = list(walkable.waypoint_names) if route is None else list(route)
    info = dict(info or {})
    closed = _exit_names(closed_exits, "closed_exits")
    # an unknown scenario fails here (ScenarioError), before anything is run or saved under it
    closed += _exit_names(twin.scenario(scenario).params().get(CLOSED_EXITS_PARAM),
                          f"scenario parameter {CLOSED_EXITS_PARAM} of scenario {scen!r}")
    closed = list(dict.fromkeys(closed))
    drowned = info.get("exits_under_water", [])
    closed = [n for n in closed if n not in drowned]  # shut anyway: under water, it is no exit any more
    for name in closed:
        walkable.exit_index(name)  # unknown names fail clearly
    if walkable.exit_names and set(walkable.exit_names) <= set(closed):
        raise GeometryError(f"every exit of the area is closed ({closed}, from closed_exits and the scenario parameter "
                            f"{CLOSED_EXITS_PARAM} of scenario {scen!r}); nobody could leave. Keep at least one of "
                            f"{list(walkable.exit_names)} open")
    if params is None:
        params = CrowdParameters(model=model, seed=seed, record_interval=trajectory_interval)
    if agents is None and density is None:
        raise ParameterError("give agents (a number) or density (persons/m2)")
    cut_off = 0
    if cut_share > 0:  # people on ground the water has cut off: counted, not simulated
        if agents is not None:
            n_all = agents
            agents = int(round(n_all * (1.0 - cut_share)))
            cut_off = n_all - agents
        elif isinstance(density, (int, float)) and not isinstance(density, bool) and math.isfinite(density):
            cut_off = int(round(float(density) * info["cut_off_m2"]))
        info["cut_off_persons"] = cut_off
    elif flooded_by is not None:
        info["cut_off_persons"] = 0
    ag = Agents.in_region(walkable, n=agents, density=density, radius=params.radius, seed=seed, route=route)
    sim = CrowdSimulation(walkable, ag, params, closed_exits=closed, measurement_lines=measurement_lines)
    t_engine = time.perf_counter()
    res = sim.run(until=until, progress=progress)
    info.update({"model": params.model, "closed_exits": closed, "exit_names": list(walkable.exit_names),
                 "route": route, "seed": seed})
    timings = {"engine_wall_s": time.perf_counter() - t_engine}
    saved = save_crowd_result(twin, scen, run_id, res, info, crs=twin.crs, timings=timings) if save else []
    summary = RunSummary({"engine": "crowd", "scenario": scen, "run": run_id, **_engine_summary(res),
                          **{k: v for k, v in info.items() if k != "buildings_removed"}, **timings,
                          "total_wall_s": time.perf_counter() - t0})
    return CrowdRun(scenario=scen, run=run_id, result=res, info=info, saved=saved, summary=summary)


def storey_crowd_kwargs(twin, area, ifc, storey, anchor, kwargs: dict) -> dict:
    """``kwargs`` for :func:`run_crowd` with the walkable area of storey ``storey`` of the IFC file ``ifc``,
    placed in the twin's CRS (``twin.crowd(ifc=..., storey=...)``). Deliberately not a keyword of
    :func:`run_crowd`, whose keywords the map server accepts from a job request: a client would name a file
    on the server to read."""
    given = [k for k, v in (("area", area), ("ifc", ifc), ("walkable", kwargs.get("walkable"))) if v is not None]
    if len(given) > 1:
        raise ParameterError(f"give one of area=, ifc= (with storey=) or walkable=, not {' and '.join(given)}")
    if ifc is None:
        raise ParameterError("storey= and anchor= go with ifc= (the IFC model whose storey is evacuated)")
    if storey is None:
        raise ParameterError("ifc= needs storey= (a storey name, GlobalId, or 0 for the lowest)")
    walkable, info = storey_area(ifc, storey, twin_crs=twin.crs, anchor=anchor)
    info["ifc"] = str(ifc)
    return {**kwargs, "walkable": walkable, "info": {**info, **(kwargs.get("info") or {})}}


def _exit_names(value, what: str) -> list[str]:
    """Exit names from ``value``: None (none), one name (str), or a list/tuple of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ParameterError(
        f"{what} must be an exit name or a list of exit names, got {value!r} ({type(value).__name__}); "
        f"e.g. twin scenario set STORE SCENARIO {CLOSED_EXITS_PARAM} '[\"exit name\"]'"
    )


#: results written only when the run produced them; a run id used again drops the earlier ones first
_OPTIONAL_RESULTS = ("waypoint_passages", "line_crossings", "fundamental_diagram", "density", "max_density")
ENGINE = "simulation.crowd"  # the results' meta "engine"


def save_crowd_result(twin, scenario: str, run: str, res, info: dict | None = None, *, crs=None,
                      timings: dict | None = None) -> list[str]:
    """Store a :class:`~simulation.crowd.CrowdResult` under ``scenario`` + ``run``; returns the names saved.

    Everything is written in one store transaction. Saving under a run id used
    before replaces that run's crowd results: optional ones this run did not
    produce (``waypoint_passages``, ``line_crossings``, ``fundamental_diagram``,
    ``density``, ``max_density``) are deleted, so no stale result is left beside the new ones.
    """
    from cim.results import delete_results, saving_run
    from cim.scenario import BASE

    scenario, store = scenario or BASE, twin.store
    with saving_run(store, scenario, run, ENGINE):  # the id checked again (claim_run), in the transaction
        delete_results(store, scenario, run, names=_OPTIONAL_RESULTS)
        return _save_crowd_result(twin, scenario, run, res, info, crs=crs, timings=timings or {})


def _save_crowd_result(twin, scenario, run, res, info, *, crs, timings):
    from affine import Affine

    from cim.results import finite_or_none

    from cim.raster import Raster

    names = []

    def put(name, obj, **meta):
        twin.save_result(scenario, run, name, obj, meta={"engine": ENGINE, **meta})
        names.append(name)

    g = res.density_grid
    # no evacuation time / no flow at an unused exit: null
    summary = finite_or_none({"engine": "crowd", "scenario": scenario, "run": run, **_engine_summary(res)})
    if res.line_names:
        summary["measurement_lines"] = list(res.line_names)
    # density_rows: the stored density array's rows run from the north (runs before 2026-12-05: from the south,
    # with no such key), for whoever reads the array with this grid by hand
    summary.update({"density_grid": g, "density_times_s": [float(t) for t in res.density_times],
                    "density_rows": "north_first",
                    **{k: v for k, v in (info or {}).items()}, **timings})
    put("summary", summary)
    put("evacuation_curve", res.curve)
    put("exit_usage", res.exit_usage())
    put("jams", pd.DataFrame([vars(j) for j in res.jams],
                             columns=["time_s", "x", "y", "n_agents", "exit", "kind", "waypoint"]))
    put("trajectories", res.trajectories)
    if not res.waypoint_passages.empty:
        put("waypoint_passages", res.waypoint_passages)
    if res.line_names:  # even with no crossing: "nobody crossed" is a result
        put("line_crossings", res.line_crossings)
    if not res.trajectories.empty:
        put("fundamental_diagram", res.fundamental_diagram_cells())
    if len(res.density):
        # rows from north to south, as a raster's, with the grid's north-up transform
        transform = Affine(g["cell"], 0.0, g["x0"], 0.0, -g["cell"], g["y0"] + g["ny"] * g["cell"])
        # stored as a flood stores its depth_snapshots: rows from the north, the grid and times in the array's
        # own meta, so every reader (twin.snapshots, export, the map server) places it alike. Runs stored before
        # 2026-12-05 kept the engine's rows from the south and the grid only in the summary (density_grid,
        # density_times_s, still written): results_export.array_grid reads those too
        dens = np.asarray(res.density, dtype=np.float32)
        put("density", np.ascontiguousarray(dens[:, ::-1, :]), transform=list(transform)[:6], crs=crs or twin.crs,
            snapshot_times_s=[float(t) for t in res.density_times], unit="persons/m2")
        put("max_density", Raster(np.ascontiguousarray(dens.max(axis=0)[::-1]), transform, crs or twin.crs,
                                  nodata=None, unit="persons/m2"))
    return names
