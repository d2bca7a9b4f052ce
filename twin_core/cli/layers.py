"""``twin layers``, ``twin import``, ``twin import-raster``, ``twin export``."""

from __future__ import annotations

from typing import List, Optional

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, emit


def _parse_map(items: list[str] | None) -> dict[str, str]:
    from twin_core.errors import SchemaError

    out = {}
    for it in items or []:
        if "=" not in it:
            raise SchemaError(f"--map takes SOURCE=TARGET pairs, got {it!r}")
        src, dst = it.split("=", 1)
        out[src.strip()] = dst.strip()
    return out


#: an import-raster done within this many seconds prints no progress bar
_BAR_AFTER_S = 1.0


def _after(seconds: float, progress):
    """``progress``, called only from ``seconds`` on: an import done sooner prints its one line, not a bar too
    (the bar shows itself at ``seconds`` when the import runs on, see :func:`twin_core.progress.progress_bar`)."""
    import time

    start = time.monotonic()

    def report(done: float, total: float) -> None:
        if time.monotonic() - start >= seconds:
            progress(done, total)

    return report


def register(app: typer.Typer) -> None:
    @app.command("layers")
    def layers(target: str = STORE_ARG, as_json: bool = JSON_OPT,
               results: bool = typer.Option(False, "--results", help="Also list the tables that hold stored results "
                                            "(res_<hash>; `twin runs` says which run each belongs to).")) -> None:
        """List the city's layers with counts, geometry types and fields (result tables with --results)."""
        from cim.store import open_store

        with open_store(target) as store:
            names = store.list_layers()
            shown = names if results else [n for n in names if not n.startswith("res_")]
            infos = [store.layer_info(n) for n in shown]
            for i in infos:  # a 3D layer is MULTIPOLYGON Z, as GDAL and PostGIS name it (it showed MULTIPOLYGON)
                if i["count"] and i["geometry_type"] and not i["geometry_type"].upper().endswith(("Z", "ZM")):
                    first = store.read_layer(i["name"], columns=[], limit=1)
                    if len(first) and bool(first.geometry.has_z.iloc[0]):
                        i["geometry_type"] = f"{i['geometry_type']} Z"
        human = "\n".join(f"{i['name']:<14} {i['geometry_type']:<16} {i['count']:>9,}  {', '.join(i['columns'])}"
                          for i in infos) or "(no layers)"
        if len(shown) < len(names):  # the result tables' opaque names said nothing of their run (a user review)
            n = len(names) - len(shown)
            human += (f"\n({n} table{'s' if n != 1 else ''} of stored results left out: --results lists them, "
                      "`twin runs` shows the runs)")
        emit(infos, as_json, human=human)

    @app.command("import")
    def import_(
        target: str = STORE_ARG,
        path: str = typer.Argument(..., help="Vector file: GeoJSON, Shapefile, GeoPackage, GeoParquet ..., or a "
                                  "SUMO network (.net.xml[.gz], --class road_links)."),
        feature_class: str = typer.Option(..., "--class", "-c", help="Feature class: buildings, road_links, pois ..."),
        field_map: Optional[List[str]] = typer.Option(None, "--map", "-m", help="SOURCE=TARGET field mapping (repeat)."),
        drop: Optional[List[str]] = typer.Option(None, "--drop", help="Source field to leave out (repeat)."),
        crs: Optional[str] = typer.Option(None, help="CRS of a file that states none (no .prj, a GeoJSON without a crs member, a GeoPackage's undefined SRS), e.g. EPSG:4544; EPSG:4490 may also be declared on WGS 84 lon/lat."),
        source_layer: Optional[str] = typer.Option(None, "--layer", help="Layer inside a multi-layer file."),
        append: bool = typer.Option(False, help="Append instead of replacing the layer."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Import a vector file into a feature class, reprojected to the twin CRS (a SUMO network, *.net.xml[.gz],
        into road_links and road_nodes)."""
        from cim.io.vector import import_vector, is_sumo_net
        from cim.store import open_store

        if is_sumo_net(path):
            _import_sumo(target, path, feature_class, field_map, drop, crs, source_layer, append, as_json)
            return
        with open_store(target) as store:
            # what a replace removes: `twin import city.gpkg shelters.geojson --class pois` put 2 shelters in
            # place of every hospital, school and station, and said only "imported 2 features into pois"
            had = store.layer_info(feature_class)["count"] if not append and store.has_layer(feature_class) else 0
            n = import_vector(store, path, feature_class, field_map=_parse_map(field_map), crs=crs,
                              layer=source_layer, mode="append" if append else "replace", drop=drop)
        human = f"imported {n} features into {feature_class}"
        if had:
            human += f", replacing the {had:,} it had (--append adds to them instead)"
        emit({"layer": feature_class, "features": n}, as_json, human=human)

    @app.command("import-raster")
    def import_raster_(
        target: str = STORE_ARG,
        path: str = typer.Argument(..., help="GeoTIFF file."),
        # no default: it was dem, so a file imported without --name replaced the city's DEM
        name: Optional[str] = typer.Option(None, "--name", show_default=False,
                                           help="Raster name (required): dem (the terrain floods run on), manning, "
                                                "or a new name; a raster of that name is replaced."),
        crs: Optional[str] = typer.Option(None, help="CRS of a file that has none, e.g. EPSG:4544 (a file that states another is refused)."),
        unit: Optional[str] = typer.Option(None, help="Unit of the values, e.g. m (default: the file's band unit, "
                                                      "if it names one)."),
        band: Optional[int] = typer.Option(None, "--band", min=1, show_default=False,
                                           help="Band to import, 1 for the first (default 1, with a warning when "
                                                "the file has more)."),
        resolution: Optional[float] = typer.Option(None, "--resolution", show_default=False,
                                                   help="Cell size in m of the imported grid (resampled bilinear, "
                                                        "nearest for manning; default: the file's)."),
        match_dem: Optional[bool] = typer.Option(None, "--match-dem/--own-grid", show_default=False,
                                                 help="Resample onto the twin DEM's grid (nearest neighbour), or keep "
                                                      "the file's grid (default: onto the DEM's grid for manning "
                                                      "when it differs, said in the output)."),
        quiet: bool = QUIET_OPT,
        as_json: bool = JSON_OPT,
    ) -> None:
        """Import a GeoTIFF as raster --name (warped to the twin CRS when needed), replacing one of that name."""
        from cim.io.raster import import_raster
        from cim.store import open_store
        from twin_core.errors import ParameterError
        from twin_core.progress import progress_bar

        with open_store(target) as store:
            if not name:
                have = [n for n in store.list_rasters() if not n.startswith("res_")]
                raise ParameterError("--name is required: give a new raster name, or the name of one to replace (the "
                                     f"twin has {', '.join(have) or 'none yet'}; dem is the terrain floods run on)")
            # what a replace removes, as `twin import` says it
            had = store.raster_info(name) if store.has_raster(name) else None
            with progress_bar(f"importing {name}", None, quiet=quiet or as_json) as progress:
                r = import_raster(store, path, name, crs=crs, unit=unit, resolution=resolution, band=band,
                                  match_dem=match_dem, progress=_after(_BAR_AFTER_S, progress))
        human = f"imported {name}: {r.shape[0]} x {r.shape[1]} cells"
        if resolution is not None:
            human += f" of {resolution:g} m"
        if had:
            human += f", replacing the {had['height']} x {had['width']} cells it had"
        matched = r.meta.get("matched_dem")
        if matched:
            human += f"\n{matched}"
        emit({"raster": name, "shape": list(r.shape), "replaced": [had["height"], had["width"]] if had else None,
              **({"matched_dem": matched} if matched else {})}, as_json, human=human)

    @app.command("export")
    def export(
        target: str = STORE_ARG,
        name: str = typer.Argument(..., help="Layer or raster name; with --run, a result of the run."),
        out: str = typer.Argument(..., help="Output: .gpkg .geojson .parquet .shp (layers), .tif (rasters), .city.json (buildings); a result: see `twin runs TARGET RUN`."),
        scenario: Optional[str] = typer.Option(None, help="Export the layer as of this scenario (with --run: the run's scenario, needed only when the run id is under several)."),
        run: Optional[str] = typer.Option(None, "--run", help="Export a result of this run (`twin runs` lists them): a flood's max_depth to GeoTIFF, exposure_buildings to GeoPackage ..."),
        crs: Optional[str] = typer.Option(None, help="Reproject on export (GeoJSON defaults to EPSG:4326)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a layer of the same name in an existing "
                                       "GeoPackage (refused without it)."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Export a layer (GeoPackage, GeoJSON, GeoParquet, Shapefile, CityJSON), a raster (GeoTIFF) or, with
        --run, a run's result (GeoTIFF, CSV, GeoPackage ..., JSON)."""
        import os
        from pathlib import Path

        from pyogrio.errors import DataSourceError

        from cim.io.raster import export_raster
        from cim.io.vector import export_layer
        from cim.store import is_dsn
        from twin_core.errors import TwinError
        from twin_core.twin import Twin

        if run is not None:  # export_result refuses the twin's own file and a folder itself
            with Twin.open(target) as twin:
                p = twin.export_result(run, name, out, scenario=scenario, crs=crs)
            emit({"exported": name, "run": run, "to": str(p)}, as_json, human=f"wrote {p}")
            return
        if not is_dsn(target) and os.path.exists(out) and os.path.exists(target) and os.path.samefile(target, out):
            # GDAL would rewrite the store's own table behind its back (reprojected, or as of a scenario)
            raise TwinError(f"{out} is the twin's own store; export to another file")
        if os.path.isdir(out):
            raise TwinError(f"{out} is a folder; give the path of the file to write, "
                            f"e.g. {os.path.join(out, name)}.gpkg")
        _check_gpkg_target(target, name, out, overwrite)
        with Twin.open(target) as twin:
            _check_exportable(twin, name, target, out)
            _check_export_kind(twin, name, target, out)
            try:
                if out.lower().endswith((".tif", ".tiff")):
                    from cim.io.raster import reproject_raster

                    r = twin.raster(name, scenario=scenario)
                    export_raster(reproject_raster(r, crs) if crs is not None else r, out)
                elif out.lower().endswith((".city.json", ".cityjson")):
                    from cim.io.cityjson import to_cityjson

                    Path(out).parent.mkdir(parents=True, exist_ok=True)
                    to_cityjson(twin.layer(name, scenario=scenario), crs or twin.crs, path=out)
                else:
                    export_layer(twin.store, name, out, crs=crs,
                                 scenario=twin.scenario(scenario) if scenario else None)
            except (OSError, DataSourceError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip()
                raise TwinError(f"cannot write {out}: {why}; check that its folder can be created and written to") \
                    from exc
        emit({"exported": name, "to": out}, as_json, human=f"wrote {out}")


def _import_sumo(target: str, path: str, feature_class: str, field_map, drop, crs, source_layer, append: bool,
                 as_json: bool) -> None:
    """``twin import TWIN net.xml --class road_links``: a SUMO network into road_links and road_nodes, with
    :func:`cim.io.sumo.import_sumo_net` (GDAL cannot read one; it said only 'not recognized')."""
    from cim.io.sumo import import_sumo_net
    from cim.store import open_store
    from twin_core.errors import ParameterError

    if feature_class not in ("road_links", "road_nodes"):
        raise ParameterError(f"{path} is a SUMO road network: it imports as --class road_links (its edges, with "
                             f"its junctions as road_nodes), not --class {feature_class}")
    given = [o for o, v in (("--map", field_map), ("--drop", drop), ("--layer", source_layer)) if v]
    if given:
        raise ParameterError(f"{' and '.join(given)} do(es) not apply to a SUMO network, whose fields are mapped to "
                             "road_links and road_nodes by the importer; leave them out")
    with open_store(target) as store:
        had = {n: store.layer_info(n)["count"] for n in ("road_links", "road_nodes")
               if not append and store.has_layer(n)}
        counts = import_sumo_net(store, path, mode="append" if append else "replace", net_crs=crs)
    human = "imported " + " and ".join(f"{n} features into {k}" for k, n in counts.items())
    if any(had.values()):
        human += (", replacing the " + " and ".join(f"{n:,} {k}" for k, n in had.items() if n)
                  + " they had (--append adds to them instead)")
    emit({"layers": counts}, as_json, human=human)

def _gpkg_tables(path: str) -> set[str] | None:
    """The tables (lower case) of an existing GeoPackage ``path``, read-only; None where it is not one."""
    import sqlite3
    from pathlib import Path

    try:
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return {str(r[0]).lower() for r in rows}


def _check_gpkg_target(target: str, name: str, out: str, overwrite: bool) -> None:
    """Refuse a ``twin export`` into an existing GeoPackage that is a twin (GDAL would replace its layer with no
    import checks: CRS, schema, the buildings imported from IFC), or that holds a layer ``name`` already (replaced
    without a word) unless ``--overwrite``."""
    import os
    import shlex

    from twin_core.errors import TwinError

    if not out.lower().endswith(".gpkg") or not os.path.isfile(out):
        return
    tables = _gpkg_tables(out)
    if tables is None:
        return  # not SQLite: GDAL says why it cannot write there
    if "twin_meta" in tables:
        from cim.store import is_dsn

        q = shlex.quote
        shown = "TWIN" if is_dsn(target) else q(target)  # a DSN may hold a password
        raise TwinError(
            f"{out} is a RongTwin twin (it holds the twin tables, twin_meta); exporting into it would put {name!r} "
            "there without the import's checks (CRS, schema, the buildings imported from IFC). Export to a file of "
            f"its own and import that: twin export {shown} {q(name)} {q(name)}.gpkg, then "
            f"twin import {q(out)} {q(name)}.gpkg --class CLASS")
    if name.lower() in tables and not overwrite:
        raise TwinError(f"{out} already holds a layer {name!r}; exporting would replace it: add --overwrite to "
                        "replace it, or export to another file")


def _check_export_kind(twin, name: str, typed: str, out: str) -> None:
    """Refuse a raster exported to a vector format (it said only "no layer 'dem'") and a layer to GeoTIFF."""
    import os
    import shlex

    from twin_core.cli._common import store_arg
    from twin_core.errors import ParameterError

    store = twin.store
    to_tif = out.lower().endswith((".tif", ".tiff"))
    stem = os.path.splitext(out)[0]
    if store.has_raster(name) and not store.has_layer(name) and not to_tif:
        raise ParameterError(
            f"{name!r} is a raster: rasters export to GeoTIFF, e.g. twin export {store_arg(store, typed)} "
            f"{shlex.quote(name)} {shlex.quote(stem + '.tif')}")
    if store.has_layer(name) and not store.has_raster(name) and to_tif:
        raise ParameterError(
            f"{name!r} is a vector layer: layers export to .gpkg .geojson .parquet .shp or .fgb (buildings also to "
            f".city.json), e.g. twin export {store_arg(store, typed)} {shlex.quote(name)} {shlex.quote(stem + '.gpkg')}")


def _check_exportable(twin, name: str, typed: str, out: str) -> None:
    """Refuse, in the CLI's words, a ``twin export`` name that is neither a layer nor a raster of the twin: a
    run's result (``max_depth`` ...) is exported with --run (the Python errors advised ``twin.load_result()``)."""
    import shlex

    from cim.results import list_results
    from cim.scenario import did_you_mean
    from twin_core.cli._common import store_arg
    from twin_core.errors import LayerNotFoundError

    store = twin.store
    if store.has_layer(name) or store.has_raster(name):
        return
    shown = store_arg(store, typed)
    found = list_results(store, name=name)
    if len(found):
        runs = sorted(set(found["run"]))
        scens = sorted(set(found.loc[found["run"] == runs[0], "scenario"]))
        example = f"twin export {shown} {name} {shlex.quote(out)} --run {runs[0]}"
        if len(scens) > 1:  # that run id is under several scenarios: the example names one
            example += f" --scenario {scens[0]}"
        more = f", ... ({len(runs)} in all)" if len(runs) > 5 else ""
        raise LayerNotFoundError(
            f"{name!r} is a result of a run, not a layer or raster of the twin: give the run, e.g. {example} (runs "
            f"with a {name}: {', '.join(runs[:5])}{more}; `twin runs {shown}` lists the runs and their results)")
    from bim_import.checks import TABLE as BIM_CHECKS

    if name == BIM_CHECKS and store.has_table(name):  # README names the table; it is no layer (a user review)
        raise LayerNotFoundError(
            f"{name!r} is the twin's register of BIM compliance checks, a table, not a layer or raster: "
            f"`twin bim checks {shown} --json` writes it (newest first; --limit/--offset page it), and "
            f"`twin bim checks {shown} CHECK_ID --html report.html` one check's report")
    layers, rasters = twin.layers(), twin.rasters()
    raise LayerNotFoundError(
        f"no layer or raster {name!r} in {store.uri}{did_you_mean(name, layers + rasters)}; layers: "
        f"{', '.join(layers) or 'none'}; rasters: {', '.join(rasters) or 'none'}; a run's results (flood depths, "
        f"link flows ...) are exported with --run RUN (`twin runs {shown}` lists the runs)")
