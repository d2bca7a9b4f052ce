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
            s = twin.summary()
            if not twin.store.get_meta().get("extent"):  # the layers' extent: add the rasters' (a DEM alone)
                s["extent"] = _with_rasters(s.get("extent"), [twin.store.raster_info(n)["bounds"]
                                                              for n in twin.rasters()])
        s["extent_lonlat"] = lonlat_extent(s)  # where the twin is, for a map or a check beside --bbox's units
        emit(s, as_json, human=format_summary(s))


def _with_rasters(extent, boxes) -> list[float] | None:
    """``extent`` (xmin, ymin, xmax, ymax, or None) grown to hold the rasters' bounds ``boxes``: a twin that
    holds only a DEM showed extent null."""
    boxes = [list(b) for b in boxes if b] + ([list(extent)] if extent else [])
    if not boxes:
        return None
    return [float(min(b[0] for b in boxes)), float(min(b[1] for b in boxes)), float(max(b[2] for b in boxes)),
            float(max(b[3] for b in boxes))]
