"""Import IFC files into a store: one file, or many in parallel.

Everything one import writes (building feature, element rows, glTF blobs,
the ``bim_buildings`` summary row) goes in one ``store.transaction()``, so a
failure leaves nothing half-written. ``replace=True`` replaces an earlier import
of the same building id in that same transaction; :func:`delete_building`
removes one.

What can refuse a file is checked before its geometry is read (seconds for a
real model): that it can be placed in the twin (georeferencing) and that its
building id is free. A model placed with an :class:`~bim_import.georef.Anchor`
without a height stands on the twin's terrain (its DEM) there.
"""

from __future__ import annotations

import functools
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd

from twin_core.errors import TwinError

__all__ = ["import_ifc", "import_many", "prepare_building", "write_building", "delete_building", "query_elements",
           "ground_height", "ImportSummary", "ELEMENT_TABLE", "SUMMARY_TABLE"]

ELEMENT_TABLE = "bim_elements"
SUMMARY_TABLE = "bim_buildings"


@dataclass
class ImportSummary:
    """What an import did (per file and in total)."""

    files: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def elements_read(self) -> int:
        return sum(f["elements"] for f in self.files)

    @property
    def failed_elements(self) -> list[dict]:
        return [dict(x, file=f["file"]) for f in self.files for x in f["failed"]]

    def to_dict(self) -> dict:
        return {"files": self.files, "errors": self.errors, "seconds": self.seconds,
                "elements_read": self.elements_read, "failed_elements": self.failed_elements}


def _peek(path: str):
    """Open an IFC file and read what placing it and naming it take, no geometry: the open file, its
    georeferencing (the ``georef`` dict of :func:`bim_import.read_model`) and the building's GlobalId."""
    import ifcopenshell.util.unit as U

    from bim_import.model import _read_georef, open_ifc

    f = open_ifc(path)
    gdict = _read_georef(f, float(U.calculate_unit_scale(f)))
    bld = f.by_type("IfcBuilding")
    gid = bld[0].GlobalId if bld else f.by_type("IfcProject")[0].GlobalId
    return f, gdict, gid


#: a building id given by the caller: it names glTF blobs (``bim/<id>/...``) and appears in URLs and pages
_BUILDING_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}\Z")


def _check_building_id(building_id: str) -> str:
    from twin_core.errors import FieldError

    if not isinstance(building_id, str) or not _BUILDING_ID.match(building_id):
        raise FieldError(f"building id {building_id!r} is not usable: give 1 to 100 letters, digits and '_', '.', "
                         "':' or '-', starting with a letter or digit (e.g. 'B0042' or 'bim-tower-a')")
    return building_id


def prepare_building(path: str, twin_crs: str, *, anchor=None, building_id: str | None = None, use: str | None = None,
                     method: str = "auto", threads: int = 1, check: Callable[[str], None] | None = None):
    """Read + georeference + build one file (no store). Picklable result for worker processes.

    The file is opened and checked before its geometry is read: a model that cannot be placed in the twin
    raises :class:`~twin_core.errors.GeoreferenceError` at once, and ``check(building_id)`` (e.g. that the
    id is free in the store) runs then too.
    """
    from bim_import.building import _default_building_id, build_building
    from bim_import.georef import georeference
    from bim_import.model import read_model

    t0 = time.perf_counter()
    if building_id is not None:
        _check_building_id(building_id)
    f, gdict, gid = _peek(path)
    # placed first (the georeferencing alone, no geometry): its warnings are given here, once
    g0 = georeference(gdict, twin_crs, anchor=anchor, method=method)
    bid = building_id or _default_building_id(gid)
    if check is not None:
        check(bid)
    model = read_model(path, threads=threads, ifc=f)
    t1 = time.perf_counter()
    c1 = time.process_time()
    # the same source again, fitted over the model's extent (g0 had a nominal one)
    g = georeference(model, twin_crs, anchor=anchor, method=g0.method)
    b = build_building(model, g, building_id=bid, use=use)
    t2 = time.perf_counter()
    b.summary["timings"] = {**model.timings, "build": t2 - t1, "build_cpu": time.process_time() - c1,
                            "total": t2 - t0}
    b.summary["ours_s"] = model.timings["ours"] + (t2 - t1)
    return b


def _summary_row(b, keys: dict) -> pd.DataFrame:
    import json

    s = b.summary
    return pd.DataFrame([{
        "building_id": b.building_id, "file": os.path.basename(s["file"]), "schema": s["schema"],
        "products": s["products"], "elements": s["elements"], "with_geometry": s["with_geometry"],
        "failed": len(s["failed"]), "height_m": b.height_m, "storeys": b.storeys, "gfa_m2": b.gfa_m2,
        "gfa_source": b.gfa_source, "origin_x": b.origin[0], "origin_y": b.origin[1],
        "crs": b.georef.crs, "georef_method": b.georef.method, "georef": json.dumps(b.georef.to_dict(), default=str),
        "glb_keys": json.dumps(keys), "mesh_axes": "x east, y north, z up (absolute height); metres, x/y from (origin_x, origin_y)",
    }]).astype({"storeys": "Int64"})  # an integer column even when the storeys are unknown (null)


def _id_state(store, bid: str) -> dict:
    """What the store holds under building id ``bid``: whether the ``buildings`` layer has it, its
    ``bim_buildings`` row (file, glTF keys), how many ``bim_elements`` rows and which glTF blobs."""
    where = {"building_id": bid}
    in_layer = bool(store.has_layer("buildings") and
                    len(store.read_layer("buildings", where=where, columns=["building_id"])))
    summary = None
    if store.has_table(SUMMARY_TABLE):
        rows = store.read_table(SUMMARY_TABLE, where=where, columns=["file", "glb_keys"])
        if len(rows):
            summary = {"file": rows["file"].iloc[0], "glb_keys": rows["glb_keys"].iloc[0]}
    elements = store.count_rows(ELEMENT_TABLE, where=where) if store.has_table(ELEMENT_TABLE) else 0
    blobs = store.list_blobs(f"bim/{bid}/")["key"].tolist()
    return {"in_layer": in_layer, "summary": summary, "elements": int(elements), "blobs": blobs}


def _known(store) -> dict:
    """The store's building ids as :func:`_id_state` sees them, for all ids at once (a snapshot the worker
    processes of :func:`import_many` check their files' ids against before reading geometry)."""
    layer = set()
    if store.has_layer("buildings") and "building_id" in store.layer_info("buildings")["columns"]:
        layer = set(store.read_layer("buildings", columns=["building_id"])["building_id"].dropna().astype(str))
    summary = {}
    if store.has_table(SUMMARY_TABLE):
        t = store.read_table(SUMMARY_TABLE, columns=["building_id", "file", "glb_keys"])
        summary = {str(r.building_id): {"file": r.file, "glb_keys": r.glb_keys} for r in t.itertuples()}
    elements = {}
    if store.has_table(ELEMENT_TABLE):
        elements = {str(k): int(v) for k, v in
                    store.read_table(ELEMENT_TABLE, columns=["building_id"])["building_id"].value_counts().items()}
    blobs: dict[str, list] = {}
    for key in store.list_blobs("bim/")["key"]:
        blobs.setdefault(key.split("/")[1], []).append(key)
    return {"layer": layer, "summary": summary, "elements": elements, "blobs": blobs}


def _state_in(known: dict, bid: str) -> dict:
    return {"in_layer": bid in known["layer"], "summary": known["summary"].get(bid),
            "elements": known["elements"].get(bid, 0), "blobs": known["blobs"].get(bid, [])}


def _has_record(state: dict) -> bool:
    return bool(state["summary"] is not None or state["elements"] or state["blobs"])


def _is_stale(state: dict) -> bool:
    """A BIM record whose building had a footprint (a building glTF, or no summary row to say) but is no
    longer in the ``buildings`` layer: left behind when the layer was replaced."""
    if state["in_layer"] or not _has_record(state):
        return False
    s = state["summary"]
    return s is None or '"building"' in str(s["glb_keys"] or "")


def _record_text(state: dict) -> str:
    parts = []
    if state["summary"] is not None:
        parts.append("its bim_buildings row")
    if state["elements"]:
        parts.append(f"{state['elements']} bim_elements row(s)")
    if state["blobs"]:
        parts.append(f"{len(state['blobs'])} glTF blob(s)")
    return ", ".join(parts)


def _refuse_taken(bid: str, state: dict, replace: bool) -> None:
    """Raise a :class:`~twin_core.errors.StoreError` saying what holds ``bid`` and what to do, unless the id is
    free or ``replace`` is set."""
    from twin_core.errors import StoreError

    if replace or not (state["in_layer"] or _has_record(state)):
        return
    delete = f"delete_building(store, {bid!r}) (CLI: twin bim delete STORE {bid})"
    if _is_stale(state):
        raise StoreError(
            f"building {bid!r} has a stale BIM record in the store ({_record_text(state)}"
            + (f", from {state['summary']['file']}" if state["summary"] else "")
            + "), but the building is no longer in the 'buildings' layer: the layer was replaced since the import "
            "(e.g. by `twin import STORE FILE --class buildings`). Import the model again with replace=True "
            f"(CLI: twin bim import STORE MODEL.ifc --replace), which replaces the stale record, or remove the "
            f"record with {delete}")
    if _has_record(state):
        raise StoreError(
            f"building {bid!r} is already in the store"
            + (f" (imported from {state['summary']['file']})" if state["summary"] else "")
            + "; to put this model in its place pass replace=True (CLI: --replace), to import it as another "
            f"building pass building_id= (CLI: --building-id ID), or remove the earlier import with {delete}")
    raise StoreError(
        f"building {bid!r} is already in the store: the 'buildings' layer has a building of that id, not one "
        "imported from IFC; pass building_id= (CLI: --building-id ID) to import the model under another id, or "
        "replace=True (CLI: --replace) to replace that building with the model")


def _check_known(known: dict, replace: bool, bid: str) -> None:
    _refuse_taken(bid, _state_in(known, bid), replace)


def _check_live(store, replace: bool, bid: str) -> None:
    _refuse_taken(bid, _id_state(store, bid), replace)


def _drop_feature(store, bid: str) -> int:
    """Remove building ``bid`` from the ``buildings`` layer (inside the caller's transaction): its features only
    (:meth:`~cim.store.base.Store.delete_features`), not a rewrite of the whole layer, whose time moves on so that
    runs made before are marked stale."""
    return store.delete_features("buildings", "building_id", [bid])


def _remove(store, bid: str, state: dict) -> dict:
    """Remove everything ``state`` found under ``bid`` (inside the caller's transaction)."""
    n_feature = _drop_feature(store, bid) if state["in_layer"] else 0
    n_rows = store.delete_rows(ELEMENT_TABLE, {"building_id": bid}) if state["elements"] else 0
    if state["summary"] is not None:
        store.delete_rows(SUMMARY_TABLE, {"building_id": bid})
    for key in state["blobs"]:
        store.delete_blob(key)
    return {"building_id": bid, "feature": n_feature, "elements": int(n_rows),
            "summary": state["summary"] is not None, "blobs": len(state["blobs"]),
            "file": state["summary"]["file"] if state["summary"] else None}


def _layer_has_z(store, name: str) -> bool | None:
    """Whether layer ``name``'s geometries carry Z (None: the layer is empty)."""
    import shapely

    head = store.read_layer(name, limit=1)
    if not len(head):
        return None
    return bool(shapely.has_z(head.geometry.values[0]))


def write_building(store, b, *, replace: bool = False) -> dict:
    """Write one prepared :class:`~bim_import.building.Building` into ``store`` atomically.

    ``replace``: an earlier import of the same building id (its ``buildings`` feature, element rows, summary
    row and glTF blobs, a stale record left by a replaced layer too) is removed in the same transaction; a
    ``buildings`` feature of that id not imported from IFC is replaced as well. Without it such an id is
    refused with a :class:`~twin_core.errors.StoreError` saying what holds it and what to do.

    Into a 3D ``buildings`` layer (footprints with Z) the footprint goes with Z = the building's ground
    elevation (``ground_elev_m``).
    """
    keys = b.blob_keys()
    if b.feature is not None and store.has_layer("parcels") and b.feature["parcel_id"].isna().all():
        # the parcel the building stands on, if the city model has parcels
        c = b.footprint.representative_point()
        parcels = store.read_layer("parcels", bbox=(c.x - 1, c.y - 1, c.x + 1, c.y + 1), columns=["parcel_id"])
        hit = parcels[parcels.geometry.contains(c)]
        if len(hit):
            b.feature = b.feature.assign(parcel_id=str(hit["parcel_id"].iloc[0]))
    with store.transaction():
        # the summary row is written for every import, with or without a footprint
        state = _id_state(store, b.building_id)
        _refuse_taken(b.building_id, state, replace)
        if replace and (state["in_layer"] or _has_record(state)):
            b.summary["replaced"] = _remove(store, b.building_id, state)
        if b.feature is not None:
            feature, mode = b.feature, "replace"
            if store.has_layer("buildings"):
                has_z = _layer_has_z(store, "buildings")
                mode = "replace" if has_z is None else "append"
                if has_z:  # a 3D layer: the footprint at the building's ground elevation
                    import shapely

                    feature = feature.set_geometry(shapely.force_3d(feature.geometry.values, z=b.ground_elev_m),
                                                   crs=feature.crs)
            store.write_layer("buildings", feature, mode=mode)
        store.write_table(ELEMENT_TABLE, b.elements, mode="append" if store.has_table(ELEMENT_TABLE) else "replace")
        store.write_table(SUMMARY_TABLE, _summary_row(b, keys),
                          mode="append" if store.has_table(SUMMARY_TABLE) else "replace")
        if b.glb:
            store.put_blob(keys["building"], b.glb, mime="model/gltf-binary", layer="buildings", feature_id=b.building_id)
        for name, blob in b.storey_glb.items():
            store.put_blob(keys[f"storey:{name}"], blob, mime="model/gltf-binary", layer="buildings",
                           feature_id=b.building_id)
    return keys


def delete_building(store, building_id: str) -> dict:
    """Remove an imported BIM building from ``store`` in one transaction: its ``buildings`` feature, its
    ``bim_elements`` and ``bim_buildings`` rows and its glTF blobs (or what is left of them: a stale record
    whose feature went with a replaced layer). Returns what went.

    Raises
    ------
    StoreError
        No BIM building of that id (the message lists those there are), or a ``buildings`` feature of that id
        that was not imported from IFC (edit the layer instead).

    Examples
    --------
    >>> delete_building(store, "bim-2hQBAVPOr5VxhS3Jl0O47h")  # doctest: +SKIP
    {'building_id': 'bim-2hQBAVPOr5VxhS3Jl0O47h', 'feature': 1, 'elements': 123, 'summary': True, 'blobs': 3, ...}
    """
    from twin_core.errors import StoreError

    with store.transaction():
        state = _id_state(store, building_id)
        if not _has_record(state):
            if state["in_layer"]:
                raise StoreError(f"building {building_id!r} in the 'buildings' layer was not imported from IFC (no "
                                 "bim_buildings record): edit the layer itself (e.g. in a scenario, or import the "
                                 "layer again) to remove it")
            have = (store.read_table(SUMMARY_TABLE, columns=["building_id"])["building_id"].tolist()
                    if store.has_table(SUMMARY_TABLE) else [])
            raise StoreError(f"no imported BIM building {building_id!r} in the store; "
                             + (f"imported ones: {', '.join(map(str, have[:10]))}"
                                + (f" and {len(have) - 10} more" if len(have) > 10 else "") if have else
                                "none has been imported (twin bim import STORE MODEL.ifc)"))
        return _remove(store, building_id, state)


def ground_height(store, x: float, y: float) -> float | None:
    """The twin's terrain height (its ``dem`` raster's cell value) at ``x, y`` in the store's CRS, as the map's
    "Pick site" takes it; None where the twin has no DEM, or it does not cover the point (or has no value there)."""
    import numpy as np

    if store is None or not store.has_raster("dem"):
        return None
    b = store.raster_info("dem").get("bounds")
    if b and not (b[0] <= x <= b[2] and b[1] <= y <= b[3]):
        return None
    r = store.read_raster("dem", bounds=(x - 0.01, y - 0.01, x + 0.01, y + 0.01))
    v = np.ma.filled(np.ma.masked_invalid(np.ma.asarray(r.masked(), dtype=float)), np.nan).ravel()
    v = v[np.isfinite(v)]
    return float(v[0]) if len(v) else None


def _ground_anchor(store, anchor):
    """``anchor`` with its height taken from the twin's DEM where the caller gave none (``Anchor(x, y)``,
    ``--anchor X,Y``), and a note of where the height came from (None without an anchor)."""
    from bim_import.georef import Anchor
    from twin_core.errors import TwinWarning, twin_warn

    if anchor is None:
        return None, None
    if anchor.z_given:
        return anchor, {"z": float(anchor.z), "source": "anchor"}
    if store is None or not store.has_raster("dem"):
        return anchor, {"z": float(anchor.z), "source": "default",
                        "text": "height 0 (the twin has no DEM; give the height as the anchor's Z: X,Y,Z)"}
    x, y = float(anchor.x), float(anchor.y)
    scrs = getattr(store, "crs", None)
    if anchor.crs is not None and scrs:
        from pyproj import CRS, Transformer

        if not CRS.from_user_input(anchor.crs).equals(CRS.from_user_input(scrs)):
            x, y = Transformer.from_crs(anchor.crs, scrs, always_xy=True).transform(x, y)
    z = ground_height(store, x, y)
    if z is None:
        twin_warn(f"the anchor ({anchor.x}, {anchor.y}) is outside the twin's terrain (its DEM) or on a cell "
                  "without a value, so the model's 0.00 level is put at height 0; give its height as the anchor's Z "
                  "(anchor=Anchor(x, y, z), CLI: --anchor X,Y,Z)", TwinWarning, stacklevel=3)
        return anchor, {"z": 0.0, "source": "default",
                        "text": "height 0 (the anchor is outside the twin's DEM; give it as the anchor's Z: X,Y,Z)"}
    return (Anchor(anchor.x, anchor.y, z, anchor.rotation_deg, anchor.crs),
            {"z": z, "source": "dem", "text": f"height {z:.2f} m, the twin's DEM at the anchor (an anchor X,Y,Z "
                                              "sets it)"})


def _note_placement(b, note) -> None:
    """Keep, in ``b.summary["anchor_z"]``, where the anchor's height came from, when the anchor placed it."""
    if note is not None and b.georef.method == "anchor":
        b.summary["anchor_z"] = note


def _store_crs(store, twin_crs):
    if twin_crs is not None:
        return twin_crs
    crs = getattr(store, "crs", None)
    return crs or "EPSG:4544"


def import_ifc(path, store=None, *, twin_crs: str | None = None, anchor=None, building_id: str | None = None,
               use: str | None = None, method: str = "auto", replace: bool = False):
    """Import one IFC file; write it into ``store`` if given. Returns the Building.

    Parameters
    ----------
    anchor : Anchor, optional
        Where to put a model without (usable) georeferencing. Without a height (``Anchor(x, y)``) it stands on
        the twin's terrain: the DEM's height under ``x, y`` (``b.summary["anchor_z"]`` says so).
    building_id : str, optional
        Default ``"bim-" + IfcBuilding GlobalId``.
    replace : bool
        Replace an earlier import of the same building id (see :func:`write_building`); without it, a taken id
        is refused before the model's geometry is read.

    Examples
    --------
    >>> from cim import open_store                                       # doctest: +SKIP
    >>> from bim_import import import_ifc                                # doctest: +SKIP
    >>> b = import_ifc("house.ifc", open_store("city.gpkg"))             # doctest: +SKIP
    """
    from cim.store import open_store

    own = store is not None and not hasattr(store, "transaction")
    st = open_store(store) if own else store
    try:
        anchor, note = _ground_anchor(st, anchor)
        check = functools.partial(_check_live, st, replace) if st is not None else None
        b = prepare_building(os.fspath(path), _store_crs(st, twin_crs), anchor=anchor, building_id=building_id,
                             use=use, method=method, check=check)
        _note_placement(b, note)
        if st is not None:
            write_building(st, b, replace=replace)
    finally:
        if own:
            st.close()
    return b


def _work(args):
    path, crs, anchor, method, building_id, check = args
    try:
        b = prepare_building(path, crs, anchor=anchor, method=method, building_id=building_id, check=check)
        b.model = None  # the meshes stay in the worker: the parent needs the blobs and tables only
        return path, b, None
    except TwinError as exc:
        return path, None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a worker crash must not lose the other files
        return path, None, f"{type(exc).__name__}: {exc}"


_PRELOAD = ["bim_import.importer", "bim_import.building", "bim_import.model", "ifcopenshell", "ifcopenshell.geom",
            "ifcopenshell.util.element", "pandas", "geopandas", "pyproj", "shapely"]


def _mp_context():
    """A forkserver whose server has imported ifcopenshell, pandas & co once.

    Workers fork from it in milliseconds instead of re-importing everything
    (spawn), and unlike a plain fork they never inherit the caller's threads
    (a progress bar's refresher, a web server's pool).
    """
    import multiprocessing as mp

    try:
        ctx = mp.get_context("forkserver")
    except ValueError:  # pragma: no cover - platforms without fork
        return mp.get_context("spawn")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def import_many(paths: Sequence, store=None, *, twin_crs: str | None = None, anchor=None, method: str = "auto",
                workers: int | None = None, progress: Callable[[float, float], None] | None = None,
                building_id: str | None = None, replace: bool = False) -> ImportSummary:
    """Import many IFC files, one process per file, each written atomically.

    A file that fails is listed in ``summary.errors`` and the others go on. A file whose building id is taken
    in ``store`` (unless ``replace``) or that cannot be placed fails before its geometry is read. ``anchor``,
    ``building_id`` (one file only) and ``replace`` as in :func:`import_ifc`.
    """
    from cim.store import open_store

    if building_id is not None and len(paths) != 1:
        raise TwinError(f"building_id (CLI: --building-id) names one building: import one file with it, not "
                        f"{len(paths)}")
    own = store is not None and not hasattr(store, "transaction")
    st = open_store(store) if own else store
    try:
        return _import_many(paths, st, twin_crs=twin_crs, anchor=anchor, method=method, workers=workers,
                            progress=progress, building_id=building_id, replace=replace)
    finally:
        if own:
            st.close()


def _import_many(paths, st, *, twin_crs, anchor, method, workers, progress, building_id=None,
                 replace=False) -> ImportSummary:
    crs = _store_crs(st, twin_crs)
    paths = [os.fspath(p) for p in paths]
    workers = workers or min(len(paths), os.cpu_count() or 1) or 1
    t0 = time.perf_counter()
    summary = ImportSummary()
    done = 0
    if progress:
        progress(0, len(paths))
    anchor, note = _ground_anchor(st, anchor)
    inline = workers <= 1 or len(paths) <= 1
    # each file's building id is checked before its geometry is read (write_building checks again, in its
    # transaction): in this process against the store, in worker processes against a snapshot of its ids
    check = None
    if st is not None and paths:
        check = (functools.partial(_check_live, st, replace) if inline else
                 functools.partial(_check_known, _known(st), replace))

    def handle(path, b, err):
        nonlocal done
        if err is None:
            try:
                _note_placement(b, note)
                if st is not None:
                    write_building(st, b, replace=replace)
                summary.files.append({k: b.summary[k] for k in ("building_id", "file", "elements", "with_geometry",
                                                                 "failed", "height_m", "storeys", "gfa_m2")}
                                     | {"seconds": b.summary["timings"]["total"], "ground_elev_m": b.ground_elev_m,
                                        "georef_method": b.georef.method}
                                     | {k: b.summary[k] for k in ("anchor_z", "replaced") if k in b.summary})
            except TwinError as exc:
                summary.errors.append({"file": path, "error": f"{type(exc).__name__}: {exc}"})
        else:
            summary.errors.append({"file": path, "error": err})
        done += 1
        if progress:
            progress(done, len(paths))

    jobs = [(p, crs, anchor, method, building_id, check) for p in paths]
    if inline:
        for j in jobs:
            handle(*_work(j))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as ex:
            futs = {ex.submit(_work, j): j[0] for j in jobs}
            for fut in as_completed(futs):
                try:
                    res = fut.result()
                except Exception as exc:  # a worker died (out of memory, a crash in native code)
                    res = (futs[fut], None, f"worker process failed: {type(exc).__name__}: {exc}")
                handle(*res)
    summary.seconds = time.perf_counter() - t0
    return summary


def query_elements(store, *, building_id: str | None = None, ifc_class: str | None = None,
                   storey: str | None = None, properties: dict | None = None):
    """Elements imported into ``store``, filtered by building, class, storey and property values.

    ``properties`` maps ``"Pset.Property"`` to the wanted value (property and
    quantity sets alike), e.g. ``{"Pset_WallCommon.IsExternal": True}``. The
    result has one extra column per property asked for.

    Examples
    --------
    >>> query_elements(store, ifc_class="IfcWall", properties={"Pset_WallCommon.IsExternal": True})  # doctest: +SKIP
    """
    import json

    from twin_core.errors import FieldError

    where = {k: v for k, v in (("building_id", building_id), ("ifc_class", ifc_class), ("storey", storey))
             if v is not None}
    df = store.read_table(ELEMENT_TABLE, where=where or None)
    for key, want in (properties or {}).items():
        if "." not in key:
            raise FieldError(f"property {key!r} must be written 'Pset_Name.PropertyName'")
        pset, prop = key.split(".", 1)

        def get(row, pset=pset, prop=prop):
            for col in ("psets", "qsets"):
                d = json.loads(row[col] or "{}")
                if pset in d and prop in d[pset]:
                    return d[pset][prop]
            return None

        df = df.assign(**{key: df.apply(get, axis=1) if len(df) else []})
        df = df[df[key] == want]
    return df.reset_index(drop=True)
