"""Write a stored result (a run's raster, table, array or summary) to a file a GIS or a spreadsheet opens.

What each kind of result can become (the extension picks the format):

- a **raster** (flood ``max_depth``, ``hazard``, crowd ``max_density``, ``sunlight_hours`` ...): GeoTIFF
  (``.tif``), optionally reprojected;
- a **layer** (traffic ``link_flows``, ``comparison`` ...): any vector format of
  :data:`cim.io.vector.EXPORT_FORMATS`, or ``.csv`` (UTF-8) with the geometry as WKT (column ``geometry``);
- a **table**: ``.csv`` (UTF-8) or ``.parquet``; or a vector format when its rows can be placed on the map:
  rows that name a feature of a twin layer by its id (``building_id``, ``link_id``, ``poi_id`` ... as in
  ``exposure_buildings``, ``access_buildings``) get that feature's geometry, as of the run's scenario, and
  rows with ``x`` and ``y`` columns become points;
- an **array**: ``.npy``; or a multi-band GeoTIFF when the run stored its grid beside it (flood
  ``depth_snapshots``, crowd ``density``): one band per snapshot, the band's time in its description;
- a **summary** (JSON): ``.json``.

Examples
--------
>>> from twin_core.adapters.results_export import formats_for
>>> formats_for("raster")
['.tif']
>>> formats_for("table")
['.csv', '.parquet']
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from twin_core.errors import ImportFormatError, StoreError

__all__ = ["export_result", "formats_for", "find_run", "find_result", "StoredResult", "placeable", "array_grid",
           "ArrayGrid", "read_stack", "KIND_WORDS"]

_TIF = (".tif", ".tiff")


KIND_WORDS = {"raster": "raster", "layer": "map layer", "table": "table", "array": "array",
              "json": "summary (JSON)"}


def formats_for(kind: str, georeferenced: bool = False) -> list[str]:
    """The file extensions a result of ``kind`` can be written to; ``georeferenced``: an array stored with
    its grid, or a table whose rows can be placed on the map (see :func:`placeable`)."""
    from cim.io.vector import EXPORT_FORMATS

    vector = sorted(EXPORT_FORMATS)
    return {
        "raster": [".tif"],
        "layer": vector + ([".csv"] if ".csv" not in vector else []),
        "table": [".csv", ".parquet"] + ([v for v in vector if v != ".parquet"] if georeferenced else []),
        "array": [".npy"] + ([".tif"] if georeferenced else []),
        "json": [".json"],
    }.get(kind, [])


#: where a user finds the stored runs, from Python and from the command line
_RUNS_HINT = "twin.runs() (CLI: `twin runs`) lists the runs"


def find_run(twin, run: str, scenario: str | None = None, *, arg: str = "scenario", option: str = "--scenario",
             meta: dict | None = None) -> str:
    """The scenario that holds ``run`` (``scenario`` when given and it is there); a clear error otherwise: the
    scenario(s) the run is under, or the run id closest to a mistyped one. ``arg`` and ``option`` name the
    scenario's argument and CLI option in that error (``twin compare`` has ``--scenario-a``, ``--scenario-b``).
    ``meta``: the store's :meth:`~cim.store.base.Store.get_meta` when the caller read it already (the results
    index is then not read again), as :func:`cim.results.list_results` takes it."""
    from cim.results import list_results
    from cim.scenario import did_you_mean, normalise_scenario_name
    from twin_core.errors import LayerNotFoundError

    idx = list_results(twin.store, meta=meta)
    where = sorted(set(idx.loc[idx["run"] == run, "scenario"]))
    if scenario is not None:
        scen = normalise_scenario_name(scenario)
        if scen in where:
            return scen
        hint = (f"it is under scenario {where[0]!r}" if len(where) == 1 else
                f"it is under the scenarios {where}" if where else
                f"no scenario has it{did_you_mean(run, sorted(set(idx['run'])))}")
        raise LayerNotFoundError(f"no run {run!r} under scenario {scen!r}: {hint}; {_RUNS_HINT}")
    if not where:
        runs = sorted(set(idx["run"]))
        raise LayerNotFoundError(f"no run {run!r} in this twin{did_you_mean(run, runs)}; "
                                 + (_RUNS_HINT if runs else "it holds no runs yet"))
    if len(where) > 1:
        raise LayerNotFoundError(f"run {run!r} is under several scenarios {where}; name one: {arg}="
                                 f"{where[0]!r} (CLI: {option} {where[0]})")
    return where[0]


class StoredResult(NamedTuple):
    """One stored result, as :func:`find_result` finds it: where it is, what it is and what it was made with."""

    scenario: str
    run: str
    name: str
    kind: str  #: raster, layer, table, array or json
    ref: str  #: the layer/table/raster it is stored as
    meta: dict


def find_result(twin, run: str, name: str | None = None, scenario: str | None = None, *,
                default=None) -> StoredResult:
    """Result ``name`` of ``run`` (under ``scenario``; None: wherever the run is), as ``twin.view(result=...)``,
    :meth:`Twin.snapshots <twin_core.twin.Twin.snapshots>`, :func:`export_result` and ``twin export`` look it
    up, with the same errors: the run's scenario or the close run id (:func:`find_run`), the close result name
    and the run's results.

    ``name`` None: ``default(names)`` picks it from the run's result names (sorted), raising its own error when
    none fits.
    """
    from cim.results import list_results
    from cim.scenario import did_you_mean
    from twin_core.errors import LayerNotFoundError

    scen = find_run(twin, run, scenario)
    rows = list_results(twin.store, scenario=scen, run=run)
    names = sorted(rows["name"])
    if name is None:
        if default is None:
            raise TypeError("find_result needs a result name or default=, a function that picks one")
        name = default(names)
    hit = rows[rows["name"] == name]
    if not len(hit):
        raise LayerNotFoundError(f"run {run!r} has no result {name!r}{did_you_mean(name, names)}; "
                                 f"its results: {', '.join(names)}")
    row = hit.iloc[0]
    return StoredResult(scen, run, name, row["kind"], row["ref"], row["meta"] if isinstance(row["meta"], dict) else {})


def export_result(twin, run: str, name: str, path: str | os.PathLike, *, scenario: str | None = None,
                  crs=None) -> Path:
    """Write result ``name`` of ``run`` (under ``scenario``; None: wherever the run is) to ``path``.

    ``crs`` reprojects rasters and map layers (GeoJSON defaults to EPSG:4326, per RFC 7946). The
    extension picks the format; see the module docstring for what each kind of result can become.
    Refused with a clear error: a format the result cannot take, a path that is a folder, the twin's
    own file.
    """
    entry = find_result(twin, run, name, scenario)
    scen, kind, meta = entry.scenario, entry.kind, entry.meta
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".tiff":
        ext = ".tif"
    elif p.name.lower().endswith((".city.json", ".cityjson")):
        ext = ".cityjson"
    if p.is_dir():
        raise ImportFormatError(f"{p} is a folder; give the path of the file to write, e.g. {p / name}"
                                f"{formats_for(kind)[0] if formats_for(kind) else ''}")
    if _same_file(twin, p):
        raise ImportFormatError(f"{p} is the twin's own store; export to another file")
    grid = array_grid(twin, scen, run, name, meta) if kind == "array" else None
    ok = formats_for(kind, georeferenced=grid is not None or (kind == "table" and placeable(twin, entry.ref)))
    if ext not in ok:
        why = ""
        if kind == "array" and ext in _TIF:
            why = " (this array was stored without its grid, so it cannot be placed on the map)"
        elif kind == "table" and ext in formats_for("layer"):
            why = " (its rows have no x/y columns and name no feature of a twin layer, so they have no geometry)"
        raise ImportFormatError(f"result {name!r} of run {run!r} is a {KIND_WORDS.get(kind, kind)}; it cannot be "
                                f"written as {ext or 'a file without an extension'}{why}; use one of {', '.join(ok)}")
    obj = twin.load_result(scen, run, name)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "raster":
            from cim.io.raster import export_raster, reproject_raster

            export_raster(reproject_raster(obj, crs) if crs is not None else obj, p)
        elif kind == "layer" and ext == ".csv":  # a spreadsheet's table: the geometry as WKT text
            out = obj.to_crs(crs) if crs is not None and obj.crs is not None else obj
            pd.DataFrame(out.drop(columns=out.geometry.name)).assign(
                geometry=out.geometry.to_wkt().to_numpy()).to_csv(p, index=False, encoding="utf-8")
        elif kind == "layer":
            from cim.io.vector import write_frame

            write_frame(_inf_for(obj, ext), p, layer=name, crs=crs)
        elif kind == "table":
            _write_table(twin, scen, run, name, obj, p, ext, crs)
        elif kind == "array":
            _write_array(obj, p, ext, grid, name, **_array_nodata(twin, scen, run, name, meta, obj, ext))
        else:
            with open(p, "w", encoding="utf-8") as fh:
                json.dump(obj, fh, ensure_ascii=False, indent=2)
                fh.write("\n")
    except OSError as exc:
        raise StoreError(f"cannot write {p}: {exc.strerror or exc}; check that its folder can be created "
                         "and that you may write there") from exc
    return p


def _same_file(twin, p: Path) -> bool:
    from cim.store import is_dsn

    uri = str(twin.store.uri)
    return not is_dsn(uri) and p.exists() and os.path.exists(uri) and os.path.samefile(uri, p)


def _write_table(twin, scen, run, name, df: pd.DataFrame, p: Path, ext: str, crs) -> None:
    if ext == ".csv":
        df.to_csv(p, index=False, encoding="utf-8")
        return
    if ext == ".parquet" and not _placeable_columns(twin, df.columns):
        df.to_parquet(p, index=False)
        return
    from cim.io.vector import write_frame

    gdf = _place(twin, scen, run, name, df)
    write_frame(_inf_for(gdf, ext), p, layer=name, crs=crs)


#: a column whose infinity has a name of its own in GeoJSON (see :func:`_inf_for`)
_INF_FLAGS = {"closed_until_s": "closed_to_end"}


def _inf_for(gdf, ext: str):
    """``gdf`` as GeoJSON can hold it: JSON has no infinity, and GDAL left the key out of the feature (a road the
    flood closed for good, ``closed_until_s`` inf, read as one with no closure end). A float column's inf
    becomes null and a boolean column beside it says where it was: ``closed_to_end`` for ``closed_until_s``
    (there for every link when the column is, False where the closure ends or there is none),
    ``<column>_infinite`` (or ``_minus_infinite``) for any other. Other formats keep inf as it is."""
    from cim.io.vector import EXPORT_FORMATS

    if EXPORT_FORMATS.get(ext) != "GeoJSON":
        return gdf
    out = gdf
    for c in list(gdf.columns):
        if c == gdf.geometry.name or not pd.api.types.is_float_dtype(gdf[c]):
            continue
        v = gdf[c].to_numpy(dtype=float)
        pos, neg = np.isposinf(v), np.isneginf(v)
        if not (pos.any() or neg.any() or c in _INF_FLAGS):
            continue
        out = gdf.copy() if out is gdf else out
        out[c] = np.where(pos | neg, np.nan, v)
        out[_INF_FLAGS.get(c, f"{c}_infinite")] = pos
        if neg.any():
            out[f"{c}_minus_infinite"] = neg
    return out


def placeable(twin, ref: str) -> bool:
    """Whether the stored table ``ref``'s rows can be placed on the map: x/y columns, or a twin layer's id."""
    return _placeable_columns(twin, twin.store.read_table(ref, limit=0).columns)


def _placeable_columns(twin, columns) -> bool:
    return {"x", "y"} <= set(columns) or _id_layer(twin, columns) is not None


def _id_layer(twin, columns):
    """(layer, id field) of the first twin layer whose id field is among ``columns``, else None."""
    from cim.schema import FEATURE_CLASSES

    layers = set(twin.layers())
    for layer, fc in FEATURE_CLASSES.items():
        if fc.id_field != "fid" and fc.id_field in columns and layer in layers:
            return layer, fc.id_field
    return None


def _place(twin, scen, run, name, df: pd.DataFrame):
    """The table as a GeoDataFrame: each row with its feature's geometry (by id) or its x/y point."""
    import geopandas as gpd

    hit = _id_layer(twin, df.columns)
    if hit is not None:
        layer, key = hit
        feats = twin.layer(layer, scenario=None if scen == "base" else scen, columns=[key])
        feats = feats.drop_duplicates(key)
        out = df.merge(feats[[key, "geometry"]], on=key, how="left")
        missing = int(out["geometry"].isna().sum())
        if missing:
            from twin_core.errors import TwinWarning, twin_warn

            twin_warn(f"{missing} of {len(out)} rows of {name!r} name a {layer} feature the scenario no longer has; "
                      "they are written without geometry", TwinWarning, stacklevel=4)
        return gpd.GeoDataFrame(out, geometry="geometry", crs=twin.crs)
    if {"x", "y"} <= set(df.columns):
        return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["x"], df["y"]), crs=twin.crs)
    raise ImportFormatError(f"result {name!r} of run {run!r} is a table with no geometry (no x/y columns and no "
                            "feature id of a twin layer); write it as .csv or .parquet")


class ArrayGrid(NamedTuple):
    """Where an array result's cells lie: the north-up ``transform`` and ``crs`` of its grid, ``times_s`` of its
    bands (or None) and ``south_first``: True when the stored rows run from the south (a crowd's ``density``)."""

    transform: object
    crs: str
    times_s: list | None
    south_first: bool


def array_grid(twin, scen: str, run: str, name: str, meta: dict) -> ArrayGrid | None:
    """The grid of array result ``name`` of ``run`` under scenario ``scen``, None when it was stored without one.

    The grid is kept in the array's own meta (``meta``: ``twin.results()``'s column): ``transform`` (north-up,
    6 numbers), ``crs`` (without it: the twin's, which results are saved in) and ``snapshot_times_s``: a
    flood's ``depth_snapshots``, and a crowd's ``density`` since 2026-12-05. A crowd's ``density`` stored
    before kept its grid in the run's summary instead (``density_grid``: x0, y0, cell, nx, ny, rows from the
    south; ``density_times_s``): read as well."""
    from affine import Affine

    meta = meta if isinstance(meta, dict) else {}
    if isinstance(meta.get("transform"), list) and len(meta["transform"]) >= 6:
        return ArrayGrid(Affine(*meta["transform"][:6]), meta.get("crs") or twin.crs, meta.get("snapshot_times_s"),
                         False)
    if name == "density":
        try:
            summary = twin.load_result(scen, run, "summary")
        except Exception:  # noqa: BLE001 - no summary: no grid
            return None
        g = (summary or {}).get("density_grid") if isinstance(summary, dict) else None
        if isinstance(g, dict) and {"x0", "y0", "cell", "ny"} <= set(g):
            top = g["y0"] + g["ny"] * g["cell"]
            return ArrayGrid(Affine(g["cell"], 0.0, g["x0"], 0.0, -g["cell"], top), twin.crs,
                             summary.get("density_times_s"), True)
    return None


def read_stack(twin, found: StoredResult, unit: str | None = None):
    """The stack of grids over time that the stored array ``found`` holds (:func:`find_result`; a flood's
    ``depth_snapshots``, a crowd's ``density``) as a :class:`cim.raster.RasterStack`: rows from the north
    (an older crowd run's, stored from the south, are turned), its grid (:func:`array_grid`) and the time of each
    snapshot. :meth:`Twin.snapshots <twin_core.twin.Twin.snapshots>`, ``twin.view(result=..., time=...)`` and
    the flood cascades (:func:`twin_core.adapters.flood.load_depth_snapshots`) read stacks through this.
    ``unit``: the data's (default: the meta's ``unit``). A RasterError when it is no such stack."""
    from cim.raster import RasterStack
    from twin_core.errors import RasterError

    scen, run, name = found.scenario, found.run, found.name
    grid = array_grid(twin, scen, run, name, found.meta) if found.kind == "array" else None
    if grid is None:
        raise RasterError(f"result {name!r} of run {run!r} is a {found.kind} stored without a grid, not "
                          f"a stack of snapshots; twin.load_result({scen!r}, {run!r}, {name!r}) gives it as stored")
    data = twin.load_result(scen, run, name)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise RasterError(f"result {name!r} of run {run!r} has shape {data.shape}, not (times, rows, cols)")
    if grid.south_first:
        data = data[:, ::-1, :]
    if grid.times_s is None or len(grid.times_s) != len(data):
        raise RasterError(f"result {name!r} of run {run!r} was stored without a time for each of its "
                          f"{len(data)} snapshots; twin.load_result({scen!r}, {run!r}, {name!r}) gives the array")
    return RasterStack(np.ascontiguousarray(data), grid.transform, grid.crs, np.asarray(grid.times_s, float),
                       unit=unit or found.meta.get("unit"), name=name, meta={"scenario": scen, "run": run})


#: the unit of a stack of snapshots by its name, when its meta names none (as Twin.snapshots reads them)
_STACK_UNITS = {"depth_snapshots": "m", "density": "persons/m2"}
_NODATA = -9999.0  # as the flood's rasters (max_depth ...) are saved


def _array_nodata(twin, scen: str, run: str, name: str, meta: dict, a: np.ndarray, ext: str) -> dict:
    """How a stack of snapshots is written as GeoTIFF: its unit (the meta's, else by its name), and for a
    flood's ``depth_snapshots`` the cells with no data: those its run's ``max_depth`` marks nodata (buildings
    burned in as blocked, DEM holes: the engine keeps them at depth 0, which read as dry ground), and NaN,
    written as -9999 like ``max_depth``."""
    if ext not in _TIF:
        return {}
    out = {"unit": (meta or {}).get("unit") or _STACK_UNITS.get(name)}
    if name != "depth_snapshots":
        return out
    mask = None
    try:
        md = twin.load_result(scen, run, "max_depth")
    except Exception:  # noqa: BLE001 - a run saved without it: only NaN is nodata
        md = None
    if md is not None and np.shape(md.data) == np.shape(a)[-2:]:
        d = np.asarray(md.data, dtype=float)
        mask = ~np.isfinite(d) | ((d == md.nodata) if md.nodata is not None else False)
    out.update(nodata=_NODATA, mask=mask)
    return out


def _write_array(a: np.ndarray, p: Path, ext: str, grid, name: str, *, unit: str | None = None,
                 nodata: float | None = None, mask: np.ndarray | None = None) -> None:
    """``mask``: (rows, cols) cells with no data in every band (rows from the north), written as ``nodata``
    (with NaN, when ``nodata`` is given)."""
    if ext == ".npy":
        np.save(p, a, allow_pickle=False)
        return
    import rasterio

    transform, crs, times, south_first = grid
    bands = a[None] if a.ndim == 2 else a
    if bands.ndim != 3:
        raise ImportFormatError(f"result {name!r} has {a.ndim} dimensions; only 2-D grids and stacks of them "
                                "can be written as GeoTIFF; write it as .npy")
    if south_first:
        bands = bands[:, ::-1, :]
    bands = np.array(bands, dtype="float32")
    if nodata is not None:
        bands[~np.isfinite(bands)] = nodata
        if mask is not None:
            bands[:, mask] = nodata
    with rasterio.open(p, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=len(bands),
                       dtype="float32", crs=crs, transform=transform, compress="deflate", tiled=True,
                       nodata=nodata) as ds:
        ds.write(bands)
        for i in range(len(bands)):
            if times is not None and i < len(times):
                ds.set_band_description(i + 1, f"t={float(times[i]):g} s")
            if unit:
                ds.set_band_unit(i + 1, str(unit))
