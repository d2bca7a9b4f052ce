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
>>> exits        # the 1 m bend round the corner (road0:0) is no exit but keeps its number
{'road0:1': [(20.0, 0.0), (20.0, 10.0)]}
>>> why = {}
>>> _ = exits_from_roads(box(0, 0, 20, 10), [((25, -5), (25, 15))], road_reach=6.0, min_width=2.0, dropped=why)
>>> why["road0:0"]["why"]
'no exit: narrower than 2 m; its people use the exit beside it'
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from twin_core.errors import GeometryError, LayerNotFoundError, ParameterError, TwinWarning, twin_warn
from twin_core.units import as_count, parse_duration

__all__ = ["CrowdRun", "plaza_area", "storey_area", "exits_from_roads", "run_crowd", "save_crowd_result",
           "flood_walkable", "CLOSED_EXITS_PARAM", "CLOSED_EXITS_REACH_PARAM", "WADING_DEPTH_M", "WADING_DV_M2_S"]

CLOSED_EXITS_PARAM = "crowd_closed_exits"
#: the scenario parameter saying with which ``road_reach`` (m) the names of ``crowd_closed_exits`` were made
#: (default :data:`DEFAULT_ROAD_REACH_M`): a plaza's exit names depend on it
CLOSED_EXITS_REACH_PARAM = "crowd_closed_exits_road_reach"
#: ``road_reach`` (m) of :func:`plaza_area` and ``twin crowd --road-reach`` unless given
DEFAULT_ROAD_REACH_M = 10.0


class _SeedDefault:
    """``run_crowd``'s default ``seed``: 0, or the seed of the ``params`` given (told apart from a seed given)."""

    def __repr__(self) -> str:
        return "0"


_SEED_DEFAULT = _SeedDefault()


#: the narrowest stretch of a plaza outline taken as an exit (m): shorter straight pieces of the outline near a
#: road are the corner bends of a longer opening (the outline's vertices where it turns round a corner), not a
#: way out of their own. 1.1 m is the narrowest evacuation walkway GB 50016-2014 (Code for fire protection design
#: of buildings) 5.5.18 allows in a public building; a sliver narrower than that carries people only because it
#: was cut from the outline
MIN_EXIT_WIDTH_M = 1.1
#: a piece of the outline shorter than this (m) next to a longer piece of the same opening is a corner bend
#: (where the outline turns round a rounded or chamfered corner: the sample plazas' bends are 1.0-1.95 m) and is
#: dropped, its people using the neighbouring exit; a whole opening this short is still kept (if >= min_width)
CORNER_BEND_M = 2.0
#: how far (m) a joined exit line may leave the outline in between: the crowd engine's own tolerance
#: (simulation.crowd.geometry._EXIT_TOL, the door opening cut into the wall)
_JOIN_TOL_M = 0.05


def _straight_pieces(c: np.ndarray, tol: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The polyline ``c`` as straight pieces: consecutive segments joined while the chord from the piece's start
    passes within ``tol`` of every vertex it skips (a vertex on a straight edge is no corner)."""
    out = []
    i, n = 0, len(c)
    while i < n - 1:
        j = i + 1
        while j + 1 < n:
            a, b = c[i], c[j + 1]
            d = b - a
            L = math.hypot(*d)
            if L == 0:
                break
            mid = c[i + 1:j + 1]
            off = np.abs((mid[:, 0] - a[0]) * d[1] - (mid[:, 1] - a[1]) * d[0]) / L
            if off.max() > tol:
                break
            j += 1
        out.append((c[i], c[j]))
        i = j
    return out


def exits_from_roads(polygon, roads, *, road_reach: float = 10.0, min_width: float = MIN_EXIT_WIDTH_M,
                     names=None, dropped: dict | None = None) -> dict[str, list[tuple[float, float]]]:
    """Exit lines where the outline of ``polygon`` comes within ``road_reach`` of a road.

    ``roads`` is a sequence of LineStrings or coordinate lists (road centrelines);
    ``names`` their ids. Each straight piece of the outline near the roads
    becomes one exit, named ``"<nearest road>:<k>"`` (two carriageways of one
    street give one set of exits). Segments of the outline that lie on one
    straight line (within 5 cm, the crowd engine's tolerance) are one piece;
    pieces shorter than ``min_width`` (:data:`MIN_EXIT_WIDTH_M`, 1.1 m), and
    pieces shorter than :data:`CORNER_BEND_M` (2 m) next to a longer piece of
    the same opening (a corner bend), are dropped: people there walk out
    through the neighbouring exit along the outline.

    Numbering: ``k`` counts the straight pieces of 1 m or more along the outline near that road, the dropped
    ones included, so an exit keeps its name whatever is dropped beside it (scenarios close exits by name,
    ``crowd_closed_exits``): a lone exit can be ``road0:1`` when ``road0:0`` was a corner bend. Give a dict as
    ``dropped`` and it is filled with each numbered piece that is no exit, ``name -> {"width_m", "why"}``, which
    explains the gap (:func:`plaza_area` puts it in the run's summary as ``exits_dropped``).
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
        pieces = _straight_pieces(c, _JOIN_TOL_M)
        lengths = [math.hypot(*(b - a)) for a, b in pieces]
        for k, (a, b) in enumerate(pieces):
            longer_beside = max(lengths[max(k - 1, 0):k + 2]) > lengths[k]
            mid = Point((a + b) / 2)
            road = names[int(np.argmin([ln.distance(mid) for ln in lines]))]
            n = counts.get(road, 0)
            # a dropped bend of 1 m or more keeps its number, as before 2026-12-05 when it was an exit: the
            # exits beside it keep their names (scenarios close exits by name)
            counts[road] = n + (lengths[k] >= 1.0)
            if lengths[k] < min_width or (lengths[k] < CORNER_BEND_M and longer_beside):
                if dropped is not None and lengths[k] >= 1.0:
                    why = (f"narrower than {min_width:g} m" if lengths[k] < min_width else
                           f"a corner bend (under {CORNER_BEND_M:g} m beside a longer piece of the same opening)")
                    dropped[f"{road}:{n}"] = {"width_m": round(float(lengths[k]), 2),
                                              "why": f"no exit: {why}; its people use the exit beside it"}
                continue
            exits[f"{road}:{n}"] = [(float(a[0]), float(a[1])), (float(b[0]), float(b[1]))]
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

    if isinstance(road_reach, bool) or not isinstance(road_reach, (int, float)) or not math.isfinite(road_reach) \
            or road_reach <= 0:
        raise ParameterError(f"road_reach (CLI: --road-reach) is how far from a road the plaza's outline is an exit: "
                             f"a number of metres > 0, got {road_reach!r}")
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
    for name, g in (exits or {}).items():  # an exit typed in lon/lat: said so, not "shorter than 0.2 m"
        try:
            xy = shapely.get_coordinates(g) if hasattr(g, "geom_type") else np.asarray(g, dtype=float)
        except (TypeError, ValueError):
            continue  # a malformed one: WalkableArea says what is wrong
        _check_not_lonlat(xy, walk, twin.crs, f"exit {name!r}")
    if exits is None:
        source = "roads"
        roads = twin.layer("road_links", scenario, bbox=tuple(walk.buffer(road_reach).bounds)) \
            if "road_links" in twin.layers() else None
        if roads is None or roads.empty:
            raise GeometryError(f"no road comes within {road_reach} m of area {row['area_id']!r}, so no exit can be "
                                "derived; give a larger road_reach= (CLI: --road-reach METRES), or the exits "
                                "yourself (Python: exits={'name': [(x1, y1), (x2, y2)]})")
        exits_dropped: dict = {}
        exits = exits_from_roads(walk, list(roads.geometry.values), road_reach=road_reach,
                                 names=roads["link_id"].astype(str).tolist(), dropped=exits_dropped)
        if not exits:
            raise GeometryError(f"no road comes within {road_reach} m of the outline of area {row['area_id']!r}; "
                                "give a larger road_reach= (CLI: --road-reach METRES), or the exits yourself "
                                "(Python: exits={'name': [(x1, y1), (x2, y2)]})")
    info = {"area_id": str(row["area_id"]), "name": row.get("name"), "kind": row.get("kind"),
            "buildings_removed": bld_ids, "exits_from": source, "walkable_m2": float(walk.area)}
    if source == "roads":  # exit names depend on it: a run's summary says which reach named its exits
        info["road_reach_m"] = float(road_reach)
    if source == "roads" and exits_dropped:
        # why the exits' numbers have gaps: the pieces of the outline numbered but not taken as exits
        info["exits_dropped"] = {k: v for k, v in exits_dropped.items() if k not in exits}
    return WalkableArea(walk, exits=exits), info


def _lonlat_hint(x: float, y: float, crs, *, near=None, near_name: str = "the twin's area") -> str:
    """``"; (x, y) look like longitude/latitude: ..."`` with the point in ``crs``, when they look like degrees:
    longitude first, or latitude first as a web map copies a point (``"30.66,104.06"``).

    ``near``: the box (xmin, ymin, xmax, ymax in ``crs``) the point was meant for: only a reading that lands
    nearer it than the numbers as metres is offered, of two the nearer, with "(inside ``near_name``)" where it
    lands in it. Without it, of two readings (both numbers within 90) the longitude-first one."""
    from cim.crs import looks_like_lonlat

    if crs is None:
        return ""
    readings = [(words, short, lon, lat) for words, short, lon, lat in (
        ("longitude/latitude", "lon/lat", x, y), ("latitude/longitude (latitude first)", "lat/lon", y, x))
        if looks_like_lonlat((lon, lat, lon, lat))]
    if not readings:
        return ""

    def off(px, py):  # m from the box ``near``
        x0, y0, x1, y1 = near
        return math.hypot(max(x0 - px, 0.0, px - x1), max(y0 - py, 0.0, py - y1))

    try:
        from pyproj import Transformer

        to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        placed = [(w, s, *(float(v) for v in to.transform(lon, lat))) for w, s, lon, lat in readings]
        placed = [p for p in placed if math.isfinite(p[2]) and math.isfinite(p[3])]
    except Exception:  # noqa: BLE001 - only the hint is lost
        placed = []
    if near is not None:
        placed = sorted((p for p in placed if off(p[2], p[3]) < off(x, y)), key=lambda p: off(p[2], p[3]))
        if not placed:
            return ""
    if not placed:  # degrees that could not be converted: still say what they look like
        return (f"; ({x:.10g}, {y:.10g}) look like {readings[0][0]}, but they are read in the twin's CRS {crs} "
                "(metres)")
    words, short, X, Y = placed[0]
    inside = f" (inside {near_name})" if near is not None and off(X, Y) == 0.0 else ""
    return (f"; ({x:.10g}, {y:.10g}) look like {words}, but they are read in the twin's CRS {crs} (metres): as {short} "
            f"that is {X:.1f},{Y:.1f} in {crs}{inside}")


def _check_in_crs(points, crs, what: str) -> None:
    """Refuse points (x, y) outside the area where the twin's CRS ``crs`` is defined (lon/lat given as metres put
    them hundreds of kilometres from the city), with a hint when they look like lon/lat."""
    from cim.crs import in_area_of_use, resolve_crs

    if crs is None:
        return
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if not len(pts) or resolve_crs(crs).area_of_use is None:
        return
    inside = in_area_of_use(np.column_stack([pts, pts]), crs)
    if inside.all():
        return
    x, y = pts[~inside][0]
    hint = _lonlat_hint(x, y, crs)
    raise ParameterError(f"{what} ({x:g}, {y:g}) lies outside the area the twin's CRS {crs} covers"
                         + (f"{hint}; give it in metres" if hint else f"; give it in the twin's CRS {crs} (metres)"))


def _check_not_lonlat(points, polygon, crs, what: str) -> None:
    """Refuse points (x, y) that look like lon/lat where the walkable ``polygon`` is in metres (a waypoint typed
    from a web map), with the point in the twin's CRS ``crs``; anything else is left to the engine's checks."""
    import shapely

    from cim.crs import looks_like_lonlat

    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if not len(pts) or not np.isfinite(pts).all() or looks_like_lonlat(polygon.bounds):
        return
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    # degrees either way round: longitude first, or latitude first as a web map copies a point ("30.66,104.06")
    if not (looks_like_lonlat((x0, y0, x1, y1)) or looks_like_lonlat((y0, x0, y1, x1))) or \
            polygon.buffer(1.0).contains(shapely.MultiPoint(pts)):
        return
    x, y = pts[0]
    b = polygon.bounds
    raise ParameterError(f"{what} ({x:g}, {y:g}) is not on the walkable area, which spans ({b[0]:.1f}, {b[1]:.1f})-"
                         f"({b[2]:.1f}, {b[3]:.1f}) in the twin's CRS"
                         + _lonlat_hint(x, y, crs, near=b, near_name="the walkable area")
                         + "; give it in metres")


def _as_anchor(anchor):
    """``anchor`` as a :class:`bim_import.Anchor`: one already, or ``(x, y[, z[, rotation_deg]])`` or a dict of
    its fields."""
    from bim_import.georef import Anchor

    if anchor is None or isinstance(anchor, Anchor):
        return anchor
    try:
        if isinstance(anchor, dict):
            return Anchor(**anchor)
        vals = [float(v) for v in anchor]
        if 2 <= len(vals) <= 4:
            return Anchor(*vals)
    except (TypeError, ValueError):
        pass
    raise ParameterError(f"anchor must be (x, y[, z[, rotation_deg]]) in the twin's CRS, a dict of those or a "
                         f"bim_import.Anchor (CLI: --anchor X,Y[,Z[,ROTATION_DEG]]), got {anchor!r}")


def _storeys_with_exits(model, skip: str, cut_height: float, most: int = 12) -> list[str]:
    """``--storey I ('NAME')`` of the model's storeys (the first ``most``) other than ``skip`` whose plan has a way
    out: for the error on a storey that has none (it used to suggest --storey 0 whatever storey 0 was)."""
    from bim_import import storey_floorplan

    out = []
    for i, name in enumerate(model.storeys["name"].tolist()[:most]):
        if name == skip:
            continue
        try:
            if storey_floorplan(model, i, cut_height=cut_height).exit_lines:
                out.append(f"--storey {i} ({name!r})")
        except (GeometryError, ValueError):  # a storey with no floor or walls at the cut: no way out to offer
            continue
    return out


def storey_area(model_or_path, storey, *, cut_height: float = 1.0, twin_crs: str | None = None, anchor=None):
    """The walkable area of one IFC storey (doors on the outline are the exits; on a storey with no external
    door, the stairs coming up to it from below).

    ``storey`` is a storey name, GlobalId or index (0: the lowest). With ``twin_crs`` the plan is placed in
    the twin's CRS (from the model's georeference, or ``anchor``, a :class:`bim_import.Anchor`, for a model
    without one or outside the CRS's area); without it, it stays in model coordinates (``info["crs"]`` None).
    Every separate part of the floor with an exit is kept (the walkable area is then a MultiPolygon: the two
    halves of a semi-detached house); a part with no exit is dropped with a warning (its people could not
    leave), and listed in ``info["parts_dropped"]``. Returns ``(WalkableArea, info)``.
    """
    from shapely.geometry import LineString, MultiPolygon

    from bim_import import read_model, storey_floorplan

    from simulation.crowd import WalkableArea

    if isinstance(storey, (int, np.integer)) and not isinstance(storey, bool) and storey < 0:
        # -1 was the last storey (Python's indexing), silently
        model = read_model(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
        n = len(model.storeys)
        raise ParameterError(f"storey {int(storey)}: a storey index counts from 0 (the lowest) up, 0 to {n - 1} in "
                             f"this model ({model.storeys['name'].tolist()}); give one of those, or a storey name")
    anchor = _as_anchor(anchor)
    if anchor is not None and anchor.crs is None:
        _check_in_crs([(anchor.x, anchor.y)], twin_crs, "anchor (CLI: --anchor)")
    plan = storey_floorplan(model_or_path, storey, cut_height=cut_height, twin_crs=twin_crs, anchor=anchor)
    if not plan.exit_lines:
        model = read_model(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
        others = _storeys_with_exits(model, plan.storey, cut_height)
        which = (f"one that has a way out: {', '.join(others)}" if others else
                 "none of the model's other storeys has one either")
        raise GeometryError(
            f"storey {plan.storey!r} has no external door and no stair coming up to it from below (an IfcStair or "
            f"IfcStairFlight with a body) in the model; a crowd cannot leave it. Evacuate another storey ({which}), "
            "or draw the way out yourself: twin.crowd(walkable=..., with exits=...) on the storey's plan from "
            "bim_import.storey_floorplan")
    parts = sorted(getattr(plan.walkable, "geoms", [plan.walkable]), key=lambda p: -p.area)
    lines = {k: LineString(v) for k, v in plan.exit_lines.items()}
    # an exit belongs to the part whose outline it lies on (within the crowd engine's 0.1 m snap)
    kept, dropped = [], []
    for p in parts:
        (kept if any(p.boundary.distance(ln) <= 0.1 for ln in lines.values()) else dropped).append(p)
    if not kept:
        raise GeometryError(f"no exit of storey {plan.storey!r} ({list(lines)}) lies on the outline of its walkable "
                            "floor; the doors do not open out of it. Check the storey, or give the area yourself")
    if dropped:
        where = "; ".join(f"{p.area:.1f} m2 round ({p.centroid.x:.1f}, {p.centroid.y:.1f})" for p in dropped)
        twin_warn(f"storey {plan.storey!r}: {len(dropped)} part(s) of the floor have no exit (no external door or "
                  f"stair on their outline) and are left out, with nobody placed there: {where}",
                  TwinWarning, stacklevel=3)
    walk = kept[0] if len(kept) == 1 else MultiPolygon(kept)
    exits = {k: v for k, v in plan.exit_lines.items() if walk.boundary.distance(lines[k]) <= 0.1}
    info = {"storey": plan.storey, "walkable_m2": float(walk.area), "doors": len(plan.doors), "crs": plan.crs,
            "floor_parts": len(kept), "parts_dropped": [{"m2": round(float(p.area), 2),
                                                         "x": round(float(p.centroid.x), 2),
                                                         "y": round(float(p.centroid.y), 2)} for p in dropped]}
    if plan.stair_exits:
        info["stair_exits"] = list(plan.stair_exits)
    if anchor is not None:  # with the ifc and storey: what repeats the run
        info["anchor"] = {"x": float(anchor.x), "y": float(anchor.y), "z": float(anchor.z),
                          "rotation_deg": float(anchor.rotation_deg), "crs": anchor.crs}
    return WalkableArea(walk, exits=exits), info


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
    # no data (NaN): where the flood grid has no water depth, its buildings' cells (stored as the raster's nodata,
    # -9999, which was read as a depth and taken as dry before 2026-12-05); flood_walkable fills them in
    peak = twin.load_result(scen, flood_run, "max_depth")
    if flood_time is None:
        dv = twin.load_result(scen, flood_run, "hazard") if "hazard" in names else None
        return (peak.masked(), None if dv is None else dv.masked(), peak.transform,
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
    nodata = np.isnan(peak.masked())
    if nodata.shape == d.shape:  # the snapshots hold 0 m on the buildings' cells: no data there, as in max_depth
        d = np.where(nodata, np.nan, d)
    # the snapshots keep depths only: velocity at that moment is not known, so only the depth criterion applies
    at = f"{t:g} s" if t <= times[-1] else f"{times[-1]:g} s, the end of the run (asked: {t:g} s)"
    return d, None, tr, f"the flood's depth at {at} (depth only: no velocities then)"


#: how many cells round the area a no-data cell of the flood grid looks for its nearest cell with data
_FILL_MARGIN_CELLS = 50


def _fill_nodata(grid: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """``grid[r0:r1, c0:c1]`` with each NaN (no data) cell given the value of its nearest cell with data (looked
    for up to :data:`_FILL_MARGIN_CELLS` beyond the window); a window with no data near it at all is 0 (dry).

    >>> g = np.array([[0.3, np.nan, 0.1], [0.3, 0.3, 0.1]])
    >>> _fill_nodata(g, 0, 1, 0, 3).tolist()
    [[0.3, 0.3, 0.1]]
    """
    from scipy.ndimage import distance_transform_edt

    m = _FILL_MARGIN_CELLS
    R0, C0 = max(r0 - m, 0), max(c0 - m, 0)
    win = np.asarray(grid[R0:min(r1 + m, grid.shape[0]), C0:min(c1 + m, grid.shape[1])], dtype=float)
    nan = ~np.isfinite(win)
    if nan.any() and not nan.all():
        idx = distance_transform_edt(nan, return_distances=False, return_indices=True)
        win = win[tuple(idx)]
    win = np.nan_to_num(win, nan=0.0, posinf=0.0, neginf=0.0)
    return win[r0 - R0:r1 - R0, c0 - C0:c1 - C0]


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

    for v, what, cli in ((wading_depth, "wading_depth", " (CLI: --wading-depth)"), (max_dv, "max_dv", ""),
                         (min_exit_width, "min_exit_width", "")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ParameterError(f"{what} must be a number > 0{cli}, got {v!r}")
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
        # a no-data cell (where a building stands: the flood grid has no water there) takes the water of its
        # nearest cells with data, not 0 m: the plaza ground beside a building partly overlaps such cells and
        # was taken as dry, a false "cut off" island in the water (before 2026-12-05)
        d = _fill_nodata(depth, r0, r1, c0, c1)
        wet = d > wading_depth
        if dv is not None:
            wet |= _fill_nodata(dv, r0, r1, c0, c1) > max_dv
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
              scenario: str | None = None, run: str | None = None, model: str | None = None,
              until: float | str = 1800.0, exits: dict | None = None, closed_exits=(), params=None, walkable=None,
              info: dict | None = None, seed=_SEED_DEFAULT, trajectory_interval: float | None = None,
              save: bool = True,
              waypoints: dict | None = None, route=None, measurement_lines: dict | None = None,
              flooded_by: str | None = None, flood_time=None, wading_depth: float = WADING_DEPTH_M,
              road_reach: float = DEFAULT_ROAD_REACH_M, release_rate: float | None = None,
              progress: Callable[[float, float], None] | None = None) -> CrowdRun:
    """Evacuate a plaza (``area``) or a given ``walkable`` area (an IFC storey: :func:`storey_area`, or
    ``twin.crowd(ifc=..., storey=...)``) and save the results.

    Parameters
    ----------
    area : an ``areas`` feature id or name (``"A001"``, the sample plaza); its exits are where it meets roads
    agents, density : how many people: a whole number, at least 1 (``200.0`` is fine, ``"200"`` is not), or
        persons per m2 (give one, not both)
    scenario, run : where the results are saved (None: the base; a new run id)
    model : ``"csm"`` (collision-free speed model, the default; passes RiMEA 1, 4, 6, 12 (12 on 9 of 10 start
        placements) and the measured 1 m bottleneck, its corridor flow ~15 % under the measurement:
        docs/crowd_verification.md) or ``"sfm"`` (social force; fails RiMEA 12 and the 1 m bottlenecks)
    params : the engine's :class:`~simulation.crowd.CrowdParameters`, or a dict of some of its fields
        (``{"speed_mean": 1.0}``; the others keep their defaults). ``model`` and ``trajectory_interval`` (s
        between saved trajectory frames; 1.0 without params), where given, override ``params``' ``model`` and
        ``record_interval``
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
        (``cut_off_persons``), not simulated. The crowd asked for stays: those on flooded ground are placed on
        the dry ground that reaches an exit (``agents``), and the summary's ``agents_requested`` and ``verdict``
        (``"evacuated 450 of 500; 50 cut off by water need rescue"``) say so; ``status`` is the engine's, of
        the people placed. No-data cells of the flood grid (its buildings) take their nearest cells' water
    road_reach : a plaza's outline within this of a road (m, default 10) is an exit. Exit names depend on it:
        the scenario's ``crowd_closed_exits`` names are taken as made at 10 m (or at its parameter
        ``crowd_closed_exits_road_reach``), and a run at another reach warns where a name now means another
        stretch of the outline (it closes the exit with that name at the run's reach)
    release_rate : persons entering per second (a train unloading), from time 0; None: everybody at once
    seed : the random seed of the run, where people stand and the engine's own draws (their walking speeds)
        alike: 0 unless given; with ``params`` its ``seed`` unless ``seed=`` is given too, which then wins
        (for both). None: a fresh random run each time (recorded as null)
    trajectory_interval, save, progress : as the other engines

    Returns
    -------
    CrowdRun: ``.scenario``, ``.run``, ``.summary`` (dict), ``.result`` (the engine's
    :class:`~simulation.crowd.CrowdResult`), ``.saved`` (the result names stored)
    """
    from cim.results import claim_run
    from simulation.crowd import Agents, CrowdSimulation, WalkableArea

    t0 = time.perf_counter()
    until = parse_duration(until, "until")
    if agents is not None:  # here, not in Twin.crowd: the CLI and scripts call this directly
        agents = as_count(agents, "agents", "people", minimum=1)
    seed_given = seed is not _SEED_DEFAULT
    if not seed_given:
        seed = 0
    elif seed is not None:  # None: a fresh random run (NumPy's default_rng(None)), recorded as null
        seed = as_count(seed, "seed", None, minimum=0)
    from cim.scenario import normalise_scenario_name

    scenario = normalise_scenario_name(scenario)  # NFC: one name typed two ways is one scenario
    scen = scenario or "base"
    run_id = claim_run(twin.store, scen, run, ENGINE, "crowd", save=save)  # a bad or taken id fails here
    if walkable is None:
        if area is None:
            raise ParameterError("give area= (an areas feature id or name) or walkable= (a WalkableArea; for an "
                                 "IFC storey twin.crowd(ifc=PATH, storey=NAME))")
        walkable, info = plaza_area(twin, area, scenario=scenario, exits=exits, road_reach=road_reach)
    elif info is not None and "crs" in info and info["crs"] is None and save:
        # storey_area(...) without twin_crs: the plan is in the model's own coordinates, and the saved
        # max_density raster and trajectories would be placed in the twin's CRS, far from the building
        twin_warn("the walkable area is in the IFC model's own coordinates (its info has crs None), but the "
                      f"results are saved in the twin's CRS {twin.crs}, where they land in the wrong place. Use "
                      "twin.crowd(ifc=PATH, storey=NAME) or storey_area(..., twin_crs=twin.crs) (with anchor= if the "
                      "model has no georeference)", TwinWarning, stacklevel=2)
    import shapely

    for what, items in (("waypoint", waypoints), ("measurement line", measurement_lines)):
        for name, g in (items or {}).items():
            try:
                xy = shapely.get_coordinates(g) if hasattr(g, "geom_type") else np.asarray(g, dtype=float)
            except (TypeError, ValueError):
                continue  # a malformed one: WalkableArea / the engine say what is wrong
            _check_not_lonlat(xy, walkable.polygon, twin.crs, f"{what} {name!r}")
    if waypoints:
        walkable = WalkableArea(walkable.polygon, exits=walkable.exits, waypoints={**walkable.waypoints, **waypoints},
                                waypoint_radius=walkable.waypoint_radius)
    if info and info.get("road_reach_m") is not None:  # before the flood narrows the exits
        # an unknown scenario fails here (ScenarioError), before anything is run or saved under it
        _check_names_reach(twin, scenario, scen, _exit_names(twin.scenario(scenario).params().get(
            CLOSED_EXITS_PARAM), f"scenario parameter {CLOSED_EXITS_PARAM} of scenario {scen!r}"), walkable, info)
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
    given = _exit_names(closed_exits, "closed_exits")
    # an unknown scenario fails here (ScenarioError), before anything is run or saved under it
    from_scen = _exit_names(twin.scenario(scenario).params().get(CLOSED_EXITS_PARAM),
                            f"scenario parameter {CLOSED_EXITS_PARAM} of scenario {scen!r}")
    drowned = info.get("exits_under_water", [])
    for names, where in ((given, "closed_exits= (CLI: --close-exit)"),
                         (from_scen, f"the scenario parameter {CLOSED_EXITS_PARAM} of scenario {scen!r}")):
        unknown = [n for n in names if n not in walkable.exit_names and n not in drowned]
        if unknown:
            fix = ("" if where.startswith("closed") else
                   f" (change it: twin scenario set STORE {scen} {CLOSED_EXITS_PARAM} '[\"EXIT\", ...]')")
            raise GeometryError(f"unknown exit{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
                                f"{where}{fix}; this area's exits are {list(walkable.exit_names)}")
    closed = list(dict.fromkeys(given + from_scen))
    closed = [n for n in closed if n not in drowned]  # shut anyway: under water, it is no exit any more
    if walkable.exit_names and set(walkable.exit_names) <= set(closed):
        raise GeometryError(f"every exit of the area is closed ({closed}, from closed_exits and the scenario parameter "
                            f"{CLOSED_EXITS_PARAM} of scenario {scen!r}); nobody could leave. Keep at least one of "
                            f"{list(walkable.exit_names)} open")
    params = _crowd_params(params, model=model, seed=seed, seed_given=seed_given,
                           trajectory_interval=trajectory_interval)
    seed = params.seed  # one seed: where people stand and the engine's draws
    if agents is None and density is None:
        raise ParameterError("give agents (a number) or density (persons/m2)")
    if agents is not None and density is not None:
        raise ParameterError(f"give one of agents (a number) or density (persons/m2), not both (got agents={agents}, "
                             f"density={density!r})")
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
    if release_rate is not None and (isinstance(release_rate, bool) or not isinstance(release_rate, (int, float))
                                     or not math.isfinite(release_rate) or release_rate <= 0):
        raise ParameterError(f"release_rate (CLI: --release-rate) is how many persons enter per second (a train "
                             f"unloading): a number > 0, got {release_rate!r}; leave it out for everybody at once")
    ag = Agents.in_region(walkable, n=agents, density=density, radius=params.radius, seed=seed, route=route,
                          release_rate=None if release_rate is None else float(release_rate))
    sim = CrowdSimulation(walkable, ag, params, closed_exits=closed, measurement_lines=measurement_lines)
    t_engine = time.perf_counter()
    res = sim.run(until=until, progress=progress)
    info.update({"model": params.model, "closed_exits": closed, "exit_names": list(walkable.exit_names),
                 "closed_exits_scenario": [n for n in from_scen if n in closed],
                 "route": route, "seed": seed})
    if release_rate is not None:
        info["release_rate_per_s"] = float(release_rate)
    if flooded_by is not None:
        # the people asked for, those placed on the dry ground that reaches an exit (the engine's ``agents``) and
        # those the water cut off, who wait for rescue: a run that moved everybody placed is no plain "evacuated"
        # when people were cut off (before 2026-12-05 the summary said "evacuated" with 50 people cut off)
        placed = len(ag)
        info["agents_requested"] = placed + cut_off
        info["verdict"] = _verdict(res.summary().get("status"), res.evacuated, placed, cut_off)
    timings = {"engine_wall_s": time.perf_counter() - t_engine}
    saved = save_crowd_result(twin, scen, run_id, res, info, crs=twin.crs, timings=timings,
                              walkable=walkable) if save else []
    summary = RunSummary({"engine": "crowd", "scenario": scen, "run": run_id, **_engine_summary(res),
                          **{k: v for k, v in info.items() if k != "buildings_removed"}, **timings,
                          "total_wall_s": time.perf_counter() - t0})
    return CrowdRun(scenario=scen, run=run_id, result=res, info=info, saved=saved, summary=summary)


def _check_names_reach(twin, scenario, scen: str, names: list[str], walkable, info: dict) -> None:
    """Warn where the scenario's closed exits (``crowd_closed_exits``) name other stretches of the plaza's outline
    than they did when the names were made: exit names are numbered along the outline near each road, so they
    depend on ``road_reach``. The names are taken as made with the scenario parameter ``crowd_closed_exits_road_reach``
    (default 10 m); a run with another reach closes the exit that has the name at the run's reach, and this says
    so where that is not the same stretch (an exit the name no longer fits, or one that is gone)."""
    reach = info.get("road_reach_m")
    if not names or reach is None or "area_id" not in info:
        return
    made = twin.scenario(scenario).params().get(CLOSED_EXITS_REACH_PARAM, DEFAULT_ROAD_REACH_M)
    if isinstance(made, bool) or not isinstance(made, (int, float)) or not math.isfinite(made) or made <= 0:
        raise ParameterError(f"the scenario parameter {CLOSED_EXITS_REACH_PARAM} of scenario {scen!r} is the "
                             f"road_reach (metres > 0) its {CLOSED_EXITS_PARAM} names were made with, got {made!r}; "
                             f"twin scenario set STORE {scen} {CLOSED_EXITS_REACH_PARAM} 10")
    if abs(float(made) - float(reach)) < 1e-9:
        return
    try:
        then, _ = plaza_area(twin, info["area_id"], scenario=scenario, road_reach=float(made))
        old = {n: then.exit_segments[then.exit_index(n)] for n in names if n in then.exit_names}
    except GeometryError:
        old = {}
    now = {n: walkable.exit_segments[walkable.exit_index(n)] for n in names if n in walkable.exit_names}
    moved = [n for n in names if n in now and (n not in old or not np.allclose(
        np.sort(now[n].reshape(2, 2), axis=0), np.sort(old[n].reshape(2, 2), axis=0), atol=0.05))]
    if not moved:
        return

    def said(seg):
        a, b = seg.reshape(2, 2)
        return f"the {math.hypot(*(b - a)):.1f} m stretch ({a[0]:.1f}, {a[1]:.1f})-({b[0]:.1f}, {b[1]:.1f})"

    what = "; ".join(f"{n!r} is {said(now[n])}" + (f", at {made:g} m it was {said(old[n])}" if n in old else
                                                   f", at {made:g} m there was no such exit") for n in moved)
    twin_warn(f"exit names depend on road_reach (CLI: --road-reach): the {CLOSED_EXITS_PARAM} names of scenario "
              f"{scen!r} were given for road_reach {made:g} m (its parameter {CLOSED_EXITS_REACH_PARAM}, default "
              f"{DEFAULT_ROAD_REACH_M:g}), and this run uses {reach:g} m, where {what}. The run closes the exits "
              f"named so at {reach:g} m. Run at {made:g} m, or give the names found at {reach:g} m (a plain run lists "
              f"them) with twin scenario set STORE {scen} {CLOSED_EXITS_REACH_PARAM} {reach:g}",
              TwinWarning, stacklevel=3)


def _verdict(status, evacuated: int, placed: int, cut_off: int) -> str:
    """The one-line verdict of a flooded run: ``"evacuated 450 of 500; 50 cut off by water need rescue"``."""
    total = placed + cut_off
    head = (f"evacuated {evacuated} of {total}" if status == "evacuated" else
            f"{status}: {evacuated} of {total} out")
    return head + (f"; {cut_off} cut off by water need rescue" if cut_off else "; nobody cut off by water")


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


def _crowd_params(params, *, model, seed, trajectory_interval, seed_given: bool = True):
    """The engine's parameters: ``params`` (None, a CrowdParameters or a dict of its fields) with ``model`` and
    ``trajectory_interval`` (``record_interval``), where given, put in; they win over ``params``' own.

    ``seed`` (where ``seed_given``, else only when ``params`` has none) is put in as well: one seed places the
    people and drives the engine (before 2026-12-05 ``seed=`` placed people only, and the engine used
    ``params.seed``, 0 unless set: two runs with different seeds walked at the same speeds)."""
    import dataclasses

    from simulation.crowd import CrowdParameters

    if params is None:
        params = CrowdParameters(seed=seed, record_interval=1.0)  # a frame a second: enough for the map
    elif isinstance(params, dict):
        fields = {f.name for f in dataclasses.fields(CrowdParameters)}
        bad = sorted(str(k) for k in params if k not in fields)
        if bad:
            raise ParameterError(f"params has no field {', '.join(map(repr, bad))}; CrowdParameters' fields are "
                                 f"{sorted(fields)}")
        params = CrowdParameters(**({**params, "seed": seed} if seed_given else {"seed": seed, **params}))
    elif not isinstance(params, CrowdParameters):
        raise ParameterError(f"params must be a simulation.crowd.CrowdParameters or a dict of its fields, got "
                             f"{type(params).__name__}")
    elif seed_given and params.seed != seed:
        params = dataclasses.replace(params, seed=seed)
    if params.seed is not None and not seed_given:  # params' own seed now places people too: a count
        params = dataclasses.replace(params, seed=as_count(params.seed, "params' seed", None, minimum=0))
    over = {k: v for k, v in (("model", model), ("record_interval", trajectory_interval)) if v is not None}
    return dataclasses.replace(params, **over) if over else params


def _exits_layer(walkable, usage: pd.DataFrame, closed, crs):
    """A GeoDataFrame: a line per exit of ``walkable`` with its row of ``usage`` (width, persons, flow) and
    ``closed``."""
    import geopandas as gpd
    from shapely.geometry import LineString

    df = pd.DataFrame({"exit": list(walkable.exit_names)})
    df = df.merge(usage, on="exit", how="left") if len(usage) else df
    df["closed"] = df["exit"].isin(list(closed))
    geom = [LineString(s.reshape(2, 2)) for s in walkable.exit_segments]
    return gpd.GeoDataFrame(df, geometry=geom, crs=crs)


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
_OPTIONAL_RESULTS = ("exits", "waypoint_passages", "line_crossings", "fundamental_diagram", "density", "max_density")
ENGINE = "simulation.crowd"  # the results' meta "engine"


def _jams_table(jams, crs) -> pd.DataFrame:
    """The run's jams as a table: x, y in the twin's CRS and, for the map, lon and lat (WGS 84)."""
    from pyproj import Transformer

    out = pd.DataFrame([vars(j) for j in jams], columns=["time_s", "x", "y", "n_agents", "exit", "kind", "waypoint",
                                                         "end_s", "peak_density"])
    if crs is not None:
        lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
            out["x"].to_numpy("float64"), out["y"].to_numpy("float64"))
        out["lon"], out["lat"] = lon, lat
    return out


def save_crowd_result(twin, scenario: str, run: str, res, info: dict | None = None, *, crs=None,
                      timings: dict | None = None, walkable=None) -> list[str]:
    """Store a :class:`~simulation.crowd.CrowdResult` under ``scenario`` + ``run``; returns the names saved.

    With ``walkable`` (the :class:`~simulation.crowd.WalkableArea` the run used) the layer ``exits`` is saved
    too: a line per exit with ``exit_usage``'s columns and ``closed`` (where ``twin export`` and the map
    place the exits).

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
        return _save_crowd_result(twin, scenario, run, res, info, crs=crs, timings=timings or {},
                                  walkable=walkable)


def _save_crowd_result(twin, scenario, run, res, info, *, crs, timings, walkable=None):
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
    usage = res.exit_usage()
    put("exit_usage", usage)
    if walkable is not None and len(walkable.exit_names):
        put("exits", _exits_layer(walkable, usage, (info or {}).get("closed_exits") or (), crs or twin.crs))
    put("jams", _jams_table(res.jams, crs or twin.crs))
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
