"""Author small georeferenced IFC4 buildings with ``ifcopenshell.api``.

Used by the tests (hand-computable heights, setbacks, FAR, coverage) and by
``sample_city`` for its BIM buildings. A building is a rectangular block:
one floor slab per storey, four exterior walls per storey, a flat roof slab,
a door in a 1 m gap of the ground floor's front wall, and optionally a green area
(IfcGeographicElement) beside it. It is placed with an IfcMapConversion in the
given projected CRS (metres).

Examples
--------
>>> from bim_import.samples import BoxBuilding, write_box_building
>>> spec = BoxBuilding(width=20, depth=10, storeys=3, storey_height=3.0,
...                    eastings=500000.0, northings=3390000.0)
>>> spec.height_m, spec.gfa_m2
(9.3, 600.0)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["BoxBuilding", "write_box_building", "PlotBuilding", "plot_buildings", "VARIANTS"]


@dataclass(frozen=True)
class BoxBuilding:
    """A rectangular block building.

    The footprint is the rectangle ``[0, width] x [0, depth]`` in model
    coordinates (outer faces of the walls); the model origin is placed at
    (``eastings``, ``northings``) with the model x axis at ``rotation_deg``
    counter-clockwise from grid east.
    """

    width: float
    depth: float
    storeys: int
    storey_height: float
    eastings: float
    northings: float
    rotation_deg: float = 0.0
    crs: str = "EPSG:4544"
    orthogonal_height: float = 500.0
    wall_thickness: float = 0.25
    slab_thickness: float = 0.2
    roof_thickness: float = 0.3
    green: tuple | None = None  # (x0, y0, x1, y1) or a ring ((x, y), ...) in model metres
    name: str = "Box"
    use: str = "residential"
    with_qsets: bool = True
    georeferenced: bool = True
    storey_entities: bool = True  # False: no IfcBuildingStorey, the elements sit in the IfcBuilding itself
    declare_storeys: bool = True  # write Pset_BuildingCommon.NumberOfStoreys

    @property
    def height_m(self) -> float:
        """Top of the roof slab above the 0.00 level."""
        return float(self.storeys * self.storey_height + self.roof_thickness)

    @property
    def gfa_m2(self) -> float:
        return float(self.width * self.depth * self.storeys)

    @property
    def footprint_m2(self) -> float:
        return float(self.width * self.depth)


def _rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def write_box_building(spec: BoxBuilding, path: str | os.PathLike) -> str:
    """Write ``spec`` as an IFC4 file at ``path`` (metres) and return the path."""
    import importlib
    from types import SimpleNamespace

    api = SimpleNamespace(**{n: importlib.import_module(f"ifcopenshell.api.{n}") for n in (
        "project", "root", "unit", "context", "georeference", "aggregate", "geometry", "pset", "spatial")})

    f = api.project.create_file(version="IFC4")
    project = api.root.create_entity(f, ifc_class="IfcProject", name=spec.name)
    lu = api.unit.add_si_unit(f, unit_type="LENGTHUNIT")
    au = api.unit.add_si_unit(f, unit_type="AREAUNIT")
    vu = api.unit.add_si_unit(f, unit_type="VOLUMEUNIT")
    api.unit.assign_unit(f, units=[lu, au, vu])
    model = api.context.add_context(f, context_type="Model")
    body = api.context.add_context(f, context_type="Model", context_identifier="Body", target_view="MODEL_VIEW",
                                   parent=model)
    rot = math.radians(spec.rotation_deg)
    if spec.georeferenced:
        api.georeference.add_georeferencing(f, ifc_class="IfcMapConversion", name=spec.crs)
        api.georeference.edit_georeferencing(
            f,
            projected_crs={"Name": spec.crs},
            coordinate_operation={"Eastings": spec.eastings, "Northings": spec.northings,
                                  "OrthogonalHeight": spec.orthogonal_height,
                                  "XAxisAbscissa": math.cos(rot), "XAxisOrdinate": math.sin(rot), "Scale": 1.0},
        )
    site = api.root.create_entity(f, ifc_class="IfcSite", name="Site")
    building = api.root.create_entity(f, ifc_class="IfcBuilding", name=spec.name)
    api.aggregate.assign_object(f, relating_object=project, products=[site])
    api.aggregate.assign_object(f, relating_object=site, products=[building])
    for p in (site, building):
        api.geometry.edit_object_placement(f, product=p)

    W, D, t = spec.width, spec.depth, spec.wall_thickness
    wall_h = spec.storey_height - spec.slab_thickness
    for i in range(spec.storeys):
        z = i * spec.storey_height
        m = np.eye(4)
        m[2, 3] = z
        st = building
        if spec.storey_entities:
            st = api.root.create_entity(f, ifc_class="IfcBuildingStorey", name=f"Level {i + 1}")
            st.Elevation = z
            api.aggregate.assign_object(f, relating_object=building, products=[st])
            api.geometry.edit_object_placement(f, product=st, matrix=m)
        if spec.with_qsets and spec.storey_entities:
            q = api.pset.add_qto(f, product=st, name="Qto_BuildingStoreyBaseQuantities")
            api.pset.edit_qto(f, qto=q, properties={"GrossFloorArea": W * D, "GrossHeight": spec.storey_height})
        # floor slab: top at z + slab_thickness (finished floor level z)
        slab = api.root.create_entity(f, ifc_class="IfcSlab", name=f"Floor {i + 1}", predefined_type="FLOOR")
        rep = api.geometry.add_slab_representation(f, context=body, depth=spec.slab_thickness,
                                                  polyline=_rect(0, 0, W, D))
        api.geometry.assign_representation(f, product=slab, representation=rep)
        api.geometry.edit_object_placement(f, product=slab, matrix=m.copy())
        api.spatial.assign_container(f, relating_structure=st, products=[slab])
        if spec.with_qsets:
            q = api.pset.add_qto(f, product=slab, name="Qto_SlabBaseQuantities")
            api.pset.edit_qto(f, qto=q, properties={"GrossArea": W * D})
        # four exterior walls on the slab
        walls = [((0, 0), 0.0, W, ""), ((W, 0), 90.0, D, ""), ((W, D), 180.0, W, ""), ((0, D), 270.0, D, "")]
        if i == 0:  # the entrance: a 1 m gap in the front wall, filled by the door
            walls[0] = ((0, 0), 0.0, W / 2 - 0.5, "")
            walls.append(((W / 2 + 0.5, 0), 0.0, W / 2 - 0.5, "b"))
        for k, ((x, y), ang, length, suffix) in enumerate(walls):
            k = 0 if suffix else k
            wall = api.root.create_entity(f, ifc_class="IfcWall", name=f"Wall {i + 1}.{k + 1}{suffix}")
            rep = api.geometry.add_wall_representation(f, context=body, length=length, height=wall_h, thickness=t)
            api.geometry.assign_representation(f, product=wall, representation=rep)
            a = math.radians(ang)
            wm = np.eye(4)
            wm[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
            wm[:3, 3] = [x, y, z + spec.slab_thickness]
            api.geometry.edit_object_placement(f, product=wall, matrix=wm)
            api.spatial.assign_container(f, relating_structure=st, products=[wall])
            ps = api.pset.add_pset(f, product=wall, name="Pset_WallCommon")
            api.pset.edit_pset(f, pset=ps, properties={"IsExternal": True, "LoadBearing": True})
        if i == 0:
            door = api.root.create_entity(f, ifc_class="IfcDoor", name="Entrance")
            rep = api.geometry.add_wall_representation(f, context=body, length=1.0, height=2.1, thickness=t)
            api.geometry.assign_representation(f, product=door, representation=rep)
            dm = np.eye(4)
            dm[:3, 3] = [W / 2 - 0.5, 0.0, spec.slab_thickness]
            api.geometry.edit_object_placement(f, product=door, matrix=dm)
            api.spatial.assign_container(f, relating_structure=st, products=[door])
            ps = api.pset.add_pset(f, product=door, name="Pset_DoorCommon")
            api.pset.edit_pset(f, pset=ps, properties={"IsExternal": True, "FireExit": True})
    # flat roof on top of the last storey's walls
    top = spec.storeys * spec.storey_height
    roof = api.root.create_entity(f, ifc_class="IfcSlab", name="Roof", predefined_type="ROOF")
    rep = api.geometry.add_slab_representation(f, context=body, depth=spec.roof_thickness, polyline=_rect(0, 0, W, D))
    api.geometry.assign_representation(f, product=roof, representation=rep)
    rm = np.eye(4)
    rm[2, 3] = top
    api.geometry.edit_object_placement(f, product=roof, matrix=rm)
    api.spatial.assign_container(f, relating_structure=st, products=[roof])
    if spec.green is not None:
        ring = _rect(*spec.green) if len(spec.green) == 4 and np.isscalar(spec.green[0]) else \
            [tuple(map(float, p)) for p in spec.green]
        g = api.root.create_entity(f, ifc_class="IfcGeographicElement", name="Lawn", predefined_type="VEGETATION")
        rep = api.geometry.add_slab_representation(f, context=body, depth=0.1, polyline=ring)
        api.geometry.assign_representation(f, product=g, representation=rep)
        gm = np.eye(4)
        gm[2, 3] = -0.1
        api.geometry.edit_object_placement(f, product=g, matrix=gm)
        api.spatial.assign_container(f, relating_structure=site, products=[g])
    ps = api.pset.add_pset(f, product=building, name="Pset_BuildingCommon")
    api.pset.edit_pset(f, pset=ps, properties={"OccupancyType": spec.use, **(
        {"NumberOfStoreys": spec.storeys} if spec.declare_storeys else {})})
    f.write(os.fspath(path))
    return os.fspath(path)


#: What each generated plot building does: comply, or break exactly one (or two) rules.
VARIANTS = {
    "compliant": frozenset(),
    "too_tall": frozenset({"max_height_m"}),
    "setback": frozenset({"min_setback_m"}),
    "dense": frozenset({"max_far"}),
    "coverage": frozenset({"max_site_coverage"}),
    "green": frozenset({"min_green_ratio"}),
}


@dataclass(frozen=True)
class PlotBuilding:
    """A generated IFC building on a parcel: its file, spec and the rules it is meant to break."""

    path: str
    parcel_id: str
    variant: str
    spec: BoxBuilding
    breaks: frozenset


def _box_in(poly, angle_deg: float, aspect: float):
    """The largest rectangle (width/depth = aspect) around the pole of ``poly``, its x axis at angle_deg."""
    from shapely import affinity

    c = poly.representative_point()
    rot = affinity.rotate(poly, -angle_deg, origin=c)
    x0, y0, x1, y1 = rot.bounds
    lo, hi = 0.0, max(x1 - x0, y1 - y0)
    for _ in range(40):
        mid = (lo + hi) / 2
        w, d = mid, mid / aspect
        from shapely.geometry import box

        if rot.contains(box(c.x - w / 2, c.y - d / 2, c.x + w / 2, c.y + d / 2)):
            lo = mid
        else:
            hi = mid
    return c, lo, lo / aspect


def _frame(c, angle_deg, w, d):
    """Model origin (lower-left corner) of a w x d rectangle centred at c, x axis at angle_deg."""
    a = math.radians(angle_deg)
    ox = c.x - (w / 2) * math.cos(a) + (d / 2) * math.sin(a)
    oy = c.y - (w / 2) * math.sin(a) - (d / 2) * math.cos(a)
    return ox, oy


def _footprint(ox, oy, angle_deg, w, d):
    from shapely.geometry import Polygon

    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    return Polygon([(ox + ca * x - sa * y, oy + sa * x + ca * y) for x, y in _rect(0, 0, w, d)])


def plot_buildings(parcels, out_dir, *, variants=tuple(VARIANTS), crs: str = "EPSG:4544", storey_height: float = 3.0,
                   ground_m: float = 500.0, name_prefix: str = "bim") -> list[PlotBuilding]:
    """Author one IFC4 block building per variant on suitable parcels of ``parcels``.

    Parameters
    ----------
    parcels : GeoDataFrame
        ``cim`` class ``parcels`` (with ``max_height_m``, ``max_far``, ``max_coverage``,
        ``min_setback_m``, ``min_green_ratio``) in ``crs``.
    out_dir : path
        Where the ``.ifc`` files go.
    variants : names from :data:`VARIANTS`
        ``compliant`` passes every rule of its parcel; each other variant breaks
        exactly the rules in ``VARIANTS[variant]`` (by a clear margin).

    Returns
    -------
    list of PlotBuilding
        Parcels that cannot host a variant (too small, limits that contradict
        it) are skipped; each variant uses a different parcel.
    """
    os.makedirs(out_dir, exist_ok=True)
    cand = parcels.copy()
    cand["area"] = cand.geometry.area
    cand = cand.sort_values("area", ascending=False, kind="stable")
    used: set[str] = set()
    out: list[PlotBuilding] = []
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")
        for r in cand.itertuples():
            pid = str(r.parcel_id)
            if pid in used:
                continue
            spec = _plot_spec(r, variant, crs, storey_height, ground_m, name=f"{name_prefix}-{variant}-{pid}")
            if spec is None:
                continue
            used.add(pid)
            path = write_box_building(spec, os.path.join(os.fspath(out_dir), f"{name_prefix}_{variant}_{pid}.ifc"))
            out.append(PlotBuilding(path, pid, variant, spec, VARIANTS[variant]))
            break
    return out


def _plot_spec(r, variant, crs, h, ground, name):
    """A BoxBuilding on parcel row ``r`` for ``variant``, or None when the parcel cannot host it."""
    from shapely.geometry import Polygon

    parcel = r.geometry
    if parcel.geom_type == "MultiPolygon":
        if len(parcel.geoms) != 1:
            return None
        parcel = parcel.geoms[0]
    if parcel.interiors:
        return None
    A = parcel.area
    hmax, far, cov, setb, green = (float(r.max_height_m), float(r.max_far), float(r.max_coverage),
                                   float(r.min_setback_m), float(r.min_green_ratio))
    if not all(map(math.isfinite, (hmax, far, cov, setb, green))) or A < 400:
        return None
    mrr = parcel.minimum_rotated_rectangle
    xy = list(mrr.exterior.coords)
    edges = [(xy[i], xy[i + 1]) for i in range(4)]
    (ax, ay), (bx, by) = max(edges, key=lambda e: math.dist(*e))
    angle = math.degrees(math.atan2(by - ay, bx - ax))
    lawn = parcel.buffer(-0.5).simplify(0.2)
    lawn = max(getattr(lawn, "geoms", [lawn]), key=lambda g: g.area)
    lawn_area = lawn.area
    inner = parcel.buffer(-(setb + 1.0))
    inner = max(getattr(inner, "geoms", [inner]), key=lambda g: g.area) if not inner.is_empty else inner
    if inner.is_empty or inner.area < 50:
        return None
    c, wmax, dmax = _box_in(inner, angle, 2.0)
    if wmax < 8:
        return None
    # the footprint area that keeps coverage and green ratio with margin
    fp_ok = min(0.8 * cov * A, lawn_area - (green + 0.05) * A - 0.5, wmax * dmax)
    n_h = int((hmax - 0.3 - 0.5) // h)  # storeys under the height limit with >= 0.5 m to spare
    if variant == "coverage":
        fp = 1.2 * cov * A
        if fp > wmax * dmax or (lawn_area - fp) / A < green + 0.05 or far * A < 1.1 * fp:
            return None
        n = 1
    elif variant == "dense":
        n = n_h
        fp = min(fp_ok, 0.95 * cov * A)
        if n < 1 or fp < 60 or n * fp < 1.15 * far * A:
            return None
    else:
        if fp_ok < 60:
            return None
        n = max(1, min(n_h, int(0.85 * far * A // fp_ok)))
        fp = fp_ok
        if n * fp > 0.9 * far * A:
            fp = 0.9 * far * A / n
        if variant == "too_tall":
            n = int(hmax // h) + 1  # 3n + 0.3 > hmax by >= 0.3 m
            fp = min(fp, 0.85 * far * A / n)
        elif n_h < 1:
            return None
        if fp < 60:
            return None
    w = math.sqrt(fp * 2.0)
    d = fp / w
    if w > wmax + 1e-9:
        return None
    ox, oy = _frame(c, angle, w, d)
    if variant == "setback":
        # slide the block towards the nearest parcel edge until it stands half the setback away
        foot = _footprint(ox, oy, angle, w, d)
        near = parcel.exterior.interpolate(parcel.exterior.project(foot.centroid))
        vx, vy = near.x - foot.centroid.x, near.y - foot.centroid.y
        L = math.hypot(vx, vy)
        if L == 0:
            return None
        for _ in range(3):  # distance falls about one for one with the shift; correct twice
            gap = parcel.exterior.distance(_footprint(ox, oy, angle, w, d))
            shift = gap - setb / 2
            ox, oy = ox + vx / L * shift, oy + vy / L * shift
        moved = _footprint(ox, oy, angle, w, d)
        if not parcel.contains(moved) or not (0.25 * setb <= parcel.exterior.distance(moved) <= 0.75 * setb):
            return None
    if variant == "green":  # only a 1 m lawn strip round the block
        strip = 2 * (w + d) + 4
        if strip > 0.5 * green * A:
            return None
        return BoxBuilding(round(w, 3), round(d, 3), int(n), h, ox, oy, rotation_deg=angle, crs=crs,
                           orthogonal_height=ground, green=(-1.0, -1.0, round(w, 3) + 1.0, round(d, 3) + 1.0), name=name)
    a = math.radians(-angle)
    ring = [((x - ox) * math.cos(a) - (y - oy) * math.sin(a), (x - ox) * math.sin(a) + (y - oy) * math.cos(a))
            for x, y in list(lawn.exterior.coords)[:-1]]
    if not Polygon(ring).is_valid:
        return None
    return BoxBuilding(round(w, 3), round(d, 3), int(n), h, ox, oy, rotation_deg=angle, crs=crs,
                       orthogonal_height=ground, green=tuple(ring), name=name)
