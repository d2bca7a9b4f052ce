"""``twin info``: what a twin holds."""

from __future__ import annotations

import typer

from twin_core.cli._common import JSON_OPT, STORE_ARG, emit


def _not_a_twin(store, path: str) -> str:
    """Why a GeoPackage with no twin in it (e.g. written by geopandas) has no summary: its layers, each in
    its own CRS, and how to make a twin of them."""
    import pyogrio

    layers = []
    for name in store.list_layers():
        info = store.layer_info(name)
        n, crs = info["count"], pyogrio.read_info(path, layer=name)["crs"]
        layers.append(f"{name} ({info['geometry_type']}, {n} feature{'' if n == 1 else 's'}, {crs or 'no CRS'})")
    held = f"layers {', '.join(layers)}" if layers else "no layers"
    src = f"{path} --layer {store.list_layers()[0]}" if layers else "FILE"
    return (f"{path} holds no twin (no twin CRS recorded); it is a GeoPackage with {held}. Make a twin with "
            "`twin build CITY.gpkg` (the sample city) or Twin.create('CITY.gpkg', crs=...) in Python, then import "
            f"data with `twin import CITY.gpkg {src} --class FEATURE_CLASS`")


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(target: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
        """Summarise a twin: CRS, extent, layers, rasters, scenarios, results."""
        import os

        from cim.store import is_dsn, open_store
        from twin_core.cli.build import format_summary
        from twin_core.errors import StoreConnectionError
        from twin_core.twin import Twin

        if not is_dsn(target) and os.path.isfile(target):
            with open_store(target) as store:  # a GeoPackage written by other tools: say what it holds instead
                why = _not_a_twin(store, target) if store.crs is None else None
            if why:
                raise StoreConnectionError(why)
        with Twin.open(target) as twin:
            s = twin.summary()
        emit(s, as_json, human=format_summary(s))
