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

__all__ = ["to_cityjson", "from_store"]


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


def _num(v, kind=float):
    try:
        if v is None or v != v:
            return None
        return kind(v)
    except (TypeError, ValueError):
        return None


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
            "attributes": {"height_m": _num(b.height_m), "storeys": _num(b.storeys, int), "gfa_m2": _num(b.gfa_m2),
                           "ground_elev_m": _num(z0), "source": "IFC"},
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


def from_store(store, building_ids=None) -> dict:
    """CityJSON 2.0 of the BIM buildings imported into ``store``.

    LoD1 from the ``buildings`` layer (footprint, ``height_m``,
    ``ground_elev_m``); the LoD2 roof surfaces from the upward faces of the
    roof elements (``bim_elements``: IfcRoof, roof slabs) in each building's
    GLB blob.
    """
    from types import SimpleNamespace

    from bim_import.building import ROOF_CLASSES
    from bim_import.geometry import to_multipolygon
    from bim_import.gltf import read_glb
    from bim_import.importer import ELEMENT_TABLE, SUMMARY_TABLE
    from twin_core.errors import LayerNotFoundError

    if not store.has_table(SUMMARY_TABLE):
        raise LayerNotFoundError(f"{store.uri} holds no imported BIM buildings (no {SUMMARY_TABLE!r} table); "
                                 "import IFC files first: twin bim import STORE FILES...")
    summ = store.read_table(SUMMARY_TABLE)
    ids = summ["building_id"].astype(str).tolist() if building_ids is None else [str(b) for b in building_ids]
    missing = sorted(set(ids) - set(summ["building_id"].astype(str)))
    if missing:
        raise LayerNotFoundError(f"no imported BIM building(s) {missing} in {store.uri}")
    feats = store.read_layer("buildings", where={"building_id": ids})
    origin = {str(r.building_id): (float(r.origin_x), float(r.origin_y)) for r in summ.itertuples()}
    blds = []
    for r in feats.itertuples():
        bid = str(r.building_id)
        roof = None
        el = store.read_table(ELEMENT_TABLE, where={"building_id": bid}, columns=["global_id", "ifc_class",
                                                                                  "predefined_type"])
        roof_ids = set(el.loc[el["ifc_class"].str.startswith(ROOF_CLASSES)
                              | (el["ifc_class"].str.startswith("IfcSlab") & (el["predefined_type"] == "ROOF")),
                              "global_id"])
        key = f"bim/{bid}/building.glb"
        if roof_ids and not store.list_blobs(key).empty:
            ox, oy = origin[bid]
            parts = []
            for name, (v, f) in read_glb(store.get_blob(key)).items():
                if name in roof_ids:
                    w = v.copy()
                    w[:, 0] += ox
                    w[:, 1] += oy
                    parts.append(w[f])
            roof = np.concatenate(parts) if parts else None
        blds.append(SimpleNamespace(building_id=bid, footprint=to_multipolygon(r.geometry), height_m=float(r.height_m),
                                    ground_elev_m=float(r.ground_elev_m), storeys=r.storeys,
                                    gfa_m2=None if r.gfa_m2 != r.gfa_m2 else r.gfa_m2, roof_triangles=roof))
    return to_cityjson(blds, crs=store.crs)
