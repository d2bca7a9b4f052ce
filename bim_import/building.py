"""From a read model to CIM data: building feature, element table, glTF blobs.

:func:`build_building` takes a :class:`~bim_import.model.BimModel` and a
:class:`~bim_import.georef.Georeference` and returns a :class:`Building`:

* ``feature``: a one-row GeoDataFrame conforming to
  ``cim.schema.FEATURE_CLASSES["buildings"]`` (LoD1 footprint = union of the
  projected triangles, height above the 0.00 level to the highest point,
  storeys above ground, gross floor area from quantity sets or slab areas; a
  model without IfcBuildingStorey takes its storeys from
  ``Pset_BuildingCommon.NumberOfStoreys``, else leaves them unknown (null), with
  a :class:`~twin_core.errors.TwinWarning`, never a silent 0);
* ``elements``: a DataFrame, one row per element, with property and quantity
  sets as JSON text (queryable with SQLite ``json_extract``) and the element's
  placement origin in the twin CRS;
* ``glb``: the whole building and one blob per storey (binary glTF, one node
  per element named by GlobalId; x east, y north, z up, metres: x and y
  relative to ``origin``, the footprint's centroid in the twin CRS, z the
  absolute height, as the viewer's deck.gl ScenegraphLayer expects).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin_core.errors import GeometryError

__all__ = ["Building", "build_building", "replaced_buildings", "ELEMENT_COLUMNS", "REPLACED_SHARE"]

ELEMENT_COLUMNS = ["building_id", "global_id", "ifc_class", "name", "storey", "type_name", "predefined_type",
                   "materials", "psets", "qsets", "x", "y", "z", "n_triangles", "geometry_ok", "failure"]

ROOF_CLASSES = ("IfcRoof",)
#: a CIM building at least this share of whose own area lies on a submitted model's footprint is the one the
#: model replaces (:func:`replaced_buildings`); one that only touches or overlaps it a little is a neighbour
REPLACED_SHARE = 0.5


@dataclass
class Building:
    """One imported building (see module docstring)."""

    building_id: str
    feature: object  # GeoDataFrame
    elements: pd.DataFrame
    glb: bytes | None
    storey_glb: dict[str, bytes]
    origin: tuple[float, float]
    georef: object
    footprint: object  # shapely MultiPolygon in the twin CRS
    height_m: float
    ground_elev_m: float
    storeys: int | None  # None: unknown (the model has no IfcBuildingStorey and declares no number)
    gfa_m2: float | None
    gfa_source: str
    summary: dict = field(default_factory=dict)
    roof_triangles: np.ndarray | None = None  # (m, 3, 3) twin CRS
    model: object | None = field(default=None, repr=False)  # the BimModel it came from (not sent between processes)

    def blob_keys(self) -> dict[str, str]:
        keys = {"building": f"bim/{self.building_id}/building.glb"} if self.glb else {}
        for name in self.storey_glb:
            keys[f"storey:{name}"] = f"bim/{self.building_id}/storey/{_safe(name)}.glb"
        return keys


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name)) or "storey"


def above_ground_storeys(model, ground_level_m: float = 0.0, top_m: float | None = None) -> list[str]:
    """Storeys at or above the ground level that hold a floor.

    A storey counts when it holds a floor slab (not a roof slab), or spaces
    with at least 2 m of headroom below the building's top ``top_m`` (so a
    "Roof" storey holding only the roof and a roof space does not count).
    """
    st = model.storeys[model.storeys["elevation_m"] >= ground_level_m - 0.05]
    el = model.elements
    slabs = el[(el["ifc_class"].str.startswith("IfcSlab")) & (el["predefined_type"].fillna("") != "ROOF")]
    spaces = el[el["ifc_class"] == "IfcSpace"]
    with_slab = set(slabs["storey"].dropna())
    with_space = set(spaces["storey"].dropna())
    names = [r.name for r in st.itertuples()
             if r.name in with_slab or (r.name in with_space and (top_m is None or r.elevation_m + 2.0 <= top_m))]
    return names or st["name"].tolist()


#: storey height (m) used only to say, in the warning, how many storeys a model's height would hold
_TYPICAL_STOREY_M = 3.0


def _storey_count(model, storey_names: list[str], height_m: float) -> tuple[int | None, str | None]:
    """The number of storeys above ground, and a note (also warned) when it does not come from the storeys.

    A model with IfcBuildingStorey: the storeys above ground (:func:`above_ground_storeys`). A model without
    any: the building's own ``Pset_BuildingCommon.NumberOfStoreys`` where it is a plausible whole number,
    else None (unknown; stored as null). Never a silent 0: a planner reading 0 storeys would take it as fact
    (and FAR or population estimates built on it would be wrong).
    """
    from cim.schema import FEATURE_CLASSES
    from twin_core.errors import TwinWarning, twin_warn

    if len(model.storeys):
        return len(storey_names), None
    name = os.path.basename(model.path) if isinstance(model.path, str) and model.path else "the model"
    declared = (model.building or {}).get("declared_storeys")
    f = FEATURE_CLASSES["buildings"].field("storeys")
    try:
        n = float(declared) if declared is not None and not isinstance(declared, bool) else None
    except (TypeError, ValueError):
        n = None
    if n is not None and n.is_integer() and f.minimum <= n <= f.maximum:
        note = (f"{name} has no IfcBuildingStorey; its number of storeys ({int(n)}) is taken from the building's "
                "Pset_BuildingCommon.NumberOfStoreys as declared, not counted from the model, and its gross floor "
                "area is unknown. Add IfcBuildingStorey elements (the floors, with their elements) to the model "
                "for counted storeys and a floor area")
        twin_warn(note, TwinWarning, stacklevel=3)
        return int(n), note
    bad = f" (its Pset_BuildingCommon.NumberOfStoreys {declared!r} is no plausible count)" if declared is not None \
        else ""
    guess = (f"; at about {_TYPICAL_STOREY_M:g} m a storey its height of {height_m:.1f} m would hold about "
             f"{max(1, round(height_m / _TYPICAL_STOREY_M))}, which is not stored"
             if np.isfinite(height_m) and height_m > 0 else "")
    note = (f"{name} has no IfcBuildingStorey{bad}, so its number of storeys is unknown and stored empty (null), "
            f"not 0, and its gross floor area is unknown too{guess}. Add IfcBuildingStorey elements (the floors, "
            "with their elements) or Pset_BuildingCommon.NumberOfStoreys to the model and import it again")
    twin_warn(note, TwinWarning, stacklevel=3)
    return None, note


def gross_floor_area(model, storeys: list[str]) -> tuple[float | None, str]:
    """GFA (m2) of the given storeys: storey quantity sets, else the union of slab projections."""
    from bim_import.geometry import project_union

    st = model.storeys[model.storeys["name"].isin(storeys)]
    if len(st) and st["gross_floor_area_m2"].notna().all():
        return float(st["gross_floor_area_m2"].sum()), "qsets"
    el = model.elements
    total, any_slab = 0.0, False
    for name in storeys:
        ids = el[(el["storey"] == name) & el["ifc_class"].str.startswith("IfcSlab")
                 & (el["predefined_type"].fillna("") != "ROOF")]["global_id"].tolist()
        if ids:
            any_slab = True
            total += project_union(model.all_triangles(ids)).area
    if any_slab:
        return float(total), "slab_areas"
    return None, "none"


def _roof_ids(model) -> list[str]:
    el = model.elements
    roof = el[(el["ifc_class"].str.startswith(ROOF_CLASSES)) |
              ((el["ifc_class"].str.startswith("IfcSlab")) & (el["predefined_type"].fillna("") == "ROOF"))]
    return roof["global_id"].tolist()


def _glb(model, ids: list[str], georef, origin) -> bytes | None:
    from bim_import.gltf import write_glb

    parts = []
    for gid in ids:
        m = model.meshes.get(gid)
        if m is None:
            continue
        v = georef.apply(m.vertices)
        v[:, 0] -= origin[0]
        v[:, 1] -= origin[1]
        parts.append((gid, v, m.faces))
    if not parts:
        return None
    return write_glb(parts, extras={"origin": list(origin), "crs": georef.crs,
                                    "axes": "x east, y north, z up; metres, x/y from origin, z absolute height"})


#: an IFC GlobalId: 22 characters of IFC's base-64 alphabet (ISO 16739, IfcGloballyUniqueId)
_IFC_GUID = re.compile(r"[0-9A-Za-z_$]{22}\Z")


def _default_building_id(gid) -> str:
    """``bim-<GlobalId>``; a GlobalId that is not one (a file may put anything there, markup included) is
    replaced by a digest of it, with a warning, so ids stay safe in URLs, file names and pages."""
    if isinstance(gid, str) and _IFC_GUID.match(gid):
        return f"bim-{gid}"
    import hashlib
    from twin_core.errors import TwinWarning, twin_warn

    safe = hashlib.sha1(str(gid).encode("utf-8", "surrogatepass")).hexdigest()[:22]
    twin_warn(f"the model's building GlobalId {str(gid)[:40]!r} is not an IFC GlobalId (22 characters of "
                  f"0-9A-Za-z_$); its building id is bim-{safe}. Pass building_id= to choose one", TwinWarning,
                  stacklevel=3)
    return f"bim-{safe}"


def build_building(model, georef, *, building_id: str | None = None, ground_level_m: float = 0.0,
                   use: str | None = None, meshes: bool = True) -> Building:
    """Turn a read model into CIM data in the twin CRS (see module docstring).

    Parameters
    ----------
    model : BimModel
    georef : Georeference
        From :func:`bim_import.georeference`.
    building_id : str, optional
        Default: ``"bim-" + IfcBuilding GlobalId``.
    ground_level_m : float
        The model height of the ground (default the 0.00 level).
    use : str, optional
        Building use (one of ``cim.schema.BUILDING_USES``).
    meshes : bool
        Build the glTF blobs.

    Examples
    --------
    >>> from bim_import import read_model, georeference
    >>> from bim_import.building import build_building
    >>> m = read_model("/work/shared/data/ifc/AC20-FZK-Haus.ifc")            # doctest: +SKIP
    >>> b = build_building(m, georeference(m, "EPSG:25832"))                  # doctest: +SKIP
    >>> round(b.height_m, 2), b.storeys                                       # doctest: +SKIP
    (6.32, 2)
    """
    import geopandas as gpd

    from bim_import.geometry import affine_geom, footprint_triangles, project_union, to_multipolygon
    from cim.schema import conform

    bid = building_id or _default_building_id((model.building or model.project).get("global_id"))
    phys = model.element_ids(physical=True)
    failed = {f["global_id"]: f["reason"] for f in model.failures if f.get("global_id")}
    parts = [footprint_triangles(model.meshes[g].triangles) for g in phys if g in model.meshes]
    tri = np.concatenate(parts) if parts else np.empty((0, 3, 3))
    if len(tri):
        # union in model coordinates (small numbers), then the affine map to the twin CRS
        footprint = to_multipolygon(affine_geom(project_union(tri), georef))
        zmax = max(float(model.meshes[g].vertices[:, 2].max()) for g in phys if g in model.meshes)
        height = zmax - ground_level_m
    else:
        footprint = to_multipolygon(None)
        height = float("nan")
    ground_elev = georef.z0 + ground_level_m
    storey_names = above_ground_storeys(model, ground_level_m, None if not len(tri) else zmax)
    gfa, gfa_source = gross_floor_area(model, storey_names)
    storeys, storey_note = _storey_count(model, storey_names, height)
    if footprint.is_empty:
        origin = tuple(georef.apply_xy(np.zeros((1, 2)))[0])
    else:
        c = footprint.centroid
        origin = (float(c.x), float(c.y))

    el = model.elements
    xyz = georef.apply(el[["x_m", "y_m", "z_m"]].to_numpy(dtype=float)) if len(el) else np.empty((0, 3))
    elements = pd.DataFrame({
        "building_id": bid,
        "global_id": el["global_id"],
        "ifc_class": el["ifc_class"],
        "name": el["name"],
        "storey": el["storey"],
        "type_name": el["type_name"],
        "predefined_type": el["predefined_type"],
        "materials": el["materials"],
        "psets": el["psets"],
        "qsets": el["qsets"],
        "x": xyz[:, 0] if len(el) else [],
        "y": xyz[:, 1] if len(el) else [],
        "z": xyz[:, 2] if len(el) else [],
        "n_triangles": el["n_triangles"].astype("int64"),
        "geometry_ok": ~el["global_id"].isin(list(failed)),
        "failure": el["global_id"].map(failed),
    })[ELEMENT_COLUMNS].reset_index(drop=True)

    feature = None
    if not footprint.is_empty:
        props = {
            "building_id": [bid], "height_m": [height], "storeys": [storeys], "use": [use],
            "year": [None], "ground_elev_m": [ground_elev], "lod": [3],
            "source_id": [(model.building or model.project).get("global_id")], "gfa_m2": [gfa], "parcel_id": [None],
        }
        gdf = gpd.GeoDataFrame(props, geometry=[footprint], crs=georef.crs)
        feature = conform(gdf, "buildings")

    glb, storey_glb = None, {}
    if meshes and model.meshes:
        visible = [g for g in phys if g in model.meshes]
        glb = _glb(model, visible, georef, origin)
        for name in model.storeys["name"]:
            ids = [g for g in model.element_ids(storey=name, physical=True) if g in model.meshes]
            blob = _glb(model, ids, georef, origin) if ids else None
            if blob:
                storey_glb[name] = blob
    roof_ids = _roof_ids(model)
    roof_tri = model.all_triangles(roof_ids)
    roof_tri = georef.apply(roof_tri.reshape(-1, 3)).reshape(roof_tri.shape) if len(roof_tri) else None
    summary = {
        "building_id": bid, "file": model.path, "schema": model.schema, "products": model.n_products,
        "storeys_in_file": len(model.storeys), "elements": len(el), "with_geometry": len(model.meshes),
        "failed": [{"global_id": f["global_id"], "ifc_class": f["ifc_class"], "reason": f["reason"]} for f in model.failures],
        "georef": georef.to_dict(), "height_m": height, "storeys": storeys, "gfa_m2": gfa,
        "gfa_source": gfa_source, "footprint_m2": float(footprint.area),
        "warnings": ([] if feature is not None else
                     ["no element produced triangles: no building footprint; the element table is still imported"])
                    + ([storey_note] if storey_note else []),
    }
    return Building(bid, feature, elements, glb, storey_glb, origin, georef, footprint, height, ground_elev,
                    storeys, gfa, gfa_source, summary, roof_tri, model)


def element_property(elements: pd.DataFrame, pset: str, prop: str) -> pd.Series:
    """One property of one property/quantity set for every element (None where absent).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"psets": ['{"Pset_WallCommon": {"IsExternal": true}}', '{}'], "qsets": ['{}', '{}']})
    >>> element_property(df, "Pset_WallCommon", "IsExternal").tolist()
    [True, None]
    """
    def get(row):
        for col in ("psets", "qsets"):
            d = json.loads(row[col] or "{}")
            if pset in d and prop in d[pset]:
                return d[pset][prop]
        return None

    return elements.apply(get, axis=1)


def require_feature(b: Building) -> None:
    if b.feature is None:
        raise GeometryError(f"building {b.building_id}: no element produced geometry, so it has no footprint")


def replaced_buildings(buildings, footprint, share: float = REPLACED_SHARE) -> np.ndarray:
    """Which of the CIM's ``buildings`` a submitted model whose footprint is ``footprint`` replaces: those with
    at least ``share`` (:data:`REPLACED_SHARE`, a half) of their own area on the footprint. The rest, touching
    it or overlapping its edge included, stay the model's neighbours. The one decision every check against the
    city makes (the fire separation of :mod:`bim_import.compliance`, the neighbours' sunlight of
    :mod:`twin_core.adapters.analysis`).

    Parameters
    ----------
    buildings : GeoDataFrame or array of geometries
        In the footprint's CRS.
    footprint : shapely geometry

    Returns
    -------
    numpy.ndarray of bool, one per building (False for a building without area)

    Examples
    --------
    >>> from shapely import box
    >>> fp = box(0, 0, 20, 10)  # on it; sharing its east edge; 0.1 m over that edge; half on it
    >>> replaced_buildings([box(5, 2, 15, 8), box(20, 0, 30, 10), box(19.9, 0, 29.9, 10), box(15, 0, 25, 10)], fp)
    array([ True, False, False,  True])
    """
    import shapely

    geoms = np.asarray(getattr(buildings, "geometry", buildings), dtype=object)
    out = np.zeros(len(geoms), dtype=bool)
    if not len(geoms) or footprint is None or footprint.is_empty:
        return out
    ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    g = geoms[ok]
    bad = ~shapely.is_valid(g)
    if bad.any():  # a self-touching ring from a survey: measured as repaired, not a GEOS error
        g = g.copy()
        g[bad] = shapely.make_valid(g[bad])
    area = shapely.area(g)
    on = np.zeros(len(g))
    meets = shapely.intersects(g, footprint) & (area > 0)
    if meets.any():
        on[meets] = shapely.area(shapely.intersection(g[meets], footprint))
    out[ok] = (area > 0) & (on >= share * area * (1 - 1e-9))
    return out
