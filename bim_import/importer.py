"""Import IFC files into a store: one file, or many in parallel.

Everything one import writes (building feature, element rows, glTF blobs,
the ``bim_buildings`` summary row) goes in one ``store.transaction()``, so a
failure leaves nothing half-written.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd

from twin_core.errors import TwinError

__all__ = ["import_ifc", "import_many", "prepare_building", "write_building", "query_elements", "ImportSummary",
           "ELEMENT_TABLE", "SUMMARY_TABLE"]

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


def prepare_building(path: str, twin_crs: str, *, anchor=None, building_id: str | None = None, use: str | None = None,
                     method: str = "auto", threads: int = 1):
    """Read + georeference + build one file (no store). Picklable result for worker processes."""
    from bim_import.building import build_building
    from bim_import.georef import georeference
    from bim_import.model import read_model

    t0 = time.perf_counter()
    model = read_model(path, threads=threads)
    t1 = time.perf_counter()
    c1 = time.process_time()
    g = georeference(model, twin_crs, anchor=anchor, method=method)
    b = build_building(model, g, building_id=building_id, use=use)
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


def write_building(store, b) -> dict:
    """Write one prepared :class:`~bim_import.building.Building` into ``store`` atomically."""
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
        bid = {"building_id": b.building_id}
        if (b.feature is not None and store.has_layer("buildings") and
                len(store.read_layer("buildings", where=bid, columns=["building_id"]))) or \
                (store.has_table(SUMMARY_TABLE) and store.count_rows(SUMMARY_TABLE, where=bid)):
            from twin_core.errors import StoreError

            raise StoreError(
                f"building {b.building_id!r} is already in the store; pass another building_id or delete it first"
            )
        if b.feature is not None:
            store.write_layer("buildings", b.feature, mode="append" if store.has_layer("buildings") else "replace")
        store.write_table(ELEMENT_TABLE, b.elements, mode="append" if store.has_table(ELEMENT_TABLE) else "replace")
        store.write_table(SUMMARY_TABLE, _summary_row(b, keys),
                          mode="append" if store.has_table(SUMMARY_TABLE) else "replace")
        if b.glb:
            store.put_blob(keys["building"], b.glb, mime="model/gltf-binary", layer="buildings", feature_id=b.building_id)
        for name, blob in b.storey_glb.items():
            store.put_blob(keys[f"storey:{name}"], blob, mime="model/gltf-binary", layer="buildings",
                           feature_id=b.building_id)
    return keys


def _store_crs(store, twin_crs):
    if twin_crs is not None:
        return twin_crs
    crs = getattr(store, "crs", None)
    return crs or "EPSG:4544"


def import_ifc(path, store=None, *, twin_crs: str | None = None, anchor=None, building_id: str | None = None,
               use: str | None = None, method: str = "auto"):
    """Import one IFC file; write it into ``store`` if given. Returns the Building.

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
        b = prepare_building(os.fspath(path), _store_crs(st, twin_crs), anchor=anchor, building_id=building_id,
                             use=use, method=method)
        if st is not None:
            write_building(st, b)
    finally:
        if own:
            st.close()
    return b


def _work(args):
    path, crs, anchor, method = args
    try:
        b = prepare_building(path, crs, anchor=anchor, method=method)
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
                workers: int | None = None, progress: Callable[[float, float], None] | None = None) -> ImportSummary:
    """Import many IFC files, one process per file, each written atomically.

    A file that fails is listed in ``summary.errors`` and the others go on.
    """
    from cim.store import open_store

    own = store is not None and not hasattr(store, "transaction")
    st = open_store(store) if own else store
    try:
        return _import_many(paths, st, twin_crs=twin_crs, anchor=anchor, method=method, workers=workers,
                            progress=progress)
    finally:
        if own:
            st.close()


def _import_many(paths, st, *, twin_crs, anchor, method, workers, progress) -> ImportSummary:
    crs = _store_crs(st, twin_crs)
    paths = [os.fspath(p) for p in paths]
    workers = workers or min(len(paths), os.cpu_count() or 1) or 1
    t0 = time.perf_counter()
    summary = ImportSummary()
    done = 0
    if progress:
        progress(0, len(paths))

    def handle(path, b, err):
        nonlocal done
        if err is None:
            try:
                if st is not None:
                    write_building(st, b)
                summary.files.append({k: b.summary[k] for k in ("building_id", "file", "elements", "with_geometry",
                                                                 "failed", "height_m", "storeys", "gfa_m2")}
                                     | {"seconds": b.summary["timings"]["total"]})
            except TwinError as exc:
                summary.errors.append({"file": path, "error": f"{type(exc).__name__}: {exc}"})
        else:
            summary.errors.append({"file": path, "error": err})
        done += 1
        if progress:
            progress(done, len(paths))

    jobs = [(p, crs, anchor, method) for p in paths]
    if workers <= 1 or len(paths) <= 1:
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
