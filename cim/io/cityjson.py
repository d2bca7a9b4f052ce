"""Export buildings to CityJSON 2.0 (LoD1 block models) and check CityJSON structure.

Each building (a row of the ``buildings`` feature class) becomes a
``Building`` city object whose LoD1 geometry is its footprint extruded from
``ground_elev_m`` (0 where unknown) to ``ground_elev_m + height_m``: a
``Solid`` (one shell: the bottom face, one wall per footprint edge, holes
included, and the top face, all oriented outwards), or a ``MultiSolid`` when
the footprint has several parts. Vertices are shared and stored as integers
with a ``transform`` (millimetres by default); the CRS goes into
``metadata.referenceSystem`` as an OGC URL
(``https://www.opengis.net/def/crs/EPSG/0/4544``).

:func:`validate_cityjson` is a rule-based check of the parts of the CityJSON
2.0 specification that this writer uses (and that other writers get wrong
most often); :func:`solid_volumes` measures the solids of a document, so a
round trip can be checked.

Examples
--------
>>> import geopandas as gpd, shapely
>>> b = gpd.GeoDataFrame({"building_id": ["b1"], "height_m": [10.0], "ground_elev_m": [500.0]},
...                      geometry=[shapely.box(0, 0, 20, 10)], crs="EPSG:4544")
>>> doc = to_cityjson(b, "EPSG:4544")
>>> doc["type"], doc["version"], doc["metadata"]["referenceSystem"]
('CityJSON', '2.0', 'https://www.opengis.net/def/crs/EPSG/0/4544')
>>> validate_cityjson(doc)
[]
>>> round(solid_volumes(doc)["b1"], 6)
2000.0
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import numpy as np

from twin_core.errors import CRSError, FieldError, GeometryError, SchemaError

__all__ = ["to_cityjson", "validate_cityjson", "solid_volumes", "CITYJSON_VERSION"]

CITYJSON_VERSION = "2.0"
_OGC = "https://www.opengis.net/def/crs/EPSG/0/{}"
_OGC_RE = re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/0/\d+\Z")
_SOLID_TYPES = {"Solid": 4, "MultiSolid": 5, "CompositeSolid": 5}
_SURFACE_TYPES = {"MultiSurface": 3, "CompositeSurface": 3}
_OBJECT_TYPES = {
    "Bridge", "BridgePart", "BridgeInstallation", "BridgeConstructiveElement", "BridgeRoom", "BridgeFurniture",
    "Building", "BuildingPart", "BuildingInstallation", "BuildingConstructiveElement", "BuildingFurniture",
    "BuildingStorey", "BuildingRoom", "BuildingUnit", "CityFurniture", "CityObjectGroup", "LandUse",
    "OtherConstruction", "PlantCover", "SolitaryVegetationObject", "TINRelief", "WaterBody", "Road", "Railway",
    "Waterway", "TransportSquare", "Tunnel", "TunnelPart", "TunnelInstallation", "TunnelConstructiveElement",
    "TunnelHollowSpace", "TunnelFurniture", "GenericCityObject",
}


def _epsg(crs: Any) -> int:
    from cim.crs import resolve_crs

    c = resolve_crs(crs)
    code = c.to_epsg()
    if code is None:
        raise CRSError(
            f"CityJSON names its CRS by an EPSG code, and {c.to_string()!r} has none; "
            "reproject the buildings to an EPSG CRS (e.g. EPSG:4544) first"
        )
    if not c.is_projected:
        raise CRSError(f"CityJSON LoD1 solids need a projected CRS in metres, not {c.to_string()}; "
                       "reproject to e.g. EPSG:4544")
    return code


def _json_value(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    try:
        import pandas as pd

        if v is pd.NaT or (not isinstance(v, str) and pd.isna(v)):
            return None
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
    except (TypeError, ValueError):
        pass
    return v if isinstance(v, (str, int)) else str(v)


class _Vertices:
    """Shared integer vertices."""

    def __init__(self, translate: np.ndarray, scale: float):
        self.translate = translate
        self.scale = scale
        self.index: dict[tuple[int, int, int], int] = {}
        self.list: list[list[int]] = []

    def keys(self, xy: np.ndarray, z: float) -> list[tuple[int, int, int]]:
        """The ring's integer vertices, without consecutive repeats nor the closing one (nothing is stored)."""
        q = np.round((np.column_stack([xy, np.full(len(xy), z)]) - self.translate) / self.scale).astype(np.int64)
        out: list[tuple[int, int, int]] = []
        for key in map(tuple, q.tolist()):
            if not out or out[-1] != key:
                out.append(key)
        if len(out) > 1 and out[0] == out[-1]:
            out.pop()
        return out

    def add(self, keys: list[tuple[int, int, int]]) -> list[int]:
        """Store the vertices (shared with earlier rings) and return their indices."""
        out = []
        for key in keys:
            i = self.index.get(key)
            if i is None:
                i = self.index[key] = len(self.list)
                self.list.append(list(key))
            out.append(i)
        return out


def _shell(poly, z0: float, z1: float, verts: _Vertices, bid: str = "?") -> list:
    """One closed, outward-oriented shell of an extruded polygon."""
    import shapely

    poly = shapely.geometry.polygon.orient(poly, 1.0)  # exterior counter-clockwise, holes clockwise
    rings = [np.asarray(poly.exterior.coords)[:-1, :2]] + [np.asarray(r.coords)[:-1, :2] for r in poly.interiors]
    bottom_rings, top_rings, walls = [], [], []
    for k, xy in enumerate(rings):
        kb, kt = verts.keys(xy, z0), verts.keys(xy, z1)
        if len(set(kb)) < 3 or len(kb) != len(kt):
            if k == 0:
                raise GeometryError(f"the footprint of building {bid!r} collapses to fewer than 3 distinct vertices "
                                    f"at the export precision ({verts.scale} m); drop or repair it")
            continue  # a hole smaller than the precision: left out, and none of its vertices kept
        b, t = verts.add(kb), verts.add(kt)
        bottom_rings.append(b[::-1])  # seen from below: clockwise from above
        top_rings.append(t)
        n = len(b)
        for i in range(n):
            j = (i + 1) % n
            walls.append([[b[i], b[j], t[j], t[i]]])
    return [bottom_rings] + walls + [top_rings]


def to_cityjson(buildings, crs: Any = None, path: str | os.PathLike | None = None, lod: int | str = 1, *,
                scale: float = 0.001, title: str | None = None) -> dict:
    """Buildings as a CityJSON 2.0 document with LoD1 solids.

    Parameters
    ----------
    buildings : GeoDataFrame
        Polygon/MultiPolygon footprints with ``height_m`` (required, > 0) and
        optionally ``ground_elev_m`` (NaN or missing: 0), ``building_id`` (the
        city object id; else the row index) and any other attributes (written
        as CityJSON attributes).
    crs : CRS-like, optional
        The CRS to write in (projected, with an EPSG code). Default: the
        frame's CRS; a frame in another CRS is reprojected.
    path : path, optional
        Also write the document there (UTF-8 JSON).
    lod : 1
        Only LoD1 (block models) is written.
    scale : float
        Coordinate resolution of the integer vertices (m); default 1 mm.

    Returns
    -------
    dict
        The CityJSON document.

    Raises
    ------
    CRSError, FieldError, GeometryError, SchemaError
    """
    import shapely

    if str(lod) not in ("1", "1.0"):
        raise SchemaError(f"to_cityjson writes LoD1 block models only, not lod={lod!r}; pass lod=1")
    if not (isinstance(scale, (int, float)) and 0 < scale <= 1):
        raise SchemaError(f"scale must be a resolution in metres in (0, 1], not {scale!r}")
    if crs is None:
        if buildings.crs is None:
            raise CRSError("the buildings have no CRS and none was given: pass crs='EPSG:4544' (the twin CRS)")
        crs = buildings.crs
    code = _epsg(crs)
    if buildings.crs is not None and buildings.crs.to_epsg() != code:
        buildings = buildings.to_crs(epsg=code)
    if "height_m" not in buildings.columns:
        raise FieldError(f"CityJSON LoD1 needs 'height_m'; the buildings have {list(buildings.columns)}")
    geoms = buildings.geometry.to_numpy()
    types = shapely.get_type_id(geoms)
    bad = ~np.isin(types, [3, 6]) | shapely.is_empty(geoms)
    ids = (buildings["building_id"].astype(str).to_numpy() if "building_id" in buildings.columns
           else np.array([str(i) for i in buildings.index]))
    if bad.any():
        raise GeometryError(f"buildings {ids[bad][:5].tolist()} have no polygon footprint; CityJSON LoD1 extrudes "
                            "polygons: drop them or fix their geometry")
    height = buildings["height_m"].to_numpy(dtype="float64")
    if not np.all(np.isfinite(height) & (height > 0)):
        which = ids[~(np.isfinite(height) & (height > 0))][:5].tolist()
        raise GeometryError(f"buildings {which} have no positive height_m; fill it (m above ground) or drop them")
    if len(set(ids)) != len(ids):
        raise SchemaError("building ids are not unique; CityJSON needs one id per city object")
    ground = (buildings["ground_elev_m"].to_numpy(dtype="float64") if "ground_elev_m" in buildings.columns
              else np.zeros(len(buildings)))
    ground = np.where(np.isfinite(ground), ground, 0.0)

    if len(buildings):
        x0, y0, x1, y1 = shapely.total_bounds(geoms)
        zmin, zmax = float(ground.min()), float((ground + height).max())
    else:
        x0 = y0 = x1 = y1 = zmin = zmax = 0.0
    translate = np.array([math.floor(x0), math.floor(y0), math.floor(zmin)], dtype="float64")
    verts = _Vertices(translate, scale)
    attr_cols = [c for c in buildings.columns if c not in (buildings.geometry.name, "building_id")]
    attrs = buildings[attr_cols].to_dict("records") if attr_cols else [{} for _ in range(len(buildings))]
    objects: dict[str, Any] = {}
    for k, (g, bid) in enumerate(zip(geoms, ids)):
        z0, z1 = float(ground[k]), float(ground[k] + height[k])
        parts = list(shapely.get_parts(g))
        shells = [_shell(p, z0, z1, verts, bid) for p in parts]
        if len(shells) == 1:
            geom = {"type": "Solid", "lod": "1", "boundaries": [shells[0]]}
        else:
            geom = {"type": "MultiSolid", "lod": "1", "boundaries": [[s] for s in shells]}
        objects[bid] = {
            "type": "Building",
            "attributes": {key: _json_value(v) for key, v in attrs[k].items()},
            "geometry": [geom],
        }
    doc = {
        "type": "CityJSON",
        "version": CITYJSON_VERSION,
        "transform": {"scale": [scale, scale, scale], "translate": translate.tolist()},
        "metadata": {
            "referenceSystem": _OGC.format(code),
            "geographicalExtent": [float(x0), float(y0), zmin, float(x1), float(y1), zmax],
            **({"title": title} if title else {}),
        },
        "CityObjects": objects,
        "vertices": verts.list,
    }
    if path is not None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False)
    return doc


# ------------------------------------------------------------------------------------------- checks

def _depth_ok(b, depth: int) -> bool:
    """``b`` is a list nested ``depth`` levels deep whose leaves are ints."""
    if depth == 0:
        return isinstance(b, int) and not isinstance(b, bool)
    return isinstance(b, list) and all(_depth_ok(x, depth - 1) for x in b)


def _rings(b, depth: int):
    """Every ring (list of vertex indices) of a boundary of the given depth."""
    if depth == 1:
        yield b
        return
    for x in b:
        yield from _rings(x, depth - 1)


def validate_cityjson(doc: Any) -> list[str]:
    """Rule-based structural check of a CityJSON 2.0 document; returns the problems (empty: valid).

    Checked: ``type``/``version``; ``transform`` (3 positive scales, 3
    translations); ``vertices`` are integer triplets, each one used;
    ``metadata.referenceSystem`` is an OGC CRS URL and ``geographicalExtent``
    has 6 numbers; each city object has a known ``type``; each geometry has a
    known ``type``, a string ``lod`` and ``boundaries`` nested as its type
    requires (Solid 4 levels, MultiSolid/CompositeSolid 5, MultiSurface 3);
    vertex indices are in range; rings have >= 3 distinct vertices and are
    not closed (first != last); ``parents``/``children`` refer to existing
    objects.
    """
    errs: list[str] = []
    if not isinstance(doc, dict):
        return ["the document is not a JSON object"]
    if doc.get("type") != "CityJSON":
        errs.append(f"type must be 'CityJSON', not {doc.get('type')!r}")
    if doc.get("version") != CITYJSON_VERSION:
        errs.append(f"version must be '{CITYJSON_VERSION}', not {doc.get('version')!r}")
    tr = doc.get("transform")
    if not isinstance(tr, dict):
        errs.append("transform is missing (CityJSON 2.0 requires it)")
    else:
        sc, tl = tr.get("scale"), tr.get("translate")
        if not (isinstance(sc, list) and len(sc) == 3 and all(isinstance(v, (int, float)) and v > 0 for v in sc)):
            errs.append(f"transform.scale must be 3 positive numbers, not {sc!r}")
        if not (isinstance(tl, list) and len(tl) == 3 and all(isinstance(v, (int, float)) for v in tl)):
            errs.append(f"transform.translate must be 3 numbers, not {tl!r}")
    verts = doc.get("vertices")
    if not isinstance(verts, list):
        errs.append("vertices must be a list")
        verts = []
    nbad = sum(1 for v in verts if not (isinstance(v, list) and len(v) == 3 and all(
        isinstance(c, int) and not isinstance(c, bool) for c in v)))
    if nbad:
        errs.append(f"{nbad} vertices are not integer [x, y, z] triplets")
    meta = doc.get("metadata", {})
    if not isinstance(meta, dict):
        errs.append("metadata must be an object")
        meta = {}
    rs = meta.get("referenceSystem")
    if rs is not None and not (isinstance(rs, str) and _OGC_RE.match(rs)):
        errs.append(f"metadata.referenceSystem must be an OGC URL like {_OGC.format(4544)}, not {rs!r}")
    ge = meta.get("geographicalExtent")
    if ge is not None and not (isinstance(ge, list) and len(ge) == 6):
        errs.append("metadata.geographicalExtent must have 6 numbers")
    objs = doc.get("CityObjects")
    if not isinstance(objs, dict):
        errs.append("CityObjects must be an object")
        objs = {}
    used = np.zeros(len(verts), dtype=bool)
    n = len(verts)
    for oid, obj in objs.items():
        if not isinstance(obj, dict):
            errs.append(f"{oid}: not an object")
            continue
        t = obj.get("type")
        if t not in _OBJECT_TYPES and not (isinstance(t, str) and t.startswith("+")):
            errs.append(f"{oid}: unknown city object type {t!r}")
        for rel in ("parents", "children"):
            for other in obj.get(rel, []) or []:
                if other not in objs:
                    errs.append(f"{oid}: {rel} names {other!r}, which is not a city object")
        for gi, g in enumerate(obj.get("geometry", []) or []):
            gt = g.get("type") if isinstance(g, dict) else None
            depth = _SOLID_TYPES.get(gt) or _SURFACE_TYPES.get(gt)
            if depth is None:
                errs.append(f"{oid} geometry {gi}: unsupported type {gt!r}")
                continue
            if not isinstance(g.get("lod"), str):
                errs.append(f"{oid} geometry {gi}: lod must be a string such as '1', not {g.get('lod')!r}")
            b = g.get("boundaries")
            if not _depth_ok(b, depth):
                errs.append(f"{oid} geometry {gi}: boundaries of a {gt} must be nested {depth} levels of lists of "
                            "vertex indices")
                continue
            for ring in _rings(b, depth):
                if any(i < 0 or i >= n for i in ring):
                    errs.append(f"{oid} geometry {gi}: vertex index out of range 0..{n - 1}")
                    break
                used[ring] = True
                if len(set(ring)) < 3:
                    errs.append(f"{oid} geometry {gi}: a ring has fewer than 3 distinct vertices")
                    break
                if ring[0] == ring[-1]:
                    errs.append(f"{oid} geometry {gi}: a ring repeats its first vertex at the end (CityJSON rings "
                                "are implicitly closed)")
                    break
    if n and not used.all():
        errs.append(f"{int((~used).sum())} vertices are not used by any geometry")
    return errs


def _decode(doc: dict) -> np.ndarray:
    v = np.asarray(doc["vertices"], dtype="float64").reshape(-1, 3)
    tr = doc.get("transform")
    if tr:
        v = v * np.asarray(tr["scale"], dtype="float64") + np.asarray(tr["translate"], dtype="float64")
    return v


def _shell_volume(shell, v: np.ndarray) -> float:
    """Signed volume of a closed shell (divergence theorem over its faces; positive when outward)."""
    vol = 0.0
    for face in shell:
        area_vec = np.zeros(3)
        for ring in face:
            p = v[ring]
            q = np.roll(p, -1, axis=0)
            area_vec += 0.5 * np.cross(p, q).sum(axis=0)
        vol += float(np.dot(v[face[0][0]], area_vec)) / 3.0
    return vol


def solid_volumes(doc: dict) -> dict[str, float]:
    """Volume (m3) of the solids of each city object (summed over its Solid/MultiSolid geometries of the best LoD)."""
    v = _decode(doc)
    out: dict[str, float] = {}
    for oid, obj in doc["CityObjects"].items():
        total = 0.0
        for g in obj.get("geometry", []):
            # inner shells (voids) are oriented inwards, so their signed volumes subtract themselves
            solids = [g["boundaries"]] if g["type"] == "Solid" else (
                g["boundaries"] if g["type"] in ("MultiSolid", "CompositeSolid") else [])
            for solid in solids:
                total += sum(_shell_volume(shell, v) for shell in solid)
        out[oid] = total
    return out
