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

__all__ = ["BoxBuilding", "write_box_building"]


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
    green: tuple[float, float, float, float] | None = None  # (x0, y0, x1, y1) model metres
    name: str = "Box"
    use: str = "residential"
    with_qsets: bool = True
    georeferenced: bool = True

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
        st = api.root.create_entity(f, ifc_class="IfcBuildingStorey", name=f"Level {i + 1}")
        st.Elevation = z
        api.aggregate.assign_object(f, relating_object=building, products=[st])
        m = np.eye(4)
        m[2, 3] = z
        api.geometry.edit_object_placement(f, product=st, matrix=m)
        if spec.with_qsets:
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
        x0, y0, x1, y1 = spec.green
        g = api.root.create_entity(f, ifc_class="IfcGeographicElement", name="Lawn", predefined_type="VEGETATION")
        rep = api.geometry.add_slab_representation(f, context=body, depth=0.1, polyline=_rect(x0, y0, x1, y1))
        api.geometry.assign_representation(f, product=g, representation=rep)
        gm = np.eye(4)
        gm[2, 3] = -0.1
        api.geometry.edit_object_placement(f, product=g, matrix=gm)
        api.spatial.assign_container(f, relating_structure=site, products=[g])
    ps = api.pset.add_pset(f, product=building, name="Pset_BuildingCommon")
    api.pset.edit_pset(f, pset=ps, properties={"NumberOfStoreys": spec.storeys, "OccupancyType": spec.use})
    f.write(os.fspath(path))
    return os.fspath(path)
