"""CityJSON 2.0 export of imported buildings.

Each building becomes a ``Building`` city object with two geometries:

* LoD1: a ``MultiSolid``, the footprint extruded from the ground elevation to
  the roof top;
* LoD2-style: a ``MultiSurface`` with semantic surfaces: the footprint as
  ``GroundSurface``, its extruded sides as ``WallSurface``, and as
  ``RoofSurface`` the upward faces of the model's roof elements (IfcRoof, roof
  slabs) where the model has them, else the flat LoD1 top.

Coordinates are in the twin CRS, stored as integers with a millimetre
``transform``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_cityjson"]


class _Verts:
    def __init__(self):
        self.index: dict[tuple, int] = {}
        self.coords: list[tuple] = []

    def add(self, x, y, z) -> int:
        k = (round(float(x), 3), round(float(y), 3), round(float(z), 3))
        i = self.index.get(k)
        if i is None:
            i = self.index[k] = len(self.coords)
            self.coords.append(k)
        return i


def _ring(vs, coords, z, reverse=False):
    pts = list(coords)[:-1]
    if reverse:
        pts = pts[::-1]
    out = []
    for x, y in (p[:2] for p in pts):
        i = vs.add(x, y, z)
        if not out or out[-1] != i:
            out.append(i)
    return out


def _oriented(poly, ccw=True):
    from shapely.geometry.polygon import orient

    return orient(poly, 1.0 if ccw else -1.0)


def to_cityjson(buildings, *, crs: str | None = None) -> dict:
    """A CityJSON 2.0 document (dict) for :class:`~bim_import.building.Building` objects.

    Examples
    --------
    >>> doc = to_cityjson([])
    >>> doc["type"], doc["version"]
    ('CityJSON', '2.0')
    """
    vs = _Verts()
    objects = {}
    crs = crs or (buildings[0].georef.crs if buildings else "EPSG:4544")
    for b in buildings:
        if b.footprint is None or b.footprint.is_empty:
            continue
        z0 = b.ground_elev_m
        z1 = z0 + b.height_m
        solids, surfaces, values = [], [], []
        for poly in b.footprint.geoms:
            poly = _oriented(poly, ccw=True)
            ground = [_ring(vs, poly.exterior.coords, z0, reverse=True)] + \
                     [_ring(vs, r.coords, z0, reverse=True) for r in poly.interiors]
            top = [_ring(vs, poly.exterior.coords, z1)] + [_ring(vs, r.coords, z1) for r in poly.interiors]
            walls = []
            for ring in [poly.exterior, *poly.interiors]:
                c = list(ring.coords)
                for (xa, ya), (xb, yb) in zip((p[:2] for p in c[:-1]), (p[:2] for p in c[1:])):
                    walls.append([[vs.add(xa, ya, z0), vs.add(xb, yb, z0), vs.add(xb, yb, z1), vs.add(xa, ya, z1)]])
            solids.append([[ground, top, *walls]])
            surfaces.append(ground)
            values.append(0)
            for w in walls:
                surfaces.append(w)
                values.append(1)
            if b.roof_triangles is None or not len(b.roof_triangles):
                surfaces.append(top)
                values.append(2)
        if b.roof_triangles is not None and len(b.roof_triangles):
            t = b.roof_triangles
            n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
            ln = np.linalg.norm(n, axis=1)
            up = (ln > 0) & (n[:, 2] > 0.1 * np.maximum(ln, 1e-12))
            for tri in t[up]:
                surfaces.append([[vs.add(*tri[0]), vs.add(*tri[1]), vs.add(*tri[2])]])
                values.append(2)
        objects[b.building_id] = {
            "type": "Building",
            "attributes": {"height_m": b.height_m, "storeys": b.storeys, "gfa_m2": b.gfa_m2,
                           "ground_elev_m": z0, "source": "IFC"},
            "geometry": [
                {"type": "MultiSolid", "lod": "1", "boundaries": solids},
                {"type": "MultiSurface", "lod": "2", "boundaries": surfaces,
                 "semantics": {"surfaces": [{"type": "GroundSurface"}, {"type": "WallSurface"},
                                            {"type": "RoofSurface"}], "values": values}},
            ],
        }
    coords = np.asarray(vs.coords, dtype=np.float64).reshape(-1, 3)
    translate = coords.min(axis=0) if len(coords) else np.zeros(3)
    scale = np.array([0.001, 0.001, 0.001])
    ints = np.rint((coords - translate) / scale).astype(np.int64) if len(coords) else np.empty((0, 3), np.int64)
    epsg = crs.split(":")[-1] if crs and crs.upper().startswith("EPSG:") else None
    return {
        "type": "CityJSON",
        "version": "2.0",
        "transform": {"scale": scale.tolist(), "translate": translate.tolist()},
        "metadata": {"referenceSystem": f"https://www.opengis.net/def/crs/EPSG/0/{epsg}" if epsg else crs},
        "CityObjects": objects,
        "vertices": ints.tolist(),
    }
