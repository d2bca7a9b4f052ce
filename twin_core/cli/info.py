"""``twin info``: what a twin holds."""

from __future__ import annotations

import typer

from twin_core.cli._common import JSON_OPT, STORE_ARG, emit


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(target: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
        """Summarise a twin: CRS, extent, layers, rasters, scenarios, results."""
        from twin_core.cli.build import format_summary, lonlat_extent
        from twin_core.twin import Twin

        with Twin.open(target) as twin:
            s = twin.summary()  # its extent, Twin.extent, holds the rasters' bounds too (a DEM alone)
        s["extent_lonlat"] = lonlat_extent(s)  # where the twin is, for a map or a check beside --bbox's units
        emit(s, as_json, human=format_summary(s))

