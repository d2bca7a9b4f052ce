"""Storey floor plans for pedestrian (crowd) simulation.

:func:`storey_floorplan` cuts a storey at ``cut_height`` above its floor level:
walls and columns crossing the cut become obstacles, the floor (slabs of the
storey, else its spaces, else the area the walls enclose) minus the obstacles
is the walkable area, and the doors are openings (the external ones are exits;
on a storey with none, the stairs coming up to it from below).

Examples
--------
>>> from bim_import.floorplan import storey_floorplan
>>> plan = storey_floorplan("/work/shared/data/ifc/AC20-FZK-Haus.ifc", "Erdgeschoss")  # doctest: +SKIP
>>> round(plan.walkable.area)  # doctest: +SKIP
98
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin_core.errors import GeometryError, ImportFormatError

__all__ = ["Floorplan", "storey_floorplan", "WALL_CLASSES"]

#: Classes cut as obstacles (windows too: a cut below the sill height would
#: otherwise leave gaps in the walls).
WALL_CLASSES = ("IfcWall", "IfcColumn", "IfcCurtainWall", "IfcWindow", "IfcRailing", "IfcPlate")


@dataclass
class Floorplan:
    """A storey cut for crowd simulation.

    Attributes
    ----------
    storey : str
        Storey name.
    elevation_m : float
        Floor level of the storey (model metres, before georeferencing).
    cut_z_m : float
        Height of the cut plane (model metres).
    walkable : shapely Polygon or MultiPolygon
        Floor minus walls and columns.
    walls : list of shapely Polygon
        Wall and column sections at the cut.
    doors : list of shapely Polygon
        Door footprints (openings through walls).
    exits : list of int
        Indexes into ``doors`` of the exits: doors on the outer rim of the
        walls (unless Pset_DoorCommon.IsExternal says False).
    exit_lines : dict
        Door GlobalId -> ``[(x1, y1), (x2, y2)]``, the line across each exit on
        the boundary of ``walkable`` (the form the crowd engine's
        ``WalkableArea(polygon, exits=...)`` takes).
    door_ids : list of str
        GlobalIds of ``doors``.
    stair_exits : list of str
        GlobalIds of the stairs (IfcStair, IfcStairFlight) in ``exit_lines``:
        on a storey with no external door, the stairs coming up to it from
        below are its way out (the line across the top of each flight).
    floor_source : str
        ``"slabs"``, ``"spaces"`` or ``"walls"`` (what the floor came from).
    crs : str or None
        ``None``: model coordinates (metres); else the CRS the plan is in.
    crs_offset : dict
        ``{"crs", "affine": [a, b, c, d, e, f], "z0", "origin", "rotation_deg"}``:
        the map from model metres to ``crs`` (identity for model coordinates).
        ``X = a*x + b*y + c``, ``Y = d*x + e*y + f``.
    """

    storey: str
    elevation_m: float
    cut_z_m: float
    walkable: Any
    walls: list
    doors: list
    exits: list = field(default_factory=list)
    door_ids: list = field(default_factory=list)
    floor_source: str = "slabs"
    crs: str | None = None
    crs_offset: dict = field(default_factory=dict)
    exit_lines: dict = field(default_factory=dict)
    stair_exits: list = field(default_factory=list)

    @property
    def exit_polygons(self) -> list:
        return [self.doors[i] for i in self.exits]


def _pick_storey(model, storey):
    st = model.storeys
    if len(st) == 0:
        raise GeometryError(f"{model.path!r} has no IfcBuildingStorey; a floor plan needs storeys")
    if isinstance(storey, (int, np.integer)) and not isinstance(storey, bool):
        if not -len(st) <= int(storey) < len(st):
            raise GeometryError(f"storey index {storey} out of range; the model has {len(st)} storeys: {st['name'].tolist()}")
        return st.iloc[int(storey)]
    hit = st[(st["name"] == storey) | (st["global_id"] == storey)]
    if len(hit) == 0:
        raise GeometryError(f"no storey {storey!r}; the model's storeys are {st['name'].tolist()} (or pass an index)")
    return hit.iloc[0]


def _is_external(psets_json: str) -> bool | None:
    try:
        ps = json.loads(psets_json or "{}")
    except ValueError:
        return None
    for name, props in ps.items():
        if name.lower().endswith("doorcommon") and isinstance(props, dict) and "IsExternal" in props:
            return bool(props["IsExternal"])
    return None


def _far_ends(line):
    from shapely.geometry import Point

    c = list(line.coords)
    return Point(c[0]), Point(c[-1])


#: a stair arrives at a storey when its body reaches from below ``elev - _STAIR_RISE_M`` up to the floor
#: level; its top step is what lies within ``_STAIR_TOP_M`` below the floor level (one riser: 0.3 m is above the
#: 0.175-0.2 m risers building codes allow, e.g. GB 50352-2019 6.8.10, so the top tread is always caught)
_STAIR_RISE_M = 0.5
_STAIR_TOP_M = 0.3


def _stair_exit_lines(model, walkable, elev: float) -> dict:
    """GlobalId -> exit line of every stair (IfcStair / IfcStairFlight with a body) coming up to a storey at
    ``elev`` from below: the longest straight piece of the walkable outline within 0.3 m of its top step."""
    from shapely.geometry import MultiPoint

    el = model.elements
    out = {}
    for r in el[el["ifc_class"].isin(["IfcStair", "IfcStairFlight"])].itertuples():
        m = model.meshes.get(r.global_id)
        if m is None:
            continue
        v = m.vertices
        if not (v[:, 2].min() < elev - _STAIR_RISE_M and v[:, 2].max() >= elev - _STAIR_TOP_M):
            continue
        top = v[(v[:, 2] >= elev - _STAIR_TOP_M) & (v[:, 2] <= elev + 0.05)]
        if len(top) < 3:
            continue
        near = walkable.boundary.intersection(MultiPoint(top[:, :2]).convex_hull.buffer(0.3))
        best = None
        for g in getattr(near, "geoms", [near]):
            if g.is_empty or not hasattr(g, "coords"):
                continue
            c = np.asarray(g.coords)[:, :2]
            for a, b in zip(c[:-1], c[1:]):
                if best is None or np.hypot(*(b - a)) > np.hypot(*(best[1] - best[0])):
                    best = (a, b)
        if best is not None and np.hypot(*(best[1] - best[0])) >= 0.5:
            out[r.global_id] = [(float(best[0][0]), float(best[0][1])), (float(best[1][0]), float(best[1][1]))]
    return out


def storey_floorplan(model_or_path, storey, cut_height: float = 1.0, *, georef=None, twin_crs: str | None = None,
                     anchor=None, clip_to_envelope: bool = True):
    """Cut one storey into a walkable area, walls and doors.

    Parameters
    ----------
    model_or_path : BimModel or str
        A model from :func:`bim_import.read_model`, or an IFC path (read here).
    storey : str or int
        Storey name, GlobalId, or index in elevation order (0 = lowest).
    cut_height : float
        Height of the cut above the storey's floor level, metres.
    georef : Georeference, optional
        Put the plan in this CRS. Or give ``twin_crs`` (and ``anchor`` when
        the model has no georeference) to compute it. Default: model coordinates.
    clip_to_envelope : bool
        Keep only the floor inside the outer walls (drops slab overhangs and
        terraces), unless the walls enclose less than half of the floor.

    Returns
    -------
    Floorplan

    Raises
    ------
    GeometryError
        Unknown storey, or nothing to cut (no walls, no floor).
    """
    from shapely.geometry import MultiPolygon, Polygon
    from shapely.ops import linemerge, unary_union

    from bim_import.geometry import affine_geom, polygons_of, project_union, section_polygons
    from bim_import.model import BimModel, read_model

    if isinstance(model_or_path, (str, os.PathLike)):
        model = read_model(model_or_path)
    elif isinstance(model_or_path, BimModel):
        model = model_or_path
    else:
        raise ImportFormatError(f"model_or_path must be a BimModel or an IFC path, got {type(model_or_path).__name__}")
    if not (isinstance(cut_height, (int, float, np.number)) and np.isfinite(cut_height) and cut_height > 0):
        raise GeometryError(f"cut_height must be a finite number > 0 m above the floor, got {cut_height!r}")
    row = _pick_storey(model, storey)
    name, elev = row["name"], float(row["elevation_m"])
    z = elev + float(cut_height)
    el = model.elements

    # obstacles: every wall/column crossing the cut plane (whatever storey holds it)
    walls = []
    for gid in model.element_ids(WALL_CLASSES):
        m = model.meshes.get(gid)
        if m is None:
            continue
        walls.extend(p for p in section_polygons(m.vertices, m.faces, z) if p.area > 1e-6)
    wall_union = unary_union(walls) if walls else Polygon()

    # floor: slabs of this storey, else its spaces, else the area the walls enclose
    in_storey = el[el["storey"] == name]
    slabs = in_storey[(in_storey["ifc_class"].str.startswith("IfcSlab")) &
                      (in_storey["predefined_type"].fillna("") != "ROOF")]["global_id"].tolist()
    floor = project_union(model.all_triangles(slabs)) if slabs else Polygon()
    source = "slabs"
    if floor.is_empty:
        spaces = in_storey[in_storey["ifc_class"] == "IfcSpace"]["global_id"].tolist()
        floor = project_union(model.all_triangles(spaces)) if spaces else Polygon()
        source = "spaces"
    if floor.is_empty and not wall_union.is_empty:
        shells = [Polygon(p.exterior) for p in polygons_of(wall_union)]
        floor = unary_union(shells)
        source = "walls"
    if floor.is_empty:
        raise GeometryError(
            f"storey {name!r} has no slab, no space and no wall at {cut_height} m above its floor; "
            "choose another storey or cut height"
        )
    # doors: those whose body spans the cut plane (or contained in the storey)
    doors, door_ids, external = [], [], []
    for r in el[el["ifc_class"].str.startswith("IfcDoor")].itertuples():
        m = model.meshes.get(r.global_id)
        if m is None:
            continue
        zmin, zmax = m.vertices[:, 2].min(), m.vertices[:, 2].max()
        if not (zmin - 0.05 <= z <= zmax + 0.05 or r.storey == name):
            continue
        fp = project_union(m.triangles)
        if fp.is_empty:
            continue
        doors.append(fp.convex_hull)
        door_ids.append(r.global_id)
        external.append(_is_external(r.psets))

    # the envelope: walls with the door gaps closed (doors grown by 2 cm to meet the wall faces), filled
    grown = [d.buffer(0.02) for d in doors]
    closed = unary_union([wall_union, *grown])
    envelope = unary_union([Polygon(p.exterior) for p in polygons_of(closed)])
    rim = envelope.boundary
    # walkable: the floor (with the door openings) inside the envelope, minus the walls. Slab edges
    # outside the walls (overhangs, terraces) are dropped unless the walls enclose too little of the floor.
    floor_in = unary_union([floor, *grown]) if grown else floor
    if clip_to_envelope and not envelope.is_empty and envelope.intersection(floor).area >= 0.5 * floor.area:
        floor_in = floor_in.intersection(envelope)
    walkable = floor_in.difference(wall_union) if not wall_union.is_empty else floor_in
    walkable = MultiPolygon([p for p in polygons_of(walkable) if p.area > 0.01])
    if len(walkable.geoms) == 1:
        walkable = walkable.geoms[0]

    # exits: doors on the rim of the envelope (unless the model says they are internal); the exit
    # line is the rim across the door opening
    exits, exit_lines = [], {}
    for i, (d, g, ext) in enumerate(zip(doors, grown, external)):
        if ext is False or d.distance(rim) > 0.05:
            continue
        piece = rim.intersection(g.buffer(0.005))
        parts = [p for p in getattr(piece, "geoms", [piece]) if p.geom_type == "LineString" and not p.is_empty]
        if not parts:
            continue
        merged = linemerge(parts) if len(parts) > 1 else parts[0]
        longest = max(getattr(merged, "geoms", [merged]), key=lambda ln: ln.length)
        a, b = _far_ends(longest)
        if a.distance(b) < 0.3:
            continue
        exits.append(i)
        exit_lines[door_ids[i]] = [(a.x, a.y), (b.x, b.y)]

    # a storey with no external door (an upper floor): the stairs coming up to it are its way out
    stair_exits = []
    if not exit_lines:
        stairs = _stair_exit_lines(model, walkable, elev)
        exit_lines.update(stairs)
        stair_exits = list(stairs)

    crs = None
    offset = {"crs": None, "affine": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "z0": 0.0, "origin": (0.0, 0.0),
              "rotation_deg": 0.0}
    if georef is None and twin_crs is not None:
        from bim_import.georef import georeference

        georef = georeference(model, twin_crs, anchor=anchor)
    if georef is not None:
        walkable = affine_geom(walkable, georef)
        walls = [affine_geom(w, georef) for w in walls]
        doors = [affine_geom(d, georef) for d in doors]
        exit_lines = {k: [tuple(p) for p in georef.apply_xy(np.asarray(v)).tolist()] for k, v in exit_lines.items()}
        crs = georef.crs
        offset = {"crs": georef.crs, "affine": [georef.a, georef.b, georef.c, georef.d, georef.e, georef.f],
                  "z0": georef.z0, "origin": (georef.c, georef.f), "rotation_deg": georef.rotation_deg}
    return Floorplan(storey=name, elevation_m=elev, cut_z_m=z, walkable=walkable, walls=walls, doors=doors,
                     exits=exits, door_ids=door_ids, floor_source=source, crs=crs, crs_offset=offset,
                     exit_lines=exit_lines, stair_exits=stair_exits)
