"""Walkable areas, exits and floor fields of the crowd engine."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulation.crowd import _kernels as K
from twin_core.errors import GeometryError, ParameterError, TwinWarning, twin_warn

__all__ = ["WalkableArea", "FloorField"]

_EXIT_BEYOND = 0.35  # m: no wall counts this far beyond an exit line, within its span (see WalkableArea)
_EXIT_TOL = 0.05  # m: an exit line follows the walkable outline this closely (the door opening cut in the wall)
_EXIT_SNAP = 0.1  # m: an exit this close to the outline is snapped onto it; one further off is refused
_MAX_FF_CELLS = 20_000_000  # floor-field grid cells at most (each exit's field is 8 bytes a cell)


def _as_polygon(geom):
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    if isinstance(geom, (Polygon, MultiPolygon)):
        poly = geom
    elif isinstance(geom, (list, tuple, np.ndarray)):
        try:
            poly = Polygon(geom)
        except Exception as exc:  # noqa: BLE001
            raise GeometryError(f"walkable must be a shapely Polygon/MultiPolygon or a ring of (x, y): {exc}") from None
    else:
        raise GeometryError(f"walkable must be a shapely Polygon or MultiPolygon, got {type(geom).__name__}")
    xy = shapely.get_coordinates(poly)
    if not np.isfinite(xy).all():
        bad = xy[~np.isfinite(xy).all(axis=1)][0]
        raise GeometryError(f"walkable polygon has a vertex that is not a finite number: ({bad[0]}, {bad[1]}); "
                            "give finite coordinates (metres)")
    if poly.is_empty:
        raise GeometryError("walkable area is empty; give a polygon with positive area (metres)")
    if not poly.is_valid:
        reason = shapely.is_valid_reason(poly)
        poly = _repaired(poly)
        if poly.is_empty or poly.area <= 0:
            raise GeometryError(f"walkable polygon is invalid ({reason}) and could not be repaired into one with "
                                "positive area; check its rings")
        twin_warn(f"walkable polygon is invalid ({reason}); repaired as its outline minus its holes "
                      f"({poly.area:.1f} m2 walkable). Fix the rings at the source to be sure what is floor",
                      TwinWarning, stacklevel=4)
    if poly.area <= 0:
        raise GeometryError("walkable area is empty; give a polygon with positive area (metres)")
    return shapely.set_precision(poly, 0.0)


def _repaired(poly):
    """A valid (multi)polygon for an invalid one: each outline made valid, minus all its holes.

    (``make_valid``'s default linework repair drops a hole that touches the outline along an
    edge and turns the overlap of two holes into floor: obstacles would vanish.)
    """
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    def areal(g):
        return [p for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon) and not p.is_empty]

    parts = []
    for p in getattr(poly, "geoms", [poly]):
        shell = shapely.make_valid(Polygon(p.exterior), method="structure")
        holes = [shapely.make_valid(Polygon(h), method="structure") for h in p.interiors]
        if holes:
            shell = shell.difference(shapely.union_all(holes))
        parts += areal(shell)
    fixed = shapely.union_all(parts) if parts else MultiPolygon()
    polys = areal(fixed)
    if not polys:
        return MultiPolygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _as_line(g, name):
    """The exit ``g`` (a LineString or points) as its chord, a (2, 2) array of finite coordinates."""
    from shapely.geometry import LineString

    usage = f"exit {name!r} must be a LineString or [(x1, y1), (x2, y2)]"
    try:
        coords = np.asarray(g.coords if isinstance(g, LineString) else g, dtype=np.float64)
    except (TypeError, ValueError):
        raise GeometryError(f"{usage}, got {g!r}") from None
    if coords.ndim == 1 and coords.size in (4, 6):  # flat x1, y1, x2, y2 (...)
        coords = coords.reshape(-1, 2)
    if coords.ndim != 2 or coords.shape[1] not in (2, 3) or len(coords) < 2:
        raise GeometryError(f"{usage}, got {g!r}")
    # the chord of a polyline: doors are straight
    coords = np.ascontiguousarray(coords[[0, -1], :2])
    if not np.isfinite(coords).all():
        raise GeometryError(f"exit {name!r} has a coordinate that is not a finite number: {coords.tolist()}; "
                            "give finite coordinates (metres)")
    if math.hypot(*(coords[1] - coords[0])) < 0.2:
        raise GeometryError(f"exit {name!r} is shorter than 0.2 m; give the door's full width")
    return coords


def _exit_off(c, boundary) -> float:
    """How far the exit line ``c`` (2, 2) strays from ``boundary`` (m), sampled along it."""
    from shapely.geometry import Point

    return max(Point(c[0] + f * (c[1] - c[0])).distance(boundary) for f in (0.0, 0.25, 0.5, 0.75, 1.0))


def _on_outline(c, name, boundary) -> np.ndarray:
    """The exit line ``c`` snapped onto the walkable outline, as x1, y1, x2, y2.

    One rule: an exit within ``_EXIT_SNAP`` of the outline has its ends moved
    onto it (so the door opening is cut out of the wall); the snapped line must
    then follow the outline within ``_EXIT_TOL`` (the opening's width); anything
    else is refused.
    """
    from shapely.geometry import Point
    from shapely.ops import nearest_points

    where = f"exit {name!r} ({c[0][0]:.2f}, {c[0][1]:.2f})-({c[1][0]:.2f}, {c[1][1]:.2f})"
    off = _exit_off(c, boundary)
    if not off <= _EXIT_SNAP:
        raise GeometryError(
            f"{where} does not lie on the boundary of the walkable area: it is {off:.2f} m off the walkable area's "
            f"outline (at most {_EXIT_SNAP:.2f} m is snapped onto it); put exits on the outline or on the rim of a hole"
        )
    snapped = c.astype(np.float64).copy()
    for k in range(2):
        p = Point(c[k])
        if p.distance(boundary) > 0.0:
            q = nearest_points(boundary, p)[0]
            snapped[k] = q.x, q.y
    off = _exit_off(snapped, boundary)
    if not off <= _EXIT_TOL:
        raise GeometryError(
            f"{where} does not follow the walkable area's outline: with its ends on the outline it is still "
            f"{off:.2f} m off it in between (at most {_EXIT_TOL:.2f} m); draw the door along one straight piece of "
            "the outline"
        )
    if math.hypot(*(snapped[1] - snapped[0])) < 0.2:
        raise GeometryError(f"{where} is shorter than 0.2 m once put onto the outline; give the door's full width")
    return snapped.ravel()


def _rings(poly):
    """Rings of a (multi)polygon as GeoArrow-style coordinates + offsets."""
    polys = getattr(poly, "geoms", [poly])
    xy, off = [], [0]
    for p in polys:
        for ring in [p.exterior, *p.interiors]:
            c = np.asarray(ring.coords, dtype=np.float64)[:, :2]
            xy.append(c)
            off.append(off[-1] + len(c))
    return np.ascontiguousarray(np.concatenate(xy)), np.asarray(off, dtype=np.intp)


def wall_vertex_table(walls) -> np.ndarray:
    """Wall segments ``(n, 4)`` with the columns the kernels' wall force needs to count a shared vertex once.

    Returns ``(n, 10)``: x1, y1, x2, y2, then for the start and for the end vertex a mode (0: no other
    segment ends there; 1: this segment counts the vertex, unless the agent is beside the other segment,
    whose unit direction away from the vertex follows; 2: another segment counts it) and that direction
    (see ``_kernels._wall_point``). Vertices are matched to 1e-9 m. Where three or more segments meet, the
    first of them counts the vertex with the second's direction.
    """
    seg = np.asarray(walls, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(seg), 10))
    out[:, :4] = seg
    at: dict = {}
    for s, (x1, y1, x2, y2) in enumerate(seg):
        for end, (vx, vy) in enumerate(((x1, y1), (x2, y2))):
            at.setdefault((round(vx * 1e9), round(vy * 1e9)), []).append((s, end))
    for ends in at.values():
        if len(ends) < 2:
            continue
        for k, (s, end) in enumerate(ends):
            out[s, 4 + 3 * end] = 1.0 if k == 0 else 2.0
        (s, end), (o, oend) = ends[0], ends[1]
        a, b = seg[o, :2], seg[o, 2:]
        away = (b - a) if oend == 0 else (a - b)
        out[s, 5 + 3 * end: 7 + 3 * end] = away / math.hypot(*away)
    return np.ascontiguousarray(out)


@dataclass
class WalkableArea:
    """Where pedestrians may walk: a polygon with holes, exits on its boundary.

    Parameters
    ----------
    polygon : shapely Polygon or MultiPolygon
        The walkable floor (metres, projected). Holes are obstacles.
    exits : dict of name -> LineString or [(x1, y1), (x2, y2)]
        Door lines on the boundary. Agents leave when they cross one. The
        walls (:attr:`walls`) are the boundary minus the door openings and
        minus whatever outline lies within 0.35 m beyond a door line, within
        its span (a door's reveal drawn a few cm outside the line).
    waypoints : dict of name -> geometry, optional
        Places agents with a route (``Agents(route=[...])``) must pass, in
        order, before they head for an exit. A point ``(x, y)`` or shapely
        Point is a disc of ``waypoint_radius``; a Polygon is a small area;
        a LineString or ``[(x1, y1), (x2, y2)]`` is a line (a gate). Each
        must lie on the walkable floor. An agent has reached one when its
        centre comes within one floor-field cell of it (0.1 m by default).
    waypoint_radius : float
        Radius (m) of point waypoints; default 1.0 m.
    periodic : bool
        A periodic corridor along x (for the fundamental diagram): the
        polygon must be an axis-aligned rectangle; the left and right edges
        are open and wrap around; everybody walks towards +x; no exits.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> area = WalkableArea(box(0, 0, 10, 10), exits={"door": [(10, 4.5), (10, 5.5)]})
    >>> area.walls.shape
    (5, 4)
    >>> area = WalkableArea(box(0, 0, 10, 10), exits={"door": [(10, 4.5), (10, 5.5)]},
    ...                     waypoints={"kiosk": (2, 8), "gate": [(5, 0), (5, 3)]})
    >>> area.waypoint_names
    ['kiosk', 'gate']
    """

    polygon: object
    exits: dict = field(default_factory=dict)
    waypoints: dict = field(default_factory=dict)
    periodic: bool = False
    waypoint_radius: float = 1.0

    def __post_init__(self):
        from shapely.geometry import LineString, MultiLineString, Polygon

        self.polygon = _as_polygon(self.polygon)
        boundary = self.polygon.boundary
        if self.exits is None:
            self.exits = {}
        if not isinstance(self.exits, dict):
            raise GeometryError(f"exits must be a dict of name -> [(x1, y1), (x2, y2)] (or a LineString), got a "
                                f"{type(self.exits).__name__}; name each exit, e.g. exits={{'door': [(10, 1), (10, 2)]}}")
        names = list(self.exits)
        ex = [_on_outline(_as_line(self.exits[name], name), name, boundary) for name in names]
        self.exit_names = names
        self.exit_segments = np.ascontiguousarray(np.asarray(ex, dtype=np.float64).reshape(-1, 4))
        # outward normals: the side of the exit line that is not walkable
        normals = np.zeros((len(names), 2))
        for k, s in enumerate(self.exit_segments):
            mx, my = (s[0] + s[2]) / 2, (s[1] + s[3]) / 2
            nx_, ny_ = -(s[3] - s[1]), s[2] - s[0]
            nn = math.hypot(nx_, ny_)
            nx_, ny_ = nx_ / nn, ny_ / nn
            import shapely

            inside_plus = shapely.contains_xy(self.polygon, mx + 0.05 * nx_, my + 0.05 * ny_)
            inside_minus = shapely.contains_xy(self.polygon, mx - 0.05 * nx_, my - 0.05 * ny_)
            if inside_plus and not inside_minus:
                nx_, ny_ = -nx_, -ny_
            normals[k] = nx_, ny_
        self.exit_normals = np.ascontiguousarray(normals)
        # walls: the boundary minus the door openings (and minus open ends in a periodic corridor), and minus
        # what lies beyond a door line within its span, up to _EXIT_BEYOND: an outline drawn round a door's
        # reveal a few cm outside a slightly tilted exit line left a stub of wall 0.06 m beyond it (FZK-Haus's
        # west door), which a person aiming at that part of the door could never get within a radius of the
        # line past
        cut = [LineString(c.reshape(2, 2)).buffer(_EXIT_TOL, cap_style="flat") for c in self.exit_segments]
        for c, n in zip(self.exit_segments, self.exit_normals):
            a, b = c[:2], c[2:]
            u = (b - a) / math.hypot(*(b - a))
            a, b = a + 0.01 * u, b - 0.01 * u  # the jambs' reveals, at the span's ends, stay walls
            cut.append(Polygon([a, b, b + _EXIT_BEYOND * n, a + _EXIT_BEYOND * n]))
        walls = boundary
        if self.periodic:
            if self.exits:
                raise GeometryError("a periodic corridor has no exits; drop exits or periodic=True")
            x0, y0, x1, y1 = self.polygon.bounds
            if abs(self.polygon.area - (x1 - x0) * (y1 - y0)) > 1e-6 * self.polygon.area:
                raise GeometryError("a periodic corridor must be an axis-aligned rectangle")
            walls = MultiLineString([[(x0, y0), (x1, y0)], [(x0, y1), (x1, y1)]])
            self.period = (x0, x1 - x0)
        else:
            self.period = None
        for c in cut:
            walls = walls.difference(c)
        segs = []
        for g in getattr(walls, "geoms", [walls]):
            if g.is_empty or not hasattr(g, "coords"):
                continue
            c = np.asarray(g.coords)[:, :2]
            for a, b in zip(c[:-1], c[1:]):
                if np.any(a != b):
                    segs.append((a[0], a[1], b[0], b[1]))
        self.walls = np.ascontiguousarray(np.asarray(segs, dtype=np.float64).reshape(-1, 4))
        self._set_waypoints()
        if not self.periodic and not names:
            raise GeometryError("the walkable area has no exit; give exits={'name': [(x1, y1), (x2, y2)]}")

    def _set_waypoints(self):
        """Waypoints as shapely geometries (points already buffered to discs), checked to be on the floor."""
        from shapely.geometry import LineString, Point, Polygon

        if self.waypoints is None:
            self.waypoints = {}
        if not isinstance(self.waypoints, dict):
            raise ParameterError("waypoints must be a dict of name -> (x, y), Polygon or [(x1, y1), (x2, y2)]")
        if self.waypoints and self.periodic:
            raise GeometryError("a periodic corridor has no waypoints; drop waypoints or periodic=True")
        if not (isinstance(self.waypoint_radius, (int, float)) and math.isfinite(self.waypoint_radius)
                and self.waypoint_radius > 0):
            raise ParameterError(f"waypoint_radius must be a finite number > 0 m, got {self.waypoint_radius!r}")
        clash = set(map(str, self.waypoints)) & set(map(str, self.exit_names))
        if clash:
            raise ParameterError(f"waypoint names {sorted(clash)} are also exit names; give them other names")
        self.waypoint_names = [str(k) for k in self.waypoints]
        self.waypoint_kinds = []
        self.waypoint_geoms = []
        for name, g in self.waypoints.items():
            if isinstance(g, (Point, Polygon, LineString)):
                geom = g
            else:
                a = np.asarray(g, dtype=float) if not isinstance(g, str) else np.empty(0)
                if a.shape == (2,):
                    geom = Point(a)
                elif a.ndim == 2 and a.shape[1] == 2 and len(a) == 2:
                    geom = LineString(a)
                elif a.ndim == 2 and a.shape[1] == 2 and len(a) >= 3:
                    geom = Polygon(a)
                else:
                    raise GeometryError(f"waypoint {name!r} must be a point (x, y), a line [(x1, y1), (x2, y2)] "
                                        f"or a polygon; got {g!r}")
            kind = {"Point": "point", "Polygon": "area", "LineString": "line"}[geom.geom_type]
            if kind == "point":
                inside = bool(self.contains(geom.x, geom.y))
                geom = geom.buffer(self.waypoint_radius)
            elif kind == "line":
                inside = self.polygon.buffer(_EXIT_TOL).contains(geom) and geom.length > 0
            else:
                inside = geom.is_valid and geom.area > 0 and self.polygon.intersection(geom).area > 0.5 * geom.area
            if not inside:
                x0, y0, x1, y1 = geom.bounds
                raise GeometryError(f"waypoint {name!r} ({kind}, bounds ({x0:.2f}, {y0:.2f})-({x1:.2f}, {y1:.2f})) "
                                    "is not on the walkable area; move it onto the floor (off walls and holes)")
            self.waypoint_kinds.append(kind)
            self.waypoint_geoms.append(geom)

    def waypoint_index(self, name: str) -> int:
        try:
            return self.waypoint_names.index(str(name))
        except ValueError:
            raise GeometryError(f"unknown waypoint {name!r}; waypoints are {self.waypoint_names}") from None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(self.polygon.bounds)

    def exit_index(self, name: str) -> int:
        try:
            return self.exit_names.index(name)
        except ValueError:
            raise GeometryError(f"unknown exit {name!r}; exits are {self.exit_names}") from None

    def floor_beyond_exits(self, reach: float) -> np.ndarray:
        """Per exit, whether walkable floor lies on its far side (the side its outward normal points to) within
        ``reach`` m of it: floor that wraps round the exit's end.

        A door in a wall has none (beyond it is outside). A stair opening cut in a storey's floor has: the
        floor runs on round the opening's rim past the end of the exit drawn on it (north of FZK-Haus's
        opening, west of the Duplex's stair railing), and people there are beside the exit but cannot walk
        straight through it. The engine has them follow the floor field round the rim
        (:class:`~simulation.crowd.CrowdSimulation`).

        Floor within ``_EXIT_TOL`` of the exit line (a door drawn along a slightly bent outline) is not
        counted, nor slivers no disc of 0.1 m radius fits in (no room for a person: a 0.07 m2 wedge 0.24 m
        wide where a plaza's outline bends at the end of its exit was counted by the 0.01 m2 area rule
        used until 2026-12-05).
        """
        from shapely.geometry import Polygon

        out = np.zeros(len(self.exit_names), dtype=bool)
        if not (isinstance(reach, (int, float)) and math.isfinite(reach) and reach > 0):
            raise ParameterError(f"reach must be a finite number > 0 m, got {reach!r}")
        for k, s in enumerate(self.exit_segments):
            a, b = s[:2], s[2:]
            u = (b - a) / math.hypot(*(b - a))
            n = self.exit_normals[k]
            beyond = Polygon([a - reach * u + _EXIT_TOL * n, b + reach * u + _EXIT_TOL * n,
                              b + reach * u + reach * n, a - reach * u + reach * n])
            out[k] = not self.polygon.intersection(beyond).buffer(-0.1).is_empty
        return out

    def exit_reveals(self, depth: float = 0.05, tol: float = 0.05) -> np.ndarray:
        """Per exit, 1.0 where a wall leaves one of its ends back into the walkable side by more than ``depth``
        m (a jamb's reveal: the door is in a thick wall), else 0.0 (a gap in a thin wall or an open edge).
        Wall ends within ``tol`` m of the exit's end count as meeting it (IFC outlines miss by millimetres)."""
        out = np.zeros(len(self.exit_names))
        w = self.walls
        if not len(w):
            return out
        for k, s in enumerate(self.exit_segments):
            inward = -self.exit_normals[k]
            for end in (s[:2], s[2:]):
                for p, q in ((w[:, :2], w[:, 2:]), (w[:, 2:], w[:, :2])):
                    meet = np.hypot(*(p - end).T) <= tol
                    if meet.any() and (((q[meet] - end) @ inward) > depth).any():
                        out[k] = 1.0
        return out

    def free_run_beyond_exit(self, k: int, limit: float) -> float:
        """How far (m, at most ``limit``) one can go straight out of exit ``k``, across its whole width, before
        meeting walkable floor: beyond a door in an outside wall, ``limit``; beyond a stair drawn on the rim of
        its opening, the length of the opening (the floor resumes past its far end)."""
        from shapely.geometry import Polygon

        s = self.exit_segments[k]
        a, b = s[:2], s[2:]
        n = self.exit_normals[k]
        strip = Polygon([a + _EXIT_TOL * n, b + _EXIT_TOL * n, b + limit * n, a + limit * n])
        floor = self.polygon.intersection(strip)
        if floor.is_empty or floor.area < 1e-9:
            return float(limit)
        xy = np.concatenate([np.asarray(g.exterior.coords) for g in getattr(floor, "geoms", [floor])
                             if g.geom_type == "Polygon" and g.area > 1e-9] or [np.empty((0, 2))])
        if not len(xy):
            return float(limit)
        return float(min(limit, ((xy - a) @ n).min()))

    def contains(self, x, y) -> np.ndarray:
        import shapely

        return shapely.contains_xy(self.polygon, np.asarray(x, float), np.asarray(y, float))

    def wall_distance(self, x, y) -> np.ndarray:
        """Distance from points to the nearest wall (boundary minus doors)."""
        x = np.atleast_1d(np.asarray(x, float))
        y = np.atleast_1d(np.asarray(y, float))
        s = self.walls
        if len(s) == 0:
            return np.full(len(x), np.inf)
        out = np.full(len(x), np.inf)
        for chunk in range(0, len(s), 256):
            ss = s[chunk:chunk + 256]
            dx, dy = ss[:, 2] - ss[:, 0], ss[:, 3] - ss[:, 1]
            L2 = np.maximum(dx * dx + dy * dy, 1e-300)
            t = np.clip(((x[:, None] - ss[:, 0]) * dx + (y[:, None] - ss[:, 1]) * dy) / L2, 0, 1)
            d = np.hypot(x[:, None] - ss[:, 0] - t * dx, y[:, None] - ss[:, 1] - t * dy)
            out = np.minimum(out, d.min(axis=1))
        return out

    def crosses_wall(self, x0, y0, x1, y1) -> np.ndarray:
        """Whether each move (x0, y0) -> (x1, y1) crosses a wall segment (for checks)."""
        from shapely import linestrings
        from shapely.geometry import MultiLineString

        walls = MultiLineString([s.reshape(2, 2) for s in self.walls])
        moves = linestrings(np.stack([np.stack([x0, y0], -1), np.stack([x1, y1], -1)], 1))
        import shapely

        inter = shapely.intersection(moves, walls)
        # touching a wall at the start point is not crossing
        return ~shapely.is_empty(inter) & ~shapely.equals(inter, shapely.points(np.stack([x0, y0], -1)))


class FloorField:
    """Walking distance to each exit (and each waypoint) on a fine grid (numba 16-neighbour Dijkstra).

    Parameters
    ----------
    area : WalkableArea
    cell : float, optional
        Grid spacing in metres; default 0.1 m, coarsened so the grid has at
        most ``max_cells`` cells (a 170 m x 110 m plaza gets 0.25 m).
    wall_avoidance : float
        Cells closer than this to a wall cost up to ``1 + wall_penalty``
        times more, so routes keep off walls and corners.
    door_near : float
        The engine's ``CrowdParameters.door_near`` (0.6 m by default): an exit with walkable floor beyond its
        line within this of it (:meth:`WalkableArea.floor_beyond_exits`, a stair opening's rim) is reached
        from in front only, its field seeded by the cells in front of it (not those beside its ends).
    """

    def __init__(self, area: WalkableArea, cell: float | None = None, *, max_cells: int = 300_000,
                 wall_avoidance: float = 0.4, wall_penalty: float = 1.0, door_near: float = 0.6):
        x0, y0, x1, y1 = area.bounds
        if cell is None:
            cell = max(0.1, math.sqrt((x1 - x0) * (y1 - y0) / max_cells))
        if not (isinstance(cell, (int, float, np.number)) and math.isfinite(cell) and cell > 0):
            raise ParameterError(f"floor-field cell must be a finite number > 0 m, got {cell!r}")
        cells = (math.ceil((x1 - x0) / cell) + 4) * (math.ceil((y1 - y0) / cell) + 4)
        if cells > max(_MAX_FF_CELLS, max_cells):
            need = 1.01 * math.sqrt((x1 - x0 + 4 * cell) * (y1 - y0 + 4 * cell) / max(_MAX_FF_CELLS, max_cells))
            raise ParameterError(
                f"a floor-field cell of {cell:g} m over the walkable area of {x1 - x0:.1f} m x {y1 - y0:.1f} m needs "
                f"{cells:,} grid cells (at most {max(_MAX_FF_CELLS, max_cells):,}); use a cell of at least "
                f"{need:.3g} m, or None for the automatic one")
        self.h = float(cell)
        self.x0 = x0 - 2 * self.h
        self.y0 = y0 - 2 * self.h
        self.nx = int(math.ceil((x1 - x0) / self.h)) + 4
        self.ny = int(math.ceil((y1 - y0) / self.h)) + 4
        rxy, roff = _rings(area.polygon)
        inside = K.scanline_fill(rxy, roff, self.x0, self.y0, self.h, self.nx, self.ny)
        if len(area.walls):
            reach = max(wall_avoidance, self.h)
            dwall = K.wall_distance(area.walls, self.x0, self.y0, self.h, self.nx, self.ny, reach)
        else:
            dwall = np.full((self.ny, self.nx), np.inf)
        # cells straddling a thin wall are not walkable (no leaking through walls)
        passable = (inside == 1) & (dwall > 0.5 * self.h * 1.001)
        slow = np.where(passable, 1.0, np.inf)
        if wall_avoidance > 0 and wall_penalty > 0:
            slow = slow * (1.0 + wall_penalty * np.clip(1.0 - dwall / wall_avoidance, 0.0, 1.0))
        self.passable = passable
        self.slowness = np.ascontiguousarray(slow)
        ne = len(area.exit_names)
        self.fields = np.full((max(ne, 1), self.ny, self.nx), np.inf)
        beyond = area.floor_beyond_exits(door_near) if ne else np.zeros(0, dtype=bool)
        for e in range(ne):
            idx, val = K.exit_seeds(passable.astype(np.uint8), area.exit_segments[e], self.x0, self.y0, self.h,
                                    1.5 * self.h)
            if beyond[e]:
                idx, val = self._seeds_in_front(area, e, idx, val)
            if len(idx) == 0:
                raise GeometryError(
                    f"exit {area.exit_names[e]!r} touches no walkable cell at {self.h:.2f} m resolution; "
                    "widen the door or use a finer floor-field cell"
                )
            self.fields[e] = K.dijkstra_field(self.slowness, idx, val, self.h)
        # waypoints: distance to the disc / area (0 inside) or to the line, on the same grid
        nw = len(area.waypoint_names)
        self.waypoint_fields = np.full((nw, self.ny, self.nx), np.inf)
        self.waypoint_seeds = []
        for w in range(nw):
            idx, val = self._waypoint_seeds(area, w)
            self.waypoint_seeds.append(idx)
            self.waypoint_fields[w] = K.dijkstra_field(self.slowness, idx, val, self.h)

    def _seeds_in_front(self, area, e, idx, val):
        """The seed cells of exit ``e``, one with floor beyond it (a stair opening's rim with the floor running on
        round it: :meth:`WalkableArea.floor_beyond_exits`), from which it is walked out of: of the cells within
        1.5 cells of the exit line (``idx``, ``val`` from ``exit_seeds``), those in front of it, on its walkable
        side, with a straight way to it that crosses no wall.

        Seeded, a cell beyond an end of such an exit (on the floor round the rim's corner, FZK-Haus's upper
        storey, or behind the newel post of the railing beside the Duplex's stair) was a pit of the floor field
        in a corner too narrow for anybody to stand in, and the exit could not be walked out of from it: people
        walked in and stood there (the jams at the stairs). Those cells now get their distance from the
        Dijkstra, round the rim to the front of the exit. A door in a wall (no floor beyond it) keeps every
        seed, its field as before.
        """
        import shapely

        if len(idx) == 0:
            return idx, val
        seg = area.exit_segments[e]
        a, b = seg[:2], seg[2:]
        d = b - a
        L = math.hypot(*d)
        j, i = np.divmod(idx, self.nx)
        c = np.column_stack([self.x0 + (i + 0.5) * self.h, self.y0 + (j + 0.5) * self.h])
        # the walkable side: the exit's outward normal points off the floor
        inward = (c - a) @ area.exit_normals[e] <= 1e-9
        # the straight way to the exit: to the nearest point of the exit kept off its ends (where the walls
        # beside the door opening begin), so that a wall running on from an end is crossed, not touched
        m = min(0.25 * L, 0.5 * self.h)
        t = np.clip((c - a) @ d / (L * L), m / L, 1.0 - m / L)
        q = a + t[:, None] * d
        near = area.walls[shapely.intersects(
            shapely.linestrings(area.walls.reshape(-1, 2, 2)),
            shapely.buffer(shapely.linestrings(seg.reshape(2, 2)), 2.0 * self.h))] if len(area.walls) else area.walls
        if len(near):
            walls = shapely.multilinestrings(near.reshape(-1, 2, 2))
            clear = ~shapely.intersects(shapely.linestrings(np.stack([c, q], axis=1)), walls)
        else:
            clear = np.ones(len(idx), dtype=bool)
        t_raw = (c - a) @ d / (L * L)
        keep = inward & clear & (t_raw >= 0.0) & (t_raw <= 1.0)
        return idx[keep], val[keep]

    def _waypoint_seeds(self, area, w):
        import shapely
        from shapely.geometry import LineString

        geom = area.waypoint_geoms[w]
        if area.waypoint_kinds[w] == "line":
            c = np.asarray(LineString(geom).coords)[[0, -1]].ravel()
            idx, val = K.exit_seeds(self.passable.astype(np.uint8), np.ascontiguousarray(c, dtype=np.float64),
                                    self.x0, self.y0, self.h, 1.5 * self.h)
        else:
            bx0, by0, bx1, by1 = geom.bounds
            i0, i1 = max(int((bx0 - self.x0) / self.h), 0), min(int((bx1 - self.x0) / self.h) + 1, self.nx - 1)
            j0, j1 = max(int((by0 - self.y0) / self.h), 0), min(int((by1 - self.y0) / self.h) + 1, self.ny - 1)
            jj, ii = np.mgrid[j0:j1 + 1, i0:i1 + 1]
            cx, cy = self.x0 + (ii + 0.5) * self.h, self.y0 + (jj + 0.5) * self.h
            ok = shapely.contains_xy(geom, cx, cy) & self.passable[jj, ii]
            idx = (jj[ok] * self.nx + ii[ok]).astype(np.intp)
            val = np.zeros(len(idx))
        if len(idx) == 0:
            raise GeometryError(
                f"waypoint {area.waypoint_names[w]!r} covers no walkable cell at {self.h:.2f} m resolution; "
                "make it larger, move it off the walls, or use a finer floor-field cell"
            )
        return idx, val

    def reachable(self, field: np.ndarray, seeds: np.ndarray) -> bool:
        """Whether ``field`` (ny, nx) is finite on any of the ``seeds`` cells (flat indices)."""
        return bool(np.isfinite(field.ravel()[seeds]).any())

    def values(self, x, y) -> np.ndarray:
        """Floor-field values (n_exit, n) at points."""
        x = np.ascontiguousarray(np.atleast_1d(x), dtype=np.float64)
        y = np.ascontiguousarray(np.atleast_1d(y), dtype=np.float64)
        return K.sample_field(self.fields, self.x0, self.y0, self.h, x, y, np.arange(len(x), dtype=np.intp))
