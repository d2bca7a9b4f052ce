"""Read an IFC file: schema, units, storeys, elements, property sets, meshes.

:func:`read_model` opens an IFC2X3 / IFC4 / IFC4X3 file with ifcopenshell 0.9
and returns a :class:`BimModel`: plain Python / NumPy data (picklable, so a
worker process can hand it back), with every element's triangle mesh in the
model's world coordinates in metres (the geometry iterator's output), shells
reoriented so that closed meshes have a positive volume.

One element whose geometry fails never loses the rest of the model: it is
listed in :attr:`BimModel.failures` with its GlobalId and the reason.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from twin_core.errors import ImportFormatError

__all__ = ["BimModel", "Mesh", "read_model", "open_ifc", "SUPPORTED_SCHEMAS", "NON_PHYSICAL"]

#: Schemas we read (the header's FILE_SCHEMA, prefix match).
SUPPORTED_SCHEMAS = ("IFC2X3", "IFC4", "IFC4X3")

#: Classes that are not part of the built mass (no footprint, height or mesh).
NON_PHYSICAL = (
    "IfcOpeningElement", "IfcSpace", "IfcSite", "IfcAnnotation", "IfcVirtualElement", "IfcGrid",
    "IfcGeographicElement", "IfcBuildingStorey", "IfcBuilding", "IfcSpatialZone", "IfcExternalSpatialElement",
)

_SCHEMA_RE = re.compile(rb"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", re.IGNORECASE)


@dataclass
class Mesh:
    """A triangle mesh: ``vertices`` (n, 3) float64 metres, ``faces`` (m, 3) int64."""

    vertices: np.ndarray
    faces: np.ndarray

    @property
    def triangles(self) -> np.ndarray:
        """(m, 3, 3) corner coordinates."""
        return self.vertices[self.faces]

    def volume(self) -> float:
        tri = self.triangles
        return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


@dataclass
class BimModel:
    """An IFC model read into plain data.

    Attributes
    ----------
    path : str
    schema : str
        ``"IFC2X3"``, ``"IFC4"`` or ``"IFC4X3..."``.
    length_unit_m : float
        Metres per project length unit (0.001 for a model in millimetres).
    project : dict
        ``{"global_id", "name"}`` of the IfcProject.
    building : dict
        ``{"global_id", "name", "declared_storeys"}`` of the first IfcBuilding (or
        empty); ``declared_storeys``: its ``Pset_BuildingCommon.NumberOfStoreys``
        as given in the file, or None.
    storeys : DataFrame
        ``global_id, name, elevation_m, gross_floor_area_m2`` (from quantity sets,
        else None) sorted by elevation.
    elements : DataFrame
        One row per IfcProduct below the project (spatial elements excluded):
        ``global_id, ifc_class, name, storey, type_name, predefined_type, materials,
        psets (JSON), qsets (JSON), x_m, y_m, z_m`` (placement origin, model metres),
        ``has_body`` (a 3D body representation exists), ``n_triangles``.
    meshes : dict
        GlobalId -> :class:`Mesh` in model world coordinates (metres).
    failures : list of dict
        ``{"global_id", "ifc_class", "reason"}`` for every element with a 3D body
        that produced no triangles (or raised).
    georef : dict
        The georeferencing found in the file (see :mod:`bim_import.georef`).
    timings : dict
        Seconds spent in ``open``, ``iterator`` (ifcopenshell's own geometry
        work) and ``ours`` (everything else); ``iterator_cpu`` and ``ours_cpu``
        the same as process CPU time (less sensitive to a shared machine).
    """

    path: str
    schema: str
    length_unit_m: float
    project: dict
    building: dict
    storeys: pd.DataFrame
    elements: pd.DataFrame
    meshes: dict[str, Mesh]
    failures: list[dict]
    georef: dict
    timings: dict = field(default_factory=dict)

    @property
    def n_products(self) -> int:
        """Number of IfcProduct instances in the file (spatial ones included)."""
        return int(self.georef.get("_n_products", len(self.elements)))

    def storey_names(self) -> list[str]:
        return self.storeys["name"].tolist()

    def element_ids(self, classes: tuple[str, ...] | None = None, storey: str | None = None,
                    physical: bool | None = None) -> list[str]:
        df = self.elements
        mask = np.ones(len(df), dtype=bool)
        if classes is not None:
            mask &= df["ifc_class"].map(lambda c: c.startswith(tuple(classes))).to_numpy(dtype=bool)
        if storey is not None:
            mask &= (df["storey"] == storey).to_numpy()
        if physical is not None:
            phys = ~df["ifc_class"].isin(NON_PHYSICAL).to_numpy()
            mask &= phys if physical else ~phys
        return df.loc[mask, "global_id"].tolist()

    def all_triangles(self, ids: list[str] | None = None) -> np.ndarray:
        """(m, 3, 3) triangles of the given elements (default: all physical ones)."""
        ids = self.element_ids(physical=True) if ids is None else ids
        parts = [self.meshes[g].triangles for g in ids if g in self.meshes]
        if not parts:
            return np.empty((0, 3, 3))
        return np.concatenate(parts)


def sniff_schema(path: str | os.PathLike) -> str:
    """Check that ``path`` is a complete IFC-SPF file and return its FILE_SCHEMA.

    Raises :class:`ImportFormatError` for a missing file, a non-IFC file, a
    truncated file (no ``END-ISO-10303-21;``) or an unsupported schema.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ImportFormatError(f"IFC file {p!r} does not exist; check the path")
    size = os.path.getsize(p)
    with open(p, "rb") as fh:
        head = fh.read(4096)
        fh.seek(max(0, size - 512))
        tail = fh.read()
    if not head.lstrip().startswith(b"ISO-10303-21"):
        if head[:4] == b"PK\x03\x04":
            raise ImportFormatError(f"{p!r} is a zip archive (IFCZIP?): unzip it and give the .ifc inside")
        raise ImportFormatError(
            f"{p!r} is not an IFC STEP file (it does not start with 'ISO-10303-21;'); "
            "export the model as IFC2X3 or IFC4 (.ifc, STEP physical file)"
        )
    if b"END-ISO-10303-21" not in tail:
        raise ImportFormatError(
            f"{p!r} is truncated: it lacks the closing 'END-ISO-10303-21;' line ({size} bytes). "
            "Copy or export the file again"
        )
    m = _SCHEMA_RE.search(head)
    if not m:
        raise ImportFormatError(f"{p!r} has no FILE_SCHEMA in its header; export it again as IFC2X3 or IFC4")
    schema = m.group(1).decode("ascii", "replace").upper()
    if not schema.startswith(SUPPORTED_SCHEMAS):
        raise ImportFormatError(
            f"{p!r} uses schema {schema!r}, which is not supported; supported: {list(SUPPORTED_SCHEMAS)}. "
            "Export the model as IFC4 (or IFC2X3)"
        )
    return schema


def open_ifc(path: str | os.PathLike):
    """Open an IFC file with ifcopenshell after :func:`sniff_schema` checks."""
    import ifcopenshell

    sniff_schema(path)
    try:
        f = ifcopenshell.open(os.fspath(path))
    except Exception as exc:  # ifcopenshell raises plain errors for bad STEP
        raise ImportFormatError(f"ifcopenshell cannot read {os.fspath(path)!r}: {exc}; check the file is valid IFC") from None
    if not f.by_type("IfcProject"):
        raise ImportFormatError(f"{os.fspath(path)!r} has no IfcProject; it is not a usable IFC model")
    return f


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items() if k != "id"}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if hasattr(v, "is_a"):
        return str(v)
    return str(v)


def _materials(el) -> str:
    import ifcopenshell.util.element as E

    try:
        mats = E.get_materials(el)
    except Exception:  # pragma: no cover - odd material assignments
        return ""
    names = []
    for m in mats:
        n = getattr(m, "Name", None)
        if n and n not in names:
            names.append(n)
    return "; ".join(names)


def _has_body(el) -> bool:
    rep = getattr(el, "Representation", None)
    if rep is None:
        return False
    for r in rep.Representations or ():
        ctx = r.ContextOfItems
        ctype = getattr(ctx, "ContextType", None)
        if ctx is not None and ctx.is_a("IfcGeometricRepresentationSubContext"):
            ctype = ctx.ParentContext.ContextType if ctx.ParentContext is not None else ctype
        rid = (r.RepresentationIdentifier or "").lower()
        rtype = (r.RepresentationType or "").lower()
        if ctype == "Model" and rid in ("body", "facetation", "") and rtype not in ("annotation2d", "curve2d", "geometricset"):
            return True
    return False


def iterate_geometry(f, *, threads: int = 1, exclude_classes=("IfcOpeningElement",), include=None):
    """Run ifcopenshell's geometry iterator; yield (guid, ifc_class, vertices, faces).

    World coordinates in metres, shells reoriented, vertices welded.
    """
    import ifcopenshell.geom as G

    s = G.settings()
    s.set("use-world-coords", True)
    s.set("reorient-shells", True)
    s.set("weld-vertices", True)
    kwargs = {}
    if include is not None:
        kwargs["include"] = include
    else:
        excl = [e for c in exclude_classes for e in f.by_type(c)]
        if excl:
            kwargs["exclude"] = excl
    it = G.iterator(s, f, max(1, int(threads)), **kwargs)
    if not it.initialize():
        return
    while True:
        sh = it.get()
        g = sh.geometry
        yield sh.guid, sh.type, g.verts, g.faces
        if not it.next():
            break


def _fix_mesh(v: np.ndarray, fa: np.ndarray) -> Mesh:
    """Reorient a shell whose volume comes out negative (inside-out) with trimesh."""
    mesh = Mesh(v, fa)
    if len(fa) == 0:
        return mesh
    vol = mesh.volume()
    if vol < 0:
        import trimesh

        tm = trimesh.Trimesh(v, fa, process=False)
        if not tm.is_winding_consistent:
            trimesh.repair.fix_winding(tm)
        if tm.volume < 0:
            tm.invert()
        mesh = Mesh(np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int64))
    return mesh


def read_model(path: str | os.PathLike, *, geometry: bool = True, threads: int = 1,
               progress: Callable[[float, float], None] | None = None, ifc=None) -> BimModel:
    """Read an IFC file into a :class:`BimModel`.

    Parameters
    ----------
    path : str or Path
        An IFC2X3 / IFC4 STEP file (``.ifc``).
    geometry : bool
        Run the geometry iterator (False: attributes and property sets only).
    threads : int
        Threads for ifcopenshell's iterator. On 2 cores one thread per file and
        one process per file (see :func:`bim_import.import_many`) is faster.
    progress : callable, optional
        ``progress(done, total)`` over elements.
    ifc : ifcopenshell.file, optional
        ``path`` already opened with :func:`open_ifc` (not opened again).

    Raises
    ------
    ImportFormatError
        Not an IFC file, truncated, unsupported schema, or unreadable.

    Examples
    --------
    >>> from bim_import import read_model
    >>> m = read_model("/work/shared/data/ifc/geographic-referencing.ifc")  # doctest: +SKIP
    >>> m.schema, m.length_unit_m  # doctest: +SKIP
    ('IFC4', 0.001)
    """
    import ifcopenshell.util.element as E
    import ifcopenshell.util.placement as P
    import ifcopenshell.util.unit as U

    t0 = time.perf_counter()
    f = open_ifc(path) if ifc is None else ifc
    t_open = time.perf_counter() - t0
    t1 = time.perf_counter()
    c1 = time.process_time()
    unit = float(U.calculate_unit_scale(f))
    try:
        area_unit = float(U.calculate_unit_scale(f, "AREAUNIT"))
    except Exception:  # pragma: no cover - no area unit declared
        area_unit = unit * unit
    project = f.by_type("IfcProject")[0]
    bld = f.by_type("IfcBuilding")
    building = {}
    if bld:
        try:
            declared = E.get_pset(bld[0], "Pset_BuildingCommon", "NumberOfStoreys")
        except Exception:  # noqa: BLE001 - an odd property set never loses the model
            declared = None
        building = {"global_id": bld[0].GlobalId, "name": bld[0].Name, "declared_storeys": _jsonable(declared)}

    storeys = []
    for s in f.by_type("IfcBuildingStorey"):
        elev = s.Elevation
        if elev is None and s.ObjectPlacement is not None:
            elev = float(P.get_local_placement(s.ObjectPlacement)[2, 3])
        gfa = None
        for q in E.get_psets(s, qtos_only=True).values():
            if q.get("GrossFloorArea") is not None:
                gfa = float(q["GrossFloorArea"]) * area_unit
                break
        storeys.append({"global_id": s.GlobalId, "name": s.Name or s.GlobalId,
                        "elevation_m": float(elev or 0.0) * unit, "gross_floor_area_m2": gfa})
    storeys_df = pd.DataFrame(storeys, columns=["global_id", "name", "elevation_m", "gross_floor_area_m2"])
    storeys_df = storeys_df.sort_values("elevation_m", kind="stable").reset_index(drop=True)
    storey_by_id = {s["global_id"]: s["name"] for s in storeys}

    cache: dict[int, np.ndarray] = {}

    def placement(pl) -> np.ndarray:
        """World matrix of an IfcLocalPlacement (parents computed once)."""
        key = pl.id()
        m = cache.get(key)
        if m is None:
            if pl.is_a("IfcLocalPlacement"):
                rel = np.asarray(P.get_axis2placement(pl.RelativePlacement), dtype=float)
                parent = pl.PlacementRelTo
                m = placement(parent) @ rel if parent is not None else rel
            else:  # grid placements and the like
                m = np.asarray(P.get_local_placement(pl), dtype=float)
            cache[key] = m
        return m

    products = f.by_type("IfcProduct")
    spatial = ("IfcSite", "IfcBuilding", "IfcBuildingStorey", "IfcProject")
    rows = []
    failures: list[dict] = []
    for el in products:
        if el.is_a() in spatial:
            continue
        try:
            cont = E.get_container(el)
            if cont is None:
                parent = E.get_aggregate(el)
                while parent is not None and cont is None:
                    cont = parent if parent.is_a("IfcBuildingStorey") else E.get_container(parent)
                    parent = E.get_aggregate(parent)
            storey = storey_by_id.get(cont.GlobalId) if cont is not None and cont.is_a("IfcBuildingStorey") else None
            ty = E.get_type(el)
            psets, qsets = {}, {}
            for pname, props in E.get_psets(el).items():  # one pass, split by the definition's class
                pid = props.get("id")
                is_q = pid is not None and f.by_id(pid).is_a("IfcElementQuantity")
                (qsets if is_q else psets)[pname] = props
            origin = (placement(el.ObjectPlacement)[:3, 3] * unit
                      if el.ObjectPlacement is not None else np.array([np.nan] * 3))
        except Exception as exc:  # one odd element never loses the rest
            storey, ty, psets, qsets, origin = None, None, {}, {}, np.array([np.nan] * 3)
            failures.append({"global_id": el.GlobalId, "ifc_class": el.is_a(), "reason": f"attributes: {exc}"})
        rows.append({
            "global_id": el.GlobalId,
            "ifc_class": el.is_a(),
            "name": el.Name,
            "storey": storey,
            "type_name": ty.Name if ty is not None else None,
            "predefined_type": str(getattr(el, "PredefinedType", None) or "") or None,
            "materials": _materials(el),
            "psets": json.dumps(_jsonable(psets), ensure_ascii=False, default=str),
            "qsets": json.dumps(_jsonable(qsets), ensure_ascii=False, default=str),
            "x_m": origin[0], "y_m": origin[1], "z_m": origin[2],
            "has_body": _has_body(el),
        })
    elements = pd.DataFrame(rows, columns=["global_id", "ifc_class", "name", "storey", "type_name", "predefined_type",
                                           "materials", "psets", "qsets", "x_m", "y_m", "z_m", "has_body"])
    georef = _read_georef(f, unit)
    georef["_n_products"] = len(products)
    t_attr = time.perf_counter() - t1

    meshes: dict[str, Mesh] = {}
    t_iter = 0.0
    t_fix = 0.0
    c_iter = 0.0
    if geometry:
        total = int(elements["has_body"].sum())
        done = 0
        gen = iterate_geometry(f, threads=threads)
        while True:
            ta = time.perf_counter()
            ca = time.process_time()
            try:
                item = next(gen)
            except StopIteration:
                t_iter += time.perf_counter() - ta
                c_iter += time.process_time() - ca
                break
            except Exception as exc:  # the iterator itself died: keep what we have
                failures.append({"global_id": None, "ifc_class": None, "reason": f"geometry iterator stopped: {exc}"})
                break
            guid, cls, verts, faces = item
            v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
            fa = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
            tb = time.perf_counter()
            t_iter += tb - ta
            c_iter += time.process_time() - ca
            if len(fa):
                meshes[guid] = _fix_mesh(v, fa)
            done += 1
            if progress is not None:
                progress(done, total)
            t_fix += time.perf_counter() - tb
        tc = time.perf_counter()
        for r in elements.itertuples():
            if r.has_body and r.global_id not in meshes and r.ifc_class != "IfcOpeningElement":
                failures.append({"global_id": r.global_id, "ifc_class": r.ifc_class,
                                 "reason": "no triangles from the geometry iterator (unsupported geometry, e.g. CSG "
                                           "primitives in ifcopenshell 0.9, or an invalid body)"})
        t_fix += time.perf_counter() - tc
    elements["n_triangles"] = elements["global_id"].map(lambda g: len(meshes[g].faces) if g in meshes else 0).astype("int64")
    c_total = time.process_time() - c1
    return BimModel(
        path=os.fspath(path), schema=f.schema_identifier if hasattr(f, "schema_identifier") else f.schema,
        length_unit_m=unit, project={"global_id": project.GlobalId, "name": project.Name},
        building=building, storeys=storeys_df, elements=elements, meshes=meshes, failures=failures,
        georef=georef,
        timings={"open": t_open, "iterator": t_iter, "ours": t_attr + t_fix,
                 "iterator_cpu": c_iter, "ours_cpu": c_total - c_iter},
    )


def _dms(v) -> float | None:
    if v is None:
        return None
    parts = list(v) + [0] * (4 - len(v))
    d, m, s, us = (float(x) for x in parts[:4])
    return d + m / 60.0 + s / 3600.0 + us / 3.6e9


def _unit_to_m(u) -> float:
    """Metres per unit for an IfcNamedUnit (SI or conversion-based)."""
    if u is None:
        return 1.0
    import ifcopenshell.util.unit as U

    try:
        if u.is_a("IfcSIUnit"):
            return float(U.get_prefix_multiplier(u.Prefix) if u.Prefix else 1.0)
        if u.is_a("IfcConversionBasedUnit"):
            return float(u.ConversionFactor.ValueComponent.wrappedValue) * _unit_to_m(u.ConversionFactor.UnitComponent)
    except Exception:  # pragma: no cover
        return 1.0
    return 1.0


def _read_georef(f, unit: float) -> dict:
    """Everything the file says about where it is (see bim_import.georef)."""
    import ifcopenshell.util.element as E
    import ifcopenshell.util.placement as P

    out: dict[str, Any] = {"length_unit_m": unit}
    # true north of the 3D model context
    tn = None
    for ctx in f.by_type("IfcGeometricRepresentationContext"):
        if ctx.is_a("IfcGeometricRepresentationSubContext"):
            continue
        if ctx.ContextType == "Model" and ctx.TrueNorth is not None:
            tn = [float(x) for x in ctx.TrueNorth.DirectionRatios[:2]]
            break
    out["true_north"] = tn
    # IFC4 IfcMapConversion
    if f.schema != "IFC2X3":
        for mc in f.by_type("IfcMapConversion"):
            crs = mc.TargetCRS
            map_unit = _unit_to_m(getattr(crs, "MapUnit", None)) if crs is not None else 1.0
            out["map_conversion"] = {
                "eastings": float(mc.Eastings), "northings": float(mc.Northings),
                "orthogonal_height": float(mc.OrthogonalHeight or 0.0),
                "x_axis_abscissa": float(mc.XAxisAbscissa) if mc.XAxisAbscissa is not None else 1.0,
                "x_axis_ordinate": float(mc.XAxisOrdinate) if mc.XAxisOrdinate is not None else 0.0,
                "scale": float(mc.Scale) if mc.Scale is not None else None,
                "crs_name": crs.Name if crs is not None else None,
                "geodetic_datum": getattr(crs, "GeodeticDatum", None) if crs is not None else None,
                "map_unit_m": map_unit,
            }
            break
    # IFC2X3 ePSet_MapConversion / ePSet_ProjectedCRS (on the project or the site)
    holders = list(f.by_type("IfcProject")) + list(f.by_type("IfcSite"))
    for h in holders:
        ps = E.get_psets(h)
        mc = ps.get("ePSet_MapConversion")
        if mc and "map_conversion" not in out and mc.get("Eastings") is not None:
            pc = ps.get("ePSet_ProjectedCRS", {})
            out["map_conversion"] = {
                "eastings": float(mc.get("Eastings")), "northings": float(mc.get("Northings", 0.0)),
                "orthogonal_height": float(mc.get("OrthogonalHeight", 0.0) or 0.0),
                "x_axis_abscissa": float(mc["XAxisAbscissa"]) if mc.get("XAxisAbscissa") is not None else 1.0,
                "x_axis_ordinate": float(mc["XAxisOrdinate"]) if mc.get("XAxisOrdinate") is not None else 0.0,
                "scale": float(mc["Scale"]) if mc.get("Scale") is not None else None,
                "crs_name": pc.get("Name"), "geodetic_datum": pc.get("GeodeticDatum"),
                "map_unit_m": 1.0, "source": "ePSet_MapConversion",
            }
    # IfcSite RefLatitude / RefLongitude
    for site in f.by_type("IfcSite"):
        lat, lon = _dms(site.RefLatitude), _dms(site.RefLongitude)
        if lat is None or lon is None or (abs(lat) < 1e-9 and abs(lon) < 1e-9):
            continue
        origin = (np.asarray(P.get_local_placement(site.ObjectPlacement)[:3, 3], dtype=float) * unit
                  if site.ObjectPlacement is not None else np.zeros(3))
        out["site"] = {"lat": lat, "lon": lon, "elevation_m": float(site.RefElevation or 0.0) * unit,
                       "origin_m": origin.tolist(), "global_id": site.GlobalId}
        break
    return out
